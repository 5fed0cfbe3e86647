"""Controls in the data (HDF5 schema 2: /<split>/controls): models that take them get them in
training, the test ELBO and every score; models without ignore them. The KVAE with
control=data uses u_t as z_{t+1} = A_t z_t + B_t u_t."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kvae_bench import h5io, models
from kvae_bench.cli import main

B, T, H = 3, 8, 16


def kvae(**options):
    torch.manual_seed(0)
    return models.build("kvae", H, {"dim_u": 1, "control": "data",
                                    "conv_precision": "float32", **options})


def frames(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, H, H, generator=g) > 0.8).float()


def test_kvae_uses_the_data_controls():
    m = kvae()
    x, mask = frames(), torch.ones(B, T)
    u = torch.randn(B, T, 1, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="pass controls of shape"):
        m.loss(x, mask)
    g = torch.Generator().manual_seed(0)
    base = m.loss(x, mask, controls=u, generator=g)[1]["elbo"]
    g = torch.Generator().manual_seed(0)
    other = m.loss(x, mask, controls=u + 1.0, generator=g)[1]["elbo"]
    assert base != other  # B_k u_t enters the transition
    # the one-pass filter (all observed) and the step-by-step one agree, controls included
    a, _ = m.encode(x)
    full, _ = m.filter(a, mask, u)
    online, _ = m._filter_online(a, mask, *m._prior(B), u)
    torch.testing.assert_close(full.filtered_means, online.filtered_means)
    torch.testing.assert_close(full.log_likelihood, online.log_likelihood)
    # generating the future = filtering with it missing, under the same controls
    gen = m.generate(x, 4, T - 4, controls=u)
    gap = torch.ones(B, T)
    gap[:, 4:] = 0
    torch.testing.assert_close(gen, m.impute(x, gap, controls=u)["filtered"][:, 4:])


def test_a_network_control_takes_no_data():
    m = models.build("kvae", H, {"dim_u": 1})  # control = network: the LSTM outputs u_t
    loss, _ = m.loss(frames(), torch.ones(B, T), controls=torch.zeros(B, T, 1))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="control must be"):
        models.build("kvae", H, {"dim_u": 1, "control": "nope"})


@pytest.fixture(scope="module")
def controlled_data(tmp_path_factory):
    """A ball pushed by a known force: frames, states and controls in a schema-2 file."""
    path = tmp_path_factory.mktemp("ctl") / "pushed.h5"
    rng = np.random.default_rng(0)
    attrs = {"env": "box", "env_params": json.dumps({"size": H}), "seed": 0, "dt": 1.0,
             "steps": 20, "image_size": H, "generator_version": "test", "created_utc": "now"}
    with h5io.Writer(path, attrs) as w:
        for split, n in (("train", 32), ("test", 8)):
            u = rng.uniform(-1, 1, (n, 20, 1)).astype(np.float32)
            pos = np.zeros((n, 20, 2), np.float32)
            pos[:, 0] = rng.uniform(5, 11, (n, 2))
            vel = np.zeros((n, 2), np.float32)
            for t in range(1, 20):
                vel[:, 0] += 0.3 * u[:, t - 1, 0]
                pos[:, t] = np.clip(pos[:, t - 1] + vel, 3, 12)
            f = np.zeros((n, 20, H, H), np.uint8)
            for i in range(n):
                for t in range(20):
                    c, r = pos[i, t].round().astype(int)
                    f[i, t, r - 1:r + 2, c - 1:c + 2] = 255
            states = np.concatenate([pos, np.zeros_like(pos)], -1)
            w.create_split(split, n, 20, H, ("x", "y", "vx", "vy"), control_columns=("push",))
            w.write(split, 0, f, states, u)
    return path


@pytest.mark.parametrize("model, options", [
    ("kvae", ["--set", "dim_u=1", "--set", "control=data", "--set", "frozen_dynamics_epochs=0"]),
    ("dvbf", ["--set", "dim_u=1"]),
    ("ae_rnn", []),  # takes no controls: trains and scores without them
])
def test_train_and_evaluate_with_controls(controlled_data, tmp_path, model, options):
    out = tmp_path / model
    r = CliRunner().invoke(main, ["train", "--model", model, "--data", str(controlled_data),
                                  "--out", str(out), "--epochs", "1", "--device", "cpu",
                                  "--set", "batch_size=16", *options])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["imputation"] and np.isfinite(list(m["elbo"].values())).all()


def test_a_controlled_model_on_data_without_controls_is_refused_before_work(tmp_path):
    data = tmp_path / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(data), "--train", "8", "--test",
                                  "4", "--steps", "8", "--size", "16", "--param", "radius=2",
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--data", str(data), "--out", str(tmp_path / "run"),
                                  "--set", "dim_u=1", "--set", "control=data", "--device", "cpu"])
    assert r.exit_code == 1 and "controls" in r.output and not (tmp_path / "run").exists()

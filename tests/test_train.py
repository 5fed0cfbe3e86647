"""`kvae-bench train`: run directory, exact resume after kill -9, non-finite steps, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from kvae_bench import rundir
from kvae_bench.cli import main
from kvae_bench.errors import UserError
from kvae_bench.rundir import training_history
from kvae_bench.train import TrainConfig, _wants_graph, random_mask, train

TINY = ["--set", "batch_size=16", "--set", "frozen_dynamics_epochs=1", "--set", "eval_limit=16",
        "--no-evaluate"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(path), "--train", "64", "--test",
                                  "16", "--steps", "8", "--size", "16", "--param", "radius=2",
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    return path


def cli_train(data, out, epochs, *extra):
    return [sys.executable, "-m", "kvae_bench.cli", "train", "--data", str(data), "--out",
            str(out), "--epochs", str(epochs), "--device", "cpu", *TINY, *extra]


def weights(run):
    return torch.load(run / "ckpt.pt", weights_only=True)


def test_kill_and_resume_matches_an_uninterrupted_run(tiny_data, tmp_path):
    epochs = 12
    straight = tmp_path / "straight"
    subprocess.run(cli_train(tiny_data, straight, epochs), check=True, capture_output=True,
                   timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli_train(tiny_data, killed, epochs), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "ckpt.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # somewhere in a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = weights(killed)["epoch"]
    assert done < epochs, "the run finished before it could be killed; make it longer"
    r = subprocess.run(cli_train(tiny_data, killed, epochs, "--resume"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = weights(straight), weights(killed)
    assert a["epoch"] == b["epoch"] == epochs and a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    log = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == list(range(1, epochs + 1))
    straight_log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["test_elbo"] for r in log] == [r["test_elbo"] for r in straight_log]


def test_run_directory_contents(tiny_data, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out", str(out),
                                  "--epochs", "1", "--seed", "3", *TINY, "--set", "elbo=sampled"])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "kvae" and config["seed"] == 3
    assert config["model_config"]["elbo"] == "sampled" and config["model_config"]["dim_z"] == 4
    assert config["train_config"]["batch_size"] == 16 and config["train_config"]["lr"] == 0.007
    assert len(config["data_fingerprint"]) == 64 and "torch" in config["versions"]
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert set(ckpt) >= {"model", "optimizer", "epoch", "step", "schema_version"}
    row = json.loads((out / "log.jsonl").read_text())
    for key in ("train_elbo", "test_elbo", "test_log_px", "seconds", "lr"):
        assert key in row
    assert row.pop("device") == "cpu" and row.pop("step_mode") == "eager"
    assert all(torch.isfinite(torch.tensor(v)) for v in row.values())
    assert training_history(out) == [{"device": "cpu", "epochs": 1,
                                      "seconds": row["seconds"]}]
    # the run exists now: a second train without --resume refuses
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out", str(out),
                                  "--epochs", "1"])
    assert r.exit_code == 1 and "pass --resume" in r.output
    # another model option cannot resume: the checkpoint holds the saved network
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--set", "dim_z=3"])
    assert r.exit_code == 1 and "other model options (dim_z)" in r.output
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--seed", "4"])
    assert r.exit_code == 1 and "cannot resume seed 3 as seed 4" in r.output
    # while another process trains the run, a second one is refused before writing anything
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert ".train.lock" not in before  # removed when training ended
    with rundir.training_lock(out):
        r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--epochs", "2",
                                      "--device", "cpu"])
    assert r.exit_code == 1 and f"{out} is being trained by pid {os.getpid()} on " in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the lock file gone


def test_resume_takes_the_saved_options_and_reports_changes(tiny_data, tmp_path, caplog,
                                                            monkeypatch):
    """The README's example: `train --out RUN --epochs 2 --resume` with no other option
    continues with the saved seed, data and options; a changed training option is named."""
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out", str(out),
                                  "--epochs", "1", "--seed", "3", *TINY, "--set", "elbo=sampled",
                                  "--device", "cpu"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)  # the data is found by its saved absolute path
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--epochs", "2", "--resume",
                                  "--device", "cpu", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["model_config"]["elbo"] == "sampled"
    assert config["train_config"]["batch_size"] == 16 and config["train_config"]["epochs"] == 2
    assert [c["changed"] for c in config["changes"]] == [{"epochs": 2}]
    assert "changed: epochs 1 -> 2" in caplog.text
    assert weights(out)["epoch"] == 2

    # fewer epochs than trained, or options on a run with nothing left to train: refused, as
    # config.json would record what no epoch trained with
    saved = (out / "config.json").read_bytes()
    for args, message in ((["--epochs", "1"], "has trained 2 epochs already: pass --epochs 2"),
                          (["--set", "lr=0.001"], "lr would be recorded but never used")):
        r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", *args,
                                      "--device", "cpu", "--no-evaluate"])
        assert r.exit_code == 1 and message in r.output, r.output
        assert (out / "config.json").read_bytes() == saved

    # scores of epoch 2, then a third epoch without scoring: the stale scores are named
    assert CliRunner().invoke(main, ["evaluate", str(out), "--device", "cpu"]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--epochs", "3", "--resume",
                                  "--device", "cpu", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert "metrics.json scores epoch 2, but the run trained 3" in r.output
    assert "`kvae-bench report` leaves these scores out" in r.output
    # a run scored before its last epoch (as if stopped at 3 of 5) is named too
    config = json.loads((out / "config.json").read_text())
    config["train_config"]["epochs"] = 5
    (out / "config.json").write_text(json.dumps(config))
    r = CliRunner().invoke(main, ["evaluate", str(out), "--device", "cpu"])
    assert r.exit_code == 0 and "training unfinished, epoch 3 of 5" in r.output, r.output

    # options given on a resume are recorded once an epoch has trained with them: a resume
    # stopped before that leaves config.json as it was
    import kvae_bench.train as trainer

    saved = (out / "config.json").read_bytes()

    def stop_in_the_epoch(*args, **kwargs):
        raise KeyboardInterrupt

    real_epoch = trainer._eager_epoch
    trainer._eager_epoch = stop_in_the_epoch
    try:
        r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--set",
                                      "lr=0.001", "--device", "cpu", "--no-evaluate"])
    finally:
        trainer._eager_epoch = real_epoch
    assert r.exit_code == 1 and "interrupted:" in r.output, r.output
    assert (out / "config.json").read_bytes() == saved
    # evaluating while another process trains the run: refused before any work
    with rundir.training_lock(out):
        r = CliRunner().invoke(main, ["evaluate", str(out), "--device", "cpu"])
    assert r.exit_code == 1 and "is being trained by pid" in r.output, r.output
    # a run without its checkpoint (as published) cannot be resumed: it would start over
    (out / "ckpt.pt").unlink()
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--epochs", "6",
                                  "--device", "cpu", "--no-evaluate"])
    assert r.exit_code == 1 and "has 3 logged epochs but no checkpoint" in r.output, r.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 3


def test_an_interrupted_training_says_how_to_continue(tmp_path, monkeypatch):
    import kvae_bench.train

    def stopped(out, *args, **kwargs):  # Ctrl-C after the first epoch's checkpoint
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "ckpt.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(kvae_bench.train, "train", stopped)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--out", str(out)])
    assert r.exit_code == 1 and "Aborted!" in r.output
    assert f"continue with `kvae-bench train --resume --out {out}`" in r.output


@pytest.mark.parametrize("args,message", [
    (["--set", "nope=1"], "unknown option 'nope'"),
    (["--set", "lr=fast"], "option lr='fast': expected float"),
    (["--set", "elbo=guess"], "elbo must be one of"),
    (["--set", "lr"], "expected key=value"),
    (["--set", "train_gap_prob=1.5"], "train_gap_prob must be in [0, 1]"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_train_bad_options(tiny_data, tmp_path, args, message):
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out",
                                  str(tmp_path / "r"), "--epochs", "1", *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_missing_data_says_how_to_make_it(tmp_path):
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "gravity.h5"), "--out",
                                  str(tmp_path / "r")])
    assert r.exit_code == 1
    assert "kvae-bench generate --env gravity" in r.output


def test_non_finite_steps_are_skipped_then_stop_the_run(tiny_data, tmp_path, monkeypatch):
    from kvae_bench.models.kvae import KVAE

    real_loss = KVAE.loss
    calls = {"n": 0}

    def flaky(self, x, mask, **kw):
        loss, logs = real_loss(self, x, mask, **kw)
        calls["n"] += 1
        if self.training and calls["n"] in (2, 3):
            loss = loss * float("nan")
        return loss, logs

    monkeypatch.setattr(KVAE, "loss", flaky)
    opts = {"batch_size": 16, "eval_limit": 16, "epochs": 1, "max_bad_steps": 2}
    run = train(tmp_path / "a", "kvae", tiny_data, opts, progress=False, device="cpu")
    row = json.loads((run / "log.jsonl").read_text())
    assert row["skipped_steps"] == 2 and row["step"] == 2
    assert all(torch.isfinite(v).all() for v in torch.load(
        run / "ckpt.pt", weights_only=True)["model"].values())

    def always_nan(self, x, mask, **kw):
        loss, logs = real_loss(self, x, mask, **kw)
        return loss * float("nan") if self.training else loss, logs

    monkeypatch.setattr(KVAE, "loss", always_nan)
    with pytest.raises(UserError, match="non-finite steps in a row.*last good checkpoint"):
        train(tmp_path / "a", "kvae", tiny_data, {**opts, "epochs": 3},
              resume=True, progress=False, device="cpu")
    # the extension never trained an epoch: config.json still says 1, the run is as it was
    assert rundir.read_config(run)["train_config"]["epochs"] == 1
    # a run that diverges in its first epoch: the report says so (resuming alike repeats
    # it), not merely "unfinished"
    with pytest.raises(UserError, match="3 non-finite steps in a row at epoch 1"):
        train(tmp_path / "b", "kvae", tiny_data, {**opts, "epochs": 2}, progress=False,
              device="cpu")
    assert rundir.stale_reason(tmp_path / "b", None).startswith(
        "training diverged at epoch 1 (3 non-finite steps in a row), epoch 0 of 2 done: "
        "resuming with the same options repeats it")
    monkeypatch.setattr(KVAE, "loss", real_loss)  # mended: an epoch finishes, the record goes
    train(tmp_path / "b", None, None, {}, resume=True, progress=False, device="cpu")
    assert rundir.divergence(tmp_path / "b") is None
    assert rundir.stale_reason(tmp_path / "b", None) is None


@pytest.mark.slow
def test_elbo_improves_on_a_small_box_set(tmp_path):
    """About a minute on 2 cores: 1280 box videos, 8 epochs (320 steps)."""
    data = tmp_path / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(data), "--train", "1280", "--test",
                                  "128"])
    assert r.exit_code == 0
    run = train(tmp_path / "run", "kvae", data, {"epochs": 8, "frozen_dynamics_epochs": 3},
                progress=False, device="cpu")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    first, last = log[0]["test_elbo"], log[-1]["test_elbo"]
    assert last > first + 50, (first, last)
    # better than the average frame (about -102 nats): the codes carry the ball's position
    assert log[-1]["test_log_px"] > -80, log[-1]["test_log_px"]


def test_config_file_and_training_with_missing_frames(tiny_data, tmp_path, monkeypatch):
    """Options from a TOML file; train_miss_prob trains through the online (gappy) filter, and
    train_gap_prob reaches the training masks."""
    import kvae_bench.train as train_module

    drawn = []

    def spy(*args, **kwargs):
        drawn.append(args[6:])
        return random_mask(*args, **kwargs)

    monkeypatch.setattr(train_module, "random_mask", spy)
    cfg = tmp_path / "opts.toml"
    cfg.write_text('batch_size = 16\neval_limit = 16\ntrain_miss_prob = 0.5\nt_init = 2\n'
                   'train_gap_prob = 0.25\nalpha_net = "mlp"\n')
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out", str(out),
                                  "--epochs", "1", "--config", str(cfg), "--device", "cpu",
                                  "--no-evaluate"])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["train_config"]["train_miss_prob"] == 0.5
    assert config["train_config"]["train_gap_prob"] == 0.25 and drawn and set(drawn) == {(0.25,)}
    assert config["model_config"]["alpha_net"] == "mlp"
    row = json.loads((out / "log.jsonl").read_text())
    assert row["skipped_steps"] == 0 and torch.isfinite(torch.tensor(row["train_elbo"]))
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = [")
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--out",
                                  str(tmp_path / "r2"), "--config", str(bad)])
    assert r.exit_code == 1 and "cannot read" in r.output


def test_training_history_splits_a_run_resumed_on_another_device(tmp_path):
    rows = [{"epoch": 1, "seconds": 10.0}, {"epoch": 2, "seconds": 11.5},  # before "device"
            {"epoch": 3, "seconds": 30.0, "device": "cpu"},
            {"epoch": 4, "seconds": 31.0, "device": "cpu"},
            {"epoch": 5, "seconds": 9.0, "device": "cuda"}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert training_history(tmp_path, default_device="cuda") == [
        {"device": "cuda", "epochs": 2, "seconds": 21.5},
        {"device": "cpu", "epochs": 2, "seconds": 61.0},
        {"device": "cuda", "epochs": 1, "seconds": 9.0}]
    assert training_history(tmp_path / "missing") == []


def test_training_masks_without_gaps_draw_what_they_drew_and_with_them_one_gap_each():
    """train_gap_prob 0 leaves the random drops' draws as they were (runs resume bit for bit);
    at 1, every sequence gets one run of missing frames after t_init, of every length from 1
    to T - t_init, at every start where it fits; such runs never take the CUDA graph."""
    B, T, t_init = 4000, 12, 3
    old = (torch.rand(B, T, generator=torch.Generator().manual_seed(5)) >= 0.5).float()
    old[:, :t_init] = 1
    new = random_mask(B, T, 0.5, t_init, torch.Generator().manual_seed(5), "cpu")
    assert torch.equal(new, old)
    m = random_mask(B, T, 0.5, t_init, torch.Generator().manual_seed(5), "cpu", gap_prob=1.0)
    assert (m[:, :t_init] == 1).all()
    missing = 1 - m[:, t_init:]
    starts = (missing.diff(dim=1, prepend=torch.zeros(B, 1)) == 1).sum(1)
    assert (starts == 1).all()  # one contiguous gap each, not scattered drops
    length, first = missing.sum(1), missing.argmax(1)
    assert (length >= 1).all() and (first + length <= T - t_init).all()
    assert set(length.long().tolist()) == set(range(1, T - t_init + 1))
    assert set((first + length).long().tolist()) == set(range(1, T - t_init + 1))
    assert set(first.long().tolist()) == set(range(T - t_init))  # every start, even the last
    half = random_mask(B, T, 0.5, t_init, torch.Generator().manual_seed(5), "cpu", gap_prob=0.5)
    one_gap = ((1 - half[:, t_init:]).diff(dim=1, prepend=torch.zeros(B, 1)) == 1).sum(1) <= 1
    assert 0.5 < one_gap.float().mean() < 0.65  # half the sequences, plus drops that look so
    assert not _wants_graph(TrainConfig(train_gap_prob=0.5), "cuda")
    assert _wants_graph(TrainConfig(), "cuda")

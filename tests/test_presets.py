"""Presets (simulators/presets.py): another paper's protocol as a named data set."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from kvae_bench import h5io
from kvae_bench.cli import main
from simulators import presets
from simulators.generate import sequence_rng


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def dvbf_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("dvbf") / "p.h5"
    r = cli("generate", "--env", "pendulum", "--preset", "dvbf", "--train", 12, "--val", 6,
            "--test", 6, "--out", out, "--workers", 1)
    assert r.exit_code == 0, r.output
    return out


def test_dvbf_pendulum_file(dvbf_file):
    meta = h5io.read_meta(dvbf_file)
    assert h5io.dataset_name(meta) == "pendulum-dvbf" and meta["image_size"] == 16
    assert {s: m["n"] for s, m in meta["splits"].items()} == {"train": 12, "val": 6, "test": 6}
    assert meta["steps"] == 15 and meta["env_params"]["friction"] == 0.5
    for split in ("train", "val", "test"):
        d = h5io.read(dvbf_file, split)
        assert d.controls.shape == (len(d.frames), 15, 1) and d.control_columns == ("u",)
        assert np.abs(d.controls).max() <= presets.DVBF["control_max"]
        lit = (d.frames > 0).sum((-2, -1))
        assert lit.min() > 0 and lit.max() == lit.min()  # the whole bob in every frame
        # the bob is drawn where the state says (centroid of the lit pixels)
        rows, cols = np.mgrid[:16, :16] + 0.5
        on = d.frames > 0
        cx = (on * cols).sum((-2, -1)) / on.sum((-2, -1))
        cy = (on * rows).sum((-2, -1)) / on.sum((-2, -1))
        assert np.abs(cx - d.states[..., 0]).max() <= 0.5 + 1e-6
        assert np.abs(cy - d.states[..., 1]).max() <= 0.5 + 1e-6
    # the splits are different sequences
    assert not np.array_equal(h5io.read(dvbf_file, "val").states,
                              h5io.read(dvbf_file, "test").states)


def test_dvbf_physics_follows_the_equation():
    """RK4 at the preset's step against a 20x finer integration; with no control, friction
    only takes energy away."""
    p = presets.DVBF
    theta, omega = 2.5, 0.3
    coarse, fine = (theta, omega), (theta, omega)
    h = p["dt"] / p["substeps"]
    for _ in range(15 * p["substeps"]):
        coarse = presets._rk4(*coarse, 0.7, h)
    for _ in range(15 * p["substeps"] * 20):
        fine = presets._rk4(*fine, 0.7, h / 20)
    assert abs(coarse[0] - fine[0]) < 1e-6 and abs(coarse[1] - fine[1]) < 1e-6

    def energy(th, om):
        return 0.5 * om**2 - p["gravity"] / p["length"] * math.cos(th)
    state, last = (theta, omega), energy(theta, omega)
    for _ in range(300):
        state = presets._rk4(*state, 0.0, h)
        e = energy(*state)
        assert e <= last + 1e-9
        last = e


def test_dvbf_sequences_are_their_own():
    """A sequence depends only on (seed, split, index): the same rng gives the same video."""
    from simulators.render import Canvas

    a = presets.dvbf_sequence(sequence_rng(0, "val", 3), 15, Canvas(16))
    b = presets.dvbf_sequence(sequence_rng(0, "val", 3), 15, Canvas(16))
    c = presets.dvbf_sequence(sequence_rng(0, "test", 3), 15, Canvas(16))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("args, message", [
    (["--env", "pendulum", "--preset", "nope"], "no preset 'nope' for env 'pendulum'"),
    (["--env", "box", "--preset", "dvbf"], "--env pendulum --preset dvbf"),
    (["--env", "pendulum", "--preset", "dvbf", "--param", "length=5"], "fixes its parameters"),
    (["--env", "pendulum", "--preset", "dvbf", "--size", "32"], "fixes its parameters"),
    (["--env", "pendulum", "--preset", "dvbf", "--val", "-1"], "val must be >= 0"),
])
def test_preset_errors(tmp_path, args, message):
    out = tmp_path / "x.h5"
    r = cli("generate", *args, "--out", out)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert not out.exists()

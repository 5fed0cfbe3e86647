"""`kvae-bench generate`, `inspect` and `import-npz` through the command line."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from kvae_bench import h5io
from kvae_bench.cli import main


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def small(out, *extra):
    return cli("generate", "--out", out, "--train", 30, "--test", 10, "--steps", 6, *extra)


def test_generate_identical_for_any_worker_count(tmp_path):
    outs = []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}.h5"
        r = small(out, "--env", "polygon", "--workers", workers, "--seed", 5)
        assert r.exit_code == 0, r.output
        outs.append(out)
    ref_meta = h5io.read_meta(outs[0])
    for out in outs[1:]:
        meta = h5io.read_meta(out)
        for key in ref_meta:
            if key != "created_utc":
                assert meta[key] == ref_meta[key], key
        for split in h5io.SPLITS:
            a, b = h5io.read(outs[0], split), h5io.read(out, split)
            assert a.frames.tobytes() == b.frames.tobytes()
            assert a.states.tobytes() == b.states.tobytes()


def test_generate_records_params_and_metadata(tmp_path):
    out = tmp_path / "g.h5"
    r = small(out, "--env", "gravity", "--size", 64, "--param", "gravity=0,9.8",
              "--param", "speed_max=12")
    assert r.exit_code == 0, r.output
    meta = h5io.read_meta(out)
    assert meta["env"] == "gravity" and meta["image_size"] == 64 and meta["steps"] == 6
    assert meta["env_params"]["gravity"] == [0.0, 9.8]
    assert meta["env_params"]["speed_max"] == 12.0 and meta["env_params"]["size"] == 64
    assert meta["splits"]["train"]["n"] == 30 and meta["splits"]["test"]["n"] == 10
    assert h5io.read(out, "test").frames.shape == (10, 6, 64, 64)


@pytest.mark.parametrize("args,message", [
    (("--env", "cube"), "unknown env 'cube'; valid: box"),
    (("--param", "nope=1"), "unknown parameter 'nope'"),
    (("--param", "gravity"), "expected key=value"),
    (("--param", "radius=big"), "radius='big': expected a number"),
    (("--train", 0), "need at least 1 train"),
    (("--steps", 0), "steps must be at least 1"),
    (("--workers", 0), "workers must be at least 1"),
    (("--size", 8), "size must be at least 16"),
])
def test_generate_bad_input(tmp_path, args, message):
    out = tmp_path / "x.h5"
    r = small(out, *args)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_generate_warns_when_the_sequences_are_too_short_to_train_on(tmp_path):
    r = cli("generate", "--out", tmp_path / "short.h5", "--train", 4, "--test", 2, "--steps", 4)
    assert r.exit_code == 0 and (tmp_path / "short.h5").is_file()
    assert "warning: sequences of 4 frames are too short for the benchmark" in r.output
    assert "warning" not in small(tmp_path / "ok.h5").output


def test_generate_refuses_overwrite_and_unwritable(tmp_path):
    out = tmp_path / "x.h5"
    assert small(out).exit_code == 0
    r = small(out)
    assert r.exit_code == 1 and "pass --overwrite" in r.output
    assert small(out, "--overwrite", "--seed", 1).exit_code == 0
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = small(blocker / "x.h5")
    assert r.exit_code == 1 and "is not a folder" in r.output


def test_console_script_errors_are_one_line(tmp_path):
    """The installed entry point: no traceback, exit 1, and no pygame banner anywhere."""
    out = tmp_path / "x.h5"
    cmd = [sys.executable, "-m", "kvae_bench.cli", "generate", "--out", str(out),
           "--train", "2", "--test", "2", "--steps", "3", "--workers", "2"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "pygame" not in ok.stdout + ok.stderr and "Hello from" not in ok.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "Traceback" not in again.stderr


def test_inspect_prints_and_writes_gif(tmp_path):
    out = tmp_path / "x.h5"
    assert small(out, "--env", "pong").exit_code == 0
    gif = tmp_path / "sub" / "x.gif"
    r = cli("inspect", out, "--gif", gif, "--n", 4)
    assert r.exit_code == 0, r.output
    assert "env pong" in r.output and "train: 30 sequences x 6 frames of 32x32" in r.output
    assert "left_paddle_y" in r.output and "empty frames: 0" in r.output
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 6


def test_inspect_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x00" * 100)
    r = cli("inspect", bad)
    assert r.exit_code == 1 and "not an HDF5 file" in r.output and "Traceback" not in r.output
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["images"] = np.zeros(3)
    r = cli("inspect", tmp_path / "foreign.h5")
    assert r.exit_code == 1 and "not a kvae-bench dataset" in r.output
    r = cli("inspect", tmp_path / "missing.h5")
    assert r.exit_code == 1 and "kvae-bench generate" in r.output


def write_npz(path, n, with_state=True, t=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((n, t, 32, 32)).astype(np.float32)
    arrays = {"images": images}
    if with_state:
        arrays["state"] = rng.standard_normal((n, t, 4))
    np.savez(path, **arrays)
    return arrays


def test_import_npz(tmp_path):
    train = write_npz(tmp_path / "train.npz", 6)
    test = write_npz(tmp_path / "test.npz", 3, seed=1)
    out = tmp_path / "box_2017.h5"
    r = cli("import-npz", tmp_path / "train.npz", tmp_path / "test.npz", "--env", "box",
            "--out", out)
    assert r.exit_code == 0, r.output
    meta = h5io.read_meta(out)
    assert meta["env"] == "box" and meta["steps"] == 5 and meta["image_size"] == 32
    assert "imported_from" in meta["env_params"]
    for split, arrays in (("train", train), ("test", test)):
        got = h5io.read(out, split)
        # every drawn pixel lit, as the 2017 loader did; the states' conversion to our
        # convention is tests/test_importer.py's
        np.testing.assert_array_equal(got.frames, np.where(arrays["images"] > 0, 255, 0))
        assert got.states.shape == arrays["state"].shape
        assert got.columns == ("x", "y", "vx", "vy")


def test_import_npz_without_state_and_errors(tmp_path):
    write_npz(tmp_path / "a.npz", 4, with_state=False)
    write_npz(tmp_path / "b.npz", 2, with_state=False)
    out = tmp_path / "pong.h5"
    r = cli("import-npz", tmp_path / "a.npz", tmp_path / "b.npz", "--env", "pong", "--out", out)
    assert r.exit_code == 0, r.output
    assert h5io.read(out, "train").states.shape == (4, 5, 0)
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((2, 3, 32, 32)))
    r = cli("import-npz", tmp_path / "bad.npz", tmp_path / "b.npz", "--env", "box", "--out",
            tmp_path / "c.h5")
    assert r.exit_code == 1 and "no `images` array" in r.output
    np.savez(tmp_path / "big.npz", images=np.full((2, 3, 32, 32), 2.0))
    r = cli("import-npz", tmp_path / "big.npz", tmp_path / "b.npz", "--env", "box", "--out",
            tmp_path / "c.h5")
    assert r.exit_code == 1 and "must lie in [0, 1]" in r.output
    (tmp_path / "junk.npz").write_text("junk")
    r = cli("import-npz", tmp_path / "junk.npz", tmp_path / "b.npz", "--env", "box", "--out",
            tmp_path / "c.h5")
    assert r.exit_code == 1 and "not a readable npz" in r.output
    assert not (tmp_path / "c.h5").exists()
    r = cli("import-npz", tmp_path / "a.npz", tmp_path / "b.npz", "--env", "box", "--out", out)
    assert r.exit_code == 1 and "pass --overwrite" in r.output


def test_generate_and_inspect_never_import_torch(tmp_path):
    """Making and looking at data needs no torch (about 2 s of imports, more on a busy
    machine): the fingerprint that says whether a file is canonical is numpy and h5py."""
    out = tmp_path / "box.h5"
    code = ("import sys; from kvae_bench.cli import main\n"
            "for args in (['generate', '--env', 'box', '--train', '8', '--test', '4', '--out', "
            f"{str(out)!r}], ['inspect', {str(out)!r}]):\n"
            "    try:\n"
            "        main(args, standalone_mode=False)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout
    assert "canonical" in r.stderr + r.stdout

"""Every command over a table of careless inputs: a non-zero exit, one line that says what to do,
no traceback, and no file anywhere in the workspace changed (hashed before and after)."""

import contextlib
import hashlib
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from kvae_bench.cli import main

TINY = ["--set", "batch_size=8", "--set", "eval_limit=8", "--set", "frozen_dynamics_epochs=0",
        "--set", "warmup_steps=2", "--epochs", "1", "--device", "cpu", "--no-evaluate"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: data files good and bad, run folders good and damaged, foreign files."""
    root = tmp_path_factory.mktemp("ws")
    with contextlib.chdir(root):
        yield from _make_workspace(root)


def _make_workspace(root):
    small = ["--train", 24, "--test", 8, "--workers", 1]
    assert cli("generate", "--out", "data/box.h5", *small, "--steps", 8, "--size", 16,
               "--param", "radius=2").exit_code == 0
    assert cli("generate", "--out", "data/short.h5", *small, "--steps", 3, "--size", 16,
               "--param", "radius=2").exit_code == 0
    assert cli("generate", "--out", "data/odd.h5", *small, "--steps", 8, "--size", 17,
               "--param", "radius=2").exit_code == 0
    shutil.copy("data/box.h5", "data/corrupt.h5")
    with h5py.File("data/corrupt.h5", "r") as f:  # random bytes over a stored chunk
        offset = f["train"]["frames"].id.get_chunk_info(3).byte_offset
    with open("data/corrupt.h5", "r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(0).bytes(200))
    shutil.copy("data/box.h5", "data/badheader.h5")  # damaged metadata near the end
    size = Path("data/badheader.h5").stat().st_size
    with open("data/badheader.h5", "r+b") as f:
        f.seek(size - 2000)
        f.write(bytes(2000))
    Path("afile").write_text("a file where a folder is expected")
    r = cli("train", "--data", "data/box.h5", "--out", "runs/good", *TINY)
    assert r.exit_code == 0, r.output
    for name in ("damaged", "empty_ckpt", "bad_log", "readonly"):
        shutil.copytree("runs/good", f"runs/{name}")
    Path("runs/damaged/ckpt.pt").write_bytes(np.random.default_rng(1).bytes(3000))
    Path("runs/empty_ckpt/ckpt.pt").write_bytes(b"")
    with open("runs/bad_log/log.jsonl", "a") as f:
        f.write("this is not json\n")
    Path("README.md").write_text("# my project\n")
    Path("bad.toml").write_text("batch_size = [")
    Path("empty.npz").write_bytes(b"")
    Path("junk.npz").write_text("junk")
    np.savez("imgs.npz", images=np.zeros((2, 6, 16, 16)))
    Path("only_bad_runs/r1").mkdir(parents=True)
    Path("only_bad_runs/r1/metrics.json").write_text("x")
    readonly = subprocess.run(["chattr", "+i", "runs/readonly"], capture_output=True)
    yield root
    if readonly.returncode == 0:
        subprocess.run(["chattr", "-i", "runs/readonly"])


def writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def tree_hash(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


GOOD_RUN = "runs/good"
CASES = [
    # (command line, exit code, a piece of the message)
    ("generate --env nope", 1, "unknown env 'nope'; valid: box"),
    ("generate --size 0 --out data/x.h5", 1, "size"),
    ("generate --param speed_max=inf --out data/x.h5", 1, "speed_max"),
    ("generate --param nope=1 --out data/x.h5", 1, "unknown parameter 'nope'"),
    ("generate --param speed_max --out data/x.h5", 2, "expected key=value"),
    ("generate --seed -1 --out data/x.h5", 2, "--seed"),
    ("generate --train 0 --out data/x.h5", 1, "at least 1 train"),
    ("generate --steps 0 --out data/x.h5", 1, "steps must be at least 1"),
    ("generate --workers 0 --out data/x.h5", 1, "workers"),
    ("generate --out data/box.h5", 1, "exists: pass --overwrite"),
    ("generate --out README.md --overwrite", 1, "not a kvae-bench dataset"),
    ("generate --out data", 2, "is a directory"),
    ("generate --env polygon --param vertices=0,0;40,0;40,40 --out data/x.h5", 1, "vertices"),
    ("generate --env pong --param paddle_speed=0 --out data/x.h5", 1, "paddle_speed"),
    ("inspect data/missing.h5", 1, "not found"),
    ("inspect data", 1, "is a folder"),
    ("inspect README.md", 1, "not an HDF5 file"),
    ("inspect data/box.h5 --gif data/box.h5", 1, "is the dataset itself"),
    ("inspect data/box.h5 --gif README.md", 1, "not a GIF"),
    ("inspect data/corrupt.h5", 1, "damaged"),
    ("inspect data/badheader.h5", 1, "is damaged"),
    ("inspect data/box.h5 --gif afile/x.gif", 1, "afile is a file"),
    ("train --data data/missing.h5 --out runs/new", 1, "kvae-bench generate"),
    ("train --data data/short.h5 --out runs/new", 1, "too few"),
    ("train --data data/odd.h5 --out runs/new", 1, "for frames of 17x17"),
    ("train --data data/corrupt.h5 --out runs/new", 1, "damaged"),
    ("train --data data/box.h5 --out runs/new --set lr=inf", 1, "finite"),
    ("train --data data/box.h5 --out runs/new --set lr=fast", 1, "expected float"),
    ("train --data data/box.h5 --out runs/new --set nope=1", 1, "unknown option 'nope'"),
    ("train --data data/box.h5 --out runs/new --set train_limit=-1", 1, "train_limit"),
    ("train --data data/box.h5 --out runs/new --seed -1", 2, "--seed"),
    ("train --data data/box.h5 --out runs/new --epochs 0", 2, "--epochs"),
    ("train --data data/box.h5 --out runs/new --device tpu", 1, "--device 'tpu'"),
    ("train --data data/box.h5 --out runs/new --config bad.toml", 1, "cannot read bad.toml"),
    ("train --data data/box.h5 --out runs/new --config data/box.h5", 1, "it is not UTF-8"),
    ("train --data data/box.h5 --out runs/new --set t_init=8", 1, "set t_init below 8"),
    (f"train --out {GOOD_RUN} --resume --set lr=0.001", 1, "lr would be recorded but never"),
    ("generate --steps 100000000 --out data/x.h5", 1, "use fewer --steps or a smaller --size"),
    ("generate --size 64 --param size=32 --out data/x.h5", 1, "give the size once"),
    ("train --data data/box.h5 --out runs/new --epochs 1 --set epochs=2", 1,
     "give the epochs once"),
    ("generate --train 1000000000 --out data/x.h5", 1, "the largest split, 1000000000"),
    (f"train --data data/box.h5 --out {GOOD_RUN}", 1, "pass --resume"),
    ("train --out runs/damaged --resume", 1, "damaged or not a kvae-bench checkpoint"),
    ("train --out runs/empty_ckpt --resume", 1, "damaged or not a kvae-bench checkpoint"),
    ("train --out runs/bad_log --resume --epochs 4", 1, "line 2 is not an epoch record"),
    ("train --data data/badheader.h5 --out runs/new", 1, "is damaged"),
    ("train --out runs/nothing --resume", 1, "not a run directory"),
    ("train --out README.md --data data/box.h5", 1, "README.md"),
    ("evaluate runs/damaged", 1, "damaged or not a kvae-bench checkpoint"),
    ("evaluate runs/empty_ckpt", 1, "damaged or not a kvae-bench checkpoint"),
    ("evaluate runs/bad_log", 1, "line 2 is not an epoch record"),
    (f"evaluate {GOOD_RUN} --batch-size 0", 2, "--batch-size"),
    (f"evaluate {GOOD_RUN} --data data/short.h5", 1, "not the data this run was trained on"),
    (f"evaluate {GOOD_RUN} --data data", 1, "is a folder"),
    ("evaluate runs/missing", 1, "not found"),
    ("evaluate README.md", 1, "is a file"),
    ("evaluate runs/readonly", 1, "cannot write in runs/readonly"),
    ("report --runs runs/missing --out out", 1, "not found"),
    ("report --runs only_bad_runs --out out", 1, "no readable run"),
    ("report --runs runs --out .", 1, "did not write"),
    ("report --runs runs --out README.md", 1, "is a file"),
    ("report --runs runs --out afile/report", 1, "afile is a file"),
    ("benchmark --device tpu", 1, "--device 'tpu'"),
    ("benchmark --seeds abc", 1, "'abc' is not an integer"),
    ("benchmark --seeds -1", 1, "--seeds must be >= 0"),
    ("benchmark --models kvae,gru", 1, "unknown model 'gru'; valid: kvae"),
    ("benchmark --env lava", 1, "unknown data set 'lava'"),
    ("benchmark --models ", 1, "--models: expected a comma-separated list, e.g. kvae,dmm"),
    ("benchmark --env ", 1, "--env: expected a comma-separated list"),
    ("train --data data/box.h5 --out runs/new --model nowhere.mod:Net", 1, "cannot import"),
    ("train --data data/box.h5 --out runs/new --model gru", 1, "unknown model 'gru'"),
    ("benchmark --profile huge", 2, "'huge' is not one of"),
    ("import-npz empty.npz imgs.npz --env box --out data/i.h5", 1, "not a readable npz"),
    ("import-npz junk.npz imgs.npz --env box --out data/i.h5", 1, "not a readable npz"),
    ("import-npz imgs.npz imgs.npz --env box --out README.md --overwrite", 1,
     "not a kvae-bench dataset"),
    ("import-npz imgs.npz imgs.npz --env nope --out data/i.h5", 1, "unknown env 'nope'"),
    ("import-npz imgs.npz imgs.npz --env box --dt -1 --out data/i.h5", 1, "--dt must be"),
    ("import-npz imgs.npz imgs.npz --env box --dt nan --out data/i.h5", 1, "--dt must be"),
]


@pytest.mark.parametrize("line,code,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ws, line, code, message):
    with contextlib.chdir(ws):
        if "readonly" in line and writable(ws / "runs/readonly"):
            pytest.skip("cannot make a folder read-only for this user on this file system")
        before = tree_hash(ws)
        r = CliRunner().invoke(main, line.split(" "))
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert len(errors) == 1 and message in errors[0], r.output
    if code == 1:  # a domain error is exactly one line
        assert r.output.strip() == errors[0]
    assert tree_hash(ws) == before, "a failed command changed files"


def test_the_table_is_long_enough():
    assert len(CASES) >= 40
    assert {c[0].split()[0] for c in CASES} >= {"generate", "inspect", "train", "evaluate",
                                                "report", "benchmark", "import-npz"}

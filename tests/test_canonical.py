"""The canonical data sets (kvae_bench/references/datasets.csv): every named data set at its
defaults regenerates to its recorded fingerprint, so a pymunk, pygame or numpy upgrade that
changes the data fails here instead of silently shifting every published number.

Quick: each data set's recorded prefix (its first 100 train, 50 test sequences) and the claim
that makes a prefix meaningful: a file's first sequences are the file made with fewer. Slow
(-m slow, about a minute): every full data set, through `kvae-bench generate`.
"""

import numpy as np
import pytest
from click.testing import CliRunner

import simulators
from kvae_bench import h5io
from kvae_bench.cli import main
from kvae_bench.data import fingerprint
from kvae_bench.references import datasets_csv
from simulators import presets
from simulators.generate import generate

ROWS = datasets_csv()
SPLITS = ("train", "val", "test")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def make(row: dict, out, sizes: dict[str, int]):
    """`generate` of row's env (and preset) at its seed and steps with the given split sizes."""
    return generate(out, row["env"], n_train=sizes["train"], n_val=sizes["val"],
                    n_test=sizes["test"], steps=int(row["steps"]), seed=int(row["seed"]),
                    preset=row["preset"] or None, workers=1, progress=False)


def prefix_sizes(row: dict) -> dict[str, int]:
    return {s: int(row[f"prefix_{s}"]) for s in SPLITS}


def test_every_named_data_set_is_recorded_at_its_defaults():
    names = {*simulators.ENVS, *(f"{e}-{p}" for e, p in presets.PRESETS)}
    assert set(ROWS) == names
    for name, row in ROWS.items():
        assert h5io.dataset_name({"env": row["env"], "preset": row["preset"]}) == name
        sizes = {"n_train": 5000, "n_val": 0, "n_test": 1000, "steps": 20}  # generate's
        if row["preset"]:
            p = presets.get(row["env"], row["preset"])
            sizes = {"n_train": p.n_train, "n_val": p.n_val, "n_test": p.n_test,
                     "steps": p.steps}
        assert {k: int(row[k]) for k in sizes} == sizes and row["seed"] == "0", name
        prefix = prefix_sizes(row)
        assert all(0 <= prefix[s] <= int(row[f"n_{s}"]) for s in SPLITS), name


@pytest.mark.parametrize("name", ROWS)
def test_prefix_regenerates_and_is_the_start_of_a_longer_file(name, tmp_path):
    row = ROWS[name]
    prefix = prefix_sizes(row)
    path = make(row, tmp_path / "prefix.h5", prefix)
    assert fingerprint(path) == row["prefix_fingerprint"], (
        f"{name}: the first sequences of the canonical data changed (pymunk, pygame or numpy "
        "upgrade, or a generator change: then bump GENERATOR_VERSION and record new "
        "fingerprints)")
    # sequence i depends only on (seed, split, i): a longer file (one more block of
    # sequences in each split) starts with this one
    longer = {s: n + 7 if n else 0 for s, n in prefix.items()}
    other = make(row, tmp_path / "longer.h5", longer)
    for split in (s for s in SPLITS if prefix[s]):
        a, b = h5io.read(path, split), h5io.read(other, split)
        np.testing.assert_array_equal(b.frames[:prefix[split]], a.frames)
        np.testing.assert_array_equal(b.states[:prefix[split]], a.states)
        if a.controls is not None:
            np.testing.assert_array_equal(b.controls[:prefix[split]], a.controls)


def test_generate_and_inspect_say_whether_canonical(tmp_path):
    box = ROWS["box"]
    out = tmp_path / "box.h5"
    r = cli("generate", "--env", "box", "--out", out)  # the full canonical box: about 2 s
    assert r.exit_code == 0, r.output
    assert f"canonical box data (fingerprint {box['fingerprint'][:12]}…)" in r.output
    r = cli("inspect", out)
    assert r.exit_code == 0 and f"canonical box data (fingerprint {box['fingerprint'][:12]}" \
        in r.output
    prefix = tmp_path / "prefix.h5"
    r = cli("generate", "--env", "pong", "--preset", "2017", "--train", 100, "--test", 50,
            "--out", prefix)
    assert r.exit_code == 0 and ("canonical pong-2017 prefix: the first 100 train + 50 test "
                                 "sequences") in r.output, r.output
    other = tmp_path / "seed1.h5"
    r = cli("generate", "--env", "box", "--train", 3, "--test", 2, "--seed", 1, "--out", other)
    assert r.exit_code == 0 and "not the canonical box: different data or parameters" \
        in r.output
    r = cli("inspect", other)
    assert r.exit_code == 0 and "not the canonical box" in r.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ROWS)
def test_full_canonical_data_regenerates(name, tmp_path):
    row = ROWS[name]
    out = tmp_path / f"{name}.h5"
    args = ["generate", "--env", row["env"], "--out", out]
    if row["preset"]:
        args += ["--preset", row["preset"]]
    r = cli(*args)  # defaults: the canonical sizes and seed
    assert r.exit_code == 0, r.output
    assert f"canonical {name} data (fingerprint {row['fingerprint'][:12]}…)" in r.output, (
        f"{name} no longer regenerates to its recorded fingerprint: {r.output}")
    prefix = make(row, tmp_path / "prefix.h5", prefix_sizes(row))
    for split, n in prefix_sizes(row).items():
        if n:
            np.testing.assert_array_equal(h5io.read(out, split, limit=n).frames,
                                          h5io.read(prefix, split).frames)

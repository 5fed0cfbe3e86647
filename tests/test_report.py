"""The results layer on made-up run folders: any data set, any model, no code change; the page
in a real browser; the report never destroys results; `report` needs no torch."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kvae_bench import references, rundir
from kvae_bench.cli import main
from kvae_bench.report import tidy

BOX_FP = references.datasets_csv()["box"]["fingerprint"]  # the canonical box data
RANDOM = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PLANNING = (1, 3, 5, 7, 9, 11, 13, 15)
STEPS = 16


def fake_run(root: Path, dataset: str, model: str, seed: int, methods: tuple[str, ...],
             scale: float, trivial: str = "walls", examples: bool = True,
             fingerprint: str | None = None, name: str | None = None) -> Path:
    """A run folder as `train` + `evaluate` leave it, with made-up scores: method i at level
    lvl scores scale * (1 + i) * (1 + lvl) / 100 + seed / 1e4."""
    fingerprint = fingerprint or (BOX_FP if dataset == "box" else "f" * 64)
    run = root / (name or f"{model}-{dataset}-s{seed}")
    run.mkdir(parents=True)
    rundir.write_config(run, {"model": model, "model_config": {}, "train_config": {},
                              "data": f"/data/{dataset}.h5", "data_fingerprint": fingerprint,
                              "seed": seed})

    def score(i, lvl):
        return scale * (1 + i) * (1 + lvl) / 100 + seed / 1e4

    imputation, trivial_rows = [], []
    for protocol, levels in (("random", RANDOM), ("planning", PLANNING)):
        for lvl in levels:
            for i, method in enumerate(methods):
                imputation.append({"protocol": protocol, "level": lvl, "method": method,
                                   "hamming": score(i, lvl), "position_error": 10 * score(i, lvl)})
            trivial_rows.append({"protocol": protocol, "level": lvl, "method": trivial,
                                 "hamming": 0.0234})
    rundir.write_metrics(run, {
        "run": str(run), "model": model, "env": dataset.split("-")[0], "dataset": dataset,
        "seed": seed, "epoch": 2, "code_version": "abc123", "data_fingerprint": fingerprint,
        "mask_fingerprint": "m" * 64, "device": "cpu", "seconds": 6.0,
        "training": [{"device": "cpu", "epochs": 2, "seconds": 30.0}],
        "imputation": imputation, "trivial": trivial, "trivial_predictor": trivial_rows,
        "generation": {"n_observed": 4,
                       "hamming_per_step": [score(0, s) for s in range(1, STEPS + 1)],
                       "trivial_hamming_per_step": [0.0234] * STEPS,
                       "position_error_per_step": [1.0 + s for s in range(STEPS)]},
        "examples": {"mask": ["planning", 7], "n": 2},
        "elbo": {"elbo": -10.0 - seed, "log_px": -9.0}, "probe_r2": 0.9,
        "reconstruction_hamming": 0.001})
    if examples:
        rng = np.random.default_rng(seed)
        true = (rng.random((2, 20, 8, 8)) > 0.8).astype(np.uint8)
        arrays = {"true": true, "mask": np.ones((2, 20), np.float32),
                  "generated": true[:, 4:]}
        arrays.update({m: true for m in methods})
        rundir.write_examples(run, arrays)
    return run


@pytest.fixture
def runs(tmp_path):
    """box: kvae (2 seeds), ae_rnn, vae_rnn; a made-up env `lava-2030` (preset 2030) with a
    made-up fourth model `ghost` and an "empty" trivial predictor: nothing in the code knows
    either name."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        fake_run(root, "box", "kvae", seed, ("filtered", "smoothed"), 0.5)
    fake_run(root, "box", "ae_rnn", 0, ("imputed",), 0.8)
    fake_run(root, "box", "vae_rnn", 0, ("imputed",), 0.7)
    fake_run(root, "lava-2030", "kvae", 0, ("filtered", "smoothed"), 0.6, trivial="empty")
    for seed in (0, 1, 2):
        fake_run(root, "lava-2030", "ghost", seed, ("dreamed",), 0.9, trivial="empty")
    return root


def report(runs, out, *extra):
    return CliRunner().invoke(main, ["report", "--runs", str(runs), "--out", str(out), *extra])


def read_table(out):
    with open(out / "table.csv") as f:
        return list(csv.DictReader(f))


def test_any_dataset_and_model_get_sections_columns_and_rows(runs, tmp_path):
    out = tmp_path / "out"
    r = report(runs, out)
    assert r.exit_code == 0, r.output
    rows = read_table(out)
    assert {r["env"] for r in rows} == {"box", "lava-2030"}
    ghost = [r for r in rows if r["model"] == "ghost" and r["metric"] == "hamming"
             and r["protocol"] == "planning" and r["level"] == "15"]
    assert len(ghost) == 1 and ghost[0]["n"] == "3" and ghost[0]["method"] == "dreamed"
    # mean over the 3 seeds of 0.9 * 16 / 100 + seed / 1e4
    assert float(ghost[0]["mean"]) == pytest.approx(0.9 * 16 / 100 + 1e-4, rel=1e-5)
    # the trivial predictor is deterministic: one row per data set, n = 1, named by the env
    trivial = [r for r in rows if r["model"] in ("walls", "empty") and r["metric"] == "hamming"
               and r["protocol"] == "random" and r["level"] == "0.5"]
    assert sorted((r["env"], r["model"], r["n"]) for r in trivial) == [
        ("box", "walls", "1"), ("lava-2030", "empty", "1")]
    readme = (out / "README.md").read_text()
    assert "## lava-2030" in readme and "ghost dreamed" in readme
    assert "## box" in readme and "kvae smoothed (Fraccaro et al. 2017)" in readme
    lava = readme[readme.index("## lava-2030"):]
    assert "Fraccaro" not in lava  # the paper's references are for box only
    header = next(line for line in lava.splitlines() if line.startswith("| random p |"))
    assert header.endswith("| empty |")  # the env's trivial predictor, last column
    assert (out / "figures" / "lava-2030.png").stat().st_size > 1000
    assert (out / "videos" / "lava-2030-ghost.gif").read_bytes()[:3] == b"GIF"
    html = (out / "index.html").read_text()
    assert 'id="dataset-lava-2030"' in html and 'id="dataset-box"' in html
    # the summary before the notes and data sets: each data set's models, the KVAE's smoothed
    # first and the trivial predictor last, at random p = 0.5 and planning k = 15
    summary = readme[readme.index("## Summary"):readme.index("## box")]
    lines = [line for line in summary.splitlines() if line.startswith("| box |")]
    assert [line.split(" | ")[1] for line in lines] == [
        "kvae smoothed", "kvae filtered", "ae_rnn imputed", "vae_rnn imputed", "walls"]
    cells = lines[0].strip("| ").split(" | ")  # kvae smoothed
    kvae = [r for r in rows if r["env"] == "box" and r["model"] == "kvae"
            and r["method"] == "smoothed" and r["metric"] in ("hamming", "position_error")]
    want = {(r["protocol"], r["level"], r["metric"]): r for r in kvae}
    assert cells[2].split(" ± ")[0] == f"{float(want['random', '0.5', 'hamming']['mean']):.4f}"
    assert cells[3].split(" ± ")[0] == f"{float(want['planning', '15', 'hamming']['mean']):.4f}"
    assert cells[4].split(" ± ")[0] == (
        f"{float(want['planning', '15', 'position_error']['mean']):.2f}")
    assert 'id="summary"' in html and html.count("data-dataset=") == 2


def test_levels_sort_numerically_and_the_csv_round_trips(runs, tmp_path):
    out = tmp_path / "out"
    assert report(runs, out).exit_code == 0
    rows = read_table(out)
    steps = [int(r["level"]) for r in rows if r["env"] == "box" and r["model"] == "kvae"
             and r["protocol"] == "generation" and r["metric"] == "hamming"]
    assert steps == list(range(1, STEPS + 1))  # not 1, 10, 11, ..., 2
    planning = [r["level"] for r in rows if r["env"] == "box" and r["model"] == "kvae"
                and r["method"] == "smoothed" and r["protocol"] == "planning"
                and r["metric"] == "hamming"]
    assert planning == [str(k) for k in PLANNING]
    keys = [(r["env"], r["model"], r["method"], r["protocol"],
             references.level_key(references.parse_level(r["level"])), r["metric"])
            for r in rows]
    assert keys == sorted(keys)


def test_tidy_means_and_stds():
    a = {"dataset": "d", "model": "m", "trivial": "walls", "seed": 0,
         "imputation": [{"protocol": "random", "level": 0.5, "method": "x", "hamming": 0.1}],
         "trivial_predictor": [], "generation": {}, "data_fingerprint": "a"}
    b = {**a, "seed": 1,
         "imputation": [{"protocol": "random", "level": 0.5, "method": "x", "hamming": 0.3}]}
    (row,) = tidy([a, b])
    assert row["mean"] == pytest.approx(0.2) and row["std"] == pytest.approx(0.1414213562)
    assert row["n"] == 2 and row["level"] == 0.5


def test_claims_are_checked_from_data():
    """The paper's three Figure-3 claims on a table made from the references themselves:
    KVAE smoothed at 1.2 x the paper, filtered and AE-RNN as published, VAE-RNN doubled."""
    refs = references.load_references()
    scale = {"kvae/smoothed": 1.2, "kvae/filtered": 1.0, "ae_rnn/imputed": 1.0,
             "vae_rnn/imputed": 2.0}
    key = {(r["env"], f"{r['model']}/{r['method']}", r["protocol"],
            references.level_key(r["level"]), r["metric"]): r["value"] for r in refs
           if r["source"].startswith("Fraccaro et al. 2017, Figure 3")}
    ours = {k: v * scale[k[1]] for k, v in key.items()}
    checks = {c["kind"]: c for c in references.check_claims(references.load_claims(), ours, key)}
    within = checks["within_reference"]
    assert all(lv["value"] == pytest.approx(1.2) for lv in within["levels"])
    assert (within["passed"], within["counted"]) == (13, 13)  # random 1.0 shown, not counted
    ratio = checks["ratio_vs_reference"]
    assert (ratio["passed"], ratio["counted"]) == (13, 13)
    below = {(lv["protocol"], lv["level"]) for lv in checks["below"]["levels"] if lv["ok"]}
    assert ("random", 0.7) in below and ("random", 0.1) not in below
    # without the baselines the comparison is unknown, not false
    only_kvae = {k: v for k, v in ours.items() if k[1].startswith("kvae")}
    c = {c["kind"]: c for c in references.check_claims(references.load_claims(), only_kvae,
                                                        key)}
    assert c["below"]["counted"] == 0 and all(lv["ok"] is None for lv in c["below"]["levels"])


def test_report_refuses_to_destroy_results(runs, tmp_path):
    out = tmp_path / "out"
    assert report(runs, out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def unchanged():
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    # no readable run: an error, nothing written
    empty = tmp_path / "empty-runs"
    (empty / "r1").mkdir(parents=True)
    (empty / "r1" / "metrics.json").write_text("x")
    r = report(empty, out)
    assert r.exit_code == 1 and "no readable run" in r.output and unchanged()
    # fewer runs than the report it would replace: refused unless --force
    fewer = tmp_path / "fewer"
    fake_run(fewer, "box", "kvae", 0, ("filtered", "smoothed"), 0.5)
    r = report(fewer, out)
    assert r.exit_code == 1 and "--force" in r.output and "lava-2030/ghost/s0" in r.output
    assert unchanged()
    assert report(fewer, out, "--force").exit_code == 0
    assert {r["env"] for r in read_table(out)} == {"box"}
    # a folder with foreign files (a project root) is never written into
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "README.md").write_text("my project")
    r = report(runs, foreign)
    assert r.exit_code == 1 and "did not write" in r.output
    assert [p.name for p in foreign.iterdir()] == ["README.md"]
    assert (foreign / "README.md").read_text() == "my project"


def test_damaged_metrics_are_skipped_by_name(runs, tmp_path):
    bad = fake_run(runs, "box", "vae_rnn", 7, ("imputed",), 0.7)
    m = json.loads((bad / "metrics.json").read_text())
    m["imputation"][0]["hamming"] = "oops"
    (bad / "metrics.json").write_text(json.dumps(m))
    garbage = runs / "garbage"
    garbage.mkdir()
    (garbage / "metrics.json").write_text("{not json")
    out = tmp_path / "out"
    r = report(runs, out)
    assert r.exit_code == 0, r.output
    assert "vae_rnn-box-s7" in r.output and "garbage" in r.output and "Traceback" not in r.output
    assert "vae_rnn-box-s7" in (out / "README.md").read_text()  # listed under Skipped


def test_figures_and_videos_of_data_sets_no_longer_shown_are_removed(tmp_path, caplog):
    root = tmp_path / "runs"
    fake_run(root, "box", "kvae", 0, ("smoothed",), 0.5)
    gone = fake_run(root, "lava-2030", "ghost", 0, ("dreamed",), 0.9, trivial="empty")
    out = tmp_path / "out"
    assert report(root, out).exit_code == 0
    assert (out / "figures" / "lava-2030.png").is_file()
    assert (out / "videos" / "lava-2030-ghost.gif").is_file()
    (gone / "EXCLUDED.md").write_text("a reason")
    assert report(root, out, "--force").exit_code == 0
    assert f"removed {out / 'figures' / 'lava-2030.png'}: no data set" in caplog.text
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["box.png"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["box-kvae.gif"]


def test_an_excluded_run_is_listed_with_its_reason_and_counted_nowhere(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "box", "kvae", 0, ("smoothed",), 0.5)
    bad = fake_run(root, "box", "kvae", 1, ("smoothed",), 5.0)
    (bad / "EXCLUDED.md").write_text("codes not linear in the position (probe R² 0.54)\n\nmore")
    out = tmp_path / "out"
    r = report(root, out)
    assert r.exit_code == 0, r.output
    assert "excluded" in r.output and "probe R² 0.54" in r.output
    rows = [r for r in read_table(out) if r["model"] == "kvae" and r["metric"] == "hamming"]
    assert rows and all(r["n"] == "1" for r in rows)  # seed 1 is in no mean
    readme = (out / "README.md").read_text()
    assert "kvae-box-s1: codes not linear in the position (probe R² 0.54)" in readme
    assert "more" not in readme


def test_unfinished_runs_and_scores_of_an_earlier_epoch_are_left_out_and_say_why(tmp_path):
    """A run stopped before its last epoch, evaluated or not, and one scored at an earlier
    epoch than it trained (resumed with --no-evaluate) are named, with the command that mends
    each, and counted in no mean."""
    root = tmp_path / "runs"
    fake_run(root, "box", "kvae", 0, ("smoothed",), 0.5)

    def trained(name, logged, epochs, scored=None):
        run = root / name
        if scored:  # metrics.json of epoch 2 (fake_run's)
            fake_run(root, "box", "kvae", 5 + len(list(root.iterdir())), ("smoothed",), 9.0,
                     name=name)
        else:
            run.mkdir()
        rundir.write_config(run, {"model": "kvae", "model_config": {},
                                  "train_config": {"epochs": epochs}, "data": "/data/box.h5",
                                  "data_fingerprint": BOX_FP, "seed": 9})
        rundir.write_log(run, [{"epoch": e} for e in range(1, logged + 1)])

    trained("half", 3, 10)
    trained("done", 10, 10)
    trained("half_scored", 3, 10, scored=True)
    trained("scored_early", 10, 10, scored=True)
    trained("finished", 2, 2, scored=True)  # scored at its last epoch: counted
    out = tmp_path / "out"
    r = report(root, out)
    assert r.exit_code == 0, r.output
    readme = (out / "README.md").read_text()
    assert f"half: training unfinished, epoch 3 of 10 (finish it with `kvae-bench train " \
           f"--resume --out {root / 'half'}`)" in readme
    assert f"done: no metrics.json (run `kvae-bench evaluate {root / 'done'}`)" in readme
    assert "half_scored: skipped, training unfinished, epoch 3 of 10, scored at epoch 2" \
        in readme
    assert f"scored_early: skipped, metrics.json scores epoch 2, but the run trained 10 " \
           f"(score it again with `kvae-bench evaluate {root / 'scored_early'}`; should that " \
           f"score epoch 2 again, finish it with `kvae-bench train --resume --out " \
           f"{root / 'scored_early'}`)" in readme
    assert f"{root / 'finished'}:" not in readme.split("## Skipped")[1]
    rows = [r for r in read_table(out) if r["model"] == "kvae" and r["metric"] == "hamming"]
    assert rows and all(r["n"] == "2" for r in rows)  # seed 0 and `finished`
    # just scored from a checkpoint that lags its log (stopped while saving): resume, not
    # evaluate again
    assert rundir.stale_reason(root / "scored_early", 2, fresh=True) == (
        f"its checkpoint is at epoch 2 but its log reaches 10 (stopped while saving): finish "
        f"it with `kvae-bench train --resume --out {root / 'scored_early'}`")
    # a run being trained is named as such, not sent to be resumed
    with rundir.training_lock(root / "half"):
        r = report(root, out)
    assert r.exit_code == 0, r.output
    assert f"half: being trained by pid {os.getpid()} on " in (out / "README.md").read_text()
    # a published run whose scores went stale: the refusal says why it is left out
    config = rundir.read_config(root / "finished")
    config["train_config"]["epochs"] = 3  # resumed to a third epoch with --no-evaluate
    rundir.write_config(root / "finished", config)
    rundir.write_log(root / "finished", [{"epoch": e} for e in (1, 2, 3)])
    r = report(root, out)
    assert r.exit_code == 1 and "would be missing" in r.output
    assert "Left out this time: " in r.output and "finished: skipped, metrics.json scores " \
        "epoch 2, but the run trained 3" in r.output


def test_report_and_help_never_import_torch(runs, tmp_path):
    """Block torch (and the models) and run `--help` and `report` in a fresh interpreter."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), *sys.path])}
    for args in (["--help"], ["report", "--help"],
                 ["report", "--runs", str(runs), "--out", str(tmp_path / "out")]):
        r = subprocess.run([sys.executable, "-m", "kvae_bench.cli", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stderr)
    assert (tmp_path / "out" / "index.html").exists()
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0  # the blocker works


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                    reason="Debian's chromium is not installed (CI installs it)")
def test_page_in_a_real_browser(runs, tmp_path):
    from browser import check_page  # tests/browser.py

    out = tmp_path / "out"
    assert report(runs, out).exit_code == 0
    result = check_page(out / "index.html", screenshot=tmp_path / "page.png",
                        cells=[("lava-2030", "planning k", "15", "ghost dreamed")])
    assert result["console_errors"] == []
    assert result["images"] and all(w > 0 for _, w in result["images"]), result["images"]
    assert {Path(src).name for src, _ in result["images"]} >= {
        "box.png", "lava-2030.png", "box-kvae.gif", "lava-2030-ghost.gif"}
    assert set(result["sections"]) == {"box", "lava-2030"}
    # a cell on the page equals table.csv
    row = next(r for r in read_table(out) if r["env"] == "lava-2030" and r["model"] == "ghost"
               and r["protocol"] == "planning" and r["level"] == "15"
               and r["metric"] == "hamming")
    (cell,) = result["cells"]
    assert cell.split(" ± ")[0] == f"{float(row['mean']):.4f}"
    assert (tmp_path / "page.png").stat().st_size > 1000


def test_other_data_copies_and_odd_names_are_kept_apart(runs, tmp_path):
    """A box run on other data is its own data set (no paper references); a copy of a run is
    reported once; a name that is not a plain file name is refused."""
    fake_run(runs, "box", "kvae", 0, ("filtered", "smoothed"), 0.9, fingerprint="e" * 64,
             name="kvae-box-other-data")
    import shutil

    shutil.copytree(runs / "ae_rnn-box-s0", runs / "copies" / "ae_rnn-box-s0")
    fake_run(runs, "../../escape", "kvae", 0, ("smoothed",), 0.5, name="odd")
    out = tmp_path / "out"
    r = report(runs, out)
    assert r.exit_code == 0, r.output
    rows = read_table(out)
    assert {r["env"] for r in rows} == {"box", "box@eeeeeeee", "lava-2030"}
    other = next(r for r in rows if r["env"] == "box@eeeeeeee" and r["model"] == "kvae"
                 and r["method"] == "smoothed" and r["protocol"] == "random"
                 and r["level"] == "0.5" and r["metric"] == "hamming")
    assert other["n"] == "1"
    readme = (out / "README.md").read_text()
    section = readme[readme.index("## box@eeeeeeee"):readme.index("## lava-2030")]
    assert "Fraccaro" not in section
    assert "copies/ae_rnn-box-s0: skipped, the same data set, model and seed" in r.output
    assert "is not a plain name" in r.output
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.rglob("escape*"))


def test_default_layout_and_an_interrupted_report(tmp_path, monkeypatch):
    """`kvae-bench report` with its defaults (runs inside the report folder) works in a fresh
    folder, and a folder a report started writing stays the report's."""
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "results" / "runs", "box", "kvae", 0, ("smoothed",), 0.5)
    r = CliRunner().invoke(main, ["report"])
    assert r.exit_code == 0, r.output
    half = tmp_path / "half"
    rundir.mark_report_dir(half)
    (half / "figures").mkdir()
    assert report(tmp_path / "results" / "runs", half).exit_code == 0


def test_a_run_relabelled_by_new_canonical_data_is_not_lost(tmp_path):
    """A generator change gives a data set new canonical data: its old runs are then shown as
    `name@<fingerprint>`, still reported, so the next report needs no --force. A run on other
    data is no stand-in for a lost one, nor another model; a report that did not record
    fingerprints is matched on labels."""
    from kvae_bench.errors import UserError
    from kvae_bench.report import check_no_runs_lost

    old, new = "5b0b88ca" + "0" * 56, "5adbca09" + "0" * 56
    previous = {"runs": [{"dataset": "polygon", "model": "kvae", "seed": s,
                          "data_fingerprint": old} for s in (0, 1)]}
    check_no_runs_lost(previous, {("polygon@5b0b88ca", "kvae", s, old) for s in (0, 1)},
                       tmp_path)
    with pytest.raises(UserError, match="1 run.*polygon/kvae/s1"):
        check_no_runs_lost(previous, {("polygon@5b0b88ca", "kvae", 0, old),
                                      ("polygon", "kvae", 1, new)}, tmp_path)
    with pytest.raises(UserError, match="polygon/kvae/s0"):
        check_no_runs_lost(previous, {("polygon@5b0b88ca", "dmm", 0, old),
                                      ("polygon@5b0b88ca", "kvae", 1, old)}, tmp_path)
    unrecorded = {"runs": [{"dataset": "polygon", "model": "kvae", "seed": 0}]}
    check_no_runs_lost(unrecorded, {("polygon", "kvae", 0, new)}, tmp_path)
    with pytest.raises(UserError, match="polygon/kvae/s0"):
        check_no_runs_lost(unrecorded, {("polygon@5b0b88ca", "kvae", 0, old)}, tmp_path)


def test_a_run_no_better_than_the_static_scene_is_flagged_everywhere(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "box", "kvae", 0, ("smoothed",), 0.5)
    fake_run(root, "box", "kvae", 1, ("smoothed",), 2.0)  # p = 0.5: 0.0301, walls 0.0234
    out = tmp_path / "out"
    r = report(root, out)
    assert r.exit_code == 0, r.output
    assert "kvae-box-s1 failed a check: smoothed imputes random p = 0.5 at Hamming 0.0301, " \
           "1.29 of the trivial predictor walls's 0.0234: barely better than drawing the " \
           "static scene, or worse" in r.output
    assert "kvae-box-s0 failed" not in r.output
    readme = (out / "README.md").read_text()
    assert "## Runs that failed a training check" in readme
    assert readme.count("kvae-box-s1: smoothed imputes random p = 0.5") == 2  # top, section
    top = (out / "index.html").read_text().split('id="failed-checks"')[1].split("</section>")[0]
    assert "kvae-box-s1: smoothed imputes" in top
    summary = json.loads((out / "summary.json").read_text())
    assert [w.split(": ")[0] for w in summary["warnings"]] == [str(root / "kvae-box-s1")]
    rows = [r for r in read_table(out) if r["model"] == "kvae" and r["metric"] == "hamming"]
    assert rows and all(r["n"] == "2" for r in rows)  # flagged, still counted: never dropped


def test_the_training_checks(tmp_path):
    from kvae_bench.sanity import run_warnings

    def metrics(imputed=0.006, recon=0.0001, elbo=-3.0):
        return {"trivial": "walls",
                "trivial_predictor": [{"protocol": "random", "level": lvl, "method": "walls",
                                       "hamming": 0.0234} for lvl in (0.5, 1.0)],
                "imputation": [{"protocol": "random", "level": 0.5, "method": "imputed",
                                "hamming": imputed},
                               {"protocol": "random", "level": 1.0, "method": "imputed",
                                "hamming": 0.03}],  # p = 1.0 is not judged
                "generation": {"hamming_per_step": [0.01, 0.02]},
                "elbo": {"elbo": elbo}, "reconstruction_hamming": recon}

    assert run_warnings(metrics()) == []
    assert run_warnings({"imputation": []}) == []  # nothing to judge
    near = run_warnings(metrics(imputed=0.0215))
    assert len(near) == 1 and "0.92 of the trivial predictor walls's" in near[0]
    assert run_warnings(metrics(imputed=0.0200)) == []  # 0.85 of walls: weak, not flagged
    gone = metrics()
    gone["imputation"][0].update(no_ball_fraction=0.8, position_error=float("nan"))
    assert run_warnings(gone) == ["imputed imputes random p = 0.5 with no object in 80% of the "
                                  "missing frames: collapse, or the average frame"]
    off = metrics(imputed=0.0234)
    off["imputation"][0].update(no_ball_fraction=0.0, position_error=1.57)
    assert run_warnings(off)[0].endswith("(position error 1.57 px: the object is drawn, but off)")
    off["imputation"][0].update(no_ball_fraction=0.9)  # found in 10%: not "drawn"
    assert [w.endswith("or worse") for w in run_warnings(off)] == [True, False]
    recon = run_warnings(metrics(recon=0.015))
    assert len(recon) == 1 and recon[0].startswith("reconstructs its input at Hamming 0.0150")
    assert run_warnings(metrics(elbo=float("nan")))[0].startswith(
        "1 of its 6 scores is not finite")
    # as read back: metrics.json writes NaN and inf as null
    run = tmp_path / "run"
    diverged = {**metrics(elbo=float("inf"), recon=float("nan")), "dataset": "box",
                "env": "box", "model": "kvae", "seed": 0, "epoch": 1}
    rundir.write_metrics(run, diverged)
    read = rundir.read_metrics(run)
    assert read["elbo"]["elbo"] is None
    assert run_warnings(read) == ["2 of its 6 scores are not finite (NaN or inf, null in "
                                  "metrics.json): it diverged"]
    del diverged["reconstruction_hamming"]  # a model without reconstruct(): nothing to judge
    assert run_warnings(diverged)[0].startswith("1 of its 5 scores is not finite")

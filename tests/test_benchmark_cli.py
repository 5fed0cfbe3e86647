"""Baselines, evaluate and report through the CLI on tiny trained models of all three kinds."""

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from kvae_bench import models
from kvae_bench.cli import main

OPTS = ["--set", "batch_size=16", "--set", "eval_limit=16", "--set", "warmup_steps=2",
        "--no-evaluate"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data = root / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(data), "--train", "48", "--test",
                                  "12", "--workers", "1"])
    assert r.exit_code == 0, r.output
    runs = root / "runs"
    for model in models.BUILTIN:
        for seed in (0, 1) if model == "kvae" else (0,):
            out = runs / f"{model}-box-s{seed}"
            extra = ["--set", "frozen_dynamics_epochs=0"] if model == "kvae" else []
            r = CliRunner().invoke(main, ["train", "--model", model, "--data", str(data),
                                          "--out", str(out), "--epochs", "1", "--seed",
                                          str(seed), "--device", "cpu", *OPTS, *extra])
            assert r.exit_code == 0, r.output
            if seed == 0:
                r = CliRunner().invoke(main, ["evaluate", str(out), "--device", "cpu"])
                assert r.exit_code == 0, r.output
    # and train evaluates at the end by default
    out = runs / "kvae-box-s1"
    r = CliRunner().invoke(main, ["train", "--model", "kvae", "--data", str(data), "--out",
                                  str(out), "--epochs", "2", "--seed", "1", "--device", "cpu",
                                  "--resume", *OPTS[:-1]])
    assert r.exit_code == 0, r.output
    assert "metrics.json" in r.output and (out / "metrics.json").exists()
    return root


@pytest.mark.parametrize("name", ["ae_rnn", "vae_rnn"])
def test_baselines_feed_back_their_prediction(name):
    torch.manual_seed(0)
    m = models.build(name, 16)
    x = (torch.rand(2, 6, 16, 16) > 0.8).float()
    a, _ = m.encode(x)
    mask = torch.ones(2, 6)
    mask[:, 3] = 0
    mean, var, used = m.predict(a, mask)
    torch.testing.assert_close(used[:, 3], mean[:, 3])  # the prediction replaces the code
    torch.testing.assert_close(used[:, 2], a[:, 2])
    a2 = a.clone()
    a2[:, 3] = 50.0  # what the missing frame's code was does not matter
    torch.testing.assert_close(m.predict(a2, mask)[2], used)
    full, _, _ = m.predict(a, torch.ones(2, 6))  # the one-pass path equals the step loop
    torch.testing.assert_close(full[:, :4], mean[:, :4], atol=1e-5, rtol=1e-5)
    assert (var > 0).all()
    gen = m.generate(x, 3, 3)
    torch.testing.assert_close(gen, m.impute(x, torch.tensor([[1.0] * 3 + [0.0] * 3] * 2))[
        "imputed"][:, 3:], atol=1e-5, rtol=1e-5)
    loss, logs = m.loss(x, torch.ones(2, 6))
    loss.backward()
    assert torch.isfinite(loss) and "log_px" in logs


def test_metrics_json(trained):
    m = json.loads((trained / "runs" / "kvae-box-s0" / "metrics.json").read_text())
    assert m["schema"] == "kvae-bench/metrics" and m["model"] == "kvae" and m["env"] == "box"
    methods = {r["method"] for r in m["imputation"]}
    assert methods == {"smoothed", "filtered"}
    levels = {(r["protocol"], r["level"]) for r in m["imputation"]}
    assert len(levels) == 10 + 8
    assert all(0 <= r["hamming"] <= 1 for r in m["imputation"])
    assert len(m["generation"]["hamming_per_step"]) == 16
    for key in ("data_fingerprint", "mask_fingerprint", "code_version", "config", "elbo",
                "probe_r2", "reconstruction_hamming", "max_pairwise_hamming"):
        assert key in m
    b = json.loads((trained / "runs" / "ae_rnn-box-s0" / "metrics.json").read_text())
    assert {r["method"] for r in b["imputation"]} == {"imputed"}
    assert b["mask_fingerprint"] == m["mask_fingerprint"]  # identical masks for every model
    assert (trained / "runs" / "kvae-box-s0" / "examples.npz").exists()
    assert [(t["device"], t["epochs"]) for t in m["training"]] == [("cpu", 1)]


def test_report_tables_figures_and_skips(trained, tmp_path):
    runs = trained / "runs"
    broken = runs / "broken-run"
    broken.mkdir(exist_ok=True)
    (broken / "metrics.json").write_text("{not json")
    out = tmp_path / "results"
    out.mkdir()
    (out / "NOTES.md").write_text("How these numbers were made: by hand.")
    r = CliRunner().invoke(main, ["report", "--runs", str(runs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "broken-run" in r.output and "skipped" in r.output
    with open(out / "table.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ("env", "model", "method", "protocol", "level",
                                            "metric", "mean", "std", "n")
        rows = list(reader)
    row = next(r for r in rows if r["model"] == "kvae" and r["method"] == "smoothed"
               and r["protocol"] == "random" and r["level"] == "0.5" and r["metric"] == "hamming")
    seeds = [json.loads((runs / f"kvae-box-s{s}" / "metrics.json").read_text()) for s in (0, 1)]
    values = [next(x["hamming"] for x in m["imputation"] if x["method"] == "smoothed"
                   and x["protocol"] == "random" and x["level"] == 0.5) for m in seeds]
    assert row["n"] == "2" and float(row["mean"]) == pytest.approx(sum(values) / 2, rel=1e-5)
    walls = [r for r in rows if r["model"] == "walls" and r["protocol"] == "random"
             and r["level"] == "0.5"]
    assert len(walls) == 1 and walls[0]["n"] == "1"  # deterministic: once per data set
    assert any(r["protocol"] == "generation" for r in rows)
    readme = (out / "README.md").read_text()
    assert "How these numbers were made: by hand." in readme
    (fig,) = (out / "figures").glob("box@*.png")  # tiny data, not the canonical box
    assert fig.stat().st_size > 1000 and (out / "index.html").exists()
    assert list((out / "videos").glob("box@*-kvae.gif"))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == len(models.BUILTIN) + 1 and summary["problems"]
    kvae1 = next(r for r in summary["runs"] if r["model"] == "kvae" and r["seed"] == 1)
    assert [(t["device"], t["epochs"]) for t in kvae1["training"]] == [("cpu", 2)]


def test_evaluate_errors(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "kvae-bench train" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "not a run directory" in r.output
    r = CliRunner().invoke(main, ["benchmark", "--models", "kvae,gru"])
    assert r.exit_code == 1 and "unknown model 'gru'" in r.output


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_stopped_run_stops_the_grid(monkeypatch, tmp_path, stop):
    """Ctrl-C (KeyboardInterrupt) and SIGTERM (the CLI's handler raises SystemExit) end the
    grid; any other error fails that run only."""
    from kvae_bench import benchmark, train

    spec = benchmark.RunSpec("kvae-box-s0", "box", "kvae_bench.models.kvae:KVAE", "kvae", 0,
                             "data/box.h5", "0" * 64, {"epochs": 1})

    def interrupted(*args, **kwargs):
        raise stop(143) if stop is SystemExit else stop()

    monkeypatch.setattr(train, "train", interrupted)
    with pytest.raises(stop):
        benchmark.execute(spec, tmp_path / "run", "cpu", None, progress=False)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train, "train", broken)
    result = benchmark.execute(spec, tmp_path / "run", "cpu", None, progress=False)
    assert result["status"] == "failed" and "out of memory" in result["error"]


def test_an_interrupted_grid_says_how_to_go_on(monkeypatch, tmp_path):
    from kvae_bench import benchmark

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(benchmark, "run_grid", interrupted)
    r = CliRunner().invoke(main, ["benchmark", "--profile", "smoke", "--env", "box",
                                  "--models", "ae_rnn", "--device", "cpu", "--out", "g"])
    assert r.exit_code == 1 and "Aborted!" in r.output
    assert "interrupted: rerun the same command to go on" in r.output

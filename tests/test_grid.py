"""The benchmark grid: the local executor, --jobs, and Ray on a two-node local cluster give the
same runs; a second invocation skips everything; a run whose worker is killed is not lost."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvae_bench import rundir
from kvae_bench.benchmark import RunSpec, execute, plan, run_grid
from kvae_bench.cli import main

# CI installs Ray ('.[test,ray]'): there the tests must run; elsewhere they need it installed
ray = __import__("ray") if os.environ.get("CI") else pytest.importorskip("ray")
SCORES = ("imputation", "generation", "elbo", "trivial_predictor", "reconstruction_hamming")
GRID = ["benchmark", "--profile", "smoke", "--env", "box,pong", "--models", "kvae,ae_rnn",
        "--seeds", "0,1",
        "--cpus-per-run", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)  # a second node on loopback
    yield c
    ray.shutdown()
    c.shutdown()


def metrics_of(runs: Path) -> dict:
    return {p.name: {k: json.loads((p / "metrics.json").read_text()).get(k) for k in SCORES}
            for p in sorted(runs.iterdir())}


def test_local_and_ray_give_the_same_runs_and_a_rerun_skips_them(tmp_path, monkeypatch,
                                                                 cluster):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [*GRID, "--out", "local"])
    assert r.exit_code == 0, r.output
    assert "8 done, 0 skipped (finished before), 0 failed" in r.output
    r = CliRunner().invoke(main, [*GRID, "--out", "onray", "--executor", "ray", "--address",
                                  cluster.address, "--worker-dir", str(tmp_path / "workers")])
    assert r.exit_code == 0, r.output
    local = metrics_of(tmp_path / "local" / "runs")
    remote = metrics_of(tmp_path / "onray" / "runs")
    assert len(local) == 8 and local == remote  # deterministic on CPU, wherever it ran
    # the driver holds every run's small files; checkpoints stay with the workers
    for run in (tmp_path / "onray" / "runs").iterdir():
        assert sorted(p.name for p in run.iterdir()) == sorted(rundir.SMALL_FILES)
    assert len(list((tmp_path / "workers").rglob("ckpt.pt"))) == 8
    rows = (tmp_path / "onray" / "table.csv").read_text()
    assert "pong@" in rows and "box@" in rows
    r = CliRunner().invoke(main, [*GRID, "--out", "onray", "--executor", "ray", "--address",
                                  cluster.address, "--worker-dir", str(tmp_path / "workers")])
    assert r.exit_code == 0 and "0 done, 8 skipped (finished before), 0 failed" in r.output


def test_jobs_run_side_by_side_with_the_same_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["benchmark", "--profile", "smoke", "--env", "box", "--models", "kvae,ae_rnn",
            "--seeds", "0",
            "--cpus-per-run", "1", "--device", "cpu"]
    assert CliRunner().invoke(main, [*args, "--out", "one"]).exit_code == 0
    r = CliRunner().invoke(main, [*args, "--out", "two", "--jobs", "2"])
    assert r.exit_code == 0, r.output
    assert metrics_of(tmp_path / "one" / "runs") == metrics_of(tmp_path / "two" / "runs")


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["kvae"], [0], "smoke", progress=False)
    bad = RunSpec(**{**spec.__dict__, "name": "bad", "options": {**spec.options, "lr": -1.0}})
    outcome = run_grid([bad, spec], tmp_path / "runs", device="cpu", cpus_per_run=1,
                       progress=False)
    assert outcome.done == [spec.name]
    assert [name for name, _ in outcome.failed] == ["bad"] and "lr" in outcome.failed[0][1]


def test_a_run_whose_ray_worker_is_killed_is_not_lost(tmp_path, monkeypatch, cluster):
    """kill -9 the worker process in the middle of training: Ray retries the task, which
    resumes from the checkpoint in --worker-dir, and the run ends with the same scores as
    one that was never interrupted."""
    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["kvae"], [0], "smoke", progress=False)
    spec = RunSpec(**{**spec.__dict__, "options": {**spec.options, "epochs": 6}})
    straight = execute(spec, tmp_path / "straight", "cpu", 1, progress=False)
    assert straight["status"] == "done"
    workers = tmp_path / "workers"
    result = {}
    thread = threading.Thread(target=lambda: result.update(outcome=run_grid(
        [spec], tmp_path / "runs", "ray", device="cpu", cpus_per_run=1,
        address=cluster.address, worker_dir=workers, progress=False)))
    thread.start()
    deadline = time.time() + 120
    while not list(workers.rglob("ckpt.pt")) and time.time() < deadline:
        time.sleep(0.05)
    pids = subprocess.run(["pgrep", "-f", "ray::_remote_run"], capture_output=True,
                          text=True).stdout.split()
    assert pids, "no Ray worker ran the task"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    thread.join(timeout=900)  # generous: a loaded 2-core machine took over 300 s
    assert "outcome" in result, "the grid did not end within 900 s of the kill"
    outcome = result["outcome"]
    assert outcome.done == [spec.name] or outcome.failed  # resumed, or reported
    if outcome.done:
        got = metrics_of(tmp_path / "runs")[spec.name]
        want = {k: json.loads((tmp_path / "straight" / "metrics.json").read_text()).get(k)
                for k in SCORES}
        assert got == want


def test_a_grid_names_each_model_once_and_refuses_impossible_resources(tmp_path, monkeypatch,
                                                                       cluster):
    """A built-in given by path is the same model (same name, same profile options), repeated
    items run once; a run no Ray node can hold is refused before any work."""
    monkeypatch.chdir(tmp_path)
    specs = plan(["box", "box"], ["kvae", "kvae_bench.models.kvae:KVAE"], [0, 0], "smoke",
                 progress=False)
    assert [s.name for s in specs] == ["kvae-box-s0"]
    assert specs[0].options["frozen_dynamics_epochs"] == 0
    r = CliRunner().invoke(main, ["benchmark", "--profile", "smoke", "--env", "box", "--models",
                                  "ae_rnn", "--executor", "ray", "--address", cluster.address,
                                  "--gpus-per-run", "0.25", "--device", "cpu", "--out", "g"])
    assert r.exit_code == 1 and "no Ray node has 1 CPUs and 0.25 GPUs" in r.output


def test_a_grid_never_replaces_a_fuller_report_unless_forced(tmp_path, monkeypatch):
    """Checked before any training: the folder's previous report covered a run that this grid
    would not have."""
    from test_report import fake_run

    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "old" / "runs", "box", "vae_rnn", 7, ("imputed",), 0.5)
    assert CliRunner().invoke(main, ["report", "--runs", "old/runs", "--out", "g"]).exit_code == 0
    args = ["benchmark", "--profile", "smoke", "--env", "box", "--models", "ae_rnn", "--device",
            "cpu", "--out", "g"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "box/vae_rnn/s7" in r.output and "--force" in r.output
    assert not (tmp_path / "g" / "runs").exists()  # nothing trained


def test_a_folder_holding_a_run_on_other_data_stops_the_grid_before_any_work(tmp_path,
                                                                             monkeypatch):
    """E.g. the runs of a data set whose generator changed: resuming them would fail (or mix
    two runs in one folder) hours later."""
    from test_report import fake_run

    monkeypatch.chdir(tmp_path)
    old = fake_run(tmp_path / "g" / "runs", "box", "ae_rnn", 0, ("imputed",), 0.5,
                   fingerprint="0" * 64)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    args = ["benchmark", "--profile", "smoke", "--env", "box", "--models", "ae_rnn",
            "--device", "cpu", "--out", "g"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    error = r.output.splitlines()[-1]  # after "generating data/box_smoke.h5": its fingerprint
    assert error.startswith("Error: ") and "holds another run (data 000000000000" in error
    assert "move it into g/runs/superseded/" in error
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "g" / "runs").iterdir()) == [old.name]


def test_a_run_folder_holding_other_files_stops_the_grid_before_any_work(tmp_path,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)
    mine = tmp_path / "g" / "runs" / spec.name / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    r = CliRunner().invoke(main, ["benchmark", "--profile", "smoke", "--env", "box", "--models",
                                  "ae_rnn", "--device", "cpu", "--out", "g"])
    assert r.exit_code == 1, r.output
    assert r.output.splitlines()[-1] == (
        f"Error: g/runs/{spec.name} holds files that are not a run (no config.json): move "
        "the folder aside, or pass --out elsewhere")
    assert [p.name for p in mine.parent.iterdir()] == ["notes.txt"]


def test_a_grid_run_trained_past_the_grids_epochs_is_scored_not_refused(tmp_path,
                                                                       monkeypatch):
    """Stopped after training, before scoring, with more epochs than this grid asks: the grid
    scores it (resume refuses fewer epochs than trained)."""
    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)
    run = tmp_path / "g" / "runs" / spec.name
    longer = RunSpec(**{**spec.__dict__, "options": {**spec.options,
                                                     "epochs": spec.options["epochs"] + 1}})
    assert execute(longer, run, "cpu", 1, progress=False)["status"] == "done"
    (run / "metrics.json").unlink()
    result = execute(spec, run, "cpu", 1, progress=False)
    assert result["status"] == "done", result
    assert rundir.read_metrics(run)["epoch"] == spec.options["epochs"] + 1


def test_profile_data_of_an_older_generator_is_not_reused(tmp_path, monkeypatch):
    """A smoke or quick file has no canonical fingerprint: its generator version decides."""
    import h5py

    import simulators
    from kvae_bench.errors import UserError

    monkeypatch.chdir(tmp_path)
    plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)  # generates data/box_smoke.h5
    plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)  # and reuses it
    with h5py.File("data/box_smoke.h5", "r+") as f:
        f.attrs["generator_version"] = "0"
    with pytest.raises(UserError, match=f"generator version 0, this code's is "
                                        f"{simulators.GENERATOR_VERSION}: move it away"):
        plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)


def test_a_run_made_with_another_recipe_stops_the_grid_before_any_work(tmp_path, monkeypatch):
    """A finished run whose options differ from the grid's (a recipe or a default changed
    since) would be skipped and published as the grid's; an unfinished one would mix two
    recipes. An option the run's config lacks (added since) counts as its default."""
    import kvae_bench.benchmark as benchmark
    from kvae_bench.benchmark import check_run_folders

    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["ae_rnn"], [0], "smoke", progress=False)
    assert execute(spec, tmp_path / "g" / "runs" / spec.name, "cpu", 1,
                   progress=False)["status"] == "done"
    check_run_folders([spec], tmp_path / "g" / "runs")  # the same recipe: no error
    config = json.loads((tmp_path / "g" / "runs" / spec.name / "config.json").read_text())
    assert config["train_config"]["train_miss_prob"] == 0.0
    del config["train_config"]["train_miss_prob"], config["train_config"]["grad_clip"]
    (tmp_path / "g" / "runs" / spec.name / "config.json").write_text(json.dumps(config))
    check_run_folders([spec], tmp_path / "g" / "runs")  # an older run: defaults
    monkeypatch.setitem(benchmark.MODEL_RECIPES, "ae_rnn", {"train_miss_prob": 0.5})
    r = CliRunner().invoke(main, ["benchmark", "--profile", "smoke", "--env", "box", "--models",
                                  "ae_rnn", "--device", "cpu", "--out", "g"])
    assert r.exit_code == 1, r.output
    error = r.output.splitlines()[-1]
    assert error.startswith("Error: ") and "holds a run made with other options " \
        "(train_miss_prob 0.0, this grid's 0.5): move it out of g/runs" in error
    # only how fast it runs, or how long: not another recipe
    faster = RunSpec(**{**spec.__dict__, "options": {**spec.options, "cuda_graph": False,
                                                     "epochs": 9, "max_bad_steps": 3}})
    check_run_folders([faster], tmp_path / "g" / "runs")
    # a model option; a run a Ray worker would resume is refused too
    wider = RunSpec(**{**spec.__dict__, "options": {**spec.options, "units": 65}})
    with pytest.raises(ValueError, match=r"other options \(units 64, this grid's 65\)"):
        check_run_folders([wider], tmp_path / "g" / "runs")
    refused = execute(wider, tmp_path / "g" / "runs" / spec.name, "cpu", 1, progress=False)
    assert refused["status"] == "failed" and "units 64" in refused["error"]
    # a resume that replaced a training option: the run mixes two recipes
    config["changes"] = [{"at_epoch": 1, "changed": {"lr": 0.001}}]
    (tmp_path / "g" / "runs" / spec.name / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="lr set to 0.001 on resuming at epoch 1"):
        check_run_folders([spec], tmp_path / "g" / "runs")
    # options the model does not take stop the grid, not only that run
    typo = RunSpec(**{**spec.__dict__, "options": {**spec.options, "unit": 5}})
    with pytest.raises(ValueError, match="unknown option 'unit'"):
        check_run_folders([typo], tmp_path / "g" / "runs")


def test_a_run_that_failed_a_training_check_says_so_when_done(tmp_path, monkeypatch, capsys):
    from kvae_bench import benchmark

    monkeypatch.chdir(tmp_path)
    (spec,) = plan(["box"], ["kvae"], [0], "smoke", progress=False)

    def collapsed(spec, run, *args, **kwargs):  # a run whose imputation draws the empty scene
        rows = [{"protocol": "random", "level": 0.5, "method": m, "hamming": 0.0234,
                 "no_ball_fraction": 1.0} for m in ("smoothed", "walls")]
        rundir.write_metrics(run, {
            "dataset": "box", "env": "box", "model": "kvae", "seed": 0, "epoch": 1,
            "trivial": "walls", "imputation": rows[:1], "trivial_predictor": rows[1:],
            "generation": {}})
        return {"name": spec.name, "status": "done", "minutes": 0.1}

    monkeypatch.setattr(benchmark, "execute", collapsed)
    (tmp_path / "runs" / spec.name).mkdir(parents=True)
    outcome = run_grid([spec], tmp_path / "runs", device="cpu", progress=False)
    assert outcome.done == [spec.name]
    err = capsys.readouterr().err
    assert f"done {spec.name} in 0.1 min: smoothed Hamming 0.0234 at p = 0.5" in err
    assert f"warning: {spec.name} failed a check: smoothed imputes random p = 0.5 at Hamming " \
           "0.0234, 1.00 of the trivial predictor walls's 0.0234" in err
    assert f"warning: {spec.name} failed a check: smoothed imputes random p = 0.5 with no " \
           "object in 100% of the missing frames" in err

"""Nothing a user does loses data: racing writers, killed writers, moved data, quiet runs, and
every option explained."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from kvae_bench import h5io, runinfo
from kvae_bench.cli import main


def attrs():
    return {"env": "box", "env_params": "{}", "seed": 0, "dt": 0.2, "steps": 2,
            "image_size": 16, "generator_version": "t", "created_utc": "now"}


def write_small(w: h5io.Writer) -> None:
    for split in h5io.SPLITS:
        w.create_split(split, 1, 2, 16, ("x",))
        w.write(split, 0, np.zeros((1, 2, 16, 16), np.uint8), np.zeros((1, 2, 1), np.float32))


def test_two_writers_racing_for_one_new_file(tmp_path):
    """Both start before the file exists; the first to finish wins, the second fails and
    leaves the winner's file and no partial file behind."""
    path = tmp_path / "d.h5"
    first, second = h5io.Writer(path, attrs()), h5io.Writer(path, {**attrs(), "seed": 1})
    first.__enter__()
    second.__enter__()
    write_small(first)
    write_small(second)
    first.__exit__(None, None, None)
    with pytest.raises(FileExistsError, match="appeared while this command wrote it"):
        second.__exit__(None, None, None)
    assert h5io.read_meta(path)["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def generate_cmd(out):
    return [sys.executable, "-m", "kvae_bench.cli", "generate", "--out", str(out), "--train",
            "20000", "--test", "10", "--workers", "1"]


def wait_for_partial(folder: Path, proc, timeout=60.0) -> list[Path]:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        partial = list(folder.glob(".*.partial-*"))
        if partial:
            return partial
        time.sleep(0.05)
    raise AssertionError("no partial file appeared")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_writer_removes_its_partial_file(tmp_path, sig):
    out = tmp_path / "d.h5"
    proc = subprocess.Popen(generate_cmd(out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,  # as from a terminal: a background
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))  # job ignores
    wait_for_partial(tmp_path, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) != 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig, raised", [(signal.SIGINT, KeyboardInterrupt),
                                         (signal.SIGTERM, SystemExit)])
def test_a_stop_whose_exception_a_finaliser_swallowed_still_stops_the_writer(tmp_path, sig,
                                                                            raised):
    """The CLI's handler removes the partial files, then raises; raised inside a finaliser
    (pymunk's Space.__del__), the exception is only printed. The writer must stop anyway,
    not go on writing into a file that is gone."""
    from simulators.generate import generate

    out = tmp_path / "d.h5"
    runinfo.request_stop(sig)  # as the handler does, its exception lost
    try:
        with pytest.raises(raised):
            generate(out, "box", n_train=120, n_test=4, steps=4, params={"size": "16"},
                     workers=1, progress=False)
    finally:
        runinfo.clear_stop()
    assert list(tmp_path.iterdir()) == []


def test_the_cli_handler_records_the_stop_before_raising():
    from kvae_bench import cli

    try:
        with pytest.raises(KeyboardInterrupt):
            cli._stop(signal.SIGINT, None)
        with pytest.raises(KeyboardInterrupt):  # raised again where the first was swallowed
            runinfo.raise_if_stopped()
    finally:
        runinfo.clear_stop()
    runinfo.raise_if_stopped()  # cleared: nothing raised


def test_a_training_lock_held_elsewhere_refuses_and_a_killed_holders_is_taken_over(tmp_path):
    from kvae_bench import rundir
    from kvae_bench.errors import UserError

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kvae_bench import rundir\n"
         f"with rundir.training_lock({str(tmp_path)!r}):\n"
         "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert rundir.training_holder(tmp_path).startswith(f"pid {holder.pid} on ")
        with pytest.raises(UserError, match=f"is being trained by pid {holder.pid} on "):
            with rundir.training_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".train.lock").exists()  # left by the killed holder ...
    assert rundir.training_holder(tmp_path) is None
    with rundir.training_lock(tmp_path):  # ... and taken over
        assert (tmp_path / ".train.lock").read_text().startswith(f"pid {os.getpid()} on ")
    assert not (tmp_path / ".train.lock").exists()
    # a link in its place is refused, never written through
    victim = tmp_path / "notes.txt"
    victim.write_text("mine")
    (tmp_path / ".train.lock").symlink_to(victim)
    with pytest.raises(UserError, match="cannot take the training lock"):
        with rundir.training_lock(tmp_path):
            pass
    assert victim.read_text() == "mine"


def test_a_killed_writers_partial_file_is_named_and_removed_by_the_next(tmp_path):
    out = tmp_path / "d.h5"
    proc = subprocess.Popen(generate_cmd(out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    (partial,) = wait_for_partial(tmp_path, proc)
    proc.kill()
    proc.wait()
    assert partial.exists() and f".d.h5.partial-{proc.pid}-" in partial.name
    assert runinfo.remove_dead_partials(out) == [partial] and not partial.exists()
    # a live writer's partial file is left alone
    live = runinfo.temp_beside(out)
    assert runinfo.remove_dead_partials(out) == [] and live.exists()


def test_evaluate_finds_moved_data_by_fingerprint(tmp_path, monkeypatch):
    data = tmp_path / "data" / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(data), "--train", "24", "--test", "8",
                                  "--steps", "6", "--size", "16", "--param", "radius=2",
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # the data path typed relative to this folder
    r = CliRunner().invoke(main, ["train", "--data", "data/box.h5", "--out", str(run),
                                  "--epochs", "1", "--set", "batch_size=8", "--device", "cpu",
                                  "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["data"] == str(data.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # evaluate from another folder: found by the absolute path
    r = CliRunner().invoke(main, ["evaluate", str(run), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    moved = tmp_path / "moved.h5"
    shutil.move(data, moved)  # moved away: say where it looked, take it by --data
    r = CliRunner().invoke(main, ["evaluate", str(run), "--device", "cpu"])
    assert r.exit_code == 1 and "pass it with --data" in r.output
    r = CliRunner().invoke(main, ["evaluate", str(run), "--device", "cpu", "--data",
                                  str(moved)])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "metrics.json").read_text())["data"] == str(moved)
    # resuming with the moved file: trained, evaluated on it, and the run remembers it
    r = CliRunner().invoke(main, ["train", "--out", str(run), "--resume", "--epochs", "2",
                                  "--data", str(moved), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == str(moved) and config["changes"][-1]["changed"]["epochs"] == 2
    r = CliRunner().invoke(main, ["evaluate", str(run), "--device", "cpu"])
    assert r.exit_code == 0, r.output


def test_quiet_silences_progress(tmp_path):
    data = tmp_path / "box.h5"
    args = ["generate", "--out", str(data), "--train", "16", "--test", "8", "--steps", "6",
            "--size", "16", "--param", "radius=2", "--workers", "1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    train = ["train", "--data", str(data), "--epochs", "1", "--set", "batch_size=8",
             "--device", "cpu", "--no-evaluate"]
    loud = CliRunner().invoke(main, [*train, "--out", str(tmp_path / "a")])
    quiet = CliRunner().invoke(main, ["--quiet", *train, "--out", str(tmp_path / "b")])
    assert loud.exit_code == quiet.exit_code == 0
    assert "epoch 1:" in loud.output and "epoch 1:" not in quiet.output


def test_every_option_says_what_it_does():
    missing = []
    for name, cmd in main.commands.items():
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{name} {param.opts[0]}")
    assert missing == []


def test_the_code_version_is_dirty_for_code_changes_not_for_results(tmp_path, monkeypatch):
    """A run that rewrites the committed report (results/) is still made by clean code."""
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    for rel in ("kvae_bench/x.py", "results/README.md", "data/README.md"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("a\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(runinfo, "REPO_ROOT", tmp_path)
    version = runinfo.git_commit.__wrapped__
    sha = version()
    assert len(sha) == 40
    (tmp_path / "results" / "README.md").write_text("b\n")
    (tmp_path / "data" / "README.md").write_text("b\n")
    assert version() == sha
    (tmp_path / "kvae_bench" / "x.py").write_text("b\n")
    assert version() == sha + "+dirty"

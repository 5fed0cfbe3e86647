"""The `kvae-bench` command line. Heavy modules are imported inside the commands.

Errors a user can fix print one line and exit 1; usage errors exit 2 (click's convention).
Progress bars go to stderr, only when it is a terminal; `--quiet` turns them and the epoch
lines off. SIGTERM ends a command like Ctrl-C: partial files are removed on the way out.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

# OpenMP threads that spin while waiting steal the cores of any other busy process: with a test
# suite or a second run beside it, a training epoch took 30-60x longer. Measured on 2 cores, the
# Kalman filter with gaps beside a busy training process: 3.4 s spinning (libgomp's default),
# 0.17 s with a spin count of 10,000, 0.05 s passive; alone, the KVAE step: 268-274 ms by
# default, 275 ms at 10,000, 330 ms passive. So a short spin: nearly all of both. Set before
# torch is imported (it is imported inside the commands); the user's own setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import click

from kvae_bench.errors import UserError

ENV_HELP = "see `kvae-bench envs`, which marks the default"  # names live in the registries


def user_errors(fn):
    """Turn UserError (and data-format errors) into click's one-line error, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kvae_bench.h5io import DataFormatError

        try:
            return fn(*args, **kwargs)
        except (UserError, DataFormatError, FileExistsError) as e:
            raise click.ClickException(str(e).strip().splitlines()[0]) from None

    return wrapper


def _stop(signum, frame):
    """SIGTERM and Ctrl-C: remove this process's partial files, then unwind."""
    from kvae_bench.runinfo import remove_own_partials, request_stop

    request_stop(signum)  # should the exception below be swallowed, writers raise it again
    remove_own_partials()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvae-bench")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars or per-epoch lines on stderr (bars are off anyway when "
                   "stderr is not a terminal).")
@click.pass_context
def main(ctx, quiet) -> None:
    """kvae-bench: physics videos, the Kalman VAE and baselines, benchmarked."""
    from kvae_bench.runinfo import clear_stop

    clear_stop()
    ctx.obj = {"progress": not quiet}
    logging.basicConfig(format="%(message)s", level=logging.WARNING, stream=sys.stderr)
    for sig, default in ((signal.SIGTERM, signal.SIG_DFL),
                         (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(sig) is default:  # an ignored signal stays ignored
            try:
                signal.signal(sig, _stop)
            except ValueError:  # not the main thread (an embedding application's worker)
                pass


def progress() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("progress", True))


SEED = click.IntRange(min=0)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


@main.command()
@click.option("--env", help=f"Environment to simulate ({ENV_HELP}).")
@click.option("--preset", help="Another paper's protocol for ENV, e.g. --env pendulum "
              "--preset dvbf (see `kvae-bench envs`); the data set is named ENV-PRESET.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file  [default: data/ENV.h5, or data/ENV-PRESET.h5]")
@click.option("--train", "n_train", type=int,
              help="Training sequences  [default: 5000, or the preset's]")
@click.option("--val", "n_val", type=int,
              help="Validation sequences  [default: none, or the preset's]")
@click.option("--test", "n_test", type=int,
              help="Test sequences  [default: 1000, or the preset's]")
@click.option("--steps", type=int, help="Frames per sequence  [default: 20, or the preset's]")
@click.option("--size", type=int, help="Frame size in pixels  [default: 32]")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Generation seed: sequence i of a split depends only on (seed, split, i).")
@click.option("--workers", type=int, help="Processes  [default: one, unless the job would "
              "take over 10 s in one: then one per idle CPU, at most 8]")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Override an environment parameter, e.g. gravity=0,9.8 or speed_max=20 "
                   "(repeatable; see `kvae-bench envs`).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def generate(env, preset, out, n_train, n_val, n_test, steps, size, seed, workers, params,
             overwrite):
    """Simulate ENV and write train/test (and val) videos to an HDF5 file."""
    from simulators import presets
    from simulators.generate import generate as run

    env = _check_env(env)
    overrides = parse_params(params)
    if size is not None and "size" in overrides:
        raise UserError("--size and --param size=... both given: give the size once")
    if size is not None:
        overrides["size"] = str(size)
    if preset:
        try:
            presets.get(env, preset)
        except ValueError as e:
            raise UserError(str(e)) from None
    out = out or Path("data") / (f"{env}-{preset}.h5" if preset else f"{env}.h5")
    _check_output_file(out, overwrite)
    from kvae_bench.masks import T_INIT

    if steps is not None and 0 < steps <= T_INIT:
        click.echo(f"warning: sequences of {steps} frames are too short for the benchmark, "
                   f"which observes {T_INIT} and predicts the rest: `train` will refuse this "
                   f"file (use --steps {T_INIT + 1} or more to train on it)", err=True)
    try:
        path = run(out, env, n_train=n_train, n_test=n_test, steps=steps, seed=seed,
                   params=overrides, workers=workers, overwrite=overwrite,
                   progress=progress(), preset=preset, n_val=n_val)
    except ValueError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    size_mb = path.stat().st_size / 2**20
    from kvae_bench import h5io

    meta = h5io.read_meta(path)
    counts = " + ".join(f"{m['n']} {s}" for s, m in meta["splits"].items())
    click.echo(f"wrote {path} ({size_mb:.1f} MiB): {counts} sequences of {meta['steps']} "
               f"frames; inspect it with `kvae-bench inspect {path}`")
    click.echo(_canonical_line(path, meta))


def _canonical_line(path: Path, meta: dict) -> str:
    """Whether the file at path is its name's canonical data set (references/datasets.csv),
    or that data set's recorded prefix (its first few sequences of each split)."""
    from kvae_bench import h5io
    from kvae_bench.h5io import fingerprint
    from kvae_bench.references import datasets_csv

    name, fp = h5io.dataset_name(meta), fingerprint(path)
    row = datasets_csv().get(name)
    if row is None:
        return f"no canonical {name} data is recorded (fingerprint {fp[:12]}…)"
    if fp == row["fingerprint"]:
        return f"canonical {name} data (fingerprint {fp[:12]}…)"
    if fp == row["prefix_fingerprint"]:
        counts = " + ".join(f"{row['prefix_' + s]} {s}" for s in ("train", "val", "test")
                            if int(row["prefix_" + s]))
        return (f"canonical {name} prefix: the first {counts} sequences of the canonical "
                f"{name} data (fingerprint {fp[:12]}…)")
    return (f"not the canonical {name}: different data or parameters (fingerprint "
            f"{fp[:12]}…, canonical {row['fingerprint'][:12]}…)")


def _check_output_file(out: Path, overwrite: bool) -> None:
    """A dataset is written only where nothing is, or over a kvae-bench dataset with
    --overwrite: never over a folder or a foreign file."""
    from kvae_bench import h5io

    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name a file, e.g. {out / 'data.h5'}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or choose --out")
    if out.exists() and not h5io.is_dataset(out):
        raise UserError(f"{out} is not a kvae-bench dataset: it will not be overwritten; "
                        "choose another --out")


@main.command()
def envs() -> None:
    """List the environments and their parameters with defaults."""
    import dataclasses

    import simulators
    from simulators.base import format_value

    for name, (cls, params_cls) in simulators.ENVS.items():
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        default = " (default)" if name == simulators.DEFAULT_ENV else ""
        click.echo(f"{name}{default}: {doc}")
        click.echo(f"  states: {', '.join(cls.columns)}")
        defaults = params_cls()
        values = [f"{f.name}={format_value(getattr(defaults, f.name))}"
                  for f in dataclasses.fields(params_cls)]
        click.echo(f"  params: {' '.join(values)}")


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--gif", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a GIF grid of a few test sequences here.")
@click.option("--n", "n_gif", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Sequences in the GIF.")
@user_errors
def inspect(file, gif, n_gif):
    """Validate a dataset file and print its metadata and statistics."""
    from kvae_bench import h5io

    if file.is_dir():
        raise UserError(f"{file} is a folder: pass a dataset file (.h5)")
    if gif is not None:
        _check_gif_target(gif, file)
    try:
        meta = h5io.read_meta(file)
    except FileNotFoundError:
        raise UserError(f"{file} not found: create it with `kvae-bench generate`") from None
    splits = {split: h5io.read(file, split) for split in meta["splits"]}  # fails before output
    click.echo(f"{file}: {meta['schema']} v{meta['schema_version']}, env {meta['env']}, "
               f"seed {meta['seed']}, dt {meta['dt']:g}, generator {meta['generator_version']}, "
               f"created {meta['created_utc']}, commit {meta.get('git_commit') or 'unknown'}")
    params = " ".join(f"{k}={v}" for k, v in meta["env_params"].items())
    click.echo(f"params: {params}")
    click.echo(_canonical_line(file, meta))
    for split, data in splits.items():
        n, t, h, w = data.frames.shape
        fg = (data.frames > 127).sum(axis=(2, 3))
        click.echo(f"{split}: {n} sequences x {t} frames of {h}x{w}; states "
                   f"{', '.join(data.columns) or '(none)'}")
        click.echo(f"  foreground pixels per frame: mean {fg.mean():.1f}, min {fg.min()}, "
                   f"max {fg.max()}; empty frames: {(fg == 0).sum()}")
        columns = [(col, data.states[..., j]) for j, col in enumerate(data.columns)]
        columns += [(f"control {col}", data.controls[..., j])
                    for j, col in enumerate(data.control_columns)]
        for col, v in columns:
            click.echo(f"  {col:<18} min {v.min():9.3f}  mean {v.mean():9.3f}  "
                       f"max {v.max():9.3f}")
    if gif:
        from kvae_bench.viz import video_grid, write_gif

        test = h5io.read(file, "test", limit=n_gif)
        try:
            write_gif(gif, video_grid(test.frames), fps=5)
        except OSError as e:
            raise UserError(f"cannot write {gif}: {e.strerror or e}") from None
        click.echo(f"wrote {gif} ({len(test.frames)} test sequences)")


def _check_gif_target(gif: Path, source: Path) -> None:
    """The GIF may replace a GIF, never the input or another kind of file."""
    if gif.exists() and source.exists() and gif.resolve() == source.resolve():
        raise UserError(f"--gif {gif} is the dataset itself: name a new .gif file")
    if gif.is_dir():
        raise UserError(f"--gif {gif} is a folder: name a .gif file")
    for parent in gif.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--gif {gif}: {parent} is a file, not a folder")
    if gif.exists():
        with open(gif, "rb") as f:
            is_gif = f.read(6) in (b"GIF87a", b"GIF89a")
        if not is_gif:
            raise UserError(f"--gif {gif} exists and is not a GIF: it will not be "
                            "overwritten; name a new .gif file")


@main.command()
@click.option("--model",
              help="Model to train: a registered name (see `kvae-bench options`) or "
                   "package.module:Class  [default: kvae; with --resume: the run's]")
@click.option("--data", type=click.Path(path_type=Path),
              help="Dataset file  [default: data/box.h5; with --resume: the run's, found by "
                   "its path or fingerprint]")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs  [default: 80, the paper's; with --resume: the run's]")
@click.option("--seed", type=SEED, help="Seed of every random choice  [default: 0; with "
                                       "--resume: the run's]")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run directory  [default: results/runs/MODEL-DATA-sSEED, DATA the data "
                   "file's name without .h5]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of options (flat key = value).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a model or training option, e.g. elbo=exact or lr=0.003 (repeatable; "
                   "see `kvae-bench options`).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint, with its saved options; "
                   "options given again replace saved training options (and are listed).")
@click.option("--evaluate/--no-evaluate", "then_evaluate", default=True, show_default=True,
              help="Score the run on the benchmark protocol when training ends.")
@user_errors
def train(model, data, epochs, seed, out, config_file, sets, device, resume, then_evaluate):
    """Train a model on a dataset; the defaults reproduce the paper."""
    from kvae_bench.train import DEFAULT_DATA
    from kvae_bench.train import train as run

    options = {}
    if config_file:
        import tomllib

        try:
            options.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"cannot read {config_file}: {e}") from None
        except UnicodeDecodeError:
            raise UserError(f"cannot read {config_file}: not a TOML file (it is not UTF-8 "
                            "text); pass a file of key = value lines") from None
    for pair in sets:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        options[key.strip()] = value.strip()
    if epochs is not None and any(p.partition("=")[0].strip() == "epochs" for p in sets):
        raise UserError("--epochs and --set epochs=... both given: give the epochs once")
    if epochs is not None:
        options["epochs"] = epochs
    if out is None:
        from kvae_bench.models import DEFAULT

        name = (model or DEFAULT).rpartition(":")[2]
        out = Path("results/runs") / f"{name}-{(data or DEFAULT_DATA).stem}-s{seed or 0}"
    try:
        path = run(out, model, data, options, seed=seed, device=device, resume=resume,
                   progress=progress())
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM through _stop
        from kvae_bench import rundir

        if rundir.is_run(out):
            kept = "its last finished epoch" if rundir.has_checkpoint(out) else "no epoch yet"
            click.echo(f"interrupted: {out} keeps {kept}; continue with "
                       f"{rundir.resume_command(out)}", err=True)
        raise
    click.echo(f"trained in {path}: see {path / 'log.jsonl'}")
    if then_evaluate:
        from kvae_bench.evaluate import evaluate

        click.echo(f"wrote {evaluate(path, device=device, progress=progress(), data=data)}")
        warn_if_failed(path)
    else:
        warn_if_stale(path)


def warn_if_failed(run: Path) -> None:
    """A warning line for each training check the run's fresh metrics fail, and one where
    they are not the finished run's."""
    from kvae_bench import rundir, sanity

    try:
        m = rundir.read_metrics(run)
        found = sanity.run_warnings(m)
    except UserError as e:  # written, but not as `report` reads it
        found, m = [f"its metrics.json cannot be read back ({e})"], None
    for w in found:
        click.echo(f"warning: {run} failed a check: {w}", err=True)
    if m is not None:
        warn_if_stale(run, m["epoch"], fresh=True)


def warn_if_stale(run: Path, scored_epoch: int | None = None, fresh: bool = False) -> None:
    """A warning where the run's metrics.json (of scored_epoch; None: read it; fresh: just
    made) is not the finished run's: `report` leaves such scores out."""
    from kvae_bench import rundir

    if scored_epoch is None:
        if not rundir.has_metrics(run):
            return
        try:
            scored_epoch = rundir.read_metrics(run)["epoch"]
        except UserError:
            return
    stale = rundir.stale_reason(run, scored_epoch, fresh)
    if stale:
        click.echo(f"warning: {run}: {stale}; `kvae-bench report` leaves these scores out",
                   err=True)


@main.command("evaluate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Test sequences per forward pass (memory, not results).")
@click.option("--data", type=click.Path(path_type=Path),
              help="The run's dataset file, if it moved  [default: found by the saved path "
                   "or fingerprint]")
@user_errors
def evaluate_cmd(run, device, batch_size, data):
    """Score a trained run on the benchmark protocol -> RUN/metrics.json."""
    from kvae_bench.evaluate import evaluate

    if not run.exists():
        raise UserError(f"{run} not found: train a run with `kvae-bench train --out {run}`")
    if not run.is_dir():
        raise UserError(f"{run} is a file: pass a run folder (it holds config.json)")
    path = evaluate(run, device=device, batch_size=batch_size, progress=progress(), data=data)
    click.echo(f"wrote {path}")
    warn_if_failed(run)


@main.command("report")
@click.option("--runs", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/runs"), show_default=True, help="Folder of run folders.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Report folder: new, empty, or a previous report's.")
@click.option("--force", is_flag=True,
              help="Replace a previous report even if it covered runs that are missing now.")
@user_errors
def report_cmd(runs, out, force):
    """Aggregate every run's metrics.json into tables, figures, videos and a page."""
    from kvae_bench.report import report

    try:
        out, problems = report(runs, out, force=force,
                               commands=[f"kvae-bench report --runs {runs} --out {out}"])
    except OSError as e:
        raise UserError(f"cannot write the report in {out} ({e.strerror or e})") from None
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"wrote {out / 'README.md'}, {out / 'index.html'}, {out / 'table.csv'}, "
               f"{out / 'figures'}")


@main.command("benchmark")
@click.option("--env", help=f"Comma-separated data sets: environments ({ENV_HELP}) or "
                            "ENV-PRESET (e.g. pendulum-dvbf); their data is generated when "
                            "missing.")
@click.option("--models", help="Comma-separated models: registered names or "
                               "package.module:Class  [default: every registered model but "
                               "variants such as kvae-mlp]")
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated seeds, e.g. 0,1,2.")
@click.option("--profile", type=click.Choice(["smoke", "quick", "paper"]), default="quick",
              show_default=True, help="smoke: every code path in about a minute; quick: "
                                      "minutes, to try the suite; paper: the paper's protocol.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder of the grid's report; its runs go to OUT/runs  [default: results/"
                   "quick with runs in results/runs/quick; paper: results, results/runs/paper]")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local: this machine; ray: a Ray instance or cluster "
                                      "(pip install 'kvae-bench[ray]').")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="local: runs at once, each in its own process.")
@click.option("--cpus-per-run", type=click.FloatRange(min=0, min_open=True),
              help="CPU threads of each run (ray: its declared CPUs)  [default: local: all "
                   "cores / --jobs; ray: 1]")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="ray: GPUs declared per run; fractions share a GPU, e.g. 0.25.")
@click.option("--address", help="ray: join this cluster (e.g. auto, or host:6379)  [default: "
                                "start a local Ray instance and stop it at the end]")
@click.option("--worker-dir", type=click.Path(path_type=Path),
              default=Path("~/.cache/kvae-bench/ray-runs"), show_default=True,
              help="ray: where each node keeps its runs' checkpoints and data.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--force", is_flag=True,
              help="Let the report replace one that covered runs that are missing now.")
@user_errors
def benchmark_cmd(env, models, seeds, profile, out, executor, jobs, cpus_per_run,
                  gpus_per_run, address, worker_dir, device, force):
    """Generate, train, evaluate and report a grid: data sets x models x seeds
    (re-runnable: finished runs are skipped, interrupted ones resumed)."""
    from kvae_bench import models as registry
    from kvae_bench.benchmark import (
        check_run_folders,
        headline_lines,
        layout,
        parse_list,
        plan,
        planned_ids,
        run_grid,
        summary_lines,
    )
    from kvae_bench.report import check_no_runs_lost, check_out_dir, report

    model_list = registry.grid_default() if models is None else \
        parse_list(models, name="--models", example="kvae,dmm")
    envs = [None] if env is None else parse_list(env, name="--env", example="box,gravity")
    envs = [_check_dataset(e) for e in envs]
    seed_list = parse_list(seeds, int, name="--seeds")
    if any(s < 0 for s in seed_list):
        raise UserError(f"--seeds must be >= 0, got {seeds!r}")
    if executor == "local" and (gpus_per_run or address):
        raise UserError("--gpus-per-run and --address are for --executor ray")
    if executor == "ray" and jobs > 1:
        raise UserError("--jobs is for --executor local; Ray runs as many as fit")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'kvae-bench[ray]'") from None
    from kvae_bench.runinfo import choose_device

    choose_device(device)  # before any data is generated
    out_dir, runs_root = layout(profile, out)
    previous = check_out_dir(out_dir, runs_root)  # before hours of training, not after
    try:  # models resolve before any data is generated
        specs = plan(envs, model_list, seed_list, profile, progress=progress())
        check_run_folders(specs, runs_root)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not force:
        check_no_runs_lost(previous, planned_ids(specs, runs_root), out_dir)
    cmd = " ".join(["kvae-bench benchmark", f"--env {','.join(envs)}",
                    f"--models {','.join(model_list)}",
                    f"--seeds {','.join(map(str, seed_list))}", f"--profile {profile}",
                    *([f"--out {out}"] if out else [])])
    try:
        outcome = run_grid(specs, runs_root, executor, jobs, device, cpus_per_run,
                           gpus_per_run, address, worker_dir, progress=progress())
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to go on (finished runs are skipped, "
                   "the others resumed from their last epoch where their checkpoints are "
                   "reachable)", err=True)
        raise
    for line in summary_lines(outcome):
        click.echo(line, err=True)
    if outcome.done or outcome.skipped:
        out_dir, problems = report(runs_root, out_dir, commands=[cmd], force=force)
        for p in problems:
            click.echo(f"warning: {p}", err=True)
        for line in headline_lines(out_dir, envs):
            click.echo(line)
        click.echo(f"results: {out_dir / 'README.md'} (tables), {out_dir / 'index.html'}, "
                   f"{out_dir / 'table.csv'}, {out_dir / 'figures'}, {out_dir / 'videos'}")
    if outcome.failed:
        raise UserError(f"{len(outcome.failed)} run(s) failed (listed above with their errors);"
                        " fix the cause and rerun the same command: finished runs are skipped")


@main.command()
@click.option("--model", "names", multiple=True,
              help="Only this model: a registered name or package.module:Class (repeatable)  "
                   "[default: every registered model]")
@user_errors
def options(names) -> None:
    """List the model and training options with their defaults."""
    import dataclasses
    import inspect

    from kvae_bench import models as registry
    from kvae_bench.train import TrainConfig

    for name in names or registry.registered():
        try:
            spec = registry.resolve(name)
        except ValueError as e:
            raise UserError(str(e)) from None
        default = ", the default" if spec.name == registry.DEFAULT else ""
        click.echo(f"model {spec.name} ({spec.target}{default}):")
        for opt in spec.options.values():
            default = "(required)" if opt.default is inspect.Parameter.empty else repr(opt.default)
            click.echo(f"  {opt.name} = {default}")
    click.echo("training:")
    for f in dataclasses.fields(TrainConfig):
        click.echo(f"  {f.name} = {f.default!r}")


def _check_dataset(name: str | None) -> str:
    """A data set of the grid: an env or ENV-PRESET (the default env for None)."""
    from kvae_bench.benchmark import split_dataset

    name = _check_env(name) if name is None else name
    try:
        split_dataset(name)
    except ValueError as e:
        raise UserError(str(e)) from None
    return name


def _check_env(env: str | None) -> str:
    """The env's name (the default for None); an unknown name lists the valid ones."""
    import simulators

    env = env or simulators.DEFAULT_ENV
    if env not in simulators.ENVS:
        raise UserError(f"unknown env {env!r}; valid: {', '.join(simulators.ENVS)}")
    return env


@main.command("import-npz")
@click.argument("train_npz", type=click.Path(path_type=Path))
@click.argument("test_npz", type=click.Path(path_type=Path))
@click.option("--env", required=True,
              help=f"Which environment the videos show ({ENV_HELP}); the 2017 "
                   "box_gravity files are env gravity.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output dataset file (.h5).")
@click.option("--dt", type=float, default=0.2, show_default=True, help="Time between frames.")
@click.option("--threshold", type=float, default=0.0, show_default=True,
              help="A pixel is lit where its value is above this, on the 2017 box files' "
                   "scale (white 1, grey level g at g/255); 0 keeps every drawn pixel, as the "
                   "2017 loader did.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def import_npz(train_npz, test_npz, env, out, dt, threshold, overwrite):
    """Convert the 2017 KVAE files (box, box_gravity, polygon, pong npz) to HDF5: frames
    binarised as the 2017 loader did, states aligned with the frames they show (y down), or
    dropped where the files cannot give them."""
    from kvae_bench.importer import import_npz as run

    _check_env(env)
    if not 0 < dt < float("inf"):
        raise UserError(f"--dt must be a finite time > 0, got {dt}")
    _check_output_file(out, overwrite)
    try:
        done = run(train_npz, test_npz, env=env, out=out, dt=dt, threshold=threshold,
                   overwrite=overwrite)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    for note in done.notes:
        click.echo(f"note: {note}", err=True)
    states = (f"states {', '.join(done.columns)} (position error of the true test frames: "
              f"median {done.position_error:.2f} px)" if done.columns else "no states")
    click.echo(f"wrote {done.path}: {done.counts['train']} train + {done.counts['test']} test "
               f"sequences; {states}")


if __name__ == "__main__":
    main()

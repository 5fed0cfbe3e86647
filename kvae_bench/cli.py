"""The `kvae-bench` command line. Heavy modules are imported inside the commands.

Errors a user can fix print one line and exit 1; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from kvae_bench.errors import UserError

# == simulators.ENVS and kvae_bench.models.MODELS (tested), kept here so --help stays fast
ENV_NAMES = ("box", "gravity", "polygon", "pendulum", "pong")
MODEL_NAMES = ("kvae", "ae_rnn", "vae_rnn")


def user_errors(fn):
    """Turn UserError (and data-format errors) into click's one-line error, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kvae_bench.h5io import DataFormatError

        try:
            return fn(*args, **kwargs)
        except (UserError, DataFormatError) as e:
            raise click.ClickException(str(e)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvae-bench")
def main() -> None:
    """kvae-bench: physics videos, the Kalman VAE and baselines, benchmarked."""


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


@main.command()
@click.option("--env", type=click.Choice(ENV_NAMES), default="box", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file  [default: data/ENV.h5]")
@click.option("--train", "n_train", type=int, default=5000, show_default=True,
              help="Training sequences.")
@click.option("--test", "n_test", type=int, default=1000, show_default=True,
              help="Test sequences.")
@click.option("--steps", type=int, default=20, show_default=True, help="Frames per sequence.")
@click.option("--size", type=int, help="Frame size in pixels  [default: 32]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, help="Processes  [default: CPU count, at most 8]")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Override an environment parameter, e.g. gravity=0,9.8 or speed_max=20 "
                   "(repeatable; see `kvae-bench envs`).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def generate(env, out, n_train, n_test, steps, size, seed, workers, params, overwrite):
    """Simulate ENV and write train/test videos to an HDF5 file."""
    from simulators.generate import generate as run

    overrides = parse_params(params)
    if size is not None:
        overrides["size"] = str(size)
    out = out or Path("data") / f"{env}.h5"
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or choose --out")
    try:
        path = run(out, env, n_train=n_train, n_test=n_test, steps=steps, seed=seed,
                   params=overrides, workers=workers, overwrite=overwrite)
    except ValueError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    size_mb = path.stat().st_size / 2**20
    click.echo(f"wrote {path} ({size_mb:.1f} MiB): {n_train} train + {n_test} test sequences "
               f"of {steps} frames; inspect it with `kvae-bench inspect {path}`")


@main.command()
def envs() -> None:
    """List the environments and their parameters with defaults."""
    import dataclasses

    import simulators
    from simulators.base import format_value

    for name, (cls, params_cls) in simulators.ENVS.items():
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name}: {doc}")
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

    try:
        meta = h5io.read_meta(file)
    except FileNotFoundError:
        raise UserError(f"{file} not found: create it with `kvae-bench generate`") from None
    click.echo(f"{file}: {meta['schema']} v{meta['schema_version']}, env {meta['env']}, "
               f"seed {meta['seed']}, dt {meta['dt']:g}, generator {meta['generator_version']}, "
               f"created {meta['created_utc']}, commit {meta.get('git_commit') or 'unknown'}")
    params = " ".join(f"{k}={v}" for k, v in meta["env_params"].items())
    click.echo(f"params: {params}")
    for split in h5io.SPLITS:
        data = h5io.read(file, split)
        n, t, h, w = data.frames.shape
        fg = (data.frames > 127).sum(axis=(2, 3))
        click.echo(f"{split}: {n} sequences x {t} frames of {h}x{w}; states "
                   f"{', '.join(data.columns) or '(none)'}")
        click.echo(f"  foreground pixels per frame: mean {fg.mean():.1f}, min {fg.min()}, "
                   f"max {fg.max()}; empty frames: {(fg == 0).sum()}")
        for j, col in enumerate(data.columns):
            v = data.states[..., j]
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


@main.command()
@click.option("--model", type=click.Choice(MODEL_NAMES), default="kvae", show_default=True,
              help="Model to train.")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("data/box.h5"), show_default=True, help="Dataset file.")
@click.option("--epochs", type=int, help="Epochs  [default: 80, the paper's]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory  [default: results/runs/MODEL-ENV-sSEED]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of options (flat key = value).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a model or training option, e.g. elbo=exact or lr=0.003 (repeatable; "
                   "see `kvae-bench options`).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--evaluate/--no-evaluate", "then_evaluate", default=True, show_default=True,
              help="Score the run on the benchmark protocol when training ends.")
@user_errors
def train(model, data, epochs, seed, out, config_file, sets, device, resume, then_evaluate):
    """Train a model on a dataset; the defaults reproduce the paper."""
    from kvae_bench.train import train as run

    options = {}
    if config_file:
        import tomllib

        try:
            options.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"cannot read {config_file}: {e}") from None
    for pair in sets:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        options[key.strip()] = value.strip()
    if epochs is not None:
        options["epochs"] = epochs
    out = out or Path("results/runs") / f"{model}-{data.stem}-s{seed}"
    path = run(out, model, data, options, seed=seed, device=device, resume=resume)
    click.echo(f"trained {model} in {path}: see {path / 'log.jsonl'}")
    if then_evaluate:
        from kvae_bench.evaluate import evaluate

        click.echo(f"wrote {evaluate(path, device=device)}")


@main.command("evaluate")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=int, default=100, show_default=True)
@user_errors
def evaluate_cmd(run, device, batch_size):
    """Score a trained run on the benchmark protocol -> RUN/metrics.json."""
    from kvae_bench.evaluate import evaluate

    if not run.is_dir():
        raise UserError(f"{run} not found: train a run with `kvae-bench train --out {run}`")
    path = evaluate(run, device=device, batch_size=batch_size)
    click.echo(f"wrote {path}")


@main.command("report")
@click.option("--runs", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/runs"), show_default=True, help="Folder of run folders.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True)
@user_errors
def report_cmd(runs, out):
    """Aggregate every run's metrics.json into tables, figures and videos."""
    from kvae_bench.report import report

    if not runs.is_dir():
        raise UserError(f"{runs} not found: train and evaluate runs first")
    out, problems = report(runs, out, commands=[f"kvae-bench report --runs {runs} --out {out}"])
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"wrote {out / 'README.md'}, {out / 'table.csv'}, {out / 'figures'}")


@main.command("benchmark")
@click.option("--env", type=click.Choice(ENV_NAMES), default="box", show_default=True)
@click.option("--models", default="kvae,ae_rnn,vae_rnn", show_default=True,
              help="Comma-separated models.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--profile", type=click.Choice(["quick", "paper"]), default="quick",
              show_default=True, help="quick: minutes, to try the suite; paper: the full "
                                      "protocol of the paper.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@user_errors
def benchmark_cmd(env, models, seeds, profile, device):
    """Generate, train, evaluate and report: the whole benchmark (re-runnable)."""
    from kvae_bench.benchmark import benchmark, parse_list, summary_lines

    model_list = parse_list(models)
    unknown = [m for m in model_list if m not in MODEL_NAMES]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODEL_NAMES)}")
    out, problems = benchmark(env, model_list, parse_list(seeds, int), profile, device)
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    for line in summary_lines(out):
        click.echo(line)
    click.echo(f"results: {out / 'README.md'} (tables), {out / 'table.csv'}, "
               f"{out / 'figures'}, {out / 'videos'}")


@main.command()
def options() -> None:
    """List the model and training options with their defaults."""
    import dataclasses

    from kvae_bench.models import MODELS
    from kvae_bench.train import TrainConfig

    for title, cls in [*((f"model {n}", c) for n, (_, c) in MODELS.items()),
                       ("training", TrainConfig)]:
        click.echo(f"{title}:")
        for f in dataclasses.fields(cls):
            click.echo(f"  {f.name} = {f.default!r}")


@main.command("import-npz")
@click.argument("train_npz", type=click.Path(path_type=Path))
@click.argument("test_npz", type=click.Path(path_type=Path))
@click.option("--env", type=click.Choice(ENV_NAMES), required=True,
              help="Which environment the videos show.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--dt", type=float, default=0.2, show_default=True, help="Time between frames.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def import_npz(train_npz, test_npz, env, out, dt, overwrite):
    """Convert the 2017 data format (npz with `images`, optional `state`) to HDF5."""
    from kvae_bench.importer import import_npz as run

    if out.exists() and not overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or choose --out")
    try:
        path, counts = run(train_npz, test_npz, env=env, out=out, dt=dt, overwrite=overwrite)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    click.echo(f"wrote {path}: {counts['train']} train + {counts['test']} test sequences")


if __name__ == "__main__":
    main()

"""`kvae-bench benchmark`: generate (if missing), train, evaluate and report, end to end.

Finished runs are skipped, interrupted ones resumed, so the command can simply be run again.

Profiles:
    quick  2000 + 200 videos, 8 epochs (a 156-step warm-up, as in the paper profile: a 62-step
           one left the AE-RNN at the average frame; the KVAE's dynamics network frozen for 2
           epochs instead of 10): minutes on 2 cores, to try the suite
    paper  the paper's protocol: 5000 + 1000 videos, 80 epochs, paper defaults
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from kvae_bench import rundir
from kvae_bench.errors import UserError


@dataclass(frozen=True)
class Profile:
    n_train: int
    n_test: int
    epochs: int
    model_options: dict = field(default_factory=dict)  # model name -> its options
    data_suffix: str = ""
    out: str = "results"


PROFILES = {
    "quick": Profile(2000, 200, 8, {"kvae": {"frozen_dynamics_epochs": 2}},
                     data_suffix="_quick", out="results/quick"),
    "paper": Profile(5000, 1000, 80),
}


def benchmark(env: str, models: list[str], seeds: list[int], profile: str = "quick",
              device: str = "auto", workers: int | None = None, force: bool = False,
              progress: bool = True) -> tuple[Path, list[str]]:
    from kvae_bench.evaluate import evaluate
    from kvae_bench.report import check_out_dir, report
    from kvae_bench.train import train
    from simulators.generate import generate

    prof = PROFILES[profile]
    out, runs_root = Path(prof.out), Path("results/runs") / profile
    check_out_dir(out, runs_root)  # before hours of training, not after
    data = Path("data") / f"{env}{prof.data_suffix}.h5"
    if not data.exists():
        click.echo(f"generating {data}", err=True)
        generate(data, env, n_train=prof.n_train, n_test=prof.n_test, workers=workers,
                 progress=progress)
    for seed in seeds:
        for model in models:
            run = runs_root / f"{model.rpartition(':')[2]}-{env}-s{seed}"
            trained = rundir.checkpoint_epoch(run) >= prof.epochs
            if trained and _evaluated(run, prof.epochs):
                click.echo(f"{run}: done, skipped", err=True)
                continue
            if not trained:
                resume = rundir.is_run(run)
                click.echo(f"{run}: {'resuming' if resume else 'training'} {model}, seed {seed}",
                           err=True)
                options = {**prof.model_options.get(model, {}), "epochs": prof.epochs}
                train(run, model, data, options, seed=seed, device=device, resume=resume,
                      progress=progress)
            click.echo(f"{run}: evaluating", err=True)
            evaluate(run, device=device, progress=progress)
    cmd = (f"kvae-bench benchmark --env {env} --models {','.join(models)} "
           f"--seeds {','.join(map(str, seeds))} --profile {profile}")
    return report(runs_root, out, commands=[cmd], force=force)


def _evaluated(run: Path, epochs: int) -> bool:
    """metrics.json exists, is readable and scores the finished run (not an earlier epoch)."""
    try:
        return rundir.has_metrics(run) and rundir.read_metrics(run)["epoch"] >= epochs
    except UserError:
        return False


def parse_list(text: str, kind=str, name: str = "list") -> list:
    """Comma-separated values of one kind; the error names the option and the bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{name}: expected a comma-separated list, e.g. 0,1,2; got {text!r}")
    try:
        return [kind(t) for t in items]
    except ValueError:
        bad = next(t for t in items if not _parses(kind, t))
        what = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
        raise UserError(f"{name}: {bad!r} is not {what}; expected e.g. 0,1,2") from None


def _parses(kind, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def summary_lines(out_dir: Path, datasets: list[str] | None = None) -> list[str]:
    """The headline numbers for the terminal, one line per data set and level: every model
    and method's Hamming at a few levels."""
    rows = (rundir.read_summary(out_dir) or {}).get("rows", [])
    picks = [("random", 0.5), ("random", 0.9), ("planning", 5), ("planning", 15)]
    lines = []
    for d in sorted({r["env"] for r in rows if datasets is None or r["env"] in datasets}):
        for protocol, level in picks:
            cells = [f"{r['model']} {r['method']} {r['mean']:.4f}" for r in rows
                     if r["env"] == d and r["protocol"] == protocol and r["metric"] == "hamming"
                     and r["level"] is not None and float(r["level"]) == float(level)]
            if cells:
                lines.append(f"{d}, {protocol} {level}: " + ", ".join(cells))
    return lines

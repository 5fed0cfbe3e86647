"""`kvae-bench benchmark`: generate (if missing), train, evaluate and report, end to end.

Finished runs are skipped, interrupted ones resumed, so the command can simply be run again.

Profiles:
    quick  2000 + 200 videos, 8 epochs (a 156-step warm-up, as in the paper profile: a 62-step
           one left the AE-RNN at the average frame): minutes on 2 cores, to try the suite
    paper  the paper's protocol: 5000 + 1000 videos, 80 epochs, paper defaults
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click

from kvae_bench.errors import UserError


@dataclass(frozen=True)
class Profile:
    n_train: int
    n_test: int
    epochs: int
    options: dict = field(default_factory=dict)
    data_suffix: str = ""
    out: str = "results"


PROFILES = {
    "quick": Profile(2000, 200, 8, {"kf_update_steps": 2},
                     data_suffix="_quick", out="results/quick"),
    "paper": Profile(5000, 1000, 80),
}


def _finished(run: Path, epochs: int) -> bool:
    import torch

    ckpt = run / "ckpt.pt"
    return ckpt.exists() and torch.load(ckpt, map_location="cpu",
                                        weights_only=True)["epoch"] >= epochs


def benchmark(env: str, models: list[str], seeds: list[int], profile: str = "quick",
              device: str = "auto", workers: int | None = None) -> tuple[Path, list[str]]:
    from kvae_bench.evaluate import evaluate
    from kvae_bench.report import report
    from kvae_bench.train import train
    from simulators.generate import generate

    prof = PROFILES[profile]
    data = Path("data") / f"{env}{prof.data_suffix}.h5"
    if not data.exists():
        click.echo(f"generating {data}", err=True)
        generate(data, env, n_train=prof.n_train, n_test=prof.n_test, workers=workers)
    runs_root = Path("results/runs") / profile
    for seed in seeds:
        for model in models:
            run = runs_root / f"{model}-{env}-s{seed}"
            metrics = run / "metrics.json"
            trained = _finished(run, prof.epochs)
            if trained and metrics.exists():
                click.echo(f"{run}: done, skipped", err=True)
                continue
            if not trained:
                resume = (run / "config.json").exists()
                click.echo(f"{run}: {'resuming' if resume else 'training'} {model}, seed {seed}",
                           err=True)
                train(run, model, data, {**prof.options, "epochs": prof.epochs}, seed=seed,
                      device=device, resume=resume)
            click.echo(f"{run}: evaluating", err=True)
            evaluate(run, device=device)
    cmd = (f"kvae-bench benchmark --env {env} --models {','.join(models)} "
           f"--seeds {','.join(map(str, seeds))} --profile {profile}")
    return report(runs_root, prof.out, commands=[cmd])


def parse_list(text: str, kind=str) -> list:
    try:
        items = [kind(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"expected a comma-separated list, got {text!r}") from None
    if not items:
        raise UserError(f"expected a comma-separated list, got {text!r}")
    return items


def summary_lines(out_dir: Path) -> list[str]:
    """The headline numbers for the terminal: KVAE smoothed vs baselines at a few levels."""
    rows = json.loads((out_dir / "summary.json").read_text())["rows"]
    picks = [("random", 0.5), ("random", 0.9), ("planning", 5), ("planning", 15)]
    lines = []
    for protocol, level in picks:
        cells = [f"{r['model']} {r['method']} {r['mean']:.4f}" for r in rows
                 if r["protocol"] == protocol and r["metric"] == "hamming"
                 and float(r["level"]) == float(level)]
        if cells:
            lines.append(f"{protocol} {level}: " + ", ".join(cells))
    return lines

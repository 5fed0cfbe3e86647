"""runs/*/metrics.json -> results: table.csv, summary.json, README.md, figures/, videos/.

README.md is generated; hand-written commentary goes in NOTES.md beside it, which every
report copies in below the title.

Every number is aggregated over seeds (mean, std, n). Missing or malformed run files are
reported by name and skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from kvae_bench import runinfo
from kvae_bench.evaluate import EXAMPLE_MASK, EXAMPLES, SCHEMA, SCHEMA_VERSION
from kvae_bench.masks import T_INIT
from kvae_bench.train import training_history

COLUMNS = ("env", "model", "method", "protocol", "level", "metric", "mean", "std", "n")
NOTES_FILE = "NOTES.md"  # hand-written commentary in the output folder, kept in README.md

# The paper's Figure 3 (box), read off the plot (DESIGN.md): (protocol, level) -> series.
PAPER_BOX = {
    "kvae/smoothed": {"random": [0.0057, 0.0063, 0.0075, 0.0095, 0.0188, 0.0265],
                      "planning": [0.0061, 0.0078, 0.0098, 0.0121, 0.0148, 0.0173, 0.0200,
                                   0.0226]},
    "kvae/filtered": {"random": [0.0079, 0.0083, 0.0103, 0.0124, 0.0214, 0.0266],
                      "planning": [0.0082, 0.0112, 0.0143, 0.0173, 0.0197, 0.0220, 0.0237,
                                   0.0256]},
    "ae_rnn/imputed": {"random": [0.0065, 0.0075, 0.0095, 0.0132, 0.0218, 0.0272],
                       "planning": [0.0085, 0.0114, 0.0145, 0.0174, 0.0200, 0.0222, 0.0243,
                                    0.0259]},
    "vae_rnn/imputed": {"random": [0.0080, 0.0086, 0.0117, 0.0140, 0.0225, 0.0278],
                        "planning": [0.0088, 0.0120, 0.0151, 0.0181, 0.0207, 0.0230, 0.0251,
                                     0.0268]},
}
PAPER_LEVELS = {"random": [0.1, 0.3, 0.5, 0.7, 0.9, 1.0], "planning": [1, 3, 5, 7, 9, 11, 13, 15]}


def paper_value(env: str, model: str, method: str, protocol: str, level) -> float | None:
    if env != "box" or f"{model}/{method}" not in PAPER_BOX:
        return None
    levels = PAPER_LEVELS[protocol]
    for lvl, v in zip(levels, PAPER_BOX[f"{model}/{method}"][protocol]):
        if abs(float(lvl) - float(level)) < 1e-9:
            return v
    return None


def paper_checks(table: list[dict]) -> list[dict]:
    """The paper's Figure-3 claims, level by level, on our box numbers (Hamming means).

    smoothed_vs_paper: KVAE smoothed / the paper's value (<= 1.25 is "within 25% or better");
    smoothed_below_baselines: KVAE smoothed below AE-RNN and VAE-RNN;
    filtered_vs_ae_rnn: KVAE filtered / AE-RNN, beside the same ratio in the paper.
    """
    mean = {(f"{r['model']}/{r['method']}", r["protocol"], float(r["level"])): r["mean"]
            for r in table if r["env"] == "box" and r["metric"] == "hamming"
            and r["protocol"] in PAPER_LEVELS}
    checks = []
    for protocol, levels in PAPER_LEVELS.items():
        for i, level in enumerate(levels):
            paper = {series: values[protocol][i] for series, values in PAPER_BOX.items()}
            ours = {series: mean.get((series, protocol, float(level))) for series in PAPER_BOX}
            smoothed, filtered = ours["kvae/smoothed"], ours["kvae/filtered"]
            ae, vae = ours["ae_rnn/imputed"], ours["vae_rnn/imputed"]
            if smoothed is None:
                continue
            checks.append({
                "protocol": protocol, "level": level,
                "smoothed_vs_paper": smoothed / paper["kvae/smoothed"],
                "smoothed_below_baselines": (None if ae is None or vae is None
                                             else smoothed < min(ae, vae)),
                "filtered_vs_ae_rnn": None if filtered is None or ae is None else filtered / ae,
                "paper_filtered_vs_ae_rnn": paper["kvae/filtered"] / paper["ae_rnn/imputed"],
            })
    return checks


def paper_check_lines(checks: list[dict]) -> list[str]:
    if not checks:
        return []
    target = [c for c in checks if not (c["protocol"] == "random" and c["level"] > 0.9)]

    def count(ok) -> str:
        known = [c for c in target if ok(c) is not None]
        return f"{sum(bool(ok(c)) for c in known)} of {len(known)}"

    def ratio(v) -> str:
        return "" if v is None else f"{v:.2f}"

    lines = ["## box: the paper's claims, checked", "",
             "KVAE smoothed / paper (1.00 = the paper's value), whether KVAE smoothed is below "
             "both baselines, and KVAE filtered / AE-RNN here and in the paper (lower is "
             "better for the KVAE). Over the levels the targets name (random p <= 0.9, every "
             "planning k): smoothed within 25% of the paper or better at "
             f"{count(lambda c: c['smoothed_vs_paper'] <= 1.25)}; below both baselines at "
             f"{count(lambda c: c['smoothed_below_baselines'])}; filtered / AE-RNN no worse "
             "than the paper's at " + count(
                 lambda c: None if c["filtered_vs_ae_rnn"] is None
                 else c["filtered_vs_ae_rnn"] <= c["paper_filtered_vs_ae_rnn"]) + ".", "",
             "| protocol | level | kvae smoothed / paper | smoothed below both baselines | "
             "kvae filtered / ae_rnn | paper filtered / ae_rnn |", "|---|---|---|---|---|---|"]
    for c in checks:
        below = {None: "", True: "yes", False: "no"}[c["smoothed_below_baselines"]]
        lines.append(f"| {c['protocol']} | {c['level']} | {ratio(c['smoothed_vs_paper'])} | "
                     f"{below} | {ratio(c['filtered_vs_ae_rnn'])} | "
                     f"{ratio(c['paper_filtered_vs_ae_rnn'])} |")
    return lines + [""]


def load_metrics(runs_dir: Path) -> tuple[list[dict], list[str]]:
    """Valid metrics of every run under runs_dir (searched recursively), and the problems."""
    found, problems = [], []
    for path in sorted(runs_dir.rglob("metrics.json")):
        try:
            m = json.loads(path.read_text())
            if m.get("schema") != SCHEMA or m.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema {m.get('schema')!r} v{m.get('schema_version')}")
            for key in ("env", "model", "seed", "imputation", "walls_predictor", "generation"):
                if key not in m:
                    raise ValueError(f"no {key!r}")
            if not m.get("training"):  # evaluated before metrics.json kept it
                m["training"] = training_history(path.parent)
            found.append(m)
        except (OSError, ValueError, AttributeError) as e:
            problems.append(f"{path}: skipped ({e})")
    run_dirs = {p.parent for p in runs_dir.rglob("config.json")}
    for d in sorted(run_dirs):
        if not (d / "metrics.json").exists():
            problems.append(f"{d}: no metrics.json (run `kvae-bench evaluate {d}`)")
    return found, problems


def rows_of(m: dict) -> list[tuple]:
    """(env, model, method, protocol, level, metric, value) of one run."""
    env, model = m["env"], m["model"]
    out = []
    for r in m["imputation"]:
        for metric in ("hamming", "position_error"):
            if r.get(metric) is not None:
                out.append((env, model, r["method"], r["protocol"], r["level"], metric, r[metric]))
    for step, v in enumerate(m["generation"].get("hamming_per_step", []), 1):
        out.append((env, model, "generated", "generation", step, "hamming", v))
    for step, v in enumerate(m["generation"].get("position_error_per_step", []), 1):
        if v is not None:
            out.append((env, model, "generated", "generation", step, "position_error", v))
    for k, v in (m.get("elbo") or {}).items():
        out.append((env, model, "", "", "", f"test_{k}", v))
    for k in ("reconstruction_hamming", "probe_r2"):
        if m.get(k) is not None:
            out.append((env, model, "", "", "", k, m[k]))
    return out


def walls_rows(m: dict) -> list[tuple]:
    """The trivial walls-only predictor (the same for every model of an env and mask seed)."""
    env = m["env"]
    out = [(env, "walls", "walls", r["protocol"], r["level"], "hamming", r["hamming"])
           for r in m["walls_predictor"]]
    for step, v in enumerate(m["generation"].get("walls_hamming_per_step", []), 1):
        out.append((env, "walls", "walls", "generation", step, "hamming", v))
    return out


def aggregate(metrics: list[dict]) -> list[dict]:
    values: dict[tuple, list[float]] = defaultdict(list)
    walls_seen = set()
    for m in metrics:
        for *key, v in rows_of(m):
            values[tuple(key)].append(v)
        walls_key = (m["env"], m["seed"], m.get("mask_fingerprint"))
        if walls_key not in walls_seen:
            walls_seen.add(walls_key)
            for *key, v in walls_rows(m):
                values[tuple(key)].append(v)
    table = []
    for key in sorted(values, key=lambda k: tuple(str(x) for x in k)):
        v = np.asarray(values[key], dtype=np.float64)
        std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        table.append(dict(zip(COLUMNS, (*key, float(v.mean()), std, len(v)))))
    return table


def write_csv(table: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in table:
        w.writerow({**row, "mean": f"{row['mean']:.6g}", "std": f"{row['std']:.3g}"})
    runinfo.atomic_write_text(path, buf.getvalue())


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if n > 1 else "")


def markdown(table: list[dict], metrics: list[dict], problems: list[str], commands: list[str],
             notes: str = "", videos: dict | None = None) -> str:
    by = {(r["env"], r["model"], r["method"], r["protocol"], str(r["level"]), r["metric"]): r
          for r in table}
    lines = ["# kvae-bench results", "",
             "Fraction of incorrect pixels over the unobserved frames (Hamming, lower is better),",
             "mean ± std over seeds; `paper` columns are read off Figure 3 of Fraccaro et al.",
             "(2017); `walls` is the trivial predictor that draws the empty box.", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    envs = sorted({r["env"] for r in table})
    for env in envs:
        series = sorted({(r["model"], r["method"]) for r in table
                         if r["env"] == env and r["metric"] == "hamming"
                         and r["protocol"] in ("random", "planning") and r["model"] != "walls"})
        series.append(("walls", "walls"))
        for protocol, name in (("random", "random p"), ("planning", "planning k")):
            levels = sorted({r["level"] for r in table if r["env"] == env
                             and r["protocol"] == protocol}, key=float)
            if not levels:
                continue
            heads = []
            for model, method in series:
                heads.append(f"{model} {method}" if model != "walls" else "walls")
                if paper_value(env, model, method, protocol, levels[0]) is not None or \
                        any(paper_value(env, model, method, protocol, lvl) for lvl in levels):
                    heads.append(f"paper {model} {method}")
            lines += [f"## {env}: imputation, {protocol}", "",
                      f"| {name} | " + " | ".join(heads) + " |",
                      "|---" * (len(heads) + 1) + "|"]
            for lvl in levels:
                cells = []
                for model, method in series:
                    r = by.get((env, model, method, protocol, str(lvl), "hamming"))
                    cells.append(_fmt(r["mean"], r["std"], r["n"]) if r else "")
                    if f"paper {model} {method}" in heads:
                        pv = paper_value(env, model, method, protocol, lvl)
                        cells.append(f"{pv:.4f}" if pv is not None else "")
                lines.append(f"| {lvl} | " + " | ".join(cells) + " |")
            lines.append("")
        pos = [r for r in table if r["env"] == env and r["metric"] == "position_error"
               and r["protocol"] == "planning"]
        if pos:
            lines += [f"## {env}: ball position error of imputed frames, planning (median px)",
                      ""]
            series_p = sorted({(r["model"], r["method"]) for r in pos})
            lines.append("| k | " + " | ".join(f"{a} {b}" for a, b in series_p) + " |")
            lines.append("|---" * (len(series_p) + 1) + "|")
            for lvl in sorted({r["level"] for r in pos}, key=float):
                cells = [by.get((env, a, b, "planning", str(lvl), "position_error")) for a, b in
                         series_p]
                lines.append(f"| {lvl} | " + " | ".join(
                    _fmt(c["mean"], c["std"], c["n"]) if c else "" for c in cells) + " |")
            lines.append("")
        scalars = [r for r in table if r["env"] == env and r["protocol"] == ""]
        if scalars:
            lines += [f"## {env}: test ELBO per frame, reconstruction, latent probe", "",
                      "| model | metric | value | n |", "|---|---|---|---|"]
            for r in scalars:
                lines.append(f"| {r['model']} | {r['metric']} | {_fmt(r['mean'], r['std'], r['n'])}"
                             f" | {r['n']} |")
            lines.append("")
        lines += [f"![{env}](figures/{env}.png)", ""]
        if env == "box":
            lines += paper_check_lines(paper_checks(table))
    if videos:
        lines += ["## Videos", "",
                  f"{EXAMPLES} test sequences per GIF, one per row, with the "
                  f"{EXAMPLE_MASK[0]} mask k = {EXAMPLE_MASK[1]} (frames {T_INIT + 1}-"
                  f"{T_INIT + EXAMPLE_MASK[1]} missing); 'generated' is given the first "
                  f"{T_INIT} frames only. Columns, left to right:", ""]
        for (env, model), (name, seed, columns) in sorted(videos.items()):
            lines.append(f"- [videos/{name}](videos/{name}) ({model}, {env}, seed {seed}): "
                         + ", ".join(columns))
        lines.append("")
    lines += ["## Runs", "",
              "Training minutes are the sum of the epochs' times in log.jsonl (a run resumed "
              "on another machine lists each part).", "",
              "| run | model | env | seed | epochs | trained on (minutes) | evaluated on "
              "(minutes) | code |", "|---|---|---|---|---|---|---|---|"]
    for m in metrics:
        trained = " + ".join(f"{s['device']} {s['epochs']} ep ({s['seconds'] / 60:.1f})"
                             for s in m.get("training") or [])
        lines.append(f"| {m['run']} | {m['model']} | {m['env']} | {m['seed']} | {m['epoch']} | "
                     f"{trained} | {m.get('device', '')} ({m.get('seconds', 0) / 60:.1f}) | "
                     f"{(m.get('code_version') or '')[:12]} |")
    lines.append("")
    if problems:
        lines += ["## Skipped", ""] + [f"- {p}" for p in problems] + [""]
    lines += ["## Regenerate", "", "```bash", *commands, "```", ""]
    return "\n".join(lines)


def figure(table: list[dict], env: str, path: Path) -> None:
    """The paper's Figure 3 for one env: imputation Hamming vs level, random and planning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, protocol, xlabel in ((axes[0], "random", "drop probability p"),
                                 (axes[1], "planning", "frames dropped k")):
        rows = [r for r in table if r["env"] == env and r["protocol"] == protocol
                and r["metric"] == "hamming"]
        series = sorted({(r["model"], r["method"]) for r in rows})
        for i, (model, method) in enumerate(series):
            pts = sorted((float(r["level"]), r["mean"], r["std"]) for r in rows
                         if (r["model"], r["method"]) == (model, method))
            xs, ys, es = zip(*pts)
            color = "grey" if model == "walls" else f"C{i}"
            style = ":" if model == "walls" else "-"
            label = "walls only" if model == "walls" else f"{model} {method}"
            ax.errorbar(xs, ys, yerr=es, color=color, linestyle=style, marker="o", ms=3,
                        label=label, capsize=2)
            key = f"{model}/{method}"
            if env == "box" and key in PAPER_BOX:
                ax.plot(PAPER_LEVELS[protocol], PAPER_BOX[key][protocol], color=color,
                        linestyle="--", alpha=0.7, label=f"paper {model} {method}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Hamming distance (unobserved frames)")
        ax.set_title(f"{env}: {protocol} missing frames")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with runinfo.atomic_path(path, suffix=".tmp.png") as tmp:  # the suffix names the format
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def strip(run: Path, path: Path) -> list[str] | None:
    """GIF of a run's examples.npz: per sequence the rows true / observed / each method /
    generated (the first frames observed, then the model's own). Returns the column names,
    or None when the run has no examples."""
    from kvae_bench.viz import video_grid, write_gif

    try:
        with np.load(run / "examples.npz") as z:
            ex = {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None
    true = ex.pop("true")
    mask = ex.pop("mask", np.ones(true.shape[:2]))
    generated = ex.pop("generated")
    n_obs = true.shape[1] - generated.shape[1]
    rows = []
    for i in range(len(true)):
        observed = true[i] * (mask[i][:, None, None] > 0.5)
        gen = np.concatenate([true[i, :n_obs], generated[i]])
        rows += [true[i], observed, *(ex[k][i] for k in sorted(ex)), gen]
    videos = (np.stack(rows) > 0).astype(np.uint8) * 255
    write_gif(path, video_grid(videos, cols=3 + len(ex), scale=3), fps=4)
    return ["true", "observed", *sorted(ex), "generated"]


def report(runs_dir: str | os.PathLike = "results/runs", out_dir: str | os.PathLike = "results",
           commands: list[str] | None = None) -> tuple[Path, list[str]]:
    """Aggregate every run under runs_dir into out_dir; returns (out_dir, problems)."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    metrics, problems = load_metrics(runs_dir)
    table = aggregate(metrics)
    write_csv(table, out_dir / "table.csv")
    runinfo.atomic_write_json(out_dir / "summary.json", {
        "columns": list(COLUMNS), "rows": table, "created_utc": runinfo.utc_now(),
        "code_version": runinfo.git_commit(), "problems": problems,
        "paper_checks": paper_checks(table),
        "runs": [{k: m.get(k) for k in ("run", "model", "env", "seed", "epoch", "code_version",
                                        "data_fingerprint", "mask_fingerprint", "device",
                                        "seconds")} for m in metrics]})
    for env in sorted({m["env"] for m in metrics}):
        figure(table, env, out_dir / "figures" / f"{env}.png")
    videos = {}
    for m in sorted(metrics, key=lambda m: m["seed"]):
        key = (m["env"], m["model"])
        if key in videos:
            continue
        name = f"{m['env']}-{m['model']}.gif"
        columns = strip(Path(m["run"]), out_dir / "videos" / name)
        if columns:
            videos[key] = (name, m["seed"], columns)
    commands = commands or ["kvae-bench report"]
    notes_path = out_dir / NOTES_FILE
    notes = notes_path.read_text() if notes_path.exists() else ""
    runinfo.atomic_write_text(out_dir / "README.md",
                              markdown(table, metrics, problems, commands, notes, videos))
    return out_dir, problems

"""Run folders -> one tidy table -> table.csv, summary.json, README.md, index.html, figures/,
videos/.

The table has one row per (data set, model, method, protocol, level, metric): the mean, std
and n over seeds (the trivial predictor is deterministic: n = 1 per data set and mask set).
Levels are numbers and sort numerically. The page is built once as sections (text, tables,
figures, videos) and rendered twice with jinja2: Markdown (README.md) and HTML (index.html,
self-contained apart from the figures and GIFs beside it). One section per data set present,
with every model and method found; reference values and claims come from
kvae_bench/references (data, not code). README.md is generated; hand-written commentary goes
in NOTES.md beside it, which every report copies in.

The output folder is the report's own: a new or empty folder, or one holding a previous
report (summary.json). A report never replaces one that covered more runs unless forced.
Needs only the run folders' files: no torch, no models.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kvae_bench import references, rundir, runinfo, sanity
from kvae_bench.errors import UserError
from kvae_bench.references import datasets_csv

COLUMNS = ("env", "model", "method", "protocol", "level", "metric", "mean", "std", "n")
NOTES_FILE = "NOTES.md"  # hand-written commentary in the output folder, kept in README.md
IMPUTATION = (("random", "random p", "drop probability p"),
              ("planning", "planning k", "frames dropped k"))


# ---- the tidy table ---------------------------------------------------------------------------


def load_runs(runs_dir: Path) -> tuple[list[dict], list[str]]:
    """Valid metrics of every run under runs_dir (searched recursively), and the problems
    (unreadable files, runs not evaluated yet, runs whose training is unfinished or whose
    scores are of an earlier epoch than they trained, copies of a run, runs excluded by an
    EXCLUDED.md that gives the reason), each naming its folder and how to mend it.

    A data set is known by its name and its data: runs on a file whose fingerprint is not the
    canonical one of that name (kvae_bench.references/datasets.csv), or runs of one name on
    several files, are shown as `name@<fingerprint[:8]>`, so that different data never share
    a row and published references apply only to the canonical data."""
    found, problems = [], []
    for run in rundir.find_runs(runs_dir):
        reason = rundir.excluded_reason(run)
        if reason:
            problems.append(f"excluded {run}: {reason}")
            continue
        if not rundir.has_metrics(run):
            try:
                rundir.read_config(run)
            except UserError as e:  # a foreign or damaged config.json: not a run to evaluate
                problems.append(f"skipped: {e}")
                continue
            problems.append(f"{run}: " + (rundir.stale_reason(run, None) or
                                          f"no metrics.json (run {rundir.evaluate_command(run)})"))
            continue
        try:
            m = rundir.read_metrics(run)
        except UserError as e:
            problems.append(f"skipped: {e} (score the run again with "
                            f"{rundir.evaluate_command(run)})")
            continue
        stale = rundir.stale_reason(run, m["epoch"])
        if stale:  # scores of a run that is not finished, or of an earlier epoch
            problems.append(f"{run}: skipped, {stale}")
            continue
        found.append(m)
    prints = defaultdict(set)
    for m in found:
        prints[m["dataset"]].add(m.get("data_fingerprint") or "")
    seen: dict[tuple, str] = {}
    unique = []
    for m in found:
        name = m["dataset"]
        m["dataset"] = dataset_label(name, m.get("data_fingerprint") or "", prints[name])
        key = (m["dataset"], m["model"], m["seed"])
        if key in seen:
            problems.append(f"{m['run_dir']}: skipped, the same data set, model and seed as "
                            f"{seen[key]} (to count this one instead, put an EXCLUDED.md "
                            "that gives the reason in the other)")
            continue
        seen[key] = m["run_dir"]
        unique.append(m)
    return unique, problems


def dataset_label(name: str, fingerprint: str, fingerprints_of_name: set) -> str:
    """A data set's name in the tables: `name` for its canonical data (or, for a name with no
    canonical data, when all its runs share one file), else `name@<fingerprint[:8]>`."""
    canonical = datasets_csv().get(name, {}).get("fingerprint")
    other = fingerprint != canonical if canonical else len(fingerprints_of_name) > 1
    return f"{name}@{fingerprint[:8]}" if other else name


def _run_rows(m: dict):
    """(key, value) of one run's scores; key = (dataset, model, method, protocol, level,
    metric)."""
    d, model = m["dataset"], m["model"]
    for r in m["imputation"]:
        for metric in ("hamming", "position_error"):
            if r.get(metric) is not None:
                yield (d, model, r["method"], r["protocol"], r["level"], metric), r[metric]
    gen = m["generation"]
    for metric, key in (("hamming", "hamming_per_step"),
                        ("position_error", "position_error_per_step")):
        for step, v in enumerate(gen.get(key) or [], 1):
            if v is not None:
                yield (d, model, "generated", "generation", step, metric), v
    for k, v in (m.get("elbo") or {}).items():
        if v is not None:
            yield (d, model, "", "", None, f"test_{k}"), v
    steps = _steps(m)
    if (m.get("elbo") or {}).get("elbo") is not None and steps:
        yield (d, model, "", "", None, "test_elbo_per_sequence"), m["elbo"]["elbo"] * steps
    for k in ("reconstruction_hamming", "probe_r2"):
        if m.get(k) is not None:
            yield (d, model, "", "", None, k), m[k]


def _steps(m: dict) -> int | None:
    """Frames per test sequence: the observed ones plus the generated ones."""
    gen = m.get("generation") or {}
    if "n_observed" not in gen or not gen.get("hamming_per_step"):
        return None
    return gen["n_observed"] + len(gen["hamming_per_step"])


def _trivial_rows(m: dict):
    d, name = m["dataset"], m["trivial"]
    for r in m["trivial_predictor"]:
        if r.get("hamming") is not None:
            yield (d, name, name, r["protocol"], r["level"], "hamming"), r["hamming"]
    gen = m["generation"]
    for step, v in enumerate(gen.get("trivial_hamming_per_step") or [], 1):
        if v is not None:
            yield (d, name, name, "generation", step, "hamming"), v


def sort_key(row: dict) -> tuple:
    return (row["env"], row["model"], row["method"], row["protocol"],
            references.level_key(row["level"]), row["metric"])


def tidy(metrics: list[dict]) -> list[dict]:
    """One row per (data set, model, method, protocol, level, metric): mean, std (ddof 1), n."""
    values: dict[tuple, list[float]] = defaultdict(list)
    trivial_seen = set()
    for m in metrics:
        for key, v in _run_rows(m):
            values[key].append(v)
        scene = (m["dataset"], m.get("data_fingerprint"), m.get("mask_fingerprint"))
        if scene not in trivial_seen:  # deterministic: the same for every model and seed
            trivial_seen.add(scene)
            for key, v in _trivial_rows(m):
                values[key].append(v)
    table = []
    for key, vs in values.items():
        v = np.asarray(vs, dtype=np.float64)
        std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        table.append(dict(zip(COLUMNS, (*key, float(v.mean()), std, len(v)))))
    return sorted(table, key=sort_key)


def _level_text(level) -> str:
    return "" if level is None else str(level)


def table_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in table:
        w.writerow({**row, "level": _level_text(row["level"]), "mean": f"{row['mean']:.6g}",
                    "std": f"{row['std']:.3g}"})
    return buf.getvalue()


# ---- sections ---------------------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """A part of the page: blocks in order, each ("text", str), ("table", Table),
    ("image", alt, src), ("list", [str]) or ("markdown", str: hand-written Markdown)."""

    title: str
    id: str
    blocks: list[tuple] = field(default_factory=list)


def _fmt(row: dict | None, digits: int = 4) -> str:
    if row is None:
        return ""
    return f"{row['mean']:.{digits}f}" + (f" ± {row['std']:.{digits}f}" if row["n"] > 1 else "")


class Index:
    """Lookups into the tidy table and the references for one report."""

    def __init__(self, table: list[dict], refs: list[dict]):
        self.rows = {(r["env"], r["model"], r["method"], r["protocol"],
                      references.level_key(r["level"]), r["metric"]): r for r in table}
        self.refs = {(r["env"], r["model"], r["method"], r["protocol"],
                      references.level_key(r["level"]), r["metric"]): r for r in refs}

    def get(self, d, model, method, protocol, level, metric):
        return self.rows.get((d, model, method, protocol, references.level_key(level), metric))

    def ref(self, d, model, method, protocol, level, metric):
        return self.refs.get((d, model, method, protocol, references.level_key(level), metric))

    def has_ref(self, d, model, method, protocol, metric) -> bool:
        return any(k[:4] == (d, model, method, protocol) and k[5] == metric for k in self.refs)


def _series(table, d, metric, protocols, trivial: str | None) -> list[tuple[str, str]]:
    """(model, method) pairs with rows for data set d, models before the trivial predictor."""
    found = sorted({(r["model"], r["method"]) for r in table if r["env"] == d
                    and r["metric"] == metric and r["protocol"] in protocols})
    return [s for s in found if s[0] != trivial] + [s for s in found if s[0] == trivial]


def level_table(table, index: Index, d: str, protocol: str, metric: str, first: str,
                trivial: str | None, with_refs: bool = True) -> Table | None:
    """Rows = levels of `protocol`, columns = every (model, method) with its reference beside
    it where one exists."""
    series = _series(table, d, metric, (protocol,), trivial)
    levels = sorted({r["level"] for r in table if r["env"] == d and r["protocol"] == protocol
                     and r["metric"] == metric}, key=references.level_key)
    if not series or not levels:
        return None
    header, cols = [first], []
    for model, method in series:
        header.append(model if model == trivial else f"{model} {method}")
        cols.append((model, method, False))
        if with_refs and index.has_ref(d, model, method, protocol, metric):
            source = next(r["source"] for k, r in index.refs.items()
                          if k[:4] == (d, model, method, protocol))
            header.append(f"{model} {method} ({source.split(',')[0]})")
            cols.append((model, method, True))
    rows = []
    for lvl in levels:
        cells = [_level_text(lvl)]
        for model, method, is_ref in cols:
            if is_ref:
                ref = index.ref(d, model, method, protocol, lvl, metric)
                cells.append(f"{ref['value']:.4f}" if ref else "")
            else:
                cells.append(_fmt(index.get(d, model, method, protocol, lvl, metric)))
        rows.append(cells)
    return Table(header, rows)


def _claim_blocks(checks: list[dict]) -> list[tuple]:
    if not checks:
        return []
    blocks = [("text", "Published claims checked level by level on this table (mean over "
                       "seeds; `counted` marks the levels each claim names; the claims and "
                       "their levels are data in kvae_bench/references/claims.toml).")]
    items = [f"{c['title']} ({c['source']}): {c['passed']} of {c['counted']} counted levels"
             for c in checks]
    blocks.append(("list", items))
    keys = sorted({(lv["protocol"], lv["level"]) for c in checks for lv in c["levels"]},
                  key=lambda k: (k[0] != "random", k[1]))
    header = ["protocol", "level"] + [c["title"] for c in checks]
    rows = []
    for protocol, lvl in keys:
        cells = [protocol, _level_text(lvl)]
        for c in checks:
            lv = next((x for x in c["levels"] if (x["protocol"], x["level"]) == (protocol, lvl)),
                      None)
            if lv is None or lv["value"] is None:
                cells.append("")
                continue
            verdict = {None: "", True: "yes", False: "no"}[lv["ok"]]
            value = f"{lv['value']:.4f}" if c["kind"] == "below" else f"{lv['value']:.2f}"
            cells.append(f"{value} {verdict}" + ("" if lv["counted"] else " (not counted)"))
        rows.append(cells)
    blocks.append(("table", Table(header, rows, "value: ratio (or our mean for 'below'); "
                                                "yes/no: the claim holds at that level")))
    return blocks


def dataset_sections(d: str, table: list[dict], index: Index, metrics: list[dict],
                     checks: list[dict], videos: list[dict], figure: str | None) -> Section:
    runs = [m for m in metrics if m["dataset"] == d]
    trivial = runs[0]["trivial"] if runs else None
    sec = Section(f"{d}", f"dataset-{d}")
    models = sorted({m["model"] for m in runs})
    seeds = sorted({m["seed"] for m in runs})
    sec.blocks.append(("text", f"Data set `{d}`: {len(runs)} runs, models "
                               f"{', '.join(models)}, seeds {', '.join(map(str, seeds))}. "
                               f"`{trivial}` is the trivial predictor that draws the static "
                               "scene of every frame."))
    flagged = warnings(runs)
    if flagged:
        sec.blocks.append(("text", "These runs failed a training check (kvae_bench/sanity.py); "
                                   "their scores are in the tables below:"))
        sec.blocks.append(("list", [f"{name}: {w}" for name, w in flagged]))
    for metric, what in (("hamming", "Hamming distance over the unobserved frames (fraction "
                                     "of wrong pixels, lower is better)"),
                         ("position_error", "error of the tracked object's position read off "
                                            "the imputed frames (median pixels over the "
                                            "unobserved frames, lower is better)")):
        for protocol, first, _ in IMPUTATION:
            t = level_table(table, index, d, protocol, metric, first, trivial)
            if t:
                t.caption = f"Imputation, {protocol} missing frames: {what}."
                sec.blocks.append(("table", t))
    for metric, what in (("hamming", "Hamming distance per generated frame"),
                         ("position_error", "position error per generated frame (median px)")):
        t = level_table(table, index, d, "generation", metric, "step", trivial)
        if t:
            n_obs = runs[0]["generation"].get("n_observed", "") if runs else ""
            t.caption = (f"Generation from the first {n_obs} frames against the simulator's "
                         f"true continuation: {what}.")
            sec.blocks.append(("table", t))
    elbo = elbo_table(table, index, d)
    if elbo:
        sec.blocks.append(("table", elbo))
    scalars = [r for r in table if r["env"] == d and r["protocol"] == ""]
    if scalars:
        sec.blocks.append(("table", Table(
            ["model", "metric", "value", "n"],
            [[r["model"], r["metric"], _fmt(r), str(r["n"])] for r in scalars],
            "Test ELBO terms per frame (nats), reconstruction Hamming, and R² of a linear probe "
            "from the codes to the true position.")))
    if figure:
        sec.blocks.append(("image", f"{d}: imputation and generation", figure))
    sec.blocks += _claim_blocks([c for c in checks if c["env"] == d])
    for v in videos:
        sec.blocks.append(("image", f"{d} {v['model']} video", v["src"]))
        sec.blocks.append(("text", f"{v['model']}, seed {v['seed']}: one test sequence per "
                                   f"row; columns {', '.join(v['columns'])}. Mask "
                                   f"{v['mask']}; 'generated' is given the first "
                                   f"{v['n_observed']} frames only."))
    sec.blocks.append(("table", _runs_table(runs)))
    return sec


SUMMARY_P, SUMMARY_K = 0.5, 15  # random p and planning k of the summary's columns


def summary_section(table: list[dict], index: Index, metrics: list[dict]) -> Section | None:
    """One table over every data set: each model's imputation methods (the KVAE's smoothed
    first, the trivial predictor last) at random p = 0.5 and planning k = 15 (the longest gap
    where sequences are shorter), mean ± std over seeds."""
    rows = []
    for d in sorted({m["dataset"] for m in metrics}):
        trivial = next(m["trivial"] for m in metrics if m["dataset"] == d)
        ks = sorted({r["level"] for r in table if r["env"] == d
                     and r["protocol"] == "planning"}, key=references.level_key)
        if not ks:
            continue
        k = SUMMARY_K if SUMMARY_K in ks else ks[-1]
        series = _series(table, d, "hamming", ("random", "planning"), trivial)
        series.sort(key=lambda s: (s[0] == trivial, s[0] != "kvae", s[0],
                                   s[1] != "smoothed", s[1]))
        for model, method in series:
            random = index.get(d, model, method, "random", SUMMARY_P, "hamming")
            rows.append([d if k == SUMMARY_K else f"{d} (k = {_level_text(k)})",
                         model if model == trivial else f"{model} {method}",
                         _fmt(random),
                         _fmt(index.get(d, model, method, "planning", k, "hamming")),
                         _fmt(index.get(d, model, method, "planning", k, "position_error"), 2),
                         str((random or {}).get("n", ""))])
    if not rows:
        return None
    sec = Section("Summary", "summary")
    sec.blocks.append(("table", Table(
        ["data set", "model", f"Hamming, random p = {SUMMARY_P:g}",
         f"Hamming, planning k = {SUMMARY_K}", f"position error (px), planning k = {SUMMARY_K}",
         "n"], rows,
        "Imputation of the unobserved frames, mean ± std over n seeds (lower is better); each "
        "data set's section below has every level, generation and the references. A data set "
        "of shorter sequences shows its longest gap (k in its name), which runs to the last "
        "frame: there smoothing has nothing after the gap and equals filtering.")))
    return sec


def elbo_table(table: list[dict], index: Index, d: str) -> Table | None:
    """Test ELBO per sequence (nats) per model, beside published values where the references
    hold any for this data set (their source and how they were obtained in the caption)."""
    rows = [r for r in table if r["env"] == d and r["metric"] == "test_elbo_per_sequence"]
    refs = [r for r in index.refs.values() if r["env"] == d and r["metric"] == "elbo_per_sequence"]
    if not rows or not refs:
        return None
    models = [r["model"] for r in rows] + sorted({r["model"] for r in refs}
                                                 - {r["model"] for r in rows})
    ours = {r["model"]: r for r in rows}
    theirs = {r["model"]: r for r in refs}
    body = []
    for model in models:
        row, ref = ours.get(model), theirs.get(model)
        mine = "" if row is None else (f"{row['mean']:.2f}" + (
            f" ± {row['std']:.2f}" if row["n"] > 1 else "") + f" (n = {row['n']})")
        body.append([model, mine, "" if ref is None else f"{ref['value']:.2f}",
                     "" if ref is None else f"{ref['source']}: {ref['how']}"])
    return Table(["model", "ours: test ELBO per sequence (nats)", "published", "source"], body,
                 "Test ELBO per sequence (nats), ours mean ± std over seeds. Not like for like "
                 "with the published values: ours is a Bernoulli likelihood of binary frames, "
                 "theirs a Gaussian likelihood of their pixel scale (positive values), so only "
                 "each column's ordering compares.")


def _runs_table(runs: list[dict]) -> Table:
    rows = []
    for m in sorted(runs, key=lambda m: (m["model"], m["seed"])):
        trained = " + ".join(f"{s['device']} {s['epochs']} ep ({s['seconds'] / 60:.1f})"
                             for s in m["training"])
        config = m.get("config") if isinstance(m.get("config"), dict) else {}
        where = config.get("machine") if isinstance(config.get("machine"), dict) else {}
        hardware = where.get("gpu") or f"{where.get('cpus', '?')} CPUs"
        machine = f"{where.get('host', '')}: {hardware}" if where else ""
        rows.append([Path(m["run_dir"]).name, m["model"], str(m["seed"]), str(m["epoch"]),
                     trained, f"{m.get('device', '')} ({(m.get('seconds') or 0) / 60:.1f})",
                     str(config.get("launched_by", "")), machine,
                     (m.get("code_version") or "")[:12],
                     (m.get("data_fingerprint") or "")[:12]])
    return Table(["run", "model", "seed", "epochs", "trained on (minutes)",
                  "evaluated on (minutes)", "launched by", "machine (first epoch)", "code",
                  "data"], rows,
                 "Runs: training minutes are the sum of the epochs' times in log.jsonl (a run "
                 "resumed on another machine lists each part).")


# ---- figures and videos -----------------------------------------------------------------------


def figure(table: list[dict], index: Index, d: str, trivial: str | None, path: Path) -> None:
    """Imputation Hamming vs level (random, planning; references dashed) and generation
    Hamming per step, for one data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*((p, x) for p, _, x in IMPUTATION), ("generation", "generated step")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (protocol, xlabel) in zip(axes, panels):
        for i, (model, method) in enumerate(_series(table, d, "hamming", (protocol,), trivial)):
            pts = sorted((references.level_key(r["level"]), r["mean"], r["std"]) for r in table
                         if (r["env"], r["model"], r["method"], r["protocol"], r["metric"])
                         == (d, model, method, protocol, "hamming"))
            xs, ys, es = zip(*pts)
            is_trivial = model == trivial
            color = "grey" if is_trivial else f"C{i}"
            ax.errorbar(xs, ys, yerr=es, color=color, linestyle=":" if is_trivial else "-",
                        marker="o", ms=3, capsize=2,
                        label=model if is_trivial else f"{model} {method}")
            refs = sorted((k[4], r["value"]) for k, r in index.refs.items()
                          if k[:4] == (d, model, method, protocol) and k[5] == "hamming")
            if refs:
                ax.plot(*zip(*refs), color=color, linestyle="--", alpha=0.7,
                        label=f"{model} {method}, reference")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Hamming distance")
        ax.set_title(f"{d}: {protocol}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with runinfo.atomic_path(path, suffix=".png") as tmp:  # the suffix names the format
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def video(m: dict, path: Path) -> dict | None:
    """GIF of a run's example arrays: per sequence the columns true / observed / each method /
    generated. None when the run has no examples."""
    from kvae_bench.viz import video_grid, write_gif

    ex = rundir.read_examples(m["run_dir"])
    if not ex or not {"true", "generated"} <= set(ex):
        return None
    true, generated = ex.pop("true"), ex.pop("generated")
    mask = ex.pop("mask", np.ones(true.shape[:2]))
    n_obs = true.shape[1] - generated.shape[1]
    methods = sorted(ex)
    rows = []
    for i in range(len(true)):
        observed = true[i] * (mask[i][:, None, None] > 0.5)
        rows += [true[i], observed, *(ex[k][i] for k in methods),
                 np.concatenate([true[i, :n_obs], generated[i]])]
    frames = (np.stack(rows) > 0).astype(np.uint8) * 255
    write_gif(path, video_grid(frames, cols=3 + len(methods), scale=3), fps=4)
    mask_name = m.get("examples", {}).get("mask")
    return {"model": m["model"], "seed": m["seed"], "n_observed": n_obs,
            "columns": ["true", "observed", *methods, "generated"],
            "mask": " ".join(map(str, mask_name)) if mask_name else "as shown in 'observed'"}


# ---- rendering --------------------------------------------------------------------------------


def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("kvae_bench", "templates"),
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(page: dict) -> str:
    env = _templates()
    env.filters["cell"] = _md_cell
    return env.get_template("report.md.j2").render(**page)


def render_html(page: dict) -> str:
    import markdown

    env = _templates()
    env.autoescape = True
    env.filters["markdown"] = lambda text: __import__("markupsafe").Markup(
        markdown.markdown(text, extensions=["tables", "fenced_code"]))
    return env.get_template("report.html.j2").render(**page)


# ---- the command ------------------------------------------------------------------------------


def check_out_dir(out_dir: Path, runs_dir: Path | None = None) -> dict | None:
    """The output folder must be the report's own: absent, empty (but for NOTES.md and the
    runs folder itself), or a report's (rundir.is_report_dir). Returns the previous summary,
    if any."""
    for parent in (out_dir, *out_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {out_dir}: {parent} is a file: choose a folder for the "
                            "report")
    if not out_dir.is_dir():
        return None
    previous = rundir.read_summary(out_dir)
    if previous is None and not rundir.is_report_dir(out_dir):
        inside = {(runs_dir.resolve().relative_to(out_dir.resolve()).parts or ("",))[0]} \
            if runs_dir is not None and runs_dir.resolve().is_relative_to(out_dir.resolve()) \
            else set()
        foreign = sorted(p.name for p in out_dir.iterdir()
                         if p.name != NOTES_FILE and p.name not in inside)
        if foreign:
            shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
            raise UserError(f"--out {out_dir} holds files a report did not write ({shown}): "
                            "choose a new or empty folder, or a previous report's folder")
    return previous


def check_no_runs_lost(previous: dict | None, ids: set, out_dir: Path) -> None:
    """Refuse to replace a report that covered runs not in `ids`, each (data set as the report
    names it, model, seed, data fingerprint). A run is the same run under a new label (e.g.
    `polygon` -> `polygon@5b0b88ca` when the canonical data changed): runs are matched on
    (model, seed, data fingerprint), and on the label only where a report did not record the
    fingerprint."""
    by_data = {(m, s, fp) for _, m, s, fp in ids if fp}
    by_label = {(d, m, s) for d, m, s, _ in ids}
    lost = []
    for r in (previous or {}).get("runs", []):
        d, m, s, fp = _run_id(r)
        if (m, s, fp) not in by_data if fp else (d, m, s) not in by_label:
            lost.append((d, m, s))
    lost.sort(key=str)
    if lost:
        shown = ", ".join(f"{d}/{m}/s{s}" for d, m, s in lost[:5])
        raise UserError(f"{out_dir} reports {len(lost)} run(s) that would be missing "
                        f"({shown}{', ...' if len(lost) > 5 else ''}): pass --force to replace "
                        "it with fewer runs, or report into another folder")


def run_ids(metrics: list[dict]) -> set:
    """The ids check_no_runs_lost compares, of loaded runs."""
    return {_run_id(m) for m in metrics}


def _run_id(r: dict) -> tuple:
    return (r.get("dataset") or r.get("env"), r.get("model"), r.get("seed"),
            r.get("data_fingerprint") or "")


def report(runs_dir: str | os.PathLike = "results/runs", out_dir: str | os.PathLike = "results",
           commands: list[str] | None = None, force: bool = False) -> tuple[Path, list[str]]:
    """Aggregate every run under runs_dir into out_dir; returns (out_dir, problems).

    Refuses (UserError, nothing written) when runs_dir has no readable run, when out_dir holds
    files that are not a report's, or when out_dir's previous report covered runs that this
    one would drop (unless force)."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} not found: train and evaluate runs first")
    previous = check_out_dir(out_dir, runs_dir)
    metrics, problems = load_runs(runs_dir)
    if not metrics:
        detail = f" ({len(problems)} left out: {_first_of(problems)})" if problems else ""
        hint = "" if problems else " (--runs is the folder that holds run folders, e.g. " \
            "results/runs)"
        raise UserError(f"no readable run under {runs_dir}{detail}; nothing written{hint}")
    if not force:
        try:
            check_no_runs_lost(previous, run_ids(metrics), out_dir)
        except UserError as e:  # say why runs are left out: --force is rarely the mend
            scored = [p for p in problems if ": skipped, " in p
                      or p.startswith(("skipped: ", "excluded "))]
            why = scored or problems  # runs with scores that were left out: likely the lost
            if not why:
                raise
            raise UserError(f"{e}. Left out this time: {_first_of(why)}") from None
    write_report(out_dir, tidy(metrics), metrics, problems, commands or ["kvae-bench report"])
    return out_dir, problems + [f"{name} failed a check: {w}" for name, w in warnings(metrics)]


def _first_of(items: list[str]) -> str:
    """The first item, and how many more there are."""
    return items[0] + (f"; {len(items) - 1} more" if len(items) > 1 else "")


def warnings(metrics: list[dict]) -> list[tuple[str, str]]:
    """(run folder, one failed check) of every run (kvae_bench.sanity); the folder as found
    under the runs folder, since superseded/ holds folders of the same names."""
    return [(m["run_dir"], w) for m in sorted(metrics, key=lambda m: m["run_dir"])
            for w in sanity.run_warnings(m)]


def _remove_stale(out_dir: Path, made: list[str]) -> None:
    """Figures and GIFs of data sets or models this report no longer shows (e.g. a data set
    relabelled by new canonical data): figures/ and videos/ are the report's own."""
    for folder, pattern in (("figures", "*.png"), ("videos", "*.gif")):
        for path in (out_dir / folder).glob(pattern):
            if f"{folder}/{path.name}" not in made:
                path.unlink()
                logging.getLogger(__name__).warning(
                    "removed %s: no data set or model of this report has it (%s/ holds the "
                    "report's own files; keep yours beside the report)", path, folder)


def write_report(out_dir: Path, table: list[dict], metrics: list[dict], problems: list[str],
                 commands: list[str]) -> None:
    """Write the tidy table and its page (figures, videos, README.md, index.html,
    summary.json) into out_dir; metrics give each data set's runs, trivial predictor and
    videos."""
    rundir.mark_report_dir(out_dir)  # first: an interrupted report still owns its folder
    refs = references.load_references()
    index = Index(table, refs)
    ours = {(r["env"], f"{r['model']}/{r['method']}", r["protocol"],
             references.level_key(r["level"]), r["metric"]): r["mean"] for r in table}
    ref_means = {(r["env"], f"{r['model']}/{r['method']}", r["protocol"],
                  references.level_key(r["level"]), r["metric"]): r["value"] for r in refs}
    checks = references.check_claims(references.load_claims(), ours, ref_means)

    summary = summary_section(table, index, metrics)
    sections, made = [], []
    for d in sorted({m["dataset"] for m in metrics}):
        runs = [m for m in metrics if m["dataset"] == d]
        trivial = runs[0]["trivial"]
        fig = f"figures/{d}.png"
        figure(table, index, d, trivial, out_dir / fig)
        videos = []
        for model in sorted({m["model"] for m in runs}):
            first = min((m for m in runs if m["model"] == model), key=lambda m: m["seed"])
            src = f"videos/{d}-{model}.gif"
            v = video(first, out_dir / src)
            if v:
                videos.append({**v, "src": src})
        sections.append(dataset_sections(d, table, index, metrics, checks, videos, fig))
        made += [fig, *(v["src"] for v in videos)]
    _remove_stale(out_dir, made)
    notes_path = out_dir / NOTES_FILE
    notes = notes_path.read_text() if notes_path.is_file() else ""
    page = {"title": "kvae-bench results", "created": runinfo.utc_now(),
            "code_version": runinfo.git_commit(), "notes": notes.strip(),
            "datasets": [s.title for s in sections], "sections": sections, "summary": summary,
            "warnings": [f"{name}: {w}" for name, w in warnings(metrics)],
            "problems": problems, "commands": commands}
    runinfo.atomic_write_text(out_dir / "table.csv", table_csv(table))
    rundir.write_summary(out_dir, {
        "columns": list(COLUMNS), "rows": table, "created_utc": page["created"],
        "code_version": page["code_version"], "problems": problems,
        "warnings": page["warnings"],
        "claims": [{k: c[k] for k in ("env", "title", "kind", "series", "levels", "passed",
                                      "counted")} for c in checks],
        "runs": [{k: m.get(k) for k in ("run", "model", "dataset", "env", "seed", "epoch",
                                        "code_version", "data_fingerprint", "mask_fingerprint",
                                        "device", "seconds", "training")} for m in metrics]})
    runinfo.atomic_write_text(out_dir / "README.md", render_markdown(page))
    runinfo.atomic_write_text(out_dir / "index.html", render_html(page))

"""`kvae-bench benchmark`: the grid (data sets x models x seeds) generated, trained, evaluated
and reported, on one of three executors:

    local            one run after another in this process (the default)
    local --jobs N   N runs at once, each in its own process (one machine, many cores or a GPU)
    ray              every run a Ray task with declared resources (--cpus-per-run,
                     --gpus-per-run, fractions allowed so that runs share a GPU), on a local Ray
                     instance or a cluster (--address); needs `pip install kvae-bench[ray]`

Data is generated once per data set, on the driver, before the runs that need it (a Ray task
gets the file's bytes through the object store). A Ray task trains in --worker-dir on its node,
where its checkpoint stays, and returns the run's small files (config, log, metrics, examples),
which the driver writes under OUT/runs/: the driver's folder holds every result even when the
workers share no file system.

Re-runnable: a run whose metrics.json scores the profile's epochs on the same data (fingerprint)
is skipped; an interrupted run resumes from its checkpoint where that is reachable (locally:
its folder; on Ray: the same node's --worker-dir); a failed run is reported with its error and
does not stop the others. The end prints done / skipped / failed and writes the report. A run
folder that holds another run stops the grid before training: one on other data (e.g. after a
generator change) goes into RUNS/superseded/, where the report still shows it, labelled by its
data; one of another model or seed, or made with other options (a recipe or default changed
since, or a resume that replaced them), leaves RUNS (it would fill the same table cell).

Profiles:
    smoke  64 + 16 videos, 1 epoch: every code path in about a minute on 2 cores, for trying
           the suite and for tests
    quick  2000 + 200 videos, 8 epochs (a 156-step warm-up, as in the paper profile: a 62-step
           one left the AE-RNN at the average frame; the KVAE's dynamics network frozen for 2
           epochs instead of 10; the DMM at the shared learning rate 0.007, since in its 500
           steps the recipe's 0.001 left it drawing no ball, test ELBO -98.5 per frame, where
           0.007 draws it 3.6 px off, -63.5; neither passes the training checks so soon):
           minutes on 2 cores, to try the suite
    paper  the paper's protocol: 5000 + 1000 videos, 80 epochs, paper defaults
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kvae_bench import rundir, sanity
from kvae_bench.errors import UserError
from kvae_bench.models import BUILTIN

WORKER_DIR = Path("~/.cache/kvae-bench/ray-runs")  # on each Ray node: checkpoints, data


@dataclass(frozen=True)
class Profile:
    n_train: int
    n_test: int
    epochs: int
    train_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)  # model name -> its options
    data_suffix: str = ""
    out: str = "results"


PROFILES = {
    "smoke": Profile(64, 16, 1, {"batch_size": 16, "warmup_steps": 2, "eval_limit": 16},
                     {"kvae": {"frozen_dynamics_epochs": 0}}, data_suffix="_smoke",
                     out="results/smoke"),
    "quick": Profile(2000, 200, 8, model_options={"kvae": {"frozen_dynamics_epochs": 2},
                                                  "dvbf": {"anneal_epochs": 4},
                                                  "dmm": {"anneal_epochs": 1, "lr": 0.007}},
                     data_suffix="_quick", out="results/quick"),
    "paper": Profile(5000, 1000, 80),
}


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: what to train, on which data, with which options."""

    name: str  # its folder under OUT/runs/
    env: str  # the data set's name in the tables: ENV or ENV-PRESET
    model: str  # module:Class
    model_name: str  # its name in the tables
    seed: int
    data: str  # the driver's data file
    data_fingerprint: str
    options: dict  # training and model options, epochs included


def layout(profile: str, out: str | os.PathLike | None) -> tuple[Path, Path]:
    """(report folder, runs folder) of a grid: --out DIR gives DIR and DIR/runs; the defaults
    are the profile's folder and results/runs/PROFILE."""
    if out is not None:
        return Path(out), Path(out) / "runs"
    return Path(PROFILES[profile].out), Path("results/runs") / profile


def plan(envs: list[str], models: list[str], seeds: list[int], profile: str,
         progress: bool = True) -> list[RunSpec]:
    """The grid's runs (each data set, model and seed once; models by their resolved name);
    generates each data set's file (data/ENV[_suffix].h5) if missing, and checks an existing
    one is the profile's (env, sizes; the canonical fingerprint where one is recorded)."""
    from kvae_bench import models as registry
    from kvae_bench.data import fingerprint
    from kvae_bench.references import datasets_csv
    from simulators.generate import generate

    prof = PROFILES[profile]
    specs = {m.name: m for m in map(registry.resolve, models)}  # one entry per model
    canonical = datasets_csv()
    runs = []
    for dataset in dict.fromkeys(envs):
        env, preset, want = profile_data(dataset, profile)
        data = Path("data") / f"{dataset}{prof.data_suffix}.h5"
        if not data.exists():
            print(f"generating {data}", file=sys.stderr)
            generate(data, env, n_train=want["train"], n_test=want["test"],
                     n_val=want.get("val", 0), steps=want["steps"], preset=preset,
                     progress=progress)
        fp = fingerprint(data)
        _check_profile_data(data, dataset, want, fp,
                            canonical.get(data.stem, {}).get("fingerprint"))
        for seed in dict.fromkeys(seeds):
            for name, spec in specs.items():
                options = {**prof.train_options, **MODEL_RECIPES.get(name, {}),
                           **prof.model_options.get(name, {}),
                           **DATASET_MODEL_OPTIONS.get(dataset, {}).get(name, {}),
                           "epochs": prof.epochs}
                runs.append(RunSpec(f"{name}-{dataset}-s{seed}", dataset, spec.target, name, seed,
                                    str(data), fp, options))
    return runs


# Options a model gets in every profile: its recipe for this benchmark's task. The DMM infers
# a gap from both sides only when its backward RNN sees the mask and it trains with gaps
# (pendulum-dvbf, seeds 0 and 1: median position error at random p = 0.5 from 1.62 and 0.78 px
# to 0.64 and 0.57 px), and it anneals its KL term over its first 10 epochs (pendulum, seed 0:
# without, two of its four state dimensions went unused and one missing frame was 1.29 px off
# after 10 epochs, 0.90 px after 80; annealed, 0.63 px after 10). It learns at 0.001, a
# seventh of the rate every other model shares: at 0.007 pendulum seed 1 failed the training
# check after 80 epochs (Hamming at random p = 0.5 0.98 of the empty frame's, 1.84 px), at
# 0.001 it passed (0.67 of it, 0.88 px); see results/NOTES.md, pendulum.
MODEL_RECIPES = {"dmm": {"gap_aware": True, "train_miss_prob": 0.5, "anneal_epochs": 10,
                         "lr": 0.001}}

# Model options a data set needs: models that take controls use the data's.
# pendulum-dvbf's 80 epochs are 1,200 steps, a tenth of a 32 x 32 data set's: there the DMM
# keeps the shared 0.007, since at its recipe's 0.001 it was still climbing at the end (seeds
# 0, 1, 2: test ELBO per frame -6.53, -4.89, -5.08 against -3.04, -3.65, -4.89 at 0.007).
DATASET_MODEL_OPTIONS = {
    "pendulum-dvbf": {"kvae": {"dim_u": 1, "control": "data"},
                      "kvae-mlp": {"dim_u": 1, "control": "data"},
                      "dvbf": {"dim_u": 1},
                      "dmm": {"lr": 0.007}},
}


def split_dataset(dataset: str) -> tuple[str, str | None]:
    """'box' -> ('box', None); 'pendulum-dvbf' -> ('pendulum', 'dvbf'). ValueError names the
    valid ones."""
    import simulators
    from simulators import presets

    if dataset in simulators.ENVS:
        return dataset, None
    env, _, preset = dataset.partition("-")
    if env in simulators.ENVS and preset:
        presets.get(env, preset)
        return env, preset
    valid = [*simulators.ENVS, *(f"{e}-{p}" for e, p in presets.PRESETS)]
    raise ValueError(f"unknown data set {dataset!r}; valid: {', '.join(valid)}")


def profile_data(dataset: str, profile: str) -> tuple[str, str | None, dict]:
    """(env, preset, sizes) of a data set in a profile: the profile's sizes for an env, a
    preset's own sizes (the smoke profile's, tiny, for either)."""
    from simulators import presets

    prof = PROFILES[profile]
    env, preset = split_dataset(dataset)
    if preset and profile != "smoke":
        p = presets.get(env, preset)
        return env, preset, {"train": p.n_train, "val": p.n_val, "test": p.n_test,
                             "steps": p.steps}
    steps = presets.get(env, preset).steps if preset else 20
    return env, preset, {"train": prof.n_train, "test": prof.n_test, "steps": steps}


def _check_profile_data(data: Path, dataset: str, want: dict, fp: str, canonical: str | None):
    import simulators
    from kvae_bench import h5io

    meta = h5io.read_meta(data)
    made = {"dataset": h5io.dataset_name(meta), "steps": meta["steps"],
            **{s: m["n"] for s, m in meta["splits"].items()}}
    expected = {"dataset": dataset, **{k: v for k, v in want.items() if v}}
    version = meta.get("generator_version")
    if not canonical and version != simulators.GENERATOR_VERSION:  # (a canonical file's
        # fingerprint says more: data that a version change left alone keeps it)
        raise UserError(f"{data} was made by generator version {version}, this code's is "
                        f"{simulators.GENERATOR_VERSION}: move it away and the benchmark "
                        "generates it anew")
    if made != expected or (canonical and fp != canonical):
        sizes = " + ".join(f"{made[s]} {s}" for s in ("train", "val", "test") if s in made)
        raise UserError(f"{data} is not this profile's {dataset} data ({sizes} sequences of "
                        f"{made['steps']} frames, data set {made['dataset']}"
                        f"{', not the canonical file' if canonical and fp != canonical else ''}"
                        f"): move it away and the benchmark generates it")


def planned_ids(specs: list[RunSpec], runs_root: Path) -> set:
    """(data set as the report names it, model, seed, data fingerprint) of the grid's runs and
    of the runs already under runs_root: what the report at the end will cover."""
    from kvae_bench.report import dataset_label, load_runs, run_ids

    fingerprints = {}
    for s in specs:
        fingerprints.setdefault(s.env, set()).add(s.data_fingerprint)
    ids = {(dataset_label(s.env, s.data_fingerprint, fingerprints[s.env]), s.model_name, s.seed,
            s.data_fingerprint) for s in specs}
    if runs_root.is_dir():
        ids |= run_ids(load_runs(runs_root)[0])
    return ids


def finished(run: Path, spec: RunSpec) -> bool:
    """metrics.json scores this spec's epochs on the same data, model and seed."""
    try:
        config, metrics = rundir.read_config(run), rundir.read_metrics(run)
    except UserError:
        return False
    return (config["data_fingerprint"] == spec.data_fingerprint == metrics.get("data_fingerprint")
            and config["seed"] == spec.seed and metrics["epoch"] >= spec.options["epochs"]
            and spec.model == _config_model(config))


# Options that change how fast a run goes, not what it learns: a run may differ in these.
_EXECUTION_OPTIONS = ("epochs", "cuda_graph", "max_bad_steps")


def recipe_difference(config: dict, spec: RunSpec) -> str:
    """'' where a run's saved options are the ones this spec would train with (its options
    over the model's and the trainer's defaults, today's) and it was never resumed with other
    ones; else the first difference, e.g. "train_miss_prob 0.0, this grid's 0.5". An option a
    run's config lacks (added since) counts as its default, the behaviour before it existed.
    _EXECUTION_OPTIONS are left out (a run may go on for more epochs). ValueError where the
    spec's options are not the model's (a recipe or profile names an unknown option)."""
    from kvae_bench import models as registry
    from kvae_bench.train import TrainConfig, split_options

    try:
        mspec = registry.resolve(spec.model)
        model_opts, train_opts = split_options(spec.options, mspec)
    except (ValueError, UserError) as e:
        raise ValueError(f"the grid's options for {spec.model_name}: {e}") from None
    defaults = {("model_config", k): o.default for k, o in mspec.options.items()}
    defaults |= {("train_config", f.name): f.default for f in fields(TrainConfig)}
    want = {**defaults, **{("model_config", k): v for k, v in model_opts.items()},
            **{("train_config", k): v for k, v in train_opts.items()}}
    for (part, key), value in want.items():
        if key in _EXECUTION_OPTIONS or value is inspect.Parameter.empty:
            continue
        theirs = config.get(part, {}).get(key, defaults[part, key])
        if not _same(theirs, _as_saved(value)):
            return f"{key} {theirs}, this grid's {value}"
    for change in config.get("changes", []):  # a resume that replaced training options
        for key, value in change.get("changed", {}).items():
            if key not in (*_EXECUTION_OPTIONS, "data"):
                return f"{key} set to {value} on resuming at epoch {change.get('at_epoch')}"
    return ""


def _as_saved(value):
    """A value as config.json gives it back (a tuple as a list)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
            isinstance(a, bool) or isinstance(b, bool)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or (a != a and b != b)
    return a == b


def _config_model(config: dict) -> str | None:
    """The model target a run's config names (runs of built-in models before model_target
    existed name the model only)."""
    return config.get("model_target") or BUILTIN.get(config["model"])


def check_run_folders(specs: list[RunSpec], runs_root: Path) -> None:
    """ValueError, before any work, where a spec's folder holds a run it cannot continue: one
    on other data (e.g. a data set whose generator changed since), another model or seed, or
    other options (a recipe or default changed since). Resuming it would fail hours later or
    mix two recipes in one run; skipping a finished one would publish it as this grid's."""
    for spec in specs:
        run = runs_root / spec.name
        if not rundir.is_run(run):
            if run.exists() and (not run.is_dir() or any(run.iterdir())):
                raise ValueError(f"{run} holds files that are not a run (no config.json): "
                                 "move the folder aside, or pass --out elsewhere")
            continue
        try:
            config = rundir.read_config(run)
        except UserError as e:
            raise ValueError(f"{e}: move the folder aside to rerun it") from None
        model = _config_model(config)
        theirs = config["data_fingerprint"]
        if theirs != spec.data_fingerprint:
            raise ValueError(f"{run} holds another run (data {theirs[:12]}, this grid's "
                             f"{spec.data_fingerprint[:12]}): move it into "
                             f"{runs_root / 'superseded'}/ (the grid's report still shows it, "
                             "labelled by its data), or pass --out elsewhere")
        what = (f"another run (seed {config['seed']})" if config["seed"] != spec.seed else
                f"another run (model {model})" if model != spec.model else "")
        if not what:
            recipe = recipe_difference(config, spec)
            what = recipe and f"a run made with other options ({recipe})"
        if what:  # on the same data: in superseded/ it would fill a table cell of this grid's
            raise ValueError(f"{run} holds {what}: move it out of {runs_root} (a committed "
                             "run stays in git history), or pass --out elsewhere")


def headline(metrics: dict) -> str:
    """One number for the progress line: the first method's Hamming at random p = 0.5."""
    for r in metrics["imputation"]:
        if r["protocol"] == "random" and abs(r["level"] - 0.5) < 1e-9:
            return f"{r['method']} Hamming {r['hamming']:.4f} at p = 0.5"
    return ""


# ---- one run, wherever it executes -------------------------------------------------------------


def execute(spec: RunSpec, run: Path, device: str, threads: int | None, progress: bool,
            data: str | None = None, executor: str = "local") -> dict:
    """Train (or resume) and evaluate one run in folder `run`; never raises: returns
    {"name", "status": "done" | "failed", "minutes", "error"}."""
    import torch

    from kvae_bench.evaluate import evaluate
    from kvae_bench.train import train

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    try:
        resume = rundir.is_run(run)
        what = recipe_difference(rundir.read_config(run), spec) if resume else ""
        if what:  # e.g. a Ray worker's folder, which check_run_folders cannot see
            raise UserError(f"{run} holds a run made with other options ({what}): delete "
                            "it to train this grid's")
        options = dict(spec.options)
        if resume and rundir.has_checkpoint(run):  # trained past this grid's epochs: keep them
            options["epochs"] = max(options.get("epochs", 0), rundir.checkpoint_epoch(run))
        train(run, None if resume else spec.model, data or spec.data, options,
              seed=spec.seed, device=device, resume=resume, progress=False,
              launched_by=f"kvae-bench benchmark, {executor} executor")
        evaluate(run, device=device, progress=False, data=data or spec.data)
        return {"name": spec.name, "status": "done", "minutes": (time.time() - t0) / 60}
    except Exception as e:  # a failed run is reported, never stops the grid (Ctrl-C and
        # SIGTERM, KeyboardInterrupt and SystemExit, do)
        return {"name": spec.name, "status": "failed", "minutes": (time.time() - t0) / 60,
                "error": first_line(e)}


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def _local_job(args) -> dict:
    """A --jobs worker process: one run in its folder under the driver's runs folder."""
    spec, run, device, threads = args
    return execute(spec, Path(run), device, threads, progress=False, executor="local --jobs")


def _remote_run(spec_dict: dict, data_bytes: bytes, grid: str, worker_dir: str, device: str,
                threads: int | None) -> dict:
    """The Ray task: the data file from the driver's bytes (cached on this node by
    fingerprint), the run in worker_dir/grid/NAME (its checkpoint stays there), and the run's
    small files returned as bytes."""
    from kvae_bench import runinfo

    spec = RunSpec(**spec_dict)
    root = Path(worker_dir).expanduser() / grid
    data = root / "data" / f"{spec.data_fingerprint[:16]}.h5"
    if not data.exists():
        with runinfo.atomic_path(data) as tmp:
            tmp.write_bytes(data_bytes)
    run = root / spec.name
    result = execute(spec, run, device, threads, progress=False, data=str(data), executor="ray")
    result["files"] = {name: (run / name).read_bytes() for name in rundir.SMALL_FILES
                       if (run / name).is_file()}
    result["where"] = f"{socket.gethostname()}:{run}"
    return result


# ---- the grid -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (name, error)


def run_grid(specs: list[RunSpec], runs_root: Path, executor: str = "local", jobs: int = 1,
             device: str = "auto", cpus_per_run: float | None = None,
             gpus_per_run: float = 0.0, address: str | None = None,
             worker_dir: str | os.PathLike = WORKER_DIR, progress: bool = True) -> Outcome:
    """Run every spec not finished yet; returns what was done, skipped and failed."""
    from tqdm import tqdm

    outcome = Outcome()
    todo = []
    for spec in specs:
        if finished(runs_root / spec.name, spec):
            outcome.skipped.append(spec.name)
        else:
            todo.append(spec)
    bar = tqdm(total=len(todo), unit="run", desc="benchmark", disable=None if progress else True,
               file=sys.stderr)

    def report_one(result: dict) -> None:
        name = result["name"]
        if result["status"] == "done":
            try:
                metrics = rundir.read_metrics(runs_root / name)
            except UserError as e:
                result = {**result, "status": "failed", "error": str(e)}
        if result["status"] == "done":
            outcome.done.append(name)
            line = f"done {name} in {result['minutes']:.1f} min: {headline(metrics)}"
            line += "".join(f"\nwarning: {name} failed a check: {w}"
                            for w in sanity.run_warnings(metrics))
        else:
            outcome.failed.append((name, result["error"]))
            line = f"FAILED {name} after {result['minutes']:.1f} min: {result['error']}"
        bar.update(1)
        tqdm.write(line, file=sys.stderr)

    threads = int(cpus_per_run) if cpus_per_run else None
    if executor == "ray":
        _run_on_ray(todo, runs_root, device, cpus_per_run or 1, gpus_per_run, address,
                    worker_dir, threads or 1, report_one)
    elif jobs > 1:
        import concurrent.futures
        import multiprocessing

        threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_local_job, (spec, str(runs_root / spec.name), device,
                                                threads)): spec for spec in todo}
            for f in concurrent.futures.as_completed(futures):
                try:
                    result = f.result()
                except Exception as e:  # the worker process died (e.g. os._exit in a model)
                    result = {"name": futures[f].name, "status": "failed", "minutes": 0.0,
                              "error": f"its process died ({first_line(e)})"}
                report_one(result)
    else:
        for spec in todo:
            report_one(execute(spec, runs_root / spec.name, device, threads, progress))
    bar.close()
    return outcome


def _run_on_ray(todo, runs_root, device, cpus, gpus, address, worker_dir, threads, report_one):
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'kvae-bench[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": os.cpu_count()}))
        except Exception as e:
            raise UserError(f"cannot start or join Ray ({first_line(e)}): check --address, or "
                            "start a cluster with `ray start --head`") from None
    try:
        fits = [n for n in ray.nodes() if n.get("Alive")
                and n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus]
        if not fits:
            raise UserError(f"no Ray node has {cpus:g} CPUs and {gpus:g} GPUs for a run (nodes: "
                            + "; ".join(f"{n['Resources'].get('CPU', 0):g} CPUs, "
                                        f"{n['Resources'].get('GPU', 0):g} GPUs"
                                        for n in ray.nodes() if n.get("Alive"))
                            + "): lower --cpus-per-run or --gpus-per-run")
        task = ray.remote(_remote_run).options(num_cpus=cpus, num_gpus=gpus, max_retries=2)
        grid = hashlib.sha256(str(runs_root.resolve()).encode()).hexdigest()[:12]
        data_refs = {}
        pending = {}
        for spec in todo:
            if spec.data not in data_refs:  # each data set's bytes go out once
                data_refs[spec.data] = ray.put(Path(spec.data).read_bytes())
            ref = task.remote(asdict(spec), data_refs[spec.data], grid, str(worker_dir), device,
                              threads)
            pending[ref] = spec
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # the task itself died (retries exhausted)
                result = {"name": spec.name, "status": "failed", "minutes": 0.0,
                          "error": first_line(e)}
            for name, blob in result.pop("files", {}).items():
                rundir.write_file(runs_root / spec.name, name, blob)
            report_one(result)
    finally:
        if started:
            ray.shutdown()


def summary_lines(outcome: Outcome) -> list[str]:
    lines = [f"{len(outcome.done)} done, {len(outcome.skipped)} skipped (finished before), "
             f"{len(outcome.failed)} failed"]
    lines += [f"failed: {name}: {error}" for name, error in outcome.failed]
    return lines


def headline_lines(out_dir: Path, datasets: list[str] | None = None) -> list[str]:
    """The headline numbers for the terminal, one line per data set and level: every model
    and method's Hamming at a few levels."""
    rows = (rundir.read_summary(out_dir) or {}).get("rows", [])
    picks = [("random", 0.5), ("random", 0.9), ("planning", 5), ("planning", 15)]
    lines = []
    for d in sorted({r["env"] for r in rows if datasets is None
                     or r["env"].split("@")[0] in datasets}):
        for protocol, level in picks:
            cells = [f"{r['model']} {r['method']} {r['mean']:.4f}" for r in rows
                     if r["env"] == d and r["protocol"] == protocol and r["metric"] == "hamming"
                     and r["level"] is not None and float(r["level"]) == float(level)]
            if cells:
                lines.append(f"{d}, {protocol} {level}: " + ", ".join(cells))
    return lines


def parse_list(text: str, kind=str, name: str = "list", example: str = "0,1,2") -> list:
    """Comma-separated values of one kind; the error names the option and the bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{name}: expected a comma-separated list, e.g. {example}; got "
                        f"{text!r}")
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

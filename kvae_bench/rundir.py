"""THE run-folder format: the only module that knows a run folder's file names and schemas.

    RUN/config.json    schema "kvae-bench/run-config" v2: model (its name in tables),
                       model_target (module:Class), model_source (module, distribution,
                       version), model_config (every model option), train_config, data
                       (absolute path), data_name, data_fingerprint, seed, code_version,
                       versions, device, created_utc; `changes` lists options changed on resume.
                       v1 (and files without a schema) are read: the options that moved from
                       train_config into the model's options move with them.
    RUN/log.jsonl      one JSON object per finished epoch: epoch (1, 2, ...), step, lr,
                       train_* and test_* ELBO terms, skipped_steps, seconds, device
    RUN/ckpt.pt        torch.save of {schema_version, model, optimizer, epoch, step}, plain types
                       (torch.load(weights_only=True) reads it); the only file that needs torch
    RUN/metrics.json   schema "kvae-bench/metrics" v2 (v1 still read): the benchmark's scores
    RUN/examples.npz   a few test sequences and their imputations, for the report's GIFs
    RUN/diverged.json  while training last stopped on non-finite steps: {epoch, bad_steps,
                       utc}; removed once an epoch finishes again
    RUN/.train.lock    while a process trains the run: held by it (flock), names it;
                       removed when it stops (a killed one's is taken over)
    OUT/summary.json   schema "kvae-bench/summary" v1: a report's table and the runs behind it
                       (and since the training checks, their "warnings")
    OUT/.kvae-bench-report  written before anything else: OUT is a report's folder

Every writer is atomic (runinfo.atomic_path). Every reader validates what it returns and raises
RunFormatError (a UserError: one line, says what to do) instead of a traceback, so a damaged
file is named before any work starts. torch is imported by the checkpoint functions only:
`kvae-bench report` reads run folders without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import re
import shlex
import socket
from pathlib import Path

import numpy as np

from kvae_bench import runinfo
from kvae_bench.errors import UserError

CONFIG, LOG, CHECKPOINT, METRICS, EXAMPLES, SUMMARY, REPORT_MARK, LOCK, DIVERGED = (
    "config.json", "log.jsonl", "ckpt.pt", "metrics.json", "examples.npz", "summary.json",
    ".kvae-bench-report", ".train.lock", "diverged.json")
SMALL_FILES = (CONFIG, LOG, METRICS, EXAMPLES)  # what a run publishes (never its checkpoint)
SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._@+-]*")  # data set and model names: file names
CONFIG_SCHEMA, CONFIG_VERSION = "kvae-bench/run-config", 2
# v1 -> v2: training options that became model options, and the models that took them
# (v1 name, v2 name, models that take it; others drop it)
MOVED_TO_MODEL = (("conv_precision", "conv_precision", ("kvae", "ae_rnn", "vae_rnn")),
                  ("only_vae_epochs", "only_vae_epochs", ("kvae",)),
                  ("kf_update_steps", "frozen_dynamics_epochs", ("kvae",)))
IGNORED_BY = {"ae_rnn": ("noise_emission", "scale_reconstruction")}  # v1 accepted, unused
METRICS_SCHEMA, METRICS_VERSION = "kvae-bench/metrics", 2
CHECKPOINT_VERSION = 1
SUMMARY_SCHEMA, SUMMARY_VERSION = "kvae-bench/summary", 1


class RunFormatError(UserError):
    """A run file is missing, damaged or from an unknown schema; the message names it."""


def _check(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise RunFormatError(f"{path}: {what}")


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFormatError(f"{path}: unreadable {what} ({e})") from None
    _check(isinstance(obj, dict), path, f"not a {what} (a JSON object expected)")
    return obj


# ---- config.json ------------------------------------------------------------------------------


def is_run(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CONFIG).is_file()


def write_config(run_dir: str | os.PathLike, config: dict) -> None:
    runinfo.atomic_write_json(Path(run_dir) / CONFIG,
                              {"schema": CONFIG_SCHEMA, "schema_version": CONFIG_VERSION,
                               **config})


def read_config(run_dir: str | os.PathLike) -> dict:
    """The validated config of a run (files written before the schema field are v1 too)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunFormatError(f"{run_dir} is not a run directory (no {CONFIG}): train one with "
                             "`kvae-bench train`")
    c = _read_json(path, "run config")
    _check(c.get("schema", CONFIG_SCHEMA) == CONFIG_SCHEMA, path,
           f"schema {c.get('schema')!r}, expected {CONFIG_SCHEMA!r}")
    version = c.get("schema_version", 1)
    _check(version in (1, CONFIG_VERSION), path,
           f"schema_version {version!r}; this code reads 1 and {CONFIG_VERSION}")
    for key, kind in (("model", str), ("model_config", dict), ("train_config", dict),
                      ("data", str), ("data_fingerprint", str), ("seed", int)):
        _check(isinstance(c.get(key), kind), path, f"{key!r} missing or not a {kind.__name__}")
    if version == 1:
        train, model = dict(c["train_config"]), dict(c["model_config"])
        for old, new, owners in MOVED_TO_MODEL:
            if old in train:
                value = train.pop(old)
                if c["model"] in owners:
                    model[new] = value
        for key in IGNORED_BY.get(c["model"], ()):
            model.pop(key, None)
        c = {**c, "schema_version": CONFIG_VERSION, "train_config": train,
             "model_config": model}
    return c


# ---- log.jsonl --------------------------------------------------------------------------------


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """The epochs' rows in order; [] when there is no log. A damaged line is an error that
    names its line number (a log is written whole and atomically, so damage is foreign)."""
    path = Path(run_dir) / LOG
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path}: unreadable ({e})") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        _check(isinstance(row, dict) and isinstance(row.get("epoch"), int)
               and not isinstance(row.get("epoch"), bool), path,
               f"line {i} is not an epoch record; restore the file or retrain the run")
        _check(not rows or row["epoch"] > rows[-1]["epoch"], path,
               f"line {i}: epoch {row['epoch']} out of order")
        rows.append(row)
    return rows


def write_log(run_dir: str | os.PathLike, rows: list[dict]) -> None:
    runinfo.atomic_write_text(Path(run_dir) / LOG, "".join(json.dumps(r) + "\n" for r in rows))


def logged_progress(run_dir: str | os.PathLike) -> tuple[int, int] | None:
    """(last logged epoch, 0 with none, and the epochs the config asks for), or None where
    unknown or unreadable: a run whose log stops short of its epochs is unfinished."""
    try:
        rows, epochs = read_log(run_dir), read_config(run_dir)["train_config"].get("epochs")
    except RunFormatError:
        return None
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        return None
    return (rows[-1]["epoch"] if rows else 0), epochs


def evaluate_command(run_dir: str | os.PathLike) -> str:
    """The command that scores a run, as typed into a shell (quoted)."""
    return f"`kvae-bench evaluate {shlex.quote(str(run_dir))}`"


def resume_command(run_dir: str | os.PathLike, extra: str = "") -> str:
    """The command that continues a run, as typed into a shell (quoted)."""
    return f"`kvae-bench train --resume --out {shlex.quote(str(run_dir))}{extra}`"


def stale_reason(run_dir: str | os.PathLike, scored_epoch: int | None,
                 fresh: bool = False) -> str | None:
    """Why a run's scores (of `scored_epoch`, None: no metrics.json) are not the finished
    run's, with the command that mends it; None where they are (or the config or log is
    unreadable: their readers say so). `fresh`: the scores were just made from the checkpoint,
    so a log ahead of them means the checkpoint lags it (stopped while saving)."""
    done = logged_progress(run_dir)
    if done is None:
        return None
    logged, epochs = done
    if logged == 0 and scored_epoch is not None:
        return None  # scores but no log (e.g. copied without it): nothing to compare
    unfinished = logged < epochs
    if not unfinished and (scored_epoch is None or scored_epoch == logged):
        return None
    holder = training_holder(run_dir)
    if holder:
        return f"being trained by {holder}, epoch {logged} of {epochs} done"
    resume = resume_command(run_dir)
    diverged = divergence(run_dir) if unfinished else None
    if diverged:
        return (f"training diverged at epoch {diverged['epoch']} ({diverged['bad_steps']} "
                f"non-finite steps in a row), epoch {logged} of {epochs} done: resuming with "
                f"the same options repeats it; resume with others "
                f"({resume_command(run_dir, ' --set lr=...')}) or exclude the run with an "
                "EXCLUDED.md")
    if unfinished:
        scored = "" if scored_epoch is None else f", scored at epoch {scored_epoch}"
        return f"training unfinished, epoch {logged} of {epochs}{scored} (finish it with {resume})"
    if scored_epoch > logged:
        return (f"metrics.json scores epoch {scored_epoch}, but the log ends at epoch {logged} "
                f"(the run was trained again since): score it again with "
                f"{evaluate_command(run_dir)}")
    if fresh:
        return (f"its checkpoint is at epoch {scored_epoch} but its log reaches {logged} "
                f"(stopped while saving): finish it with {resume}")
    return (f"metrics.json scores epoch {scored_epoch}, but the run trained {logged} (score it "
            f"again with {evaluate_command(run_dir)}; should that score epoch "
            f"{scored_epoch} again, finish it with {resume})")


def mark_diverged(run_dir: str | os.PathLike, epoch: int, bad_steps: int) -> None:
    """Record that training stopped on `bad_steps` non-finite steps in a row in `epoch`
    (from 1), for the report to say so."""
    runinfo.atomic_write_json(Path(run_dir) / DIVERGED, {
        "epoch": epoch, "bad_steps": bad_steps, "utc": runinfo.utc_now()})


def clear_diverged(run_dir: str | os.PathLike) -> None:
    (Path(run_dir) / DIVERGED).unlink(missing_ok=True)


def divergence(run_dir: str | os.PathLike) -> dict | None:
    """The record of mark_diverged, or None (none, or unreadable: the report says less)."""
    try:
        d = json.loads((Path(run_dir) / DIVERGED).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(d, dict) and all(isinstance(d.get(k), int) for k in ("epoch", "bad_steps"))
    return d if ok else None


def training_holder(run_dir: str | os.PathLike) -> str | None:
    """Who trains the run now ("pid N on HOST since T"), where a live process holds its lock;
    None where none does (or locks do not exist here)."""
    path = Path(run_dir) / LOCK
    try:
        import fcntl

        f = open(path)
    except (ImportError, OSError):
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def training_history(run_dir: str | os.PathLike, default_device: str = "") -> list[dict]:
    """Where a run's epochs ran: [{"device", "epochs", "seconds"}] in order, from log.jsonl.

    A run may be resumed on another machine; rows written before the log recorded the
    device ran on `default_device` (config.json's device)."""
    spans: list[dict] = []
    for row in read_log(run_dir):
        dev = row.get("device", default_device)
        if not spans or spans[-1]["device"] != dev:
            spans.append({"device": dev, "epochs": 0, "seconds": 0.0})
        spans[-1]["epochs"] += 1
        seconds = row.get("seconds", 0.0)
        spans[-1]["seconds"] = round(spans[-1]["seconds"]
                                     + (seconds if _is_number(seconds) else 0.0), 2)
    return spans


@contextlib.contextmanager
def training_lock(run_dir: str | os.PathLike):
    """Hold RUN/.train.lock while training: a second process that would train the same folder
    (a grid started twice, a resume beside a running run) is refused instead of both writing
    its checkpoint and log. The OS releases the lock when its process dies, however it dies;
    the file is removed on the way out (a killed process's is taken over by the next).
    Where flock does not exist (Windows), no lock is taken."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(run_dir) / LOCK
    while True:
        try:
            f = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), "r+")
        except OSError as e:  # a link, or not writable
            raise UserError(f"cannot take the training lock {path} ({e.strerror or e}): "
                            "remove it if it is not a plain file") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise UserError(f"{run_dir} is being trained by {who}: wait for it to finish, or "
                            "stop it and resume") from None
        except OSError as e:  # a file system without locks (some NFS or FUSE mounts)
            f.close()
            path.unlink(missing_ok=True)
            logging.getLogger(__name__).warning(
                "cannot lock %s (%s): nothing stops a second process training it at once",
                run_dir, e.strerror or e)
            yield
            return
        try:  # the holder may have removed the file between our open and our lock
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {runinfo.utc_now()}\n")
        f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # before the lock goes with the file's closing
        f.close()


# ---- ckpt.pt ----------------------------------------------------------------------------------


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CHECKPOINT).is_file()


def save_checkpoint(run_dir: str | os.PathLike, state: dict) -> None:
    """state: model and optimizer state dicts, epoch, step; tensors are moved to the CPU."""
    import torch

    with runinfo.atomic_path(Path(run_dir) / CHECKPOINT) as tmp:
        torch.save(_to_cpu({"schema_version": CHECKPOINT_VERSION, **state}), tmp)


def load_checkpoint(run_dir: str | os.PathLike, device="cpu") -> dict:
    """The validated checkpoint: {"model", "optimizer", "epoch", "step", ...}."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunFormatError(f"{run_dir} has no checkpoint yet: finish an epoch of "
                             f"`kvae-bench train --out {run_dir} --resume` first")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise RunFormatError(f"{path} is damaged or not a kvae-bench checkpoint ({reason}): "
                             f"delete it and retrain (`kvae-bench train --out {run_dir} "
                             "--resume` starts again from epoch 0)") from None
    _check(isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict)
           and isinstance(ckpt.get("epoch"), int) and isinstance(ckpt.get("step"), int), path,
           "not a kvae-bench checkpoint (no model, epoch or step): delete it and retrain")
    _check(ckpt.get("schema_version", CHECKPOINT_VERSION) == CHECKPOINT_VERSION, path,
           f"checkpoint schema_version {ckpt.get('schema_version')!r}; this code reads "
           f"{CHECKPOINT_VERSION}")
    return ckpt


def checkpoint_epoch(run_dir: str | os.PathLike) -> int:
    """Finished epochs of a run (0 without a checkpoint)."""
    return load_checkpoint(run_dir)["epoch"] if has_checkpoint(run_dir) else 0


def _to_cpu(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# ---- metrics.json and examples.npz ------------------------------------------------------------


def has_metrics(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / METRICS).is_file()


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS


def write_metrics(run_dir: str | os.PathLike, metrics: dict) -> Path:
    path = metrics_path(run_dir)
    runinfo.atomic_write_json(path, {"schema": METRICS_SCHEMA, "schema_version": METRICS_VERSION,
                                     **metrics})
    return path


def _number_list(v) -> bool:
    return isinstance(v, list) and all(x is None or _is_number(x) for x in v)


def read_metrics(run_dir: str | os.PathLike) -> dict:
    """Validated metrics of one run; v1 files are upgraded (dataset = env, trivial = walls)."""
    path = metrics_path(run_dir)
    m = _read_json(path, "metrics file")
    _check(m.get("schema") == METRICS_SCHEMA, path,
           f"schema {m.get('schema')!r}, expected {METRICS_SCHEMA!r}")
    version = m.get("schema_version")
    _check(version in (1, METRICS_VERSION), path,
           f"schema_version {version!r}; this code reads 1 and {METRICS_VERSION}")
    if version == 1:
        gen = m.get("generation")
        if isinstance(gen, dict) and "walls_hamming_per_step" in gen:
            gen = {**gen, "trivial_hamming_per_step": gen["walls_hamming_per_step"]}
        m = {**m, "dataset": m.get("env"), "trivial": "walls",
             "trivial_predictor": m.get("walls_predictor"), "generation": gen}
    for key, kind in (("dataset", str), ("env", str), ("model", str), ("seed", int),
                      ("epoch", int), ("trivial", str), ("imputation", list),
                      ("trivial_predictor", list), ("generation", dict)):
        _check(isinstance(m.get(key), kind) and not isinstance(m.get(key), bool), path,
               f"{key!r} missing or not a {kind.__name__}")
    for key in ("dataset", "model", "trivial"):  # they name files of the report
        _check(SAFE_NAME.fullmatch(m[key]) is not None, path,
               f"{key} {m[key]!r} is not a plain name (letters, digits, . _ @ + -)")
    for key in ("run", "code_version", "data_fingerprint", "mask_fingerprint", "device",
                "created_utc"):
        _check(m.get(key) is None or isinstance(m[key], str), path, f"{key!r} is not a string")
    _check(m.get("examples") is None or isinstance(m["examples"], dict), path,
           "'examples' is not an object")
    for rows, what in ((m["imputation"], "imputation"), (m["trivial_predictor"], "trivial")):
        for r in rows:
            _check(isinstance(r, dict) and isinstance(r.get("protocol"), str)
                   and _is_number(r.get("level")) and isinstance(r.get("method"), str)
                   and all(r.get(k) is None or _is_number(r.get(k))
                           for k in ("hamming", "position_error")), path,
                   f"a malformed {what} row: {str(r)[:80]}")
    for key, value in m["generation"].items():
        _check(key == "n_observed" or _number_list(value), path,
               f"generation.{key} is not a list of numbers")
    for key in ("elbo",):
        _check(m.get(key) is None or (isinstance(m[key], dict) and all(
            v is None or _is_number(v) for v in m[key].values())), path,
            f"{key!r} is not a dict of numbers")
    for key in ("reconstruction_hamming", "probe_r2", "seconds"):
        _check(m.get(key) is None or _is_number(m[key]), path, f"{key!r} is not a number")
    training = m.get("training") or []
    _check(isinstance(training, list) and all(
        isinstance(s, dict) and isinstance(s.get("device"), str) and _is_number(s.get("epochs"))
        and _is_number(s.get("seconds")) for s in training), path,
        "'training' is not a list of {device, epochs, seconds}")
    m["training"] = training
    m["run_dir"] = str(Path(run_dir))
    return m


def write_file(run_dir: str | os.PathLike, name: str, content: bytes) -> None:
    """Write one of a run's small files (SMALL_FILES) as received, e.g. from a remote worker;
    it is validated by its reader like any other."""
    if name not in SMALL_FILES:
        raise ValueError(f"{name!r} is not one of a run's small files {SMALL_FILES}")
    with runinfo.atomic_path(Path(run_dir) / name, suffix=Path(name).suffix) as tmp:
        tmp.write_bytes(content)


def write_examples(run_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with runinfo.atomic_path(Path(run_dir) / EXAMPLES, suffix=".npz") as tmp:  # numpy wants .npz
        np.savez_compressed(tmp, **arrays)


def read_examples(run_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The example arrays of a run, or None when it has none (or they are unreadable)."""
    path = Path(run_dir) / EXAMPLES
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # missing or damaged: the report simply shows no video for this run
        return None


# ---- finding runs -----------------------------------------------------------------------------


EXCLUDED = "EXCLUDED.md"  # a run kept for the record but left out of every table: the reason


def excluded_reason(run_dir: str | os.PathLike) -> str | None:
    """The first line of the run's EXCLUDED.md, or None where the run counts."""
    path = Path(run_dir) / EXCLUDED
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Run folders (those holding config.json or metrics.json) under root, sorted."""
    root = Path(root)
    found = {p.parent for name in (CONFIG, METRICS) for p in root.rglob(name)}
    return sorted(found)


def check_writable(folder: str | os.PathLike) -> None:
    """Raise RunFormatError now, before any work, if files cannot be created in folder."""
    folder = Path(folder)
    try:
        with runinfo.atomic_path(folder / ".write-check") as tmp:
            tmp.write_text("")
        (folder / ".write-check").unlink()
    except OSError as e:
        raise RunFormatError(f"cannot write in {folder} ({e.strerror or e}): make it writable "
                             "or copy the run elsewhere") from None


# ---- summary.json (a report's output folder) ---------------------------------------------------


def mark_report_dir(out_dir: str | os.PathLike) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / REPORT_MARK).write_text("This folder is written by `kvae-bench report`.\n")


def is_report_dir(out_dir: str | os.PathLike) -> bool:
    return (Path(out_dir) / REPORT_MARK).is_file() or (Path(out_dir) / SUMMARY).is_file()


def write_summary(out_dir: str | os.PathLike, summary: dict) -> None:
    runinfo.atomic_write_json(Path(out_dir) / SUMMARY,
                              {"schema": SUMMARY_SCHEMA, "schema_version": SUMMARY_VERSION,
                               **summary})


def read_summary(out_dir: str | os.PathLike) -> dict | None:
    """A previous report's summary in out_dir, or None when there is none. Summaries written
    before the schema field (they have `columns` and `rows`) are read as v1."""
    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        s = _read_json(path, "report summary")
    except RunFormatError as e:
        raise RunFormatError(f"{e}: delete it to let the report rewrite this folder, or choose "
                             "another --out") from None
    legacy = "schema" not in s and "rows" in s and "columns" in s
    _check(legacy or (s.get("schema") == SUMMARY_SCHEMA
                      and s.get("schema_version") == SUMMARY_VERSION), path,
           f"not a kvae-bench report summary (schema {s.get('schema')!r}): delete it to let "
           "the report rewrite this folder, or choose another --out")
    _check(isinstance(s.get("rows"), list) and isinstance(s.get("runs", []), list), path,
           "'rows' or 'runs' is not a list")
    return s

"""One training loop for every model: seeded, resumable, checkpointed every epoch.

The run folder (config.json, log.jsonl, ckpt.pt) is kvae_bench.rundir's: see there.

Every random choice flows from the seed: the model's initialisation from torch.manual_seed(seed),
and epoch e's shuffling and noise from generators seeded by (seed, e). So a run killed at any
point and resumed from its checkpoint ends with the same weights as one that ran straight through
(the checkpoint needs no RNG state).

`--resume` takes the options saved in config.json; options given again replace them (training
options only: the model, its architecture, the seed and the data stay) and are listed in the
config's `changes`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from kvae_bench import masks, rundir, runinfo
from kvae_bench.data import VideoSplit, fingerprint, locate_data
from kvae_bench.errors import UserError
from kvae_bench.models import MODELS, build, model_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training options; defaults are the paper's (Adam 0.007, x0.85 every 20 epochs, 80 epochs,
    batch 32, clip 150) plus a linear learning-rate warm-up over the first 156 steps."""

    epochs: int = 80
    batch_size: int = 32
    lr: float = 0.007
    lr_decay: float = 0.85
    lr_decay_every: int = 20  # epochs
    warmup_steps: int = 156  # linear lr warm-up (one epoch of box); without it Adam at 0.007
    # killed the encoder in measured runs (DESIGN.md, known pitfalls)
    grad_clip: float = 150.0
    only_vae_epochs: int = 0  # first epochs: the VAE alone, N(0, I) prior on a
    kf_update_steps: int = 10  # next epochs: VAE + A_k, C_k; the alpha network stays frozen
    train_miss_prob: float = 0.0  # drop each frame after the first t_init with this probability
    t_init: int = 4
    conv_precision: str = "bf16"  # bf16 | float32: autocast of the conv layers only
    train_limit: int = 0  # use only the first N training sequences (0: all)
    eval_limit: int = 0  # score the test ELBO on the first N test sequences (0: all)
    max_bad_steps: int = 20  # consecutive non-finite steps before the run stops

    def validate(self) -> None:
        """Raise ValueError naming the first option out of its range."""
        for name in ("epochs", "batch_size", "lr_decay_every", "t_init"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "only_vae_epochs", "kf_update_steps", "train_limit",
                     "eval_limit", "max_bad_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = {'all' if 'limit' in name else 'none'}"
                                 f"), got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.train_miss_prob < 1:
            raise ValueError(f"train_miss_prob must be in [0, 1), got {self.train_miss_prob}")
        if self.conv_precision not in ("bf16", "float32"):
            raise ValueError(f"conv_precision must be bf16 or float32, got "
                             f"{self.conv_precision!r}")


class TrainingDiverged(UserError):
    """Too many consecutive non-finite steps."""


def split_options(values: dict, model: str) -> tuple[dict, dict]:
    """Split flat key=value options into (model options, train options); unknown keys fail."""
    model_fields = {f.name: f for f in dataclasses.fields(MODELS[model][1])}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    model_opts, train_opts = {}, {}
    for key, value in values.items():
        if key in model_fields:
            model_opts[key] = _coerce(key, value, model_fields[key])
        elif key in train_fields:
            train_opts[key] = _coerce(key, value, train_fields[key])
        else:
            valid = sorted(model_fields) + sorted(train_fields)
            raise UserError(f"unknown option {key!r}; valid: {', '.join(valid)}")
    return model_opts, train_opts


def _coerce(key, value, field):
    """value (a command-line string or a TOML value) as the type of the field's default;
    numbers must be finite."""
    kind = type(field.default)
    if isinstance(value, str) and kind is not str:
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            value = kind(value)
        except ValueError:
            raise UserError(f"option {key}={value!r}: expected {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"option {key}={value!r}: expected {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise UserError(f"option {key}={value!r}: expected a finite number")
    return value


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds for (run seed, epoch, stream) from numpy's SeedSequence."""
    import numpy as np

    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def learning_rate(cfg: TrainConfig, step: int, epoch: int) -> float:
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    return cfg.lr * warmup * cfg.lr_decay ** (epoch // cfg.lr_decay_every)


def random_mask(B: int, T: int, p: float, t_init: int, generator: torch.Generator, device):
    mask = (torch.rand(B, T, generator=generator) >= p).float()
    mask[:, :t_init] = 1.0
    return mask.to(device)


def evaluate_elbo(model, data: VideoSplit, batch_size: int, device, seed: int,
                  limit: int = 0) -> dict[str, float]:
    """Mean per-frame ELBO terms over (the first `limit` sequences of) a split."""
    gen = torch.Generator(device=device).manual_seed(seed)
    totals: dict[str, float] = {}
    count = 0
    model.eval()
    with torch.no_grad():
        for i, x in enumerate(data.batches(batch_size, device=device)):
            if limit and i * batch_size >= limit:
                break
            mask = torch.ones(x.shape[:2], device=device)
            _, logs = model.loss(x, mask, generator=gen)
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * len(x)
            count += len(x)
    model.train()
    return {k: v / count for k, v in totals.items()}


def train(run_dir: str | os.PathLike, model_name: str | None = None,
          data_path: str | os.PathLike | None = None, options: dict | None = None,
          seed: int | None = None, device: str = "auto", resume: bool = False,
          progress: bool = True) -> Path:
    """Train `model_name` (default kvae) on `data_path` (default data/box.h5) into run_dir.

    With resume, continue run_dir: the saved model, data, seed and options, with `options`
    replacing saved training options (see the module doc). Everything the run needs (options,
    data, the model fitting the frames, a writable folder) is checked before the folder is made.
    """
    run_dir = Path(run_dir)
    changes = {}
    if resume:
        saved = rundir.read_config(run_dir)
        model_name, data_path, seed, merged, changes = _resume_options(
            saved, model_name, data_path, options or {}, seed)
        model_opts, train_opts = saved["model_config"], merged
    else:
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"{run_dir} is a file, not a folder: choose another --out")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"{run_dir} exists and is not empty: pass --resume to continue a "
                            "run there, or choose another --out")
        model_name, data_path = model_name or "kvae", Path(data_path or "data/box.h5")
        seed = 0 if seed is None else seed
        model_opts, train_opts = split_options(options or {}, model_name)
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    try:
        mcfg = model_config(model_name, model_opts)
        tcfg = TrainConfig(**train_opts)
        tcfg.validate()
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    device = runinfo.choose_device(device)
    train_data = VideoSplit(data_path, "train", limit=tcfg.train_limit or None)
    test_data = VideoSplit(data_path, "test", limit=tcfg.eval_limit or None)
    _check_fits(model_name, mcfg, tcfg, train_data)
    if resume:
        rundir.check_writable(run_dir)
        if changes:
            log.warning("resuming %s with saved options, changed: %s", run_dir, ", ".join(
                f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
            saved["train_config"] = dataclasses.asdict(tcfg)
            saved.setdefault("changes", []).append({
                "at_epoch": rundir.checkpoint_epoch(run_dir), "utc": runinfo.utc_now(),
                "changed": {k: new for k, (_, new) in changes.items()}})
            rundir.write_config(run_dir, saved)
    else:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            rundir.check_writable(run_dir)
        except OSError as e:
            raise UserError(f"cannot create {run_dir} ({e.strerror or e}): choose another "
                            "--out") from None
        rundir.write_config(run_dir, {
            "model": model_name, "model_config": dataclasses.asdict(mcfg),
            "train_config": dataclasses.asdict(tcfg), "data": str(Path(data_path).resolve()),
            "data_name": Path(data_path).name, "data_fingerprint": fingerprint(data_path),
            "seed": seed, "code_version": runinfo.git_commit(), "versions": runinfo.versions(),
            "device": device, "created_utc": runinfo.utc_now()})

    torch.manual_seed(seed)
    model = build(model_name, mcfg, train_data.image_size).to(device)
    if tcfg.conv_precision == "bf16":
        model.conv_dtype = torch.bfloat16
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    start_epoch, step = 0, 0
    if resume and rundir.has_checkpoint(run_dir):
        ckpt = rundir.load_checkpoint(run_dir, device)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError):
            raise UserError(f"{run_dir}: the checkpoint does not fit the {model_name} model of "
                            "this code version: start a new run with another --out") from None
        start_epoch, step = ckpt["epoch"], ckpt["step"]
    log_rows = [r for r in rundir.read_log(run_dir) if r["epoch"] <= start_epoch]
    rundir.write_log(run_dir, log_rows)

    groups = model.param_groups()
    steps_per_epoch = max(1, len(train_data) // tcfg.batch_size)
    for epoch in range(start_epoch, tcfg.epochs):
        t0 = time.time()
        vae_only = epoch < tcfg.only_vae_epochs
        dynamics, lgssm = groups.get("dynamics", []), groups.get("lgssm", [])
        frozen = lgssm + dynamics if vae_only else (
            dynamics if epoch < tcfg.only_vae_epochs + tcfg.kf_update_steps else [])
        shuffle = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
        noise = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, 1))
        totals, count, skipped, bad_in_a_row = {}, 0, 0, 0
        bar = tqdm(train_data.batches(tcfg.batch_size, shuffle, device, drop_last=True),
                   total=steps_per_epoch, desc=f"epoch {epoch + 1}/{tcfg.epochs}",
                   disable=None if progress else True, leave=False, file=sys.stderr)
        for x in bar:
            lr = learning_rate(tcfg, step, epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            mask = torch.ones(x.shape[:2], device=device) if tcfg.train_miss_prob == 0 else \
                random_mask(*x.shape[:2], tcfg.train_miss_prob, tcfg.t_init, shuffle, device)
            loss, logs = model.loss(x, mask, generator=noise, vae_only=vae_only)
            optimizer.zero_grad(set_to_none=True)
            ok = bool(torch.isfinite(loss))
            if ok:
                loss.backward()
                for p in frozen:
                    p.grad = None
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
                ok = bool(torch.isfinite(norm))
            if not ok:
                skipped += 1
                bad_in_a_row += 1
                if bad_in_a_row > tcfg.max_bad_steps:
                    last = (f"{run_dir} (epoch {rundir.checkpoint_epoch(run_dir)})"
                            if rundir.has_checkpoint(run_dir) else "none (no epoch finished)")
                    raise TrainingDiverged(
                        f"{bad_in_a_row} non-finite steps in a row at epoch {epoch + 1}; "
                        f"last good checkpoint: {last}")
                optimizer.zero_grad(set_to_none=True)
                continue
            bad_in_a_row = 0
            optimizer.step()
            step += 1
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
            bar.set_postfix(loss=f"{loss.item():.2f}", log_px=f"{logs['log_px']:.1f}")
        train_logs = {f"train_{k}": v / max(count, 1) for k, v in totals.items()}
        test_logs = {f"test_{k}": v for k, v in evaluate_elbo(
            model, test_data, 2 * tcfg.batch_size, device, seed).items()}
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "skipped_steps": skipped,
               **train_logs, **test_logs, "seconds": round(time.time() - t0, 2),
               "device": device}
        log_rows.append(row)
        rundir.write_log(run_dir, log_rows)
        rundir.save_checkpoint(run_dir, {"model": model.state_dict(),
                                         "optimizer": optimizer.state_dict(),
                                         "epoch": epoch + 1, "step": step})
        if progress:
            elbo = (f"train elbo {train_logs['train_elbo']:.2f} test elbo "
                    f"{test_logs['test_elbo']:.2f} " if "test_elbo" in test_logs else "")
            tqdm.write(f"epoch {epoch + 1}: {elbo}test log p(x|a) "
                       f"{test_logs['test_log_px']:.2f} ({row['seconds']:.0f} s"
                       f"{f', {skipped} skipped' if skipped else ''})", file=sys.stderr)
    return run_dir


def _resume_options(saved: dict, model_name, data_path, options: dict, seed):
    """(model, data, seed, train options, changes) of a resumed run: the saved ones, with the
    given training options replacing saved ones. A different model, model option, seed or data
    is an error: the checkpoint belongs to those."""
    if model_name is not None and model_name != saved["model"]:
        raise UserError(f"cannot resume a {saved['model']} run as {model_name}: drop --model "
                        "or start a new run with another --out")
    if seed is not None and seed != saved["seed"]:
        raise UserError(f"cannot resume seed {saved['seed']} as seed {seed}: drop --seed or "
                        "start a new run with another --out")
    model_opts, train_opts = split_options(options, saved["model"])
    other = {k: v for k, v in model_opts.items() if saved["model_config"].get(k) != v}
    if other:
        raise UserError(f"cannot resume with other model options ({', '.join(other)}): the "
                        "checkpoint holds the saved model; start a new run with another --out")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {k: v for k, v in saved["train_config"].items() if k in known}
    changes = {k: (merged.get(k), v) for k, v in train_opts.items() if merged.get(k) != v}
    merged.update(train_opts)
    return saved["model"], locate_data(saved, data_path), saved["seed"], merged, changes


def _check_fits(model_name: str, mcfg, tcfg: TrainConfig, data: VideoSplit) -> None:
    """The data must be long enough for the protocol and the model must fit its frames: one
    forward pass on one sequence, before any folder is made."""
    T = data.frames.shape[1]
    need = max(masks.T_INIT, tcfg.t_init) + 1
    if T < need:
        raise UserError(f"{T} frames per sequence are too few: the benchmark observes "
                        f"{need - 1} and predicts the rest; generate data with --steps 20")
    x = (data.frames[:1] > 127).float()
    try:
        model = build(model_name, mcfg, data.image_size)
        with torch.no_grad():
            out = model.impute(x, torch.ones(x.shape[:2]))
        bad = [k for k, v in out.items() if tuple(v.shape) != tuple(x.shape)]
    except (RuntimeError, ValueError) as e:
        bad = [str(e).splitlines()[0][:80]]
    if bad:
        raise UserError(f"{model_name} does not fit frames of {data.image_size}x"
                        f"{data.image_size} ({'; '.join(bad)}): generate data with --size 32 "
                        "(the conv models need a multiple of 8)")

"""One training loop for every model: seeded, resumable, checkpointed every epoch.

A run directory holds
    config.json   the resolved model and training config, data file and fingerprint, seed,
                  code version, library versions (written once)
    ckpt.pt       model, optimiser, epoch, step and RNG state after the last finished epoch
                  (plain types: torch.load(weights_only=True) reads it); written atomically
    log.jsonl     one line per finished epoch: train and test ELBO and its terms, lr, time

Every random choice flows from the seed: the model's initialisation from torch.manual_seed(seed),
and epoch e's shuffling and noise from generators seeded by (seed, e). So a run killed at any
point and resumed from its checkpoint ends with the same weights as one that ran straight through.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from kvae_bench import runinfo
from kvae_bench.data import VideoSplit, fingerprint
from kvae_bench.errors import UserError
from kvae_bench.models import MODELS, build, model_config


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
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not self.lr > 0 or not 0 < self.lr_decay <= 1 or self.lr_decay_every < 1:
            raise ValueError("need lr > 0, 0 < lr_decay <= 1, lr_decay_every >= 1")
        if not 0 <= self.train_miss_prob < 1:
            raise ValueError("train_miss_prob must be in [0, 1)")
        if self.conv_precision not in ("bf16", "float32"):
            raise ValueError("conv_precision must be bf16 or float32")


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
    kind = type(field.default)
    if isinstance(value, str):
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return kind(value)
        except ValueError:
            raise UserError(f"option {key}={value!r}: expected {kind.__name__}") from None
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise UserError(f"option {key}={value!r}: expected {kind.__name__}")
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


def _to_cpu(obj):
    """Tensors anywhere inside obj moved to the CPU: checkpoints load on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _atomic_torch_save(obj, path: Path) -> None:
    with runinfo.atomic_path(path) as tmp:
        torch.save(_to_cpu(obj), tmp)


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_history(run_dir: str | os.PathLike) -> list[dict]:
    """Where a run's epochs ran: [{"device", "epochs", "seconds"}] in order, from log.jsonl.

    A run may be resumed on another machine; rows written before the log recorded the
    device ran on the device in config.json.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    default = json.loads(config_path.read_text()).get("device", "") if config_path.exists() \
        else ""
    spans: list[dict] = []
    for row in _read_log(run_dir / "log.jsonl"):
        dev = row.get("device", default)
        if not spans or spans[-1]["device"] != dev:
            spans.append({"device": dev, "epochs": 0, "seconds": 0.0})
        spans[-1]["epochs"] += 1
        spans[-1]["seconds"] = round(spans[-1]["seconds"] + row.get("seconds", 0.0), 2)
    return spans


def _write_log(path: Path, rows: list[dict]) -> None:
    runinfo.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


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


def train(run_dir: str | os.PathLike, model_name: str, data_path: str | os.PathLike,
          options: dict | None = None, seed: int = 0, device: str = "auto",
          resume: bool = False, progress: bool = True) -> Path:
    """Train `model_name` on `data_path` into run_dir (created, or continued with resume)."""
    run_dir = Path(run_dir)
    model_opts, train_opts = split_options(options or {}, model_name)
    try:
        mcfg = model_config(model_name, model_opts)
        tcfg = TrainConfig(**train_opts)
        tcfg.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    device = runinfo.choose_device(device)
    train_data = VideoSplit(data_path, "train", limit=tcfg.train_limit or None)
    test_data = VideoSplit(data_path, "test", limit=tcfg.eval_limit or None)
    config = {
        "model": model_name, "model_config": dataclasses.asdict(mcfg),
        "train_config": dataclasses.asdict(tcfg), "data": str(data_path),
        "data_fingerprint": fingerprint(data_path), "seed": seed,
    }
    ckpt_path, log_path, config_path = (run_dir / "ckpt.pt", run_dir / "log.jsonl",
                                        run_dir / "config.json")
    if resume:
        if not config_path.exists():
            raise UserError(f"{run_dir} has no config.json: nothing to resume; drop --resume")
        saved = json.loads(config_path.read_text())
        _check_same_run(saved, config)
        if saved["train_config"]["epochs"] != tcfg.epochs:
            saved["train_config"]["epochs"] = tcfg.epochs  # extending a run is allowed
            runinfo.atomic_write_json(config_path, saved)
    else:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"{run_dir} exists: pass --resume to continue it, or choose --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        runinfo.atomic_write_json(config_path, {
            **config, "code_version": runinfo.git_commit(), "versions": runinfo.versions(),
            "device": device, "created_utc": runinfo.utc_now()})

    torch.manual_seed(seed)
    model = build(model_name, mcfg, train_data.image_size).to(device)
    if tcfg.conv_precision == "bf16":
        model.conv_dtype = torch.bfloat16
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    start_epoch, step = 0, 0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step = ckpt["epoch"], ckpt["step"]
    log_rows = [r for r in _read_log(log_path) if r["epoch"] <= start_epoch]
    _write_log(log_path, log_rows)

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
                   disable=not progress, leave=False, file=sys.stderr)
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
                    last = (f"{ckpt_path} (epoch {_checkpoint_epoch(ckpt_path)})"
                            if ckpt_path.exists() else "none (no epoch finished)")
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
        _write_log(log_path, log_rows)
        _atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch + 1, "step": step,
                            "rng": {"torch": torch.get_rng_state()}}, ckpt_path)
        if progress:
            elbo = (f"train elbo {train_logs['train_elbo']:.2f} test elbo "
                    f"{test_logs['test_elbo']:.2f} " if "test_elbo" in test_logs else "")
            tqdm.write(f"epoch {epoch + 1}: {elbo}test log p(x|a) "
                       f"{test_logs['test_log_px']:.2f} ({row['seconds']:.0f} s"
                       f"{f', {skipped} skipped' if skipped else ''})", file=sys.stderr)
    return run_dir


def _checkpoint_epoch(ckpt_path: Path) -> int:
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"]


def _check_same_run(saved: dict, config: dict) -> None:
    """A resumed run must have the same model, options, data and seed (epochs may grow)."""
    diffs = []
    for key in ("model", "data_fingerprint", "seed"):
        if saved.get(key) != config[key]:
            diffs.append(key)
    for section in ("model_config", "train_config"):
        for k, v in config[section].items():
            if k != "epochs" and saved.get(section, {}).get(k) != v:
                diffs.append(k)
    if diffs:
        raise UserError(f"cannot resume: {', '.join(diffs)} differ from the saved run; "
                        "use the same options, or start a new run with another --out")

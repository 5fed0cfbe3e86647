"""The benchmark protocol on one trained run -> RUN_DIR/metrics.json (and examples.npz).

Over the whole test split, with masks that depend only on (mask seed, protocol, level):
- imputation, random p in {0.1, ..., 1.0} and planning k in {1, 3, ..., 15} (first 4 frames
  observed): Hamming over the unobserved frames for every method the model offers, the error of
  the ball's position read off the imputed frames, and the trivial "walls only" predictor;
- generation from 4 observed frames against the simulator's true continuation: Hamming and
  position error per step;
- test ELBO per frame (models that have one), reconstruction Hamming, a linear probe from the
  codes a_t to the true position (R^2), the 2017 "largest distance between two frames" scale;
- provenance: config, seed, code version, data and mask fingerprints, time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kvae_bench import masks, metrics, runinfo
from kvae_bench.data import VideoSplit, fingerprint
from kvae_bench.errors import UserError
from kvae_bench.models import build, model_config
from kvae_bench.models.nets import frame_mean
from kvae_bench.train import evaluate_elbo, training_history

SCHEMA = "kvae-bench/metrics"
SCHEMA_VERSION = 1
N_OBSERVED = masks.T_INIT
EXAMPLES = 4  # test sequences kept in examples.npz for the report's pictures
EXAMPLE_MASK = ("planning", 7)


def load_run(run_dir: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, config dict, finished epochs) of a run directory."""
    run_dir = Path(run_dir)
    config_path, ckpt_path = run_dir / "config.json", run_dir / "ckpt.pt"
    if not config_path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json): train one with "
                        "`kvae-bench train`")
    if not ckpt_path.exists():
        raise UserError(f"{run_dir} has no checkpoint yet: finish an epoch of "
                        f"`kvae-bench train --out {run_dir} --resume` first")
    try:
        config = json.loads(config_path.read_text())
        name = config["model"]
        mcfg = model_config(name, config["model_config"])
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
    except (json.JSONDecodeError, KeyError, ValueError, RuntimeError) as e:
        raise UserError(f"{run_dir}: unreadable run ({e})") from None
    data = VideoSplit(config["data"], "test", limit=1)
    model = build(name, mcfg, data.image_size).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise UserError(f"{ckpt_path} does not fit the {name} model of this code version "
                        f"({config.get('code_version') or 'unknown'} trained it): retrain "
                        "or check out that version") from None
    if config["train_config"].get("conv_precision") == "bf16":
        model.conv_dtype = torch.bfloat16
    model.eval()
    return model, config, ckpt["epoch"]


def _batched(model_fn, x: torch.Tensor, mask: np.ndarray, batch_size: int, device):
    """Run model_fn(x_batch, mask_batch) -> dict of tensors over x in batches; numpy dict."""
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device=device, dtype=torch.float32)
        mb = torch.from_numpy(mask[start:start + batch_size]).to(device)
        for k, v in model_fn(xb, mb).items():
            out.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(run_dir: str | os.PathLike, device: str = "auto", batch_size: int = 100,
             mask_seed: int = 0, progress: bool = True) -> Path:
    """Score a run; writes RUN_DIR/metrics.json and RUN_DIR/examples.npz atomically."""
    t0 = time.time()
    run_dir = Path(run_dir)
    device = runinfo.choose_device(device)
    model, config, epoch = load_run(run_dir, device)
    data_fingerprint = fingerprint(config["data"])
    if data_fingerprint != config.get("data_fingerprint"):
        raise UserError(f"{config['data']} changed since {run_dir} was trained (fingerprint "
                        "differs): regenerate it with the same command, or retrain")
    test = VideoSplit(config["data"], "test")
    frames = test.frames.numpy() > 127  # (N, T, H, W) bool
    x = torch.from_numpy(frames)
    N, T = frames.shape[:2]
    columns = test.columns
    has_xy = "x" in columns and "y" in columns
    true_xy = test.states[..., [columns.index("x"), columns.index("y")]] if has_xy else None
    background = metrics.static_background(frames)
    walls = np.broadcast_to(background, frames.shape)

    jobs = [(p, lvl) for p in masks.PROTOCOLS for lvl in masks.levels(p, T)]
    imputation, trivial = [], []
    examples = {"true": frames[:EXAMPLES].astype(np.uint8)}
    bar = tqdm(jobs, desc=f"evaluate {run_dir.name}", disable=not progress)
    for protocol, level in bar:
        mask = masks.make_mask(protocol, level, N, T, mask_seed)
        out = _batched(model.impute, x, mask, batch_size, device)
        for method, pred in out.items():
            row = {"protocol": protocol, "level": level, "method": method,
                   "hamming": metrics.hamming(pred, frames, mask),
                   "missing_frames": int((mask < 0.5).sum())}
            if has_xy:
                err = metrics.position_errors(pred, true_xy, background)[mask < 0.5]
                row["position_error"] = _nanmedian(err)
                row["no_ball_fraction"] = float(np.isnan(err).mean()) if err.size else 0.0
            imputation.append(row)
        trivial.append({"protocol": protocol, "level": level, "method": "walls",
                        "hamming": metrics.hamming(walls, frames, mask)})
        if (protocol, level) == EXAMPLE_MASK:
            examples["mask"] = mask[:EXAMPLES]
            for method, pred in out.items():
                examples[method] = (pred[:EXAMPLES] > 0.5).astype(np.uint8)

    steps = T - N_OBSERVED
    generated = _batched(lambda xb, _: {"g": model.generate(xb, N_OBSERVED, steps)}, x,
                         np.ones((N, T), np.float32), batch_size, device)["g"]
    future = frames[:, N_OBSERVED:]
    generation = {"n_observed": N_OBSERVED,
                  "hamming_per_step": metrics.hamming_per_frame(generated, future).mean(0)
                  .tolist(),
                  "walls_hamming_per_step": metrics.hamming_per_frame(walls[:, N_OBSERVED:],
                                                                      future).mean(0).tolist()}
    if has_xy:
        err = metrics.position_errors(generated, true_xy[:, N_OBSERVED:], background)
        generation["position_error_per_step"] = [_nanmedian(e) for e in err.T]
    examples["generated"] = (generated[:EXAMPLES] > 0.5).astype(np.uint8)

    result = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run": str(run_dir),
        "model": config["model"], "env": _env_name(config["data"]), "seed": config["seed"],
        "epoch": epoch, "config": config, "code_version": runinfo.git_commit(),
        "data": config["data"], "data_fingerprint": data_fingerprint,
        "mask_seed": mask_seed, "mask_fingerprint": masks.fingerprint(N, T, mask_seed),
        "test_sequences": N, "device": device, "created_utc": runinfo.utc_now(),
        "training": training_history(run_dir),
        "imputation": imputation, "walls_predictor": trivial, "generation": generation,
        "max_pairwise_hamming": metrics.max_pairwise_hamming(frames),
    }
    result.update(_latent_scores(model, config, test, x, true_xy, batch_size, device, has_xy))
    result["seconds"] = round(time.time() - t0, 1)
    runinfo.atomic_write_json(run_dir / "metrics.json", result)
    _save_npz(run_dir / "examples.npz", examples)
    return run_dir / "metrics.json"


def _latent_scores(model, config, test, x, true_xy, batch_size, device, has_xy) -> dict:
    """Test ELBO terms, reconstruction Hamming and the linear position probe."""

    out = {"elbo": evaluate_elbo(model, test, batch_size, device, config["seed"])}
    frames = x.numpy()
    codes, recon = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device=device, dtype=torch.float32)
            mean, _ = model.encode(xb)
            codes.append(mean.float().cpu().numpy())
            recon.append((frame_mean(model.decode(mean), model.config.likelihood) > 0.5)
                         .cpu().numpy())
    codes = np.concatenate(codes)
    recon = np.concatenate(recon)
    out["reconstruction_hamming"] = float(((recon > 0.5) != frames).mean())
    if has_xy:
        train = VideoSplit(config["data"], "train", limit=1000)
        cols = train.columns
        train_xy = train.states[..., [cols.index("x"), cols.index("y")]]
        with torch.no_grad():
            train_codes = np.concatenate([
                model.encode(xb.to(device))[0].float().cpu().numpy()
                for xb in train.batches(batch_size)])
        A = codes.shape[-1]
        out["probe_r2"] = metrics.linear_probe_r2(
            train_codes.reshape(-1, A), train_xy.reshape(-1, 2), codes.reshape(-1, A),
            true_xy.reshape(-1, 2))
    return out


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def _env_name(data_path: str) -> str:
    from kvae_bench import h5io

    return h5io.read_meta(data_path)["env"]


def _save_npz(path: Path, arrays: dict) -> None:
    with runinfo.atomic_path(path, suffix=".tmp.npz") as tmp:  # numpy wants the .npz suffix
        np.savez_compressed(tmp, **arrays)

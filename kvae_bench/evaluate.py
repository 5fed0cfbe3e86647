"""The benchmark protocol on one trained run -> RUN_DIR/metrics.json (and examples.npz).

Over the whole test split, with masks that depend only on (mask seed, protocol, level):
- imputation, random p in {0.1, ..., 1.0} and planning k in {1, 3, ..., 15} (first 4 frames
  observed): Hamming over the unobserved frames for every method the model offers, the error of
  tracked object's position read off the imputed frames, and the trivial predictor that draws
  the static scene (the env names it: "walls", "empty");
- generation from 4 observed frames against the simulator's true continuation: Hamming and
  position error per step;
- test ELBO per frame (models that have one), reconstruction Hamming, a linear probe from the
  codes a_t to the true position (R^2), the 2017 "largest distance between two frames" scale;
- provenance: config, seed, code version, data and mask fingerprints, time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import simulators
from kvae_bench import h5io, masks, metrics, models, rundir, runinfo
from kvae_bench.data import VideoSplit, locate_data
from kvae_bench.errors import UserError
from kvae_bench.train import control_kwargs, evaluate_elbo

N_OBSERVED = masks.T_INIT
EXAMPLES = 4  # test sequences kept in examples.npz for the report's pictures
EXAMPLE_MASK = ("planning", 7)


def load_run(run_dir: str | os.PathLike, device: str = "cpu",
             data: str | os.PathLike | None = None):
    """(model in eval mode, config dict, finished epochs, data path) of a run directory; the
    model is found through the registry (built in or from outside), the data file by the
    saved path or fingerprint (see data.locate_data)."""
    run_dir = Path(run_dir)
    config = rundir.read_config(run_dir)
    name = config["model"]
    try:
        spec = models.resolve(config.get("model_target") or name)
        options = models.resolve_options(spec, config["model_config"])
    except ValueError as e:
        raise UserError(f"{run_dir}: its model {name} cannot be built here ({e})") from None
    ckpt = rundir.load_checkpoint(run_dir, device)
    data_path = locate_data(config, data)
    try:
        model = models.build(spec, VideoSplit(data_path, "test", limit=1).image_size, options)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"{run_dir / rundir.CHECKPOINT} does not fit the {name} model of this "
                        f"code version ({config.get('code_version') or 'unknown'} trained it): "
                        "retrain or check out that version") from None
    model.to(device).eval()
    return model, config, ckpt["epoch"], data_path


def _batched(model_fn, x: torch.Tensor, mask: np.ndarray, batch_size: int, device,
             controls: torch.Tensor | None = None):
    """Run model_fn(x_batch, mask_batch, **{"controls": controls_batch} where given) -> dict
    of tensors over x in batches; numpy dict."""
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device=device, dtype=torch.float32)
        mb = torch.from_numpy(mask[start:start + batch_size]).to(device)
        extra = {} if controls is None else \
            {"controls": controls[start:start + batch_size].to(device)}
        with torch.no_grad():  # a model from outside may not say no_grad itself
            results = model_fn(xb, mb, **extra)
        for k, v in results.items():
            out.setdefault(k, []).append(v.detach().float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(run_dir: str | os.PathLike, device: str = "auto", batch_size: int = 500,
             mask_seed: int = 0, progress: bool = True,
             data: str | os.PathLike | None = None) -> Path:
    """Score a run; writes RUN_DIR/metrics.json and RUN_DIR/examples.npz atomically. What the
    scoring needs (a readable run, its data, enough frames, a writable folder) is checked
    first."""
    t0 = time.time()
    run_dir = Path(run_dir)
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = runinfo.choose_device(device)
    model, config, epoch, data_path = load_run(run_dir, device, data)
    history = rundir.training_history(run_dir, config.get("device", ""))
    holder = rundir.training_holder(run_dir)
    if holder:
        raise UserError(f"{run_dir} is being trained by {holder}: evaluate it when training "
                        "ends (`kvae-bench train` scores it then, unless --no-evaluate)")
    rundir.check_writable(run_dir)
    test = VideoSplit(data_path, "test")
    if test.frames.shape[1] <= N_OBSERVED:
        raise UserError(f"{data_path}: {test.frames.shape[1]} frames per sequence; the "
                        f"benchmark observes {N_OBSERVED} and scores the rest: generate data "
                        "with --steps 20")
    meta = h5io.read_meta(data_path)
    frames = test.frames.numpy() > 127  # (N, T, H, W) bool
    x = torch.from_numpy(frames)
    N, T = frames.shape[:2]
    scoring = simulators.scoring(meta["env"], frames.shape[-1])
    true_xy = _positions(test, scoring)
    has_xy = true_xy is not None
    background = metrics.static_background(frames)
    # pixels that never show the tracked object: the static scene and, e.g., pong's paddles
    ignore = background | ~scoring.object_region
    walls = np.broadcast_to(background, frames.shape)

    jobs = [(p, lvl) for p in masks.PROTOCOLS for lvl in masks.levels(p, T)]
    imputation, trivial = [], []
    examples = {"true": frames[:EXAMPLES].astype(np.uint8)}
    bar = tqdm(jobs, desc=f"evaluate {run_dir.name}", disable=None if progress else True)
    for protocol, level in bar:
        mask = masks.make_mask(protocol, level, N, T, mask_seed)
        out = _batched(model.impute, x, mask, batch_size, device,
                       control_kwargs(model.impute, test.controls).get("controls"))
        for method, pred in out.items():
            row = {"protocol": protocol, "level": level, "method": method,
                   "hamming": metrics.hamming(pred, frames, mask),
                   "missing_frames": int((mask < 0.5).sum())}
            if has_xy:
                err = metrics.position_errors(pred, true_xy, ignore)[mask < 0.5]
                row["position_error"] = _nanmedian(err)
                row["no_ball_fraction"] = float(np.isnan(err).mean()) if err.size else 0.0
            imputation.append(row)
        trivial.append({"protocol": protocol, "level": level, "method": scoring.trivial,
                        "hamming": metrics.hamming(walls, frames, mask)})
        if (protocol, level) == EXAMPLE_MASK:
            examples["mask"] = mask[:EXAMPLES]
            for method, pred in out.items():
                examples[method] = (pred[:EXAMPLES] > 0.5).astype(np.uint8)

    steps = T - N_OBSERVED
    generated = _batched(lambda xb, _, **u: {"g": model.generate(xb, N_OBSERVED, steps, **u)},
                         x, np.ones((N, T), np.float32), batch_size, device,
                         control_kwargs(model.generate, test.controls).get("controls"))["g"]
    future = frames[:, N_OBSERVED:]
    generation = {"n_observed": N_OBSERVED,
                  "hamming_per_step": metrics.hamming_per_frame(generated, future).mean(0)
                  .tolist(),
                  "trivial_hamming_per_step": metrics.hamming_per_frame(
                      walls[:, N_OBSERVED:], future).mean(0).tolist()}
    if has_xy:
        err = metrics.position_errors(generated, true_xy[:, N_OBSERVED:], ignore)
        generation["position_error_per_step"] = [_nanmedian(e) for e in err.T]
    examples["generated"] = (generated[:EXAMPLES] > 0.5).astype(np.uint8)

    result = {
        "run": str(run_dir),
        "model": config["model"], "env": meta["env"], "dataset": h5io.dataset_name(meta),
        "seed": config["seed"],
        "epoch": epoch, "config": config, "code_version": runinfo.git_commit(),
        "data": str(Path(data_path).resolve()), "data_fingerprint": config["data_fingerprint"],
        "mask_seed": mask_seed, "mask_fingerprint": masks.fingerprint(N, T, mask_seed),
        "test_sequences": N, "device": device, "created_utc": runinfo.utc_now(),
        "training": history,
        "imputation": imputation, "trivial": scoring.trivial, "trivial_predictor": trivial,
        "generation": generation, "examples": {"mask": list(EXAMPLE_MASK), "n": EXAMPLES},
        "max_pairwise_hamming": metrics.max_pairwise_hamming(frames),
    }
    result.update(_latent_scores(model, config, data_path, test, scoring, x, true_xy,
                                 batch_size, device))
    result["seconds"] = round(time.time() - t0, 1)
    rundir.write_examples(run_dir, examples)
    return rundir.write_metrics(run_dir, result)


def _positions(split: VideoSplit, scoring) -> np.ndarray | None:
    """(N, T, 2) true position of the tracked object, or None when the data has no states."""
    cols = split.columns
    if not all(c in cols for c in scoring.position_columns):
        return None
    return split.states[..., [cols.index(c) for c in scoring.position_columns]]


def _latent_scores(model, config, data_path, test: VideoSplit, scoring, x, true_xy,
                   batch_size, device) -> dict:
    """Test ELBO terms (the loss's logs with every frame observed), and where the model offers
    them (protocol: `reconstruct`, `codes`) the reconstruction Hamming and the linear probe
    from the codes to the true position; `skipped` says what a model could not be scored on."""
    out = {"elbo": evaluate_elbo(model, test, batch_size, device, config["seed"]),
           "skipped": []}

    def per_batch(fn, frames, controls=None) -> np.ndarray:
        controls = control_kwargs(fn, controls).get("controls")
        with torch.no_grad():
            return np.concatenate([fn(frames[i:i + batch_size].to(device, torch.float32), **(
                {} if controls is None else {"controls": controls[i:i + batch_size].to(device)}))
                .float().cpu().numpy() for i in range(0, len(frames), batch_size)])

    frames = x.numpy()
    if callable(getattr(model, "reconstruct", None)):
        recon = per_batch(model.reconstruct, x, test.controls)
        out["reconstruction_hamming"] = float(((recon > 0.5) != frames).mean())
    else:
        out["skipped"].append("reconstruction_hamming: the model has no reconstruct(x)")
    if not callable(getattr(model, "codes", None)):
        out["skipped"].append("probe_r2: the model has no codes(x)")
    elif true_xy is None:
        out["skipped"].append("probe_r2: the data has no positions")
    else:
        codes = per_batch(model.codes, x, test.controls)
        train = VideoSplit(data_path, "train", limit=1000)
        train_codes = per_batch(model.codes, (train.frames > 127), train.controls)
        A = codes.shape[-1]
        out["probe_r2"] = metrics.linear_probe_r2(
            train_codes.reshape(-1, A), _positions(train, scoring).reshape(-1, 2),
            codes.reshape(-1, A), true_xy.reshape(-1, 2))
    return out


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")

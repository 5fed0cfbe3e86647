"""Convert the 2017 KVAE data files (npz) into our HDF5 format.

The 2017 files hold `images`, float (N, T, H, W) in [0, 1], and for the ball environments
`state`, (N, T, 4) = position and velocity in pymunk coordinates, recorded after the physics
step of frame t (so not exactly what frame t shows). Frames are thresholded at 0.5; states are
kept as they are, and the file's env_params says where they came from.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from kvae_bench import h5io
from kvae_bench.errors import UserError
from kvae_bench.runinfo import git_commit, utc_now

STATE_COLUMNS_2017 = ("x", "y", "vx", "vy")


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """frames (N, T, H, W) uint8 and states (N, T, S) float32 (S = 0 without `state`)."""
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z:
                raise UserError(f"{path}: no `images` array (found: {', '.join(z.files)})")
            images = z["images"]
            state = z["state"] if "state" in z else None
    except UserError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise UserError(f"{path} is not a readable npz file ({str(e) or 'empty'})") from None
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise UserError(f"{path}: images must be (N, T, H, W) with H = W, got {images.shape}")
    if not np.issubdtype(images.dtype, np.number):
        raise UserError(f"{path}: images must be numeric, got {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise UserError(f"{path}: images must lie in [0, 1], found [{lo:g}, {hi:g}]")
    frames = np.where(images > 0.5, 255, 0).astype(np.uint8)
    n, t = images.shape[:2]
    if state is None:
        states = np.zeros((n, t, 0), dtype=np.float32)
    elif state.shape != (n, t, len(STATE_COLUMNS_2017)):
        raise UserError(f"{path}: state must be ({n}, {t}, 4), got {state.shape}")
    else:
        states = state.astype(np.float32)
    return frames, states


def import_npz(train_npz: Path, test_npz: Path, env: str, out: Path, dt: float = 0.2,
               overwrite: bool = False) -> tuple[Path, dict]:
    splits = {"train": load_npz(Path(train_npz)), "test": load_npz(Path(test_npz))}
    shapes = {s: f.shape[1:] for s, (f, _) in splits.items()}
    if shapes["train"] != shapes["test"]:
        raise UserError(f"train and test frames differ in shape: {shapes}")
    if splits["train"][1].shape[2] != splits["test"][1].shape[2]:
        raise UserError("one file has `state` and the other has not")
    steps, size = shapes["train"][0], shapes["train"][1]
    has_states = splits["train"][1].shape[2] > 0
    columns = STATE_COLUMNS_2017 if has_states else ()
    source = {"imported_from": [str(train_npz), str(test_npz)], "threshold": 0.5,
              "states": "2017 npz `state`: pymunk coordinates, recorded after the step"
              if has_states else "none in the source files"}
    attrs = {"env": env, "env_params": json.dumps(source), "seed": -1, "dt": dt,
             "steps": steps, "image_size": size, "generator_version": "import-npz-2017",
             "created_utc": utc_now(), "git_commit": git_commit()}
    with h5io.Writer(out, attrs, overwrite=overwrite) as w:
        for split, (frames, states) in splits.items():
            w.create_split(split, len(frames), steps, size, columns)
            w.write(split, 0, frames, states)
    return Path(out), {s: len(f) for s, (f, _) in splits.items()}

"""Pictures for people: video grids and GIFs (numpy + Pillow). No torch, no pygame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kvae_bench.runinfo import atomic_path


def video_grid(videos: np.ndarray, cols: int = 4, scale: int = 4, gap: int = 1,
               gap_value: int = 96) -> np.ndarray:
    """Tile videos (N, T, H, W) uint8 into one video (T, H', W') uint8: `cols` per row, each
    pixel scaled up `scale` times, separated by `gap` pixels of grey."""
    if videos.ndim != 4:
        raise ValueError(f"videos must be (N, T, H, W), got shape {videos.shape}")
    n, t, h, w = videos.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    hs, ws = h * scale, w * scale
    out = np.full((t, rows * hs + (rows + 1) * gap, cols * ws + (cols + 1) * gap), gap_value,
                  dtype=np.uint8)
    big = videos.repeat(scale, axis=2).repeat(scale, axis=3)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = gap + r * (hs + gap), gap + c * (ws + gap)
        out[:, y:y + hs, x:x + ws] = big[i]
    return out


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float = 5.0) -> Path:
    """Write (T, H, W) uint8 frames as a looping greyscale GIF, atomically."""
    from PIL import Image

    images = [Image.fromarray(f, mode="L") for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=int(round(1000 / fps)), optimize=False)
    return Path(path)

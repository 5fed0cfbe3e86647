"""Videos of one split in memory, as uint8, and seeded mini-batches of binarised floats."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from kvae_bench import h5io
from kvae_bench.errors import UserError


class VideoSplit:
    """frames (N, T, H, W) uint8 torch tensor and states (N, T, S) of one split."""

    def __init__(self, path: str | os.PathLike, split: str, limit: int | None = None):
        path = Path(path)
        if not path.is_file():
            env = path.stem.split("_")[0]
            raise UserError(f"{path} not found: create it with "
                            f"`kvae-bench generate --env {env} --out {path}`")
        data = h5io.read(path, split, limit=limit)
        self.frames = torch.from_numpy(data.frames)
        self.states = data.states
        self.columns = data.columns

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def image_size(self) -> int:
        return self.frames.shape[-1]

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                device: str | torch.device = "cpu", drop_last: bool = False
                ) -> Iterator[torch.Tensor]:
        """Batches (B, T, H, W) float32 in {0, 1}; shuffled by `generator` when given."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else \
            torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield (self.frames[idx] > 127).to(device=device, dtype=torch.float32)


def fingerprint(path: str | os.PathLike) -> str:
    """sha256 of the data (frames and states of both splits, env and its params), not of the
    file's bytes: the same data written twice gets the same fingerprint."""
    meta = h5io.read_meta(path)
    h = hashlib.sha256()
    h.update(f"{meta['env']}|{sorted(meta['env_params'].items())}".encode())
    for split in h5io.SPLITS:
        data = h5io.read(path, split)
        h.update(np.ascontiguousarray(data.frames).tobytes())
        h.update(np.ascontiguousarray(data.states).tobytes())
    return h.hexdigest()

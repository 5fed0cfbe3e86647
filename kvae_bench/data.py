"""Videos of one split in memory, as uint8, and seeded mini-batches of binarised floats."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from kvae_bench import h5io
from kvae_bench.errors import UserError
from kvae_bench.h5io import fingerprint  # noqa: F401  (here before; needs no torch)


class VideoSplit:
    """frames (N, T, H, W) uint8 torch tensor and states (N, T, S) of one split."""

    def __init__(self, path: str | os.PathLike, split: str, limit: int | None = None):
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path} is a folder: pass a dataset file (.h5) made by "
                            "`kvae-bench generate`")
        if not path.is_file():
            import simulators

            env = path.stem.split("_")[0]
            hint = f" --env {env}" if env in simulators.ENVS else " --env ENV"
            raise UserError(f"{path} not found: create it with "
                            f"`kvae-bench generate{hint} --out {path}`")
        data = h5io.read(path, split, limit=limit)
        self.frames = torch.from_numpy(data.frames)
        self.states = data.states
        self.columns = data.columns
        # (N, T, U) float32, the control applied after frame t; None without controls
        self.controls = None if data.controls is None else torch.from_numpy(data.controls)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def image_size(self) -> int:
        return self.frames.shape[-1]

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                device: str | torch.device = "cpu", drop_last: bool = False,
                with_controls: bool = False) -> Iterator:
        """Batches (B, T, H, W) float32 in {0, 1}; shuffled by `generator` when given. With
        with_controls: (frames, controls (B, T, U) or None) pairs."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else \
            torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            x = (self.frames[idx] > 127).to(device=device, dtype=torch.float32)
            if with_controls:
                yield x, None if self.controls is None else self.controls[idx].to(device)
            else:
                yield x


def locate_data(config: dict, explicit: str | os.PathLike | None = None) -> Path:
    """The data file a run was trained on, found by its path or by its fingerprint.

    config holds `data` (absolute since config v1; as typed before) and `data_fingerprint`.
    With `explicit`, that file must have the fingerprint; otherwise the saved path is tried,
    then the same file name under ./data and in the current folder.
    """
    want = config["data_fingerprint"]
    saved = Path(config["data"])
    name = config.get("data_name") or saved.name
    if explicit is not None:
        if Path(explicit).is_dir():
            raise UserError(f"--data {explicit} is a folder: pass the dataset file (.h5)")
        candidates = [Path(explicit)]
    else:
        candidates = list(dict.fromkeys([saved, Path("data") / name, Path(name)]))
    seen = []
    for path in candidates:
        if not path.is_file():
            continue
        seen.append(path)
        if fingerprint(path) == want:
            return path
    if explicit is not None and seen:
        raise UserError(f"{explicit} is not the data this run was trained on (fingerprint "
                        f"differs from {want[:12]}): pass the original file")
    if seen:
        raise UserError(f"{seen[0]} changed since the run was trained (fingerprint differs): "
                        "regenerate it with the same command, pass the original with --data, "
                        "or retrain")
    looked = ", ".join(str(p) for p in candidates)
    raise UserError(f"the run's data {name} was not found (looked at {looked}): pass it with "
                    "--data")

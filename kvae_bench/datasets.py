"""Our data in your own training loop: the canonical data sets as a torch Dataset.

    from kvae_bench.datasets import Videos
    train = Videos("box", split="train", root="data", generate=True)
    frames, states = train[0]          # (T, H, W) float in {0, 1}, (T, S) float32
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)

A canonical data set is one named in references/datasets.csv: an env (and preset) at its
default parameters, seed 0, 5000 + 1000 sequences, with the fingerprint of the arrays that
`kvae-bench generate` made when the numbers in results/ were produced. `Videos` makes the file
(`root/<name>.h5`) on first use when asked, and checks its fingerprint, so a model trained
outside this package sees exactly the benchmark's data; `check=False` skips the check (for
example on a platform whose pymunk gives other trajectories: the error says so).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from kvae_bench.data import VideoSplit, fingerprint
from kvae_bench.errors import UserError
from kvae_bench.references import datasets_csv


def canonical() -> dict[str, dict]:
    """name -> {env, preset, n_train, n_val, n_test, steps, seed, fingerprint} of every canonical
    data set (references/datasets.csv)."""
    return {name: {**r, **{k: int(r[k]) for k in ("n_train", "n_val", "n_test", "steps",
                                                   "seed")}}
            for name, r in datasets_csv().items()}


def canonical_file(name: str, root: str | os.PathLike = "data", generate: bool = False,
                   check: bool = True, progress: bool = False) -> Path:
    """The path of canonical data set `name` under root, made if missing and generate."""
    sets = canonical()
    if name not in sets:
        raise UserError(f"unknown data set {name!r}; canonical: {', '.join(sets)}")
    spec, path = sets[name], Path(root) / f"{name}.h5"
    if not path.is_file():
        if not generate:
            raise UserError(f"{path} not found: pass generate=True, or run `kvae-bench "
                            f"generate --env {spec['env']} --out {path}`")
        from simulators.generate import generate as make

        make(path, spec["env"], n_train=spec["n_train"], n_test=spec["n_test"],
             n_val=spec["n_val"], steps=spec["steps"], seed=spec["seed"],
             preset=spec["preset"] or None, progress=progress)
    if check and fingerprint(path) != spec["fingerprint"]:
        raise UserError(f"{path} is not the canonical {name} (fingerprint differs from "
                        f"{spec['fingerprint'][:12]}): regenerate it, or if this platform's "
                        "pymunk or numpy simulates differently, pass check=False")
    return path


class Videos(torch.utils.data.Dataset):
    """One split of a data set: item i = (frames (T, H, W) float32 in {0, 1}, states (T, S)
    float32). `name` is a canonical data set (see canonical()) or a path to any kvae-bench
    HDF5 file; `columns` names the states."""

    def __init__(self, name: str | os.PathLike, split: str = "train",
                 root: str | os.PathLike = "data", generate: bool = False, check: bool = True):
        is_file = str(name).endswith(".h5") or Path(name).is_file()
        path = Path(name) if is_file else canonical_file(str(name), root, generate, check)
        data = VideoSplit(path, split)
        self.path, self.split = path, split
        self.frames = data.frames  # (N, T, H, W) uint8
        self.states = torch.from_numpy(data.states)  # (N, T, S)
        self.columns = data.columns

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return (self.frames[i] > 127).float(), self.states[i]

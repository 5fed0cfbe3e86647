"""Generate a dataset: per-sequence seeds, a spawn process pool, a progress bar; the arrays go
to kvae_bench.h5io, the only writer of the file format.

Sequence i of a split depends only on (seed, split, i): its generator is
np.random.default_rng([seed, SPLIT_IDS[split], i]), and it gets a fresh pymunk Space. So the
output is identical for any number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

import simulators
from kvae_bench import h5io
from kvae_bench.runinfo import git_commit, utc_now

SPLIT_IDS = {"train": 0, "test": 1}
CHUNK = 50  # sequences per task handed to a worker


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


def generate_block(env: str, params: dict, seed: int, split: str, start: int, stop: int,
                   steps: int):
    """Sequences start .. stop-1 of a split: frames (n, T, H, W) uint8, states (n, T, S)."""
    from simulators.render import Canvas  # pygame is imported in the process that draws

    sim = simulators.make(env, params)
    canvas = Canvas(sim.params.size)
    n, size = stop - start, sim.params.size
    frames = np.empty((n, steps, size, size), dtype=np.uint8)
    states = np.empty((n, steps, len(sim.columns)), dtype=np.float32)
    for k in range(n):
        frames[k], states[k] = simulators.rollout(sim, steps, sequence_rng(seed, split, start + k),
                                                  canvas)
    return frames, states


def _work(task):
    frames, states = generate_block(*task)
    return task, h5io.encode_frames(frames), states


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def generate(out: str | os.PathLike, env: str, n_train: int = 5000, n_test: int = 1000,
             steps: int = 20, seed: int = 0, params: dict | None = None,
             workers: int | None = None, overwrite: bool = False,
             progress: bool = True) -> Path:
    """Write data for env to `out` atomically and return its path.

    Raises ValueError for bad arguments (unknown env or parameter, bad counts),
    FileExistsError if out exists and not overwrite, OSError if out cannot be written.
    """
    p = simulators.env_params(env, params)
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least 1 train and 1 test sequence, got {n_train}, {n_test}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    params_dict = dataclasses.asdict(p)
    columns = simulators.ENVS[env][0].columns
    attrs = {
        "env": env, "env_params": json.dumps(params_dict), "seed": seed, "dt": p.dt,
        "steps": steps, "image_size": p.size, "generator_version": simulators.GENERATOR_VERSION,
        "created_utc": utc_now(), "git_commit": git_commit(),
    }
    counts = {"train": n_train, "test": n_test}
    tasks = [(env, params_dict, seed, split, start, min(start + CHUNK, n), steps)
             for split, n in counts.items() for start in range(0, n, CHUNK)]
    with h5io.Writer(out, attrs, overwrite=overwrite) as writer, \
            tqdm(total=n_train + n_test, unit="seq", desc=f"generate {env}",
                 disable=None if progress else True) as bar:
        for split, n in counts.items():
            writer.create_split(split, n, steps, p.size, columns)
        if workers == 1 or len(tasks) == 1:
            results = map(_work, tasks)
            _write_all(writer, results, bar)
        else:
            ctx = multiprocessing.get_context("spawn")  # a fork after pygame init can deadlock
            with ctx.Pool(min(workers, len(tasks))) as pool:
                _write_all(writer, pool.imap(_work, tasks), bar)
    return Path(out)


def _write_all(writer: h5io.Writer, results, bar) -> None:
    for (_, _, _, split, start, stop, _), chunks, states in results:
        writer.write_encoded(split, start, chunks, states)
        bar.update(stop - start)

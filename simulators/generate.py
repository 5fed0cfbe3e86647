"""Generate a dataset: per-sequence seeds, one process or a spawn process pool, a progress bar;
the arrays go to kvae_bench.h5io, the only writer of the file format.

Sequence i of a split depends only on (seed, split, i): its generator is
np.random.default_rng([seed, SPLIT_IDS[split], i]), and it gets a fresh chipmunk space. So the
output is identical for any number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import simulators
from kvae_bench import h5io
from kvae_bench.runinfo import git_commit, raise_if_stopped, utc_now
from simulators import presets

SPLIT_IDS = {"train": 0, "test": 1, "val": 2}
CHUNK = 50  # sequences per task handed to a worker


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    entropy = [seed, SPLIT_IDS[split], index]
    if max(entropy) < 2 ** 32:  # the same seed words numpy makes of the list, made faster
        entropy = np.array(entropy, dtype=np.uint32)
    return np.random.default_rng(entropy)


def generate_block(env: str, params: dict, seed: int, split: str, start: int, stop: int,
                   steps: int, preset: str | None = None):
    """Sequences start .. stop-1 of a split: frames (n, T, H, W) uint8, states (n, T, S), and
    controls (n, T, U) for a preset with controls (else None)."""
    if preset:
        return _preset_block(env, preset, seed, split, start, stop, steps)
    sim, canvas = _simulator(env, json.dumps(params, sort_keys=True))
    n, size = stop - start, sim.params.size
    frames = np.empty((n, steps, size, size), dtype=np.uint8)
    states = np.empty((n, steps, len(sim.columns)), dtype=np.float32)
    for k in range(n):
        frames[k], states[k] = simulators.rollout(sim, steps, sequence_rng(seed, split, start + k),
                                                  canvas)
    return frames, states


def _preset_block(env, name, seed, split, start, stop, steps):
    from simulators.render import Canvas

    p = presets.get(env, name)
    canvas, n = Canvas(p.size), stop - start
    frames = np.empty((n, steps, p.size, p.size), dtype=np.uint8)
    states = np.empty((n, steps, len(p.columns)), dtype=np.float32)
    controls = np.empty((n, steps, len(p.control_columns)), dtype=np.float32) \
        if p.control_columns else None
    for k in range(n):
        frames[k], states[k], u = p.sequence(sequence_rng(seed, split, start + k), steps, canvas)
        if controls is not None:
            controls[k] = u
    return frames, states, controls


@functools.lru_cache(maxsize=8)
def _simulator(env: str, params_json: str):
    """A simulator and its canvas, made once per process for all blocks of the same env and
    params (making them, validation and static scene included, costs as much as a few
    sequences; each sequence gets a fresh space all the same)."""
    from simulators.render import Canvas  # pygame is imported in the process that draws

    sim = simulators.make(env, json.loads(params_json))
    return sim, Canvas(sim.params.size)


def _work(task):
    frames, states, *controls = generate_block(*task)
    return task, h5io.encode_frames(frames), states, controls[0] if controls else None


# Starting spawn workers (a fresh interpreter each, importing numpy, h5py, pymunk, pygame) took
# 1.2 s on the 2-core machine while it was busy, 0.1 s by fork; one process makes about 3000
# box sequences a second. Below this many seconds of work left for one process, workers cost
# more than they can save.
WORKERS_PAYOFF_S = 10.0
MAX_WORKERS = 8


def auto_workers(seconds_left: float) -> int:
    """Processes for work that one process would finish in `seconds_left`: one, unless the
    work outweighs starting workers many times over; then one per idle CPU (CPUs less the
    1-minute load average), so a busy machine keeps one process."""
    if seconds_left < WORKERS_PAYOFF_S:
        return 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    idle = (os.cpu_count() or 1) - load
    return max(1, min(MAX_WORKERS, int(idle)))


def physical_memory() -> int | None:
    """Bytes of memory this machine has, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(sequences: int, steps: int, size: int, memory: int | None = None,
                 fraction: float = 0.5, what: str = "one worker's block",
                 why: str = "it is held whole while it is simulated",
                 fix: str = "use fewer --steps") -> None:
    """ValueError, before any file is made, where `sequences` of `steps` frames of size x
    size bytes would not fit in `fraction` of this machine's memory."""
    memory = physical_memory() if memory is None else memory
    need = sequences * steps * size * size
    if memory and need > memory * fraction:
        raise ValueError(f"{what}, {sequences} sequences of {steps} frames of {size}x{size}, "
                         f"takes {need / 2**30:.1f} GiB, more than "
                         f"{'half of ' if fraction == 0.5 else ''}this machine's "
                         f"{memory / 2**30:.0f} GiB of memory ({why}): {fix}")


def generate(out: str | os.PathLike, env: str, n_train: int | None = None,
             n_test: int | None = None, steps: int | None = None, seed: int = 0,
             params: dict | None = None, workers: int | None = None, overwrite: bool = False,
             progress: bool = True, preset: str | None = None, n_val: int | None = None
             ) -> Path:
    """Write data for env (or its preset, simulators.presets) to `out` atomically and return
    its path. Sizes default to 5000 train, no val, 1000 test, 20 steps, or the preset's.
    `workers` processes (None: one, or more where the work is long and CPUs are idle, see
    auto_workers).

    Raises ValueError for bad arguments (unknown env, preset or parameter, bad counts),
    FileExistsError if out exists and not overwrite, OSError if out cannot be written.
    """
    if preset:
        pr = presets.get(env, preset)
        if params:
            raise ValueError(f"the {env}-{preset} preset fixes its parameters: drop --param "
                             "and --size")
        n_train, n_val, n_test, steps = (pr.n_train if n_train is None else n_train,
                                         pr.n_val if n_val is None else n_val,
                                         pr.n_test if n_test is None else n_test,
                                         pr.steps if steps is None else steps)
    else:
        n_train, n_val, n_test, steps = (5000 if n_train is None else n_train, n_val or 0,
                                         1000 if n_test is None else n_test,
                                         20 if steps is None else steps)
    if n_val < 0:
        raise ValueError(f"val must be >= 0, got {n_val}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least 1 train and 1 test sequence, got {n_train}, {n_test}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if preset:
        params_dict, size, dt = pr.env_params(), pr.size, pr.params["dt"]
        columns, control_columns = pr.columns, pr.control_columns
    else:
        p = simulators.env_params(env, params)
        params_dict, size, dt = dataclasses.asdict(p), p.size, p.dt
        columns, control_columns = simulators.ENVS[env][0].columns, ()
    attrs = {
        "env": env, "env_params": json.dumps(params_dict), "seed": seed, "dt": dt,
        "steps": steps, "image_size": size, "generator_version": simulators.GENERATOR_VERSION,
        "created_utc": utc_now(), "git_commit": git_commit(),
        **({"preset": preset} if preset else {}),
    }
    counts = {"train": n_train, **({"val": n_val} if n_val else {}), "test": n_test}
    check_memory(max(min(CHUNK, n) for n in counts.values()), steps, size,
                 fix="use fewer --steps or a smaller --size")
    check_memory(max(counts.values()), steps, size, fraction=1, what="the largest split",
                 why="training, `inspect` and `evaluate` load a split whole",
                 fix="use fewer sequences or --steps, or a smaller --size")
    tasks = [(env, params_dict, seed, split, start, min(start + CHUNK, n), steps, preset)
             for split, n in counts.items() for start in range(0, n, CHUNK)]
    with h5io.Writer(out, attrs, overwrite=overwrite) as writer, \
            tqdm(total=sum(counts.values()), unit="seq", desc=f"generate {env}",
                 disable=None if progress else True) as bar:
        for split, n in counts.items():
            writer.create_split(split, n, steps, size, columns, control_columns)
        if workers is None:  # the first chunk here, timed, tells whether workers pay off
            start = time.perf_counter()
            _write_all(writer, [_work(tasks[0])], bar)
            tasks = tasks[1:]
            workers = auto_workers((time.perf_counter() - start) * len(tasks))
        if workers == 1 or len(tasks) <= 1:
            _write_all(writer, map(_work, tasks), bar)
        else:
            ctx = multiprocessing.get_context("spawn")  # a fork after pygame init can deadlock
            with ctx.Pool(min(workers, len(tasks))) as pool:
                _write_all(writer, pool.imap(_work, tasks), bar)
    return Path(out)


def _write_all(writer: h5io.Writer, results, bar) -> None:
    for (_, _, _, split, start, stop, _, _), chunks, states, controls in results:
        raise_if_stopped()
        writer.write_encoded(split, start, chunks, states, controls)
        bar.update(stop - start)

"""Frames per second of `kvae-bench generate` vs a 2017-style reference, in the same run.

The reference does what the 2017 generators did: one process and one pymunk Space, one
`space.step(dt)` per frame, `space.debug_draw` into a 24-bit pygame surface, a surfarray copy,
float32 frames in memory (nothing written); for box, gravity and polygon, with that env's walls,
gravity, start and speeds. Ours is the full `generate` path (substeps, validity guarantees, HDF5
file written) with `--workers 1` and with the default (one process, or more for long work on
idle CPUs). Pendulum and pong have no such reference here: their frames per second are printed.

The machine may be shared: reference and ours run in turn, `--repeats` times, and each figure
is the best run (the least disturbed).

    python benchmarks/generate_speed.py [--envs box,gravity,polygon,pendulum,pong]
        [--sequences 6000] [--reference-sequences 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import numpy as np  # noqa: E402

# The 2017 generators' scenes: walls (closed chain of corners, radius 0), gravity, start spread,
# speed range. Box and gravity have walls on rows/cols 2..30.
BOX_2017 = ((2, 2), (30, 2), (30, 30), (2, 30))
REFERENCE_SCENES = {
    "box": (BOX_2017, (0.0, 0.0), 10.0, (10.0, 15.0)),
    "gravity": (BOX_2017, (0.0, 5.0), 8.0, (5.0, 10.0)),
    "polygon": (((3, 1), (1, 15), (8, 30), (25, 30), (30, 8), (15, 1)), (0.0, 0.0), 2.5,
                (10.0, 15.0)),
}


def reference_2017(env: str, sequences: int, steps: int = 20, size: int = 32,
                   seed: int = 0) -> float:
    """Frames per second of the 2017 approach for env (a key of REFERENCE_SCENES)."""
    import pygame
    import pymunk
    import pymunk.pygame_util

    corners, gravity, start_std, (speed_lo, speed_hi) = REFERENCE_SCENES[env]
    rng = np.random.default_rng(seed)
    screen = pygame.Surface((size, size), 0, 24)
    space = pymunk.Space()
    space.gravity = gravity
    options = pymunk.pygame_util.DrawOptions(screen)
    walls = [pymunk.Segment(space.static_body, a, b, 0.0)
             for a, b in zip(corners, corners[1:] + corners[:1])]
    for w in walls:
        w.elasticity = 1.0
    space.add(*walls)
    images = np.empty((sequences, steps, size, size), dtype=np.float32)
    start = time.perf_counter()
    for s in range(sequences):
        body = pymunk.Body(1, pymunk.moment_for_circle(1, 0, 3))
        body.position = tuple(np.clip(16 + start_std * rng.standard_normal(2), 6, 26))
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(speed_lo, speed_hi)
        body.velocity = (speed * np.cos(angle), speed * np.sin(angle))
        ball = pymunk.Circle(body, 3)
        ball.elasticity = 1.0
        space.add(body, ball)
        for t in range(steps):
            screen.fill((0, 0, 0))
            space.debug_draw(options)
            space.step(0.2)
            images[s, t] = pygame.surfarray.array2d(screen).swapaxes(1, 0) / (2**24 - 1)
        space.remove(body, ball)
    return sequences * steps / (time.perf_counter() - start)


def ours(env: str, sequences: int, steps: int = 20, workers: int | None = None) -> float:
    """Frames per second of simulators.generate (env at its defaults), writing a real file;
    workers None: generate's default."""
    from simulators.generate import generate

    n_test = max(1, sequences // 6)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(os.path.join(tmp, f"{env}.h5"), env, n_train=sequences - n_test,
                 n_test=n_test, steps=steps, workers=workers, progress=False)
        elapsed = time.perf_counter() - start
    return sequences * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="box,gravity,polygon,pendulum,pong")
    parser.add_argument("--sequences", type=int, default=6000, help="ours: train + test")
    parser.add_argument("--reference-sequences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    print(f"{'env':<9} {'generator':<40} {'frames/s':>10} {'vs 2017':>8}")
    for env in args.envs.split(","):
        best = {"ref": 0.0, "one": 0.0, "default": 0.0}
        for _ in range(args.repeats):
            if env in REFERENCE_SCENES:
                best["ref"] = max(best["ref"], reference_2017(env, args.reference_sequences))
            best["one"] = max(best["one"], ours(env, args.sequences, workers=1))
            best["default"] = max(best["default"], ours(env, args.sequences))
        ref = best["ref"]
        rows = [("2017-style reference (1 process)", ref)] if ref else []
        rows += [("kvae-bench generate, --workers 1", best["one"]),
                 ("kvae-bench generate, default --workers", best["default"])]
        for name, fps in rows:
            ratio = f"{fps / ref:>7.2f}x" if ref else f"{'-':>8}"
            print(f"{env:<9} {name:<40} {fps:>10.0f} {ratio}", flush=True)
    print(f"(best of {args.repeats}; {args.sequences} sequences x 20 frames for ours, file "
          f"written; {args.reference_sequences} for the reference; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()

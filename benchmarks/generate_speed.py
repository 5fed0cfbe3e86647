"""Frames per second of `kvae-bench generate` vs a 2017-style reference, in the same run.

The reference does what the 2017 generators did: one process and one pymunk Space, one
`space.step(dt)` per frame, `space.debug_draw` into a 24-bit pygame surface, a surfarray copy,
float32 frames in memory (nothing written). Ours is the full `generate` path at its defaults
(all cores, substeps, validity guarantees), HDF5 file writing included.

    python benchmarks/generate_speed.py [--sequences 6000] [--reference-sequences 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import numpy as np  # noqa: E402


def reference_2017(sequences: int, steps: int = 20, size: int = 32, seed: int = 0) -> float:
    """Frames per second of the 2017 approach (box env)."""
    import pygame
    import pymunk
    import pymunk.pygame_util

    rng = np.random.default_rng(seed)
    screen = pygame.Surface((size, size), 0, 24)
    space = pymunk.Space()
    options = pymunk.pygame_util.DrawOptions(screen)
    dd = 2
    walls = [pymunk.Segment(space.static_body, a, b, 0.0) for a, b in [
        ((dd, dd), (dd, size - dd)), ((dd, dd), (size - dd, dd)),
        ((size - dd, size - dd), (dd, size - dd)), ((size - dd, size - dd), (size - dd, dd))]]
    for w in walls:
        w.elasticity = 1.0
    space.add(*walls)
    images = np.empty((sequences, steps, size, size), dtype=np.float32)
    start = time.perf_counter()
    for s in range(sequences):
        body = pymunk.Body(1, pymunk.moment_for_circle(1, 0, 3))
        body.position = tuple(np.clip(16 + 10 * rng.standard_normal(2), 6, 26))
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(10, 15)
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


def ours(sequences: int, steps: int = 20, workers: int | None = None) -> tuple[float, int]:
    """Frames per second of simulators.generate (box, defaults), writing a real file."""
    from simulators.generate import default_workers, generate

    workers = workers or default_workers()
    n_test = max(1, sequences // 6)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(os.path.join(tmp, "box.h5"), "box", n_train=sequences - n_test, n_test=n_test,
                 steps=steps, workers=workers, progress=False)
        elapsed = time.perf_counter() - start
    return sequences * steps / elapsed, workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=6000, help="ours: train + test")
    parser.add_argument("--reference-sequences", type=int, default=1000)
    args = parser.parse_args()
    ref = reference_2017(args.reference_sequences)
    fps, workers = ours(args.sequences)
    one, _ = ours(args.sequences, workers=1)
    print(f"{'generator':<42} {'frames/s':>10} {'vs 2017':>8}")
    print(f"{'2017-style reference (1 process)':<42} {ref:>10.0f} {1.0:>7.2f}x")
    print(f"{'kvae-bench generate, 1 worker':<42} {one:>10.0f} {one / ref:>7.2f}x")
    print(f"{f'kvae-bench generate, {workers} workers (default)':<42} {fps:>10.0f} "
          f"{fps / ref:>7.2f}x")
    print(f"({args.sequences} sequences x 20 frames for ours, file written; "
          f"{args.reference_sequences} for the reference; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

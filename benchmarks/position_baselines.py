"""Position-error scale for a long gap: what two predictors that know no dynamics score over
the planning protocol's gap of k frames (frames 4 .. 3 + k missing), as the median distance
(px) between their guess and the object's true position over the missing frames of every test
sequence. A model near these has not carried the dynamics across the gap.
  - hold: the last observed position (frame 3) at every missing frame;
  - mean: the test set's mean position over the missing frames.
It reads the true positions, not frames (no model, no rendering).

    python benchmarks/position_baselines.py DATA.h5 [K]
    python benchmarks/position_baselines.py data/pendulum.h5 15
"""

from __future__ import annotations

import sys

import numpy as np

import simulators
from kvae_bench import h5io, masks
from kvae_bench.data import VideoSplit
from kvae_bench.evaluate import _positions


def baselines(path: str, k: int) -> dict:
    test = VideoSplit(path, "test")
    xy = _positions(test, simulators.scoring(h5io.read_meta(path)["env"], test.image_size))
    if xy is None:
        raise SystemExit(f"{path} has no true states to score positions against")
    first = masks.T_INIT
    if not 1 <= k <= xy.shape[1] - first:
        raise SystemExit(f"k must be in [1, {xy.shape[1] - first}] for {path}, got {k}")
    gap = xy[:, first:first + k]
    hold = np.linalg.norm(gap - xy[:, first - 1:first], axis=-1)
    mean = np.linalg.norm(gap - gap.reshape(-1, 2).mean(0), axis=-1)
    return {"data": path, "k": k, "sequences": len(xy), "hold_px": round(float(np.median(hold)), 2),
            "mean_px": round(float(np.median(mean)), 2)}


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(baselines(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 15))

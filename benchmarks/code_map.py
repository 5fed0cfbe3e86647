"""Diagnostic figure: where trained runs put the test frames in their 2-D code space, coloured
by the ball's true position. A linear code (what the KVAE's linear-Gaussian dynamics need) keeps
the box a grid; a folded one tears it apart. Needs each run's checkpoint (ckpt.pt).

    python benchmarks/code_map.py OUT.png RUN [RUN ...]
    python benchmarks/code_map.py results/notes/box-kvae-codes.png \\
        results/runs/paper/kvae-box-s0 results/runs/paper/kvae-box-2017-s0
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import simulators
from kvae_bench import h5io
from kvae_bench.data import VideoSplit
from kvae_bench.evaluate import _positions, load_run
from kvae_bench.train import control_kwargs


def codes(model, split: VideoSplit) -> np.ndarray:
    """The model's codes a_t of every frame of split, (N * T, dim_a)."""
    x = torch.from_numpy((split.frames.numpy() > 127).astype(np.float32))
    with torch.no_grad():
        return model.codes(x, **control_kwargs(model.codes, split.controls)).numpy().reshape(
            -1, model.config.dim_a)


def main(out: str, runs: list[str], sequences: int = 200) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        model, _, _, data = load_run(run)
        test = VideoSplit(data, "test", limit=sequences)
        a = codes(model, test)
        env = h5io.read_meta(data)["env"]
        xy = _positions(test, simulators.scoring(env, test.image_size)).reshape(-1, 2)
        u = (xy - xy.min(0)) / (xy.max(0) - xy.min(0))
        ax.scatter(a[:, 0], a[:, 1], s=2,
                   c=np.stack([u[:, 0], 0.2 + 0.6 * u[:, 1], 1 - u[:, 0]], 1))
        ax.set_title(run.rstrip("/").split("/")[-1], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"codes a_t of {sequences} test sequences; colour: the true position "
                 "(red-blue: x, dark-light: y)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2:])

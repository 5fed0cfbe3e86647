"""Screen seeds and recipes early: train the paper grid's recipe (benchmark.plan, the paper
profile) for a few epochs at one thread, with optional overrides, and print after each epoch
  - probe_r2: the R^2 of a linear probe from the codes to the object's true position. A KVAE
    whose box codes tear (see results/NOTES.md, box) shows it by epoch 3; a probe that recovers
    past 0.95 by then trained normally in every run seen;
  - gap_px: the position error (pixels) at one missing frame (frame 10) of each test
    sequence, all others observed, in the model's first imputation method (gap_method): the
    median (gap_px) and mean (gap_px_mean) over the frames that show an object, and the
    fraction that show none (gap_no_object); it finds a model whose inference does not carry
    the neighbours into a gap (the DMM on pendulum);
  - plan_px: the same median over the planning protocol's longest gap (k = 15 frames missing
    after the first 4, or as many as the sequences hold: plan_k), where a transition that
    drifts shows (the DMM on pendulum again).
Runs go to /tmp/code-screen/TAG-sSEED. env= and model= pick the grid's cell (box, kvae). The
data sets are the grid's, data/ENV.h5 under the repository root, wherever this is run from.

    python benchmarks/code_screen.py TAG EPOCHS SEEDS [env=ENV] [model=MODEL] [KEY=VALUE ...]
    python benchmarks/code_screen.py paper 3 0,1,2,3,4
    python benchmarks/code_screen.py vae1 3 0,1,2,3,4 only_vae_epochs=1
    python benchmarks/code_screen.py dmm-anneal 10 0 env=pendulum model=dmm anneal_epochs=10
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from code_map import codes  # benchmarks/, on the path when run as a script

import simulators
from kvae_bench import h5io, masks, metrics
from kvae_bench.benchmark import plan
from kvae_bench.data import VideoSplit
from kvae_bench.evaluate import _positions, load_run
from kvae_bench.train import control_kwargs, train

GAP = 10  # the one missing frame of gap_px
LONG_GAP = 15  # plan_px: planning k


def gap_error(model, x: torch.Tensor, controls, xy: np.ndarray, ignore: np.ndarray,
              mask: np.ndarray) -> dict:
    """Over the missing frames of mask (N, T), the model's first imputation method of the
    binary frames x (N, T, H, W) (with their controls, or None): the median and mean position
    error (px) over the frames that show an object, and the fraction that show none.
    ignore (H, W): pixels that never show the object (the static scene and, e.g., pong's
    paddles), as evaluate reads them."""
    with torch.no_grad():
        method, pred = next(iter(model.impute(
            x, torch.from_numpy(mask), **control_kwargs(model.impute, controls)).items()))
    gaps = mask == 0
    err = metrics.position_errors(pred.numpy()[gaps], xy[gaps], ignore)
    drawn = err[~np.isnan(err)]
    return {"method": method, "median": float(np.median(drawn)) if drawn.size else None,
            "mean": float(drawn.mean()) if drawn.size else None,
            "no_object": float(np.isnan(err).mean())}


def main(tag: str, epochs: int, seeds: list[int], overrides: dict, env: str = "box",
         model_name: str = "kvae") -> None:
    torch.set_num_threads(1)
    os.chdir(Path(__file__).resolve().parent.parent)  # plan() reads and writes ./data
    specs = plan([env], [model_name], seeds, "paper", progress=False)
    data = specs[0].data  # one data set: every seed's
    train_split = VideoSplit(data, "train", limit=300)
    test_split = VideoSplit(data, "test", limit=200)
    scoring = simulators.scoring(h5io.read_meta(data)["env"], test_split.image_size)
    train_xy, test_xy = _positions(train_split, scoring), _positions(test_split, scoring)
    x = torch.from_numpy((test_split.frames.numpy() > 127).astype(np.float32))
    ignore = metrics.static_background(x.numpy()) | ~scoring.object_region
    steps = x.shape[1]
    if steps <= GAP:
        raise SystemExit(f"gap_px needs sequences longer than {GAP} frames, got {steps}")
    one_gap = np.ones(x.shape[:2], np.float32)
    one_gap[:, GAP] = 0
    plan_k = min(LONG_GAP, steps - masks.T_INIT)
    planning = masks.planning_mask(len(test_split), steps, plan_k)
    for spec in specs:
        out = Path("/tmp/code-screen") / f"{tag}-s{spec.seed}"
        r2, gap, long_gap = [], [], []
        for epoch in range(1, epochs + 1):
            first = epoch == 1
            train(out, spec.model if first else None, spec.data,
                  {**spec.options, **overrides, "epochs": epoch} if first else {"epochs": epoch},
                  seed=spec.seed, device="cpu", resume=not first, progress=False)
            model = load_run(out)[0]
            r2.append(metrics.linear_probe_r2(
                codes(model, train_split), train_xy.reshape(-1, 2),
                codes(model, test_split), test_xy.reshape(-1, 2)))
            gap.append(gap_error(model, x, test_split.controls, test_xy, ignore, one_gap))
            long_gap.append(gap_error(model, x, test_split.controls, test_xy, ignore, planning))
        elbo = [round(json.loads(line)["test_elbo"], 1) for line in open(out / "log.jsonl")]
        print(json.dumps({"tag": tag, "env": env, "model": model_name, "seed": spec.seed,
                          "overrides": overrides, "probe_r2": [round(v, 3) for v in r2],
                          "gap_method": gap[-1]["method"],
                          "gap_px": [g["median"] and round(g["median"], 2) for g in gap],
                          "gap_px_mean": [g["mean"] and round(g["mean"], 2) for g in gap],
                          "gap_no_object": [round(g["no_object"], 2) for g in gap],
                          "plan_k": plan_k,
                          "plan_px": [g["median"] and round(g["median"], 2) for g in long_gap],
                          "test_elbo": elbo}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    pairs = dict(a.split("=", 1) for a in sys.argv[4:])
    cell = {k: pairs.pop(k) for k in ("env", "model") if k in pairs}
    main(sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")],
         {k: json.loads(v) for k, v in pairs.items()}, cell.get("env", "box"),
         cell.get("model", "kvae"))

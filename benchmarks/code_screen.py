"""Screen seeds for a torn code: train the paper grid's recipe (benchmark.plan, the paper
profile) for a few epochs at one thread, with optional overrides, and print after each epoch
the R^2 of a linear probe from the codes to the ball's true position. A KVAE whose box codes
tear (see results/NOTES.md, box) shows it by epoch 3; a probe that recovers past 0.95 by then
trained normally in every run seen. Runs go to /tmp/code-screen/TAG-sSEED.

    python benchmarks/code_screen.py TAG EPOCHS SEEDS [KEY=VALUE ...]
    python benchmarks/code_screen.py paper 3 0,1,2,3,4
    python benchmarks/code_screen.py vae1 3 0,1,2,3,4 only_vae_epochs=1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from code_map import codes  # benchmarks/, on the path when run as a script

import simulators
from kvae_bench import h5io, metrics
from kvae_bench.benchmark import plan
from kvae_bench.data import VideoSplit
from kvae_bench.evaluate import _positions, load_run
from kvae_bench.train import train


def main(tag: str, epochs: int, seeds: list[int], overrides: dict, env: str = "box",
         model_name: str = "kvae") -> None:
    torch.set_num_threads(1)
    specs = plan([env], [model_name], seeds, "paper", progress=False)
    data = specs[0].data  # one data set: every seed's
    train_split = VideoSplit(data, "train", limit=300)
    test_split = VideoSplit(data, "test", limit=200)
    scoring = simulators.scoring(h5io.read_meta(data)["env"], test_split.image_size)
    for spec in specs:
        out = Path("/tmp/code-screen") / f"{tag}-s{spec.seed}"
        r2 = []
        for epoch in range(1, epochs + 1):
            first = epoch == 1
            train(out, spec.model if first else None, spec.data,
                  {**spec.options, **overrides, "epochs": epoch} if first else {"epochs": epoch},
                  seed=spec.seed, device="cpu", resume=not first, progress=False)
            model = load_run(out)[0]
            r2.append(metrics.linear_probe_r2(
                codes(model, train_split), _positions(train_split, scoring).reshape(-1, 2),
                codes(model, test_split), _positions(test_split, scoring).reshape(-1, 2)))
        elbo = [round(json.loads(line)["test_elbo"], 1) for line in open(out / "log.jsonl")]
        print(json.dumps({"tag": tag, "seed": spec.seed, "overrides": overrides,
                          "probe_r2": [round(v, 3) for v in r2], "test_elbo": elbo}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")],
         {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])})

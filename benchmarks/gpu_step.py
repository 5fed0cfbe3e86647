"""Training step time per model on a GPU: the eager loop against the CUDA-graph step
(kvae_bench.graphstep), at the paper's shapes (B = 32, T = 20, 32x32), with what each lever
buys (bf16 convs, the graph), GPU utilisation during the graph loop and CUDA kernels per step.

    python benchmarks/gpu_step.py [--device cuda] [--steps 200] [--data data/box.h5]
                                  [--models kvae,ae_rnn,vae_rnn] [--json out.json]

On a CPU it runs too (the graph step is then its eager body): to try the script, not to time.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import torch

from kvae_bench import graphstep, models
from kvae_bench.models.protocol import EpochSchedule


def batch(data, B=32, T=20, device="cpu"):
    if data:
        from kvae_bench import h5io

        frames = h5io.read(data, "train", limit=B).frames
        x = torch.from_numpy((frames > 127).astype(np.float32))
    else:
        x = (torch.rand(B, T, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    return x.to(device)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Utilisation:
    """Mean GPU utilisation (nvml, percent) while the block runs; None without nvml."""

    def __init__(self, device):
        self.device, self.samples, self.stop = device, [], threading.Event()

    def __enter__(self):
        if self.device.startswith("cuda"):
            try:
                torch.cuda.utilization()
                self.thread = threading.Thread(target=self._sample, daemon=True)
                self.thread.start()
            except Exception:  # no nvml
                self.device = "none"
        return self

    def _sample(self):
        while not self.stop.wait(0.02):
            self.samples.append(torch.cuda.utilization())

    def __exit__(self, *exc):
        self.stop.set()
        if self.device.startswith("cuda"):
            self.thread.join()

    @property
    def mean(self):
        return float(np.mean(self.samples)) if self.samples else None


def eager_step(model, opt, x, mask):
    """The eager loop's step, host reads included (as kvae_bench.train does it)."""
    loss, logs = model.loss(x, mask)
    opt.zero_grad(set_to_none=True)
    if bool(torch.isfinite(loss)):
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 150.0)
        if bool(torch.isfinite(norm)):
            opt.step()
    return {k: float(v) for k, v in logs.items()}


def kernels_per_step(fn, device):
    if not device.startswith("cuda"):
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        sync(device)
    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")


def measure(name, precision, mode, x, device, steps):
    torch.manual_seed(0)
    model = models.build(name, x.shape[-1], {"conv_precision": precision}).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    mask = torch.ones(x.shape[:2], device=device)
    row = {"model": name, "conv": precision, "mode": mode}
    t_setup = time.perf_counter()
    if mode == "graph":
        graphstep.make_capturable(opt, device)
        try:
            g = graphstep.GraphedStep(model, opt, EpochSchedule(), x, 150.0)
        except graphstep.GraphUnsupported as e:
            return {**row, "error": str(e)}

        def fn():
            g.step(x, 1e-4)
    else:
        def fn():
            eager_step(model, opt, x, mask)
    for _ in range(3):
        fn()
    sync(device)
    row["setup_s"] = round(time.perf_counter() - t_setup, 2)
    with Utilisation(device) as util:
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        row["ms_per_step"] = round(1e3 * (time.perf_counter() - t0) / steps, 3)
    row["gpu_util_pct"] = util.mean
    row["kernels_per_step"] = kernels_per_step(fn, device)
    if mode == "graph":
        logs, good, _ = g.take_epoch()
        row["finite_steps"] = good
        row["train_elbo_or_log_px"] = round(logs.get("elbo", logs.get("log_px")), 3)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--data")
    parser.add_argument("--models", default="kvae,ae_rnn,vae_rnn")
    parser.add_argument("--json")
    args = parser.parse_args()
    x = batch(args.data, device=args.device)
    settings = [("kvae", "float32", "eager"), ("kvae", "bf16", "eager"),
                ("kvae", "float32", "graph"), ("kvae", "bf16", "graph")]
    settings += [(m, "bf16", mode) for m in args.models.split(",") if m != "kvae"
                 for mode in ("eager", "graph")]
    settings = [s for s in settings if s[0] in args.models.split(",")]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), torch {torch.__version__}; B = 32, T = 20, "
          f"32x32; {args.steps} steps each")
    rows = []
    for s in settings:
        row = measure(*s, x, args.device, args.steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'model':<9}{'conv':<9}{'mode':<7}{'ms/step':>9}{'epoch s':>9}{'80 ep. min':>11}"
          f"{'GPU %':>7}{'kernels':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<9}{r['conv']:<9}{r['mode']:<7}  {r['error']}")
            continue
        epoch = r["ms_per_step"] * 156 / 1e3
        util = "-" if r["gpu_util_pct"] is None else f"{r['gpu_util_pct']:.0f}"
        print(f"{r['model']:<9}{r['conv']:<9}{r['mode']:<7}{r['ms_per_step']:>9.2f}"
              f"{epoch:>9.2f}{epoch * 80 / 60:>11.2f}{util:>7}"
              f"{r['kernels_per_step'] or '-':>9}")
    by = {(r["model"], r["conv"], r["mode"]): r.get("ms_per_step") for r in rows}
    base = by.get(("kvae", "float32", "eager"))
    for key in [("kvae", "bf16", "eager"), ("kvae", "float32", "graph"), ("kvae", "bf16", "graph")]:
        if base and by.get(key):
            print(f"kvae {' '.join(key[1:])}: {base / by[key]:.2f}x the float32 eager step")
    kvae = by.get(("kvae", "bf16", "graph"))
    for m in args.models.split(","):
        if m != "kvae" and kvae and by.get((m, "bf16", "graph")):
            print(f"{m} graph step / kvae graph step: {by[(m, 'bf16', 'graph')] / kvae:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

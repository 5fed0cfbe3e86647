"""KVAE training step time at the paper's shapes (B = 32, T = 20, 32x32), split into encoder,
decoder, dynamics network, Kalman filter (+ smoother for elbo=sampled) and backward, for float32
convs and for bf16-autocast convs (the Kalman part stays float32 in both), side by side.

Also checks that bf16 keeps the results: the ELBO terms of the same batch under both settings.

    python benchmarks/train_speed.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kvae_bench import models


def box_batch(data=None, B=32, T=20, seed=0):
    """A real batch: the first B training videos of `data`, else box videos from the
    simulator (which needs pymunk and pygame)."""
    if data:
        from kvae_bench import h5io

        frames = h5io.read(data, "train", limit=B).frames
    else:
        from simulators.generate import generate_block

        frames, _ = generate_block("box", {}, seed, "train", 0, B, T)
    return torch.from_numpy((frames > 127).astype(np.float32))


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def profile(precision, elbo, x, device, repeats):
    torch.manual_seed(0)
    m = models.build("kvae", x.shape[-1], {"elbo": elbo, "conv_precision": precision}
                     ).to(device)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    mask = torch.ones(x.shape[:2], device=device)
    with torch.no_grad():
        mean, var = m.encode(x)
        a = mean
    parts = {}
    with torch.no_grad():
        parts["encoder"] = timed(lambda: m.encode(x), device, repeats)
        parts["decoder"] = timed(lambda: m.decode(a), device, repeats)
        a_prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
        parts["dynamics net"] = timed(lambda: m._mix(*m.alpha_net(a_prev)[:2]), device, repeats)
        parts["kalman"] = timed(lambda: m._lgssm_log_prob(a, mask, *m.filter(a, mask), None),
                                device, repeats)
        parts["forward (loss)"] = timed(lambda: m.loss(x, mask), device, repeats)

    def step():
        loss, _ = m.loss(x, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 150.0)
        opt.step()

    parts["step (fwd+bwd+adam)"] = timed(step, device, repeats)
    parts["backward+adam"] = parts["step (fwd+bwd+adam)"] - parts["forward (loss)"]
    torch.manual_seed(0)
    m.eval()
    with torch.no_grad():
        _, logs = m.loss(x, mask, generator=torch.Generator(device=device).manual_seed(0))
    return parts, logs, m


def floor_lines(x, bf16_step_ms: float) -> str:
    """What this machine allows: the step's FLOPs (counted by torch) against the best bf16
    matrix product of the decoder's largest layer's shape (im2col GEMM: 640 frames x 16 x 16
    pixels by 288 by 128), as a lower bound on the step time."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    m = models.build("kvae", x.shape[-1], {"conv_precision": "bf16"})
    mask = torch.ones(x.shape[:2], device=x.device)
    with FlopCounterMode(display=False) as counter:
        loss, _ = m.to(x.device).loss(x, mask)
        loss.backward()
    flops = counter.get_total_flops()
    M, K, N = x.shape[0] * x.shape[1] * (x.shape[-1] // 2) ** 2, 288, 128
    a = torch.randn(M, K, dtype=torch.bfloat16, device=x.device)
    b = torch.randn(K, N, dtype=torch.bfloat16, device=x.device)
    gemm_ms = timed(lambda: a @ b, str(x.device), 3)
    peak = 2 * M * K * N / (gemm_ms / 1e3)
    floor = flops / peak * 1e3
    return (f"step FLOPs {flops / 1e9:.1f} G; best bf16 GEMM of the largest layer's shape "
            f"{peak / 1e12:.2f} TFLOP/s -> floor {floor:.0f} ms per step at that rate "
            f"= {floor / bf16_step_ms:.0%} of the measured bf16 step, {bf16_step_ms:.0f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", help="take the batch from this dataset file")
    args = parser.parse_args()
    x = box_batch(args.data).to(args.device)
    rows, logs = {}, {}
    settings = [("float32", "exact"), ("bf16", "exact"), ("bf16", "sampled")]
    for precision, elbo in settings:
        rows[(precision, elbo)], logs[(precision, elbo)], _ = profile(precision, elbo, x,
                                                                     args.device, args.repeats)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"B = 32, T = 20, 32x32; ms, best of {args.repeats}")
    header = "".join(f"{p + ' ' + e:>16}" for p, e in settings)
    print(f"{'part':<22}{header}")
    for part in rows[settings[0]]:
        print(f"{part:<22}" + "".join(f"{rows[s][part]:>16.1f}" for s in settings))
    base = rows[settings[0]]["step (fwd+bwd+adam)"]
    print(f"{'speed-up vs float32':<22}" + "".join(
        f"{base / rows[s]['step (fwd+bwd+adam)']:>15.2f}x" for s in settings))
    steps = 5000 // 32
    print(f"{'epoch of box (156 st)':<22}" + "".join(
        f"{rows[s]['step (fwd+bwd+adam)'] * steps / 1e3:>15.1f}s" for s in settings))
    print(floor_lines(x, rows[settings[1]]["step (fwd+bwd+adam)"]))
    f32, b16 = logs[settings[0]], logs[settings[1]]
    print("same weights and batch, per frame: log p(x|a) float32 "
          f"{f32['log_px']:.4f} vs bf16 {b16['log_px']:.4f}; ELBO {f32['elbo']:.4f} vs "
          f"{b16['elbo']:.4f}; sampled ELBO {logs[settings[2]]['elbo']:.4f}")


if __name__ == "__main__":
    main()

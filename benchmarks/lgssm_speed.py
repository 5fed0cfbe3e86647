"""Filter + smoother speed, sequential vs parallel (associative scan), forward and
forward+backward, at B = 32, Z = 4, A = 2 and T = 20, 200, 1000 (float32, CPU threads as
torch sets them, or CUDA with --device cuda).

    python benchmarks/lgssm_speed.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from kvae_bench import lgssm

FORMS = {"sequential": (lgssm.kalman_filter, lgssm.rts_smoother),
         "parallel": (lgssm.parallel_kalman_filter, lgssm.parallel_rts_smoother)}


def problem(T, device, B=32, Z=4, A=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    At = torch.eye(Z) + 0.05 * torch.randn(B, T, Z, Z, generator=g)
    C = torch.randn(B, T, A, Z, generator=g)
    a = torch.randn(B, T, A, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.2).float()
    args = dict(a=a, mask=mask, A=At, C=C, Q=0.08 * torch.eye(Z), R=0.03 * torch.eye(A),
                mu0=torch.zeros(B, Z), Sigma0=20 * torch.eye(Z).expand(B, Z, Z).clone())
    return {k: v.to(device) for k, v in args.items()}


def run(form, args, backward):
    kf, smoother = FORMS[form]
    if backward:
        args = {k: (v.clone().requires_grad_() if k in ("a", "A", "C") else v)
                for k, v in args.items()}
    f = kf(**args)
    s = smoother(args["A"], f)
    if backward:
        (f.log_likelihood.sum() + s.smoothed_means.sum() + s.smoothed_covs.sum()).backward()


def timed(fn, repeats, device):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", default="20,200,1000")
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "B = 32, Z = 4, A = 2, float32; best of", args.repeats)
    print(f"{'T':>6} {'form':<11} {'forward ms':>11} {'fwd+bwd ms':>11}")
    for T in (int(x) for x in args.lengths.split(",")):
        prob = problem(T, args.device)
        res = {}
        for form in FORMS:
            fwd, bwd = (timed(lambda f=form, p=prob, b=back: run(f, p, b), args.repeats,
                              args.device) for back in (False, True))
            res[form] = bwd
            print(f"{T:>6} {form:<11} {1e3 * fwd:>11.1f} {1e3 * bwd:>11.1f}")
        print(f"{'':>6} parallel speed-up fwd+bwd: {res['sequential'] / res['parallel']:.2f}x")


if __name__ == "__main__":
    main()

"""How often float32 filtering loses positive definiteness, by noise level.

Random stable time-varying systems (Z = 4, A = 2, T = 50, 30% missing), Q = R = q I for q from
the KVAE's 0.08 down to near-deterministic 1e-5, Sigma0 = 20 I, C ~ N(0, 1). A case fails when
any filtered, predicted or smoothed covariance has a non-positive eigenvalue, a Cholesky
factorisation fails, or a result is not finite. Prints the failure rate per q for the
sequential (Joseph form) and the parallel filter, and the worst relative error of the filtered
means against float64.

    python benchmarks/lgssm_stability.py [--cases 400]
"""

from __future__ import annotations

import argparse

import torch

from kvae_bench import lgssm


def systems(cases, q, seed=0, T=50, Z=4, A=2):
    g = torch.Generator().manual_seed(seed)
    Qr, _ = torch.linalg.qr(torch.randn(cases, T, Z, Z, generator=g, dtype=torch.float64))
    At = 0.98 * Qr + 0.05 * torch.randn(cases, T, Z, Z, generator=g, dtype=torch.float64)
    C = torch.randn(cases, T, A, Z, generator=g, dtype=torch.float64)
    z = torch.randn(cases, Z, generator=g, dtype=torch.float64)
    a = []
    for t in range(T):  # observations from the model itself
        a.append((C[:, t] @ z.unsqueeze(-1)).squeeze(-1)
                 + q**0.5 * torch.randn(cases, A, generator=g, dtype=torch.float64))
        z = (At[:, t] @ z.unsqueeze(-1)).squeeze(-1) + q**0.5 * torch.randn(
            cases, Z, generator=g, dtype=torch.float64)
    mask = (torch.rand(cases, T, generator=g, dtype=torch.float64) > 0.3).double()
    return dict(a=torch.stack(a, 1), mask=mask, A=At, C=C,
                Q=q * torch.eye(Z, dtype=torch.float64), R=q * torch.eye(A, dtype=torch.float64),
                mu0=torch.zeros(cases, Z, dtype=torch.float64),
                Sigma0=20 * torch.eye(Z, dtype=torch.float64).expand(cases, Z, Z).clone())


def failures(kf, smoother, args):
    """Boolean (cases,) of failed cases, run one case at a time so failures stay separate."""
    failed = []
    for i in range(args["a"].shape[0]):
        one = {k: (v if k in ("Q", "R") else v[i:i + 1]) for k, v in args.items()}
        try:
            f = kf(**one)
            s = smoother(one["A"], f)
            covs = torch.cat([f.filtered_covs, f.predicted_covs, s.smoothed_covs], 1)
            bad = (not all(torch.isfinite(x).all() for x in (*f, *s))
                   or bool(torch.linalg.eigvalsh(covs.double()).min() <= 0))
        except RuntimeError:  # torch.linalg.cholesky: not positive definite
            bad = True
        failed.append(bad)
    return torch.tensor(failed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    args = parser.parse_args()
    forms = {"sequential (Joseph)": (lgssm.kalman_filter, lgssm.rts_smoother),
             "parallel": (lgssm.parallel_kalman_filter, lgssm.parallel_rts_smoother)}
    print(f"{args.cases} random systems per row, T = 50, float32; failure = a covariance not "
          "positive definite, a failed Cholesky or a non-finite value")
    print(f"{'q = Q = R':>10} {'form':<20} {'float32 fail':>12} {'float64 fail':>12} "
          f"{'max |mean err| (f32 vs f64)':>28}")
    for q in (0.08, 1e-2, 1e-3, 1e-4, 1e-5):
        sys64 = systems(args.cases, q)
        sys32 = {k: v.float() for k, v in sys64.items()}
        for name, (kf, smoother) in forms.items():
            f32 = failures(kf, smoother, sys32)
            f64 = failures(kf, smoother, sys64)
            ok = ~(f32 | f64)
            err = float("nan")
            if ok.any():
                idx = ok.nonzero().squeeze(-1)
                sub32 = {k: (v if k in ("Q", "R") else v[idx]) for k, v in sys32.items()}
                sub64 = {k: (v if k in ("Q", "R") else v[idx]) for k, v in sys64.items()}
                m32 = kf(**sub32).filtered_means.double()
                m64 = kf(**sub64).filtered_means
                err = ((m32 - m64).abs().max() / m64.abs().max()).item()
            print(f"{q:>10.0e} {name:<20} {f32.float().mean().item():>11.1%} "
                  f"{f64.float().mean().item():>11.1%} {err:>28.2e}")


if __name__ == "__main__":
    main()

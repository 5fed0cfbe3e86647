"""Exact inference in a linear Gaussian state space model with time-varying matrices and missing
observations: Kalman filter, Rauch-Tung-Striebel smoother, posterior and prior sampling; pure
torch functions, batched, differentiable, float32 or float64.

The model (Fraccaro et al. 2017, Sec. 3), for batch B, time T, Z = dim z, A = dim a:

    z_1     ~ N(mu0, Sigma0)
    z_{t+1} = A_t z_t + Bu_t + eps_t,     eps_t   ~ N(0, Q)
    a_t     = C_t z_t + delta_t,          delta_t ~ N(0, R)

with an observation mask m (B, T): where m_t = 0, a_t is missing and the update is skipped.
Indexing: A[:, t] maps z_t to z_{t+1} (A[:, T-1] is unused), likewise Bu[:, t].

Numerics: covariance updates in Joseph form, outputs symmetrised, every solve through a
Cholesky factor, never an explicit inverse. The matrices factored in the filter and smoother,
S = C P C^T + R >= R and P^p = A P A^T + Q >= Q, are kept away from singular by the noise
itself; a covariance formed by subtraction (the backward-sampling covariance) is factored with
a jitter of a few float eps relative to its scale.

The default is this plain Joseph form rather than a square-root form, from
benchmarks/lgssm_stability.py: in float32 it never lost positive definiteness at the KVAE's
noise levels (Q = R = 0.08 I) nor down to 1e-4, and failed in 2.5% of random systems only at
1e-5; for such near-deterministic systems use float64 (no failures there). The parallel form is
also exact, but in float32 its means drift from float64 once the noise is below ~1e-3.

References: Särkkä, "Bayesian Filtering and Smoothing" (2013), eqs. 4.20-4.21 (filter),
8.2-8.3 (RTS smoother); Särkkä and García-Fernández, "Temporal parallelization of
Bayesian smoothers", IEEE TAC 2021 (the parallel forms, Lemmas 7-10 there).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class FilterResult(NamedTuple):
    filtered_means: Tensor  # (B, T, Z)  E[z_t | a_{<=t}]
    filtered_covs: Tensor  # (B, T, Z, Z)
    predicted_means: Tensor  # (B, T, Z)  E[z_t | a_{<t}]
    predicted_covs: Tensor  # (B, T, Z, Z)
    log_likelihoods: Tensor  # (B, T)  log p(a_t | a_{<t}) where observed, else 0
    log_likelihood: Tensor  # (B,)  log p(observed a's)


class SmootherResult(NamedTuple):
    smoothed_means: Tensor  # (B, T, Z)  E[z_t | all observed a]
    smoothed_covs: Tensor  # (B, T, Z, Z)
    smoothed_cross_covs: Tensor  # (B, T-1, Z, Z)  Cov(z_{t+1}, z_t | all observed a)
    gains: Tensor  # (B, T-1, Z, Z)  J_t: E[z_t | z_{t+1}, a] = m^s_t + J_t (z_{t+1} - m^s_{t+1})
    backward_covs: Tensor  # (B, T-1, Z, Z)  Cov(z_t | z_{t+1}, all observed a)


# ---- linear algebra helpers ----------------------------------------------------------------


def symmetrize(P: Tensor) -> Tensor:
    return 0.5 * (P + P.transpose(-1, -2))


def cholesky(S: Tensor) -> Tensor:
    """Lower Cholesky factor of S (its lower triangle is read); NaN where S is not positive
    definite. No host synchronisation (torch.linalg.cholesky reads its error flag back to the
    host, which a CUDA graph cannot capture): a failure turns the loss NaN, and the training
    loop skips non-finite steps."""
    L, info = torch.linalg.cholesky_ex(S)
    return torch.where((info == 0)[..., None, None], L, torch.nan)


def spd_solve(L: Tensor, B: Tensor) -> Tensor:
    """S^-1 B for S = L L^T, L lower (..., n, n), B (..., n, m): two triangular solves, which
    (unlike torch.cholesky_solve) have a batched CUDA kernel without host synchronisation."""
    W = torch.linalg.solve_triangular(L, B, upper=False)
    return torch.linalg.solve_triangular(L.transpose(-1, -2), W, upper=True)


def cholesky_jittered(S: Tensor) -> Tensor:
    """Lower Cholesky factor of sym(S) + jitter I, jitter = 10 eps(dtype) * trace(S) / n.
    In float64 the jitter is ~1e-15 relative (invisible); in float32 ~1e-6, enough to keep
    round-off from failing a positive semi-definite matrix made by subtraction."""
    S = symmetrize(S)
    n = S.shape[-1]
    scale = S.diagonal(dim1=-2, dim2=-1).mean(-1).abs().clamp_min(torch.finfo(S.dtype).tiny)
    jitter = 10.0 * torch.finfo(S.dtype).eps * scale
    eye = torch.eye(n, dtype=S.dtype, device=S.device)
    return cholesky(S + jitter[..., None, None] * eye)


def _mv(M: Tensor, v: Tensor) -> Tensor:
    """Batched matrix-vector product, any leading shape."""
    return (M @ v.unsqueeze(-1)).squeeze(-1)


# In the per-step functions below, tensors are (B, n, m) and torch.bmm is called directly:
# `@` would add expand and reshape nodes to the autograd graph at every step, which costs more
# than the arithmetic at these sizes.
_bmm = torch.bmm


def _bmv(M: Tensor, v: Tensor) -> Tensor:
    """(B, n, m) x (B, m) -> (B, n)."""
    return _bmm(M, v.unsqueeze(-1)).squeeze(-1)


def gaussian_log_prob(x: Tensor, mean: Tensor, L: Tensor) -> Tensor:
    """log N(x; mean, L L^T) for x, mean (..., n) and lower Cholesky factor L (..., n, n)."""
    diff = (x - mean).unsqueeze(-1)
    white = torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)
    logdet = 2.0 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (x.shape[-1] * LOG_2PI + logdet + (white**2).sum(-1))


# ---- the one-step primitives ---------------------------------------------------------------


def predict(mean: Tensor, cov: Tensor, A: Tensor, Q: Tensor, Bu: Tensor | None = None):
    """Moments of p(z_{t+1} | a_{<=t}) from those of p(z_t | a_{<=t}) (Särkkä eq. 4.20):

        m' = A m + Bu,    P' = A P A^T + Q

    mean (B, Z), cov (B, Z, Z), A (B, Z, Z), Q (Z, Z), Bu (B, Z) or None.
    """
    mean = _bmv(A, mean)
    if Bu is not None:
        mean = mean + Bu
    cov = symmetrize(_bmm(_bmm(A, cov), A.transpose(-1, -2)) + Q)
    return mean, cov


def _update(mean, cov, a, C, R, mask):
    """The arithmetic of `update`; returns (mean, cov, innovation a - C m, chol(S))."""
    PCt = _bmm(cov, C.transpose(-1, -2))  # (B, Z, A)
    L = cholesky(_bmm(C, PCt) + R)  # S = C P C^T + R, (B, A, A)
    K = spd_solve(L, PCt.transpose(-1, -2)).transpose(-1, -2)  # (B, Z, A)
    if mask is not None:
        K = K * mask[:, None, None]  # a missing a_t: zero gain, so (m, P) pass through exactly
    innovation = a - _bmv(C, mean)
    new_mean = mean + _bmv(K, innovation)
    IKC = -_bmm(K, C)
    IKC.diagonal(dim1=-2, dim2=-1).add_(1.0)  # I - K C
    KRKt = _bmm(K @ R, K.transpose(-1, -2))
    new_cov = symmetrize(_bmm(_bmm(IKC, cov), IKC.transpose(-1, -2)) + KRKt)
    return new_mean, new_cov, innovation, L


def _masked_log_likelihood(innovation, L, mask):
    """log N(innovation; 0, L L^T) where observed, else 0; any leading shape."""
    ll = gaussian_log_prob(innovation, torch.zeros_like(innovation), L)
    return ll if mask is None else torch.where(mask > 0.5, ll, torch.zeros_like(ll))


def update(mean: Tensor, cov: Tensor, a: Tensor, C: Tensor, R: Tensor, mask: Tensor | None = None):
    """Condition N(z_t; m, P) on a_t = C z_t + delta, delta ~ N(0, R) (Särkkä eq. 4.21), in
    Joseph form:

        S = C P C^T + R,  K = P C^T S^-1,  m' = m + K (a - C m),
        P' = (I - K C) P (I - K C)^T + K R K^T,   log p(a_t | a_{<t}) = log N(a; C m, S)

    mean (B, Z), cov (B, Z, Z), a (B, A), C (B, A, Z), R (A, A), mask (B,) in {0, 1} or None
    (all observed). Where mask is 0 the step is skipped: the gain is zero, (m, P) come back
    unchanged and the log-likelihood is 0. Returns (mean, cov, log_likelihood (B,)).
    """
    mean, cov, innovation, L = _update(mean, cov, a, C, R, mask)
    return mean, cov, _masked_log_likelihood(innovation, L, mask)


def smoother_gains(filtered_covs, predicted_covs_next, A):
    """RTS gains J_t = P^f_t A_t^T (P^p_{t+1})^-1 and backward covariances
    Cov(z_t | z_{t+1}, a_{<=t}) = P^f_t - J_t P^p_{t+1} J_t^T, for any leading shape
    (they depend on the filter's covariances only, so all steps are done at once)."""
    L = cholesky(predicted_covs_next)
    J = spd_solve(L, A @ filtered_covs).transpose(-1, -2)
    backward = symmetrize(filtered_covs - J @ predicted_covs_next @ J.transpose(-1, -2))
    return J, backward


def smooth_step(J, filtered_mean, filtered_cov, predicted_mean_next, predicted_cov_next,
                smoothed_mean_next, smoothed_cov_next):
    """One backward RTS step (Särkkä eq. 8.2-8.3) with gain J from `smoother_gains`:

        m^s_t = m^f_t + J (m^s_{t+1} - m^p_{t+1}),  P^s_t = P^f_t + J (P^s_{t+1} - P^p_{t+1}) J^T
    """
    mean = filtered_mean + _bmv(J, smoothed_mean_next - predicted_mean_next)
    cov = symmetrize(filtered_cov + _bmm(_bmm(J, smoothed_cov_next - predicted_cov_next),
                                         J.transpose(-1, -2)))
    return mean, cov


# ---- sequential filter and smoother ---------------------------------------------------------


def _check(a, mask, A, C, Q, R, mu0, Sigma0, Bu):
    if a.ndim != 3:
        raise ValueError(f"a must be (B, T, A), got shape {tuple(a.shape)}")
    B, T, dim_a = a.shape
    dim_z = mu0.shape[-1]
    expected = {"mask": (mask, (B, T)), "A": (A, (B, T, dim_z, dim_z)),
                "C": (C, (B, T, dim_a, dim_z)), "Q": (Q, (dim_z, dim_z)),
                "R": (R, (dim_a, dim_a)), "mu0": (mu0, (B, dim_z)),
                "Sigma0": (Sigma0, (B, dim_z, dim_z))}
    if Bu is not None:
        expected["Bu"] = (Bu, (B, T, dim_z))
    for name, (x, shape) in expected.items():
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (B, T, A, Z = {B}, {T}, {dim_a}, "
                             f"{dim_z}), got {tuple(x.shape)}")


def kalman_filter(a: Tensor, mask: Tensor, A: Tensor, C: Tensor, Q: Tensor, R: Tensor,
                  mu0: Tensor, Sigma0: Tensor, *, Bu: Tensor | None = None) -> FilterResult:
    """Sequential Kalman filter over T steps.

    a (B, T, A); mask (B, T) in {0, 1}; A (B, T, Z, Z); C (B, T, A, Z); Q (Z, Z); R (A, A);
    mu0 (B, Z); Sigma0 (B, Z, Z); Bu (B, T, Z) or None.
    """
    _check(a, mask, A, C, Q, R, mu0, Sigma0, Bu)
    T = a.shape[1]
    mean, cov = mu0, Sigma0
    out = {k: [] for k in ("pm", "pc", "fm", "fc", "innovation", "L")}
    steps = zip(a.unbind(1), C.unbind(1), mask.unbind(1), A.unbind(1),
                [None] * T if Bu is None else Bu.unbind(1))
    for t, (a_t, C_t, mask_t, A_t, Bu_t) in enumerate(steps):
        out["pm"].append(mean)
        out["pc"].append(cov)
        mean, cov, innovation, L = _update(mean, cov, a_t, C_t, R, mask_t)
        for key, value in (("fm", mean), ("fc", cov), ("innovation", innovation), ("L", L)):
            out[key].append(value)
        if t + 1 < T:
            mean, cov = predict(mean, cov, A_t, Q, Bu_t)
    out = {k: torch.stack(v, 1) for k, v in out.items()}
    lls = _masked_log_likelihood(out["innovation"], out["L"], mask)
    return FilterResult(out["fm"], out["fc"], out["pm"], out["pc"], lls, lls.sum(1))


def rts_smoother(A: Tensor, filtered: FilterResult) -> SmootherResult:
    """Sequential Rauch-Tung-Striebel smoother. A (B, T, Z, Z) as given to the filter."""
    fm, fc = filtered.filtered_means, filtered.filtered_covs
    pm, pc = filtered.predicted_means, filtered.predicted_covs
    T = fm.shape[1]
    if T == 1:
        return _smoother_result(fm, fc, None, None, fm)
    J, back = smoother_gains(fc[:, :-1], pc[:, 1:], A[:, :-1])  # (B, T-1, Z, Z)
    Js, fms, fcs, pms, pcs = (x.unbind(1) for x in (J, fm, fc, pm, pc))
    means, covs = [fms[-1]], [fcs[-1]]
    for t in range(T - 2, -1, -1):
        m, P = smooth_step(Js[t], fms[t], fcs[t], pms[t + 1], pcs[t + 1], means[-1], covs[-1])
        means.append(m)
        covs.append(P)
    return _smoother_result(torch.stack(means[::-1], 1), torch.stack(covs[::-1], 1), J, back, fm)


def _smoother_result(means, covs, gains, back, like) -> SmootherResult:
    B, T, Z = like.shape
    if T > 1:
        cross = covs[:, 1:] @ gains.transpose(-1, -2)  # Cov(z_{t+1}, z_t) = P^s_{t+1} J_t^T
    else:
        gains = back = cross = like.new_zeros(B, 0, Z, Z)
    return SmootherResult(means, covs, cross, gains, back)


# ---- sampling -------------------------------------------------------------------------------


def sample_gaussian(mean: Tensor, cov: Tensor, generator: torch.Generator | None = None):
    """Reparameterised sample mean + L eps, L L^T = cov; mean (..., n), cov (..., n, n)."""
    eps = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + _mv(cholesky_jittered(cov), eps)


def sample_posterior(smoothed: SmootherResult, generator: torch.Generator | None = None):
    """One joint sample z_{1:T} ~ p(z_{1:T} | observed a) (B, T, Z), reparameterised, by
    backward sampling: z_T ~ N(m^s_T, P^s_T), then
    z_t | z_{t+1} ~ N(m^s_t + J_t (z_{t+1} - m^s_{t+1}), backward_cov_t)."""
    ms, Ps = smoothed.smoothed_means, smoothed.smoothed_covs
    T = ms.shape[1]
    z = [sample_gaussian(ms[:, -1], Ps[:, -1], generator)]
    for t in range(T - 2, -1, -1):
        mean = ms[:, t] + _mv(smoothed.gains[:, t], z[-1] - ms[:, t + 1])
        z.append(sample_gaussian(mean, smoothed.backward_covs[:, t], generator))
    return torch.stack(z[::-1], 1)


# ---- parallel (associative scan) forms --------------------------------------------------------


def associative_scan(fn, elems: tuple[Tensor, ...], reverse: bool = False):
    """Inclusive scan of an associative fn over dim 1 of every tensor in elems, in O(log T)
    sequential depth: result[t] = e_1 * e_2 * ... * e_t (with reverse: e_t * ... * e_T),
    where fn(x, y) = x * y combines an earlier x with a later y."""
    if reverse:
        flipped = associative_scan(lambda x, y: fn(y, x), tuple(e.flip(1) for e in elems))
        return tuple(e.flip(1) for e in flipped)
    T = elems[0].shape[1]
    if T < 2:
        return elems
    reduced = fn(tuple(e[:, 0:-1:2] for e in elems), tuple(e[:, 1::2] for e in elems))
    odd = associative_scan(fn, reduced)  # prefixes ending at 1, 3, 5, ...
    if T % 2 == 0:
        even = fn(tuple(o[:, :-1] for o in odd), tuple(e[:, 2::2] for e in elems))
    else:
        even = fn(odd, tuple(e[:, 2::2] for e in elems))
    out = []
    for e, ev, od in zip(elems, even, odd):
        ev = torch.cat([e[:, :1], ev], 1)  # prefixes ending at 0, 2, 4, ...
        n_even, n_odd = ev.shape[1], od.shape[1]
        if n_even > n_odd:
            od = torch.cat([od, od[:, -1:]], 1)
        inter = torch.stack([ev, od], 2).flatten(1, 2)[:, :T]
        out.append(inter)
    return tuple(out)


def _filter_combine(x, y):
    """(A, b, C, eta, J)_i * (A, b, C, eta, J)_j (Särkkä and García-Fernández 2021, Lemma 8)."""
    Ai, bi, Ci, etai, Ji = x
    Aj, bj, Cj, etaj, Jj = y
    eye = torch.eye(Ai.shape[-1], dtype=Ai.dtype, device=Ai.device)
    # Aj (I + Ci Jj)^-1 and Ai^T (I + Jj Ci)^-1 through solves of the transposed systems
    M = torch.linalg.solve((eye + Ci @ Jj).transpose(-1, -2), Aj.transpose(-1, -2))
    M = M.transpose(-1, -2)
    N = torch.linalg.solve((eye + Jj @ Ci).transpose(-1, -2), Ai).transpose(-1, -2)
    A = M @ Ai
    b = _mv(M, bi + _mv(Ci, etaj)) + bj
    C = symmetrize(M @ Ci @ Aj.transpose(-1, -2) + Cj)
    eta = _mv(N, etaj - _mv(Jj, bi)) + etai
    J = symmetrize(N @ Jj @ Ai + Ji)
    return A, b, C, eta, J


def parallel_kalman_filter(a: Tensor, mask: Tensor, A: Tensor, C: Tensor, Q: Tensor, R: Tensor,
                           mu0: Tensor, Sigma0: Tensor, *,
                           Bu: Tensor | None = None) -> FilterResult:
    """The Kalman filter as an associative scan (Särkkä and García-Fernández 2021, Lemma 7):
    same arguments and result as `kalman_filter`, O(log T) sequential depth."""
    _check(a, mask, A, C, Q, R, mu0, Sigma0, Bu)
    B, T, dim_a = a.shape
    Z = mu0.shape[-1]
    eye = torch.eye(Z, dtype=a.dtype, device=a.device)
    observed = (mask > 0.5)[..., None, None]  # (B, T, 1, 1)
    # the transition into step t: F = A_{t-1}, u = Bu_{t-1}, noise Q; step 0 starts from the prior
    F = torch.cat([torch.zeros_like(A[:, :1]), A[:, :-1]], 1)  # (B, T, Z, Z)
    u = torch.zeros_like(a[..., :1]).expand(B, T, Z) if Bu is None else \
        torch.cat([torch.zeros_like(Bu[:, :1]), Bu[:, :-1]], 1)
    u = u.clone()
    u[:, 0] = mu0
    Qt = Q.expand(B, T, Z, Z).clone()
    Qt[:, 0] = Sigma0
    Hm = torch.where(observed, C, torch.zeros_like(C))  # a missing a_t carries no information
    S = Hm @ Qt @ Hm.transpose(-1, -2) + R
    L = cholesky(S)
    QHt = Qt @ Hm.transpose(-1, -2)
    K = spd_solve(L, QHt.transpose(-1, -2)).transpose(-1, -2)  # (B, T, Z, A)
    innov = torch.where(observed[..., 0], a - _mv(Hm, u), torch.zeros_like(a))
    IKH = eye - K @ Hm
    elem_A = IKH @ F
    elem_b = u + _mv(K, innov)
    elem_C = symmetrize(IKH @ Qt @ IKH.transpose(-1, -2) + K @ R @ K.transpose(-1, -2))
    HF = Hm @ F  # (B, T, A, Z)
    SinvHF = spd_solve(L, HF)
    elem_eta = _mv(F.transpose(-1, -2) @ Hm.transpose(-1, -2), spd_solve(
        L, innov.unsqueeze(-1)).squeeze(-1))
    elem_J = symmetrize(HF.transpose(-1, -2) @ SinvHF)
    _, fm, fc, _, _ = associative_scan(_filter_combine,
                                       (elem_A, elem_b, elem_C, elem_eta, elem_J))
    pm, pc = _predicted_from_filtered(fm, fc, A, Q, mu0, Sigma0, Bu)
    lls = _log_likelihoods(a, mask, C, R, pm, pc)
    return FilterResult(fm, fc, pm, pc, lls, lls.sum(1))


def _predicted_from_filtered(fm, fc, A, Q, mu0, Sigma0, Bu):
    """Predicted moments for every step at once from the filtered ones."""
    pm_next, pc_next = predict(fm[:, :-1].flatten(0, 1), fc[:, :-1].flatten(0, 1),
                               A[:, :-1].flatten(0, 1), Q,
                               None if Bu is None else Bu[:, :-1].flatten(0, 1))
    B, T, Z = fm.shape
    pm = torch.cat([mu0[:, None], pm_next.view(B, T - 1, Z)], 1)
    pc = torch.cat([Sigma0[:, None], pc_next.view(B, T - 1, Z, Z)], 1)
    return pm, pc


def _log_likelihoods(a, mask, C, R, pm, pc):
    """log p(a_t | a_{<t}) = log N(a_t; C_t m^p_t, C_t P^p_t C_t^T + R) where observed."""
    L = cholesky(C @ pc @ C.transpose(-1, -2) + R)
    return _masked_log_likelihood(a - _mv(C, pm), L, mask)


def _smoother_combine(x, y):
    """(E, g, L)_i * (E, g, L)_j = (E_i E_j, E_i g_j + g_i, E_i L_j E_i^T + L_i), where i is
    the earlier step (Särkkä and García-Fernández 2021, Lemma 10)."""
    Ei, gi, Li = x
    Ej, gj, Lj = y
    return Ei @ Ej, _mv(Ei, gj) + gi, symmetrize(Ei @ Lj @ Ei.transpose(-1, -2) + Li)


def parallel_rts_smoother(A: Tensor, filtered: FilterResult) -> SmootherResult:
    """The RTS smoother as a reversed associative scan (Särkkä and García-Fernández 2021,
    Lemma 9): same arguments and result as `rts_smoother`."""
    fm, fc = filtered.filtered_means, filtered.filtered_covs
    pm, pc = filtered.predicted_means, filtered.predicted_covs
    B, T, Z = fm.shape
    if T == 1:
        return _smoother_result(fm, fc, None, None, fm)
    J, back = smoother_gains(fc[:, :-1], pc[:, 1:], A[:, :-1])  # (B, T-1, Z, Z)
    g = fm[:, :-1] - _mv(J, pm[:, 1:])
    E = torch.cat([J, torch.zeros_like(J[:, :1])], 1)
    g = torch.cat([g, fm[:, -1:]], 1)
    Lc = torch.cat([back, fc[:, -1:]], 1)
    _, means, covs = associative_scan(_smoother_combine, (E, g, Lc), reverse=True)
    return _smoother_result(means, covs, J, back, fm)

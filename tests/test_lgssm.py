"""lgssm against brute force: the dense joint Gaussian over (z_{1:T}, a_{1:T}), conditioned
on the observed a's, in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvae_bench import lgssm


@pytest.fixture(autouse=True)
def float64():
    """float64 by default inside this module's tests only."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_spd(n, gen, scale=1.0, batch=()):
    M = torch.randn(*batch, n, n, generator=gen)
    return scale * (M @ M.transpose(-1, -2) / n + 0.3 * torch.eye(n))


def random_system(B=3, T=6, Z=3, A_dim=2, seed=0, control=True, p_missing=0.3):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(B, T, Z, Z, generator=gen))
    A = 0.95 * Q + 0.1 * torch.randn(B, T, Z, Z, generator=gen)  # stable, time-varying
    C = torch.randn(B, T, A_dim, Z, generator=gen)
    sysQ = random_spd(Z, gen, 0.3)
    R = random_spd(A_dim, gen, 0.5)
    mu0 = torch.randn(B, Z, generator=gen)
    Sigma0 = random_spd(Z, gen, 2.0, (B,))
    Bu = torch.randn(B, T, Z, generator=gen) if control else None
    a = torch.randn(B, T, A_dim, generator=gen) * 2
    mask = (torch.rand(B, T, generator=gen) > p_missing).double()
    mask[0, 1:3] = 0  # a gap
    return dict(a=a, mask=mask, A=A, C=C, Q=sysQ, R=R, mu0=mu0, Sigma0=Sigma0, Bu=Bu)


def joint_gaussian(s, b):
    """Mean and covariance of (z_1..z_T, a_1..a_T) for batch element b, stacked."""
    A, C, Q, R, mu0, Sigma0, Bu = (s[k] for k in ("A", "C", "Q", "R", "mu0", "Sigma0", "Bu"))
    T, Z, Ad = A.shape[1], A.shape[2], C.shape[2]
    mz = torch.zeros(T, Z)
    Szz = torch.zeros(T * Z, T * Z)
    mz[0] = mu0[b]
    Szz[:Z, :Z] = Sigma0[b]
    for t in range(T - 1):
        At = A[b, t]
        mz[t + 1] = At @ mz[t] + (Bu[b, t] if Bu is not None else 0)
        rows = slice((t + 1) * Z, (t + 2) * Z)
        prev = slice(t * Z, (t + 1) * Z)
        # Cov(z_{t+1}, z_s) = A_t Cov(z_t, z_s) for s <= t
        Szz[rows, : (t + 1) * Z] = At @ Szz[prev, : (t + 1) * Z]
        Szz[: (t + 1) * Z, rows] = Szz[rows, : (t + 1) * Z].T
        Szz[rows, rows] = At @ Szz[prev, prev] @ At.T + Q
    Cb = torch.block_diag(*[C[b, t] for t in range(T)])  # (T A, T Z)
    ma = Cb @ mz.reshape(-1)
    Saa = Cb @ Szz @ Cb.T + torch.block_diag(*[R] * T)
    Sza = Szz @ Cb.T
    return mz.reshape(-1), Szz, ma, Saa, Sza, T, Z, Ad


def condition(s, b, upto):
    """Posterior mean (T Z) and cov of z given the observed a_t with t < upto, and the log
    likelihood of those a's."""
    mz, Szz, ma, Saa, Sza, T, Z, Ad = joint_gaussian(s, b)
    obs = [t for t in range(min(upto, T)) if s["mask"][b, t] > 0.5]
    idx = torch.tensor([t * Ad + i for t in obs for i in range(Ad)], dtype=torch.long)
    if len(idx) == 0:
        return mz, Szz, torch.tensor(0.0)
    a = s["a"][b].reshape(-1)[idx]
    S_oo = Saa[idx][:, idx]
    S_zo = Sza[:, idx]
    gain = torch.linalg.solve(S_oo, S_zo.T).T
    mean = mz + gain @ (a - ma[idx])
    cov = Szz - gain @ S_zo.T
    ll = torch.distributions.MultivariateNormal(ma[idx], S_oo).log_prob(a)
    return mean, cov, ll


def block(cov, t, u, Z):
    return cov[t * Z:(t + 1) * Z, u * Z:(u + 1) * Z]


FILTERS = {"sequential": (lgssm.kalman_filter, lgssm.rts_smoother),
           "parallel": (lgssm.parallel_kalman_filter, lgssm.parallel_rts_smoother)}


@pytest.mark.parametrize("form", FILTERS)
@pytest.mark.parametrize("control", [True, False])
def test_filter_and_smoother_match_brute_force(form, control):
    kf, smoother = FILTERS[form]
    s = random_system(control=control)
    f = kf(**s)
    sm = smoother(s["A"], f)
    B, T, Z = f.filtered_means.shape
    for b in range(B):
        full_mean, full_cov, full_ll = condition(s, b, T)
        assert torch.allclose(f.log_likelihood[b], full_ll, atol=1e-8)
        for t in range(T):
            fmean, fcov, _ = condition(s, b, t + 1)
            pmean, pcov, _ = condition(s, b, t)
            z = slice(t * Z, (t + 1) * Z)
            torch.testing.assert_close(f.filtered_means[b, t], fmean[z], atol=1e-8, rtol=0)
            torch.testing.assert_close(f.filtered_covs[b, t], block(fcov, t, t, Z), atol=1e-8,
                                       rtol=0)
            torch.testing.assert_close(f.predicted_means[b, t], pmean[z], atol=1e-8, rtol=0)
            torch.testing.assert_close(f.predicted_covs[b, t], block(pcov, t, t, Z), atol=1e-8,
                                       rtol=0)
            torch.testing.assert_close(sm.smoothed_means[b, t], full_mean[z], atol=1e-8, rtol=0)
            torch.testing.assert_close(sm.smoothed_covs[b, t], block(full_cov, t, t, Z),
                                       atol=1e-8, rtol=0)
            if t + 1 < T:
                torch.testing.assert_close(sm.smoothed_cross_covs[b, t],
                                           block(full_cov, t + 1, t, Z), atol=1e-8, rtol=0)
        # per-step log-likelihoods add up, and are 0 where a_t is missing
        assert torch.all(f.log_likelihoods[b][s["mask"][b] < 0.5] == 0)


def test_fully_masked_returns_the_prior():
    s = random_system()
    s["mask"] = torch.zeros_like(s["mask"])
    for kf, smoother in FILTERS.values():
        f = kf(**s)
        sm = smoother(s["A"], f)
        prior_mean, prior_cov = s["mu0"], s["Sigma0"]
        for t in range(s["a"].shape[1]):
            torch.testing.assert_close(f.filtered_means[:, t], prior_mean)
            torch.testing.assert_close(f.filtered_covs[:, t], prior_cov)
            torch.testing.assert_close(sm.smoothed_means[:, t], prior_mean)
            torch.testing.assert_close(sm.smoothed_covs[:, t], prior_cov)
            prior_mean, prior_cov = lgssm.predict(prior_mean, prior_cov, s["A"][:, t], s["Q"],
                                                  s["Bu"][:, t])
        assert torch.all(f.log_likelihood == 0)


def test_primitives_loop_equals_batch_call():
    s = random_system(T=7)
    f = lgssm.kalman_filter(**s)
    mean, cov = s["mu0"], s["Sigma0"]
    total = torch.zeros(s["a"].shape[0])
    for t in range(7):
        mean, cov, ll = lgssm.update(mean, cov, s["a"][:, t], s["C"][:, t], s["R"],
                                     s["mask"][:, t])
        total = total + ll
        assert torch.equal(ll, f.log_likelihoods[:, t])
        assert torch.equal(mean, f.filtered_means[:, t])
        assert torch.equal(cov, f.filtered_covs[:, t])
        if t < 6:
            mean, cov = lgssm.predict(mean, cov, s["A"][:, t], s["Q"], s["Bu"][:, t])
    torch.testing.assert_close(total, f.log_likelihood, atol=1e-12, rtol=0)


@pytest.mark.parametrize("T", [1, 2, 5, 8, 33])
def test_parallel_equals_sequential(T):
    s = random_system(B=2, T=T, Z=4, A_dim=2, seed=T)
    f1, f2 = lgssm.kalman_filter(**s), lgssm.parallel_kalman_filter(**s)
    for x, y in zip(f1, f2):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-9)
    s1, s2 = lgssm.rts_smoother(s["A"], f1), lgssm.parallel_rts_smoother(s["A"], f2)
    for x, y in zip(s1, s2):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-9)


def test_associative_scan_matches_cumulative_ops():
    x = torch.randn(2, 13, 3)
    (out,) = lgssm.associative_scan(lambda u, v: (u[0] + v[0],), (x,))
    torch.testing.assert_close(out, x.cumsum(1))
    (rev,) = lgssm.associative_scan(lambda u, v: (u[0] + v[0],), (x,), reverse=True)
    torch.testing.assert_close(rev, x.flip(1).cumsum(1).flip(1))
    M = torch.randn(1, 6, 2, 2)
    (prod,) = lgssm.associative_scan(lambda u, v: (u[0] @ v[0],), (M,))
    expect = M[:, 0]
    for t in range(1, 6):
        expect = expect @ M[:, t]
    torch.testing.assert_close(prod[:, -1], expect)


def test_posterior_sample_has_smoothed_moments():
    """Monte Carlo with n = 40000 draws and a fixed generator; bounds at 6 standard errors."""
    s = random_system(B=2, T=4, Z=2, A_dim=1, seed=3)
    f = lgssm.kalman_filter(**s)
    sm = lgssm.rts_smoother(s["A"], f)
    n = 40000
    rep = lgssm.SmootherResult(*(x.repeat_interleave(n, 0) for x in sm))
    z = lgssm.sample_posterior(rep, generator=torch.Generator().manual_seed(0))
    z = z.view(2, n, 4, 2)
    for b in range(2):
        flat = z[b].reshape(n, -1)  # (n, T Z)
        mean = flat.mean(0)
        cov = torch.cov(flat.T)
        _, full_cov, _ = condition(s, b, 4)
        full_mean = sm.smoothed_means[b].reshape(-1)
        se_mean = (full_cov.diagonal() / n).sqrt()
        assert torch.all((mean - full_mean).abs() < 6 * se_mean)
        d = full_cov.diagonal()
        se_cov = ((d[:, None] * d[None, :] + full_cov**2) / n).sqrt()
        assert torch.all((cov - full_cov).abs() < 6 * se_cov)


def test_gradcheck_filter_smoother_sample():
    s = random_system(B=1, T=3, Z=2, A_dim=1, seed=5)
    s["mask"][0, 1] = 0

    def fn(a, A, C, LQ, mu0):
        Q = LQ @ LQ.T + 0.1 * torch.eye(2)
        f = lgssm.kalman_filter(a, s["mask"], A, C, Q, s["R"], mu0, s["Sigma0"], Bu=s["Bu"])
        sm = lgssm.rts_smoother(A, f)
        z = lgssm.sample_posterior(sm, generator=torch.Generator().manual_seed(1))
        return f.log_likelihood, sm.smoothed_means, sm.smoothed_covs, z

    inputs = tuple(x.clone().requires_grad_() for x in
                   (s["a"], s["A"], s["C"], torch.eye(2) * 0.5, s["mu0"]))
    assert torch.autograd.gradcheck(fn, inputs)

    def fn_parallel(a, A, C):
        f = lgssm.parallel_kalman_filter(a, s["mask"], A, C, s["Q"], s["R"], s["mu0"],
                                         s["Sigma0"])
        return f.log_likelihood, lgssm.parallel_rts_smoother(A, f).smoothed_means

    assert torch.autograd.gradcheck(fn_parallel, inputs[:3])


def is_spd(P):
    sym = torch.allclose(P, P.transpose(-1, -2))
    return sym and bool(torch.linalg.eigvalsh(P).min() > 0)


@pytest.mark.parametrize("form", FILTERS)
def test_float32_long_sequence_kvae_defaults(form):
    """T = 1000, Q = 0.08 I, R = 0.03 I, Sigma0 = 20 I, C ~ N(0, 1), random masks."""
    kf, smoother = FILTERS[form]
    gen = torch.Generator().manual_seed(0)
    B, T, Z, Ad = 4, 1000, 4, 2
    f32 = torch.float32
    A = (torch.eye(Z) + 0.03 * torch.randn(B, T, Z, Z, generator=gen)).to(f32)
    A = A / torch.linalg.matrix_norm(A, ord=2).clamp_min(1.0)[..., None, None]
    C = torch.randn(B, T, Ad, Z, generator=gen).to(f32)
    a = torch.randn(B, T, Ad, generator=gen).to(f32)
    mask = (torch.rand(B, T, generator=gen) > 0.3).to(f32)
    mask[:, 100:140] = 0
    f = kf(a, mask, A, C, 0.08 * torch.eye(Z, dtype=f32), 0.03 * torch.eye(Ad, dtype=f32),
           torch.zeros(B, Z, dtype=f32), 20 * torch.eye(Z, dtype=f32).expand(B, Z, Z))
    sm = smoother(A, f)
    for x in (*f, *sm):
        assert x.dtype == f32 and torch.isfinite(x).all()
    for P in (f.filtered_covs, f.predicted_covs, sm.smoothed_covs, sm.backward_covs):
        assert is_spd(P)
    z = lgssm.sample_posterior(sm, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(z).all()


def test_shape_errors_are_clear():
    s = random_system()
    s["C"] = s["C"][:, :, :, :2]
    with pytest.raises(ValueError, match=r"C must have shape"):
        lgssm.kalman_filter(**s)


# ---- properties, and the behaviours mutation testing found untested ------------------------


@given(T=st.integers(1, 4), Z=st.integers(1, 3), A_dim=st.integers(1, 2),
       seed=st.integers(0, 2**16), p_missing=st.sampled_from([0.0, 0.4, 1.0]),
       control=st.booleans(), form=st.sampled_from(list(FILTERS)))
@settings(max_examples=40, deadline=None)
def test_filter_and_smoother_equal_the_joint_gaussian_for_any_small_system(
        T, Z, A_dim, seed, p_missing, control, form):
    """For random small systems, masks and lengths (T = 1 and 2 included), the filter's
    log-likelihood and the smoother's moments equal the dense joint Gaussian's, and the
    smoother's per-step arrays have T - 1 entries."""
    torch.set_default_dtype(torch.float64)  # hypothesis runs outside the fixture's scope
    kf, smoother = FILTERS[form]
    s = random_system(B=2, T=T, Z=Z, A_dim=A_dim, seed=seed, control=control,
                      p_missing=p_missing)
    s["mask"] = (torch.rand(2, T, generator=torch.Generator().manual_seed(seed)) >= p_missing
                 ).double()
    f = kf(**s)
    sm = smoother(s["A"], f)
    for arr in (sm.smoothed_cross_covs, sm.gains, sm.backward_covs):
        assert arr.shape == (2, T - 1, Z, Z)
    for b in range(2):
        mean, cov, ll = condition(s, b, T)
        torch.testing.assert_close(f.log_likelihood[b], ll.reshape(()), atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(sm.smoothed_means[b].reshape(-1), mean, atol=1e-8, rtol=0)
        for t in range(T):
            torch.testing.assert_close(sm.smoothed_covs[b, t], block(cov, t, t, Z), atol=1e-8,
                                       rtol=0)


def test_gaussian_log_prob_is_the_normal_density():
    mean = torch.tensor([1.0, -2.0])
    cov = torch.tensor([[2.0, 0.3], [0.3, 0.5]])
    x = torch.tensor([0.5, -1.0])
    want = torch.distributions.MultivariateNormal(mean, cov).log_prob(x)
    torch.testing.assert_close(lgssm.gaussian_log_prob(x, mean, torch.linalg.cholesky(cov)),
                               want, atol=1e-12, rtol=0)


def test_update_without_a_mask_observes_every_step():
    s = random_system(B=2, T=1, Z=2, A_dim=1)
    args = (s["mu0"], s["Sigma0"], s["a"][:, 0], s["C"][:, 0], s["R"])
    free = lgssm.update(*args)
    observed = lgssm.update(*args, mask=torch.ones(2))
    for x, y in zip(free, observed):
        torch.testing.assert_close(x, y)


def test_cholesky_jittered_factors_singular_and_batched_matrices():
    """A positive semi-definite matrix with a zero eigenvalue gets a factor; each matrix of a
    batch (any leading shape) is jittered relative to its own scale."""
    ones = torch.ones(2, 2)  # rank 1: plain Cholesky fails on it
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.cholesky(ones)
    L = lgssm.cholesky_jittered(ones)
    torch.testing.assert_close(L @ L.T, ones, atol=1e-12, rtol=0)
    batch = torch.stack([ones, 1e12 * ones, ones, ones])[None].expand(3, 4, 2, 2)  # T != Z
    L = lgssm.cholesky_jittered(batch)
    assert L.shape == (3, 4, 2, 2)
    torch.testing.assert_close(L[0, 0] @ L[0, 0].T, ones, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name,bad", [
    ("a", lambda s: s["a"][0]), ("mask", lambda s: s["mask"][:, :-1]),
    ("A", lambda s: s["A"][:, :, :1]), ("Q", lambda s: s["Q"][:1]), ("R", lambda s: s["R"][:1]),
    ("mu0", lambda s: s["mu0"][:1]), ("Sigma0", lambda s: s["Sigma0"][:1]),
    ("Bu", lambda s: s["Bu"][:, :-1])])
@pytest.mark.parametrize("form", FILTERS)
def test_every_argument_is_shape_checked_by_name(name, bad, form):
    s = random_system()
    s[name] = bad(s)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        FILTERS[form][0](**s)

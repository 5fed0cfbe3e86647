"""KVAE shapes, the masked-step behaviour, and the ELBO estimators."""

import dataclasses

import pytest
import torch

from kvae_bench import lgssm, models


def make(**opts):
    torch.manual_seed(0)
    return models.build("kvae", 16, {"conv_precision": "float32", **opts})


def batch(B=3, T=7, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, size, size, generator=g) > 0.8).float()


def test_shapes_of_the_protocol():
    m = make()
    x = batch()
    mask = torch.ones(3, 7)
    loss, logs = m.loss(x, mask)
    assert loss.shape == () and set(logs) == {"elbo", "log_px", "log_qa", "log_pa"}
    out = m.impute(x, mask)
    assert set(out) == {"smoothed", "filtered"}
    assert all(v.shape == (3, 7, 16, 16) and v.min() >= 0 and v.max() <= 1 for v in out.values())
    assert m.generate(x, 4, 5).shape == (3, 5, 16, 16)
    assert m.generate(x, 4, 5, sample=True, generator=torch.Generator().manual_seed(0)).shape \
        == (3, 5, 16, 16)
    with pytest.raises(ValueError, match="mask must be"):
        m.loss(x, torch.ones(3, 6))


def test_online_filter_equals_batch_filter_when_all_observed():
    m = make()
    a, _ = m.encode(batch())
    mask = torch.ones(3, 7)
    f1, d1 = m.filter(a, mask)
    f2, d2 = m._filter_online(a, mask, *m._prior(3))
    for u, v in zip((*f1, *d1), (*f2, *d2)):
        if u is None:
            assert v is None
        else:
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


def test_missing_step_skips_update_and_feeds_the_prediction():
    """At a missing step the filtered moments equal the predicted ones, and the alpha network
    sees C_t m_t (the predicted a_t), not the code of the frame that was dropped."""
    m = make()
    a, _ = m.encode(batch())
    mask = torch.ones(3, 7)
    mask[:, 3] = 0
    f, dyn = m.filter(a, mask)
    C, alpha = dyn.C, dyn.alpha
    torch.testing.assert_close(f.filtered_means[:, 3], f.predicted_means[:, 3])
    torch.testing.assert_close(f.filtered_covs[:, 3], f.predicted_covs[:, 3])
    assert torch.all(f.log_likelihoods[:, 3] == 0)
    # the code at the missing step does not matter at all
    a2 = a.clone()
    a2[:, 3] = 100.0
    f2, dyn2 = m.filter(a2, mask)
    torch.testing.assert_close(f2.filtered_means, f.filtered_means)
    torch.testing.assert_close(dyn2.alpha, alpha)
    # the network was fed a_0, a_1, a_2, then the predicted a_3 = C_3 m_3, then a_4 ...
    predicted_a3 = (C[:, 3] @ f.predicted_means[:, 3, :, None]).squeeze(-1)
    fed = torch.cat([torch.zeros_like(a[:, :1]), a[:, :3], predicted_a3[:, None], a[:, 4:]], 1)
    expect, _, _ = m.alpha_net(fed)
    torch.testing.assert_close(alpha, expect, atol=1e-6, rtol=1e-5)
    # C_t uses alpha_t = f(a_{<t}); the transition out of z_t uses alpha_{t+1} (it knows a_t)
    _, C_expect, _ = m._mix(alpha[:, :7])
    A_expect, _, _ = m._mix(alpha[:, 1:])
    torch.testing.assert_close(C, C_expect)
    torch.testing.assert_close(dyn.A, A_expect)


def test_generate_mean_equals_imputation_with_a_missing_future():
    m = make()
    x = batch(T=9)
    mask = torch.ones(3, 9)
    mask[:, 4:] = 0
    gen = m.generate(x, 4, 5)
    torch.testing.assert_close(gen, m.impute(x, mask)["filtered"][:, 4:])


def test_sampled_elbo_equals_the_exact_one():
    """With the exact joint posterior p(z | a), the one-sample estimate log p(a, z) - log p(z|a)
    of the paper is log p(a) for every sample z: it equals the filter's exact log-likelihood."""
    m = make()
    torch.set_default_dtype(torch.float64)
    try:
        m = m.double()
        a, _ = m.encode(batch().double())
        mask = torch.ones(3, 7, dtype=torch.float64)
        mask[:, 2] = 0
        f, dyn = m.filter(a, mask)
        g = torch.Generator().manual_seed(0)
        samples = torch.stack([m._lgssm_log_prob(a, mask, f, dyn, g) for _ in range(5)])
        torch.testing.assert_close(samples, f.log_likelihood.expand(5, -1), atol=1e-6, rtol=0)
        # and so are the gradients: log p(a, z) - log p(z | a) = log p(a) for every z
        grads = []
        for elbo in ("sampled", "exact"):
            m.config = dataclasses.replace(m.config, elbo=elbo)
            m.zero_grad()
            f, dyn = m.filter(a, mask)
            m._lgssm_log_prob(a, mask, f, dyn, g).sum().backward(retain_graph=True)
            grads.append(torch.cat([m.A.grad.flatten(), m.C.grad.flatten()]))
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-6)
    finally:
        torch.set_default_dtype(torch.float32)


def test_options_build_and_run():
    x, mask = batch(), torch.ones(3, 7)
    gaps = mask.clone()
    gaps[:, 3:5] = 0
    for opts in ({"encoder": "mlp"}, {"likelihood": "gaussian"}, {"use_vae": False},
                 {"K": 1}, {"elbo": "sampled"}, {"alpha_net": "mlp", "fifo_length": 3},
                 {"dim_u": 2}, {"dim_u": 1, "elbo": "sampled", "alpha_net": "mlp"},
                 {"likelihood": "gaussian", "learn_pixel_var": True}):
        m = make(**opts)
        for msk in (mask, gaps):
            loss, _ = m.loss(x, msk)
            loss.backward()
            assert torch.isfinite(loss), opts
        trained = [m.A, m.C, *m.alpha_net.parameters(), *m.decoder.parameters()]
        trained += [p for p in (m.B, m.pixel_log_var) if p is not None]
        assert all(p.grad is not None for p in trained), opts
        f1, d1 = m.filter(m.encode(x)[0], mask)
        f2, d2 = m._filter_online(m.encode(x)[0], mask, *m._prior(3))
        torch.testing.assert_close(f1.filtered_means, f2.filtered_means, atol=1e-5, rtol=1e-5)
        assert m.generate(x, 4, 3, sample=True).shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="elbo must be one of"):
        models.build("kvae", 16, {"elbo": "guess"})
    with pytest.raises(ValueError, match="unknown kvae option"):
        models.build("kvae", 16, {"dim_q": 3})


def test_bf16_convs_keep_the_kalman_part_in_float32():
    m = make(conv_precision="bf16")
    assert m.conv_dtype == torch.bfloat16
    mean, var = m.encode(batch())
    assert mean.dtype == torch.float32 and var.dtype == torch.float32
    f, *_ = m.filter(mean, torch.ones(3, 7))
    assert f.filtered_covs.dtype == torch.float32
    loss, _ = m.loss(batch(), torch.ones(3, 7))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_sampled_elbo_draws_a_reparameterised_posterior_sample(monkeypatch):
    """elbo="sampled" draws z ~ p(z | a) once per loss, as a differentiable function of the
    LGSSM's parameters; elbo="exact" draws nothing."""
    drawn = []
    real = lgssm.sample_posterior

    def spy(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(lgssm, "sample_posterior", spy)
    m = make(elbo="sampled")
    m.loss(batch(), torch.ones(3, 7), generator=torch.Generator().manual_seed(1))
    assert len(drawn) == 1 and drawn[0].shape == (3, 7, 4)
    (grad_A,) = torch.autograd.grad(drawn[0].sum(), m.A, retain_graph=True)
    assert grad_A.abs().sum() > 0  # the sample moves with A: reparameterised
    drawn.clear()
    make(elbo="exact").loss(batch(), torch.ones(3, 7))
    assert drawn == []


def test_subpixel_decoder_equals_the_plain_formulation():
    """The decoder applies its 1x1 output conv before the last pixel shuffle; that must be
    the same function as conv -> ReLU -> shuffle (x3) -> 1x1 conv."""
    from torch import nn

    from kvae_bench.models.nets import SubPixelDecoder

    torch.manual_seed(0)
    d = SubPixelDecoder(32, 2).double()
    a = torch.randn(5, 2, dtype=torch.float64)
    h = torch.relu(d.lin_a_to_hidden(a)).view(-1, 32, 4, 4)
    for conv in d.convs:
        h = nn.functional.pixel_shuffle(torch.relu(conv(h)), 2)
    torch.testing.assert_close(d(a), d.out(h).squeeze(1), atol=1e-12, rtol=0)


def test_isotropic_C_starts_the_prior_on_a_round_and_changes_nothing_else():
    normal, iso = make(), make(init_C="isotropic")
    for C in iso.C.detach():  # every C_k the same, with orthogonal rows of the normal scale
        torch.testing.assert_close(C, iso.C.detach()[0])
        torch.testing.assert_close(C @ C.T, 0.05 ** 2 * 4 * torch.eye(2))
    assert not torch.allclose(normal.C @ normal.C.transpose(1, 2), iso.C @ iso.C.transpose(1, 2))
    others = [(n, p) for n, p in normal.state_dict().items() if n != "C"]
    assert others and all(torch.equal(p, iso.state_dict()[n]) for n, p in others)
    with pytest.raises(ValueError, match="init_C isotropic needs dim_a <= dim_z"):
        make(init_C="isotropic", dim_a=5)
    with pytest.raises(ValueError, match="init_C must be one of"):
        make(init_C="round")

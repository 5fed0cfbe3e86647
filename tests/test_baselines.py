"""The DMM and DVBF baselines: the protocol, missing frames, their ELBOs against the exact
log-likelihood of a linear-Gaussian model, a few training steps, and the CLI end to end."""

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from kvae_bench import models
from kvae_bench.cli import main
from kvae_bench.models.dmm import DMM, diag_gaussian_kl
from kvae_bench.models.dvbf import DVBF, standard_normal_terms

NAMES = ("dmm", "dvbf")
IMPUTED = {"dmm": "smoothed", "dvbf": "filtered"}


def make(name, **opts):
    torch.manual_seed(0)
    return models.build(name, 16, {"conv_precision": "float32", **opts})


def batch(B=3, T=7, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, size, size, generator=g) > 0.8).float()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_of_the_protocol(name):
    m = make(name)
    x, mask = batch(), torch.ones(3, 7)
    loss, logs = m.loss(x, mask)
    assert loss.shape == () and {"elbo", "log_px", "kl"} <= set(logs)
    assert all(torch.is_tensor(v) and v.shape == () and not v.requires_grad
               for v in logs.values())
    torch.testing.assert_close(logs["elbo"], -loss.detach())
    torch.testing.assert_close(logs["elbo"], logs["log_px"] - logs["kl"])
    out = m.impute(x, mask)
    assert set(out) == {IMPUTED[name]}
    assert all(v.shape == (3, 7, 16, 16) and v.min() >= 0 and v.max() <= 1 for v in out.values())
    assert m.generate(x, 4, 5).shape == (3, 5, 16, 16)
    assert m.generate(x[:, :4], 4, 5, sample=True,
                      generator=torch.Generator().manual_seed(0)).shape == (3, 5, 16, 16)
    assert m.codes(x).shape == (3, 7, 2) and m.reconstruct(x).shape == (3, 7, 16, 16)
    torch.testing.assert_close(m.reconstruct(x), out[IMPUTED[name]])
    with pytest.raises(ValueError, match="mask must be"):
        m.loss(x, torch.ones(3, 6))
    with pytest.raises(ValueError, match="n_observed"):
        m.generate(x, 0, 3)
    for opts in ({"encoder": "mlp"}, {"likelihood": "gaussian"}, {"conv_precision": "bf16"}):
        loss, _ = make(name, **opts).loss(x, mask)
        assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="encoder must be"):
        make(name, encoder="rnn")


@pytest.mark.parametrize("name", NAMES)
def test_generate_mean_equals_imputation_with_a_missing_future(name):
    """Generation is inference over the observed frames with the rest missing: the mean of
    generate equals imputation with every frame after the 4th masked."""
    m = make(name)
    x = batch()
    mask = torch.ones(3, 7)
    mask[:, 4:] = 0
    imputed = m.impute(x, mask)[IMPUTED[name]]
    torch.testing.assert_close(m.generate(x, 4, 3), imputed[:, 4:])
    # the frames after the 4th do not matter, observed or not
    torch.testing.assert_close(m.generate(x[:, :4], 4, 3), imputed[:, 4:])


@pytest.mark.parametrize("name,opts", [("dmm", {}), ("dmm", {"gap_aware": True}),
                                       ("dvbf", {})])
def test_a_missing_frame_is_never_read(name, opts):
    """Changing a missing frame changes nothing (the ELBO counts only the observed frames);
    the gradients are finite."""
    m = make(name, **opts)
    x = batch()
    mask = torch.ones(3, 7)
    mask[:, 3] = 0
    y = x.clone()
    y[:, 3] = 1 - y[:, 3]
    out_x, out_y = m.impute(x, mask), m.impute(y, mask)
    torch.testing.assert_close(out_x, out_y)
    g = torch.Generator()
    lx, logs_x = m.loss(x, mask, generator=g.manual_seed(1))
    ly, _ = m.loss(y, mask, generator=g.manual_seed(1))
    assert torch.equal(lx, ly)
    lx.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_the_loss_never_reads_a_tensor_back(name, monkeypatch):
    """No .item(), bool() or float() of a tensor in loss and backward, with or without missing
    frames (a CUDA graph cannot capture a host read)."""
    m = make(name)
    x, mask = batch(), torch.ones(3, 7)
    mask[:, 5] = 0
    kwargs = {"annealing": torch.tensor(0.5)} if name in ("dvbf", "dmm") else {}

    def forbid(*args, **kwargs):
        raise AssertionError("a host read inside the loss")

    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, attr, forbid)
    loss, logs = m.loss(x, mask, **kwargs)
    loss.backward()
    monkeypatch.undo()
    assert all(torch.is_tensor(v) and v.shape == () for v in logs.values())


def test_dvbf_anneals_the_prior_and_likelihood_not_the_entropy():
    m = make("dvbf", anneal_epochs=4)
    temps = [m.epoch_schedule(e).loss_kwargs["annealing"] for e in (0, 2, 4, 9)]
    assert temps == [0.01, 0.51, 1.0, 1.0]
    assert make("dvbf", anneal_epochs=0).epoch_schedule(0).loss_kwargs == {"annealing": 1.0}
    x, mask = batch(), torch.ones(3, 7)
    g = torch.Generator()
    log_px, cross, entropy = (v.sum() / 21 for v in m.sequence_terms(x, mask,
                                                                       g.manual_seed(0)))
    loss, logs = m.loss(x, mask, generator=g.manual_seed(0), annealing=0.25)
    torch.testing.assert_close(loss, -(0.25 * (log_px + cross) + entropy))
    torch.testing.assert_close(logs["elbo"], log_px + cross + entropy)  # never annealed


def test_dmm_anneals_its_kl_term_only_when_asked():
    assert make("dmm").epoch_schedule(0).loss_kwargs == {}  # the published recipe's loss
    m = make("dmm", anneal_epochs=4)
    assert [m.epoch_schedule(e).loss_kwargs["annealing"] for e in (0, 2, 4, 9)] == \
        [0.01, 0.51, 1.0, 1.0]
    x, mask = batch(), torch.ones(3, 7)
    mask[:, 2] = 0
    g = torch.Generator()
    log_px, kl = (v.sum() / mask.sum() for v in m.sequence_terms(x, mask, g.manual_seed(0)))
    loss, logs = m.loss(x, mask, generator=g.manual_seed(0), annealing=0.25)
    torch.testing.assert_close(loss, -(log_px - 0.25 * kl))
    torch.testing.assert_close(logs["elbo"], log_px - kl)  # never annealed
    unannealed, _ = m.loss(x, mask, generator=g.manual_seed(0))
    assert torch.equal(unannealed, -logs["elbo"])
    with pytest.raises(ValueError, match="anneal_epochs"):
        make("dmm", anneal_epochs=-1)


def test_dvbf_uses_controls_when_it_has_them():
    m = make("dvbf", dim_u=1)
    x, mask = batch(), torch.ones(3, 7)
    with pytest.raises(ValueError, match="needs controls"):
        m.loss(x, mask)
    u = torch.randn(3, 7, 1)
    a = m.impute(x, mask, controls=u)["filtered"]
    b = m.impute(x, mask, controls=2 * u)["filtered"]
    assert not torch.allclose(a, b)
    assert m.generate(x, 4, 3, controls=u).shape == (3, 3, 16, 16)


def test_gaussian_kl_terms_in_closed_form():
    g = torch.Generator().manual_seed(0)
    loc_q, loc_p = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    scale_q, scale_p = torch.rand(5, 3, generator=g) + 0.1, torch.rand(5, 3, generator=g) + 0.1
    q = torch.distributions.Normal(loc_q, scale_q)
    want = torch.distributions.kl_divergence(q, torch.distributions.Normal(loc_p, scale_p))
    torch.testing.assert_close(diag_gaussian_kl(loc_q, scale_q, loc_p, scale_p), want.sum(-1))
    cross, entropy = standard_normal_terms(loc_q, scale_q)
    standard = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(-(cross + entropy),
                               torch.distributions.kl_divergence(q, standard).sum(-1))
    torch.testing.assert_close(entropy, q.entropy().sum(-1))


# ---- the ELBO of a linear-Gaussian model against its exact log-likelihood ---------------------
#
# Scalar z and x: with the networks replaced by linear maps and the inference networks by the
# exact posterior, E_q[elbo] = log p(x) (the bound is tight). The one-sample estimate has noise
# (the KL terms are in closed form given the sampled past), so the mean over many samples is
# compared within 4 standard errors; a posterior that is off by a little falls clearly short.

F, SQ, H, R = 0.9, 0.6, 1.5, 0.3**2  # z_t = F z_{t-1} + N(0, SQ^2); x_t = H z_t + N(0, R)


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def gaussian_emission(x, z):
    """log N(x_t; H z_t, R), (B, T), x (B, T, 1, 1)."""
    return (-0.5 * ((x.flatten(2) - H * z) ** 2 / R + math.log(2 * math.pi * R))).sum(-1)


def brute_force_log_px(x, cov_z):
    """log N(x; 0, H^2 cov_z + R I), x (T,)."""
    cov = H**2 * cov_z + R * torch.eye(len(x), dtype=torch.float64)
    return torch.distributions.MultivariateNormal(torch.zeros_like(x), cov).log_prob(x)


def mean_and_error(values):
    return values.mean(), values.std() / math.sqrt(len(values))


class LinearDMM(DMM):
    """p(z_1) = N(0, SQ^2) (z_0 = 0), p(z_t | z_{t-1}) = N(F z_{t-1}, SQ^2), p(x_t | z_t) =
    N(H z_t, R); the backward states carry (x_t, J_t, h_t), the information form of
    p(x_{t+1:T} | z_t) = exp(-J_t z^2 / 2 + h_t z), and the combiner is the exact
    p(z_t | z_{t-1}, x_{t:T}) plus `offset` on its mean."""

    def __init__(self, offset=0.0, gap_aware=False):
        super().__init__(16, dim_z=1, gap_aware=gap_aware)
        self.encode = lambda x: (x.flatten(2), None)
        self.emission_log_prob = gaussian_emission
        self.transition = Fn(lambda z: (F * z, torch.full_like(z, SQ)))
        self.offset = offset

        def exact(z_prev, s):  # a missing frame (m = 0) contributes no measurement
            x, J, h, m = s.unbind(-1)
            precision = 1 / SQ**2 + m * H**2 / R + J
            mean = (F * z_prev[:, 0] / SQ**2 + m * H * x / R + h) / precision
            return (mean + self.offset)[:, None], precision.rsqrt()[:, None]

        self.combiner = Fn(exact)
        with torch.no_grad():
            self.z_0.zero_()

    def backward_states(self, a, mask):
        x = a[..., 0]  # (B, T)
        J, h = torch.zeros_like(x[:, 0]), torch.zeros_like(x[:, 0])
        out = []
        for t in reversed(range(x.shape[1])):
            m = mask[:, t].to(x.dtype)
            out.append(torch.stack([x[:, t], J, h, m], -1))
            precision = 1 / SQ**2 + m * H**2 / R + J
            b = m * H * x[:, t] / R + h
            J = F**2 / SQ**2 - F**2 / (SQ**4 * precision)
            h = F * b / (SQ**2 * precision)
        return torch.stack(out[::-1], 1)


def test_dmm_elbo_is_tight_at_the_exact_posterior():
    T, n = 4, 20000
    x = torch.tensor([0.3, -0.8, 1.1, 0.5], dtype=torch.float64)
    idx = torch.arange(T)
    powers = (F ** (idx[:, None] - idx[None, :]).clamp_min(0)) * (idx[:, None] >= idx[None, :])
    L = SQ * powers.double()  # z = L eps
    want = brute_force_log_px(x, L @ L.T)
    xs, mask = x.expand(n, T)[..., None, None], torch.ones(n, T, dtype=torch.float64)
    g = torch.Generator()
    log_px, kl = LinearDMM().sequence_terms(xs, mask, g.manual_seed(0))
    mean, err = mean_and_error(log_px - kl)
    assert abs(mean - want) < 4 * err, (mean, want, err)
    # the per-frame log in loss is the same estimate over T frames
    _, logs = LinearDMM().loss(xs, mask, generator=g.manual_seed(0))
    torch.testing.assert_close(logs["elbo"], mean / T)
    log_px, kl = LinearDMM(offset=0.2).sequence_terms(xs, mask, g.manual_seed(0))
    mean_off, err_off = mean_and_error(log_px - kl)
    assert mean_off < want - 4 * (err + err_off)


def test_gap_aware_dmm_fills_a_gap_from_both_sides_and_its_elbo_is_tight_there():
    """gap_aware: with frames missing, the ELBO over the observed frames is tight at the exact
    posterior q(z_t | z_{t-1}, x_{t:T}) of the frames that are there: a missing frame with
    observed frames after it is inferred from both sides, a missing tail follows the
    transition. Without gap_aware a gap follows the transition: not tight."""
    T, n = 5, 20000
    x = torch.tensor([0.3, -0.8, 1.1, 0.5, 0.0], dtype=torch.float64)
    seen = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)  # a gap and a tail
    idx = torch.arange(T)
    powers = (F ** (idx[:, None] - idx[None, :]).clamp_min(0)) * (idx[:, None] >= idx[None, :])
    L = SQ * powers.double()
    obs = seen.bool()
    want = brute_force_log_px(x[obs], (L @ L.T)[obs][:, obs])
    xs, mask = x.expand(n, T)[..., None, None], seen.expand(n, T)
    g = torch.Generator()
    log_px, kl = LinearDMM(gap_aware=True).sequence_terms(xs, mask, g.manual_seed(0))
    mean, err = mean_and_error(log_px - kl)
    assert abs(mean - want) < 4 * err, (mean, want, err)
    log_px, kl = LinearDMM().sequence_terms(xs, mask, g.manual_seed(0))
    mean_off, err_off = mean_and_error(log_px - kl)
    assert mean_off < want - 4 * (err + err_off)
    # the imputed gap is the exact smoothed mean E[z_1 | x_0, x_2, x_3] (along the mean path)
    # and the tail the transition's mean F z_3
    model = LinearDMM(gap_aware=True)
    z = model._mean_path(xs[:1], mask[:1])[0, :, 0]
    cov_z = L @ L.T
    gain = cov_z[:, obs] @ torch.linalg.inv(H**2 * cov_z[obs][:, obs]
                                            + R * torch.eye(3, dtype=torch.float64))
    smoothed = H * gain @ x[obs]
    torch.testing.assert_close(z[:4], smoothed[:4])
    torch.testing.assert_close(z[4], F * z[3])


class LinearDVBF(DVBF):
    """T = 2: w_0, w_1 ~ N(0, 1), z_0 = G w_0, z_1 = F z_0 + SQ w_1, x_t = H z_t + N(0, R);
    the initial network is the exact p(w_0 | x_0, x_1) and the recognition the exact
    p(w_1 | z_0, x_1), which together are the exact joint posterior of (w_0, w_1)."""

    G = 1.2

    def __init__(self, offset=0.0):
        super().__init__(16, dim_z=1, init_frames=2)
        self.encode = lambda x: (x.flatten(2), None)
        self.emission_log_prob = gaussian_emission
        self.offset = offset

    def recognise_initial(self, a, mask):
        # x = M w + noise, M = [[H G, 0], [H F G, H SQ]]: p(w_0 | x) from the joint Gaussian
        M = torch.tensor([[H * self.G, 0.0], [H * F * self.G, H * SQ]], dtype=torch.float64)
        cov_x = M @ M.T + R * torch.eye(2, dtype=torch.float64)
        gain = M[:, 0] @ torch.linalg.inv(cov_x)  # cov(w_0, x) cov_x^-1
        loc = a[:, :2, 0] @ gain
        var = 1 - gain @ M[:, 0]
        return (loc + self.offset)[:, None], var.sqrt().expand_as(loc)[:, None]

    def initial_state(self, w):
        return self.G * w

    def recognise(self, z, a_next, u):
        precision = 1 + (H * SQ) ** 2 / R
        loc = H * SQ * (a_next - H * F * z) / R / precision
        return loc, torch.full_like(loc, precision**-0.5)

    def transition(self, z, w, u):
        return F * z + SQ * w


def test_dvbf_elbo_is_tight_at_the_exact_posterior():
    n = 20000
    x = torch.tensor([0.7, -0.4], dtype=torch.float64)
    G = LinearDVBF.G
    L = torch.tensor([[G, 0.0], [F * G, SQ]], dtype=torch.float64)  # z = L w
    want = brute_force_log_px(x, L @ L.T)
    xs, mask = x.expand(n, 2)[..., None, None], torch.ones(n, 2, dtype=torch.float64)
    g = torch.Generator()
    log_px, cross, entropy = LinearDVBF().sequence_terms(xs, mask, g.manual_seed(0))
    mean, err = mean_and_error(log_px + cross + entropy)
    assert abs(mean - want) < 4 * err, (mean, want, err)
    log_px, cross, entropy = LinearDVBF(offset=0.2).sequence_terms(xs, mask, g.manual_seed(0))
    mean_off, err_off = mean_and_error(log_px + cross + entropy)
    assert mean_off < want - 4 * (err + err_off)


# ---- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_reduce_the_loss(name):
    m = make(name)
    x, mask = batch(B=8, T=6, seed=1), torch.ones(8, 6)
    mask[:, 4] = 0
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss, _ = m.loss(x, mask, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "box.h5"
    r = CliRunner().invoke(main, ["generate", "--out", str(path), "--train", "32", "--test",
                                  "8", "--steps", "8", "--size", "16", "--param", "radius=2",
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    return path


@pytest.mark.parametrize("name", NAMES)
def test_train_and_evaluate_from_the_cli(name, tiny_data, tmp_path):
    run = tmp_path / name
    r = CliRunner().invoke(main, ["train", "--model", name, "--data", str(tiny_data), "--out",
                                  str(run), "--epochs", "1", "--set", "batch_size=8",
                                  "--set", "conv_precision=float32", "--device", "cpu",
                                  "--no-evaluate"])
    assert r.exit_code == 0, r.output
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and math.isfinite(log[0]["test_elbo"]) and log[0]["step"] == 4
    r = CliRunner().invoke(main, ["evaluate", str(run), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert {row["method"] for row in metrics["imputation"]} == {IMPUTED[name]}
    assert math.isfinite(metrics["elbo"]["elbo"])


@pytest.mark.parametrize("env", ["box", "gravity", "polygon", "pendulum", "pong"])
def test_baselines_train_and_score_on_every_env(env, tmp_path):
    """Tiny data of each env (32 x 32, as the benchmark's): DMM and DVBF train an epoch and
    are scored (imputation, generation, ELBO) without errors or non-finite numbers."""
    data = tmp_path / f"{env}.h5"
    r = CliRunner().invoke(main, ["generate", "--env", env, "--out", str(data), "--train", "8",
                                  "--test", "4", "--steps", "6", "--workers", "1"])
    assert r.exit_code == 0, r.output
    for name in ("dmm", "dvbf"):
        out = tmp_path / name
        r = CliRunner().invoke(main, ["train", "--model", name, "--data", str(data), "--out",
                                      str(out), "--epochs", "1", "--device", "cpu", "--set",
                                      "batch_size=8", "--set", "warmup_steps=1"])
        assert r.exit_code == 0, r.output
        m = json.loads((out / "metrics.json").read_text())
        assert m["env"] == env and m["imputation"] and m["generation"]["hamming_per_step"]
        scored = [r["hamming"] for r in m["imputation"] if r["hamming"] is not None]
        assert scored and np.isfinite(scored).all()
        assert np.isfinite(m["elbo"]["elbo"])

"""The Kalman Variational Auto-Encoder (Fraccaro et al., NIPS 2017).

    q(a_t | x_t)                      recognition: conv (or MLP) encoder, Gaussian
    p(x_t | a_t)                      generation: sub-pixel decoder, Bernoulli (or Gaussian) pixels
    p(z_1) = N(mu0, Sigma0)
    alpha_t = softmax(W LSTM(a_{<t}))   dynamics parameter network (fed a_{t-1}; a_{-1} = 0)
    p(a_t | z_t)     = N(C_t z_t, R)    C_t = sum_k alpha_t,k C_k
    p(z_{t+1} | z_t) = N(A_t z_t, Q)    A_t = sum_k alpha_{t+1},k A_k

so the transition out of z_t is chosen knowing a_t, as in the paper (z_t = A_t z_{t-1} with
alpha_t(a_{0:t-1})) and the 2017 code (which updates alpha with a_t before mixing A).

Inference in the LGSSM is exact (kvae_bench.lgssm). The objective per observed frame (Sec. 3.2):

    scale_reconstruction * log p(x|a) - log q(a|x) + log p(a)

where log p(a) is computed exactly by the Kalman filter (elbo = "exact", the default), or as in
the paper from one sample z ~ p(z | a): log p(a, z) - log p(z | a) (elbo = "sampled"). Because
p(z | a) here is the exact joint posterior, that estimate equals log p(a) for every z, and so do
its gradients (tests/test_kvae.py checks both to 1e-6): the two train identically, and "exact"
skips the smoother and the sample. (The 2017 code scored the sample under the per-step smoothed
marginals instead of the joint posterior, which does not have this property.)
At a missing step the Kalman update is skipped and the LSTM is fed the predicted a_t = C_t m_t,
so filtering and smoothing with gaps are exact in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from kvae_bench import lgssm, masks
from kvae_bench.models.nets import (
    SequenceCodec,
    build_autoencoder,
    check_inputs,
    frame_log_likelihood,
    frame_mean,
)
from kvae_bench.models.protocol import EpochSchedule


@dataclass(frozen=True)
class KVAEConfig:
    """Model options; defaults are the paper's and the 2017 code's."""

    dim_a: int = 2
    dim_z: int = 4
    K: int = 3  # mixture components of (A_k, C_k); 1 = a plain LGSSM
    encoder: str = "conv"  # conv | mlp
    likelihood: str = "bernoulli"  # bernoulli | gaussian
    pixel_var: float = 0.1  # Gaussian pixel variance (initial value if learned)
    learn_pixel_var: bool = False  # Gaussian: learn a variance per pixel
    use_vae: bool = True  # False: deterministic a = mean (a plain auto-encoder)
    noise_emission: float = 0.03  # R = noise_emission I, also the encoder's variance cap
    noise_transition: float = 0.08  # Q = noise_transition I
    init_cov: float = 20.0  # Sigma0 = init_cov I
    init_C_std: float = 0.05
    init_C: str = "normal"  # normal: each C_k ~ N(0, init_C_std^2) entrywise (2017); isotropic:
    # every C_k the same matrix with orthogonal rows of norm init_C_std sqrt(dim_z) (the normal
    # init's expected C_k C_k^T), so the prior on a starts isotropic (see results/NOTES.md, box)
    alpha_net: str = "lstm"  # dynamics parameter network: lstm | mlp (over a FIFO of codes)
    alpha_units: int = 50  # its hidden units
    fifo_length: int = 3  # mlp: how many past codes it sees
    dim_u: int = 0  # > 0: a control u_t, z_{t+1} = A_t z_t + B_t u_t, B_t = sum_k alpha B_k
    control: str = "network"  # where u_t comes from: the dynamics network's output, or "data"
    # (the data set's controls, passed to loss/impute/generate as controls=(B, T, U))
    elbo: str = "exact"  # exact | sampled (same value and gradients; exact is cheaper)
    scale_reconstruction: float = 0.3  # weight of log p(x|a) in training
    conv_precision: str = "bf16"  # bf16 | float32: autocast of the conv layers only
    only_vae_epochs: int = 0  # first epochs: the VAE alone, N(0, I) prior on a
    frozen_dynamics_epochs: int = 10  # next epochs: VAE + A_k, C_k, the alpha network frozen
    # (the 2017 code's kf_update_steps, which counts epochs)

    def validate(self) -> None:
        for name, valid in (("encoder", ("conv", "mlp")), ("likelihood", ("bernoulli", "gaussian")),
                            ("elbo", ("sampled", "exact")), ("alpha_net", ("lstm", "mlp")),
                            ("init_C", ("normal", "isotropic"))):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("dim_a", "dim_z", "K", "alpha_units", "fifo_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.dim_u < 0:
            raise ValueError("dim_u must be >= 0")
        if self.control not in ("network", "data"):
            raise ValueError(f"control must be network or data, got {self.control!r}")
        if self.init_C == "isotropic" and self.dim_a > self.dim_z:
            raise ValueError("init_C isotropic needs dim_a <= dim_z (orthogonal rows of C)")
        if self.only_vae_epochs < 0 or self.frozen_dynamics_epochs < 0:
            raise ValueError("only_vae_epochs and frozen_dynamics_epochs must be >= 0")
        for name in ("noise_emission", "noise_transition", "init_cov", "pixel_var"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


def _initial_C(c: KVAEConfig) -> Tensor:
    """C_k (K, A, Z) as c.init_C asks. Both draw the same numbers, so every other parameter
    starts the same whichever is chosen."""
    C = c.init_C_std * torch.randn(c.K, c.dim_a, c.dim_z)
    if c.init_C == "normal":
        return C
    # orthonormal rows spanning those of the first draw (A <= Z), scaled to the normal init's
    # expected row norm: C C^T = init_C_std^2 dim_z I
    q = torch.linalg.qr(C[0].T).Q.T  # (A, Z)
    return (c.init_C_std * math.sqrt(c.dim_z) * q).expand(c.K, -1, -1).clone()


class Dynamics(NamedTuple):
    """The LGSSM's matrices at every step, as the dynamics parameter network set them."""

    A: Tensor  # (B, T, Z, Z)  A_t = sum_k alpha_t,k A_k
    C: Tensor  # (B, T, A, Z)  C_t = sum_k alpha_t,k C_k
    Bu: Tensor | None  # (B, T, Z)  B_t u_t, or None without control
    alpha: Tensor  # (B, T + 1, K): alpha[:, t] = f(a_{<t}) sets C_t, alpha[:, t+1] sets A_t


class DynamicsNetwork(nn.Module):
    """alpha_t = softmax(lin_hidden_to_alpha(h_t)) (B, K), the mixture weights of step t, and
    optionally a control u_t = lin_hidden_to_u(h_t), where h_t summarises a_{<t}: an LSTM fed
    a_{t-1} (2017 default), or an MLP over the FIFO of the last `fifo_length` codes."""

    def __init__(self, dim_a: int, K: int, units: int, kind: str = "lstm", fifo_length: int = 3,
                 dim_u: int = 0):
        super().__init__()
        self.kind, self.fifo_length = kind, fifo_length
        if kind == "lstm":
            self.lstm = nn.LSTM(dim_a, units, batch_first=True)
        else:
            self.mlp = nn.Sequential(nn.Linear(fifo_length * dim_a, units), nn.ReLU())
        self.lin_hidden_to_alpha = nn.Linear(units, K)
        self.lin_hidden_to_u = nn.Linear(units, dim_u) if dim_u else None

    def forward(self, a_prev: Tensor, state=None):
        """a_prev (B, T, A), the codes a_{t-1} -> alpha (B, T, K), u (B, T, U) or None, and
        the state to continue from (T = 1 for one online step)."""
        if self.kind == "lstm":
            h, state = self.lstm(a_prev, state)
        else:
            B, T, dim_a = a_prev.shape
            past = a_prev.new_zeros(B, self.fifo_length - 1, dim_a) if state is None else state
            buf = torch.cat([past, a_prev], 1)  # (B, L - 1 + T, A)
            windows = buf.unfold(1, self.fifo_length, 1).transpose(-1, -2)  # (B, T, L, A)
            h = self.mlp(windows.flatten(-2))
            state = buf[:, buf.shape[1] - (self.fifo_length - 1):]
        alpha = torch.softmax(self.lin_hidden_to_alpha(h), -1)
        u = self.lin_hidden_to_u(h) if self.lin_hidden_to_u is not None else None
        return alpha, u, state


class KVAE(SequenceCodec, nn.Module):
    """x (B, T, H, W) in [0, 1]; mask (B, T) in {0, 1} (1 = observed). Built as
    KVAE(image_size=H, **options), options the fields of KVAEConfig."""

    Config = KVAEConfig

    def __init__(self, image_size: int, **options):
        super().__init__()
        config = self.Config(**options)
        config.validate()
        self.config = config
        c = config
        self._set_precision(c.conv_precision)
        self.encoder, self.decoder = build_autoencoder(c.encoder, image_size, c.dim_a,
                                                       c.noise_emission)
        for net in (self.encoder, self.decoder):  # conv weights in the layout of the images
            net.to(memory_format=torch.channels_last)
        self.A = nn.Parameter(torch.eye(c.dim_z).repeat(c.K, 1, 1))  # (K, Z, Z)
        self.C = nn.Parameter(_initial_C(c))  # (K, A, Z)
        self.B = nn.Parameter(c.init_C_std * torch.randn(c.K, c.dim_z, c.dim_u)) if c.dim_u \
            else None  # (K, Z, U)
        self.alpha_net = DynamicsNetwork(c.dim_a, c.K, c.alpha_units, c.alpha_net,
                                         c.fifo_length, c.dim_u if c.control == "network" else 0)
        self.pixel_log_var = nn.Parameter(torch.full((image_size, image_size),
                                                     math.log(c.pixel_var))) \
            if c.learn_pixel_var else None
        self.register_buffer("Q", c.noise_transition * torch.eye(c.dim_z))
        self.register_buffer("R", c.noise_emission * torch.eye(c.dim_a))
        self.register_buffer("mu0", torch.zeros(c.dim_z))
        self.register_buffer("Sigma0", c.init_cov * torch.eye(c.dim_z))

    # ---- the training schedule -------------------------------------------------------------

    def epoch_schedule(self, epoch: int) -> EpochSchedule:
        """The paper's schedule (epochs from 0): the VAE alone with an N(0, I) prior on a for
        only_vae_epochs (A_k, C_k and the alpha network frozen), then frozen_dynamics_epochs epochs
        with the alpha network frozen, then everything."""
        c, groups = self.config, self.param_groups()
        if epoch < c.only_vae_epochs:
            return EpochSchedule(groups["lgssm"] + groups["dynamics"], {"vae_only": True})
        if epoch < c.only_vae_epochs + c.frozen_dynamics_epochs:
            return EpochSchedule(groups["dynamics"])
        return EpochSchedule()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """vae: encoder + decoder; lgssm: A_k, C_k; dynamics: the alpha network."""
        return {"vae": [*self.encoder.parameters(), *self.decoder.parameters()],
                "lgssm": [p for p in (self.A, self.C, self.B) if p is not None],
                "dynamics": list(self.alpha_net.parameters()),
                **({"likelihood": [self.pixel_log_var]} if self.pixel_log_var is not None else {})}

    # ---- pieces ---------------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, H, W) -> mean, var of q(a_t | x_t), (B, T, A) each (var 0 without VAE)."""
        mean, var = super().encode(x)
        return mean, var if self.config.use_vae else torch.zeros_like(var)

    def _mix(self, alpha: Tensor, u: Tensor | None = None):
        """alpha (..., K), u (..., U) -> A (..., Z, Z), C (..., A, Z), B u (..., Z) or None."""
        A = torch.einsum("...k,kij->...ij", alpha, self.A)
        C = torch.einsum("...k,kij->...ij", alpha, self.C)
        Bu = None if u is None else torch.einsum("...k,kij,...j->...i", alpha, self.B, u)
        return A, C, Bu

    def _pixel_var(self):
        return self.pixel_log_var.exp() if self.pixel_log_var is not None else \
            self.config.pixel_var

    def _prior(self, B: int):
        return self.mu0.expand(B, -1), self.Sigma0.expand(B, -1, -1)

    def _data_controls(self, controls: Tensor | None, B: int, T: int) -> Tensor | None:
        """The data's controls (B, T, U) where the model takes them (control = "data"),
        checked; else None (and any given controls are ignored)."""
        c = self.config
        if not c.dim_u or c.control != "data":
            return None
        if controls is None or tuple(controls.shape) != (B, T, c.dim_u):
            got = None if controls is None else tuple(controls.shape)
            raise ValueError(f"this KVAE takes the data's controls (control=data): pass "
                             f"controls of shape {(B, T, c.dim_u)}, got {got}")
        return controls

    def filter(self, a: Tensor, mask: Tensor, controls: Tensor | None = None
               ) -> tuple[lgssm.FilterResult, Dynamics]:
        """Kalman filter of codes a (B, T, A) under mask.

        All observed: alpha for every step from one pass of the network over a_{-1} = 0,
        a_0, ..., a_{T-1}, then the batch filter. With gaps: step by step, the network fed the
        predicted a_t = C_t m_t where a_t is missing. controls (B, T, U): the data's u_t,
        applied after step t (control = "data").
        """
        B, T, _ = a.shape
        mu0, Sigma0 = self._prior(B)
        controls = self._data_controls(controls, B, T)
        if masks.all_observed(mask):
            alpha, u, _ = self.alpha_net(torch.cat([torch.zeros_like(a[:, :1]), a], 1))
            _, C, _ = self._mix(alpha[:, :T])
            u = controls if controls is not None else None if u is None else u[:, 1:]
            A, _, Bu = self._mix(alpha[:, 1:], u)
            f = lgssm.kalman_filter(a, mask, A, C, self.Q, self.R, mu0, Sigma0, Bu=Bu)
            return f, Dynamics(A, C, Bu, alpha)
        return self._filter_online(a, mask, mu0, Sigma0, controls)

    def _filter_online(self, a, mask, mu0, Sigma0, controls=None):
        B, T, _ = a.shape
        mean, cov = mu0, Sigma0
        alpha, _, state = self.alpha_net(torch.zeros_like(a[:, :1]))  # alpha_0
        alpha = alpha[:, 0]
        out = {k: [] for k in ("pm", "pc", "fm", "fc", "ll", "A", "C", "Bu")}
        alphas = [alpha]
        for t in range(T):
            _, C_t, _ = self._mix(alpha)
            out["pm"].append(mean)
            out["pc"].append(cov)
            predicted_a = (C_t @ mean.unsqueeze(-1)).squeeze(-1)
            mean, cov, ll = lgssm.update(mean, cov, a[:, t], C_t, self.R, mask[:, t])
            seen = torch.where(mask[:, t, None] > 0.5, a[:, t], predicted_a)
            alpha, u, state = self.alpha_net(seen[:, None], state)  # alpha_{t+1} knows a_t
            alpha, u = alpha[:, 0], None if u is None else u[:, 0]
            if controls is not None:
                u = controls[:, t]
            alphas.append(alpha)
            A_t, _, Bu_t = self._mix(alpha, u)
            for key, value in (("fm", mean), ("fc", cov), ("ll", ll), ("A", A_t), ("C", C_t),
                               ("Bu", Bu_t)):
                out[key].append(value)
            if t + 1 < T:
                mean, cov = lgssm.predict(mean, cov, A_t, self.Q, Bu_t)
        out = {k: (torch.stack(v, 1) if v[0] is not None else None) for k, v in out.items()}
        lls = out["ll"]
        result = lgssm.FilterResult(out["fm"], out["fc"], out["pm"], out["pc"], lls, lls.sum(1))
        return result, Dynamics(out["A"], out["C"], out["Bu"], torch.stack(alphas, 1))

    def _lgssm_log_prob(self, a, mask, filtered, dyn: Dynamics, generator):
        """Estimate of log p(a | observed), (B,): exact, or one-sample log p(a, z) - log p(z|a)."""
        if self.config.elbo == "exact":
            return filtered.log_likelihood
        A, C = dyn.A, dyn.C
        sm = lgssm.rts_smoother(A, filtered)
        z = lgssm.sample_posterior(sm, generator)  # (B, T, Z)
        B, T, Z = z.shape
        mu0, Sigma0 = self._prior(B)
        log_p = lgssm.gaussian_log_prob(z[:, 0], mu0, lgssm.cholesky(Sigma0))
        if T > 1:
            LQ = lgssm.cholesky(self.Q)
            trans = (A[:, :-1] @ z[:, :-1].unsqueeze(-1)).squeeze(-1)
            if dyn.Bu is not None:
                trans = trans + dyn.Bu[:, :-1]
            log_p = log_p + lgssm.gaussian_log_prob(z[:, 1:], trans, LQ).sum(1)
        emit = (C @ z.unsqueeze(-1)).squeeze(-1)
        log_emit = lgssm.gaussian_log_prob(a, emit, lgssm.cholesky(self.R))
        log_p = log_p + (log_emit * mask).sum(1)
        # log p(z | a) = log N(z_T; m_T, P_T) + sum_t log N(z_t; m_t + J_t (z_{t+1} - m_{t+1}), .)
        ms = sm.smoothed_means
        log_q = lgssm.gaussian_log_prob(z[:, -1], ms[:, -1],
                                        lgssm.cholesky_jittered(sm.smoothed_covs[:, -1]))
        if T > 1:
            cond = ms[:, :-1] + (sm.gains @ (z[:, 1:] - ms[:, 1:]).unsqueeze(-1)).squeeze(-1)
            log_q = log_q + lgssm.gaussian_log_prob(
                z[:, :-1], cond, lgssm.cholesky_jittered(sm.backward_covs)).sum(1)
        return log_p - log_q

    # ---- the model protocol ---------------------------------------------------------------

    def loss(self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None,
             vae_only: bool = False, controls: Tensor | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative ELBO per observed frame (training weights), and per-frame logs.

        vae_only: the LGSSM term is replaced by a standard normal prior on a (the 2017
        code's only_vae_epochs). controls (B, T, U): the data's (control = "data").
        """
        check_inputs(x, mask)
        c = self.config
        mean, var = self.encode(x)
        eps = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
        a = mean + var.sqrt() * eps  # (B, T, A)
        out = self.decode(a)
        frames = mask.sum().clamp_min(1.0)
        log_px = (frame_log_likelihood(x, out, c.likelihood, self._pixel_var())
                  * mask).sum() / frames
        if c.use_vae:
            log_qa = (-0.5 * (torch.log(2 * torch.pi * var) + eps**2)).sum(-1)
            log_qa = (log_qa * mask).sum() / frames
        else:
            log_qa = torch.zeros((), device=x.device)
        if vae_only:
            log_pa = (-0.5 * (a**2 + torch.log(torch.tensor(2 * torch.pi))).sum(-1) * mask).sum()
            log_pa = log_pa / frames
        else:
            filtered, dyn = self.filter(a, mask, controls)
            log_pa = self._lgssm_log_prob(a, mask, filtered, dyn, generator).sum() / frames
        elbo = log_px - log_qa + log_pa
        loss = -(c.scale_reconstruction * log_px - log_qa + log_pa)
        logs = {"elbo": elbo.detach(), "log_px": log_px.detach(), "log_qa": log_qa.detach(),
                "log_pa": log_pa.detach()}
        return loss, logs

    @torch.no_grad()
    def impute(self, x: Tensor, mask: Tensor, controls: Tensor | None = None
               ) -> dict[str, Tensor]:
        """Reconstructions (B, T, H, W) in [0, 1] from a_t = C_t E[z_t | observed]:
        "smoothed" (all observed frames) and "filtered" (frames up to t)."""
        check_inputs(x, mask)
        a, _ = self.encode(x)
        filtered, dyn = self.filter(a, mask, controls)
        smoothed = lgssm.rts_smoother(dyn.A, filtered)
        out = {}
        for name, z in (("smoothed", smoothed.smoothed_means),
                        ("filtered", filtered.filtered_means)):
            a_hat = (dyn.C @ z.unsqueeze(-1)).squeeze(-1)
            out[name] = frame_mean(self.decode(a_hat), self.config.likelihood)
        return out

    @torch.no_grad()
    def generate(self, x: Tensor, n_observed: int, steps: int, *, sample: bool = False,
                 generator: torch.Generator | None = None, controls: Tensor | None = None
                 ) -> Tensor:
        """Frames n_observed .. n_observed + steps - 1 (B, steps, H, W) given the first
        n_observed frames of x. Mean: the filter's predictions with every later frame missing;
        sample: z from the filter at n_observed - 1, then z_{t+1} = A_t z_t + eps,
        a_t = C_t z_t + delta, the LSTM fed the sampled a's. controls (B, n_observed + steps,
        U): the data's (control = "data")."""
        if not 1 <= n_observed <= x.shape[1]:
            raise ValueError(f"n_observed must be in [1, {x.shape[1]}], got {n_observed}")
        B = x.shape[0]
        total = n_observed + steps
        xs = torch.zeros(B, total, *x.shape[2:], device=x.device, dtype=x.dtype)
        xs[:, :n_observed] = x[:, :n_observed]
        mask = torch.zeros(B, total, device=x.device)
        mask[:, :n_observed] = 1
        a, _ = self.encode(xs[:, :n_observed])
        a = torch.cat([a, a.new_zeros(B, steps, a.shape[-1])], 1)
        controls = self._data_controls(controls, B, total)
        if not sample:
            filtered, dyn = self.filter(a, mask, controls)
            a_hat = (dyn.C @ filtered.filtered_means.unsqueeze(-1)).squeeze(-1)[:, n_observed:]
            return frame_mean(self.decode(a_hat), self.config.likelihood)
        filtered, _ = self.filter(a[:, :n_observed], mask[:, :n_observed],
                                  None if controls is None else controls[:, :n_observed])
        z = lgssm.sample_gaussian(filtered.filtered_means[:, -1], filtered.filtered_covs[:, -1],
                                  generator)  # z_{n-1}
        # the network's state after a_{-1} = 0, a_0 .. a_{n-1}: alpha_n
        alphas, us, state = self.alpha_net(torch.cat([torch.zeros_like(a[:, :1]),
                                                      a[:, :n_observed]], 1))
        alpha, u = alphas[:, -1], None if us is None else us[:, -1]
        Q, R = self.Q.expand(B, -1, -1), self.R.expand(B, -1, -1)
        codes = []
        for k in range(steps):
            if controls is not None:  # u_{t-1} moves z_{t-1} to z_t, t = n_observed + k
                u = controls[:, n_observed - 1 + k]
            A_prev, C_t, Bu = self._mix(alpha, u)  # A_{t-1} and C_t both use alpha_t
            mean = (A_prev @ z.unsqueeze(-1)).squeeze(-1) + (0 if Bu is None else Bu)
            z = lgssm.sample_gaussian(mean, Q, generator)
            code = lgssm.sample_gaussian((C_t @ z.unsqueeze(-1)).squeeze(-1), R, generator)
            codes.append(code)
            alpha, u, state = self.alpha_net(code[:, None], state)  # alpha_{t+1} sees a_t
            alpha, u = alpha[:, 0], None if u is None else u[:, 0]
        return frame_mean(self.decode(torch.stack(codes, 1)), self.config.likelihood)


@dataclass(frozen=True)
class KVAEMLPConfig(KVAEConfig):
    encoder: str = "mlp"


class KVAEMLP(KVAE):
    """The KVAE with the MLP encoder and decoder: the paper's "KVAE (MLP)" of Table 1, named
    kvae-mlp in the tables (the same as kvae --set encoder=mlp)."""

    Config = KVAEMLPConfig

"""Deep Variational Bayes Filters with locally linear transitions, DVBF-LL (Karl, Soelch, Bayer,
van der Smagt, ICLR 2017, arXiv 1605.06432), with the KVAE's auto-encoder.

Generative model (Sec. 3; frames t = 0 .. T-1 here):

    w_0 ~ N(0, I),  z_0 = f(w_0)                               f an MLP ("initial transition")
    w_t ~ N(0, I),  z_{t+1} = A_t z_t + B_t u_t + C_t w_{t+1}  locally linear (Sec. 3.3):
        (A_t, B_t, C_t) = sum_i alpha_i(z_t) (A_i, B_i, C_i),  alpha = softmax(MLP(z_t)), M of each
    p(x_t | z_t) = decoder(a_t),  a_t = lin_z_to_a(z_t)         the KVAE's decoder, fed a linear
                                                                map of z_t (its code, dim_a)

z is a deterministic function of w (and u), so all inference is over w (Sec. 3.1):

    a_t = mean of the shared encoder's q(a_t | x_t) (its variance head is unused here)
    q(w_0 | x_{0:k-1})           = N(MLP(m_s a_s, m_s for s < k))   k = init_frames, the initial
                                   recognition network over the first frames and their mask bits
    q(w_{t+1} | z_t, x_{t+1}, u_t) = N(MLP(z_t, a_{t+1}, u_t))      where frame t+1 is observed,
                                   N(0, I) (the prior) where it is missing: inference falls back
                                   on the transition there, and that step's KL is exactly 0

Objective (one reparameterised sample of w; Gaussian terms in closed form given z_t):

    elbo = (sum_t m_t log p(x_t | z_t) - sum_t KL(q(w_t | .) || N(0, I))) / sum_t m_t

in nats per observed frame; "log_px" and "kl" are its two sums per observed frame. Training
anneals (Sec. 3.5): loss = -(c (log p(x|z) + E_q log p(w)) + H[q(w)]) per observed frame with
the temperature c = min(1, 0.01 + epoch / anneal_epochs), set each epoch by epoch_schedule
(the paper counts c in iterations; the protocol gives epochs). c = 1 is the ELBO.

Controls: with dim_u > 0, loss/impute/generate take controls (B, T, U), u_t acting on the
step from t to t + 1; with dim_u = 0 (the default: data without controls) there is no B.

Imputation ("filtered"): the mean path (w = the mean of q at each step, so w = 0 at a missing
frame) decoded; z_t has seen the frames up to t (and the first init_frames through z_0).
Generation: the same pass with every frame after the first n_observed missing, that is, the
filtered z rolled forward by the locally linear transition with w = 0 (sample=True: w drawn
from q over the observed frames and from N(0, I) after them).
Codes (the latent probe) are a_t = lin_z_to_a(z_t) on the mean path with every frame observed,
the code the decoder reads; reconstruct decodes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kvae_bench.models.nets import (
    LatentEmission,
    SequenceCodec,
    annealing_weight,
    build_autoencoder,
    check_inputs,
    frame_mean,
)
from kvae_bench.models.protocol import EpochSchedule


@dataclass(frozen=True)
class DVBFConfig:
    """Model options. M, alpha_units and recognition_units are the sizes the DVBF paper gives
    for its pendulum (16 matrices, 16 and 128 units); dim_z and dim_a as the KVAE's."""

    dim_a: int = 2  # the auto-encoder's code a_t (encoder output, decoder input)
    dim_z: int = 4  # also the size of the noise w_t
    dim_u: int = 0  # controls u_t (0: none)
    M: int = 16  # locally linear components (A_i, B_i, C_i)
    alpha_units: int = 16  # hidden units of the network of z_t that weights them
    recognition_units: int = 128  # hidden units of the recognition and initial networks
    init_frames: int = 3  # frames the initial recognition network sees
    init_C_std: float = 0.1  # C_i (and B_i) start as N(0, init_C_std^2); A_i start as I
    anneal_epochs: int = 40  # epochs over which the temperature rises from 0.01 to 1 (0: none);
    # half the paper profile's 80. With 10, pendulum-dvbf seed 0 reconstructed at Hamming 0.0047
    # and imputed p = 0.5 1.85 px off; with 40, 0.0004 and 0.54 px (results/NOTES.md)
    encoder: str = "conv"  # conv | mlp
    likelihood: str = "bernoulli"  # bernoulli | gaussian
    pixel_var: float = 0.1  # Gaussian pixel variance
    conv_precision: str = "bf16"  # bf16 | float32: autocast of the conv layers only

    def validate(self) -> None:
        for name, valid in (("encoder", ("conv", "mlp")),
                            ("likelihood", ("bernoulli", "gaussian"))):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("dim_a", "dim_z", "M", "alpha_units", "recognition_units", "init_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.dim_u < 0 or self.anneal_epochs < 0:
            raise ValueError("dim_u and anneal_epochs must be >= 0")
        if not (self.pixel_var > 0 and self.init_C_std > 0):
            raise ValueError("pixel_var and init_C_std must be > 0")


def _gaussian_head(units: int, dim_out: int, dim_in: int) -> nn.Module:
    """An MLP dim_in -> units (ReLU) -> 2 dim_out: the mean and pre-softplus scale."""
    return nn.Sequential(nn.Linear(dim_in, units), nn.ReLU(), nn.Linear(units, 2 * dim_out))


def _loc_scale(out: Tensor) -> tuple[Tensor, Tensor]:
    loc, raw = out.chunk(2, -1)
    return loc, nn.functional.softplus(raw) + 1e-4


def standard_normal_terms(loc: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """E_q log N(w; 0, I) and the entropy H[q] of q = N(loc, diag scale^2), summed over the
    last axis; KL(q || N(0, I)) = -(first + second).  (..., W) -> (...), (...)."""
    cross = -0.5 * (math.log(2 * math.pi) + loc**2 + scale**2).sum(-1)
    entropy = (0.5 * math.log(2 * math.pi * math.e) + torch.log(scale)).sum(-1)
    return cross, entropy


class DVBF(LatentEmission, SequenceCodec, nn.Module):
    """x (B, T, H, W) in [0, 1]; mask (B, T) in {0, 1} (1 = observed). Built as
    DVBF(image_size=H, **options), options the fields of DVBFConfig."""

    Config = DVBFConfig

    def __init__(self, image_size: int, **options):
        super().__init__()
        config = DVBFConfig(**options)
        config.validate()
        self.config = c = config
        self._set_precision(c.conv_precision)
        self.encoder, self.decoder = build_autoencoder(c.encoder, image_size, c.dim_a, 0.03)
        for net in (self.encoder, self.decoder):
            net.to(memory_format=torch.channels_last)
        Z, U = c.dim_z, c.dim_u
        self.lin_z_to_a = nn.Linear(Z, c.dim_a)
        self.A = nn.Parameter(torch.eye(Z).repeat(c.M, 1, 1))  # (M, Z, Z)
        self.B = nn.Parameter(c.init_C_std * torch.randn(c.M, Z, U)) if U else None  # (M, Z, U)
        self.C = nn.Parameter(c.init_C_std * torch.randn(c.M, Z, Z))  # (M, Z, W), W = Z
        self.alpha_net = nn.Sequential(nn.Linear(Z, c.alpha_units), nn.ReLU(),
                                       nn.Linear(c.alpha_units, c.M))
        self.initial_net = _gaussian_head(c.recognition_units, Z, c.init_frames * (c.dim_a + 1))
        self.initial_transition = nn.Sequential(nn.Linear(Z, c.recognition_units), nn.ReLU(),
                                                nn.Linear(c.recognition_units, Z))
        self.recognition_net = _gaussian_head(c.recognition_units, Z, Z + c.dim_a + U)

    def epoch_schedule(self, epoch: int) -> EpochSchedule:
        """The annealing temperature c = min(1, 0.01 + epoch / anneal_epochs) (epochs from 0)."""
        return EpochSchedule(loss_kwargs={
            "annealing": annealing_weight(epoch, self.config.anneal_epochs)})

    # ---- pieces (each a function of its inputs; tests replace them with linear ones) -------

    def recognise_initial(self, a: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """q(w_0 | x_{0:k-1}): codes a (B, T, A) and mask (B, T) -> loc, scale (B, Z); frames
        beyond T count as missing."""
        k = self.config.init_frames
        a, m = a[:, :k] * mask[:, :k, None], mask[:, :k].to(a.dtype)
        if a.shape[1] < k:
            a = torch.cat([a, a.new_zeros(a.shape[0], k - a.shape[1], a.shape[2])], 1)
            m = torch.cat([m, m.new_zeros(m.shape[0], k - m.shape[1])], 1)
        return _loc_scale(self.initial_net(torch.cat([a.flatten(1), m], 1)))

    def initial_state(self, w: Tensor) -> Tensor:
        """z_0 = f(w_0), (B, Z) -> (B, Z)."""
        return self.initial_transition(w)

    def recognise(self, z: Tensor, a_next: Tensor, u: Tensor | None) -> tuple[Tensor, Tensor]:
        """q(w_{t+1} | z_t, x_{t+1}, u_t) -> loc, scale (B, Z)."""
        inputs = [z, a_next] + ([u] if u is not None else [])
        return _loc_scale(self.recognition_net(torch.cat(inputs, -1)))

    def transition(self, z: Tensor, w: Tensor, u: Tensor | None) -> Tensor:
        """z_{t+1} = A_t z_t + B_t u_t + C_t w_{t+1}, the matrices mixed by alpha(z_t)."""
        alpha = torch.softmax(self.alpha_net(z), -1)  # (B, M)
        A = torch.einsum("bm,mij->bij", alpha, self.A)
        C = torch.einsum("bm,mij->bij", alpha, self.C)
        z_next = (A @ z.unsqueeze(-1) + C @ w.unsqueeze(-1)).squeeze(-1)
        if u is not None:
            z_next = z_next + torch.einsum("bm,mij,bj->bi", alpha, self.B, u)
        return z_next

    def infer(self, a: Tensor, mask: Tensor, eps: Tensor, u: Tensor | None
              ) -> tuple[Tensor, Tensor, Tensor]:
        """The path z (B, T, Z) from w drawn from q with standard normal noise eps (B, T, Z)
        (zeros: the mean path), and per step (B, T) E_q log p(w_t) and H[q(w_t)] (0 at a
        missing step t >= 1, where q(w_t) = p(w_t))."""
        loc, scale = self.recognise_initial(a, mask)
        z = self.initial_state(loc + scale * eps[:, 0])
        cross, entropy = standard_normal_terms(loc, scale)
        zs, crosses, entropies = [z], [cross], [entropy]
        for t in range(a.shape[1] - 1):
            u_t = None if u is None else u[:, t]
            seen = mask[:, t + 1, None] > 0.5
            loc, scale = self.recognise(z, a[:, t + 1], u_t)
            loc, scale = torch.where(seen, loc, 0.0), torch.where(seen, scale, 1.0)
            z = self.transition(z, loc + scale * eps[:, t + 1], u_t)
            cross, entropy = standard_normal_terms(loc, scale)
            zs.append(z)
            crosses.append(cross * seen[:, 0])
            entropies.append(entropy * seen[:, 0])
        return torch.stack(zs, 1), torch.stack(crosses, 1), torch.stack(entropies, 1)

    def sequence_terms(self, x: Tensor, mask: Tensor, generator: torch.Generator | None = None,
                       controls: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One-sample estimates per sequence (B,): sum_t m_t log p(x_t | z_t), sum_t E_q log
        p(w_t) and sum_t H[q(w_t)]; the ELBO is the first plus the other two."""
        u = self._controls(controls, x)
        a, _ = self.encode(x)
        eps = torch.randn((*a.shape[:2], self.config.dim_z), dtype=a.dtype, device=a.device,
                          generator=generator)
        z, cross, entropy = self.infer(a, mask, eps, u)
        return (self.emission_log_prob(x, z) * mask).sum(1), cross.sum(1), entropy.sum(1)

    def _controls(self, controls: Tensor | None, x: Tensor) -> Tensor | None:
        if not self.config.dim_u:
            return None
        want = (*x.shape[:2], self.config.dim_u)
        if controls is None or tuple(controls.shape) != want:
            got = None if controls is None else tuple(controls.shape)
            raise ValueError(f"dvbf with dim_u={self.config.dim_u} needs controls {want}, got "
                             f"{got}: train on data with controls, or set dim_u=0")
        return controls.to(x.dtype)

    def _mean_path(self, x: Tensor, mask: Tensor, controls: Tensor | None = None) -> Tensor:
        """z (B, T, Z) with each w_t the mean of its q (0 where the frame is missing)."""
        u = self._controls(controls, x)
        a, _ = self.encode(x)
        return self.infer(a, mask, a.new_zeros(*a.shape[:2], self.config.dim_z), u)[0]

    @torch.no_grad()
    def codes(self, x: Tensor, controls: Tensor | None = None) -> Tensor:
        """x (B, T, H, W) -> (B, T, A): a_t = lin_z_to_a(z_t) of the mean path with every frame
        observed, the code the decoder reads (the latent probe reads it)."""
        return self.lin_z_to_a(self._mean_path(x, torch.ones(x.shape[:2], device=x.device),
                                               controls))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, controls: Tensor | None = None) -> Tensor:
        """x (B, T, H, W) -> the mean path with every frame observed, decoded, in [0, 1]."""
        z = self._mean_path(x, torch.ones(x.shape[:2], device=x.device), controls)
        return frame_mean(self.emission_logits(z), self.config.likelihood)

    # ---- the model protocol ---------------------------------------------------------------

    def loss(self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None,
             annealing: float | Tensor = 1.0, controls: Tensor | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """The annealed negative ELBO per observed frame (the ELBO itself at annealing = 1),
        and the logs "elbo" (nats per observed frame, never annealed), "log_px", "kl" (per
        observed frame), detached 0-d tensors."""
        check_inputs(x, mask)
        log_px, cross, entropy = (v.sum() / mask.sum().clamp_min(1.0)
                                  for v in self.sequence_terms(x, mask, generator, controls))
        elbo = log_px + cross + entropy
        loss = -(annealing * (log_px + cross) + entropy)
        return loss, {"elbo": elbo.detach(), "log_px": log_px.detach(),
                      "kl": -(cross + entropy).detach()}

    @torch.no_grad()
    def impute(self, x: Tensor, mask: Tensor, *, controls: Tensor | None = None
               ) -> dict[str, Tensor]:
        """{"filtered": (B, T, H, W)}: the mean path decoded (see the module doc)."""
        check_inputs(x, mask)
        z = self._mean_path(x, mask, controls)
        return {"filtered": frame_mean(self.emission_logits(z), self.config.likelihood)}

    @torch.no_grad()
    def generate(self, x: Tensor, n_observed: int, steps: int, *, sample: bool = False,
                 generator: torch.Generator | None = None, controls: Tensor | None = None
                 ) -> Tensor:
        """Frames n_observed .. n_observed + steps - 1 (B, steps, H, W) given the first
        n_observed frames of x (and controls (B, n_observed + steps, U) with dim_u > 0):
        the filter over those, then the transition with w = 0 (sample: w drawn)."""
        if not 1 <= n_observed <= x.shape[1]:
            raise ValueError(f"n_observed must be in [1, {x.shape[1]}], got {n_observed}")
        a, _ = self.encode(x[:, :n_observed])
        B, total = a.shape[0], n_observed + steps
        a = torch.cat([a, a.new_zeros(B, steps, a.shape[-1])], 1)  # (B, total, A)
        u = self._controls(controls, a.new_empty(B, total, 0))
        mask = torch.zeros(B, total, device=a.device)
        mask[:, :n_observed] = 1
        shape = (B, total, self.config.dim_z)
        eps = torch.randn(shape, dtype=a.dtype, device=a.device, generator=generator) \
            if sample else a.new_zeros(shape)
        z, _, _ = self.infer(a, mask, eps, u)
        return frame_mean(self.emission_logits(z[:, n_observed:]), self.config.likelihood)

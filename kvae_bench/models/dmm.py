"""The deep Markov model (Krishnan, Shalit, Sontag, "Structured Inference Networks for Nonlinear
State Space Models", AAAI 2017), its "DKS" inference network, with the KVAE's auto-encoder.

Generative model (Sec. 3 of the paper; pyro's examples/dmm is the same model):

    p(z_1 | z_0)     = N(loc(z_0), diag(scale(z_0)^2))      z_0 a learned vector
    p(z_t | z_{t-1}) = N(loc, diag(scale^2))                 GatedTransition
        loc   = (1 - g) * (W z_{t-1} + b) + g * f(z_{t-1}),  g = sigmoid(MLP(z_{t-1})), f an MLP,
        scale = softplus(linear(relu(f(z_{t-1}))))           W initialised to the identity
    p(x_t | z_t)     = decoder(a_t),  a_t = lin_z_to_a(z_t)  the KVAE's decoder, fed a linear map
                                                             of z_t (its code a_t, dim_a)

Inference network ("DKS": a backward RNN and a combiner, Sec. 4):

    a_t = mean of the shared encoder's q(a_t | x_t) (its variance head is unused here)
    h_t = GRU(a_t, h_{t+1}) at an observed frame, h_{t+1} at a missing one, h_{T+1} learned:
          h_t summarises the observed frames t..T (a gap is skipped, not fed)
    q(z_t | z_{t-1}, x) = N(loc, diag(scale^2)) from the Combiner:
          g = (tanh(linear(z_{t-1})) + h_t) / 2,  loc = linear(g),  scale = softplus(linear(g))
    at a missing frame q(z_t | z_{t-1}, x) = p(z_t | z_{t-1}): inference falls back on the
    transition there (so a model trained on full sequences still fills gaps sensibly, and the
    KL term of that step is exactly 0)

Objective (one reparameterised sample z ~ q, the KL of each step in closed form given z_{t-1}):

    elbo = (sum_t m_t log p(x_t | z_t) - sum_t KL(q(z_t | z_{t-1}, x) || p(z_t | z_{t-1})))
           / sum_t m_t

in nats per observed frame (m_t the mask); the loss is -elbo. "log_px" is the first sum per
observed frame, "kl" the second. With anneal_epochs > 0 training weighs the KL term by
c = min(1, 0.01 + epoch / anneal_epochs), set each epoch by epoch_schedule (Krishnan et al.
anneal the KL term of the DKF and the DMM, as does pyro's example; c = 1 is the ELBO).

Imputation ("smoothed"): the posterior mean path z_t = loc of q(z_t | z_{t-1}, x) with z_{t-1}
the previous mean, decoded; each z_t has seen every observed frame from t on through h_t and
the earlier ones through z_{t-1}; a missing frame is the transition's mean from the step before.
Generation: the same pass over the first n_observed frames with every later frame missing,
that is, the inferred z_{n_observed - 1} rolled forward by the transition's means (sample=True:
z drawn from q over the observed frames and from the transition after them).
Codes (the latent probe) are a_t = lin_z_to_a(z_t) on the mean path with every frame observed,
the code the decoder reads; reconstruct decodes them.
"""

from __future__ import annotations

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
class DMMConfig:
    """Model options. Sizes are ours (pyro's defaults are for 88-key music): dim_z as the
    KVAE's, dim_a the KVAE's code size."""

    dim_a: int = 2  # the auto-encoder's code a_t (encoder output, decoder input)
    dim_z: int = 4
    transition_units: int = 64  # hidden units of the gated transition's MLPs
    rnn_units: int = 64  # GRU units of the backward inference RNN (also the combiner's)
    encoder: str = "conv"  # conv | mlp
    likelihood: str = "bernoulli"  # bernoulli | gaussian
    pixel_var: float = 0.1  # Gaussian pixel variance
    conv_precision: str = "bf16"  # bf16 | float32: autocast of the conv layers only
    gap_aware: bool = False  # the backward GRU reads (m_t a_t, m_t) at every frame and the
    # combiner infers a missing frame that has observed frames after it (train with gaps)
    anneal_epochs: int = 0  # epochs over which the KL weight rises from 0.01 to 1 (0: none)

    def validate(self) -> None:
        for name, valid in (("encoder", ("conv", "mlp")),
                            ("likelihood", ("bernoulli", "gaussian"))):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("dim_a", "dim_z", "transition_units", "rnn_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.anneal_epochs < 0:
            raise ValueError("anneal_epochs must be >= 0")
        if not self.pixel_var > 0:
            raise ValueError("pixel_var must be > 0")


def diag_gaussian_kl(loc_q: Tensor, scale_q: Tensor, loc_p: Tensor, scale_p: Tensor) -> Tensor:
    """KL(N(loc_q, diag scale_q^2) || N(loc_p, diag scale_p^2)) over the last axis:
    sum_i log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2.  (..., Z) -> (...)."""
    var_ratio = (scale_q / scale_p) ** 2
    return 0.5 * (var_ratio + ((loc_q - loc_p) / scale_p) ** 2 - 1 - torch.log(var_ratio)
                  ).sum(-1)


class GatedTransition(nn.Module):
    """p(z_t | z_{t-1}) = N(loc, diag(scale^2)): a gate between a linear and a nonlinear
    proposal for the mean (Krishnan et al. 2017, Sec. 5; the linear part starts as identity)."""

    def __init__(self, dim_z: int, units: int):
        super().__init__()
        self.lin_gate_z_to_hidden = nn.Linear(dim_z, units)
        self.lin_gate_hidden_to_z = nn.Linear(units, dim_z)
        self.lin_proposed_z_to_hidden = nn.Linear(dim_z, units)
        self.lin_proposed_hidden_to_z = nn.Linear(units, dim_z)
        self.lin_proposed_to_scale = nn.Linear(dim_z, dim_z)
        self.lin_z_to_loc = nn.Linear(dim_z, dim_z)
        with torch.no_grad():
            self.lin_z_to_loc.weight.copy_(torch.eye(dim_z))
            self.lin_z_to_loc.bias.zero_()

    def forward(self, z_prev: Tensor) -> tuple[Tensor, Tensor]:
        """z_prev (B, Z) -> loc, scale (B, Z)."""
        gate = torch.sigmoid(self.lin_gate_hidden_to_z(torch.relu(self.lin_gate_z_to_hidden(
            z_prev))))
        proposed = self.lin_proposed_hidden_to_z(torch.relu(self.lin_proposed_z_to_hidden(
            z_prev)))
        loc = (1 - gate) * self.lin_z_to_loc(z_prev) + gate * proposed
        scale = nn.functional.softplus(self.lin_proposed_to_scale(torch.relu(proposed))) + 1e-4
        return loc, scale


class Combiner(nn.Module):
    """q(z_t | z_{t-1}, h_t) = N(loc, diag(scale^2)), h_t the backward RNN's state: the
    average of tanh(linear(z_{t-1})) and h_t, then linear heads."""

    def __init__(self, dim_z: int, units: int):
        super().__init__()
        self.lin_z_to_hidden = nn.Linear(dim_z, units)
        self.lin_hidden_to_loc = nn.Linear(units, dim_z)
        self.lin_hidden_to_scale = nn.Linear(units, dim_z)

    def forward(self, z_prev: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """z_prev (B, Z), h (B, units) -> loc, scale (B, Z)."""
        combined = 0.5 * (torch.tanh(self.lin_z_to_hidden(z_prev)) + h)
        return (self.lin_hidden_to_loc(combined),
                nn.functional.softplus(self.lin_hidden_to_scale(combined)) + 1e-4)


class DMM(LatentEmission, SequenceCodec, nn.Module):
    """x (B, T, H, W) in [0, 1]; mask (B, T) in {0, 1} (1 = observed). Built as
    DMM(image_size=H, **options), options the fields of DMMConfig."""

    Config = DMMConfig

    def __init__(self, image_size: int, **options):
        super().__init__()
        config = DMMConfig(**options)
        config.validate()
        self.config = c = config
        self._set_precision(c.conv_precision)
        self.encoder, self.decoder = build_autoencoder(c.encoder, image_size, c.dim_a, 0.03)
        for net in (self.encoder, self.decoder):
            net.to(memory_format=torch.channels_last)
        self.lin_z_to_a = nn.Linear(c.dim_z, c.dim_a)
        self.transition = GatedTransition(c.dim_z, c.transition_units)
        self.combiner = Combiner(c.dim_z, c.rnn_units)
        self.rnn = nn.GRUCell(c.dim_a + c.gap_aware, c.rnn_units)
        self.z_0 = nn.Parameter(torch.zeros(c.dim_z))
        self.h_0 = nn.Parameter(torch.zeros(c.rnn_units))  # h_{T+1} of the backward RNN

    def epoch_schedule(self, epoch: int) -> EpochSchedule:
        """The KL weight c = min(1, 0.01 + epoch / anneal_epochs) (epochs from 0; none: 1)."""
        n = self.config.anneal_epochs
        return EpochSchedule(loss_kwargs={"annealing": annealing_weight(epoch, n)} if n else {})

    # ---- pieces (each a function of its inputs; tests replace them with linear ones) -------

    def backward_states(self, a: Tensor, mask: Tensor) -> Tensor:
        """Codes a (B, T, A) -> h (B, T, units): h_t = GRU(a_t, h_{t+1}) where frame t is
        observed, h_{t+1} where it is missing."""
        h = self.h_0.expand(a.shape[0], -1)
        states = []
        if self.config.gap_aware:  # h_t knows whether x_t is there
            m = mask.to(a.dtype)[..., None]
            a = torch.cat([a * m, m], -1)
        for t in reversed(range(a.shape[1])):
            h = self.rnn(a[:, t], h) if self.config.gap_aware else \
                torch.where(mask[:, t, None] > 0.5, self.rnn(a[:, t], h), h)
            states.append(h)
        return torch.stack(states[::-1], 1)

    def infer(self, a: Tensor, mask: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """The path z (B, T, Z) drawn from q(z | x) with standard normal noise eps (B, T, Z)
        (zeros: the mean path), and the KL term of each step (B, T) given z_{t-1}."""
        h = self.backward_states(a, mask)
        # where q is the combiner's: observed frames, and with gap_aware every frame that has an
        # observed frame at or after it
        inferred = mask.flip(1).cummax(1).values.flip(1) if self.config.gap_aware else mask
        z = self.z_0.to(eps.dtype).expand(a.shape[0], -1)
        zs, kls = [], []
        for t in range(a.shape[1]):
            p_loc, p_scale = self.transition(z)
            q_loc, q_scale = self.combiner(z, h[:, t])
            seen = inferred[:, t, None] > 0.5
            q_loc, q_scale = torch.where(seen, q_loc, p_loc), torch.where(seen, q_scale, p_scale)
            kls.append(diag_gaussian_kl(q_loc, q_scale, p_loc, p_scale))
            z = q_loc + q_scale * eps[:, t]
            zs.append(z)
        return torch.stack(zs, 1), torch.stack(kls, 1)

    def sequence_terms(self, x: Tensor, mask: Tensor, generator: torch.Generator | None = None
                       ) -> tuple[Tensor, Tensor]:
        """One-sample estimates per sequence: sum_t m_t log p(x_t | z_t) and sum_t KL_t, (B,)
        each (their difference is the sequence's ELBO)."""
        a, _ = self.encode(x)
        eps = torch.randn((*a.shape[:2], self.config.dim_z), dtype=a.dtype, device=a.device,
                          generator=generator)
        z, kl = self.infer(a, mask, eps)
        return (self.emission_log_prob(x, z) * mask).sum(1), kl.sum(1)

    def _mean_path(self, x: Tensor, mask: Tensor) -> Tensor:
        """z (B, T, Z): each z_t the mean of q(z_t | z_{t-1}, x), z_{t-1} the previous mean."""
        a, _ = self.encode(x)
        return self.infer(a, mask, a.new_zeros(*a.shape[:2], self.config.dim_z))[0]

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """x (B, T, H, W) -> (B, T, A): a_t = lin_z_to_a(z_t) of the mean path with every frame
        observed, the code the decoder reads (the latent probe reads it)."""
        return self.lin_z_to_a(self._mean_path(x, torch.ones(x.shape[:2], device=x.device)))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x (B, T, H, W) -> the mean path with every frame observed, decoded, in [0, 1]."""
        z = self._mean_path(x, torch.ones(x.shape[:2], device=x.device))
        return frame_mean(self.emission_logits(z), self.config.likelihood)

    # ---- the model protocol ---------------------------------------------------------------

    def loss(self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None,
             annealing: float | Tensor = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """The negative ELBO per observed frame with its KL term weighed by annealing (the
        ELBO itself at 1), and the logs "elbo" (nats per observed frame, never annealed),
        "log_px", "kl" (per observed frame), detached 0-d tensors."""
        check_inputs(x, mask)
        log_px, kl = self.sequence_terms(x, mask, generator)
        frames = mask.sum().clamp_min(1.0)
        log_px, kl = log_px.sum() / frames, kl.sum() / frames
        elbo = log_px - kl
        return -(log_px - annealing * kl), {"elbo": elbo.detach(), "log_px": log_px.detach(),
                                            "kl": kl.detach()}

    @torch.no_grad()
    def impute(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """{"smoothed": (B, T, H, W)}: the posterior mean path decoded (see the module doc)."""
        check_inputs(x, mask)
        z = self._mean_path(x, mask)
        return {"smoothed": frame_mean(self.emission_logits(z), self.config.likelihood)}

    @torch.no_grad()
    def generate(self, x: Tensor, n_observed: int, steps: int, *, sample: bool = False,
                 generator: torch.Generator | None = None) -> Tensor:
        """Frames n_observed .. n_observed + steps - 1 (B, steps, H, W) given the first
        n_observed frames of x: inference over those, then the transition's means (sample:
        z drawn from q, then from the transition)."""
        if not 1 <= n_observed <= x.shape[1]:
            raise ValueError(f"n_observed must be in [1, {x.shape[1]}], got {n_observed}")
        a, _ = self.encode(x[:, :n_observed])
        B, total = a.shape[0], n_observed + steps
        a = torch.cat([a, a.new_zeros(B, steps, a.shape[-1])], 1)  # (B, total, A)
        mask = torch.zeros(B, total, device=a.device)
        mask[:, :n_observed] = 1
        shape = (B, total, self.config.dim_z)
        eps = torch.randn(shape, dtype=a.dtype, device=a.device, generator=generator) \
            if sample else a.new_zeros(shape)
        z, _ = self.infer(a, mask, eps)
        return frame_mean(self.emission_logits(z[:, n_observed:]), self.config.likelihood)

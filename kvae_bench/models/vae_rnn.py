"""VAE-RNN, the paper's second baseline: the KVAE's VAE with an LSTM prior on the codes,

    q(a_t | x_t) = N(enc(x_t)),  p(a_t | a_{<t}) = N(mean_t, diag(var_t)) from the LSTM,
    objective per observed frame: scale_reconstruction log p(x|a) - log q(a|x) + log p(a)

with one reparameterised sample of a. At a missing step the LSTM is fed its predicted mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from kvae_bench.models.code_rnn import CodeRNN, CodeRNNConfig
from kvae_bench.models.nets import frame_log_likelihood


@dataclass(frozen=True)
class VAERNNConfig(CodeRNNConfig):
    noise_emission: float = 0.03  # cap of the encoder's variance, as the KVAE's
    scale_reconstruction: float = 0.3  # weight of log p(x|a) in training, as the KVAE's


class VAERNN(CodeRNN):
    Config = VAERNNConfig

    def loss(self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.config
        mean, var = self.encode(x)
        eps = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
        a = mean + var.sqrt() * eps
        frames = mask.sum().clamp_min(1.0)
        log_px = (frame_log_likelihood(x, self.decode(a), c.likelihood, c.pixel_var)
                  * mask).sum() / frames
        log_qa = ((-0.5 * (torch.log(2 * math.pi * var) + eps**2)).sum(-1) * mask).sum() / frames
        prior_mean, prior_var, _ = self.predict(a, mask)
        log_pa = (-0.5 * (torch.log(2 * math.pi * prior_var)
                          + (a - prior_mean) ** 2 / prior_var)).sum(-1)
        log_pa = (log_pa * mask).sum() / frames
        elbo = log_px - log_qa + log_pa
        loss = -(c.scale_reconstruction * log_px - log_qa + log_pa)
        return loss, {"elbo": elbo.detach(), "log_px": log_px.detach(), "log_qa": log_qa.detach(),
                      "log_pa": log_pa.detach()}



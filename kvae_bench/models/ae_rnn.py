"""AE-RNN, the paper's first baseline: a deterministic auto-encoder a_t = enc(x_t) with an
LSTM that predicts a_t from a_{<t}. Trained to reconstruct each frame from its code and to
predict it from the LSTM's code (both through the same decoder):

    loss = -(1/observed) sum_t [log p(x_t | a_t) + log p(x_t | a_hat_t)],   t >= 1 for a_hat

The LSTM sees the codes with their gradient stopped: otherwise the prediction term pays the
encoder to make every code the same (perfectly predictable), and training stalls at the
average frame (seen in a quick-profile run: log p(x|a) stuck at -114).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kvae_bench.models.code_rnn import CodeRNN, CodeRNNConfig
from kvae_bench.models.nets import frame_log_likelihood


class AERNN(CodeRNN):
    """Options: CodeRNNConfig (deterministic codes: no encoder variance, no KL weight)."""

    Config = CodeRNNConfig

    def loss(self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.config
        a, _ = self.encode(x)
        pred, _, _ = self.predict(a.detach(), mask)
        frames = mask.sum().clamp_min(1.0)
        both = self.decode(torch.cat([a, pred[:, 1:]], 1))  # one decoder pass for both
        T = x.shape[1]
        log_px = (frame_log_likelihood(x, both[:, :T], c.likelihood, c.pixel_var)
                  * mask).sum() / frames
        pred_mask = mask[:, 1:]
        log_px_pred = (frame_log_likelihood(x[:, 1:], both[:, T:], c.likelihood, c.pixel_var)
                       * pred_mask).sum() / pred_mask.sum().clamp_min(1.0)
        loss = -(log_px + log_px_pred)
        return loss, {"log_px": log_px.detach(), "log_px_pred": log_px_pred.detach()}



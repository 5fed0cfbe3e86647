"""What AE-RNN and VAE-RNN share: the KVAE's auto-encoder, and an LSTM over the codes a_t that
predicts a_t from a_{<t} (it sees a_{t-1}; a_{-1} = 0). At a missing step the LSTM is fed its
own prediction, so imputation and generation are one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kvae_bench import masks
from kvae_bench.models.nets import SequenceCodec, build_autoencoder, frame_mean


@dataclass(frozen=True)
class CodeRNNConfig:
    """Options both baselines use (AE-RNN has exactly these)."""

    dim_a: int = 2
    units: int = 64  # LSTM units
    encoder: str = "conv"  # conv | mlp
    likelihood: str = "bernoulli"  # bernoulli | gaussian
    pixel_var: float = 0.1  # Gaussian pixel variance
    conv_precision: str = "bf16"  # bf16 | float32: autocast of the conv layers only

    def validate(self) -> None:
        if self.encoder not in ("conv", "mlp"):
            raise ValueError(f"encoder must be one of conv, mlp, got {self.encoder!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be bernoulli or gaussian, got {self.likelihood!r}")
        if self.dim_a < 1 or self.units < 1:
            raise ValueError("dim_a and units must be >= 1")


class CodeRNN(SequenceCodec, nn.Module):
    """x (B, T, H, W) in [0, 1]; mask (B, T) in {0, 1}. Subclasses define `loss`. Built as
    Class(image_size=H, **options), options the fields of the subclass's Config."""

    Config = CodeRNNConfig

    def __init__(self, image_size: int, **options):
        super().__init__()
        config = self.Config(**options)
        config.validate()
        self.config = config
        self._set_precision(config.conv_precision)
        self.encoder, self.decoder = build_autoencoder(config.encoder, image_size, config.dim_a,
                                                       getattr(config, "noise_emission", 0.03))
        for net in (self.encoder, self.decoder):
            net.to(memory_format=torch.channels_last)
        self.lstm = nn.LSTM(config.dim_a, config.units, batch_first=True)
        self.lin_hidden_to_mean = nn.Linear(config.units, config.dim_a)
        self.lin_hidden_to_var = nn.Linear(config.units, config.dim_a)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        rnn = [*self.lstm.parameters(), *self.lin_hidden_to_mean.parameters(),
               *self.lin_hidden_to_var.parameters()]
        return {"vae": [*self.encoder.parameters(), *self.decoder.parameters()], "rnn": rnn}

    def _head(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """LSTM output -> mean and variance of the predicted code."""
        return self.lin_hidden_to_mean(h), nn.functional.softplus(self.lin_hidden_to_var(h)) + 1e-4

    def predict(self, a: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Predictions of a_t from a_{<t} (mean, var (B, T, A)) and the codes the model uses:
        a_t where observed, its own predicted mean where missing (fed back to the LSTM)."""
        if masks.all_observed(mask):
            prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
            h, _ = self.lstm(prev)
            mean, var = self._head(h)
            return mean, var, a
        prev, state = torch.zeros_like(a[:, :1]), None
        means, vars_, used = [], [], []
        for t in range(a.shape[1]):
            h, state = self.lstm(prev, state)
            m, v = self._head(h[:, 0])
            u = torch.where(mask[:, t, None] > 0.5, a[:, t], m)
            means.append(m)
            vars_.append(v)
            used.append(u)
            prev = u[:, None]
        return torch.stack(means, 1), torch.stack(vars_, 1), torch.stack(used, 1)

    @torch.no_grad()
    def impute(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """{"imputed": (B, T, H, W)}: observed frames reconstructed, missing ones decoded from
        the fed-back predictions."""
        a, _ = self.encode(x)
        _, _, used = self.predict(a, mask)
        return {"imputed": frame_mean(self.decode(used), self.config.likelihood)}

    @torch.no_grad()
    def generate(self, x: Tensor, n_observed: int, steps: int, *, sample: bool = False,
                 generator: torch.Generator | None = None) -> Tensor:
        """Frames n_observed .. n_observed + steps - 1 from the first n_observed frames:
        the predicted mean codes fed back (sample: draws from the predicted Gaussian)."""
        if not 1 <= n_observed <= x.shape[1]:
            raise ValueError(f"n_observed must be in [1, {x.shape[1]}], got {n_observed}")
        a, _ = self.encode(x[:, :n_observed])
        prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
        _, state = self.lstm(prev)
        code, codes = a[:, -1:], []
        for _ in range(steps):
            h, state = self.lstm(code, state)
            m, v = self._head(h)
            if sample:
                m = m + v.sqrt() * torch.randn(m.shape, generator=generator, device=m.device)
            codes.append(m)
            code = m
        return frame_mean(self.decode(torch.cat(codes, 1)), self.config.likelihood)

"""The model protocol: what the benchmark needs of a model, built in or from outside.

For x (B, T, H, W) float in [0, 1] and mask (B, T) in {0, 1} (1 = observed):

Core (required):
    loss(x, mask) -> (loss, logs)          a scalar to minimise and a dict of floats (or 0-d
                                           tensors, which keep a GPU step free of host reads:
                                           see kvae_bench.graphstep) to log; evaluated with
                                           every frame observed, the logs are the test ELBO
                                           terms (e.g. "elbo", "log_px")
    impute(x, mask) -> {method: (B, T, H, W) probabilities}
    generate(x, n_observed, steps) -> (B, steps, H, W) probabilities of the frames after the
                                      first n_observed

Optional (a default applies where a model has none):
    loss(..., generator=torch.Generator)   noise drawn from it (a run is then bit-repeatable)
    controls=(B, T, U) to loss, impute,    the data set's controls (u_t acts between frames t
      generate, codes, reconstruct         and t + 1; generate gets those of all n_observed +
                                           steps frames), given where the data has them and
                                           the method takes the keyword; others never see them
    epoch_schedule(epoch) -> EpochSchedule which parameters stay frozen in that epoch and
                                           extra keyword arguments to loss; default: none
    codes(x) -> (B, T, A)                  per-frame codes: the linear position probe reads
                                           them; without, the probe is skipped (and says so)
    reconstruct(x) -> (B, T, H, W)         frames from their own codes: reconstruction Hamming
    Config                                 a frozen dataclass of the model's options (with
                                           validate()); without, options come from the
                                           constructor's keyword arguments and their defaults

A model is constructed as Class(image_size=H, **options). It is an nn.Module (its
parameters are trained with Adam by the one training loop; `train()`/`eval()` switch modes).
Precision and any other choice belongs to the options, given at construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

CORE = ("loss", "impute", "generate")


@runtime_checkable
class BenchmarkModel(Protocol):
    def loss(self, x, mask): ...

    def impute(self, x, mask): ...

    def generate(self, x, n_observed: int, steps: int): ...


@dataclass(frozen=True)
class EpochSchedule:
    """What one epoch trains: parameters whose gradients are dropped, and keyword arguments
    for loss (e.g. the KVAE's vae_only)."""

    frozen: list = field(default_factory=list)
    loss_kwargs: dict = field(default_factory=dict)


def missing_methods(cls: type) -> list[str]:
    """The core methods that cls lacks (not callable attributes)."""
    return [name for name in CORE if not callable(getattr(cls, name, None))]


def epoch_schedule(model, epoch: int) -> EpochSchedule:
    fn = getattr(model, "epoch_schedule", None)
    return fn(epoch) if callable(fn) else EpochSchedule()

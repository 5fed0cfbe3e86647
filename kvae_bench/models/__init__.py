"""Models behind one protocol, for x (B, T, H, W) in [0, 1] and mask (B, T) in {0, 1}:

    loss(x, mask, generator=None, vae_only=False) -> (loss, logs)
    impute(x, mask) -> {method: (B, T, H, W)}
    generate(x, n_observed, steps) -> (B, steps, H, W)
    param_groups() -> {"vae": [...], ...}: the training schedule freezes "lgssm" and
        "dynamics" where a model has them (KVAE); other groups always train

MODELS: name -> (model class, config dataclass); build(name, config dict, image_size).
"""

from __future__ import annotations

import dataclasses

from kvae_bench.models.ae_rnn import AERNN, AERNNConfig
from kvae_bench.models.kvae import KVAE, KVAEConfig
from kvae_bench.models.vae_rnn import VAERNN, VAERNNConfig

MODELS: dict[str, tuple[type, type]] = {
    "kvae": (KVAE, KVAEConfig),
    "ae_rnn": (AERNN, AERNNConfig),
    "vae_rnn": (VAERNN, VAERNNConfig),
}


def model_config(name: str, values: dict | None = None):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    cls = MODELS[name][1]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values or {}) - fields
    if unknown:
        raise ValueError(f"unknown {name} option(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(fields))}")
    config = cls(**(values or {}))
    config.validate()
    return config


def build(name: str, config, image_size: int):
    return MODELS[name][0](config, image_size)

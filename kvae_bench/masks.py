"""Observation masks of the benchmark protocol (paper, Figure 3); pure numpy, deterministic.

A mask is (N, T) float32 in {0, 1}, 1 = observed. The first t_init frames are always observed.
    random(p):   each later frame is dropped with probability p
    planning(k): frames t_init .. t_init + k - 1 are dropped, the rest observed
Masks depend only on (seed, protocol, level) and the shape, so every model is scored on
identical masks; `fingerprint` summarises a set of them for the results.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib

import numpy as np

T_INIT = 4
RANDOM_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PLANNING_LEVELS = (1, 3, 5, 7, 9, 11, 13, 15)
PROTOCOLS = {"random": RANDOM_LEVELS, "planning": PLANNING_LEVELS}
_PROTOCOL_IDS = {"random": 1, "planning": 2}
_FULL_PROMISED = contextvars.ContextVar("full_masks_promised", default=False)


@contextlib.contextmanager
def full_masks_promised():
    """Inside: every mask a model is given is all ones (the caller made them so). Models ask
    `all_observed(mask)` to choose their one-pass path; this lets them answer without reading
    the mask back from the GPU, which a CUDA graph capture forbids."""
    token = _FULL_PROMISED.set(True)
    try:
        yield
    finally:
        _FULL_PROMISED.reset(token)


def all_observed(mask) -> bool:
    """Whether a (B, T) torch mask observes every frame (see full_masks_promised)."""
    return _FULL_PROMISED.get() or bool((mask > 0.5).all())


def random_mask(n: int, steps: int, p: float, seed: int = 0, t_init: int = T_INIT) -> np.ndarray:
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    rng = np.random.default_rng([seed, _PROTOCOL_IDS["random"], round(p * 1000)])
    mask = (rng.random((n, steps)) >= p).astype(np.float32)
    mask[:, :t_init] = 1.0
    return mask


def planning_mask(n: int, steps: int, k: int, t_init: int = T_INIT) -> np.ndarray:
    if not 0 <= k <= steps - t_init:
        raise ValueError(f"k must be in [0, {steps - t_init}], got {k}")
    mask = np.ones((n, steps), dtype=np.float32)
    mask[:, t_init:t_init + k] = 0.0
    return mask


def make_mask(protocol: str, level, n: int, steps: int, seed: int = 0) -> np.ndarray:
    if protocol == "random":
        return random_mask(n, steps, float(level), seed)
    if protocol == "planning":
        return planning_mask(n, steps, int(level))
    raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def levels(protocol: str, steps: int) -> tuple:
    """The protocol's levels that fit sequences of `steps` frames."""
    if protocol == "planning":
        return tuple(k for k in PLANNING_LEVELS if k <= steps - T_INIT)
    return PROTOCOLS[protocol]


def fingerprint(n: int, steps: int, seed: int = 0) -> str:
    """sha256 over every mask of both protocols for a test set of n sequences."""
    h = hashlib.sha256()
    for protocol in PROTOCOLS:
        for level in levels(protocol, steps):
            h.update(make_mask(protocol, level, n, steps, seed).tobytes())
    return h.hexdigest()

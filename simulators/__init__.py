"""Physics simulators that render 32 x 32 videos: numpy, pymunk and pygame, never torch.

    ENVS: name -> (Simulator class, params dataclass)
    make(name, params) -> Simulator
    scoring(name, size) -> Scoring: what the benchmark needs to know of an env's videos
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.base import SimParams, Simulator, make_params, rollout
from simulators.box import Box, BoxParams
from simulators.gravity import Gravity, GravityParams
from simulators.pendulum import Pendulum, PendulumParams
from simulators.polygon import BallInPolygon, PolygonParams
from simulators.pong import Pong, PongParams

# Bump when the same (env, params, seed) would give different frames or states.
# 2: pong's roof and floor on the frame's edge rows (were one row in); polygon's and pong's
#    defaults as the 2017 frames show them (polygon right way up, 7-row paddles); polygon
#    vertices scaled to other sizes by (size - 1)/31 (was size/32).
GENERATOR_VERSION = "2"

DEFAULT_ENV = "box"  # what `generate` and `benchmark` simulate when no --env is given
ENVS: dict[str, tuple[type, type]] = {
    "box": (Box, BoxParams),
    "gravity": (Gravity, GravityParams),
    "polygon": (BallInPolygon, PolygonParams),
    "pendulum": (Pendulum, PendulumParams),
    "pong": (Pong, PongParams),
}


def env_params(name: str, overrides: dict | None = None) -> SimParams:
    """The validated params of env `name` with overrides (values or command-line strings)."""
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; valid: {', '.join(ENVS)}")
    return make_params(ENVS[name][1], overrides or {})


def make(name: str, params: SimParams | dict | None = None) -> Simulator:
    """A simulator for env `name`; params is a params object or a dict of overrides."""
    if not isinstance(params, SimParams):
        params = env_params(name, params)
    elif type(params) is not ENVS[name][1]:
        raise ValueError(f"env {name} needs {ENVS[name][1].__name__}, got {type(params).__name__}")
    else:
        params.validate()
    return ENVS[name][0](params)


@dataclass(frozen=True)
class Scoring:
    """An env's answers to the benchmark: which state columns give the tracked object's
    position, where in a frame it can be drawn, and the name of the trivial predictor that
    draws the static scene (e.g. "walls"; "empty" where nothing is static)."""

    position_columns: tuple[str, str]
    object_region: np.ndarray  # (H, W) bool: pixels where only the tracked object is drawn
    trivial: str


def scoring(name: str, size: int) -> Scoring:
    """Scoring of env `name` for frames of size x size (see each Simulator's class attributes
    position_columns, trivial_predictor and object_region)."""
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; valid: {', '.join(ENVS)}")
    cls = ENVS[name][0]
    return Scoring(tuple(cls.position_columns), cls.object_region(size), cls.trivial_predictor)


__all__ = ["DEFAULT_ENV", "ENVS", "GENERATOR_VERSION", "Scoring", "SimParams", "Simulator",
           "env_params", "make", "rollout", "scoring"]

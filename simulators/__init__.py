"""Physics simulators that render 32 x 32 videos: numpy, pymunk and pygame, never torch.

    ENVS: name -> (Simulator class, params dataclass)
    make(name, params) -> Simulator
"""

from __future__ import annotations

from simulators.base import SimParams, Simulator, make_params, rollout
from simulators.box import Box, BoxParams
from simulators.gravity import Gravity, GravityParams
from simulators.pendulum import Pendulum, PendulumParams
from simulators.polygon import BallInPolygon, PolygonParams
from simulators.pong import Pong, PongParams

# Bump when the same (env, params, seed) would give different frames or states.
GENERATOR_VERSION = "1"

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
    return ENVS[name][0](params)


__all__ = ["ENVS", "GENERATOR_VERSION", "SimParams", "Simulator", "env_params", "make", "rollout"]

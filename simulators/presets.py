"""Presets: data sets that follow another paper's protocol, named `<env>-<preset>` in every
table (`kvae-bench generate --env ENV --preset NAME`).

A preset fixes its parameters (no --param or --size), has its own default sizes (train, val,
test, steps) and its own generator of one sequence: frames (T, H, W) uint8, states (T, S) and
controls (T, U) or None, from the sequence's own random generator, so a file is the same for
any number of workers. Its description and choices go into the file's env_params.

    2017 (box, gravity, polygon, pong)
                      the 2017 KVAE generators' files (simulators/preset2017.py): their
                      walls (box's on rows/cols 2..30), one pymunk step per frame, pymunk's
                      debug_draw look (orientation line, collision marks), every pixel > 0
                      lit; 5000 / 1000.
    dvbf (pendulum)   Karl et al., "Deep Variational Bayes Filters", ICLR 2017, Sec. 5.1: a
                      pendulum with friction under random angular accelerations ("motor
                      babbling"), 15 frames of 16 x 16, 500 train / 500 val / 500 test.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from simulators import preset2017


@dataclass(frozen=True)
class Preset:
    env: str
    name: str
    description: str
    n_train: int
    n_val: int
    n_test: int
    steps: int
    size: int
    columns: tuple[str, ...]
    control_columns: tuple[str, ...]
    params: dict = field(default_factory=dict)  # what the file's env_params records
    sequence: Callable | None = None  # (rng, steps, canvas) -> frames, states, controls

    def env_params(self) -> dict:
        return {"preset": self.name, "description": self.description, **self.params}


# ---- dvbf: the DVBF pendulum ---------------------------------------------------------------

# The paper states m = l = 1, g = 9.81, friction 0.5, a random one-dimensional control each
# step, 15 frames of 16 x 16 and 500 sequences per split; the rest is ours:
DVBF = {
    "mass": 1.0, "length": 1.0, "gravity": 9.81, "friction": 0.5,  # the paper's
    "dt": 0.1,  # seconds between frames (ours): 1.5 s per sequence, 3/4 of a small swing
    "substeps": 10,  # RK4 steps per frame (ours)
    "control_max": 2.0,  # u_t ~ U[-2, 2] rad/s^2, held from frame t to t + 1 (ours)
    "angle_init": "U[-pi, pi)", "angular_velocity_init_max": 1.0,  # omega_0 ~ U[-1, 1] (ours)
    "size": 16, "pixels_per_length": 5.0, "bob_radius": 2,  # the bob only, no rod (ours)
    "equation": "theta'' = -(g/l) sin(theta) - friction/(m l^2) theta' + u",
    "angle": "from straight down, positive toward +x",
}


def _pendulum_acceleration(theta: float, omega: float, u: float) -> float:
    p = DVBF
    return (-(p["gravity"] / p["length"]) * math.sin(theta)
            - p["friction"] / (p["mass"] * p["length"] ** 2) * omega + u)


def _rk4(theta: float, omega: float, u: float, h: float) -> tuple[float, float]:
    k1t, k1w = omega, _pendulum_acceleration(theta, omega, u)
    k2t, k2w = omega + 0.5 * h * k1w, _pendulum_acceleration(theta + 0.5 * h * k1t,
                                                             omega + 0.5 * h * k1w, u)
    k3t, k3w = omega + 0.5 * h * k2w, _pendulum_acceleration(theta + 0.5 * h * k2t,
                                                             omega + 0.5 * h * k2w, u)
    k4t, k4w = omega + h * k3w, _pendulum_acceleration(theta + h * k3t, omega + h * k3w, u)
    return (theta + h / 6 * (k1t + 2 * k2t + 2 * k3t + k4t),
            omega + h / 6 * (k1w + 2 * k2w + 2 * k3w + k4w))


def dvbf_sequence(rng: np.random.Generator, steps: int, canvas):
    """One DVBF pendulum video: frames (T, 16, 16), states (T, 4) = bob x, y (pixels), angle,
    angular velocity; controls (T, 1), u_t acting from frame t to t + 1."""
    p = DVBF
    theta = rng.uniform(-math.pi, math.pi)
    omega = rng.uniform(-p["angular_velocity_init_max"], p["angular_velocity_init_max"])
    controls = rng.uniform(-p["control_max"], p["control_max"], (steps, 1))
    h = p["dt"] / p["substeps"]
    states = np.empty((steps, 4))
    centre, scale = p["size"] / 2, p["pixels_per_length"] * p["length"]
    for t in range(steps):
        states[t] = (centre + scale * math.sin(theta), centre + scale * math.cos(theta),
                     math.atan2(math.sin(theta), math.cos(theta)), omega)
        for _ in range(p["substeps"]):
            theta, omega = _rk4(theta, omega, float(controls[t, 0]), h)
    frames = canvas.video(steps)
    canvas.discs(states[:, :2], p["bob_radius"])
    return frames.copy(), states.astype(np.float32), controls.astype(np.float32)


# ---- 2017: the original KVAE data ----------------------------------------------------------


def _preset_2017(env: str) -> Preset:
    scene = preset2017.SCENES[env]
    return Preset(
        env, "2017", f"the 2017 KVAE {env} data ({preset2017.SOURCES[env]}): one pymunk step "
        "per frame, pymunk 5's debug_draw, every pixel > 0 lit", n_train=5000, n_val=0,
        n_test=1000, steps=20, size=preset2017.SIZE,
        columns=preset2017.PONG_COLUMNS if scene.pong else preset2017.BALL_COLUMNS,
        control_columns=(), params=preset2017.params(env),
        sequence=functools.partial(preset2017.video, scene))


PRESETS: dict[tuple[str, str], Preset] = {
    **{(env, "2017"): _preset_2017(env) for env in preset2017.SCENES},
    ("pendulum", "dvbf"): Preset(
        "pendulum", "dvbf", "the DVBF pendulum (Karl et al., ICLR 2017, Sec. 5.1): friction, "
        "random angular accelerations, 15 frames of 16 x 16", n_train=500, n_val=500,
        n_test=500, steps=15, size=DVBF["size"],
        columns=("x", "y", "angle", "angular_velocity"), control_columns=("u",),
        params=dict(DVBF), sequence=dvbf_sequence),
}


def get(env: str, name: str) -> Preset:
    if (env, name) not in PRESETS:
        valid = ", ".join(f"--env {e} --preset {n}" for e, n in PRESETS) or "none"
        raise ValueError(f"no preset {name!r} for env {env!r}; presets: {valid}")
    return PRESETS[(env, name)]


def describe() -> list[dict]:
    """Every preset as a dict (for `kvae-bench envs`)."""
    return [{k: v for k, v in asdict(p).items() if k != "sequence"} for p in PRESETS.values()]

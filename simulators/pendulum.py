"""A pendulum swinging under gravity from a fixed pivot at the frame centre.

The bob (radius `radius`) hangs on a massless rod of length `length`; pymunk keeps the rod's
length with a pin joint.

The angle is measured from straight down, positive toward +x:
    bob = pivot + length * (sin(angle), cos(angle))      (frame coordinates, +y down)
Initial angle ~ U[-angle_max, angle_max], angular velocity ~ U[-omega_max, omega_max].
The frame shows the bob; `rod_width` > 0 also draws the rod.

The bob stays inside the frame: length + radius leaves a pixel to the frame edge, and validate
bounds the angular speed so that the pin joint stretches the rod by at most half of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulators import chipmunk
from simulators.base import (
    SimParams,
    add_ball,
    format_value,
    new_space,
    speed,
    substeps,
    whole_frame,
)
from simulators.render import Canvas

# chipmunk's default constraint error_bias: a joint keeps (1 - 0.1)^60 of its error per time unit
PIN_JOINT_RATE = -math.log((1 - 0.1) ** 60)  # 6.32 per time unit


@dataclass(frozen=True)
class PendulumParams(SimParams):
    length: float = 10.0  # pivot to bob centre, pixels
    gravity: tuple[float, float] = (0.0, 10.0)
    angle_max: float = 1.5707963267948966  # radians
    omega_max: float = 1.5  # radians per time unit
    rod_width: int = 0  # 0: the rod is not drawn
    # pymunk's integrator is first order: energy wobbles by ~16 max_substep_px % of g * length
    max_substep_px: float = 0.1

    speed_params: ClassVar[tuple[str, ...]] = ("omega_max", "length", "gravity")

    def check_values(self) -> None:
        super().check_values()
        if len(self.gravity) != 2:
            raise ValueError(f"gravity must be 2 numbers x,y, got {format_value(self.gravity)}")
        # the bob stays in the frame with 1 pixel to spare for the rod's stretch (see below)
        hi = self.size / 2 - 1 - self.radius
        if not 1 <= self.length <= hi:
            raise ValueError(f"length must be in [1, size/2 - 1 - radius] = [1, {hi:g}] so the "
                             f"bob stays inside the frame, got {self.length:g}")
        if not 0 <= self.angle_max <= math.pi:
            raise ValueError(f"angle_max must be in [0, pi] radians, got {self.angle_max:g}")
        if not self.omega_max >= 0:
            raise ValueError(f"omega_max must be >= 0, got {self.omega_max:g}")
        hi = 2 * int(self.radius)
        if not 0 <= self.rod_width <= hi:
            raise ValueError(f"rod_width must be in [0, 2 radius] = [0, {hi}] (a wider rod hides "
                             f"the bob), got {self.rod_width}")
        # Each substep moves the bob up to max_substep_px along a tangent, off the circle by
        # max_substep_px^2 / (2 length); the pin joint pulls it back at PIN_JOINT_RATE, so the
        # rod stretches by about omega * max_substep_px / (2 PIN_JOINT_RATE) (measured: at most
        # 0.077 omega * max_substep_px). This bound keeps it under half the spare pixel.
        hi = PIN_JOINT_RATE / self.max_substep_px
        if not self.top_omega() <= hi:
            raise ValueError(
                f"omega_max={self.omega_max:g} with length={self.length:g}, gravity="
                f"{format_value(self.gravity)} gives a top angular speed of {self.top_omega():.3g}"
                f" rad per time unit, at most {hi:.3g} allowed at max_substep_px="
                f"{self.max_substep_px:g} (faster, pymunk's pin joint stretches the rod by more "
                "than half a pixel)")

    def top_omega(self) -> float:
        """Bound on the angular speed: the bob's energy at the top of a swing from angle_max
        with omega_max, all of it kinetic after falling 2 length."""
        return math.sqrt(self.omega_max ** 2 + 4 * math.hypot(*self.gravity) / self.length)

    def top_speed(self) -> float:
        """Pendulum.step's bound: the bob's top speed plus one frame of gravity."""
        return self.length * self.top_omega() + math.hypot(*self.gravity) * self.dt


class Pendulum:
    """states: x, y (bob centre), angle, angular_velocity."""

    columns = ("x", "y", "angle", "angular_velocity")
    position_columns = ("x", "y")  # the bob
    trivial_predictor = "empty"  # nothing is static
    object_region = staticmethod(whole_frame)  # with rod_width > 0 the rod joins the bob

    def __init__(self, params: PendulumParams):
        self.params = params
        self.pivot = (params.size / 2.0, params.size / 2.0)
        self.space = None
        self.bob = None

    def reset(self, rng: np.random.Generator) -> None:
        p = self.params
        angle = rng.uniform(-p.angle_max, p.angle_max)
        omega = rng.uniform(-p.omega_max, p.omega_max)
        s, c = math.sin(angle), math.cos(angle)
        position = (self.pivot[0] + p.length * s, self.pivot[1] + p.length * c)
        velocity = (p.length * omega * c, -p.length * omega * s)
        self.space = new_space(p.gravity)
        self.bob = add_ball(self.space, position, velocity, p.radius)
        self.space.add_pin_joint(self.space.static_body, self.bob, self.pivot, (0, 0))

    def state(self) -> tuple[float, ...]:
        xy, v = chipmunk.position(self.bob), chipmunk.velocity(self.bob)
        x, y, vx, vy = xy.x, xy.y, v.x, v.y
        dx, dy = x - self.pivot[0], y - self.pivot[1]
        angle = math.atan2(dx, dy)
        omega = (dy * vx - dx * vy) / (dx * dx + dy * dy)
        return (x, y, angle, omega)

    def draw_static(self, canvas: Canvas) -> None:
        """Nothing is static: the pivot is not drawn."""

    def draw(self, canvas: Canvas, states: np.ndarray) -> None:
        if self.params.rod_width:
            pivot = (math.floor(self.pivot[0]), math.floor(self.pivot[1]))
            for t, (x, y) in enumerate(states[:, :2].tolist()):
                canvas.select(t)
                canvas.line(pivot, (math.floor(x), math.floor(y)), self.params.rod_width)
        canvas.discs(states[:, :2], self.params.radius)

    def step(self) -> None:
        p = self.params
        bound = speed(chipmunk.velocity(self.bob)) + math.hypot(*p.gravity) * p.dt
        n = substeps(bound, p.dt, p.max_substep_px)
        space, h = self.space.ptr, p.dt / n
        for _ in range(n):
            chipmunk.step(space, h)

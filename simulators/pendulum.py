"""A pendulum swinging under gravity from a fixed pivot at the frame centre.

The bob (radius `radius`) hangs on a massless rod of length `length`; pymunk keeps the rod's
length with a pin joint.

The angle is measured from straight down, positive toward +x:
    bob = pivot + length * (sin(angle), cos(angle))      (frame coordinates, +y down)
Initial angle ~ U[-angle_max, angle_max], angular velocity ~ U[-omega_max, omega_max].
The frame shows the bob; `rod_width` > 0 also draws the rod.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymunk

from simulators.base import SimParams, add_ball, new_space, substeps
from simulators.render import Canvas


@dataclass(frozen=True)
class PendulumParams(SimParams):
    length: float = 10.0  # pivot to bob centre, pixels
    gravity: tuple[float, float] = (0.0, 10.0)
    angle_max: float = 1.5707963267948966  # radians
    omega_max: float = 1.5  # radians per time unit
    rod_width: int = 0  # 0: the rod is not drawn
    # pymunk's integrator is first order: energy wobbles by ~16 max_substep_px % of g * length
    max_substep_px: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not 0 < self.length + self.radius <= self.size / 2 - 1:
            raise ValueError(f"length + radius must fit in half the frame, got {self.length}")
        if self.angle_max < 0 or self.omega_max < 0:
            raise ValueError("angle_max and omega_max must be >= 0")
        if self.rod_width < 0:
            raise ValueError(f"rod_width must be >= 0, got {self.rod_width}")


class Pendulum:
    """states: x, y (bob centre), angle, angular_velocity."""

    columns = ("x", "y", "angle", "angular_velocity")

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
        self.space.add(pymunk.PinJoint(self.space.static_body, self.bob, self.pivot, (0, 0)))

    def state(self) -> tuple[float, ...]:
        x, y = self.bob.position
        vx, vy = self.bob.velocity
        dx, dy = x - self.pivot[0], y - self.pivot[1]
        angle = math.atan2(dx, dy)
        omega = (dy * vx - dx * vy) / (dx * dx + dy * dy)
        return (x, y, angle, omega)

    def draw_static(self, canvas: Canvas) -> None:
        """Nothing is static: the pivot is not drawn."""

    def draw(self, canvas: Canvas) -> None:
        x, y = self.bob.position
        if self.params.rod_width:
            pivot = (math.floor(self.pivot[0]), math.floor(self.pivot[1]))
            canvas.line(pivot, (math.floor(x), math.floor(y)), self.params.rod_width)
        canvas.disc(x, y, self.params.radius)

    def step(self) -> None:
        p = self.params
        bound = self.bob.velocity.length + math.hypot(*p.gravity) * p.dt
        n = substeps(bound, p.dt, p.max_substep_px)
        for _ in range(n):
            self.space.step(p.dt / n)

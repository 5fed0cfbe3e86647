"""Pong, after the 2017 pong.py: a ball between roof, floor and two paddles that follow it.

Roof and floor are 1-pixel lines on the frame's top and bottom rows, the paddles 2 x 7 pixels
at the left and right edges, as the 2017 frames show them (generator version 1 had roof and
floor one row further in and 6-row paddles); the paddles follow the ball's height at up to
`paddle_speed` pixels per time unit.

Unlike 2017, the paddles start level with the ball and are at least as fast as it (validate
requires paddle_speed >= speed_max), so they stay level with it and the ball never leaves the
field; the collisions are perfectly elastic (see base.check_elasticity).
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
    add_walls,
    check_elasticity,
    check_start_and_speeds,
    new_space,
    random_velocity,
    speed,
    substeps,
    wall_segments,
)
from simulators.render import Canvas


@dataclass(frozen=True)
class PongParams(SimParams):
    start_std: float = 3.0  # start ~ N(centre, start_std^2 I), clipped inside
    speed_min: float = 10.0
    speed_max: float = 10.0
    paddle_length: float = 7.0  # paddle's straight part, drawn 2 pixels wide and this many rows
    paddle_speed: float = 30.0
    elasticity: float = 1.0

    speed_params: ClassVar[tuple[str, ...]] = ("speed_max",)

    def check_values(self) -> None:
        super().check_values()
        check_start_and_speeds(self.start_std, self.speed_min, self.speed_max)
        hi = self.size - 4  # roof and floor faces are size - 2 apart: room to move 2
        if not 2 <= self.paddle_length <= hi:
            raise ValueError(f"paddle_length must be in [2, size - 4] = [2, {hi}], "
                             f"got {self.paddle_length:g}")
        # A paddle at least as fast as the ball's vertical speed stays level with it and meets
        # it face on; a slower one lags, the ball passes it or its round end kicks it faster.
        if not self.paddle_speed >= self.speed_max:
            raise ValueError(f"paddle_speed must be at least speed_max = {self.speed_max:g} "
                             "(slower paddles let the ball out of the field), "
                             f"got {self.paddle_speed:g}")
        check_elasticity(self.elasticity)

    def top_speed(self) -> float:
        """The ball keeps its speed (it meets the paddles face on) and a paddle moves at most
        as fast as the ball: Pong.step's bound."""
        return 2 * self.speed_max


class Pong:
    """states: x, y, vx, vy (ball), left_paddle_y, right_paddle_y (paddle centres)."""

    columns = ("x", "y", "vx", "vy", "left_paddle_y", "right_paddle_y")
    position_columns = ("x", "y")  # the ball
    trivial_predictor = "walls"  # roof and floor

    @staticmethod
    def object_region(size: int) -> np.ndarray:
        """Every column but the paddles' (0-1 and size-2 - size-1): the ball bounces off the
        paddles' inner faces at x = 2 and size - 2, so it is never drawn there."""
        region = np.zeros((size, size), dtype=bool)
        region[:, 2:size - 2] = True
        return region

    def __init__(self, params: PongParams):
        self.params = params
        size = params.size
        self.top, self.bottom = 1.0, size - 1.0  # faces of roof (row 0) and floor (row size-1)
        self.left, self.right = 2.0, size - 2.0  # faces of the paddles
        half = params.paddle_length / 2
        self.paddle_range = (self.top + half, self.bottom - half)
        self.paddle_x = (1.0, size - 1.0)  # paddle centres, one pixel inside the frame edge
        self.space = None
        self.ball = None
        self.paddles = ()

    def _add_paddle(self, x: float, y: float):
        half = self.params.paddle_length / 2
        return self.space.add_kinematic_segment((x, y), (0, -half), (0, half), 1.0,
                                                self.params.elasticity, 0.0)

    def reset(self, rng: np.random.Generator) -> None:
        p = self.params
        self.space = new_space()
        size = p.size
        add_walls(self.space, wall_segments([(0, 0), (size - 1, 0)]), p.elasticity)  # roof
        add_walls(self.space, wall_segments([(0, size - 1), (size - 1, size - 1)]),
                  p.elasticity)  # floor
        lo = np.array([self.left, self.top]) + p.radius
        hi = np.array([self.right, self.bottom]) - p.radius
        xy = np.clip(size / 2.0 + p.start_std * rng.standard_normal(2), lo, hi)
        velocity = random_velocity(rng, (p.speed_min, p.speed_max))
        self.ball = add_ball(self.space, xy, velocity, p.radius, p.elasticity)
        y0 = float(np.clip(xy[1], *self.paddle_range))
        self.paddles = tuple(self._add_paddle(x, y0) for x in self.paddle_x)

    def state(self) -> tuple[float, ...]:
        xy, v = chipmunk.position(self.ball), chipmunk.velocity(self.ball)
        return (xy.x, xy.y, v.x, v.y, chipmunk.position(self.paddles[0]).y,
                chipmunk.position(self.paddles[1]).y)

    def draw_static(self, canvas: Canvas) -> None:
        size = self.params.size
        canvas.line((0, 0), (size - 1, 0))
        canvas.line((0, size - 1), (size - 1, size - 1))

    def draw(self, canvas: Canvas, states: np.ndarray) -> None:
        p = self.params
        half = p.paddle_length / 2
        for t, (left_y, right_y) in enumerate(states[:, 4:6].tolist()):
            canvas.select(t)
            for x, y in zip(self.paddle_x, (left_y, right_y)):  # kinematic: x never changes
                top = math.floor(y - half + 0.5)  # half up: paddle_length rows at any y
                canvas.rect(round(x) - 1, top, 2, math.floor(y + half + 0.5) - top)
        canvas.discs(states[:, :2], p.radius)

    def step(self) -> None:
        """Advance dt in substeps; before each, each paddle is given the velocity that moves it
        toward the ball's height, at most paddle_speed, within range."""
        p = self.params
        v = speed(chipmunk.velocity(self.ball))
        bound = v + min(p.paddle_speed, v)
        n = substeps(bound, p.dt, p.max_substep_px)
        h = p.dt / n
        reach = p.paddle_speed * h
        lo, hi = self.paddle_range
        space, ball, paddles = self.space.ptr, self.ball, self.paddles
        for _ in range(n):
            target_y = chipmunk.position(ball).y
            for paddle in paddles:
                y = chipmunk.position(paddle).y
                new_y = min(max(y + min(max(target_y - y, -reach), reach), lo), hi)
                chipmunk.set_velocity(paddle, (0.0, (new_y - y) / h))
            chipmunk.step(space, h)

"""A ball bouncing inside a convex polygon of walls (the general case of box and gravity).

Physics: a frictionless ball of radius `radius`, perfectly elastic walls, constant gravity;
pymunk integrates it in substeps short enough that the ball never moves more than
`max_substep_px` per substep, so it cannot tunnel through or sink into a wall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.base import (
    SimParams,
    add_ball,
    add_walls,
    new_space,
    random_velocity,
    substeps,
    wall_radius,
)
from simulators.render import Canvas

# The 2017 polygon, as pixel (col, row) of a 32 x 32 frame.
POLYGON_2017 = ((3.0, 1.0), (1.0, 15.0), (8.0, 30.0), (25.0, 30.0), (30.0, 8.0), (15.0, 1.0))


@dataclass(frozen=True)
class PolygonParams(SimParams):
    gravity: tuple[float, float] = (0.0, 0.0)  # (x, y), +y pulls toward the bottom
    start_std: float = 2.5  # start ~ N(centre, start_std^2 I), moved inside the walls
    speed_min: float = 10.0  # speed ~ U[speed_min, speed_max], direction ~ U[0, 360)
    speed_max: float = 15.0
    elasticity: float = 1.0
    vertices: tuple[tuple[float, float], ...] = POLYGON_2017  # pixels (col, row) at size 32

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.speed_min <= self.speed_max:
            raise ValueError("need 0 <= speed_min <= speed_max, "
                             f"got {self.speed_min}, {self.speed_max}")
        if self.start_std < 0:
            raise ValueError(f"start_std must be >= 0, got {self.start_std}")
        if not 0 <= self.elasticity <= 1:
            raise ValueError(f"elasticity must be in [0, 1], got {self.elasticity}")

    def wall_pixels(self) -> list[tuple[int, int]]:
        """The walls' corner pixels (col, row) at this frame size."""
        scale = self.size / 32.0
        return [(round(c * scale), round(r * scale)) for c, r in self.vertices]


class BallInPolygon:
    """states: x, y (ball centre), vx, vy."""

    columns = ("x", "y", "vx", "vy")

    def __init__(self, params: PolygonParams):
        self.params = params
        self.walls = params.wall_pixels()
        if len(self.walls) < 3:
            raise ValueError("vertices: need at least 3 points")
        normals, offsets = self._lines()
        radii = [wall_radius(a, b) for a, b in zip(self.walls, self.walls[1:] + self.walls[:1])]
        # wall faces as (nx, ny, d): nx * x + ny * y - d = distance of (x, y) from the face
        self._faces = [(float(n[0]), float(n[1]), float(d) + w)
                       for n, d, w in zip(normals, offsets, radii)]
        self._check_convex()
        self.space = None
        self.ball = None

    # geometry ---------------------------------------------------------------------------

    def _lines(self):
        """Inward unit normals n and offsets d of the wall lines: n . p - d = distance of p
        from the line through the wall pixels' centres (positive inside)."""
        pts = np.array(self.walls, dtype=float) + 0.5
        centroid = pts.mean(axis=0)
        normals, offsets = [], []
        for a, b in zip(pts, np.roll(pts, -1, axis=0)):
            edge = b - a
            n = np.array([-edge[1], edge[0]]) / np.hypot(*edge)
            if n @ (centroid - a) < 0:
                n = -n
            normals.append(n)
            offsets.append(n @ a)
        return np.array(normals), np.array(offsets)

    def _check_convex(self) -> None:
        normals, offsets = self._lines()
        pts = np.array(self.walls, dtype=float) + 0.5
        if np.any(pts @ normals.T - offsets < -1e-9):
            raise ValueError("vertices must describe a convex polygon, in order")
        centre = np.full(2, self.params.size / 2.0)
        if self.clearance(centre) < self.params.radius:
            raise ValueError("the ball does not fit inside the walls around the frame centre")

    def clearance(self, xy) -> float:
        """Distance from point xy to the nearest wall face (negative outside)."""
        x, y = float(xy[0]), float(xy[1])
        return min(nx * x + ny * y - d for nx, ny, d in self._faces)

    def _start(self, rng: np.random.Generator) -> np.ndarray:
        """N(centre, start_std^2) clipped to the walls' bounding box; outside a non-rectangular
        polygon, drawn again (at most 100 times, then the centre)."""
        p = self.params
        pts = np.array(self.walls, dtype=float) + 0.5
        lo = pts.min(axis=0) + 0.5 + p.radius
        hi = pts.max(axis=0) - 0.5 - p.radius
        centre = np.full(2, p.size / 2.0)
        for _ in range(100):
            xy = np.clip(centre + p.start_std * rng.standard_normal(2), lo, hi)
            if self.clearance(xy) >= p.radius:
                return xy
        return centre

    # simulator protocol -----------------------------------------------------------------

    def reset(self, rng: np.random.Generator) -> None:
        p = self.params
        self.space = new_space(p.gravity)
        add_walls(self.space, self.walls, p.elasticity)
        position = self._start(rng)
        velocity = random_velocity(rng, (p.speed_min, p.speed_max))
        self.ball = add_ball(self.space, position, velocity, p.radius, p.elasticity)

    def state(self) -> tuple[float, ...]:
        return (*self.ball.position, *self.ball.velocity)

    def draw_static(self, canvas: Canvas) -> None:
        canvas.outline(self.walls)

    def draw(self, canvas: Canvas) -> None:
        canvas.disc(self.ball.position.x, self.ball.position.y, self.params.radius)

    def step(self) -> None:
        """Advance dt. Without gravity the ball flies straight until it can touch a wall, so
        free flight is stepped exactly in one go and only the approach to a wall is cut into
        substeps of at most max_substep_px; with gravity, uniform substeps of that length."""
        p = self.params
        if p.gravity != (0.0, 0.0):
            bound = self.ball.velocity.length + math.hypot(*p.gravity) * p.dt
            n = substeps(bound, p.dt, p.max_substep_px)
            for _ in range(n):
                self.space.step(p.dt / n)
            return
        speed = self.ball.velocity.length
        n = substeps(speed, p.dt, p.max_substep_px)
        h = p.dt / n  # every step is a whole number of substeps: chipmunk's contact solver
        left = n      # warm-starts from the last step and mis-scales on uneven step sizes
        while left:
            x, y = self.ball.position
            gap = min(nx * x + ny * y - d for nx, ny, d in self._faces) - p.radius
            k = max(1, min(left, math.floor((gap - 0.5 * p.max_substep_px) / (speed * h))))
            self.space.step(k * h)
            left -= k

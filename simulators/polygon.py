"""A ball bouncing inside a convex polygon of walls (the general case of box and gravity).

Physics: a frictionless ball of radius `radius`, perfectly elastic walls, constant gravity;
pymunk integrates it in substeps short enough that the ball never moves more than
`max_substep_px` per substep, so it cannot tunnel through or sink into a wall.
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
    format_value,
    new_space,
    random_velocity,
    speed,
    substeps,
    wall_radius,
    wall_segments,
    whole_frame,
)
from simulators.render import Canvas

# A ball whose edge is farther than this from every wall face touches no wall: chipmunk finds a
# contact only where the ball overlaps a wall (far above float64 rounding at these distances).
CLEAR_PX = 1e-9

# The 2017 polygon (kvae/datasets/polygon.py, shape=2) as its frames show it: pixel (col, row)
# of a 32 x 32 frame, row 0 at the top. 2017 gave pymunk points (x, y), y up, and pymunk 5's
# debug_draw put point (x, y) on pixel (int(x), 32 - int(y)): (3, 1) is drawn on (3, 31).
# (Generator version 1 read the points as (col, row): the same polygon upside down and one
# row off.)
POLYGON_2017 = ((3.0, 31.0), (1.0, 17.0), (8.0, 2.0), (25.0, 2.0), (30.0, 24.0), (15.0, 31.0))


@dataclass(frozen=True)
class PolygonParams(SimParams):
    gravity: tuple[float, float] = (0.0, 0.0)  # (x, y), +y pulls toward the bottom
    start_std: float = 2.5  # start ~ N(centre, start_std^2 I), moved inside the walls
    speed_min: float = 10.0  # speed ~ U[speed_min, speed_max], direction ~ U[0, 360)
    speed_max: float = 15.0
    elasticity: float = 1.0
    vertices: tuple[tuple[float, float], ...] = POLYGON_2017  # pixels (col, row) at size 32

    speed_params: ClassVar[tuple[str, ...]] = ("speed_max", "gravity")

    def check_values(self) -> None:
        super().check_values()
        if len(self.gravity) != 2:
            raise ValueError(f"gravity must be 2 numbers x,y, got {format_value(self.gravity)}")
        check_start_and_speeds(self.start_std, self.speed_min, self.speed_max)
        check_elasticity(self.elasticity)
        self.check_walls()

    def check_walls(self) -> None:
        """The walls as BallInPolygon assumes them: at least 3 corner pixels inside the frame,
        in order around a convex polygon of non-zero area, and the frame centre (the start when
        no drawn start fits, see BallInPolygon._start) at least `radius` from every wall face."""
        if any(len(v) != 2 for v in self.vertices):
            raise ValueError("vertices must be points col,row separated by ';', "
                             f"got {format_value(self.vertices)}")
        walls = self.wall_pixels()
        if len(walls) < 3:
            raise ValueError(f"vertices must be at least 3 points, got {len(walls)}: "
                             f"{format_value(self.vertices)}")
        last = self.size - 1
        for v, w in zip(self.vertices or walls, walls):
            if not (0 <= w[0] <= last and 0 <= w[1] <= last):
                raise ValueError(
                    f"vertices must lie inside the frame: {format_value(v)} is pixel "
                    f"{w[0]},{w[1]} at size {self.size}, outside [0, {last}] (vertices are "
                    "pixels of a 32 x 32 frame, scaled by (size - 1)/31)")
        problem = polygon_problem(walls)
        if problem:
            raise ValueError(f"vertices must describe a convex polygon, in order ({problem} at "
                             f"size {self.size}), got {format_value(self.vertices)}")
        centre = (self.size / 2.0, self.size / 2.0)
        room = clearance(wall_faces(walls), centre)
        if room <= 0:
            raise ValueError(f"vertices must enclose the frame centre {centre[0]:g},{centre[1]:g}"
                             f" (where a ball starts), got {format_value(self.vertices)}")
        if self.radius > room:
            raise ValueError(f"radius must be at most {room:.3g} to fit inside the walls around "
                             f"the frame centre (where a ball starts), got {self.radius:g}")

    def top_speed(self) -> float:
        """Elastic walls keep the energy, so the speed is at most that of a fall across the
        frame's diagonal from speed_max, plus one frame of gravity (see BallInPolygon.step)."""
        g = math.hypot(*self.gravity)
        return math.sqrt(self.speed_max ** 2 + 2 * g * self.size * math.sqrt(2)) + g * self.dt

    def wall_pixels(self) -> list[tuple[int, int]]:
        """The walls' corner pixels (col, row) at this frame size: a 32 x 32 frame's pixel
        scaled by (size - 1) / 31, so that pixels 0 and 31 stay on the frame's edges."""
        scale = (self.size - 1) / 31.0
        return [(round(c * scale), round(r * scale)) for c, r in self.vertices]


def polygon_problem(walls: list[tuple[int, int]]) -> str:
    """Why the closed chain of corner pixels is not a convex polygon in order, or ''.
    Exact integer arithmetic: consecutive corners differ, every turn has the same sense and
    none turns back, and the turns add up to one full turn."""
    edges = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(walls, walls[1:] + walls[:1])]
    for a, e in zip(walls, edges):
        if e == (0, 0):
            return f"two consecutive corners on pixel {a[0]},{a[1]}"
    turns = [(e[0] * f[1] - e[1] * f[0], e[0] * f[0] + e[1] * f[1])
             for e, f in zip(edges, edges[1:] + edges[:1])]  # (cross, dot)
    if all(cross == 0 for cross, _ in turns):
        return "all corners on one line"
    if any(cross == 0 and dot < 0 for cross, dot in turns):
        return "a wall turns back on itself"
    if any(cross > 0 for cross, _ in turns) and any(cross < 0 for cross, _ in turns):
        return "it turns both left and right"
    total = abs(sum(math.atan2(cross, dot) for cross, dot in turns))
    if abs(total - 2 * math.pi) > 1e-6:
        return f"it winds {total / (2 * math.pi):.0f} times around"
    return ""


def wall_lines(walls: list[tuple[int, int]]):
    """Inward unit normals n and offsets d of the wall lines: n . p - d = distance of p from the
    line through the wall pixels' centres (positive inside a convex polygon)."""
    pts = np.array(walls, dtype=float) + 0.5
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


def wall_faces(walls: list[tuple[int, int]]) -> list[tuple[float, float, float]]:
    """Wall faces as (nx, ny, d): nx * x + ny * y - d = distance of (x, y) from the face, the
    line moved inward by the wall's physical half-thickness (base.wall_radius)."""
    normals, offsets = wall_lines(walls)
    radii = [wall_radius(a, b) for a, b in zip(walls, walls[1:] + walls[:1])]
    return [(float(n[0]), float(n[1]), float(d) + w) for n, d, w in zip(normals, offsets, radii)]


def gap_function(faces):
    """f(x, y) = min over faces of nx * x + ny * y - d, the same float operations as
    clearance() with the faces' numbers written in (repr round-trips a float exactly): the
    free-flight loop of BallInPolygon.step calls it about 3 times a frame, and unrolled it
    costs half as much as the loop over faces."""
    terms = ", ".join(f"{nx!r} * x + {ny!r} * y - {d!r}" for nx, ny, d in faces)
    return eval(f"lambda x, y: min({terms})", {})  # noqa: S307


def clearance(faces, xy) -> float:
    """Distance from point xy to the nearest wall face (negative outside)."""
    x, y = float(xy[0]), float(xy[1])
    return min(nx * x + ny * y - d for nx, ny, d in faces)


class BallInPolygon:
    """states: x, y (ball centre), vx, vy."""

    columns = ("x", "y", "vx", "vy")
    position_columns = ("x", "y")  # the ball
    trivial_predictor = "walls"  # the walls are the static scene
    object_region = staticmethod(whole_frame)  # only the ball moves

    def __init__(self, params: PolygonParams):
        self.params = params
        self.walls = params.wall_pixels()
        self._faces = tuple(wall_faces(self.walls))
        self._segments = wall_segments(self.walls)
        self._flight = (params.dt, params.max_substep_px, 0.5 * params.max_substep_px,
                        params.radius, gap_function(self._faces))  # what step() reads
        self._gravity = params.gravity != (0.0, 0.0)
        self._gravity_step = math.hypot(*params.gravity) * params.dt  # speed gained in a frame
        pts = np.array(self.walls, dtype=float) + 0.5  # the start's box, see _start
        self._start_box = ((pts.min(axis=0) + 0.5 + params.radius).tolist(),
                           (pts.max(axis=0) - 0.5 - params.radius).tolist())
        self.space = None
        self.ball = None
        self._known = None

    # geometry ---------------------------------------------------------------------------

    def clearance(self, xy) -> float:
        """Distance from point xy to the nearest wall face (negative outside)."""
        return clearance(self._faces, xy)

    def _start(self, rng: np.random.Generator) -> tuple[float, float]:
        """N(centre, start_std^2) clipped to the walls' bounding box; outside a non-rectangular
        polygon, drawn again (at most 100 times, then the centre)."""
        p = self.params
        (x_lo, y_lo), (x_hi, y_hi) = self._start_box
        centre = p.size / 2.0
        for _ in range(100):
            dx, dy = rng.standard_normal(2).tolist()
            xy = (min(max(centre + p.start_std * dx, x_lo), x_hi),
                  min(max(centre + p.start_std * dy, y_lo), y_hi))
            if self.clearance(xy) >= p.radius:
                return xy
        return (centre, centre)

    # simulator protocol -----------------------------------------------------------------

    def reset(self, rng: np.random.Generator) -> None:
        p = self.params
        self.space = new_space(p.gravity)
        add_walls(self.space, self._segments, p.elasticity)
        position = self._start(rng)
        velocity = random_velocity(rng, (p.speed_min, p.speed_max))
        self.ball = add_ball(self.space, position, velocity, p.radius, p.elasticity)
        self._known = None  # see step

    def state(self) -> tuple[float, ...]:
        if self._known is not None:
            return self._known
        xy, v = chipmunk.position(self.ball), chipmunk.velocity(self.ball)
        return (xy.x, xy.y, v.x, v.y)

    def draw_static(self, canvas: Canvas) -> None:
        canvas.outline(self.walls)

    def draw(self, canvas: Canvas, states: np.ndarray) -> None:
        canvas.discs(states[:, :2], self.params.radius)

    def step(self) -> None:
        """Advance dt. Without gravity the ball flies straight until it can touch a wall, so
        free flight is stepped exactly in one go and only the approach to a wall is cut into
        substeps of at most max_substep_px; with gravity, uniform substeps of that length.

        Without gravity, the ball's state is also followed here in plain floats, as chipmunk
        computes it: a step of length s moves a ball that nothing touched where the step
        began (no contact, so no velocity change and no bias velocity) to p + v * s, in float64
        exactly as chipmunk does. Only after a step that began within CLEAR_PX of a wall is the
        state read back from chipmunk. `_known` keeps the state after the last step when the
        ball touches nothing there, for state() and the next step (with its `_gap`); None
        where it might."""
        p = self.params
        space, ball = self.space.ptr, self.ball
        if self._gravity:
            bound = speed(chipmunk.velocity(ball)) + self._gravity_step
            n = substeps(bound, p.dt, p.max_substep_px)
            h = p.dt / n
            for _ in range(n):
                chipmunk.step(space, h)
            return
        # substeps() and speed(), inlined: this loop is most of the generation time
        dt, max_px, half, radius, clearance_at = self._flight
        if self._known is None:
            xy, vel = chipmunk.position(ball), chipmunk.velocity(ball)
            x, y, vx, vy = xy.x, xy.y, vel.x, vel.y
            gap = clearance_at(x, y) - radius
        else:
            (x, y, vx, vy), gap = self._known, self._gap
        v = math.sqrt(vx ** 2 + vy ** 2)
        n = max(1, math.ceil(v * dt / max_px))
        h = dt / n  # every step is a whole number of substeps: chipmunk's contact solver
        left = n    # warm-starts from the last step and mis-scales on uneven step sizes
        travel = v * h
        step = chipmunk.step
        while left:
            # substeps of free flight before the ball can come within half a substep of a wall
            # (unbounded for a ball at rest, whose speed may be 0 or underflow to it)
            free = (gap - half) / travel if travel else math.inf
            k = left if free >= left else (math.floor(free) if free >= 1 else 1)
            s = k * h
            step(space, s)
            left -= k
            if gap > CLEAR_PX:  # untouched where the step began: it moved by v s, v unchanged
                x += vx * s
                y += vy * s
            else:  # a wall may have pushed it
                xy, vel = chipmunk.position(ball), chipmunk.velocity(ball)
                x, y, vx, vy = xy.x, xy.y, vel.x, vel.y
            gap = clearance_at(x, y) - radius
        # (vx, vy) is the velocity after the last step unless a wall touches the ball there
        self._known = (x, y, vx, vy) if gap > CLEAR_PX else None
        self._gap = gap

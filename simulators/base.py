"""The Simulator protocol, parameter handling, substepping and the rollout loop.

Coordinates everywhere (parameters, physics, states) are the frame's pixel units: x = column,
y = row from the top, so +y points down and gravity (0, 5) pulls toward the bottom of the frame.
Pixel (r, c) covers [c, c+1) x [r, r+1); its centre is (c + 0.5, r + 0.5).

A wall drawn as a 1-pixel line through pixel centres is, physically, a segment through those
centres with radius 0.5 (1.0 for a slanted line, whose stair-step pixels stray up to half a
pixel from the exact line): the ball bounces off the line's inner pixel edge and is never drawn
over it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from simulators import chipmunk
from simulators.render import Canvas

# Limits every environment shares; validate() says why when a value breaks one.
MIN_SIZE, MAX_SIZE = 16, 256  # frame size in pixels; 256 x 256 is already 1000x the 2017 data
# A longer substep lets the ball sink far enough into a wall to be drawn over it (0.75 px does).
MAX_SUBSTEP_PX = 0.25
# Generation time grows with substeps per frame (1 to 10 microseconds each): 10,000 is about
# 0.1 s a frame, 3 hours a core for 6000 sequences of 20 frames.
MAX_FRAME_SUBSTEPS = 10_000


@dataclass(frozen=True)
class SimParams:
    """Parameters every environment has. Lengths in pixels, times in the simulator's units."""

    size: int = 32  # frame is size x size pixels
    dt: float = 0.2  # time between frames
    radius: float = 3.0  # ball radius
    max_substep_px: float = 0.25  # the ball moves at most this far per physics substep

    # the parameters that set top_speed(), named when generation would take too long
    speed_params: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Raise ValueError naming the most basic bad parameter, its value and its valid range:
        size first, then any value that is not a finite number, then each class's own ranges
        (base class first, see check_values), then the substeps per frame."""
        if not (isinstance(self.size, numbers.Integral) and not isinstance(self.size, bool)
                and MIN_SIZE <= self.size <= MAX_SIZE):
            raise ValueError(f"size must be at least {MIN_SIZE} and at most {MAX_SIZE} pixels "
                             f"(a whole number), got {self.size!r}")
        for f in dataclasses.fields(self):
            check_number(f.name, getattr(self, f.name), f.default)
        self.check_values()
        n = self.top_speed() * self.dt / self.max_substep_px
        if not n <= MAX_FRAME_SUBSTEPS:
            names = (*self.speed_params, "dt", "max_substep_px")
            given = ", ".join(f"{k}={format_value(getattr(self, k))}" for k in names)
            raise ValueError(
                f"{given} need {n:.3g} physics substeps per frame (top speed {self.top_speed():.3g}"
                f" * dt / max_substep_px), at most {MAX_FRAME_SUBSTEPS} allowed (generation time "
                f"grows with it): lower {', '.join(names[:-1])} or raise max_substep_px")

    def check_values(self) -> None:
        """Raise ValueError for the first value out of its range; subclasses extend this, base
        class first. Every number is already known to be finite."""
        if not self.dt > 0:
            raise ValueError(f"dt must be > 0, got {self.dt:g}")
        hi = self.size // 4
        if not (is_whole(self.radius) and 1 <= self.radius <= hi):
            raise ValueError(f"radius must be a whole number in [1, size/4] = [1, {hi}] (the ball "
                             f"is drawn as a disc of whole-pixel radius), got {self.radius:g}")
        if not 0 < self.max_substep_px <= MAX_SUBSTEP_PX:
            raise ValueError(f"max_substep_px must be in (0, {MAX_SUBSTEP_PX}] (a longer substep "
                             f"lets the ball sink into a wall), got {self.max_substep_px:g}")

    def top_speed(self) -> float:
        """Bound on the speed (pixels per time unit) that sets a frame's substeps, over a whole
        sequence of these parameters."""
        raise NotImplementedError(f"{type(self).__name__} must define top_speed")


def is_whole(value) -> bool:
    """True for an integer or an integral float (not a bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()


def check_number(name: str, value, default) -> None:
    """Raise ValueError unless value has the kind of `default`: a whole number for an int
    default, a finite number for a float, finite numbers throughout for a tuple."""
    if isinstance(default, int):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    elif isinstance(default, float):
        if not _finite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    elif isinstance(default, tuple):
        if not isinstance(value, tuple) or not all(
                _finite(v) if not isinstance(v, tuple) else all(_finite(x) for x in v)
                for v in value):
            raise ValueError(f"{name} must hold finite numbers only, got {_show(value)}")


def check_start_and_speeds(start_std: float, speed_min: float, speed_max: float) -> None:
    """The start spread and the speed range U[speed_min, speed_max] of a ball."""
    if not start_std >= 0:
        raise ValueError(f"start_std must be >= 0, got {start_std:g}")
    if not speed_min >= 0:
        raise ValueError(f"speed_min must be >= 0, got {speed_min:g}")
    if not speed_max >= speed_min:
        raise ValueError(f"speed_max must be at least speed_min, got speed_min="
                         f"{speed_min:g}, speed_max={speed_max:g}")


def check_elasticity(elasticity: float) -> None:
    """Only perfectly elastic collisions keep the ball inside its walls. Chipmunk warm-starts
    each step with the last step's contact impulses times the ratio of the two step lengths; a
    ball that loses speed in a bounce gets fewer, longer substeps in the next frame, so a bounce
    on a frame's last substep is repeated several times over and kicks the ball through a wall
    (seen at elasticity 0 to 0.2 in box, gravity, polygon and pong: up to 1 in 5 sequences)."""
    if elasticity != 1:
        raise ValueError("elasticity must be 1 (below 1, a bounce at the end of a frame can kick "
                         f"the ball through a wall), got {elasticity:g}")


def _show(value) -> str:
    try:
        return format_value(value)
    except (TypeError, ValueError):
        return repr(value)


def _finite(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


class Simulator(Protocol):
    """One environment. `reset` builds a fresh chipmunk space (chipmunk caches contact
    impulses inside a space, so reusing one would couple sequences); `step` advances by
    params.dt; `draw` draws each frame t of the canvas's video from states[t] alone (the
    float64 `state()` of that instant), so a frame shows exactly its state."""

    params: SimParams
    columns: ClassVar[tuple[str, ...]]
    position_columns: ClassVar[tuple[str, str]]  # the tracked object's centre, e.g. ("x", "y")
    trivial_predictor: ClassVar[str]  # the static scene's name: "walls", or "empty"

    @staticmethod
    def object_region(size: int) -> np.ndarray: ...  # (H, W) bool: where only it is drawn

    def reset(self, rng: np.random.Generator) -> None: ...

    def state(self) -> tuple[float, ...]: ...  # (S,)

    def draw_static(self, canvas: Canvas) -> None: ...

    def draw(self, canvas: Canvas, states: np.ndarray) -> None: ...  # frame t from (T, S)

    def step(self) -> None: ...


def whole_frame(size: int) -> np.ndarray:
    """The object region of envs whose only moving thing is the tracked object."""
    return np.ones((size, size), dtype=bool)


def rollout(sim: Simulator, steps: int, rng: np.random.Generator, canvas: Canvas):
    """Run one sequence: frames (T, H, W) uint8 and states (T, S) float32, where states[t]
    is the physical state that frame t shows (frame t is drawn from states[t] in float64)."""
    sim.reset(rng)
    if canvas.scene is not sim:  # the static scene is the same in every sequence of a sim
        canvas.reset()
        sim.draw_static(canvas)
        canvas.bake_background()
        canvas.scene = sim
    state, step = sim.state, sim.step
    states = list(state())
    for _ in range(steps - 1):
        step()
        states += state()
    states = np.array(states, dtype=np.float64).reshape(steps, len(sim.columns))
    canvas.video(steps)
    sim.draw(canvas, states)
    return canvas.frames, states.astype(np.float32)


def substeps(speed_bound: float, dt: float, max_px: float) -> int:
    """Number of equal substeps so that a body no faster than speed_bound moves at most
    max_px per substep (no tunnelling, penetration below max_px)."""
    return max(1, math.ceil(speed_bound * dt / max_px))


def speed(v) -> float:
    """|v| of a chipmunk vector, computed as pymunk's Vec2d.length."""
    return math.sqrt(v.x ** 2 + v.y ** 2)


def new_space(gravity: tuple[float, float] = (0.0, 0.0)) -> chipmunk.Space:
    """A fresh space with tight contact tolerances (allowed overlap 0.01 px)."""
    return chipmunk.Space(gravity, collision_slop=0.01)


def add_ball(space: chipmunk.Space, position, velocity, radius: float, elasticity: float = 1.0):
    """A frictionless dynamic ball of mass 1: its cpBody*."""
    return space.add_ball(1.0, chipmunk.moment_for_circle(1.0, radius),
                          (float(position[0]), float(position[1])),
                          (float(velocity[0]), float(velocity[1])), radius, elasticity, 0.0)


def wall_radius(a, b) -> float:
    """Physical half-thickness of a 1-pixel line from pixel a to pixel b (see module doc)."""
    return 0.5 if a[0] == b[0] or a[1] == b[1] else 1.0


def wall_segments(pixels: list[tuple[int, int]]) -> list[tuple]:
    """Closed chain of walls through the centres of the given pixels (col, row): the
    segments (a, b, radius) for add_walls."""
    return [((a[0] + 0.5, a[1] + 0.5), (b[0] + 0.5, b[1] + 0.5), wall_radius(a, b))
            for a, b in zip(pixels, pixels[1:] + pixels[:1])]


def add_walls(space: chipmunk.Space, segments: list[tuple], elasticity: float = 1.0):
    """Static frictionless walls, the segments (a, b, radius) of wall_segments."""
    space.add_segments(space.static_body, segments, elasticity, 0.0)


def random_velocity(rng: np.random.Generator,
                    speed_range: tuple[float, float]) -> tuple[float, float]:
    """Speed U[lo, hi], direction U[0, 360) degrees."""
    speed = rng.uniform(*speed_range)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    return (speed * math.cos(angle), speed * math.sin(angle))


# ---- parameters from the command line -------------------------------------------------------


def param_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def parse_value(name: str, text: str, default):
    """Parse `text` as the type of `default`: int, float, a tuple of floats ("0,-9.8") or a
    tuple of points ("3,31;1,17;8,2")."""
    try:
        if isinstance(default, bool):
            raise TypeError("no boolean parameters")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple) and (not default or isinstance(default[0], tuple)):
            # points; an empty default (box's vertices) takes points too, validate says more
            points = tuple(tuple(float(v) for v in p.split(",")) for p in text.split(";"))
            if any(len(p) != (len(default[0]) if default else 2) for p in points):
                raise ValueError
            return points
        if isinstance(default, tuple):
            values = tuple(float(v) for v in text.split(","))
            if len(values) != len(default):
                raise ValueError
            return values
    except ValueError:
        pass
    example = {int: "an integer", float: "a number"}.get(type(default))
    if example is None:
        example = f"like {format_value(default)}"
    raise ValueError(f"parameter {name}={text!r}: expected {example}")


def format_value(value) -> str:
    """Inverse of parse_value, for messages."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return ";".join(",".join(f"{v:g}" for v in p) for p in value)
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def make_params(cls: type, overrides: dict) -> SimParams:
    """Build and validate a params dataclass from overrides (strings are parsed)."""
    defaults = cls()
    fields = param_names(cls)
    values = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"unknown parameter {name!r}; valid: {', '.join(fields)}")
        default = getattr(defaults, name)
        if isinstance(value, str):
            value = parse_value(name, value, default)
        elif isinstance(default, tuple):
            value = tuple(tuple(float(x) for x in v) if isinstance(v, (tuple, list)) else float(v)
                          for v in value)
        elif isinstance(default, float):
            value = float(value)
        values[name] = value
    params = cls(**values)
    params.validate()
    return params

"""The 2017 KVAE data: box, gravity, polygon and pong as the original generators made them.

The generators of Fraccaro et al. (simonkamronn/kvae, `kvae/datasets/box.py`,
`box_gravity.py`, `polygon.py`, `pong.py`; pymunk 5, pygame 1.9) did, per frame of 32 x 32:
- physics: ONE pymunk step of dt = 0.2 (pymunk's defaults otherwise: collision slop 0.1, 10
  solver iterations), walls as segments of radius 0, a frictionless ball of radius 3 and mass
  1. Without substeps the ball sinks into walls (up to about 3 px) and jumps at bounces; in
  gravity it now and then falls through the floor and is lost.
- pixels: pymunk's `space.debug_draw` on a 24-bit pygame surface through pymunk 5's
  `pygame_util.DrawOptions`, which truncates every point with int() and flips y
  ((x, y) -> (int(x), H - int(y))): the ball is pygame's disc of radius 3 on that pixel
  corner plus a 1-pixel orientation line from its centre to its edge in the outline colour
  (its angle stays 0: one more pixel at column int(x) + 3, a 25-pixel ball in a 6 x 7 box),
  the walls 1-pixel lines, and each contact of the last step a red anti-aliased "collision
  mark" 2 px past the contact on each side along the normal (marks often lie outside the walls).
- order: box, gravity and polygon draw the frame BEFORE the step, pong after it (pong also
  moves its paddles before the step).
- the 2017 loader (`kvae/utils/data.py`) kept every pixel > 0: that is our binarisation, so
  the orientation line and the faint ends of the marks are lit.

This module redoes that with pymunk 7 and pygame 2: `Draw2017` is pymunk 5's DrawOptions
(written anew from what it drew), the scenes below are the 2017 scenes, and random draws come
from the sequence's own generator. Where 2017 and our conventions differ at no cost, ours hold:
a fresh space per sequence (2017 reused one; with the ball removed no contact survives) and
states[t] is the state frame t shows, in frame pixels (x = column, y = row from the top):
column = x - 0.5 and row = H + 0.5 - y for the pymunk point (x, y), i.e. where the truncated
drawing puts it on average (the drawn disc's centre is within half a pixel of it per axis);
velocities likewise (vx, -vy). Paddle centres (pong) map the same way: a paddle's pixels are
centred on row H + 0.5 - y exactly.

Not redone: the 2017 pong test file was made by a second `run` on the same space, which added
roof and floor a second time (two coincident walls); every sequence here has one of each.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pymunk
from pymunk.space_debug_draw_options import SpaceDebugColor

SIZE = 32
DT = 0.2
RADIUS = 3.0
MARGIN = 2  # the generators' `dd`: the start is clipped to [dd + r + 1, size - dd - r - 1]
WHITE = (255, 255, 255, 255)  # the 2017 shape.color of ball, walls and paddles
# pymunk 5's debug colours (pymunk 7's defaults too), pinned: a pixel > 0 is lit, so a
# colour's brightness decides which faint anti-aliased pixels of a collision mark count
OUTLINE = SpaceDebugColor(44, 62, 80, 255)  # the ball's orientation line
COLLISION = SpaceDebugColor(231, 76, 60, 255)  # collision marks

Point = tuple[float, float]


BALL_COLUMNS = ("x", "y", "vx", "vy")
PONG_COLUMNS = (*BALL_COLUMNS, "left_paddle_y", "right_paddle_y")


@dataclass(frozen=True)
class Scene2017:
    """One 2017 generator's constants (pymunk coordinates, y up)."""

    walls: tuple[tuple[Point, Point], ...]  # static segments of radius 0
    gravity: Point = (0.0, 0.0)
    start_std: float = 10.0  # start ~ N((16, 16), std^2 I), clipped
    speed: tuple[float, float] = (10.0, 15.0)  # U[lo, hi]
    ball_elasticity: float = 1.0
    wall_elasticity: float = 1.0
    pong: bool = False  # paddles, and the frame drawn after the step


def _box_walls(lo: float = MARGIN, hi: float = SIZE - MARGIN) -> tuple:
    """kvae/datasets/box.py: four segments 2 px inside the frame."""
    return (((lo, lo), (lo, hi)), ((lo, lo), (hi, lo)), ((hi, hi), (lo, hi)),
            ((hi, hi), (hi, lo)))


# kvae/datasets/polygon.py, shape=2: fixed points, y up.
POLYGON_POINTS = ((3, 1), (1, 15), (8, 30), (25, 30), (30, 8), (15, 1), (3, 1))

SCENES: dict[str, Scene2017] = {
    "box": Scene2017(_box_walls()),
    "gravity": Scene2017(_box_walls(), gravity=(0.0, -5.0), start_std=8.0, speed=(5.0, 10.0)),
    "polygon": Scene2017(tuple(((float(a[0]), float(a[1])), (float(b[0]), float(b[1])))
                               for a, b in zip(POLYGON_POINTS, POLYGON_POINTS[1:])),
                         start_std=2.5),
    # kvae/datasets/pong.py: floor at y = 1, roof at y = size; speed 10; elasticities .9, .99
    "pong": Scene2017((((0.0, 1.0), (float(SIZE), 1.0)),
                       ((0.0, float(SIZE)), (float(SIZE), float(SIZE)))),
                      start_std=3.0, speed=(10.0, 10.0), ball_elasticity=0.9,
                      wall_elasticity=0.99, pong=True),
}

SOURCES = {"box": "kvae/datasets/box.py", "gravity": "kvae/datasets/box_gravity.py",
           "polygon": "kvae/datasets/polygon.py (shape=2)", "pong": "kvae/datasets/pong.py"}

# pong's paddles: static segments of radius 1 at x = 0 and size - 2, 6 long (7 rows drawn),
# centred at y = 16 at the start, moved up to 2 px toward the ball before each step.
PADDLE_X = (0.0, SIZE - 2.0)
PADDLE_HALF = 3.0
PADDLE_RADIUS = 1.0
PADDLE_SPEED = 2.0
PADDLE_ELASTICITY = 0.99


def params(env: str) -> dict:
    """What a file's env_params records of the 2017 scene of `env` (JSON)."""
    scene = SCENES[env]
    out = {
        "source": f"simonkamronn/kvae {SOURCES[env]}", "size": SIZE, "dt": DT,
        "physics_steps_per_frame": 1, "radius": RADIUS, "coordinates": "pymunk, y up",
        "walls": [list(map(list, w)) for w in scene.walls], "wall_radius": 0.0,
        "gravity": list(scene.gravity), "start": f"N(({SIZE // 2}, {SIZE // 2}), "
        f"{scene.start_std:g}^2 I) clipped to [{MARGIN + RADIUS + 1:g}, "
        f"{SIZE - MARGIN - RADIUS - 1:g}]", "speed": list(scene.speed),
        "direction": "U[0, 360) degrees", "ball_elasticity": scene.ball_elasticity,
        "wall_elasticity": scene.wall_elasticity,
        "drawn": ("after the step" if scene.pong else "before the step")
        + ": pymunk 5 debug_draw (int() and y flipped), every pixel > 0 lit",
        "states": "the state each frame shows: column = x - 0.5, row = size + 0.5 - y",
    }
    if scene.pong:
        out.update(paddle_x=list(PADDLE_X), paddle_length=2 * PADDLE_HALF,
                   paddle_radius=PADDLE_RADIUS, paddle_speed_per_frame=PADDLE_SPEED,
                   paddle_elasticity=PADDLE_ELASTICITY)
    return out


class Draw2017(pymunk.SpaceDebugDrawOptions):
    """pymunk 5's pygame_util.DrawOptions (positive_y_is_up = True): each point truncated with
    int() and y flipped; discs by pygame.draw.circle, segments by pygame.draw.lines, collision
    marks by the anti-aliased pygame.draw.aalines."""

    def __init__(self, surface):
        from simulators.render import pygame  # headless: render sets the SDL drivers first

        super().__init__()
        self.surface = surface
        self.draw, self.array2d = pygame.draw, pygame.surfarray.array2d
        self.flags = (self.DRAW_SHAPES | self.DRAW_CONSTRAINTS
                      | self.DRAW_COLLISION_POINTS)
        self.shape_outline_color = OUTLINE
        self.collision_point_color = COLLISION

    def _pixel(self, p) -> tuple[int, int]:
        return int(p[0]), self.surface.get_height() - int(p[1])

    def draw_circle(self, pos, angle, radius, outline_color, fill_color) -> None:
        p = self._pixel(pos)
        self.draw.circle(self.surface, fill_color.as_int(), p, int(round(radius)), 0)
        edge = self._pixel((pos[0] + radius * math.cos(angle),
                            pos[1] + radius * math.sin(angle)))
        self.draw.lines(self.surface, outline_color.as_int(), False, [p, edge],
                        2 if radius > 20 else 1)

    def draw_segment(self, a, b, color) -> None:
        self.draw.aalines(self.surface, color.as_int(), False,
                          [self._pixel(a), self._pixel(b)])

    def draw_fat_segment(self, a, b, radius, outline_color, fill_color) -> None:
        width = int(round(max(1.0, radius * 2)))  # 1 for the walls, 2 for pong's paddles
        self.draw.lines(self.surface, fill_color.as_int(), False,
                        [self._pixel(a), self._pixel(b)], width)

    def draw_polygon(self, verts, radius, outline_color, fill_color) -> None:
        raise NotImplementedError("the 2017 scenes have no polygons")

    def draw_dot(self, size, pos, color) -> None:
        self.draw.circle(self.surface, color.as_int(), self._pixel(pos),
                         int(round(size)), 0)


def _segment(body, a: Point, b: Point, radius: float, elasticity: float) -> pymunk.Segment:
    shape = pymunk.Segment(body, a, b, radius)
    shape.elasticity = elasticity
    shape.color = WHITE
    return shape


def _move_paddle(paddle: pymunk.Segment, ball_y: float) -> None:
    """pong.py's Paddle.update: a step of at most PADDLE_SPEED toward the ball's height (a is
    the upper end, b the lower; the paddle stops at the frame's bottom and top)."""
    a, b = paddle.a, paddle.b
    centre = (a.y + b.y) / 2
    dy = 0.0
    if ball_y < centre - PADDLE_SPEED / 2:
        dy = -min(b.y, PADDLE_SPEED)
    if ball_y > centre + PADDLE_SPEED / 2:
        dy = min(SIZE - a.y, PADDLE_SPEED)
    if dy:
        paddle.unsafe_set_endpoints((a.x, a.y + dy), (b.x, b.y + dy))


@functools.cache
def _drawing() -> Draw2017:
    """The 24-bit surface (as the 2017 screen) and its DrawOptions, made once per process."""
    from simulators.render import pygame

    return Draw2017(pygame.Surface((SIZE, SIZE), 0, 24))


def video(scene: Scene2017, rng: np.random.Generator, steps: int, canvas=None):
    """One 2017 video: frames (T, 32, 32) uint8 in {0, 255} (every pixel > 0 lit), states
    (T, S) float32: x, y, vx, vy of the ball (and pong's left_paddle_y, right_paddle_y), the
    state each frame shows in frame pixels (module docstring); controls None. `canvas` is
    not used (pymunk draws on its own 24-bit surface): the presets' sequence signature."""
    space = pymunk.Space()
    space.gravity = scene.gravity
    space.add(*(_segment(space.static_body, a, b, 0.0, scene.wall_elasticity)
                for a, b in scene.walls))
    # the 2017 order of draws: direction, speed, then the start
    angle = rng.uniform(0.0, 360.0)
    speed = rng.uniform(*scene.speed)
    lo, hi = MARGIN + RADIUS + 1, SIZE - MARGIN - RADIUS - 1
    start = np.clip(SIZE / 2 + scene.start_std * rng.standard_normal(2), lo, hi)
    body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, RADIUS))
    body.position = (float(start[0]), float(start[1]))
    body.velocity = (speed * math.cos(angle * math.pi / 180),
                     speed * math.sin(angle * math.pi / 180))
    ball = pymunk.Circle(body, RADIUS)
    ball.elasticity = scene.ball_elasticity
    ball.color = WHITE
    space.add(ball, body)
    paddles = [_segment(space.static_body, (x, SIZE / 2 + PADDLE_HALF),
                        (x, SIZE / 2 - PADDLE_HALF), PADDLE_RADIUS, PADDLE_ELASTICITY)
               for x in PADDLE_X] if scene.pong else []

    options = _drawing()
    surface, array2d = options.surface, options.array2d
    frames = np.empty((steps, SIZE, SIZE), dtype=np.uint8)
    states = np.empty((steps, 6 if scene.pong else 4))
    for t in range(steps):
        if scene.pong:
            for paddle in paddles:
                _move_paddle(paddle, body.position.y)
            space.add(*paddles)
            space.step(DT)
        surface.fill((0, 0, 0))
        space.debug_draw(options)
        lit = array2d(surface).T > 0  # (H, W)
        np.multiply(lit, 255, out=frames[t], casting="unsafe")
        (x, y), (vx, vy) = body.position, body.velocity
        states[t, :4] = (x - 0.5, SIZE + 0.5 - y, vx, -vy)
        if scene.pong:
            states[t, 4:] = [SIZE + 0.5 - (p.a.y + p.b.y) / 2 for p in paddles]
            space.remove(*paddles)
        else:
            space.step(DT)
    return frames, states.astype(np.float32), None

"""Simulator guarantees over a few hundred sequences of every environment: the ball stays
inside the walls (also at 64x64 and double speed), states[t] is what frame t shows, no frame
is empty, sequences are deterministic and independent of each other."""


import numpy as np
import pytest

import simulators
from simulators.generate import generate_block, sequence_rng
from simulators.render import Canvas

N = 200
ENVS = list(simulators.ENVS)
FAST = {"box": {"speed_min": 20.0, "speed_max": 30.0},
        "gravity": {"speed_min": 10.0, "speed_max": 20.0, "gravity": (0.0, 10.0)},
        "polygon": {"speed_min": 20.0, "speed_max": 30.0},
        "pendulum": {"omega_max": 3.0},
        "pong": {"speed_min": 20.0, "speed_max": 20.0}}
VARIANTS = [("default", {}), ("size64", {"size": 64}), ("fast", None)]


def run(env, overrides, n=N, steps=20, seed=0):
    return generate_block(env, overrides, seed, "train", 0, n, steps)


def background(sim):
    canvas = Canvas(sim.params.size)
    sim.draw_static(canvas)
    return canvas.pixels() > 0


def ball_pixels(sim, x, y):
    canvas = Canvas(sim.params.size)
    canvas.disc(x, y, sim.params.radius)
    return canvas.pixels() > 0


def inside_margin(sim, state):
    """How far the ball's edge is inside its walls (negative: overlapping or outside)."""
    x, y = state[0], state[1]
    r = sim.params.radius
    if isinstance(sim, simulators.ENVS["polygon"][0]):
        return sim.clearance((x, y)) - r
    if isinstance(sim, simulators.ENVS["pong"][0]):
        return min(x - sim.left, sim.right - x, y - sim.top, sim.bottom - y) - r
    size = sim.params.size  # pendulum: the bob stays in the frame
    return min(x, size - x, y, size - y) - r


@pytest.mark.parametrize("variant,overrides", VARIANTS)
@pytest.mark.parametrize("env", ENVS)
def test_ball_never_leaves_walls(env, variant, overrides):
    overrides = FAST[env] if overrides is None else overrides
    sim = simulators.make(env, overrides)
    frames, states = run(env, overrides)
    margins = np.array([[inside_margin(sim, s) for s in seq] for seq in states])
    # physical overlap is at most one substep (max_substep_px = 0.25)
    assert margins.min() > -sim.params.max_substep_px, margins.min()
    # and the drawn ball never covers a wall pixel
    bg = background(sim)
    for st in states[:50]:
        for s in st:
            assert not (ball_pixels(sim, s[0], s[1]) & bg).any()


@pytest.mark.parametrize("env", ENVS)
def test_state_describes_its_frame(env):
    """The lit non-wall pixels of frame t are the ball at states[t] (its centroid within half a
    pixel per axis: pixel (r, c) has centre (c + 0.5, r + 0.5))."""
    sim = simulators.make(env)
    frames, states = run(env, {})
    bg = background(sim)
    size = sim.params.size
    rows, cols = np.mgrid[0:size, 0:size]
    errors = []
    for seq, st in zip(frames, states):
        for frame, s in zip(seq, st):
            ball = (frame > 0) & ~bg
            if env == "pong":  # the paddles move: keep the field between them
                ball[:, :2] = ball[:, -2:] = False
            assert ball.sum() > 0, "empty frame"
            x = (cols[ball] + 0.5).mean()
            y = (rows[ball] + 0.5).mean()
            errors.append(max(abs(x - s[0]), abs(y - s[1])))
            np.testing.assert_array_equal(ball, ball_pixels(sim, s[0], s[1]))
    assert max(errors) <= 0.5 + 1e-4


@pytest.mark.parametrize("env", ENVS)
def test_no_empty_frame_and_binary(env):
    frames, _ = run(env, {}, n=100)
    assert set(np.unique(frames)) == {0, 255}
    assert (frames > 0).sum(axis=(2, 3)).min() > 0


@pytest.mark.parametrize("env", ["box", "polygon"])
def test_elastic_ball_keeps_its_speed(env):
    _, states = run(env, {}, n=100)
    speed = np.hypot(states[..., 2], states[..., 3])
    np.testing.assert_allclose(speed, speed[:, :1].repeat(speed.shape[1], 1), rtol=1e-4)
    assert speed.min() >= 10 - 1e-4 and speed.max() <= 15 + 1e-4


def test_gravity_conserves_energy_and_pulls_down():
    _, states = run("gravity", {}, n=100)
    g = 5.0
    energy = 0.5 * (states[..., 2] ** 2 + states[..., 3] ** 2) - g * states[..., 1]
    drift = np.abs(energy - energy[:, :1]).max()
    assert drift < 0.05 * np.abs(energy).mean()
    # with no bounce, vy grows by g * dt per frame
    dvy = np.diff(states[..., 3], axis=1)
    assert np.median(dvy) == pytest.approx(g * 0.2, rel=1e-3)


def test_pendulum_keeps_rod_length_and_energy():
    sim = simulators.make("pendulum")
    _, states = run("pendulum", {}, n=100)
    px, py = sim.pivot
    length = np.hypot(states[..., 0] - px, states[..., 1] - py)
    np.testing.assert_allclose(length, 10.0, atol=0.05)
    theta, omega = states[..., 2], states[..., 3]
    energy = 0.5 * (10.0 * omega) ** 2 - 10.0 * 10.0 * np.cos(theta)
    assert np.abs(energy - energy[:, :1]).max() < 0.02 * 100
    np.testing.assert_allclose(np.sin(theta) * length, states[..., 0] - px, atol=1e-3)


def test_pong_paddles_follow_the_ball():
    _, states = run("pong", {}, n=100)
    assert np.abs(states[..., 4] - states[..., 1]).max() < 6
    assert (np.abs(states[..., 2]) > 0).all()


@pytest.mark.parametrize("env", ENVS)
def test_sequence_depends_only_on_seed_split_index(env):
    """Sequence 7 is the same whether generated alone or after others (fresh Space each)."""
    f_all, s_all = generate_block(env, {}, 3, "test", 0, 10, 20)
    f_one, s_one = generate_block(env, {}, 3, "test", 7, 8, 20)
    np.testing.assert_array_equal(f_all[7], f_one[0])
    np.testing.assert_array_equal(s_all[7], s_one[0])
    f_other, _ = generate_block(env, {}, 4, "test", 7, 8, 20)
    assert not np.array_equal(f_other[0], f_one[0])


def test_reset_builds_a_fresh_space():
    sim = simulators.make("box")
    sim.reset(sequence_rng(0, "train", 0))
    first = sim.space
    sim.reset(sequence_rng(0, "train", 0))
    assert sim.space is not first


def test_params_parsing_and_errors():
    p = simulators.env_params("gravity", {"gravity": "0,-9.8", "size": "64", "radius": 2})
    assert p.gravity == (0.0, -9.8) and p.size == 64 and p.radius == 2.0
    p = simulators.env_params("polygon", {"vertices": "2,2;29,2;16,29"})
    assert p.vertices == ((2.0, 2.0), (29.0, 2.0), (16.0, 29.0))
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        simulators.env_params("box", {"nope": "1"})
    with pytest.raises(ValueError, match="gravity"):
        simulators.env_params("box", {"gravity": "1"})
    with pytest.raises(ValueError, match="speed_min"):
        simulators.env_params("box", {"speed_min": "20"})
    with pytest.raises(ValueError, match="unknown env"):
        simulators.env_params("cube")
    with pytest.raises(ValueError, match="convex"):
        simulators.make("polygon", {"vertices": "2,2;29,2;16,10;16,29"})


def test_substeps_bound_the_step_length():
    from simulators.base import substeps

    assert substeps(15.0, 0.2, 0.25) == 12  # 3 px per frame in 0.25 px pieces
    assert substeps(30.0, 0.2, 0.25) == 24
    assert substeps(0.0, 0.2, 0.25) == 1  # at rest: one step
    assert substeps(1.0, 0.2, 0.25) == 1  # 0.2 px fits in one
    for speed in (0.3, 1.3, 7.7, 14.9, 52.0):  # each piece short enough, and no more pieces
        n = substeps(speed, 0.2, 0.25)
        assert speed * 0.2 / n <= 0.25 and (n == 1 or speed * 0.2 / (n - 1) > 0.25)


# ---- the fast paths are exact: chipmunk calls == pymunk objects, numpy stamps == pygame ------


def _pygame_frame(size, draw):
    """(H, W) uint8 of what `draw(surface)` paints with pygame on a blank 8-bit surface."""
    import pygame

    surface = pygame.Surface((size, size), depth=8)
    surface.set_palette([(i, i, i) for i in range(256)])
    draw(surface)
    out = np.empty((size, size), dtype=np.uint8)
    pygame.pixelcopy.surface_to_array(out.T, surface)
    return out


@pytest.mark.parametrize("radius", [1.0, 2.0, 3.0, 5.0])
def test_disc_stamp_is_pygames_circle_everywhere(radius):
    """Every centre from beyond one edge to beyond the other, halves included (both round
    them to even), single discs and a video of them, clipped at the frame edge."""
    import pygame

    size = 16
    r = round(radius)
    centres = [(x + dx, y + dy) for x in range(-r - 1, size + r + 2)
               for y in range(-r - 1, size + r + 2) for dx, dy in ((0.0, 0.0), (0.5, -0.5))]
    rng = np.random.default_rng(0)
    centres += [tuple(c) for c in rng.uniform(-r - 1, size + r + 1, (200, 2))]
    want = np.stack([_pygame_frame(size, lambda s, c=c: pygame.draw.circle(
        s, 255, (round(c[0]), round(c[1])), r)) for c in centres])
    canvas = Canvas(size)
    for c, frame in zip(centres, want):
        canvas.clear()
        canvas.disc(c[0], c[1], radius)
        np.testing.assert_array_equal(canvas.pixels(), frame, err_msg=str(c))
    canvas.video(len(centres))
    canvas.discs(np.array(centres), radius)
    np.testing.assert_array_equal(canvas.frames, want)
    inside = [k for k, (x, y) in enumerate(centres) if r + 1 <= x <= size - r - 1
              and r + 1 <= y <= size - r - 1]  # the batch path with no disc at an edge
    canvas.video(len(inside))
    canvas.discs(np.array(centres)[inside], radius)
    np.testing.assert_array_equal(canvas.frames, want[inside])


def test_rect_is_pygames_rect():
    import pygame

    size = 16
    rng = np.random.default_rng(1)
    canvas = Canvas(size)
    for col, row, w, h in rng.integers(-6, 20, (500, 4)).tolist():
        want = _pygame_frame(size, lambda s, r=(col, row, w, h): pygame.draw.rect(s, 255, r))
        canvas.clear()
        canvas.rect(col, row, w, h)
        np.testing.assert_array_equal(canvas.pixels(), want, err_msg=str((col, row, w, h)))


def _pymunk_scene(gravity, segments, ball, joint=None, paddle=None):
    """The scene built from pymunk's own objects, as the simulators did before calling chipmunk
    directly: a space, static walls, a ball, optionally a pin joint and a kinematic paddle."""
    import pymunk

    space = pymunk.Space()
    space.gravity = gravity
    space.collision_slop = 0.01
    for a, b, r in segments:
        seg = pymunk.Segment(space.static_body, a, b, r)
        seg.elasticity, seg.friction = 1.0, 0.0
        space.add(seg)
    (position, velocity, radius) = ball
    body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, radius))
    body.position, body.velocity = position, velocity
    shape = pymunk.Circle(body, radius)
    shape.elasticity, shape.friction = 1.0, 0.0
    space.add(body, shape)
    if joint is not None:
        space.add(pymunk.PinJoint(space.static_body, body, joint, (0, 0)))
    kinematic = None
    if paddle is not None:
        kinematic = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        kinematic.position = paddle
        seg = pymunk.Segment(kinematic, (0, -3.0), (0, 3.0), 1.0)
        seg.elasticity, seg.friction = 1.0, 0.0
        space.add(kinematic, seg)
    return space, body, kinematic


def _chipmunk_scene(gravity, segments, ball, joint=None, paddle=None):
    from simulators.base import add_ball, add_walls, new_space

    space = new_space(gravity)
    add_walls(space, segments)
    body = add_ball(space, *ball[:2], ball[2])
    if joint is not None:
        space.add_pin_joint(space.static_body, body, joint, (0, 0))
    kinematic = None
    if paddle is not None:
        kinematic = space.add_kinematic_segment(paddle, (0, -3.0), (0, 3.0), 1.0, 1.0, 0.0)
    return space, body, kinematic


@pytest.mark.parametrize("scene", ["box", "gravity", "polygon", "pendulum", "pong"])
def test_chipmunk_calls_are_pymunk_bit_for_bit(scene):
    """Random starts, random step lengths (many bounces, corners included): the space built
    and stepped through chipmunk directly gives exactly pymunk's positions and velocities."""
    from simulators import chipmunk
    from simulators.base import wall_segments

    sim = simulators.make("polygon" if scene == "polygon" else "box")
    segments = wall_segments(sim.walls)
    gravity = {"gravity": (0.0, 5.0), "pendulum": (0.0, 10.0)}.get(scene, (0.0, 0.0))
    rng = np.random.default_rng(2)
    bounces = 0
    for _ in range(20):
        ball = (tuple(16 + rng.uniform(-4, 4, 2)), tuple(rng.uniform(-20, 20, 2)), 3.0)
        extra = {"pendulum": {"joint": (16.0, 16.0)},
                 "pong": {"paddle": (ball[0][0] + 4.5, ball[0][1])}}.get(scene, {})
        ref, ref_ball, ref_paddle = _pymunk_scene(gravity, segments, ball, **extra)
        ours, our_ball, our_paddle = _chipmunk_scene(gravity, segments, ball, **extra)
        last = ball[1]
        for dt in rng.choice([0.003, 0.0125, 0.025, 0.05], 300).tolist():
            if ref_paddle is not None:
                vy = float(rng.uniform(-20, 20))
                ref_paddle.velocity = (0.0, vy)
                chipmunk.set_velocity(our_paddle, (0.0, vy))
            ref.step(dt)
            chipmunk.step(ours.ptr, dt)
            p, v = chipmunk.position(our_ball), chipmunk.velocity(our_ball)
            assert (p.x, p.y, v.x, v.y) == (*ref_ball.position, *ref_ball.velocity)
            bounces += scene in ("box", "polygon") and (v.x, v.y) != last
            last = (v.x, v.y)
            if ref_paddle is not None:
                assert chipmunk.position(our_paddle).y == ref_paddle.position.y
    assert scene not in ("box", "polygon") or bounces > 100  # the walls were hit, often


def test_static_scene_is_drawn_once_per_simulator():
    """rollout bakes a simulator's walls into the canvas once; another simulator on the same
    canvas gets its own."""
    canvas = Canvas(32)
    box, polygon = simulators.make("box"), simulators.make("polygon")
    walls = {name: background(sim) for name, sim in (("box", box), ("polygon", polygon))}
    for sim, name in ((box, "box"), (box, "box"), (polygon, "polygon"), (box, "box")):
        frames, _ = simulators.rollout(sim, 3, np.random.default_rng(0), canvas)
        assert (frames[:, walls[name]] == 255).all()
        lit = (frames > 0).sum(axis=(1, 2)) - walls[name].sum()
        assert (lit == 24).all()  # the walls and a radius-3 ball, nothing else


def _reference_step(sim):
    """BallInPolygon.step without gravity as first written: the ball's position read back
    from chipmunk before every substep decision, nothing followed in Python."""
    import math

    from simulators import chipmunk

    p = sim.params
    vel = chipmunk.velocity(sim.ball)
    speed = math.sqrt(vel.x ** 2 + vel.y ** 2)
    n = max(1, math.ceil(speed * p.dt / p.max_substep_px))
    h, left = p.dt / n, n
    while left:
        xy = chipmunk.position(sim.ball)
        gap = min(nx * xy.x + ny * xy.y - d for nx, ny, d in sim._faces) - p.radius
        travel = speed * h
        free = (gap - 0.5 * p.max_substep_px) / travel if travel else math.inf
        k = left if free >= left else (math.floor(free) if free >= 1 else 1)
        chipmunk.step(sim.space.ptr, k * h)
        left -= k


@pytest.mark.parametrize("env,overrides", [("box", {}), ("polygon", {}), ("box", FAST["box"]),
                                           ("polygon", FAST["polygon"]), ("box", {"size": 64}),
                                           ("polygon", {"max_substep_px": 0.1, "radius": 2})])
def test_free_flight_followed_in_floats_is_chipmunks_state(env, overrides):
    """The ball followed in plain floats through free flight (BallInPolygon.step) is, bit for
    bit, the state read back from chipmunk after every substep, over 150 random starts."""
    from simulators import chipmunk

    fast, slow = simulators.make(env, overrides), simulators.make(env, overrides)
    for i in range(150):
        fast.reset(np.random.default_rng(i))
        slow.reset(np.random.default_rng(i))
        for _ in range(30):
            fast.step()
            _reference_step(slow)
            xy, v = chipmunk.position(slow.ball), chipmunk.velocity(slow.ball)
            assert fast.state() == (xy.x, xy.y, v.x, v.y)
            xy, v = chipmunk.position(fast.ball), chipmunk.velocity(fast.ball)
            assert fast.state() == (xy.x, xy.y, v.x, v.y)  # and chipmunk agrees


def test_default_workers_follow_the_work_and_the_idle_cpus(monkeypatch):
    from simulators import generate as gen

    monkeypatch.setattr(gen.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(gen.os, "getloadavg", lambda: (0.3, 0.0, 0.0))
    assert gen.auto_workers(1.0) == 1  # short work: starting workers costs more than it saves
    assert gen.auto_workers(60.0) == 3  # long work: one process per idle CPU
    monkeypatch.setattr(gen.os, "getloadavg", lambda: (3.6, 0.0, 0.0))
    assert gen.auto_workers(60.0) == 1  # busy machine: one process


def test_default_workers_write_the_same_file(tmp_path, monkeypatch):
    """The default path (first block here, the rest in workers when they pay off) writes what
    one process writes."""
    from kvae_bench.data import fingerprint
    from simulators import generate as gen

    one = gen.generate(tmp_path / "one.h5", "pong", n_train=120, n_test=10, steps=6, seed=3,
                       workers=1, progress=False)
    monkeypatch.setattr(gen, "auto_workers", lambda seconds_left: 2)
    auto = gen.generate(tmp_path / "auto.h5", "pong", n_train=120, n_test=10, steps=6, seed=3,
                        progress=False)
    assert fingerprint(auto) == fingerprint(one)

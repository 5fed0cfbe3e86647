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

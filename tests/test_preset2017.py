"""The 2017 presets (simulators/preset2017.py) against the files the 2017 generators made.

Reference figures (issue 15): the 2017 generators (simonkamronn/kvae, kvae/datasets/) run with
pymunk 7 and pygame 2, 1000 + 200 box sequences, binarised at > 0 as the 2017 loader did:
136.6 +- 1.2 lit pixels per frame, 112 wall pixels on rows/cols 2..30, a 25-pixel ball in a
6 x 7 box, collision marks outside the wall square in 12.7% of frames, the ball more than 1 px
inside a wall in 6.0% of frames (at most 2.9 px), jumps of up to 5 px at bounces; in gravity
0.8% of sequences lose the ball. Our statistics are over the first N sequences of seed 0's train
split; their standard errors (spread of the per-sequence rates / sqrt(N)) are about 0.15
percentage points for the rates and 0.01 for the mean lit count, so the tolerances below (about
1 point, 0.5 pixel) allow for the reference's own sampling error and rounding, not for a change
of look or physics.
"""

import functools

import numpy as np
import pytest

import simulators
from kvae_bench import h5io
from simulators import preset2017, presets
from simulators.generate import generate, sequence_rng
from simulators.render import Canvas

N = 600  # sequences per statistic: about 0.8 s per env
SIZE = preset2017.SIZE


@functools.cache
def videos(env: str, n: int = N):
    """lit (N, T, H, W) bool and states (N, T, S) float64 of the first n train sequences."""
    p = presets.get(env, "2017")
    out = [p.sequence(sequence_rng(0, "train", i), p.steps, None) for i in range(n)]
    assert all(u is None for _, _, u in out)
    return (np.stack([f for f, _, _ in out]) > 0,
            np.stack([s for _, s, _ in out]).astype(np.float64))


def pymunk_xy(states):
    """The ball's pymunk position (y up) from our states (x = column, y = row)."""
    return states[..., 0] + 0.5, SIZE + 0.5 - states[..., 1]


def box_wall_distance(states):
    """Distance (px) from the ball's centre to the nearest 2017 box wall (x, y = 2 or 30)."""
    x, y = pymunk_xy(states)
    return np.minimum.reduce([x - 2, 30 - x, y - 2, 30 - y])


def square(lo: int, hi: int) -> np.ndarray:
    """(H, W) bool: the 1-pixel outline of rows/cols lo..hi."""
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[lo:hi + 1, [lo, hi]] = m[[lo, hi], lo:hi + 1] = True
    return m


def ball_only(lit, static, region=None):
    """(N, T) mask of frames whose moving pixels (outside the static scene and in region)
    are exactly one clean ball: 25 pixels in a 6 x 7 box; and those pixels (N, T, H, W)."""
    moving = lit & ~static
    if region is not None:
        moving &= region
    rows, cols = moving.any(-1), moving.any(-2)
    idx = np.arange(SIZE)
    height = np.where(rows, idx, -1).max(-1) - np.where(rows, idx, SIZE).min(-1) + 1
    width = np.where(cols, idx, -1).max(-1) - np.where(cols, idx, SIZE).min(-1) + 1
    return (moving.sum((-2, -1)) == 25) & (height == 6) & (width == 7), moving


def test_box_walls_lit_pixels_and_ball():
    lit, states = videos("box")
    static = lit.all(axis=(0, 1))
    assert np.array_equal(static, square(2, 30)) and static.sum() == 112
    count = lit.sum((-2, -1))
    assert abs(count.mean() - 136.6) < 0.5 and abs(count.std() - 1.2) < 0.3
    # away from the walls (and their collision marks) the ball is always the 2017 ball:
    # pygame's 24-pixel disc plus the orientation line's pixel at column int(x) + 3
    far = box_wall_distance(states) > 4.5
    clean, _ = ball_only(lit, static)
    assert far.sum() > 5000 and clean[far].all()


def test_box_marks_penetration_and_jumps():
    lit, states = videos("box")
    outside = np.ones((SIZE, SIZE), dtype=bool)
    outside[2:31, 2:31] = False
    marks = lit[..., outside].any(-1)
    assert not marks[:, 0].any()  # no step before frame 0, so no contact to mark
    assert abs(marks.mean() - 0.127) < 0.01
    sink = 3 - box_wall_distance(states)  # how far the ball's edge is inside a wall
    assert abs((sink > 1).mean() - 0.060) < 0.01 and 2.0 < sink.max() <= 3.0
    jump = np.linalg.norm(np.diff(states[..., :2], axis=1), axis=-1)
    assert 3.5 < jump.max() <= 5.5  # top speed 15 is 3 px a frame; bounces jump further


def test_gravity_falls_down_the_frame_and_loses_the_ball_now_and_then():
    lit, states = videos("gravity", 1000)
    assert np.array_equal(lit.all(axis=(0, 1)), square(2, 30))
    x, y = pymunk_xy(states)
    lost = ((x < 2) | (x > 30) | (y < 2) | (y > 30)).any(-1)
    assert 0.002 <= lost.mean() <= 0.02  # 2017: 0.8%; here 10 of 1000
    # free flight: vy (rows, down) grows by g dt = 5 * 0.2 per frame
    assert np.median(np.diff(states[..., 3], axis=1)) == pytest.approx(1.0, abs=1e-5)


def test_polygon_walls_are_our_default_polygon():
    lit, _ = videos("polygon", 200)
    static = lit.all(axis=(0, 1))
    # the 2017 points (x, y up) drawn at (x, 32 - y): the edge (8, 30)-(25, 30) on top ...
    assert static[2, 8:26].all() and not static[:2].any()
    assert static[31, 3:16].all() and static[17, 1]  # ... (3, 1)-(15, 1) at the bottom
    sim = simulators.make("polygon")
    canvas = Canvas(SIZE)
    ours = np.stack([simulators.rollout(sim, 2, sequence_rng(0, "train", i), canvas)[0]
                     for i in range(3)]).min(axis=(0, 1)) > 0
    assert np.array_equal(static, ours)  # generator version 2 (1: upside down, one row off)


def test_pong_roof_floor_and_paddles():
    lit, states = videos("pong", 300)
    static = lit.all(axis=(0, 1))
    rows = np.zeros((SIZE, SIZE), dtype=bool)
    rows[[0, SIZE - 1]] = True  # 2017: floor at y = 1, roof at y = 32
    assert np.array_equal(static, rows)
    # our default pong (generator version 2) has the same roof, floor and 7-row paddles
    sim = simulators.make("pong")
    ours = [simulators.rollout(sim, 20, sequence_rng(0, "train", i), Canvas(SIZE))
            for i in range(20)]
    assert np.array_equal(np.stack([f for f, _ in ours]).min(axis=(0, 1)) > 0, rows)
    for frames, _ in ours:
        paddle = frames[:, 1:SIZE - 1, 0] > 0  # the left paddle's column, without roof, floor
        assert (paddle.sum(-1) == 7).all()
    centres = np.arange(1, SIZE - 1) + 0.5  # rows 1 .. 30
    for cols, j in ((slice(0, 2), 4), (slice(SIZE - 2, SIZE), 5)):  # left, right paddle
        centre = states[..., j]
        inside = (centre > 4) & (centre < SIZE - 4)  # the whole paddle between roof, floor
        drawn = lit[..., 1:SIZE - 1, cols][inside]  # (n, 30, 2)
        # 7 rows by 2 columns centred on the state (the ball or a mark may add pixels)
        want = np.abs(centres - centre[inside][:, None]) < 3.5  # (n, 30)
        assert inside.mean() > 0.9 and (want.sum(-1) == 7).all()
        assert drawn[want].all()
        assert (drawn == want[..., None]).all((-2, -1)).mean() > 0.9
    region = simulators.scoring("pong", SIZE).object_region
    clean, _ = ball_only(lit, static, region)
    assert clean.mean() > 0.8


@pytest.mark.parametrize("env", ["box", "gravity", "polygon", "pong"])
def test_states_are_what_the_frames_show(env):
    """states[t] is the ball frame t shows (pong draws after the step, the others before it):
    the clean ball's centroid is the drawn disc's centre (int(x), H - int(y)), within half a
    pixel of the state per axis, moved (3.5, 0.5) / 25 by the orientation line's pixel."""
    lit, states = videos(env, 200)
    static = lit.all(axis=(0, 1))
    region = simulators.scoring(env, SIZE).object_region
    clean, moving = ball_only(lit, static, region)
    centres = np.arange(SIZE) + 0.5
    ball = moving[clean]
    cx = (ball * centres).sum((-2, -1)) / 25
    cy = (ball * centres[:, None]).sum((-2, -1)) / 25
    dx, dy = cx - states[clean][:, 0], cy - states[clean][:, 1]
    assert clean.sum() > 1000
    assert np.abs(dx - 3.5 / 25).max() <= 0.5 + 1e-5
    assert np.abs(dy - 0.5 / 25).max() <= 0.5 + 1e-5
    assert abs(dx.mean() - 3.5 / 25) < 0.05 and abs(dy.mean() - 0.5 / 25) < 0.05


def test_file_same_for_any_workers_and_named_env_2017(tmp_path):
    one = generate(tmp_path / "one.h5", "box", n_train=60, n_test=10, preset="2017",
                   workers=1, progress=False)
    two = generate(tmp_path / "two.h5", "box", n_train=60, n_test=10, preset="2017",
                   workers=2, progress=False)
    meta = h5io.read_meta(two)
    assert meta["preset"] == "2017" and h5io.dataset_name(meta) == "box-2017"
    assert meta["env_params"]["physics_steps_per_frame"] == 1
    for split in ("train", "test"):
        a, b = h5io.read(one, split), h5io.read(two, split)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.states, b.states)
        assert a.controls is None and a.columns == ("x", "y", "vx", "vy")
    # sequence i is its own: the same as drawn alone
    frames, states, _ = presets.get("box", "2017").sequence(sequence_rng(0, "train", 57), 20,
                                                            None)
    np.testing.assert_array_equal(h5io.read(one, "train").frames[57], frames)
    np.testing.assert_array_equal(h5io.read(one, "train").states[57], states)

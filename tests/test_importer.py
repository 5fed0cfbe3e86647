"""`kvae-bench import-npz` on files written the way the 2017 generators wrote them.

The files are made here with pymunk and pygame as simonkamronn/kvae `kvae/datasets/*.py` made
theirs: pymunk 5's debug_draw (y up, coordinates truncated, antialiased walls, a dark orientation
line on the ball, collision marks) on a 24-bit surface, `array2d` divided by 2^24 - 1 (pong: 255);
box, gravity and polygon draw before `space.step` and store the state after it, pong steps
first and stores `controls = (None, None)`, a pickled object array.
"""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pymunk  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import simulators  # noqa: E402
from kvae_bench import h5io, metrics  # noqa: E402
from kvae_bench.cli import main  # noqa: E402
from kvae_bench.errors import UserError  # noqa: E402
from kvae_bench.importer import import_npz  # noqa: E402

SIZE, STEPS, DT, RADIUS = 32, 20, 0.2, 3
WHITE = (255, 255, 255, 255)
BOX = [(2, 2), (2, 30), (30, 30), (30, 2), (2, 2)]
POLYGON = [(3, 1), (1, 15), (8, 30), (25, 30), (30, 8), (15, 1), (3, 1)]  # shape=2, y up
WALLS = {"box": BOX, "gravity": BOX, "polygon": POLYGON}
GRAVITY = {"box": (0.0, 0.0), "gravity": (0.0, -5.0), "polygon": (0.0, 0.0)}
# starts (x, y, vx, vy), y up, that hit a wall during the first step (its undoing is exercised)
BOUNCE_FIRST = {
    "box": [(6, 16, -15, 0), (6, 6, -10, -10), (26, 20, 12, 5), (16, 26, 0, 14)],
    "gravity": [(16, 6, 0, -8), (25.5, 26, 9, 4)],
    "polygon": [(22.5, 16, *(15 * np.array([22, 5]) / np.hypot(22, 5)))],
}


class Draw2017(pymunk.SpaceDebugDrawOptions):
    """pymunk 5's pygame_util.DrawOptions: positive y up, points truncated with int()."""

    def __init__(self, surface):
        self.surface = surface
        super().__init__()

    def _px(self, p):
        return int(p[0]), self.surface.get_height() - int(p[1])

    def draw_circle(self, pos, angle, radius, outline_color, fill_color):
        p = self._px(pos)
        pygame.draw.circle(self.surface, fill_color.as_int(), p, round(radius), 0)
        edge = self._px(pos + pymunk.Vec2d(radius, 0).rotated(angle))
        pygame.draw.lines(self.surface, outline_color.as_int(), False, [p, edge], 1)

    def draw_segment(self, a, b, color):
        pygame.draw.aalines(self.surface, color.as_int(), False, [self._px(a), self._px(b)])

    def draw_fat_segment(self, a, b, radius, outline_color, fill_color):
        width = max(1, round(radius * 2))
        pygame.draw.lines(self.surface, fill_color.as_int(), False, [self._px(a), self._px(b)],
                          width)

    def draw_polygon(self, verts, radius, outline_color, fill_color):
        pygame.draw.polygon(self.surface, fill_color.as_int(), [self._px(v) for v in verts])

    def draw_dot(self, size, pos, color):
        pygame.draw.circle(self.surface, color.as_int(), self._px(pos), round(size), 0)


def _segments(space, points, elasticity):
    lines = [pymunk.Segment(space.static_body, a, b, 0.0) for a, b in zip(points, points[1:])]
    for line in lines:
        line.elasticity, line.color = elasticity, WHITE
    space.add(*lines)


def _ball(space, x, y, vx, vy, elasticity):
    body = pymunk.Body(1, pymunk.moment_for_circle(1, 0, RADIUS, (0, 0)))
    body.position, body.velocity = (x, y), (vx, vy)
    ball = pymunk.Circle(body, RADIUS, (0, 0))
    ball.elasticity, ball.color = elasticity, WHITE
    space.add(body, ball)
    return body, ball


def _starts(env, n, rng):
    """The 2017 start distribution (N(16, std^2) clipped to [6, 26], speed U, angle U) after
    the hand-made first-step bounces."""
    std, (lo, hi) = {"box": (10, (10, 15)), "gravity": (8, (5, 10)),
                     "polygon": (2.5, (10, 15))}[env]
    starts = list(BOUNCE_FIRST[env])
    while len(starts) < n:
        x, y = np.clip(16 + std * rng.standard_normal(2), 6, 26)
        speed, angle = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
        starts.append((x, y, speed * np.cos(angle), speed * np.sin(angle)))
    return starts[:n]


def ball_2017(env, n, seed):
    """(images, state) as kvae/datasets/{box,box_gravity,polygon}.py wrote them, and the
    truth: (N, T, 4) the state each frame shows, pymunk coordinates."""
    space = pymunk.Space()
    space.gravity = GRAVITY[env]
    _segments(space, WALLS[env], 1.0)
    surface = pygame.Surface((SIZE, SIZE), depth=24)
    draw = Draw2017(surface)
    images = np.empty((n, STEPS, SIZE, SIZE), np.float32)
    state = np.empty((n, STEPS, 4), np.float32)
    truth = np.empty((n, STEPS, 4))
    for s, start in enumerate(_starts(env, n, np.random.default_rng(seed))):
        body, ball = _ball(space, *start, elasticity=1.0)
        for t in range(STEPS):
            truth[s, t] = (*body.position, *body.velocity)
            surface.fill((0, 0, 0))
            space.debug_draw(draw)
            space.step(DT)
            images[s, t] = pygame.surfarray.array2d(surface).swapaxes(1, 0) / (2**24 - 1)
            state[s, t] = (*body.position, *body.velocity)
        space.remove(body, ball)
    return images, state, truth


def pong_2017(n, seed):
    """images as kvae/datasets/pong.py wrote them: drawn after the step, packed RGB / 255."""
    rng = np.random.default_rng(seed)
    space = pymunk.Space()
    _segments(space, [(0, 1), (SIZE, 1)], 0.99)
    _segments(space, [(0, SIZE), (SIZE, SIZE)], 0.99)
    surface = pygame.Surface((SIZE, SIZE), depth=24)
    draw = Draw2017(surface)
    images = np.empty((n, STEPS, SIZE, SIZE), np.float32)
    for s in range(n):
        x, y = np.clip(16 + 3 * rng.standard_normal(2), 6, 26)
        angle = rng.uniform(0, 2 * np.pi)
        body, ball = _ball(space, x, y, 10 * np.cos(angle), 10 * np.sin(angle), 0.9)
        paddles = [pymunk.Segment(space.static_body, (px, 13), (px, 19), 1.0)
                   for px in (0, SIZE - 2)]
        for paddle in paddles:
            paddle.elasticity, paddle.color = 0.99, WHITE
        for t in range(STEPS):
            surface.fill((0, 0, 0))
            for paddle in paddles:
                shift = float(np.clip(body.position.y - (paddle.a.y + paddle.b.y) / 2, -2, 2))
                paddle.unsafe_set_endpoints(paddle.a + (0, shift), paddle.b + (0, shift))
            space.add(*paddles)
            space.step(DT)
            space.debug_draw(draw)
            images[s, t] = pygame.surfarray.array2d(surface).swapaxes(1, 0).astype(
                np.float32) / 255
            space.remove(*paddles)
        space.remove(body, ball)
    return images


class Marker:
    """Unpickling it creates a folder: proof that a file ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def ours(truth):
    """The truth in our convention: where pymunk 5 drew the ball, y down."""
    x, y, vx, vy = np.moveaxis(truth, -1, 0)
    return np.stack([x - 0.5, SIZE + 0.5 - y, vx, -vy], -1)


def true_frame_errors(path, xy=None):
    """(N, T) position error of the true test frames as `evaluate` scores predictions."""
    meta = h5io.read_meta(path)
    test = h5io.read(path, "test")
    scoring = simulators.scoring(meta["env"], meta["image_size"])
    frames = test.frames > 127
    ignore = metrics.static_background(frames) | ~scoring.object_region
    if xy is None:
        xy = test.states[..., [test.columns.index(c) for c in scoring.position_columns]]
    return metrics.position_errors(frames, xy, ignore)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def files_2017(tmp_path_factory):
    """2017-layout train and test files of every env, and the truth of each test file."""
    root = tmp_path_factory.mktemp("npz2017")
    made = {}
    for k, env in enumerate(WALLS):
        train_images, train_state, _ = ball_2017(env, 12, seed=k)
        images, state, truth = ball_2017(env, 40, seed=10 + k)
        np.savez(root / f"{env}.npz", images=train_images, state=train_state)
        np.savez(root / f"{env}_test.npz", images=images, state=state)
        made[env] = (root / f"{env}.npz", root / f"{env}_test.npz", images, state, truth)
    marker = root / "ran_code"
    for name, n, seed in (("pong.npz", 12, 0), ("pong_test.npz", 10, 1)):
        np.savez(root / name, images=pong_2017(n, seed),
                 controls=np.array([None, Marker(marker)], dtype=object))
    made["pong"] = (root / "pong.npz", root / "pong_test.npz", marker)
    return made


@pytest.mark.parametrize("env", list(WALLS))
def test_ball_envs_import_aligned_with_their_frames(files_2017, tmp_path, env):
    train, test, images, stored, truth = files_2017[env]
    out = tmp_path / f"{env}.h5"
    r = cli("import-npz", train, test, "--env", env, "--out", out)
    assert r.exit_code == 0, r.output
    assert "states x, y, vx, vy" in r.stdout and r.stderr == ""
    got = h5io.read(out, "test")
    assert got.columns == ("x", "y", "vx", "vy")
    # the physics of the first step is undone where the ball bounced in it, too
    v1_no_bounce = stored[:, 0, 2:] - np.asarray(GRAVITY[env]) * DT
    assert (np.abs(truth[:, 0, 2:] - v1_no_bounce).max(-1) > 1).sum() >= 1
    np.testing.assert_allclose(got.states, ours(truth), atol=2e-4)
    # frames as the 2017 loader saw them: every drawn pixel
    np.testing.assert_array_equal(got.frames, np.where(images > 0, 255, 0))
    err = true_frame_errors(out)
    assert np.nanmedian(err) < 0.75 and np.nanmean(err) < 1.0, np.nanmedian(err)
    assert np.isnan(err).mean() < 0.01
    meta = h5io.read_meta(out)
    assert meta["env_params"]["threshold"] == 0
    assert "median error of the true test frames" in meta["env_params"]["position_metrics"]
    # the states as stored (what import-npz used to keep) put the ball many pixels off
    assert np.nanmedian(true_frame_errors(out, xy=stored[..., :2])) > 5


def test_pong_packed_values_without_unpickling(files_2017, tmp_path):
    train, test, marker = files_2017["pong"]
    with np.load(test, allow_pickle=False) as z:
        assert z["images"].max() == pytest.approx((2**24 - 1) / 255)  # white is 65793
    out = tmp_path / "pong.h5"
    r = cli("import-npz", train, test, "--env", "pong", "--out", out)
    assert r.exit_code == 0, r.output
    assert not os.path.exists(marker), "importing unpickled the controls"
    assert "position metrics" in r.stderr and "skipped" in r.stderr
    assert "no states" in r.stdout
    meta = h5io.read_meta(out)
    assert meta["env_params"]["position_metrics"] == "skipped (no states)"
    assert meta["env_params"]["source_scale"].startswith("packed RGB / 255")
    got = h5io.read(out, "test")
    assert got.states.shape == (10, STEPS, 0)
    with np.load(test, allow_pickle=False) as z:
        images = z["images"]
    np.testing.assert_array_equal(got.frames, np.where(images > 0, 255, 0))
    # a threshold means the same on pong's scale as on box's: grey level g at g / 255
    r = cli("import-npz", train, test, "--env", "pong", "--out", tmp_path / "p5.h5",
            "--threshold", 0.5)
    assert r.exit_code == 0, r.output
    lit = h5io.read(tmp_path / "p5.h5", "test").frames > 0
    np.testing.assert_array_equal(lit, images * 255 / (2**24 - 1) > 0.5)
    assert 0 < lit.sum() < (images > 0).sum()
    # the marker test can fail: loading the controls the unsafe way runs the file's code
    with np.load(test, allow_pickle=True) as z:
        z["controls"]
    assert os.path.exists(marker)
    os.rmdir(marker)


def test_threshold_05_cuts_the_orientation_line_out_of_the_ball(files_2017, tmp_path):
    train, test, images, _, _ = files_2017["box"]
    for threshold, name in ((0.0, "all.h5"), (0.5, "half.h5")):
        r = cli("import-npz", train, test, "--env", "box", "--out", tmp_path / name,
                "--threshold", threshold)
        assert r.exit_code == 0, r.output
        assert h5io.read_meta(tmp_path / name)["env_params"]["threshold"] == threshold
    lit = {name: h5io.read(tmp_path / name, "test").frames > 0 for name in ("all.h5", "half.h5")}
    # a frame where the ball touches nothing: its pixels are those not in the walls
    walls = metrics.static_background(lit["all.h5"])
    counts = {name: (f & ~walls).sum(axis=(-2, -1)) for name, f in lit.items()}
    # the disc (24 px) and the orientation line's end (1 px) vs the line's 3 px inside cut out
    assert np.median(counts["all.h5"]) == 25
    assert np.median(counts["half.h5"]) == 21


def test_pickled_images_are_refused_unopened(tmp_path):
    marker = tmp_path / "ran_code"
    np.savez(tmp_path / "evil.npz", images=np.array([Marker(marker)], dtype=object))
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 3, 8, 8), np.float32))
    out = tmp_path / "out.h5"
    r = cli("import-npz", tmp_path / "evil.npz", tmp_path / "ok.npz", "--env", "box",
            "--out", out)
    assert r.exit_code == 1 and "pickled object array" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not marker.exists() and not out.exists()
    np.savez(tmp_path / "evil_state.npz", images=np.zeros((2, 3, 8, 8), np.float32),
             state=np.array([Marker(marker)], dtype=object))
    with pytest.raises(UserError, match="`state` is a pickled object array"):
        import_npz(tmp_path / "evil_state.npz", tmp_path / "ok.npz", env="box", out=out)
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("arrays,options,message", [
    ({"images": np.full((2, 3, 8, 8), 70000.0)}, (), "[0, 65793] with white at 65793"),
    ({"images": np.full((2, 3, 8, 8), 2.0)}, (), "must lie in [0, 1]"),
    ({"images": np.full((2, 3, 8, 8), -0.5)}, (), "must lie in [0, 1]"),
    ({"images": np.full((2, 3, 8, 8), np.nan)}, (), "NaN"),
    ({"images": np.zeros((2, 3, 8, 6))}, (), "H = W"),
    ({"images": np.zeros((0, 3, 8, 8))}, (), "none of them 0"),
    ({"images": np.zeros((2, 3, 8, 8)), "state": np.zeros((2, 3, 2))}, (),
     "state must be finite numbers of shape (2, 3, 4)"),
    ({"images": np.zeros((2, 3, 8, 8)), "state": np.full((2, 3, 4), np.inf)}, (),
     "state must be finite"),
    ({"images": np.zeros((2, 3, 8, 8)), "state": np.zeros((2, 3, 4))}, (),
     "one file has `state` and the other has not"),
    ({"images": np.zeros((2, 3, 8, 8))}, ("--threshold", "1"), "--threshold must be in [0, 1)"),
    ({"images": np.zeros((2, 3, 8, 8))}, ("--threshold", "nan"), "--threshold must be in"),
    ({"images": np.zeros((2, 3, 8, 8))}, ("--threshold", "-0.1"), "--threshold must be in"),
])
def test_bad_files_are_one_line_errors_and_write_nothing(tmp_path, arrays, options, message):
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "b.npz", images=np.zeros((2, 3, 8, 8)))
    out = tmp_path / "out.h5"
    r = cli("import-npz", tmp_path / "a.npz", tmp_path / "b.npz", "--env", "box", "--out", out,
            *options)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [r.output.strip()] and message in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]


def test_states_of_an_env_without_2017_physics_are_dropped(tmp_path):
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, images=np.zeros((2, 3, 16, 16), np.float32),
                 state=np.zeros((2, 3, 4), np.float32))
    out = tmp_path / "p.h5"
    r = cli("import-npz", tmp_path / "a.npz", tmp_path / "b.npz", "--env", "pendulum",
            "--out", out)
    assert r.exit_code == 0, r.output
    assert "no 2017 generator of pendulum" in r.stderr and "skipped" in r.stderr
    assert h5io.read(out, "train").states.shape == (2, 3, 0)
    with h5py.File(out) as f:
        assert "skipped" in f.attrs["env_params"]

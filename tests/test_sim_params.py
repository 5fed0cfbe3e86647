"""validate() is the spec of what a user may type: every parameter value that would break a
guarantee of README "Data" (the ball stays inside its walls and is never drawn over one, no
frame is empty, generation ends) is refused with a one-line ValueError naming the parameter, its
value and its valid range; values just inside the derived bounds keep the guarantees over 100
sequences; and each rule is needed (the same simulator built from unvalidated params breaks)."""

import dataclasses
import math

import numpy as np
import pytest

import simulators
from simulators.base import format_value
from simulators.render import Canvas

ENVS = list(simulators.ENVS)


def refused(env, overrides, name):
    """The one-line message of the ValueError that env_params raises; it names `name`."""
    with pytest.raises(ValueError) as info:
        simulators.env_params(env, overrides)
    message = str(info.value)
    assert name in message and "\n" not in message, message
    return message


def unvalidated(env, **values):
    """A simulator built around params that skip validate(), to show what a rule prevents."""
    sim_cls, params_cls = simulators.ENVS[env]
    return sim_cls(params_cls(**values))


def faults(sim, n=100, steps=20):
    """Over n sequences: the smallest margin of the ball's edge inside its walls (the frame for
    the pendulum; negative: overlapping), and the numbers of frames whose drawn ball covers a
    wall pixel or that show no ball at all."""
    size, r = sim.params.size, sim.params.radius
    canvas = Canvas(size)
    sim.draw_static(canvas)
    walls = canvas.pixels() > 0
    worst, over, empty = math.inf, 0, 0
    for i in range(n):
        frames, states = simulators.rollout(sim, steps, np.random.default_rng(i), Canvas(size))
        for frame, (x, y, *_) in zip(frames, states):
            if isinstance(sim, simulators.ENVS["polygon"][0]):
                margin = sim.clearance((x, y)) - r
            elif isinstance(sim, simulators.ENVS["pong"][0]):
                margin = min(x - sim.left, sim.right - x, y - sim.top, sim.bottom - y) - r
            else:
                margin = min(x, size - x, y, size - y) - r
            worst = min(worst, margin)
            ball = Canvas(size)
            ball.disc(x, y, r)
            over += bool((ball.pixels() > 0)[walls].any())
            lit = (frame > 0) & ~walls
            lit[:, :2] = lit[:, -2:] = False  # pong's paddles; the ball is never drawn there
            empty += not lit.any()
    return worst, over, empty


def keeps_guarantees(sim, n=100, steps=20):
    worst, over, empty = faults(sim, n, steps)
    assert worst > -sim.params.max_substep_px and over == 0 and empty == 0, (worst, over, empty)


# ---- every value is checked, the most basic problem first ----------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_defaults_validate_at_every_size(env):
    simulators.make(env)
    smallest = 28 if env == "pendulum" else 16  # the pendulum's rod is 10 pixels long
    for size in range(smallest, 257):
        simulators.env_params(env, {"size": str(size)})


def non_finite_cases():
    for env, (_, cls) in simulators.ENVS.items():
        for field in dataclasses.fields(cls):
            default = field.default
            if isinstance(default, float):
                texts = ["inf", "-inf", "nan"]
            elif isinstance(default, tuple) and default and isinstance(default[0], tuple):
                texts = ["inf" + format_value(default)[format_value(default).index(","):]]
            elif isinstance(default, tuple) and default:
                texts = ["0,inf", "nan,0"]
            elif isinstance(default, tuple):  # box's vertices, which must stay empty
                texts = ["inf,1;2,2;3,3"]
            else:
                continue
            yield from ((env, field.name, text) for text in texts)


@pytest.mark.parametrize("env,name,text", list(non_finite_cases()))
def test_every_number_must_be_finite(env, name, text):
    message = refused(env, {name: text}, name)
    assert "finite" in message


@pytest.mark.parametrize("env", ENVS)
def test_size_is_checked_first(env):
    other = {"box": "wall_inset", "gravity": "gravity", "polygon": "vertices",
             "pendulum": "length", "pong": "paddle_speed"}[env]
    other_bad = {"wall_inset": "99", "gravity": "0,nan", "vertices": "-9,0;1,1;2,9",
                 "length": "99", "paddle_speed": "0"}[other]
    for size in ("0", "8", "-32"):
        message = refused(env, {other: other_bad, "size": size}, "size")
        assert message.startswith("size must be at least 16"), message
    message = refused(env, {"size": "257"}, "size")
    assert "at most 256" in message
    assert refused(env, {other: other_bad}, other)


@pytest.mark.parametrize("env,overrides,name", [
    # base: time step, ball, substeps
    ("box", {"dt": "0"}, "dt"),
    ("box", {"dt": "-0.2"}, "dt"),
    ("box", {"radius": "0"}, "radius"),
    ("box", {"radius": "9"}, "radius"),  # more than size / 4
    ("box", {"radius": "2.6"}, "radius"),  # drawn with radius 3: over a wall pixel
    ("box", {"max_substep_px": "0"}, "max_substep_px"),
    ("box", {"max_substep_px": "0.3"}, "max_substep_px"),
    ("pendulum", {"max_substep_px": "1"}, "max_substep_px"),
    # speeds, start, collisions
    ("box", {"speed_min": "-1"}, "speed_min"),
    ("box", {"speed_max": "5"}, "speed_max"),  # below speed_min
    ("box", {"speed_min": "20"}, "speed_min"),  # above speed_max
    ("pong", {"speed_min": "-1"}, "speed_min"),
    ("pong", {"speed_min": "20", "paddle_speed": "40"}, "speed_min"),
    ("box", {"start_std": "-1"}, "start_std"),
    ("pong", {"start_std": "-1"}, "start_std"),
    ("box", {"elasticity": "0.9"}, "elasticity"),
    ("gravity", {"elasticity": "0"}, "elasticity"),
    ("polygon", {"elasticity": "1.5"}, "elasticity"),
    ("pong", {"elasticity": "0.5"}, "elasticity"),
    ("gravity", {"gravity": (0.0, 1.0, 2.0)}, "gravity"),
    ("pendulum", {"gravity": (1.0,)}, "gravity"),
    # generation would take forever: the substeps per frame are capped
    ("box", {"speed_max": "1e9"}, "speed_max"),
    ("polygon", {"speed_max": "1e6"}, "speed_max"),
    ("pong", {"speed_max": "1e6", "paddle_speed": "1e6"}, "speed_max"),
    ("gravity", {"gravity": "0,1e9"}, "gravity"),
    ("box", {"dt": "1e6"}, "dt"),
    ("box", {"max_substep_px": "1e-9"}, "max_substep_px"),
    ("pendulum", {"dt": "1e6"}, "dt"),
    # box walls
    ("box", {"wall_inset": "-1"}, "wall_inset"),
    ("box", {"wall_inset": "9"}, "wall_inset"),
    ("box", {"wall_inset": "8", "radius": "8"}, "radius"),  # 7 pixels from centre to wall
    ("gravity", {"size": "16", "wall_inset": "4", "radius": "4"}, "radius"),
    ("box", {"vertices": "2,2;29,2;16,29"}, "vertices"),
    ("box", {"size": "32.5"}, "size"),
    ("box", {"size": 32.0}, "size"),  # from Python: frames need an int
    ("box", {"wall_inset": 1.5}, "wall_inset"),
    # polygon walls
    ("polygon", {"vertices": "-5,-5;40,-5;40,40;-5,40"}, "vertices"),  # outside the frame
    ("polygon", {"vertices": "3,1;1,15;8,30;25,30;32,8;15,1"}, "vertices"),
    ("polygon", {"vertices": "3,1;1,15;8,30;25,30;31.6,8;15,1"}, "vertices"),  # pixel 32
    ("polygon", {"size": "16", "vertices": "0,0;33,0;33,33;0,33"}, "vertices"),  # 16 at 16
    ("polygon", {"vertices": "2,2;29,2"}, "vertices"),  # 2 points
    ("polygon", {"vertices": "2,2;29,2;16,10;16,29"}, "convex"),
    ("polygon", {"vertices": "2,2;29,2;2,29;29,29"}, "convex"),  # crossing itself
    ("polygon", {"vertices": "2,2;29,2;29,2.2;16,29"}, "vertices"),  # one pixel twice
    ("polygon", {"vertices": "2,2;16,16;29,29"}, "vertices"),  # no area
    ("polygon", {"vertices": "2,2;29,2;16,29;2,2;29,2;16,29"}, "vertices"),  # twice around
    ("polygon", {"vertices": "2,2;29,2;29,8;2,8"}, "vertices"),  # frame centre outside
    ("polygon", {"vertices": "2,9;29,9;29,22;2,22", "radius": "7"}, "radius"),
    ("polygon", {"vertices": ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0), (7.0, 8.0, 9.0))}, "vertices"),
    # pong
    ("pong", {"paddle_speed": "0"}, "paddle_speed"),
    ("pong", {"paddle_speed": "9.99"}, "paddle_speed"),  # the ball's vertical speed is 10
    ("pong", {"speed_min": "20", "speed_max": "40", "paddle_speed": "30"}, "paddle_speed"),
    ("pong", {"paddle_length": "1"}, "paddle_length"),
    ("pong", {"paddle_length": "29"}, "paddle_length"),
    # pendulum
    ("pendulum", {"length": "13"}, "length"),  # bob leaves the frame
    ("pendulum", {"size": "16"}, "length"),
    ("pendulum", {"length": "0"}, "length"),
    ("pendulum", {"length": "-5"}, "length"),
    ("pendulum", {"angle_max": "-0.1"}, "angle_max"),
    ("pendulum", {"angle_max": "4"}, "angle_max"),
    ("pendulum", {"omega_max": "-1"}, "omega_max"),
    ("pendulum", {"omega_max": "70"}, "omega_max"),  # the pin joint stretches the rod
    ("pendulum", {"gravity": "0,20000"}, "gravity"),  # so is a fast fall
    ("pendulum", {"rod_width": "-1"}, "rod_width"),
    ("pendulum", {"rod_width": "7"}, "rod_width"),
    ("pendulum", {"rod_width": 1.5}, "rod_width"),
])
def test_bad_value_is_refused_with_its_name(env, overrides, name):
    refused(env, overrides, name)


def test_messages_give_the_value_and_the_range():
    assert refused("box", {"speed_max": "inf"}, "speed_max").endswith("got inf")
    assert "[0, 8], got 9" in refused("box", {"wall_inset": "9"}, "wall_inset")
    assert "at most 7" in refused("box", {"wall_inset": "8", "radius": "8"}, "radius")
    message = refused("box", {"max_substep_px": "0.3"}, "max_substep_px")
    assert "(0, 0.25]" in message and message.endswith("got 0.3")
    assert "speed_max=1e+09" in refused("box", {"speed_max": "1e9"}, "speed_max")
    assert "at most 10000" in refused("box", {"speed_max": "1e9"}, "speed_max")
    message = refused("pong", {"paddle_speed": "0"}, "paddle_speed")
    assert "at least speed_max = 10" in message and message.endswith("got 0")
    assert "[1, 12]" in refused("pendulum", {"length": "13"}, "length")
    message = refused("polygon", {"vertices": "3,1;1,15;8,30;25,30;32,8;15,1"}, "vertices")
    assert "32,8 is pixel 32,8 at size 32, outside [0, 31]" in message


def test_make_validates_params_objects():
    with pytest.raises(ValueError, match="size"):
        simulators.make("box", simulators.ENVS["box"][1](size=0))
    with pytest.raises(ValueError, match="PongParams"):
        simulators.make("pong", simulators.ENVS["box"][1]())


# ---- the derived bounds: just inside keeps the guarantees, outside breaks them -------------


def test_pong_paddles_as_fast_as_the_ball_keep_it_in():
    """A paddle that moves at least as fast as the ball's vertical speed stays level with it;
    tested at the bound with the shortest paddle and smallest ball, over 40 frames."""
    tight = {"speed_min": 30.0, "speed_max": 30.0, "paddle_speed": 30.0, "paddle_length": 2.0,
             "radius": 1.0}
    keeps_guarantees(simulators.make("pong", tight), steps=40)
    keeps_guarantees(simulators.make("pong", {"paddle_length": 28.0}), steps=40)  # the longest
    slow = unvalidated("pong", **dict(tight, paddle_speed=24.0))
    assert faults(slow, n=100, steps=40)[2] > 0  # the ball leaves the field


def test_polygon_at_the_frame_edge_with_the_widest_ball_keeps_it_in():
    """Corners on the frame's edge pixels, and the largest radius that fits around the centre."""
    edge = "0,0;31,8;8,31"  # slanted walls; 4.66 pixels from the centre to the nearest face
    keeps_guarantees(simulators.make("polygon", {"vertices": edge, "radius": "4"}))
    refused("polygon", {"vertices": edge, "radius": "5"}, "radius")
    slab = {"vertices": "2,9;29,9;29,22;2,22", "radius": "6"}  # faces 6 pixels from centre
    keeps_guarantees(simulators.make("polygon", slab))
    keeps_guarantees(simulators.make("polygon", {"vertices": "0,0;30,0;30,30;0,30",
                                                 "size": "16"}))
    outside = unvalidated("polygon", vertices=((-5.0, -5.0), (40.0, -5.0), (40.0, 40.0),
                                               (-5.0, 40.0)))
    assert faults(outside, n=20)[2] > 0  # the ball leaves the frame


def test_pendulum_at_its_limits_keeps_the_bob_in_the_frame():
    """The longest rod and the fastest swing that validate() accepts, with the longest
    substeps: the bob stays inside the frame."""
    params = simulators.env_params("pendulum", {"max_substep_px": "0.25"})
    length = params.size / 2 - 1 - params.radius
    top = simulators.pendulum.PIN_JOINT_RATE / 0.25  # top angular speed allowed
    omega = 0.999 * math.sqrt(top ** 2 - 4 * 10.0 / length)
    limits = {"length": length, "omega_max": omega, "angle_max": math.pi, "max_substep_px": 0.25}
    sim = simulators.make("pendulum", limits)
    worst, _, empty = faults(sim, n=100)
    assert worst >= 0 and empty == 0, worst
    refused("pendulum", dict(limits, omega_max=1.01 * omega), "omega_max")
    fast = unvalidated("pendulum", **dict(limits, omega_max=4 * omega))
    assert faults(fast, n=20)[0] < 0  # the stretched rod takes the bob over the frame edge


@pytest.mark.parametrize("values", [
    {"max_substep_px": 0.75, "speed_min": 20.0, "speed_max": 30.0},  # sinks into a wall
    {"radius": 2.6, "speed_min": 20.0, "speed_max": 30.0},  # drawn with radius 3
    {"radius": 3.5, "speed_min": 20.0, "speed_max": 30.0},  # drawn with radius 4
])
def test_box_rules_are_needed(values):
    assert faults(unvalidated("box", **values), n=50)[1] > 0  # drawn over a wall pixel


@pytest.mark.parametrize("env,values", [
    ("polygon", {"elasticity": 0.1, "speed_min": 40.0, "speed_max": 60.0}),
    ("gravity", {"elasticity": 0.0, "speed_min": 20.0, "speed_max": 60.0, "radius": 1.0}),
])
def test_inelastic_walls_let_the_ball_out(env, values):
    """The reason elasticity must be 1 (see simulators.base.check_elasticity)."""
    assert faults(unvalidated(env, **values), n=100, steps=40)[2] > 0


def test_a_ball_at_rest_stays_put():
    sim = simulators.make("box", {"speed_min": 0.0, "speed_max": 0.0})
    frames, states = simulators.rollout(sim, 5, np.random.default_rng(0), Canvas(32))
    assert (states == states[:1]).all() and (frames == frames[:1]).all()

"""Convert the 2017 KVAE data files (npz) into our HDF5 format.

What the 2017 code wrote (simonkamronn/kvae, `kvae/datasets/{box,box_gravity,polygon,pong}.py`):
- `images`, float32 (N, T, H, W): `pygame.surfarray.array2d` of a 24-bit surface, i.e. each
  pixel's packed RGB integer (r << 16 | g << 8 | b), divided by 2^24 - 1 in box, box_gravity and
  polygon (white = 1, a grey level g = g / 255) and by 255 in pong (white = 65793). The frames are
  pymunk's debug_draw: antialiased walls, the ball in white with a dark orientation line, and
  collision marks, so many pixels hold neither 0 nor white.
- `state`, float32 (N, T, 4) (not in pong): x, y, vx, vy in pymunk coordinates (y up), read
  after `space.step(dt)` while the frame was drawn before it: stored[t] is the state of frame
  t + 1. Pong draws after the step and stores no state.
- pong also stores `controls = (None, None)`, a pickled object array: never read here.

The 2017 loader (`kvae/utils/data.py`, PymunkData) keeps every pixel > 0 for its Bernoulli
likelihood; that is our default binarisation (`threshold` = 0). A threshold is on the box files'
scale (packed RGB / (2^24 - 1)); pong's values are brought to that scale first.

States become ours (x = column, y = row from the top, states[t] = what frame t shows):
- alignment: states[t] = stored[t - 1] for t >= 1. For t = 0, one pymunk step (Chipmunk's
  cpSpaceStep: positions move first with the previous velocity, then contacts, gravity and
  the impulse solver change the velocity) is undone: p0 = p1 - v0 dt exactly, and v0 = v1 - g dt
  where the ball at p1 touches no wall; where it does, the wall's normal component of v1 is
  the bounce of v0's (elastic, frictionless: v1.n = -e v0.n, gravity absorbed) and is reversed.
- pixels: pymunk 5's pygame_util drew the ball with pygame.draw.circle centred on the pixel
  corner (int(x), H - int(y)) (it truncates; y flipped), so the drawn ball's centre is
  x - 0.5 and H - y + 0.5 on average over the sub-pixel offset, within half a pixel per axis.
  Each import measures it: the median distance between the ball read off the true test frames
  (as `evaluate` reads predictions) and the converted states, about 0.4 px on such frames.
Envs without a known 2017 physics (pong, pendulum) are imported without states: their
position metrics are skipped, and the file's env_params and the returned notes say so.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvae_bench import h5io
from kvae_bench.errors import UserError
from kvae_bench.runinfo import git_commit, utc_now

COLUMNS = ("x", "y", "vx", "vy")
PACKED_WHITE = 2**24 - 1  # white as array2d of a 24-bit surface reads it
BOX_SCALE, PONG_SCALE = "packed RGB / (2^24 - 1)", "packed RGB / 255 (2017 pong)"
SCALES = {BOX_SCALE: 1.0, PONG_SCALE: PACKED_WHITE / 255}  # the value white has in the file
CHUNK = 256  # sequences binarised and scored at a time (bounds the temporaries' memory)

Segment = tuple[tuple[float, float], tuple[float, float]]


def _box_walls(size: int) -> list[Segment]:
    """kvae/datasets/box.py: a square of segments 2 px inside the frame, pymunk coordinates."""
    lo, hi = 2.0, float(size - 2)
    return [((lo, lo), (lo, hi)), ((lo, lo), (hi, lo)), ((hi, hi), (lo, hi)), ((hi, hi), (hi, lo))]


def _polygon_walls(size: int) -> list[Segment]:
    """kvae/datasets/polygon.py, shape=2: fixed points (not scaled with the frame), y up."""
    pts = [(3, 1), (1, 15), (8, 30), (25, 30), (30, 8), (15, 1), (3, 1)]
    return [(tuple(map(float, a)), tuple(map(float, b))) for a, b in zip(pts, pts[1:])]


@dataclass(frozen=True)
class Physics2017:
    """What undoing the 2017 generator's first step needs: its walls (pymunk coordinates, for a
    frame of `size` pixels), gravity (y up) and the ball's restitution against the walls."""

    walls: Callable[[int], list[Segment]]
    gravity: tuple[float, float] = (0.0, 0.0)
    elasticity: float = 1.0  # ball 1.0 x wall 1.0 in every 2017 generator with states


# Our env name -> the 2017 generator that wrote its file (box_gravity.npz is our gravity).
PHYSICS_2017: dict[str, Physics2017] = {
    "box": Physics2017(_box_walls),
    "gravity": Physics2017(_box_walls, gravity=(0.0, -5.0)),
    "polygon": Physics2017(_polygon_walls),
}


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`images` (N, T, H, W) and `state` (N, T, 4) or None, read member by member from the zip
    without unpickling anything: other members (pong's pickled `controls`) are never opened,
    and an object array where a number array belongs is refused."""
    if not path.is_file():
        raise UserError(f"{path} not found" + (": it is a folder" if path.is_dir() else ""))
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if "images" not in members:
                raise UserError(f"{path}: no `images` array (found: "
                                f"{', '.join(members) or 'nothing'}); is it a 2017 KVAE npz?")
            images = _read_member(path, zf, "images")
            state = _read_member(path, zf, "state") if "state" in members else None
    except UserError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise UserError(f"{path} is not a readable npz file ({str(e) or 'empty'})") from None
    return images, state


def _read_member(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    with zf.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        _, _, dtype = read_header(f)
    if dtype.hasobject:
        raise UserError(f"{path}: `{name}` is a pickled object array; it is not unpickled (a "
                        "data file must not run code): save it as a number array")
    with zf.open(name + ".npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def binarise(path: Path, images: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    """frames (N, T, H, W) uint8 in {0, 255}: pixels above `threshold` on the box files' scale
    (packed RGB / (2^24 - 1)); and the name of the scale found in the file."""
    if images.ndim != 4 or images.shape[2] != images.shape[3] or 0 in images.shape:
        raise UserError(f"{path}: images must be (N, T, H, W) with H = W and none of them 0, "
                        f"got {images.shape}")
    if images.dtype.kind not in "biuf":
        raise UserError(f"{path}: images must be numbers, got {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UserError(f"{path}: images hold NaN or infinite values")
    # values above 1 are pong's: its walls are white, so its largest value is white's
    pong = abs(hi - SCALES[PONG_SCALE]) <= 1e-6 * SCALES[PONG_SCALE]
    scale = PONG_SCALE if pong else BOX_SCALE
    if lo < 0 or (hi > 1 and not pong):
        raise UserError(f"{path}: images must lie in [0, 1] (2017 box, gravity, polygon) or "
                        f"[0, {PACKED_WHITE // 255}] with white at {PACKED_WHITE // 255} "
                        f"(2017 pong), found [{lo:g}, {hi:g}]")
    cut = threshold * SCALES[scale]
    frames = np.empty(images.shape, dtype=np.uint8)
    for i in range(0, len(images), CHUNK):
        np.multiply(images[i:i + CHUNK] > cut, 255, out=frames[i:i + CHUNK], casting="unsafe")
    return frames, scale


def states_from_2017(stored: np.ndarray, physics: Physics2017, size: int,
                     dt: float) -> np.ndarray:
    """Our states (N, T, 4) from the 2017 `state` (N, T, 4), see the module docstring:
    shifted one step back (the first undone through the 2017 physics), y flipped to point down,
    and placed where pygame drew the ball."""
    pv = stored.astype(np.float64)  # (N, T, 4), y up, stored[t] = after the step of frame t
    p1, v1 = pv[:, 0, :2], pv[:, 0, 2:]
    v0 = _velocity_before_first_step(p1, v1, physics, size, dt)
    first = np.concatenate([p1 - v0 * dt, v0], axis=-1)[:, None]  # (N, 1, 4)
    up = np.concatenate([first, pv[:, :-1]], axis=1)  # (N, T, 4): state frame t shows
    x, y, vx, vy = np.moveaxis(up, -1, 0)
    return np.stack([x - 0.5, size + 0.5 - y, vx, -vy], axis=-1).astype(np.float32)


def _velocity_before_first_step(p1: np.ndarray, v1: np.ndarray, physics: Physics2017,
                                size: int, dt: float) -> np.ndarray:
    """v0 (N, 2) from the position p1 and velocity v1 (N, 2) after one 2017 pymunk step.

    Chipmunk (cpSpaceStep) moves first, p1 = p0 + v0 dt; then finds contacts at p1, adds
    gravity and solves each contact's impulse so that its normal velocity is -e times the
    pre-step one (frictionless: tangents keep v0 + g dt). So without contact v0 = v1 - g dt;
    per contact with unit normal n (wall -> ball), v0.n = -(v1.n) / e. A 2017 ball starts at
    least 1 px off the walls, so a contact at p1 is always one it moved into."""
    radius = 3.0 * size / 32  # the generators' radius=3*scale
    v0 = v1 - np.asarray(physics.gravity) * dt  # (N, 2)
    for a, b in physics.walls(size):
        a, b = np.asarray(a), np.asarray(b)
        ab = b - a
        s = np.clip(((p1 - a) @ ab) / (ab @ ab), 0.0, 1.0)  # closest point a + s ab
        d = p1 - (a + s[:, None] * ab)  # (N, 2)
        dist = np.linalg.norm(d, axis=-1)
        n = d / np.where(dist > 0, dist, 1.0)[:, None]
        vn1 = (v1 * n).sum(-1)
        hit = (dist < radius) & (dist > 0) & (vn1 > 0)
        vn0 = (v0 * n).sum(-1)
        v0 = np.where(hit[:, None], v0 + (-vn1 / physics.elasticity - vn0)[:, None] * n, v0)
    return v0


def true_position_error(frames: np.ndarray, states: np.ndarray, env: str) -> float:
    """Median distance (px) between the ball as the benchmark reads it off the true frames
    (centroid outside the static background and inside the env's object region) and the
    states' position: the imported states' check, as `evaluate` scores positions."""
    import simulators
    from kvae_bench import metrics

    scoring = simulators.scoring(env, frames.shape[-1])
    xy = states[..., [COLUMNS.index(c) for c in scoring.position_columns]]
    lit = frames > 127
    ignore = metrics.static_background(lit) | ~scoring.object_region
    errors = np.concatenate([
        metrics.position_errors(lit[i:i + CHUNK], xy[i:i + CHUNK], ignore).ravel()
        for i in range(0, len(frames), CHUNK)])
    errors = errors[np.isfinite(errors)]
    return float(np.median(errors)) if errors.size else float("nan")


@dataclass(frozen=True)
class Imported:
    path: Path
    counts: dict[str, int]  # split -> sequences
    columns: tuple[str, ...]  # () when the states were dropped
    position_error: float  # median px on the test split's true frames (NaN without states)
    notes: tuple[str, ...]  # for people (stderr): e.g. why position metrics are skipped


def import_npz(train_npz: Path, test_npz: Path, env: str, out: Path, dt: float = 0.2,
               threshold: float = 0.0, overwrite: bool = False) -> Imported:
    """Write `out` from a 2017 train and test npz (e.g. box.npz, box_test.npz) of env `env`:
    frames binarised at > `threshold` (0: the 2017 loader's > 0), states converted to ours or
    dropped where that is impossible. Every bad input raises a one-line UserError before `out`
    is touched."""
    if not 0 <= threshold < 1:
        raise UserError(f"--threshold must be in [0, 1) (0 keeps every lit pixel, as the 2017 "
                        f"loader did), got {threshold}")
    train_npz, test_npz = Path(train_npz), Path(test_npz)
    raw = {"train": read_npz(train_npz), "test": read_npz(test_npz)}
    frames, scales = {}, {}
    for split, path in (("train", train_npz), ("test", test_npz)):
        frames[split], scales[split] = binarise(path, raw[split][0], threshold)
    shapes = {s: f.shape[1:] for s, f in frames.items()}
    if shapes["train"] != shapes["test"]:
        raise UserError(f"train and test frames differ in shape: {shapes}")
    steps, size = shapes["train"][0], shapes["train"][1]
    for split, path in (("train", train_npz), ("test", test_npz)):
        state = raw[split][1]
        want = (*frames[split].shape[:2], len(COLUMNS))
        if state is not None and (state.shape != want or state.dtype.kind not in "biuf"
                                  or not np.isfinite(state).all()):
            raise UserError(f"{path}: state must be finite numbers of shape {want}, got "
                            f"{state.dtype} {state.shape}")
    has_state = {s: st is not None for s, (_, st) in raw.items()}
    if has_state["train"] != has_state["test"]:
        raise UserError("one file has `state` and the other has not: pass the two files of "
                        "one 2017 data set (e.g. box.npz box_test.npz)")

    physics = PHYSICS_2017.get(env)
    notes = []
    if not has_state["train"]:
        why = "the files hold no `state` (the 2017 pong never stored one)"
    elif physics is None:
        why = (f"no 2017 generator of {env} is known, so its `state` cannot be aligned with the "
               f"frames (known: {', '.join(PHYSICS_2017)})")
    else:
        why = ""
    if why:
        states = {s: np.zeros((len(f), steps, 0), np.float32) for s, f in frames.items()}
        columns: tuple[str, ...] = ()
        state_note = f"dropped: {why}"
        notes.append(f"imported without states: {why}; position metrics (position error, "
                     "latent probe) will be skipped")
        error = float("nan")
    else:
        states = {s: states_from_2017(raw[s][1], physics, size, dt) for s in frames}
        columns = COLUMNS
        state_note = ("2017 `state` converted: states[t] = stored[t-1] (t = 0: the first "
                      "pymunk step undone), y flipped to point down, x - 0.5 and "
                      f"{size} + 0.5 - y where pymunk 5 drew the ball")
        error = true_position_error(frames["test"], states["test"], env)
    source = {"imported_from": [str(train_npz), str(test_npz)],
              "source_scale": scales["train"], "threshold": threshold, "states": state_note,
              "position_metrics": "skipped (no states)" if why else
              f"median error of the true test frames {error:.2f} px"}
    attrs = {"env": env, "env_params": json.dumps(source), "seed": -1, "dt": dt,
             "steps": steps, "image_size": size, "generator_version": "import-npz-2017",
             "created_utc": utc_now(), "git_commit": git_commit()}
    with h5io.Writer(out, attrs, overwrite=overwrite) as w:
        for split in frames:
            w.create_split(split, len(frames[split]), steps, size, columns)
            w.write(split, 0, frames[split], states[split])
    return Imported(Path(out), {s: len(f) for s, f in frames.items()}, columns, error,
                    tuple(notes))

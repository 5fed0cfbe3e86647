"""THE dataset file format; numpy and h5py only. No other module knows this layout.

    root attrs: schema = "kvae-bench/video", schema_version = 2, env, env_params (JSON string),
                seed, dt, steps, image_size, generator_version, created_utc, git_commit (or ""),
                optional preset (the data set is then named <env>-<preset>)
    /<split>/frames    uint8 (N, T, H, W), 0 = background, 255 = foreground; chunk = one
                       sequence
    /<split>/states    float32 (N, T, S): the physical state that frame t shows;
                       attr columns = state names (S strings)
    /<split>/controls  optional, float32 (N, T, U): the control applied after frame t (it
                       moves the system from frame t to t + 1); attr columns = U names

Splits are "train" and "test", and optionally "val". Version 1 (no controls, no val, no
preset) is read as well. Files are written atomically: `Writer` builds a temporary file
beside the target (`.NAME.partial-PID-*`, removed by the next writer if its process died) and
renames it into place only when everything is written, so a crash or Ctrl-C never leaves a
partial file at the target path. Without `overwrite` the final rename fails if the target
appeared meanwhile (two writers racing for one new file: one wins, one errs); with it, only a
kvae-bench dataset is ever replaced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from kvae_bench.runinfo import discard_partial, publish, temp_beside

SCHEMA = "kvae-bench/video"
SCHEMA_VERSION = 2
READS_VERSIONS = (1, 2)
SPLITS = ("train", "test")  # every file has them
OPTIONAL_SPLITS = ("val",)
GZIP_LEVEL = 1  # level 4 made box files 22% smaller and `generate` 10-15% slower (compressing
# was 45% of its instructions); the data and its fingerprint do not depend on the level
REQUIRED_ATTRS = ("schema", "schema_version", "env", "env_params", "seed", "dt", "steps",
                  "image_size", "generator_version", "created_utc")


class DataFormatError(ValueError):
    """The file is not a valid kvae-bench dataset; the message names what is wrong."""


@dataclass(frozen=True)
class Split:
    frames: np.ndarray  # (N, T, H, W) uint8
    states: np.ndarray  # (N, T, S) float32
    columns: tuple[str, ...]
    controls: np.ndarray | None = None  # (N, T, U) float32, or None
    control_columns: tuple[str, ...] = ()


class Writer:
    """Write a dataset split by split, sequence block by block; atomic on success.

        with Writer("data/box.h5", attrs) as w:
            w.create_split("train", n=5000, steps=20, size=32, columns=("x", "y", "vx", "vy"))
            w.write("train", start=0, frames=f, states=s)

    On an exception inside the block the temporary file is removed and the target untouched.
    Raises OSError early (on enter) if the target's folder cannot be written.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict, overwrite: bool = False):
        self.path = Path(path)
        self.attrs = attrs
        self.overwrite = overwrite
        self._tmp: Path | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> Writer:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists: pass --overwrite to replace it, or "
                                  "choose --out")
        if self.path.exists() and not is_dataset(self.path):
            raise FileExistsError(f"{self.path} is not a kvae-bench dataset: it will not be "
                                  "overwritten; choose another --out")
        for parent in (self.path.parent, *self.path.parent.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a folder")
                break
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_beside(self.path)
        try:
            self._file = h5py.File(self._tmp, "w", track_order=True)
            attrs = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **self.attrs}
            for key, value in attrs.items():
                self._file.attrs[key] = value
        except BaseException:
            self._discard()
            raise
        return self

    def create_split(self, split: str, n: int, steps: int, size: int,
                     columns: tuple[str, ...], control_columns: tuple[str, ...] = ()) -> None:
        if split not in SPLITS + OPTIONAL_SPLITS:
            raise ValueError(f"split must be one of {SPLITS + OPTIONAL_SPLITS}, got {split!r}")
        group = self._file.create_group(split)
        group.create_dataset("frames", shape=(n, steps, size, size), dtype=np.uint8,
                             chunks=(1, steps, size, size) if n else None,
                             compression="gzip" if n else None,
                             compression_opts=GZIP_LEVEL if n else None,
                             shuffle=False, track_times=False)
        states = group.create_dataset("states", shape=(n, steps, len(columns)),
                                      dtype=np.float32, track_times=False)
        states.attrs["columns"] = list(columns)
        if control_columns:
            controls = group.create_dataset("controls", shape=(n, steps, len(control_columns)),
                                            dtype=np.float32, track_times=False)
            controls.attrs["columns"] = list(control_columns)

    def write(self, split: str, start: int, frames: np.ndarray, states: np.ndarray,
              controls: np.ndarray | None = None) -> None:
        """frames (n, T, H, W) uint8, states (n, T, S) and, for a split made with control
        columns, controls (n, T, U) for sequences start .. start+n-1."""
        stop = start + len(frames)
        self._file[split]["frames"][start:stop] = frames
        self._file[split]["states"][start:stop] = states
        self._write_controls(split, start, stop, controls)

    def _write_controls(self, split, start, stop, controls):
        has = "controls" in self._file[split]
        if has != (controls is not None):
            raise ValueError(f"split {split} was made {'with' if has else 'without'} controls")
        if has:
            self._file[split]["controls"][start:stop] = controls

    def write_encoded(self, split: str, start: int, chunks: list[bytes],
                      states: np.ndarray, controls: np.ndarray | None = None) -> None:
        """Like `write`, with frames already compressed by `encode_frames` (which can run in
        the worker processes, leaving the writer only the disk to do)."""
        frames = self._file[split]["frames"]
        for k, chunk in enumerate(chunks):
            frames.id.write_direct_chunk((start + k, 0, 0, 0), chunk)
        self._file[split]["states"][start:start + len(chunks)] = states
        self._write_controls(split, start, start + len(chunks), controls)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self._file.close()
            self._file = None
            publish(self._tmp, self.path, overwrite=self.overwrite)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:
                pass
            self._file = None
        if self._tmp is not None:
            discard_partial(self._tmp)


def encode_frames(frames: np.ndarray) -> list[bytes]:
    """frames (n, T, H, W) uint8 -> one compressed HDF5 chunk (a gzip-filter zlib stream) per
    sequence, for `Writer.write_encoded`."""
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"frames must be uint8 (n, T, H, W), got {frames.dtype} {frames.shape}")
    return [zlib.compress(np.ascontiguousarray(seq).tobytes(), GZIP_LEVEL) for seq in frames]


def dataset_name(meta: dict) -> str:
    """The data set's name in every table: `<env>` or `<env>-<preset>`."""
    preset = meta.get("preset") or ""
    return f"{meta['env']}-{preset}" if preset else meta["env"]


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_meta(path: str | os.PathLike) -> dict:
    """Validated root attributes plus {"splits": {name: {"n", "steps", "size", "columns"}}}.
    Raises DataFormatError naming what is wrong (not HDF5, foreign schema, bad shapes...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path} is not an HDF5 file ({e}): make it again with "
                              "`kvae-bench generate`, or pass another file") from None
    try:
        with f:
            return _read_meta(path, f)
    except DataFormatError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:  # damaged inside
        raise DataFormatError(f"{path} is damaged ({str(e).splitlines()[0][:100]}); "
                              "regenerate it with `kvae-bench generate`") from None


def _read_meta(path: Path, f: h5py.File) -> dict:
    attrs = {k: (_as_str(v) if isinstance(v, (bytes, str)) else v)
             for k, v in f.attrs.items()}
    if attrs.get("schema") != SCHEMA:
        raise DataFormatError(f"{path}: not a kvae-bench dataset "
                              f"(schema {attrs.get('schema')!r}, expected {SCHEMA!r})")
    version = int(attrs.get("schema_version", -1))
    if version not in READS_VERSIONS:
        raise DataFormatError(f"{path}: schema_version {version}, this code reads "
                              f"{', '.join(map(str, READS_VERSIONS))}; regenerate it with "
                              "`kvae-bench generate` (or update kvae-bench)")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise DataFormatError(f"{path}: missing attributes {', '.join(missing)}")
    try:
        attrs["env_params"] = json.loads(attrs["env_params"])
    except json.JSONDecodeError:
        raise DataFormatError(f"{path}: env_params is not valid JSON") from None
    for key in ("seed", "steps", "image_size", "schema_version"):
        attrs[key] = int(attrs[key])
    attrs["dt"] = float(attrs["dt"])
    attrs["splits"] = {}
    for split in SPLITS:
        if split not in f:
            raise DataFormatError(f"{path}: missing group /{split}")
        attrs["splits"][split] = _check_split(path, f[split], attrs)
    for split in OPTIONAL_SPLITS:
        if split in f:
            attrs["splits"][split] = _check_split(path, f[split], attrs)
    return attrs


def _check_split(path: Path, group, attrs: dict) -> dict:
    name = group.name
    for key in ("frames", "states"):
        if key not in group or not isinstance(group[key], h5py.Dataset):
            raise DataFormatError(f"{path}: missing dataset {name}/{key}")
    frames, states = group["frames"], group["states"]
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise DataFormatError(f"{path}: {name}/frames must be uint8 (N, T, H, W), "
                              f"got {frames.dtype} {frames.shape}")
    n, steps, h, w = frames.shape
    if (steps, h, w) != (attrs["steps"], attrs["image_size"], attrs["image_size"]):
        raise DataFormatError(f"{path}: {name}/frames shape {frames.shape} does not match "
                              f"steps={attrs['steps']}, image_size={attrs['image_size']}")
    columns = _named_columns(path, f"{name}/states", states, n, steps, "S")
    control_columns = _named_columns(path, f"{name}/controls", group["controls"], n, steps,
                                     "U") if "controls" in group else ()
    return {"n": n, "steps": steps, "size": h, "columns": columns,
            "control_columns": control_columns}


def _named_columns(path: Path, name: str, data, n: int, steps: int, letter: str) -> tuple:
    """The column names of a float32 (n, steps, letter) dataset, checked."""
    if data.dtype != np.float32 or data.ndim != 3 or data.shape[:2] != (n, steps):
        raise DataFormatError(f"{path}: {name} must be float32 ({n}, {steps}, {letter}), "
                              f"got {data.dtype} {data.shape}")
    columns = tuple(_as_str(c) for c in data.attrs.get("columns", ()))
    if len(columns) != data.shape[2]:
        raise DataFormatError(f"{path}: {name} has {data.shape[2]} columns but "
                              f"{len(columns)} column names")
    return columns


def read(path: str | os.PathLike, split: str, limit: int | None = None) -> Split:
    """Load one split into memory (the first `limit` sequences if given), after validation."""
    meta = read_meta(path)
    if split not in meta["splits"]:
        valid = SPLITS + tuple(s for s in OPTIONAL_SPLITS if s in meta["splits"])
        raise ValueError(f"{path} has no split {split!r}; it has {', '.join(valid)}")
    info = meta["splits"][split]
    try:
        with h5py.File(path, "r") as f:
            group = f[split]
            sl = slice(None) if limit is None else slice(0, limit)
            return Split(frames=group["frames"][sl], states=group["states"][sl],
                         columns=info["columns"],
                         controls=group["controls"][sl] if info["control_columns"] else None,
                         control_columns=info["control_columns"])
    except OSError as e:  # a damaged chunk: h5py reports a failed read or filter
        raise DataFormatError(f"{path}: /{split} is damaged and cannot be read "
                              f"({str(e).splitlines()[0][:100]}); regenerate it with "
                              "`kvae-bench generate`") from None


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether path is an HDF5 file with the kvae-bench schema attribute (readable or not)."""
    try:
        with h5py.File(path, "r") as f:
            return _as_str(f.attrs.get("schema", "")) == SCHEMA
    except (OSError, ValueError):
        return False


def fingerprint(path: str | os.PathLike) -> str:
    """sha256 of the data (frames and states of both splits, env and its params), not of the
    file's bytes: the same data written twice gets the same fingerprint."""
    meta = read_meta(path)
    h = hashlib.sha256()
    h.update(f"{meta['env']}|{sorted(meta['env_params'].items())}".encode())
    for split in (*SPLITS, *(s for s in OPTIONAL_SPLITS if s in meta["splits"])):
        data = read(path, split)
        h.update(np.ascontiguousarray(data.frames).tobytes())
        h.update(np.ascontiguousarray(data.states).tobytes())
        if data.controls is not None:  # files without controls keep their fingerprint
            h.update(np.ascontiguousarray(data.controls).tobytes())
    if meta.get("preset"):
        h.update(f"|preset={meta['preset']}".encode())
    return h.hexdigest()

"""The file format: round trip, validation errors that name the problem, atomic writes."""

import json

import h5py
import numpy as np
import pytest

from kvae_bench import h5io

ATTRS = {"env": "box", "env_params": json.dumps({"size": 8}), "seed": 0, "dt": 0.2, "steps": 3,
         "image_size": 8, "generator_version": "1", "created_utc": "2026-01-01T00:00:00Z",
         "git_commit": ""}


def write(path, n=(4, 2), attrs=ATTRS):
    rng = np.random.default_rng(0)
    data = {}
    with h5io.Writer(path, attrs) as w:
        for split, count in zip(h5io.SPLITS, n):
            frames = (rng.random((count, 3, 8, 8)) > 0.5).astype(np.uint8) * 255
            states = rng.standard_normal((count, 3, 2)).astype(np.float32)
            w.create_split(split, count, 3, 8, ("x", "y"))
            w.write(split, 0, frames, states)
            data[split] = (frames, states)
    return data


def test_round_trip(tmp_path):
    path = tmp_path / "d.h5"
    data = write(path)
    meta = h5io.read_meta(path)
    assert meta["env"] == "box" and meta["env_params"] == {"size": 8}
    assert meta["schema"] == h5io.SCHEMA and meta["schema_version"] == h5io.SCHEMA_VERSION
    assert meta["splits"]["train"] == {"n": 4, "steps": 3, "size": 8, "columns": ("x", "y")}
    for split, (frames, states) in data.items():
        got = h5io.read(path, split)
        np.testing.assert_array_equal(got.frames, frames)
        np.testing.assert_array_equal(got.states, states)
        assert got.columns == ("x", "y")
    assert len(h5io.read(path, "train", limit=2).frames) == 2


def test_encoded_chunks_read_back(tmp_path):
    path = tmp_path / "d.h5"
    frames = np.zeros((3, 3, 8, 8), np.uint8)
    frames[:, :, 2:4, 3] = 255
    states = np.ones((3, 3, 2), np.float32)
    with h5io.Writer(path, ATTRS) as w:
        for split in h5io.SPLITS:
            w.create_split(split, 3, 3, 8, ("x", "y"))
            w.write_encoded(split, 0, h5io.encode_frames(frames), states)
    np.testing.assert_array_equal(h5io.read(path, "test").frames, frames)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError):
        with h5io.Writer(path, ATTRS) as w:
            w.create_split("train", 2, 3, 8, ("x",))
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with h5io.Writer(path, ATTRS, overwrite=True):
            raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    with pytest.raises(FileExistsError):
        write(path)


def edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


@pytest.mark.parametrize("damage,message", [
    (lambda f: f.attrs.__setitem__("schema", "other"), "not a kvae-bench dataset"),
    (lambda f: f.attrs.__setitem__("schema_version", 99), "schema_version 99"),
    (lambda f: f.attrs.__delitem__("seed"), "missing attributes seed"),
    (lambda f: f.attrs.__setitem__("env_params", "{oops"), "env_params is not valid JSON"),
    (lambda f: f.__delitem__("test"), "missing group /test"),
    (lambda f: f["train"].__delitem__("states"), "missing dataset /train/states"),
    (lambda f: (f["train"].__delitem__("frames"),
                f["train"].create_dataset("frames", data=np.zeros((4, 3, 8, 8), np.float32))),
     "/train/frames must be uint8"),
    (lambda f: (f["test"].__delitem__("frames"),
                f["test"].create_dataset("frames", data=np.zeros((2, 5, 8, 8), np.uint8))),
     "does not match steps=3"),
    (lambda f: f["train"]["states"].attrs.__setitem__("columns", ["x"]), "1 column names"),
])
def test_validation_names_the_problem(tmp_path, damage, message):
    path = tmp_path / "d.h5"
    write(path)
    edit(path, damage)
    with pytest.raises(h5io.DataFormatError, match=message):
        h5io.read_meta(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(h5io.DataFormatError, match="not an HDF5 file"):
        h5io.read_meta(text)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(h5io.DataFormatError, match="not a kvae-bench dataset"):
        h5io.read_meta(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        h5io.read_meta(tmp_path / "missing.h5")

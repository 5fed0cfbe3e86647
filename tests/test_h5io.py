"""The file format: round trip, validation errors that name the problem, atomic writes."""

import errno
import json
import string
import tempfile
import warnings
from pathlib import Path

import h5py
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert meta["splits"]["train"] == {"n": 4, "steps": 3, "size": 8, "columns": ("x", "y"),
                                       "control_columns": ()}
    assert "val" not in meta["splits"] and h5io.read(path, "train").controls is None
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
    (lambda f: f.attrs.__setitem__("schema", "foreign/v9"), "foreign/v9"),
    (lambda f: f.attrs.__delitem__("schema_version"), "schema_version"),
    (lambda f: f.attrs.__setitem__("steps", "abc"), "damaged .*'abc'"),
    (lambda f: f["train"]["states"].attrs.__delitem__("columns"), "0 column names"),
    (lambda f: (f["train"].__delitem__("states"),
                f["train"].create_dataset("states", data=np.zeros((4, 3, 2), np.float64))),
     "/train/states must be float32"),
    (lambda f: (f["test"].__delitem__("states"),
                f["test"].create_dataset("states", data=np.zeros((3, 3, 2), np.float32))),
     "/test/states must be float32"),
])
def test_validation_names_the_problem(tmp_path, damage, message):
    path = tmp_path / "d.h5"
    write(path)
    edit(path, damage)
    with pytest.raises(h5io.DataFormatError, match=message) as excinfo:
        h5io.read_meta(path)
    assert str(path) in str(excinfo.value)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(h5io.DataFormatError, match="not an HDF5 file"):
        h5io.read_meta(text)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(h5io.DataFormatError, match="not a kvae-bench dataset"):
        h5io.read_meta(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        h5io.read_meta(tmp_path / "missing.h5")


def test_meta_reads_back_exactly_what_was_written(tmp_path):
    path = tmp_path / "d.h5"
    attrs = {**ATTRS, "dt": 1, "frame_skip": 2, "noise": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the writer uses no deprecated h5py defaults
        write(path, attrs=attrs)
    meta = h5io.read_meta(path)
    splits = meta.pop("splits")
    assert meta == {"schema": h5io.SCHEMA, "schema_version": h5io.SCHEMA_VERSION,
                    **attrs, "env_params": {"size": 8}, "dt": 1.0}
    assert list(meta) == ["schema", "schema_version", *attrs]  # in the order written
    assert type(meta["dt"]) is float and type(meta["seed"]) is int
    assert splits["test"] == {"n": 2, "steps": 3, "size": 8, "columns": ("x", "y"),
                              "control_columns": ()}


def test_write_in_blocks(tmp_path):
    path = tmp_path / "d.h5"
    rng = np.random.default_rng(1)
    frames = (rng.random((5, 3, 8, 8)) > 0.5).astype(np.uint8) * 255
    states = rng.standard_normal((5, 3, 2)).astype(np.float32)
    with h5io.Writer(path, ATTRS) as w:
        w.create_split("train", 5, 3, 8, ("x", "y"))
        w.write("train", 0, frames[:2], states[:2])
        w.write("train", 2, frames[2:], states[2:])
        w.create_split("test", 5, 3, 8, ("x", "y"))
        w.write_encoded("test", 0, h5io.encode_frames(frames[:3]), states[:3])
        w.write_encoded("test", 3, h5io.encode_frames(frames[3:]), states[3:])
    for split in h5io.SPLITS:
        got = h5io.read(path, split)
        np.testing.assert_array_equal(got.frames, frames)
        np.testing.assert_array_equal(got.states, states)


def test_encoded_chunks_are_what_the_writer_stores(tmp_path):
    rng = np.random.default_rng(2)
    frames = (rng.random((3, 5, 16, 16)) > 0.7).astype(np.uint8) * 255
    states = np.zeros((3, 5, 1), np.float32)
    for name, encoded in (("plain.h5", False), ("encoded.h5", True)):
        with h5io.Writer(tmp_path / name, {**ATTRS, "steps": 5, "image_size": 16}) as w:
            for split in h5io.SPLITS:
                w.create_split(split, 3, 5, 16, ("x",))
                if encoded:
                    w.write_encoded(split, 0, h5io.encode_frames(frames), states)
                else:
                    w.write(split, 0, frames, states)
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "encoded.h5") as b:
        for i in range(3):
            key = (i, 0, 0, 0)
            assert (b["train/frames"].id.read_direct_chunk(key)
                    == a["train/frames"].id.read_direct_chunk(key))


def test_frames_layout_and_no_timestamps(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    with h5py.File(path) as f:
        frames, states = f["train/frames"], f["train/states"]
        assert frames.chunks == (1, 3, 8, 8)  # one sequence per chunk
        assert frames.compression == "gzip" and frames.compression_opts == h5io.GZIP_LEVEL
        assert not frames.shuffle  # encode_frames chunks are plain zlib streams
        for ds in (frames, states):  # no creation times: rewriting gives the same bytes
            assert h5py.h5o.get_info(ds.id).ctime == 0


def test_empty_split(tmp_path):
    path = tmp_path / "d.h5"
    write(path, n=(3, 0))
    assert h5io.read_meta(path)["splits"]["test"]["n"] == 0
    got = h5io.read(path, "test")
    assert got.frames.shape == (0, 3, 8, 8) and got.frames.dtype == np.uint8
    assert got.states.shape == (0, 3, 2) and got.states.dtype == np.float32


def test_unknown_split_name(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    with pytest.raises(ValueError, match="'valid'"):
        h5io.read(path, "valid")
    with pytest.raises(ValueError, match="'valid'"):
        with h5io.Writer(tmp_path / "e.h5", ATTRS) as w:
            w.create_split("valid", 2, 3, 8, ("x",))
    assert not (tmp_path / "e.h5").exists()


def test_refusal_names_the_option(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        write(path)
    assert path.read_bytes() == before


def test_overwrite_replaces_a_dataset(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    with h5io.Writer(path, {**ATTRS, "env": "pong"}, overwrite=True) as w:
        for split in h5io.SPLITS:
            w.create_split(split, 1, 3, 8, ("x",))
            w.write(split, 0, np.full((1, 3, 8, 8), 255, np.uint8), np.ones((1, 3, 1), np.float32))
    assert h5io.read_meta(path)["env"] == "pong"
    assert h5io.read(path, "train").frames.min() == 255
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_overwrite_never_replaces_a_foreign_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("keep me")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    before = other.read_bytes()
    for path in (text, other):
        assert not h5io.is_dataset(path)
        with pytest.raises(FileExistsError):
            write(path)
        with pytest.raises(FileExistsError, match="not a kvae-bench dataset"):
            with h5io.Writer(path, ATTRS, overwrite=True):
                pass
    assert text.read_text() == "keep me" and other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.h5", "other.h5"]


def test_is_dataset(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    assert h5io.is_dataset(path)
    assert not h5io.is_dataset(tmp_path / "missing.h5")
    edit(path, lambda f: f.attrs.__delitem__("schema"))
    assert not h5io.is_dataset(path)


def test_writer_loses_a_race_for_a_new_file(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(FileExistsError, match="appeared"):
        with h5io.Writer(path, ATTRS) as w:
            w.create_split("train", 1, 3, 8, ("x",))
            path.write_text("the other writer's file")
    assert path.read_text() == "the other writer's file"
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "d.h5"
    write(path)
    assert h5io.read_meta(path)["env"] == "box"


def test_folder_that_is_a_file(tmp_path):
    blocker = tmp_path / "f.txt"
    blocker.write_text("x")
    for path in (blocker / "d.h5", blocker / "sub" / "d.h5"):
        with pytest.raises(NotADirectoryError, match="not a folder") as excinfo:
            write(path)
        assert excinfo.value.errno == errno.ENOTDIR
        assert str(blocker) in str(excinfo.value)
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failed_write_closes_the_file(tmp_path):
    def open_files():
        return len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))

    before = open_files()
    writer = h5io.Writer(tmp_path / "d.h5", ATTRS)
    with pytest.raises(RuntimeError):
        with writer as w:
            w.create_split("train", 2, 3, 8, ("x",))
            raise RuntimeError("crash mid-write")
    assert open_files() == before
    assert list(tmp_path.iterdir()) == []


def test_damaged_chunk_is_a_format_error(tmp_path):
    path = tmp_path / "d.h5"
    write(path)
    with h5py.File(path) as f:
        info = f["train/frames"].id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\0" * info.size)
    assert h5io.read_meta(path)["splits"]["train"]["n"] == 4  # metadata is intact
    with pytest.raises(h5io.DataFormatError, match="/train") as excinfo:
        h5io.read(path, "train")
    assert str(path) in str(excinfo.value)
    assert len(h5io.read(path, "train", limit=1).frames) == 1  # the chunk before is fine


def test_attributes_stored_as_bytes(tmp_path):
    """Files from other HDF5 writers may store strings as fixed-length bytes."""
    path = tmp_path / "d.h5"
    write(path)

    def to_bytes(f):
        for key in ("schema", "env", "env_params"):
            f.attrs[key] = np.bytes_(f.attrs[key].encode())
        f["train/states"].attrs["columns"] = np.array([b"x", b"y"])

    edit(path, to_bytes)
    assert h5io.is_dataset(path)
    meta = h5io.read_meta(path)
    assert meta["env"] == "box" and meta["env_params"] == {"size": 8}
    assert meta["splits"]["train"]["columns"] == ("x", "y")
    assert h5io.read(path, "train").columns == ("x", "y")


def test_encode_frames_rejects_other_arrays():
    with pytest.raises(ValueError, match="float64"):
        h5io.encode_frames(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"\(3, 8, 8\)"):
        h5io.encode_frames(np.zeros((3, 8, 8), np.uint8))
    assert h5io.encode_frames(np.zeros((0, 3, 8, 8), np.uint8)) == []


def test_dataset_name():
    assert h5io.dataset_name({"env": "box"}) == "box"
    assert h5io.dataset_name({"env": "box", "preset": None}) == "box"
    assert h5io.dataset_name({"env": "box", "preset": ""}) == "box"
    assert h5io.dataset_name({"env": "box", "preset": "hard"}) == "box-hard"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                max_size=8)


@st.composite
def datasets(draw):
    steps, size = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    columns = tuple(draw(st.lists(_TEXT.filter(bool), max_size=3)))
    extra = draw(st.dictionaries(
        st.text(string.ascii_lowercase, min_size=1, max_size=6).map("x_".__add__),
        st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | _TEXT, max_size=3))
    attrs = {"env": draw(_TEXT), "env_params": json.dumps(draw(st.dictionaries(
                 _TEXT, st.integers(-1000, 1000), max_size=3))),
             "seed": draw(st.integers(-2**63, 2**63 - 1)),
             "dt": draw(st.floats(allow_nan=False)), "steps": steps, "image_size": size,
             "generator_version": draw(_TEXT), "created_utc": draw(_TEXT), **extra}
    data = {}
    for split in h5io.SPLITS:
        n = draw(st.integers(0, 3))
        frames = draw(hnp.arrays(np.uint8, (n, steps, size, size),
                                 elements=st.sampled_from([0, 255])))
        states = draw(hnp.arrays(np.float32, (n, steps, len(columns)),
                                 elements=st.floats(width=32)))
        data[split] = (frames, states, draw(st.integers(0, n)))
    return attrs, columns, data, draw(st.booleans())


@settings(max_examples=30, deadline=None)
@given(datasets())
def test_round_trip_is_the_identity(case):
    attrs, columns, data, encoded = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.h5"
        with h5io.Writer(path, attrs) as w:
            for split, (frames, states, cut) in data.items():
                w.create_split(split, len(frames), attrs["steps"], attrs["image_size"], columns)
                for start, stop in ((0, cut), (cut, len(frames))):  # two blocks
                    if encoded:
                        w.write_encoded(split, start, h5io.encode_frames(frames[start:stop]),
                                        states[start:stop])
                    else:
                        w.write(split, start, frames[start:stop], states[start:stop])
        meta = h5io.read_meta(path)
        splits = meta.pop("splits")
        assert meta == {"schema": h5io.SCHEMA, "schema_version": h5io.SCHEMA_VERSION, **attrs,
                        "env_params": json.loads(attrs["env_params"])}
        assert list(meta) == ["schema", "schema_version", *attrs]
        for split, (frames, states, _) in data.items():
            assert splits[split] == {"n": len(frames), "steps": attrs["steps"],
                                     "size": attrs["image_size"], "columns": columns,
                                     "control_columns": ()}
            got = h5io.read(path, split)
            assert got.columns == columns
            assert got.frames.dtype == np.uint8 and got.states.dtype == np.float32
            assert got.frames.shape == frames.shape and got.states.shape == states.shape
            assert got.frames.tobytes() == frames.tobytes()
            assert got.states.tobytes() == states.tobytes()  # bit for bit, NaNs included


def test_controls_val_split_and_preset_round_trip(tmp_path):
    """Schema 2: an optional val split, optional controls per split, a preset naming the
    data set; the fingerprint covers controls, so other controls are other data."""
    from kvae_bench.data import fingerprint

    path = tmp_path / "p.h5"
    rng = np.random.default_rng(1)
    written = {}
    with h5io.Writer(path, {**ATTRS, "preset": "dvbf"}) as w:
        for split, n in (("train", 3), ("val", 2), ("test", 2)):
            frames = (rng.random((n, 3, 8, 8)) > 0.5).astype(np.uint8) * 255
            states = rng.standard_normal((n, 3, 2)).astype(np.float32)
            controls = rng.standard_normal((n, 3, 1)).astype(np.float32)
            w.create_split(split, n, 3, 8, ("x", "y"), control_columns=("torque",))
            w.write(split, 0, frames, states, controls)
            written[split] = controls
        with pytest.raises(ValueError, match="with controls"):
            w.write("train", 0, frames[:1], states[:1])  # a split with controls needs them
    meta = h5io.read_meta(path)
    assert set(meta["splits"]) == {"train", "val", "test"}
    assert meta["splits"]["val"]["control_columns"] == ("torque",)
    assert h5io.dataset_name(meta) == "box-dvbf"
    for split, controls in written.items():
        got = h5io.read(path, split)
        np.testing.assert_array_equal(got.controls, controls)
        assert got.control_columns == ("torque",)
    with pytest.raises(ValueError, match="no split 'nope'.*train, test, val"):
        h5io.read(path, "nope")
    before = fingerprint(path)
    with h5py.File(path, "r+") as f:
        f["train/controls"][0, 0, 0] += 1.0
    assert fingerprint(path) != before


def test_schema_1_files_still_read(tmp_path):
    path = tmp_path / "old.h5"
    data = write(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 1
    meta = h5io.read_meta(path)
    assert meta["schema_version"] == 1 and set(meta["splits"]) == {"train", "test"}
    np.testing.assert_array_equal(h5io.read(path, "test").frames, data["test"][0])


def test_damaged_controls_are_named(tmp_path):
    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:
        f["train"].create_dataset("controls", data=np.zeros((4, 3, 1), np.float64))
    with pytest.raises(h5io.DataFormatError, match="train/controls must be float32"):
        h5io.read_meta(path)

"""Stroke-3 drawings: the file format and its checks, stroke-5, and MNIST digits traced into pen strokes."""

from __future__ import annotations

import io
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.draw import circle_perimeter, line
from skimage.morphology import skeletonize

from setae.datasets import mnist_strokes
from setae.datasets.batch import collate_sets
from setae.datasets.idx import read_idx, write_idx
from setae.datasets.mnist import MNIST_FILES, MNISTSets
from setae.datasets.mnist_strokes import (
    MNIST_STROKES_MAX_LEN,
    MNISTStrokes,
    mnist_strokes_cache_dir,
    mnist_to_strokes,
    skeletons,
)
from setae.datasets.strokes import (
    StrokeSequences,
    from_stroke5,
    read_strokes,
    strokes_to_points,
    strokes_to_polylines,
    to_stroke5,
    write_strokes,
)
from setae.errors import SetaeError
from setae.evaluation.plots import plot_strokes


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """MNISTStrokes caches under tmp_path, never in the user's cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _drawing(dtype, rows) -> np.ndarray:
    return np.asarray(rows, dtype=dtype).reshape(-1, 3)


def _object_array(items: list) -> np.ndarray:
    """A 1-D object array holding `items` as they are (np.array would stack equal shapes)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _one_line_error(match: str, read, *args) -> str:
    with pytest.raises(SetaeError, match=match) as info:
        read(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------


@st.composite
def drawings(draw, dtype) -> np.ndarray:
    """A stroke-3 drawing of 0..12 steps with integer or float coordinates and random pen lifts."""
    length = draw(st.integers(0, 12))
    if np.dtype(dtype).kind == "f":
        coords = st.floats(-1e3, 1e3, allow_nan=False, width=np.dtype(dtype).itemsize * 8)
    else:
        coords = st.integers(-300, 300)
    xy = draw(arrays(dtype, (length, 2), elements=coords))
    pen = draw(arrays(dtype, (length, 1), elements=st.sampled_from([0, 1])))
    return np.concatenate([xy, pen], axis=1)


@st.composite
def stroke_files(draw) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    names = draw(st.lists(st.sampled_from(["train", "valid", "test"]), min_size=1, max_size=3, unique=True))
    splits, labels = {}, {}
    for name in names:
        dtype = draw(st.sampled_from([np.int16, np.float32, np.float64]))
        splits[name] = draw(st.lists(drawings(dtype), max_size=5))
        if draw(st.booleans()):
            labels[name] = np.asarray(
                draw(st.lists(st.integers(0, 9), min_size=len(splits[name]), max_size=len(splits[name]))),
                dtype=np.int64,
            )
    return splits, labels


@settings(max_examples=40, deadline=None)
@given(stroke_files())
def test_written_files_read_back_exactly(data):
    splits, labels = data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "drawings.npz"
        write_strokes(path, splits, labels)
        back = read_strokes(path)
    assert list(back) == list(splits)
    for name, written in splits.items():
        assert len(back[name]) == len(written)
        for got, want in zip(back[name], written, strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        if name in labels:
            np.testing.assert_array_equal(back[name].labels, labels[name])
        else:
            assert back[name].labels is None


def test_written_file_is_pickle_free_and_atomic(tmp_path):
    path = tmp_path / "d.npz"
    write_strokes(path, {"train": [_drawing(np.int16, [[1, 2, 0], [3, 4, 1]])]}, {"train": [5]})
    with np.load(path, allow_pickle=False) as data:  # would raise on any object array
        assert sorted(data.files) == ["train_labels", "train_offsets", "train_steps"]
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary file left behind
    with pytest.raises(SetaeError, match="d.npz: train item 0: step 0 has pen value 3"):
        write_strokes(path, {"train": [_drawing(np.int16, [[1, 2, 3]])]})
    with pytest.raises(SetaeError, match="labels given for split 'test'"):
        write_strokes(path, {"train": []}, {"test": []})
    assert read_strokes(path)["train"].labels.tolist() == [5]  # failed writes left the file as it was


def test_sketch_rnn_object_arrays(tmp_path):
    rng = np.random.default_rng(0)
    splits = {}
    for name, count in (("train", 6), ("valid", 2), ("test", 3)):
        items = []
        for _ in range(count):
            steps = rng.integers(-50, 50, size=(int(rng.integers(1, 30)), 3)).astype(np.int16)
            steps[:, 2] = rng.random(len(steps)) < 0.2
            steps[-1, 2] = 1
            items.append(steps)
        splits[name] = items
    path = tmp_path / "cat.npz"
    np.savez(
        path, **{name: _object_array(items) for name, items in splits.items()}
    )  # pickles, as QuickDraw's
    back = read_strokes(path)
    assert list(back) == ["train", "valid", "test"]
    for name, items in splits.items():
        assert [a.dtype for a in back[name]] == [np.int16] * len(items)
        for got, want in zip(back[name], items, strict=True):
            np.testing.assert_array_equal(got, want)
    assert list(read_strokes(path, ["test"])) == ["test"]

    data = StrokeSequences.from_file(path, "valid")
    assert len(data) == 2 and data.dim == 3 and data.name == "cat.npz valid"
    batch = collate_sets([data[1], data[0]])
    assert batch.points.shape == (2, max(len(s) for s in splits["valid"]), 3)
    for row, want in zip(batch.points, [splits["valid"][1], splits["valid"][0]], strict=True):
        np.testing.assert_array_equal(row[: len(want)].numpy(), want.astype(np.float32))  # steps in order
        assert (row[len(want) :] == 0).all()
    assert batch.padding_mask.sum(1).tolist() == [
        batch.points.shape[1] - len(s) for s in (splits["valid"][1], splits["valid"][0])
    ]
    assert batch.labels.tolist() == [-1, -1]


# numpy 1's names are written into protocol 2 and 3 pickles only: later protocols store names with lengths.
@pytest.mark.parametrize(("protocol", "numpy1"), [(2, False), (3, False), (5, False), (2, True), (3, True)])
def test_object_arrays_of_other_pickle_protocols_and_numpy_1(tmp_path, protocol, numpy1):
    """Arrays pickled with other protocols, and by numpy 1 (which names numpy.core, not numpy._core)."""
    items = [_drawing(np.float64, [[0.5, -1.0, 0], [2.0, 3.0, 1]]), _drawing(np.int16, [[1, 1, 1]])]
    array = _object_array(items)
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    payload = pickle.dumps(array, protocol=protocol)
    if numpy1:
        payload = payload.replace(b"numpy._core.", b"numpy.core.")
        assert b"numpy.core.multiarray" in payload
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.npy", f.getvalue() + payload)
    back = read_strokes(path)["train"]
    for got, want in zip(back, items, strict=True):
        np.testing.assert_array_equal(got, want)


class _RunsCode:
    """Pickles as a call of `function(*args)`: what a hostile file does."""

    def __init__(self, function, *args):
        self.reduction = (function, args)

    def __reduce__(self):
        return self.reduction


@pytest.mark.parametrize("name", ["os.system", "builtins.open"])
def test_pickles_naming_other_callables_are_refused_unrun(tmp_path, name):
    import os

    marker = tmp_path / "ran"
    function = os.system if name == "os.system" else open
    args = (f"touch {marker}",) if name == "os.system" else (str(marker), "w")
    path = tmp_path / "evil.npz"
    np.savez(path, train=_object_array([_RunsCode(function, *args)]))
    message = _one_line_error(
        r"evil.npz: train: the pickled data calls \S+, which is not a numpy", read_strokes, path
    )
    assert function.__name__ in message
    assert not marker.exists()
    if name == "builtins.open":  # the file is genuinely hostile: numpy's own loader runs it
        with np.load(path, allow_pickle=True) as data:
            data["train"]
        assert marker.exists()


def _savez(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


GOOD = _drawing(np.int16, [[3, 4, 0], [1, 1, 1]])


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([GOOD, np.zeros(4, np.int16)], r"train item 1: has shape \[4\]; expected \[T, 3\]"),
        ([GOOD, np.zeros((2, 3, 3), np.int16)], r"train item 1: has shape \[2, 3, 3\]"),
        ([GOOD, GOOD, np.zeros((5, 2), np.int16)], r"train item 2: has shape \[5, 2\]"),
        ([GOOD, [[1, 2, 0], [1, 2]]], r"train item 1: is ragged"),
        ([{"steps": 1}], r"train item 0: has type object"),
        ([np.array([["a", "b", "c"]])], r"train item 0: has type <U1"),
        (
            [GOOD, _drawing(np.float32, [[0, 0, 0], [1, 1, 0], [np.nan, 0, 1]])],
            r"train item 1: step 2 is NaN",
        ),
        ([_drawing(np.float64, [[0, 0, 0], [np.inf, 0, 1]])], r"train item 0: step 1 is NaN or infinite"),
        (
            [GOOD, _drawing(np.int16, [[0, 0, 0], [1, 1, 2]])],
            r"train item 1: step 1 has pen value 2; expected 0",
        ),
        ([_drawing(np.float32, [[0, 0, 0.5]])], r"train item 0: step 0 has pen value 0.5"),
    ],
)
def test_malformed_drawings_name_the_item(tmp_path, items, match):
    path = _savez(tmp_path / "bad.npz", train=_object_array(items), valid=_object_array([GOOD]))
    message = _one_line_error(match, read_strokes, path)
    assert message.startswith(f"{path}: ")
    _one_line_error(match.replace("train", "s"), write_strokes, tmp_path / "out.npz", {"s": items})
    assert not (tmp_path / "out.npz").exists()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=8), st.data())
def test_first_bad_step_is_located_in_packed_files(lengths, data):
    """Empty drawings before the bad step must not shift the item named."""
    total = sum(lengths)
    if total == 0:
        return
    row = data.draw(st.integers(0, total - 1))
    steps = np.zeros((total, 3), np.float32)
    steps[row, data.draw(st.sampled_from([0, 2]))] = np.nan
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    item = int(np.searchsorted(offsets, row, side="right")) - 1
    assert offsets[item] <= row < offsets[item + 1]
    with tempfile.TemporaryDirectory() as folder:
        path = _savez(Path(folder) / "p.npz", train_steps=steps, train_offsets=offsets)
        _one_line_error(rf"p.npz: train item {item}: step {row - offsets[item]} is NaN", read_strokes, path)


@pytest.mark.parametrize(
    ("arrays_", "match"),
    [
        (
            {"train_steps": np.zeros((4, 2)), "train_offsets": [0, 4]},
            r"train_steps is a float64 array of shape",
        ),
        (
            {"train_steps": np.zeros((4, 3)), "train_offsets": [0, 3]},
            r"train_offsets must start at 0 and end at 4",
        ),
        (
            {"train_steps": np.zeros((4, 3)), "train_offsets": [0, 3, 1, 4]},
            r"train item 1: train_offsets decrease",
        ),
        ({"train_steps": np.zeros((4, 3)), "train_offsets": [0.0, 4.0]}, r"train_offsets must be an integer"),
        ({"train_steps": np.zeros((4, 3))}, r"train_steps has no train_offsets"),
        (
            {"train_steps": np.zeros((1, 3)), "train_offsets": [0, 1], "train": _object_array([GOOD])},
            r"split 'train' is stored twice",
        ),
        ({"train_offsets": [0]}, r"train_offsets or train_labels without train or train_steps"),
        (
            {"train_steps": np.zeros((2, 3)), "train_offsets": [0, 1, 2], "train_labels": [1, -2]},
            r"train item 1: label -2 is negative",
        ),
        (
            {"train_steps": np.zeros((2, 3)), "train_offsets": [0, 1, 2], "train_labels": [1]},
            r"train_labels is a int64 array of shape \[1\]; expected integer \[2\]",
        ),
        (
            {"train": np.zeros((2, 5, 3), np.int16)},
            r"train is a int16 array of shape \[2, 5, 3\]; expected a 1-D object",
        ),
        ({"notes": np.zeros(0)}, r"no split 'train'; the file holds notes"),
    ],
)
def test_malformed_files(tmp_path, arrays_, match):
    path = _savez(tmp_path / "bad.npz", **arrays_)
    assert _one_line_error(match, read_strokes, path, ["train"]).startswith(f"{path}: ")


def test_unreadable_files(tmp_path):
    good = write_strokes(tmp_path / "good.npz", {"train": [GOOD] * 50})
    raw = good.read_bytes()

    def variant(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    _one_line_error(
        r"cut.npz: not a readable .npz file", read_strokes, variant("cut.npz", raw[: len(raw) // 2])
    )
    _one_line_error(
        r"text.npz: not a readable .npz file", read_strokes, variant("text.npz", b"train,1,2,0\n")
    )
    plain = _savez(tmp_path / "plain.npz", train=_object_array([GOOD] * 50))
    data = bytearray(plain.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the pickled member: its CRC no longer matches
    _one_line_error(
        r"flipped.npz: not a readable .npz file \(Bad CRC", read_strokes, variant("flipped.npz", data)
    )
    _one_line_error(r"missing.npz: no such file", read_strokes, tmp_path / "missing.npz")
    _one_line_error(r"empty.npz: no drawings", read_strokes, _savez(tmp_path / "empty.npz"))

    header = io.BytesIO()
    array = _object_array([GOOD])
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    for name, payload, match in (
        ("short", pickle.dumps(array)[:-20], "corrupt pickled array"),
        ("other", pickle.dumps([GOOD]), r"not the array of shape \[1\] it declares"),
        ("codec", b"c_codecs\nencode\n(Vabc\nVrot13\ntR.", r"latin1 text only, not 'rot13'"),
    ):
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("train.npy", header.getvalue() + payload)
        _one_line_error(rf"{name}.npz: train: .*{match}", read_strokes, path)


# ---------------------------------------------------------------------------------------------------------
# Stroke-5, points and polylines
# ---------------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int16, np.float32, np.float64]).flatmap(drawings), st.integers(0, 4))
def test_stroke5_round_trip(steps, extra):
    max_len = len(steps) + extra
    big = to_stroke5(steps, max_len)
    assert big.shape == (max_len, 5)
    np.testing.assert_array_equal(big[:, 2:].sum(1), 1)  # one pen state per row
    np.testing.assert_array_equal(big[len(steps) :], np.tile([0, 0, 0, 0, 1], (extra, 1)))
    np.testing.assert_array_equal(big[: len(steps), 3], steps[:, 2])
    back = from_stroke5(big)
    np.testing.assert_array_equal(back, steps)
    assert back.dtype == np.result_type(steps.dtype, np.float32)


def test_stroke5_edges():
    with pytest.raises(SetaeError, match="a drawing of 2 steps does not fit max_len=1"):
        to_stroke5(GOOD, 1)
    probabilities = np.array(
        [[1, 2, 0.7, 0.2, 0.1], [3, 4, 0.1, 0.6, 0.3], [5, 6, 0.2, 0.2, 0.6], [7, 8, 1, 0, 0]]
    )
    np.testing.assert_array_equal(from_stroke5(probabilities), [[1, 2, 0], [3, 4, 1]])
    np.testing.assert_array_equal(from_stroke5(to_stroke5(GOOD, 2)), GOOD)  # no end row: all of it
    with pytest.raises(SetaeError, match=r"an \[L, 5\] array, got shape \[2, 3\]"):
        from_stroke5(GOOD)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int16, np.float64]).flatmap(drawings))
def test_points_and_polylines(steps):
    points = strokes_to_points(steps)
    np.testing.assert_allclose(np.diff(points, axis=0, prepend=0), steps[:, :2], atol=1e-9)  # exact for ints
    lines = strokes_to_polylines(torch.as_tensor(steps))
    np.testing.assert_array_equal(np.concatenate([np.zeros((0, 2)), *lines]), points)
    lifts = int(steps[:, 2].sum())
    assert len(lines) == lifts + (len(steps) > 0 and steps[-1, 2] == 0)
    assert all(len(piece) > 0 for piece in lines)


def test_points_by_hand():
    steps = _drawing(np.int16, [[2, 3, 0], [1, 0, 1], [5, 5, 0], [0, -1, 0]])
    assert strokes_to_points(steps).tolist() == [[2, 3], [3, 3], [8, 8], [8, 7]]
    assert [p.tolist() for p in strokes_to_polylines(steps)] == [[[2, 3], [3, 3]], [[8, 8], [8, 7]]]
    with pytest.raises(SetaeError, match=r"a drawing must be a \[T, 3\] array"):
        strokes_to_points(np.zeros((3, 5)))


# ---------------------------------------------------------------------------------------------------------
# MNIST as strokes
# ---------------------------------------------------------------------------------------------------------

# (row, column) steps in the walk's order of preference: E, S, W, N, SE, SW, NW, NE.
PREFERENCE = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, -1), (-1, 1)]


def reference_walk(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """The strokes of the method in mnist_strokes' docstring as (row, column) lists, by brute force."""
    left = set(zip(*np.nonzero(skeleton), strict=True))

    def free(p):
        return [(p[0] + dr, p[1] + dc) for dr, dc in PREFERENCE if (p[0] + dr, p[1] + dc) in left]

    strokes = []
    while left:
        ends = [p for p in sorted(left) if len(free(p)) <= 1]
        pixel = ends[0] if ends else min(left)
        stroke = []
        while pixel is not None:
            left.remove(pixel)
            stroke.append(pixel)
            following = free(pixel)
            pixel = following[0] if following else None
        strokes.append(stroke)
    return strokes


def check_tracing(image: np.ndarray, steps: np.ndarray) -> None:
    """steps is the method's drawing of `image`: every skeleton pixel once, strokes as the reference walk."""
    skeleton = skeletonize(image >= 34 if image.dtype == np.uint8 else image)
    assert steps.dtype == np.int16 and steps.shape == (skeleton.sum(), 3)
    points = strokes_to_points(steps)
    rows_cols = [(int(y), int(x)) for x, y in points]
    assert len(set(rows_cols)) == len(rows_cols)  # each pixel visited once
    assert set(rows_cols) == set(zip(*np.nonzero(skeleton), strict=True))  # exactly the skeleton
    if len(steps):
        assert steps[-1, 2] == 1
    lines = [[(int(y), int(x)) for x, y in piece] for piece in strokes_to_polylines(steps)]
    for piece in lines:  # the pen moves one pixel at a time within a stroke
        assert all(
            max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1 for a, b in zip(piece, piece[1:], strict=False)
        )
    assert lines == reference_walk(skeleton)


def test_line_is_one_stroke():
    image = np.zeros((28, 28), np.uint8)
    image[5, 3:13] = 200
    (steps,) = mnist_to_strokes(image[None])
    assert steps.tolist() == [[3, 5, 0]] + [[1, 0, 0]] * 8 + [[1, 0, 1]]
    vertical = np.zeros((28, 28), bool)
    vertical[4:20, 9] = True
    (steps,) = mnist_to_strokes(vertical[None])
    assert steps.tolist() == [[9, 4, 0]] + [[0, 1, 0]] * 14 + [[0, 1, 1]]


def test_disconnected_parts_lift_the_pen():
    image = np.zeros((28, 28), bool)
    image[20, 10:15] = True  # lower part first in the image, later in raster order
    image[2, 2:6] = True
    (steps,) = mnist_to_strokes(image[None])
    assert steps.tolist() == (
        [[2, 2, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1], [5, 18, 0]] + [[1, 0, 0]] * 3 + [[1, 0, 1]]
    )
    blobs = np.zeros((28, 28), bool)
    blobs[3:9, 3:9] = blobs[15:22, 14:24] = True
    (steps,) = mnist_to_strokes(blobs[None])
    lines = strokes_to_polylines(steps)
    assert len(lines) == 2 and steps[:, 2].sum() == 2
    assert (lines[0] < 9).all() and (lines[1] >= 14).all()
    check_tracing(blobs, steps)


def test_closed_ring_is_one_stroke_over_every_pixel():
    ring = np.zeros((28, 28), bool)
    ring[circle_perimeter(14, 13, 9)] = True
    assert (skeletonize(ring) == ring).all()
    (steps,) = mnist_to_strokes(ring[None])
    (stroke,) = strokes_to_polylines(steps)
    assert len(stroke) == ring.sum() and set(map(tuple, stroke[:, ::-1].tolist())) == set(
        zip(*np.nonzero(ring), strict=True)
    )
    assert np.abs(stroke[-1] - stroke[0]).max() == 1  # it closes
    check_tracing(ring, steps)


def test_threshold_blank_images_and_bad_input():
    image = np.zeros((2, 28, 28), np.uint8)
    image[0, 10, 4:9], image[0, 20, 4:9] = 34, 33
    first, blank = mnist_to_strokes(image)
    assert strokes_to_points(first)[:, 1].tolist() == [10] * 5
    assert blank.shape == (0, 3) and blank.dtype == np.int16
    np.testing.assert_array_equal(mnist_to_strokes(image[:1] >= 34)[0], first)  # bool masks as they are
    assert (skeletons(image)[0] == skeletonize(image[0] >= 34)).all()
    with pytest.raises(
        SetaeError, match=r"images have shape \[28, 28\] and type uint8; expected \[N, 28, 28\]"
    ):
        mnist_to_strokes(image[0])
    with pytest.raises(SetaeError, match=r"type float64"):
        mnist_to_strokes(image.astype(float))


@st.composite
def ink_images(draw) -> np.ndarray:
    """28x28 masks: a few thick random lines and rectangles, sometimes touching, plus scattered pixels."""
    image = np.zeros((28, 28), bool)
    coordinate = st.integers(0, 27)
    for _ in range(draw(st.integers(1, 4))):
        r0, c0, r1, c1 = (draw(coordinate) for _ in range(4))
        if draw(st.booleans()):
            image[min(r0, r1) : max(r0, r1) + 1, min(c0, c1) : max(c0, c1) + 1] = True
        else:
            rr, cc = line(r0, c0, r1, c1)
            image[rr, cc] = True
            image[np.minimum(rr + 1, 27), cc] = draw(st.booleans())
    for _ in range(draw(st.integers(0, 6))):
        image[draw(coordinate), draw(coordinate)] = True
    return image


@settings(max_examples=60, deadline=None)
@given(st.lists(ink_images(), min_size=1, max_size=3))
def test_tracing_follows_the_method(images):
    for image, steps in zip(images, mnist_to_strokes(np.stack(images)), strict=True):
        check_tracing(image, steps)


def _write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """An MNIST folder whose train and test splits both hold `images`."""
    for images_name, labels_name in MNIST_FILES.values():
        write_idx(folder / images_name, images)
        write_idx(folder / labels_name, labels)
    return folder


def _small_mnist(folder: Path, count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        for _ in range(3):
            rr, cc = line(*rng.integers(2, 26, size=4))
            image[rr, cc] = rng.integers(20, 256)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    _write_mnist(folder, images, labels)
    return images, labels


def test_mnist_strokes_dataset_and_cache(tmp_path, monkeypatch):
    images, labels = _small_mnist(tmp_path / "mnist")
    data = MNISTStrokes(tmp_path / "mnist", "test")
    assert len(data) == len(images) and data.num_classes == 10 and data.dim == 3
    assert data.labels.tolist() == labels.tolist() == MNISTSets(tmp_path / "mnist", "test").labels.tolist()
    for (steps, label), want, y in zip(data, mnist_to_strokes(images), labels, strict=False):
        assert label == y and steps.dtype == torch.float32
        np.testing.assert_array_equal(steps.numpy(), want)
    (cache,) = mnist_strokes_cache_dir().iterdir()
    assert cache.name.startswith(f"test-v{mnist_strokes.MNIST_STROKES_VERSION}-")
    assert mnist_strokes_cache_dir().parent == tmp_path / "xdg-cache" / "setae"

    def no_tracing(images):
        raise AssertionError("traced again instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(mnist_strokes, "_trace_images", no_tracing)
        again = MNISTStrokes(tmp_path / "mnist", "test")
    np.testing.assert_array_equal(again.points_array, data.points_array)
    np.testing.assert_array_equal(again.offsets, data.offsets)

    cache.write_bytes(cache.read_bytes()[:100])  # corrupt: rebuilt, and the cache rewritten
    rebuilt = MNISTStrokes(tmp_path / "mnist", "test")
    np.testing.assert_array_equal(rebuilt.points_array, data.points_array)
    assert len(read_strokes(cache, ["test"])["test"]) == len(images)

    monkeypatch.setattr(mnist_strokes, "MNIST_STROKES_VERSION", "next")  # a new method never reads old files
    MNISTStrokes(tmp_path / "mnist", "test")
    assert len(list(mnist_strokes_cache_dir().iterdir())) == 2

    images[0] = 255 - images[0]  # other data, other file
    _write_mnist(tmp_path / "other", images, labels)
    other = MNISTStrokes(tmp_path / "other", "test")
    assert len(other[0][0]) != len(data[0][0])
    assert len(list(mnist_strokes_cache_dir().iterdir())) == 3


def test_unwritable_cache_warns_and_goes_on(tmp_path, monkeypatch):
    _small_mnist(tmp_path / "mnist", count=3)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = MNISTStrokes(tmp_path / "mnist", "train")
    assert len(data) == 3
    assert any("MNIST strokes not cached" in str(w.message) for w in caught)


def test_plot_strokes(tmp_path):
    images, _ = _small_mnist(tmp_path / "mnist", count=3)
    drawings = [torch.as_tensor(d, dtype=torch.float32) for d in mnist_to_strokes(images)]
    path = plot_strokes(drawings, tmp_path / "strokes.png", ["a", "b", "c"], images)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert plot_strokes(drawings[:1], tmp_path / "one.png").is_file()


# ---------------------------------------------------------------------------------------------------------
# Real MNIST
# ---------------------------------------------------------------------------------------------------------


def _real_file(folder: Path, name: str) -> Path:
    return folder / name if (folder / name).exists() else folder / name.removesuffix(".gz")


def test_real_digits_are_traced_pixel_by_pixel(mnist_root):
    images = read_idx(_real_file(mnist_root, "t10k-images-idx3-ubyte.gz"), expected_ndim=3)[:200]
    for image, steps in zip(images, mnist_to_strokes(images), strict=True):
        check_tracing(image, steps)


def test_real_max_len(mnist_root):
    longest = max(MNISTStrokes(mnist_root, split, download=False).max_size for split in ("train", "test"))
    assert longest == MNIST_STROKES_MAX_LEN

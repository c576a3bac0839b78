"""Drawings as sequences of pen steps, in the stroke-3 format of sketch-RNN and QuickDraw.

A drawing of T steps is an array [T, 3] of rows (dx, dy, pen_lifted): the pen moves by (dx, dy) from the
previous point (from the origin (0, 0) for the first row) to the point p_t = sum_{s <= t} (dx_s, dy_s), and
pen_lifted = 1 means the pen is lifted after p_t, so p_{t+1} starts a new stroke. Steps are integers or
floats, pen values exactly 0 or 1. An empty drawing [0, 3] is valid (a blank image traces to one), and the
last step need not lift the pen: whatever follows the last lift is one more stroke.

Files are numpy `.npz` archives holding, for each split S (train, valid, test, ...), one of
- the sketch-RNN form: S, a 1-D object array of [T_i, 3] arrays (QuickDraw's files hold int16 steps);
- the packed form that `write_strokes` writes, without pickle: S_steps [sum T_i, 3] and S_offsets [N + 1]
  int with S_offsets[0] = 0, so drawing i is S_steps[S_offsets[i]:S_offsets[i + 1]];
and optionally S_labels [N] int >= 0.

numpy stores object arrays as pickles, and unpickling calls whatever the pickle names, so a downloaded file
could run any code under `np.load(allow_pickle=True)`. Here the .npy members are read directly and object
arrays are unpickled by an unpickler that resolves only numpy's array, dtype and scalar reconstructors (and
latin1 text-to-bytes, for protocol-2 pickles); a pickle naming anything else is refused with a SetaeError,
before the named callable is ever looked up.

sketch-RNN's stroke-5 form [L, 5] has rows (dx, dy, p1, p2, p3) with a one-hot pen state: p1 = pen down
(pen_lifted = 0), p2 = pen lifted, p3 = the drawing has ended; the rows after the end are (0, 0, 0, 0, 1).
"""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from setae.datasets.packed import PackedSets
from setae.errors import SetaeError
from setae.fileio import atomic_write

_PACKED_SUFFIXES = ("_steps", "_offsets", "_labels")


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """`_codecs.encode(text, "latin1")`, which protocol-2 pickles written by Python 3 (older numpy saved
    object arrays with protocol 2) call to rebuild bytes; any other codec is refused."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode is allowed for latin1 text only, not {encoding!r}")
    return text.encode("latin1")


# What numpy's own pickles of arrays, dtypes and scalars name, under the module paths of numpy 1 and 2.
# The callables are taken from numpy's reductions so that they are the running numpy's own.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.int16(0).__reduce__()[0]
_PICKLE_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
}


@dataclass(frozen=True, eq=False)
class StrokeSplit(Sequence):
    """The drawings of one split, packed: drawing i is steps[offsets[i]:offsets[i + 1]], a [T_i, 3] view.

    steps [sum T_i, 3] (integer or float), offsets [N + 1] int64, labels [N] int64 or None.
    """

    steps: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"drawing {index} is out of range for {len(self)} drawings")
        index %= len(self)
        return self.steps[self.offsets[index] : self.offsets[index + 1]]


def read_strokes(path: str | Path, splits: Sequence[str] | None = None) -> dict[str, StrokeSplit]:
    """The splits of a stroke-3 `.npz` file (either form in the module docstring), in file order, or only
    `splits`. Every problem is a SetaeError of one line naming the file, the split and the drawing."""
    path = Path(path)
    if not path.is_file():
        raise SetaeError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                name.removesuffix(".npy"): name for name in archive.namelist() if name.endswith(".npy")
            }
            found = list(dict.fromkeys(_split_name(key) for key in members))
            wanted = found if splits is None else list(splits)
            for split in wanted:
                if split not in found:
                    raise SetaeError(
                        f"{path}: no split {split!r}; the file holds {', '.join(found) or 'none'}"
                    )
            if not wanted:
                raise SetaeError(f"{path}: no drawings: expected arrays such as train, or train_steps")
            return {split: _read_split(path, archive, members, split) for split in wanted}
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile, zlib.error) as e:
        raise SetaeError(f"{path}: not a readable .npz file ({' '.join(str(e).split())})") from None


def write_strokes(
    path: str | Path,
    splits: Mapping[str, Sequence[ArrayLike]],
    labels: Mapping[str, ArrayLike] | None = None,
) -> Path:
    """Write drawings [T_i, 3] (and labels [N] per split) atomically in the packed form, compressed.

    Each split's steps are stored in the common type of its drawings (np.result_type), so reading the file
    back gives the same values, and the same type when a split's drawings share one."""
    labels = dict(labels or {})
    unknown = [split for split in labels if split not in splits]
    if unknown:
        raise SetaeError(f"{path}: labels given for split {unknown[0]!r}, which has no drawings")
    arrays = {}
    for split, drawings in splits.items():
        steps, offsets = _pack(path, split, list(drawings))
        _check_steps(path, split, steps, offsets)
        arrays[f"{split}_steps"], arrays[f"{split}_offsets"] = steps, offsets
        if split in labels:
            arrays[f"{split}_labels"] = _check_labels(
                path, split, np.asarray(labels[split]), len(offsets) - 1
            )

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


class StrokeSequences(PackedSets):
    """Drawings as a dataset: item i is (float32 tensor [T_i, 3] of stroke-3 steps, label int; -1 when
    unlabelled). `collate_sets` batches items into a SetBatch whose points [B, max T_i, 3] hold each
    drawing's steps in order, followed by padding rows (padding_mask True)."""

    def __init__(self, split: StrokeSplit, name: str) -> None:
        super().__init__(split.steps, split.offsets, split.labels, name)

    @classmethod
    def from_file(cls, path: str | Path, split: str = "train") -> StrokeSequences:
        return cls(read_strokes(path, [split])[split], f"{Path(path).name} {split}")


def to_stroke5(steps: ArrayLike, max_len: int) -> np.ndarray:
    """A stroke-3 drawing [T, 3] as stroke-5 [max_len, 5] (module docstring), of a float type holding the
    steps exactly (float32 for integer steps)."""
    steps = _drawing(steps)
    length = len(steps)
    if length > max_len:
        raise SetaeError(f"a drawing of {length} steps does not fit max_len={max_len}")
    out = np.zeros((max_len, 5), np.result_type(steps.dtype, np.float32))
    out[:length, :2] = steps[:, :2]
    out[:length, 2] = 1 - steps[:, 2]
    out[:length, 3] = steps[:, 2]
    out[length:, 4] = 1
    return out


def from_stroke5(big: ArrayLike) -> np.ndarray:
    """The stroke-3 drawing [T, 3] of a stroke-5 array [L, 5]: each row's pen state is its largest of
    (p1, p2, p3), so probabilities work as well as one-hot rows; the drawing ends before the first row whose
    state is p3 (T = L when there is none)."""
    big = np.asarray(big)
    if big.ndim != 2 or big.shape[1] != 5:
        raise SetaeError(f"a stroke-5 drawing must be an [L, 5] array, got shape {list(big.shape)}")
    state = big[:, 2:].argmax(axis=1)
    ends = np.flatnonzero(state == 2)
    length = int(ends[0]) if len(ends) else len(big)
    return np.concatenate([big[:length, :2], (state[:length, None] == 1).astype(big.dtype)], axis=1)


def strokes_to_points(steps: ArrayLike) -> np.ndarray:
    """[T, 2] absolute points p_t = sum_{s <= t} (dx_s, dy_s): int64 for integer steps, else float64."""
    steps = _drawing(steps)
    return np.cumsum(steps[:, :2], axis=0, dtype=np.result_type(steps.dtype, np.int64))


def strokes_to_polylines(steps: ArrayLike) -> list[np.ndarray]:
    """The strokes of a drawing: [k, 2] arrays of absolute points, split after each lifted pen."""
    steps = _drawing(steps)
    pieces = np.split(strokes_to_points(steps), np.flatnonzero(steps[:, 2] == 1) + 1)
    return [piece for piece in pieces if len(piece)]


def _drawing(steps: ArrayLike) -> np.ndarray:
    steps = np.asarray(steps)
    if steps.ndim != 2 or steps.shape[1] != 3:
        raise SetaeError(f"a drawing must be a [T, 3] array of (dx, dy, pen_lifted), got {list(steps.shape)}")
    return steps


def _split_name(key: str) -> str:
    for suffix in _PACKED_SUFFIXES:
        if key.endswith(suffix):
            return key.removesuffix(suffix)
    return key


def _read_split(path: Path, archive: zipfile.ZipFile, members: dict[str, str], split: str) -> StrokeSplit:
    def read(key: str) -> np.ndarray:
        return _read_npy(path, key, archive.read(members[key]))

    if f"{split}_steps" in members:
        if split in members:
            raise SetaeError(f"{path}: split {split!r} is stored twice, as {split} and as {split}_steps")
        if f"{split}_offsets" not in members:
            raise SetaeError(f"{path}: {split}_steps has no {split}_offsets")
        steps, offsets = read(f"{split}_steps"), read(f"{split}_offsets")
        _check_packed(path, split, steps, offsets)
        offsets = offsets.astype(np.int64)
    elif split in members:
        drawings = read(split)
        if drawings.dtype != object or drawings.ndim != 1:
            raise SetaeError(
                f"{path}: {split} is a {drawings.dtype} array of shape {list(drawings.shape)}; expected a "
                f"1-D object array of [T, 3] drawings, or {split}_steps with {split}_offsets"
            )
        steps, offsets = _pack(path, split, list(drawings))
    else:
        raise SetaeError(f"{path}: {split}_offsets or {split}_labels without {split} or {split}_steps")
    _check_steps(path, split, steps, offsets)
    labels = None
    if f"{split}_labels" in members:
        labels = _check_labels(path, split, read(f"{split}_labels"), len(offsets) - 1)
    return StrokeSplit(steps, offsets, labels)


def _read_npy(path: Path, key: str, data: bytes) -> np.ndarray:
    """One .npy member; object arrays through the restricted unpickler, nothing else unpickled."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read_header(f)
    if not dtype.hasobject:
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    try:
        array = _NumpyUnpickler(f, f"{path}: {key}").load()
    except SetaeError:
        raise
    except Exception as e:  # a corrupt pickle can fail in any way; none of it runs foreign code
        raise SetaeError(f"{path}: {key}: corrupt pickled array ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise SetaeError(
            f"{path}: {key}: the pickled data is not the array of shape {list(shape)} it declares"
        )
    return array


class _NumpyUnpickler(pickle.Unpickler):
    """Resolves only the names in _PICKLE_ALLOWED. encoding="latin1" reads the arrays in Python 2 pickles,
    as in sketch-RNN's original files."""

    def __init__(self, file: io.BytesIO, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        allowed = _PICKLE_ALLOWED.get((module, name))
        if allowed is None:
            raise SetaeError(
                f"{self._source}: the pickled data calls {module}.{name}, which is not a numpy array "
                "constructor; refusing to load it"
            )
        return allowed


def _pack(source: str | Path, split: str, drawings: list) -> tuple[np.ndarray, np.ndarray]:
    """Check each drawing's shape and type, and concatenate them: steps [sum T_i, 3], offsets [N + 1]."""
    arrays = []
    for i, drawing in enumerate(drawings):
        try:
            array = np.asarray(drawing)
        except ValueError:
            raise SetaeError(f"{source}: {split} item {i}: is ragged, not a [T, 3] array") from None
        if array.dtype.kind not in "iuf":
            raise SetaeError(
                f"{source}: {split} item {i}: has type {array.dtype}; expected integer or float steps"
            )
        if array.ndim != 2 or array.shape[1] != 3:
            raise SetaeError(
                f"{source}: {split} item {i}: has shape {list(array.shape)}; "
                "expected [T, 3] (dx, dy, pen_lifted)"
            )
        arrays.append(array)
    offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    steps = np.concatenate(arrays) if arrays else np.zeros((0, 3), np.float32)
    return steps, offsets


def _check_packed(source: Path, split: str, steps: np.ndarray, offsets: np.ndarray) -> None:
    if steps.ndim != 2 or steps.shape[1] != 3 or steps.dtype.kind not in "iuf":
        raise SetaeError(
            f"{source}: {split}_steps is a {steps.dtype} array of shape {list(steps.shape)}; "
            "expected integer or float [total, 3]"
        )
    if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
        raise SetaeError(
            f"{source}: {split}_offsets must be an integer [N + 1] array, got {list(offsets.shape)}"
        )
    if offsets[0] != 0 or offsets[-1] != len(steps):
        raise SetaeError(
            f"{source}: {split}_offsets must start at 0 and end at {len(steps)} (the number of steps)"
        )
    shrinking = np.flatnonzero(np.diff(offsets) < 0)
    if len(shrinking):
        raise SetaeError(f"{source}: {split} item {shrinking[0]}: {split}_offsets decrease there")


def _check_steps(source: str | Path, split: str, steps: np.ndarray, offsets: np.ndarray) -> None:
    """Steps finite with pen values 0 or 1; the error names the first offending drawing and step."""

    def fail(row: int, problem: str) -> SetaeError:
        item = int(np.searchsorted(offsets, row, side="right")) - 1
        return SetaeError(f"{source}: {split} item {item}: step {row - offsets[item]} {problem}")

    bad = np.flatnonzero(~np.isfinite(steps).all(axis=1))
    if len(bad):
        raise fail(bad[0], "is NaN or infinite")
    pen = steps[:, 2]
    bad = np.flatnonzero((pen != 0) & (pen != 1))
    if len(bad):
        raise fail(bad[0], f"has pen value {pen[bad[0]]}; expected 0, or 1 to lift the pen after it")


def _check_labels(source: str | Path, split: str, labels: np.ndarray, count: int) -> np.ndarray:
    if labels.shape != (count,) or labels.dtype.kind not in "iu":
        raise SetaeError(
            f"{source}: {split}_labels is a {labels.dtype} array of shape {list(labels.shape)}; expected "
            f"integer [{count}] (one label per drawing)"
        )
    negative = np.flatnonzero(labels < 0)
    if len(negative):
        raise SetaeError(f"{source}: {split} item {negative[0]}: label {labels[negative[0]]} is negative")
    return labels.astype(np.int64)

"""Your own sets from a file, of any dimension D.

`.npz` (numpy's `np.savez`):
    points   [total, D] float   all points of all sets, set after set
    offsets  [B + 1] int        set i is points[offsets[i]:offsets[i+1]]; offsets[0] = 0, offsets[B] = total
    labels   [B] int, optional  non-negative class labels

A folder holding `points.npy`, `offsets.npy` (and `labels.npy`) with the same meaning is memory-mapped, not
read: datasets larger than RAM train from it (points stored as float32 are used in place).

`.csv`: a header row, then one point per row: a `set_id` column (rows of one set are consecutive), an
optional integer `label` column (constant within a set), and the D coordinate columns (any other names).

Every problem is reported as one line naming the file, the set and what is wrong.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from setae.datasets.packed import PackedSets
from setae.errors import SetaeError
from setae.fileio import atomic_write

_CHUNK = 1 << 20  # points per validation / statistics chunk


def load_point_sets(path: str | Path) -> PackedSets:
    """Read and validate a `.npz` or `.csv` file of sets (format in the module docstring)."""
    path = Path(path)
    if path.is_dir():
        points, offsets, labels = _map_folder(path)
    elif not path.is_file():
        raise SetaeError(f"{path}: no such file")
    elif path.suffix == ".npz":
        points, offsets, labels = _read_npz(path)
    elif path.suffix == ".csv":
        points, offsets, labels = _read_csv(path)
    else:
        raise SetaeError(f"{path}: unknown data format {path.suffix!r}; expected .npz or .csv")
    _validate(path, points, offsets, labels)
    return PackedSets(points, offsets, labels, path.name)


def save_point_sets(
    path: str | Path, sets: Sequence[np.ndarray], labels: Sequence[int] | None = None
) -> None:
    """Write sets [n_i, D] (and labels) as a `.npz` file in the format above."""
    sets = [np.asarray(s, dtype=np.float32) for s in sets]
    dim = sets[0].shape[1] if sets else 0
    points = np.concatenate(sets) if sets else np.zeros((0, dim), np.float32)
    arrays = {"points": points, "offsets": np.concatenate([[0], np.cumsum([len(s) for s in sets])])}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    atomic_write(path, lambda tmp: tmp.write_bytes(_npz_bytes(arrays)))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"points", "offsets"} - set(data.files)
            if missing:
                raise SetaeError(
                    f"{path}: missing array(s) {', '.join(sorted(missing))}; see `setae train --help`"
                )
            return data["points"], data["offsets"], data["labels"] if "labels" in data.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SetaeError(f"{path}: not a readable .npz file ({e})") from None


def _map_folder(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    arrays = {}
    for name in ("points", "offsets", "labels"):
        file = path / f"{name}.npy"
        if not file.exists():
            if name == "labels":
                continue
            raise SetaeError(
                f"{path}: missing {file.name} (a dataset folder holds points.npy and offsets.npy)"
            )
        try:
            arrays[name] = np.load(file, mmap_mode="r" if name == "points" else None, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SetaeError(f"{file}: not a readable .npy file ({e})") from None
    return arrays["points"], arrays["offsets"], arrays.get("labels")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "set_id" not in rows[0]:
        raise SetaeError(f"{path}: the header must name a set_id column")
    header = rows[0]
    coords = [i for i, name in enumerate(header) if name not in ("set_id", "label")]
    if not coords:
        raise SetaeError(f"{path}: no coordinate columns besides set_id/label")
    id_col, label_col = header.index("set_id"), header.index("label") if "label" in header else None
    ids, seen, points, labels, offsets = [], set(), [], [], [0]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise SetaeError(f"{path}: line {line} has {len(row)} fields; the header has {len(header)}")
        try:
            points.append([float(row[i]) for i in coords])
        except ValueError:
            raise SetaeError(f"{path}: line {line}: a coordinate is not a number") from None
        if not ids or row[id_col] != ids[-1]:
            if row[id_col] in seen:
                raise SetaeError(f"{path}: line {line}: rows of set {row[id_col]!r} are not consecutive")
            ids.append(row[id_col])
            seen.add(row[id_col])
            offsets.append(offsets[-1])
            if label_col is not None:
                labels.append(_int(path, line, row[label_col]))
        elif label_col is not None and _int(path, line, row[label_col]) != labels[-1]:
            raise SetaeError(f"{path}: line {line}: set {row[id_col]!r} has more than one label")
        offsets[-1] += 1
    array = np.asarray(points, dtype=np.float64).reshape(-1, len(coords))
    return array, np.asarray(offsets), np.asarray(labels) if label_col is not None else None


def _int(path: Path, line: int, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SetaeError(f"{path}: line {line}: label {text!r} is not an integer") from None


def _validate(path: Path, points: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None) -> None:
    if points.ndim != 2 or points.shape[1] < 1 or not np.issubdtype(points.dtype, np.number):
        raise SetaeError(
            f"{path}: points must be a numeric [total, D] array, got {points.dtype} {list(points.shape)}"
        )
    if offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer):
        raise SetaeError(
            f"{path}: offsets must be an integer [B + 1] array with B >= 1, got {list(offsets.shape)}"
        )
    if offsets[0] != 0 or offsets[-1] != len(points):
        raise SetaeError(f"{path}: offsets must start at 0 and end at {len(points)} (the number of points)")
    shrinking = np.flatnonzero(np.diff(offsets) < 0)
    if len(shrinking):
        raise SetaeError(f"{path}: offsets decrease at set {shrinking[0]}")
    for start in range(0, len(points), _CHUNK):  # in chunks, so a memory-mapped file is never loaded whole
        bad = np.flatnonzero(~np.isfinite(points[start : start + _CHUNK]).all(axis=1))
        if len(bad):
            point = start + int(bad[0])
            set_index = int(np.searchsorted(offsets, point, side="right") - 1)
            raise SetaeError(f"{path}: set {set_index} contains NaN or infinite coordinates (point {point})")
    if labels is not None:
        if labels.shape != (len(offsets) - 1,) or not np.issubdtype(labels.dtype, np.integer):
            raise SetaeError(f"{path}: labels must be an integer [B] array with B = {len(offsets) - 1}")
        negative = np.flatnonzero(labels < 0)
        if len(negative):
            raise SetaeError(
                f"{path}: set {negative[0]} has label {labels[negative[0]]}; labels must be >= 0"
            )

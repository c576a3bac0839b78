"""Your own sets from a file, of any dimension D.

`.npz` (numpy's `np.savez`):
    points   [total, D] float   all points of all sets, set after set
    offsets  [B + 1] int        set i is points[offsets[i]:offsets[i+1]]; offsets[0] = 0, offsets[B] = total
    labels   [B] int, optional  non-negative class labels

A folder holding `points.npy`, `offsets.npy` (and `labels.npy`) with the same meaning is memory-mapped, not
read: datasets larger than RAM train from it (points stored as float32 are used in place).

`.csv`: a header row, then one point per row: a `set_id` column (rows of one set are consecutive), an
optional integer `label` column (constant within a set), and the D coordinate columns (any other names). A
column with an empty name or named `Unnamed: 0` (the index `pandas.DataFrame.to_csv` writes) is ignored.

`.parquet`: the same columns as the CSV, one row per point (read with pyarrow).

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
    elif path.suffix == ".parquet":
        points, offsets, labels = _read_parquet(path)
    else:
        raise SetaeError(f"{path}: unknown data format {path.suffix!r}; expected .npz, .csv or .parquet")
    validate_packed(path, points, offsets, labels)
    return PackedSets(points, offsets, labels, path.name)


def save_point_sets(
    path: str | Path, sets: Sequence[np.ndarray], labels: Sequence[int] | None = None
) -> None:
    """Write sets [n_i, D] (and labels) in the format of the extension: `.npz`, `.csv` (columns set_id,
    label, x0..x{D-1}) or `.parquet` (the same columns)."""
    path = Path(path)
    sets = [np.asarray(s, dtype=np.float32) for s in sets]
    dim = sets[0].shape[1] if sets else 0
    points = np.concatenate(sets) if sets else np.zeros((0, dim), np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    if path.suffix == ".npz":
        arrays = {"points": points, "offsets": offsets}
        if labels is not None:
            arrays["labels"] = np.asarray(labels, dtype=np.int64)
        atomic_write(path, lambda tmp: tmp.write_bytes(npz_bytes(arrays)))
        return
    owner = np.repeat(np.arange(len(sets)), np.diff(offsets))
    columns = {"set_id": owner}
    if labels is not None:
        columns["label"] = np.asarray(labels, dtype=np.int64)[owner]
    columns.update({f"x{j}": points[:, j].astype(np.float64) for j in range(dim)})
    if path.suffix not in (".csv", ".parquet"):
        raise SetaeError(f"{path}: unknown format {path.suffix!r}; use .npz, .csv or .parquet")
    _write_table(path, columns)


def _write_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Equal-length columns as a `.csv` (header row, full float precision) or `.parquet` table."""
    if path.suffix == ".csv":

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                out = csv.writer(f)
                out.writerow(list(columns))
                out.writerows(zip(*(c.tolist() for c in columns.values()), strict=True))

        atomic_write(path, write)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(columns)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not zipfile.is_zipfile(path):
        raise SetaeError(
            f"{path}: not a readable .npz file (not a complete zip archive as numpy.savez writes)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"points", "offsets"} - set(data.files)
            if missing and "input_points" in data.files:
                raise SetaeError(
                    f"{path}: a file of input/target pairs (setae.datasets.pairs), not of sets: train on it "
                    "with `setae train --data`"
                )
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


def _is_index(name: str) -> bool:
    return name.strip() == "" or name.startswith("Unnamed: ")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SetaeError(f"{path}: not a readable CSV file ({e})") from None
    if not rows or "set_id" not in rows[0]:
        raise SetaeError(f"{path}: the header must name a set_id column")
    header = rows[0]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise SetaeError(f"{path}: line {line} has {len(row)} fields; the header has {len(header)}")
    columns = {name: [row[i] for row in rows[1:]] for i, name in enumerate(header) if not _is_index(name)}
    return _from_columns(path, columns, first_line=2)


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise SetaeError(f"{path}: not a readable Parquet file ({e})") from None
    columns = {name: table.column(name).to_pylist() for name in table.column_names if not _is_index(name)}
    if "set_id" not in columns:
        raise SetaeError(f"{path}: the table must have a set_id column")
    return _from_columns(path, columns, first_line=None)


def _from_columns(
    path: Path, columns: dict[str, list], first_line: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sets from one-point-per-row columns (set_id, optional label, coordinates); `first_line` names CSV
    lines in errors, else rows (0-based) are named."""

    def where(row: int) -> str:
        return f"line {row + first_line}" if first_line is not None else f"row {row}"

    names = [name for name in columns if name not in ("set_id", "label")]
    if not names:
        raise SetaeError(f"{path}: no coordinate columns besides set_id/label")
    ids, label_column = columns["set_id"], columns.get("label")
    points = np.empty((len(ids), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        for row, value in enumerate(columns[name]):
            try:
                points[row, j] = float(value)
            except (TypeError, ValueError):
                raise SetaeError(
                    f"{path}: {where(row)}: coordinate {name!r} is {value!r}, not a number"
                ) from None
    seen, labels, offsets, previous = set(), [], [0], object()
    for row, set_id in enumerate(ids):
        if set_id != previous:
            if set_id in seen:
                raise SetaeError(f"{path}: {where(row)}: rows of set {set_id!r} are not consecutive")
            seen.add(set_id)
            offsets.append(offsets[-1])
            if label_column is not None:
                labels.append(_int(path, where(row), label_column[row]))
            previous = set_id
        elif label_column is not None and _int(path, where(row), label_column[row]) != labels[-1]:
            raise SetaeError(f"{path}: {where(row)}: set {set_id!r} has more than one label")
        offsets[-1] += 1
    return points, np.asarray(offsets), np.asarray(labels) if label_column is not None else None


def _int(path: Path, where: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SetaeError(f"{path}: {where}: label {value!r} is not an integer") from None


def validate_packed(
    path: Path, points: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None, prefix: str = ""
) -> None:
    """One-line errors for a packed [total, D] `points` and [B + 1] `offsets` (and labels [B]); `prefix`
    names the arrays of a pair file (`input_`, `target_`; setae.datasets.pairs)."""
    kind = f"{prefix.rstrip('_')} set" if prefix else "set"
    if points.ndim != 2 or points.shape[1] < 1 or not np.issubdtype(points.dtype, np.number):
        raise SetaeError(
            f"{path}: {prefix}points must be a numeric [total, D] array, got {points.dtype} "
            f"{list(points.shape)}"
        )
    if offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer):
        raise SetaeError(
            f"{path}: {prefix}offsets must be an integer [B + 1] array with B >= 1, got {list(offsets.shape)}"
        )
    if offsets[0] != 0 or offsets[-1] != len(points):
        raise SetaeError(
            f"{path}: {prefix}offsets must start at 0 and end at {len(points)} (the number of {prefix}points)"
        )
    shrinking = np.flatnonzero(np.diff(offsets) < 0)
    if len(shrinking):
        raise SetaeError(f"{path}: {prefix}offsets decrease at {kind} {shrinking[0]}")
    for start in range(0, len(points), _CHUNK):  # in chunks, so a memory-mapped file is never loaded whole
        bad = np.flatnonzero(~np.isfinite(points[start : start + _CHUNK]).all(axis=1))
        if len(bad):
            point = start + int(bad[0])
            set_index = int(np.searchsorted(offsets, point, side="right") - 1)
            raise SetaeError(
                f"{path}: {kind} {set_index} contains NaN or infinite coordinates ({prefix}point {point})"
            )
    if labels is not None:
        if labels.shape != (len(offsets) - 1,) or not np.issubdtype(labels.dtype, np.integer):
            raise SetaeError(f"{path}: labels must be an integer [B] array with B = {len(offsets) - 1}")
        negative = np.flatnonzero(labels < 0)
        if len(negative):
            raise SetaeError(
                f"{path}: {'pair' if prefix else 'set'} {negative[0]} has label {labels[negative[0]]}; "
                "labels must be >= 0"
            )


def write_codes(path: str | Path, codes: np.ndarray, labels: Sequence[int] | None = None) -> None:
    """Write codes [B, latent] by the extension of `path`: `.npy` the array alone; `.npz` arrays `codes`,
    `set_ids` (0..B-1, the sets' order in the input) and `labels`; `.csv` / `.parquet` one row per set with
    columns set_id, label and z0..z{latent-1}. Labels are -1 for unlabelled sets."""
    path = Path(path)
    ids = np.arange(len(codes))
    labels = np.full(len(codes), -1) if labels is None else np.asarray(labels, dtype=np.int64)
    if path.suffix == ".npy":

        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.save(f, codes)

        atomic_write(path, write)
    elif path.suffix == ".npz":
        arrays = {"codes": codes, "set_ids": ids, "labels": labels}
        atomic_write(path, lambda tmp: tmp.write_bytes(npz_bytes(arrays)))
    elif path.suffix in (".csv", ".parquet"):
        columns = {"set_id": ids, "label": labels, **{f"z{j}": codes[:, j] for j in range(codes.shape[1])}}
        _write_table(path, columns)
    else:
        raise SetaeError(f"{path}: unknown format {path.suffix!r}; use .npy, .npz, .csv or .parquet")

"""Reading and writing IDX files, the array format MNIST ships in, plain or gzipped.

An IDX file is a 4-byte magic number `00 00 TT NN` (TT: element type code, NN: number of dimensions), then NN
big-endian uint32 dimension sizes d_1..d_NN, then d_1 * ... * d_NN big-endian elements in row-major order.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from setae.errors import SetaeError
from setae.fileio import write_bytes

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian element dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (dtype kind, item size) -> IDX type code, whatever the byte order.
_TYPE_CODES = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

_EXPECTED_MAGIC = "0x0000TTNN (two zero bytes, type code TT in 08/09/0B/0C/0D/0E, NN dimensions >= 1)"


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not, told apart by the gzip magic bytes) into a native-endian array
    of shape [d_1, ..., d_NN].

    Raises SetaeError naming the file if it cannot be read, the gzip stream is corrupt or truncated, the magic
    number is wrong (or names another number of dimensions than `expected_ndim`), or the data is not exactly
    d_1 * ... * d_NN elements long.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SetaeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SetaeError(f"{path}: is a folder, expected an IDX file") from None
    except OSError as e:
        raise SetaeError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise SetaeError(f"{path}: corrupt or truncated gzip stream ({e})") from None

    if len(raw) < 4:
        raise SetaeError(f"{path}: truncated: {len(raw)} bytes is too short for an IDX magic number")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise SetaeError(f"{path}: wrong IDX magic number 0x{magic:08X}; expected {_EXPECTED_MAGIC}")
    if expected_ndim is not None and ndim != expected_ndim:
        raise SetaeError(
            f"{path}: wrong IDX magic number 0x{magic:08X}; expected {expected_ndim} dimension(s), not {ndim}"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise SetaeError(
            f"{path}: truncated: the header needs {header_size} bytes for {ndim} dimensions, found {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_size
    if found < expected:
        raise SetaeError(
            f"{path}: truncated: expected {expected} bytes of data for shape {list(shape)}, found {found}"
        )
    if found > expected:
        raise SetaeError(
            f"{path}: {found - expected} trailing bytes after the {expected} bytes of data "
            f"for shape {list(shape)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` (uint8, int8, int16, int32, float32 or float64, at least 1-D) as an IDX file, gzipped
    when the name ends in `.gz`. Writes a temporary file in the same folder, then renames it into place."""
    path = Path(path)
    array = np.asarray(array)
    type_code = _TYPE_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if type_code is None:
        raise SetaeError(f"{path}: IDX cannot store arrays of type {array.dtype}")
    if not 1 <= array.ndim <= 255 or max(array.shape) >= 2**32:
        raise SetaeError(f"{path}: IDX cannot store an array of shape {list(array.shape)}")
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(IDX_DTYPES[type_code]).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_bytes(path, data)

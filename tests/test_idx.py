from __future__ import annotations

import gzip

import numpy as np
import pytest

from setae.datasets import read_idx, write_idx
from setae.errors import SetaeError


def _header(type_code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / name
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_big_endian_layout(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.array([1, 258], dtype=np.int16))
    assert path.read_bytes() == _header(0x0B, (2,)) + b"\x00\x01\x01\x02"


def test_gzip_is_detected_by_magic_not_extension(tmp_path):
    path = tmp_path / "labels-no-extension"
    path.write_bytes(gzip.compress(_header(0x08, (3,)) + bytes([7, 8, 9])))
    np.testing.assert_array_equal(read_idx(path), [7, 8, 9])
    raw = tmp_path / "raw.gz"
    raw.write_bytes(_header(0x08, (3,)) + bytes([7, 8, 9]))
    np.testing.assert_array_equal(read_idx(raw), [7, 8, 9])


def _assert_rejected(path, *fragments: str) -> None:
    with pytest.raises(SetaeError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path):
    _assert_rejected(tmp_path / "absent.gz", "no such file")


def test_folder_instead_of_file(tmp_path):
    _assert_rejected(tmp_path, "is a folder")


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + bytes(3))
    _assert_rejected(path, "wrong IDX magic number 0x01000801", "expected 0x0000")


@pytest.mark.parametrize("magic", [b"\x00\x00\x0a\x01", b"\x00\x00\x08\x00"])
def test_unknown_type_code_or_zero_dimensions(tmp_path, magic):
    path = tmp_path / "bad"
    path.write_bytes(magic + (3).to_bytes(4, "big") + bytes(3))
    _assert_rejected(path, f"wrong IDX magic number 0x{magic.hex().upper()}")


def test_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00")
    _assert_rejected(path, "truncated")
    path.write_bytes(_header(0x08, (2, 2))[:9])
    _assert_rejected(path, "truncated: the header needs 12 bytes for 2 dimensions, found 9")


@pytest.mark.parametrize("gzipped", [False, True])
def test_too_few_items(tmp_path, gzipped):
    data = _header(0x08, (10,)) + bytes(9)
    path = tmp_path / "nine.gz"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    _assert_rejected(path, "truncated: expected 10 bytes of data for shape [10], found 9")


def test_too_many_items(tmp_path):
    path = tmp_path / "eleven"
    path.write_bytes(_header(0x08, (10,)) + bytes(11))
    _assert_rejected(path, "1 trailing bytes", "10 bytes of data")


def test_item_size_counts(tmp_path):
    path = tmp_path / "ints"
    path.write_bytes(_header(0x0C, (3,)) + bytes(11))
    _assert_rejected(path, "expected 12 bytes of data for shape [3], found 11")


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_header(0x08, (100,)) + bytes(range(100)))[:-12])
    _assert_rejected(path, "corrupt or truncated gzip stream")


def test_corrupt_gzip_stream(tmp_path):
    data = bytearray(gzip.compress(_header(0x08, (100,)) + bytes(range(100))))
    data[15:25] = b"\xff" * 10
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    _assert_rejected(path, "corrupt or truncated gzip stream")


def test_write_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(SetaeError, match="cannot store arrays of type bool"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=bool))
    with pytest.raises(SetaeError, match=r"cannot store an array of shape \[\]"):
        write_idx(tmp_path / "s", np.uint8(3))
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(SetaeError, match="a-file/x: cannot write"):
        write_idx(tmp_path / "a-file" / "x", np.zeros(3, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]

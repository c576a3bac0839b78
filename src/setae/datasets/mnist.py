"""MNIST digits as 2-D point sets.

Protocol: pixel (row r, column c) of a 28x28 uint8 image is in the set when its intensity is >= 34, the
smallest value above 0.1307 * 255 (0.1307 is MNIST's mean intensity on a [0, 1] scale); it becomes the point
(x, y) = (c, r) / 27 in [0, 1]^2, so y points down. A set lists its points in raster (row-major) order.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from setae.datasets.idx import GZIP_MAGIC, read_idx
from setae.datasets.packed import PackedSets
from setae.errors import SetaeError
from setae.fileio import write_bytes

MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# SHA-256 of each file's decompressed IDX content rather than of the .gz bytes: mirrors and local copies
# may compress the same data differently.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT_S = 10.0

IMAGE_SIDE = 28
PIXEL_THRESHOLD = 34
NUM_CLASSES = 10
# The largest set over train + test under the protocol above.
MNIST_MAX_SET_SIZE = 342

_ALL_FILES: tuple[str, ...] = tuple(name for pair in MNIST_FILES.values() for name in pair)

# [784, 2] float32: the point of each pixel in raster order, (column, row) / 27.
_PIXEL_POINTS = np.stack(np.meshgrid(np.arange(IMAGE_SIDE), np.arange(IMAGE_SIDE)), axis=-1).reshape(
    -1, 2
).astype(np.float32) / np.float32(IMAGE_SIDE - 1)
_PIXEL_INDEX = np.arange(IMAGE_SIDE * IMAGE_SIDE, dtype=np.int16)


def _points_of_pixels(in_set: np.ndarray) -> np.ndarray:
    """[sum of in_set, 2] float32: the points of the True pixels of `in_set` [..., 784] bool, image by image,
    each in raster order."""
    # Masking a broadcast int16 pixel index is several times faster than np.flatnonzero's int64 indices.
    return _PIXEL_POINTS.take(np.broadcast_to(_PIXEL_INDEX, in_set.shape)[in_set], axis=0)


def image_to_points(image: np.ndarray) -> np.ndarray:
    """The point set [n, 2] float32 of one [28, 28] uint8 image under the protocol in the module docstring."""
    image = np.asarray(image)
    if image.shape != (IMAGE_SIDE, IMAGE_SIDE) or image.dtype != np.uint8:
        raise SetaeError(
            f"image has shape {list(image.shape)} and type {image.dtype}; expected [28, 28] uint8"
        )
    return _points_of_pixels(image.reshape(-1) >= PIXEL_THRESHOLD)


def mnist_cache_dir() -> Path:
    """$XDG_CACHE_HOME/setae/mnist, or ~/.cache/setae/mnist when XDG_CACHE_HOME is unset."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "setae" / "mnist"


def find_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding the four MNIST files (see MNIST_FILES; each may also be stored without `.gz`).

    Looks in `root` if given, else in $SETAE_DATA if set (either must then hold the files), else in
    `mnist_cache_dir()`, downloading missing files there when `download` is true. Raises SetaeError saying
    where to put the files when none of this works.
    """
    if root is not None:
        return _check_folder(Path(root).expanduser(), str(root))
    env_folder = os.environ.get("SETAE_DATA")
    if env_folder:
        return _check_folder(Path(env_folder).expanduser(), f"SETAE_DATA={env_folder}")

    cache = mnist_cache_dir()
    missing = _missing_files(cache)
    if not missing:
        return cache
    if not download:
        reason = "downloading is turned off"
    else:
        try:
            _download(cache, missing)
            return cache
        except SetaeError as e:
            reason = f"download failed: {e}"
    raise SetaeError(
        f"MNIST not found: put {', '.join(_ALL_FILES)} in a folder and pass it as root or set "
        f"SETAE_DATA=<folder>, or place them in {cache} ({' '.join(reason.split())})"
    )


def _find_file(folder: Path, name: str) -> Path | None:
    """`folder/name`, else `folder/name` without `.gz`, whichever is a file."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(folder: Path) -> list[str]:
    return [name for name in _ALL_FILES if _find_file(folder, name) is None]


def _check_folder(folder: Path, label: str) -> Path:
    if not folder.is_dir():
        raise SetaeError(f"{label}: no such folder; it should hold the MNIST files {', '.join(_ALL_FILES)}")
    missing = _missing_files(folder)
    if missing:
        raise SetaeError(
            f"{label}: missing MNIST file(s) {', '.join(missing)} (each may also be stored without .gz)"
        )
    return folder


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return response.read()


def _content_sha256(data: bytes) -> str | None:
    """SHA-256 of the IDX content of `data`, decompressed first if gzipped; None for a corrupt gzip stream."""
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    return hashlib.sha256(data).hexdigest()


def _download(folder: Path, names: list[str]) -> None:
    """Save each of `names` into `folder` from the first mirror that serves it with the right checksum.

    Stops at the first file that no mirror serves correctly and raises SetaeError listing what each mirror
    did wrong; files that fail the checksum are never written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetaeError(f"cannot create {folder}: {e.strerror or e}") from None
    for name in names:
        failures = []
        for mirror in MNIST_MIRRORS:
            url = mirror + name
            try:
                data = _fetch(url)
            except (OSError, http.client.HTTPException, ValueError) as e:
                failures.append(f"{url}: {e}")
                continue
            digest = _content_sha256(data)
            if digest != MNIST_SHA256[name]:
                found = "a corrupt gzip stream" if digest is None else f"content SHA-256 {digest}"
                failures.append(f"{url}: checksum mismatch: got {found}, expected {MNIST_SHA256[name]}")
                continue
            write_bytes(folder / name, data)
            break
        else:
            raise SetaeError("; ".join(failures))


class MNISTSets(PackedSets):
    """MNIST as point sets: item i is (points float32 [n_i, 2] in [0, 1]^2, label int in 0..9).

    All images are converted once at construction and stored as one [sum n_i, 2] array with offsets [N + 1],
    so getting an item is a slice. `root` and `download` are passed to `find_mnist`.
    """

    num_classes = NUM_CLASSES

    def __init__(
        self, root: str | os.PathLike | None = None, split: str = "train", download: bool = True
    ) -> None:
        if split not in MNIST_FILES:
            raise SetaeError(f"unknown MNIST split {split!r}; expected one of {', '.join(MNIST_FILES)}")
        self.split = split
        self.folder = find_mnist(root, download)
        images_path, labels_path = (_find_file(self.folder, name) for name in MNIST_FILES[split])
        images, labels = read_idx(images_path, expected_ndim=3), read_idx(labels_path, expected_ndim=1)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or images.dtype != np.uint8:
            raise SetaeError(
                f"{images_path}: expected MNIST images of shape [N, 28, 28] and type ubyte, "
                f"found shape {list(images.shape)} and type {images.dtype}"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise SetaeError(
                f"{labels_path}: expected MNIST labels of shape [N] and type ubyte, "
                f"found shape {list(labels.shape)} and type {labels.dtype}"
            )
        if len(labels) != len(images):
            raise SetaeError(
                f"{labels_path}: {len(labels)} labels for the {len(images)} images in {images_path}"
            )
        bad = np.flatnonzero(labels >= NUM_CLASSES)
        if len(bad):
            raise SetaeError(f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is not in 0..9")

        in_set = images.reshape(len(images), -1) >= PIXEL_THRESHOLD  # [N, 784]
        offsets = np.concatenate([[0], np.cumsum(np.count_nonzero(in_set, axis=1))])
        super().__init__(_points_of_pixels(in_set), offsets, labels, f"MNIST {split}")

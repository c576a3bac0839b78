"""MNIST digits as pen strokes: stroke-3 drawings (setae.datasets.strokes) in pixel units.

Method, for each 28x28 image:
1. binarise with the MNIST set protocol: pixel (row r, column c) is ink when its intensity is >= 34;
2. thin the ink to a one-pixel-wide skeleton (Zhang-Suen thinning, `skimage.morphology.skeletonize`);
3. trace the skeleton, a graph joining 8-neighbouring pixels, into strokes by a deterministic walk. A stroke
   starts at the unvisited pixel of smallest raster index 28 r + c among those with at most one unvisited
   neighbour (an end of what is left of the skeleton, or a lone pixel), else, when what is left is closed
   loops, at the unvisited pixel of smallest index. It moves to the first unvisited neighbour in the order
   E, S, W, N, SE, SW, NW, NE (edge neighbours before corner ones, so a staircase is followed pixel by pixel
   rather than cut short) until none is left; then the pen lifts. Strokes are drawn until every skeleton
   pixel is visited, each exactly once, so parts that do not touch are always separated by a pen lift;
4. write the visited points p = (x, y) = (c, r) as stroke-3 int16 steps. The first step is p_0 - (0, 0), the
   offset of the first point from the image origin, pixel (column 0, row 0) at the top left; each further
   step is p_t - p_{t-1}; pen_lifted = 1 on the last point of each stroke, so on the last step. y points
   down as in the image, and `strokes_to_points` gives back exactly the skeleton pixels.

A blank image gives an empty drawing [0, 3]. `MNISTStrokes` converts a split once and caches the result.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from skimage.morphology import skeletonize

from setae.datasets.mnist import IMAGE_SIDE, NUM_CLASSES, PIXEL_THRESHOLD, MNISTSets, mnist_cache_dir
from setae.datasets.packed import PackedSets
from setae.datasets.strokes import StrokeSequences, StrokeSplit, read_strokes, write_strokes
from setae.errors import SetaeError

# The longest drawing (number of steps = skeleton pixels) over MNIST train + test.
MNIST_STROKES_MAX_LEN = 77
# Part of the cache file name: change it whenever the method above changes, so older caches are not read.
MNIST_STROKES_VERSION = "1"

_SIDE = IMAGE_SIDE + 2  # images are traced inside a border of blank pixels, so every pixel has 8 neighbours
# Flat-index steps to the neighbours of a pixel of a bordered image, in the walk's order of preference.
_NEIGHBOURS = (1, _SIDE, -1, -_SIDE, _SIDE + 1, _SIDE - 1, -_SIDE - 1, -_SIDE + 1)
_CHUNK = 8192  # images per tracing chunk, bounding the memory of the bordered copies


def mnist_strokes_cache_dir() -> Path:
    """Where MNISTStrokes caches its conversions: beside the MNIST download folder, `mnist_cache_dir()`."""
    return mnist_cache_dir().parent / "mnist-strokes"


class MNISTStrokes(StrokeSequences):
    """MNIST digits as drawings: item i is (float32 tensor [T_i, 3] of stroke-3 steps in pixel units, label
    in 0..9), traced as in the module docstring. `root` and `download` are passed to `find_mnist`.

    A split is converted once and cached in `mnist_strokes_cache_dir()`, in a file named after the split,
    MNIST_STROKES_VERSION and a digest of the binarised images and labels, so that neither another method
    nor other data is ever read from a cache; a cache file that cannot be read is rebuilt, and one that
    cannot be written is skipped with a warning.
    """

    num_classes = NUM_CLASSES

    def __init__(
        self, root: str | os.PathLike | None = None, split: str = "train", download: bool = True
    ) -> None:
        pixel_sets = MNISTSets(root, split, download)  # reads and checks the files; the ink is its points
        self.split, self.folder = split, pixel_sets.folder
        labels = pixel_sets.labels
        xy = np.rint(pixel_sets.points_array * (IMAGE_SIDE - 1)).astype(np.intp)
        ink = np.zeros((len(pixel_sets), IMAGE_SIDE, IMAGE_SIDE), bool)
        ink[np.repeat(np.arange(len(pixel_sets)), pixel_sets.sizes), xy[:, 1], xy[:, 0]] = True
        digest = hashlib.sha256(np.packbits(ink).tobytes() + labels.tobytes()).hexdigest()[:16]
        path = mnist_strokes_cache_dir() / f"{split}-v{MNIST_STROKES_VERSION}-{digest}.npz"
        strokes = _read_cache(path, split, labels)
        if strokes is None:
            strokes = StrokeSplit(*_trace_images(ink), labels)
            try:
                write_strokes(path, {split: strokes}, {split: labels})
            except SetaeError as e:
                warnings.warn(f"MNIST strokes not cached: {e}", stacklevel=2)
        super().__init__(strokes, f"MNIST strokes {split}")


def _read_cache(path: Path, split: str, labels: np.ndarray) -> StrokeSplit | None:
    """The cached drawings of `split` at `path`, or None when the file is absent, unreadable or another's."""
    if not path.is_file():
        return None
    try:
        strokes = read_strokes(path, [split])[split]
    except SetaeError:
        return None
    return strokes if strokes.labels is not None and np.array_equal(strokes.labels, labels) else None


def mnist_to_strokes(images: np.ndarray) -> list[np.ndarray]:
    """The stroke-3 int16 drawings [T_i, 3] of images [N, 28, 28]: uint8 intensities binarised at >= 34,
    or bool ink masks used as they are (method in the module docstring)."""
    return list(StrokeSplit(*_trace_images(images)))


def skeletons(images: np.ndarray) -> np.ndarray:
    """[N, 28, 28] bool: the one-pixel-wide skeletons of images as taken by `mnist_to_strokes`."""
    images = np.asarray(images)
    if (
        images.ndim != 3
        or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE)
        or images.dtype not in (np.uint8, bool)
    ):
        raise SetaeError(
            f"images have shape {list(images.shape)} and type {images.dtype}; "
            "expected [N, 28, 28] uint8 or bool"
        )
    ink = images if images.dtype == bool else images >= PIXEL_THRESHOLD
    out = np.zeros(ink.shape, bool)
    for i, image in enumerate(ink):
        if image.any():
            out[i] = skeletonize(image)
    return out


def _trace_images(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """steps [sum T_i, 3] int16 and offsets [N + 1] of the drawings of `images`."""
    skeleton = skeletons(images)
    chunks = [_trace(skeleton[start : start + _CHUNK]) for start in range(0, len(skeleton), _CHUNK)]
    steps = np.concatenate([np.zeros((0, 3), np.int16), *chunks])
    offsets = np.zeros(len(skeleton) + 1, np.int64)
    np.cumsum(np.count_nonzero(skeleton.reshape(len(skeleton), -1), axis=1), out=offsets[1:])
    return steps, offsets


def _trace(skeleton: np.ndarray) -> np.ndarray:
    """steps [sum T_i, 3] int16 of skeletons [n, 28, 28], drawing after drawing (T_i = skeleton pixels)."""
    count = len(skeleton)
    bordered = np.zeros((count, _SIDE, _SIDE), np.uint8)
    bordered[:, 1:-1, 1:-1] = skeleton
    degree = np.zeros_like(bordered)  # number of skeleton neighbours
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                degree[:, 1:-1, 1:-1] += bordered[:, 1 + dr : _SIDE - 1 + dr, 1 + dc : _SIDE - 1 + dc]
    pixels = np.flatnonzero(bordered).tolist()  # image after image, each in raster order
    sizes = np.count_nonzero(bordered.reshape(count, -1), axis=1)
    # Plain Python structures: the walk below touches a few bytes at a time, where numpy indexing is slow.
    unvisited, neighbours = bytearray(bordered.tobytes()), bytearray(degree.tobytes())
    order, lifts, start = [], [], 0
    for size in sizes.tolist():
        image_pixels = pixels[start : start + size]
        start += size
        left = size
        while left:
            pixel = next((p for p in image_pixels if unvisited[p] and neighbours[p] <= 1), -1)
            if pixel < 0:
                pixel = next(p for p in image_pixels if unvisited[p])
            while pixel >= 0:
                unvisited[pixel] = 0
                order.append(pixel)
                left -= 1
                following = -1
                for step in _NEIGHBOURS:
                    q = pixel + step
                    if unvisited[q]:
                        neighbours[q] -= 1  # `neighbours` counts unvisited neighbours of unvisited pixels
                        if following < 0:
                            following = q
                pixel = following
            lifts.append(len(order) - 1)

    order = np.asarray(order, np.int64)
    within = order % (_SIDE * _SIDE)
    points = np.stack([within % _SIDE - 1, within // _SIDE - 1], axis=1)  # (column, row)
    steps = np.zeros((len(order), 3), np.int16)
    steps[:, :2] = np.diff(points, axis=0, prepend=0)
    firsts = (np.cumsum(sizes) - sizes)[sizes > 0]
    steps[firsts, :2] = points[firsts]  # each drawing starts from the image origin
    steps[lifts, 2] = 1
    return steps


class MNISTSkeletonSets(PackedSets):
    """The points of the MNIST strokes as sets, in the MNIST set protocol's units: item i is (float32 [T_i, 2]
    of skeleton pixels (column, row) / 27, label): the same drawings as `MNISTStrokes`, with the order gone,
    for comparing set models with sequence models."""

    num_classes = NUM_CLASSES

    def __init__(
        self, root: str | os.PathLike | None = None, split: str = "train", download: bool = True
    ) -> None:
        strokes = MNISTStrokes(root, split, download)
        offsets = strokes.offsets
        absolute = np.cumsum(strokes.points_array[:, :2].astype(np.float64), axis=0)
        # cumsum over the whole array, minus the running total where each drawing starts
        starts = np.concatenate([np.zeros((1, 2)), absolute])[offsets[:-1]]
        absolute -= np.repeat(starts, strokes.sizes, axis=0)
        points = (absolute / (IMAGE_SIDE - 1)).astype(np.float32)
        super().__init__(points, offsets, strokes.labels, f"MNIST skeleton points {split}")

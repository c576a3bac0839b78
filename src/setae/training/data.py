"""Which sets a run trains, validates and tests on, and the settings derived from them.

Splits:
- MNIST (pixel sets, strokes, skeletons): training digits minus the last `val_size` for validation; the
  10,000 test digits for test. Synthetic sets: likewise, with fresh sets (another seed) for test.
- MNIST completion (`mnist-completion`, setae.datasets.pairs): the same digits, as pairs (part of the
  digit, the digit) under `completion`.
- Your own file (of sets, or of input/target pairs) without `test_data`: a random permutation under
  `split_seed` holds out a tenth of the sets for test and `val_size` for validation; with `test_data`, only
  validation is taken from the file.

Derived settings (`resolve_from_data`, for the fields left None; recorded in the run's config):
- `val_size`: a tenth of the sets, at most 5,000;
- `max_size`: the largest set in the data file(s); MNIST's 342, synthetic sets' 32;
- `normalize`: on for your own data (per-dimension standardisation), off for MNIST and synthetic sets;
- `point_sigma` σ: the median distance from a point to its nearest neighbour in its set, in the model's
  units (standardised when `normalize`): the spacing of points, as one pixel (1/27) is MNIST's;
- `ospa_cutoff` c: a tenth of the data's extent (the largest range of a coordinate), as 0.1 is MNIST's;
- `dequantize` h (the point-process decoder and the GAN only): the grid spacing of discrete coordinates, one
  pixel (1/27) for MNIST's pixel sets and skeletons, 1 for the strokes' integer offsets and pen bits, and 0
  (continuous) for synthetic sets and your own files (give --dequantize for integer data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from torch.utils.data import Dataset

from setae.datasets import MNIST_MAX_SET_SIZE, MNISTSets, SyntheticSets
from setae.datasets.mnist_strokes import MNISTSkeletonSets, MNISTStrokes
from setae.datasets.packed import PackedSets
from setae.datasets.pairs import PairedSets, load_data, mnist_completion
from setae.errors import SetaeError
from setae.training.config import DATASETS, Config

MNIST_PIXEL = 1 / 27  # σ of MNIST's pixel sets: one pixel of the 28 × 28 grid mapped to [0, 1]
MNIST_OSPA_CUTOFF = 0.1
GRID_SPACING = {  # `dequantize`
    "mnist": MNIST_PIXEL,
    "mnist-completion": MNIST_PIXEL,
    "mnist-skeleton": MNIST_PIXEL,
    "mnist-strokes": 1.0,
}
MNIST_DATA = ("mnist", "mnist-skeleton", "mnist-strokes", "mnist-completion")
SYNTHETIC_MAX_SIZE = 32
STATISTICS_SETS = 1000  # sets whose points the derived σ and extent are measured on


def is_user_data(config: Config) -> bool:
    return config.train.data not in DATASETS


def _builtin(config: Config, split: str) -> PackedSets | PairedSets:
    """The "train" or "test" split of a built-in source (MNIST pixel sets, strokes, skeletons, completion
    pairs, synthetic)."""
    t = config.train
    if t.data == "mnist-completion":
        return mnist_completion(t.data_root or None, split, t.completion)
    if t.data == "synthetic":
        count, seed = (4096, t.seed) if split == "train" else (1024, t.seed + 1)
        max_size = config.model.max_size or SYNTHETIC_MAX_SIZE
        return SyntheticSets(num_sets=count, dim=config.model.point_dim, max_size=max_size, seed=seed)
    kind = {"mnist": MNISTSets, "mnist-strokes": MNISTStrokes, "mnist-skeleton": MNISTSkeletonSets}[t.data]
    return kind(root=t.data_root or None, split=split)


def training_split(config: Config) -> PackedSets | PairedSets:
    """All sets (or pairs) of the training source: MNIST's training digits, synthetic sets, or the file
    `train.data`."""
    return load_data(config.train.data) if is_user_data(config) else _builtin(config, "train")


def default_val_size(num_sets: int) -> int:
    return min(5000, max(1, num_sets // 10))


def held_out_test_size(num_sets: int) -> int:
    """Sets a user's file without a test file holds out for test: a tenth, at least one."""
    return max(1, num_sets // 10)


def _user_split(config: Config, num_sets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices of a user's file: a permutation under `split_seed`; the test part
    (a tenth) is empty when the run has a test file."""
    t = config.train
    num_test = 0 if t.test_data else held_out_test_size(num_sets)
    num_val = t.val_size or default_val_size(num_sets)
    if num_sets - num_test - num_val < 1:
        raise SetaeError(
            f"{t.data}: {num_sets} sets are too few for {num_val} validation"
            + (f" and {num_test} test sets" if num_test else " sets")
            + " and at least one training set"
            + (" (lower --val-size)" if t.val_size else "")
        )
    order = np.random.default_rng(t.split_seed).permutation(num_sets)
    test, val, train = np.split(order, [num_test, num_test + num_val])
    return np.sort(train), np.sort(val), np.sort(test)


def make_datasets(config: Config, full: PackedSets | PairedSets | None = None) -> tuple:
    """(train, validation) sets (module docstring)."""
    t = config.train
    full = training_split(config) if full is None else full
    if full.dim != config.model.point_dim:
        raise SetaeError(
            f"{t.data}: sets have dimension {full.dim} but model.point_dim={config.model.point_dim}"
        )
    largest = int(full.sizes.argmax())
    if config.model.max_size is not None and full.sizes[largest] > config.model.max_size:
        raise SetaeError(
            f"{t.data}: set {largest} has {full.sizes[largest]} points; "
            f"model.max_size={config.model.max_size} (raise it with --max-size)"
        )
    if is_user_data(config):
        train, val, _ = _user_split(config, len(full))
        return full.take(train), full.take(val)
    val_size = t.val_size or default_val_size(len(full))
    if not 0 < val_size < len(full):
        raise SetaeError(f"config: train.val_size={val_size} must be between 1 and {len(full) - 1}")
    split = len(full) - val_size
    return full.subset(0, split), full.subset(split, len(full))


def make_test_set(config: Config, data: str | None = None, completion: str | None = None) -> Dataset:
    """The held-out test sets (or pairs): the file `data` when given (or `mnist-completion`: MNIST's test
    completion pairs under `completion`, default train.completion), else `train.test_data`, else the run's
    own (module docstring)."""
    t = config.train
    if data == "mnist-completion":
        return mnist_completion(t.data_root or None, "test", completion or t.completion)
    if data or t.test_data:
        return load_data(data or t.test_data)
    if not is_user_data(config):
        return _builtin(config, "test")
    full = load_data(t.data)
    return full.take(_user_split(config, len(full))[2])


def test_split_name(config: Config, data: str | None = None) -> str:
    """What `make_test_set` returns, in words (stored as metrics.json's `split`)."""
    t = config.train
    if data == "mnist-completion":
        return "test: MNIST completion pairs"
    if data or t.test_data:
        return f"test: {Path(data or t.test_data).name}"
    if t.data == "synthetic":
        return "test: fresh synthetic sets (seed + 1)"
    if not is_user_data(config):
        return "test"
    return f"test: a tenth of {Path(t.data).name} held out (split_seed {t.split_seed})"


def ospa_cutoff_of(config: Config) -> float:
    """The run's OSPA cut-off (runs from before it was recorded were MNIST's 0.1)."""
    return config.train.ospa_cutoff if config.train.ospa_cutoff is not None else MNIST_OSPA_CUTOFF


def _sample_sets(sets: PackedSets, count: int, seed: int = 0) -> list[np.ndarray]:
    chosen = np.random.default_rng(seed).permutation(len(sets))[:count]
    return [sets[int(i)][0].numpy().astype(np.float64) for i in chosen]


def nearest_neighbour_spacing(sets: list[np.ndarray]) -> float:
    """Median over all points (of sets with ≥ 2 points) of the distance to the nearest other point of the
    same set; 0 when no set has two points."""
    distances = [cKDTree(s).query(s, k=2)[0][:, 1] for s in sets if len(s) >= 2]
    return float(np.median(np.concatenate(distances))) if distances else 0.0


def resolve_from_data(config: Config, full: PackedSets) -> list[str]:
    """Fill the fields of `config` left None from the training source `full` (module docstring; statistics
    from the training split only); make file paths absolute. Returns one phrase per derived setting, for
    the one line a run prints."""
    t, m = config.train, config.model
    mnist = t.data in MNIST_DATA
    chosen = []
    for name in ("data", "test_data", "data_root"):
        value = getattr(t, name)
        if value and value not in DATASETS:
            setattr(t, name, str(Path(value).expanduser().resolve()))
    if t.val_size is None:
        t.val_size = default_val_size(len(full))
        chosen.append(f"validation {t.val_size} sets")
    if is_user_data(config) and not t.test_data:
        chosen.append(f"test {held_out_test_size(len(full))} sets held out (split seed {t.split_seed})")
    if m.max_size is None:
        largest = full.max_size
        if t.test_data:
            largest = max(largest, load_data(t.test_data).max_size)
        builtin = {
            "mnist": MNIST_MAX_SET_SIZE,
            "mnist-completion": MNIST_MAX_SET_SIZE,
            "synthetic": SYNTHETIC_MAX_SIZE,
        }
        m.max_size = builtin.get(t.data, largest)
        chosen.append(f"max_size {m.max_size}")
    train = make_datasets(config, full)[0]  # statistics of the training sets only
    if m.normalize is None:
        m.normalize = is_user_data(config)
        chosen.append("points standardised per dimension" if m.normalize else "points in their own units")
    sample = None
    if m.point_sigma is None or t.ospa_cutoff is None:
        sample = _sample_sets(train, STATISTICS_SETS)
    if m.point_sigma is None:
        if mnist:
            m.point_sigma = GRID_SPACING[t.data]  # a pixel, in the data's units
        else:
            scale = 1.0
            if m.normalize:
                scale = train.point_moments(len(train))[1]
                scale = np.where(scale > 0, scale, 1.0)
            spacing = nearest_neighbour_spacing([s / scale for s in sample])
            m.point_sigma = spacing if spacing > 0 else 0.1
        chosen.append(f"point_sigma {m.point_sigma:.3g}" + (" (standardised units)" if m.normalize else ""))
    if t.ospa_cutoff is None:
        if mnist:
            t.ospa_cutoff = MNIST_OSPA_CUTOFF * GRID_SPACING[t.data] / MNIST_PIXEL  # 2.7 pixels
        else:
            points = np.concatenate(sample)
            extent = float((points.max(0) - points.min(0)).max())
            t.ospa_cutoff = 0.1 * extent if extent > 0 else 1.0
        chosen.append(f"OSPA cut-off {t.ospa_cutoff:.3g}")
    if m.stroke_position is None and m.decoder == "strokes":
        sample = sample if sample is not None else _sample_sets(train, STATISTICS_SETS)
        positions = [np.cumsum(s[:, :2], axis=0) for s in sample if len(s)]
        spread = float(np.sqrt(np.concatenate(positions).var(0).mean())) if positions else 0.0
        m.stroke_position = spread if spread > 0 else 1.0
        chosen.append(f"stroke_position {m.stroke_position:.3g}")
    if m.dequantize is None and (m.decoder == "pointprocess" or m.objective == "gan"):
        m.dequantize = GRID_SPACING.get(t.data, 0.0)
        chosen.append(f"dequantize {m.dequantize:.3g}" if m.dequantize else "continuous points")
    return chosen

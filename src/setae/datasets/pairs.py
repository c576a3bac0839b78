"""Set-to-set data: pairs (input set X_i, target set Y_i); a model trained on them encodes X and is scored
against Y, so `reconstruct(inputs)` predicts the targets.

A pair file is an `.npz` (numpy's `np.savez`) with the single-set files' packed layout twice
(setae.datasets.pointfile):

    input_points    [total_in, D] float   the input sets' points, set after set
    input_offsets   [B + 1] int           input i is input_points[input_offsets[i]:input_offsets[i+1]]
    target_points   [total_out, D] float  the target sets' points, in the same dimension D
    target_offsets  [B + 1] int           target i likewise; inputs and targets are B each
    labels          [B] int, optional     non-negative class labels (of the pair)

Either set of a pair may be empty. Every problem is reported as one line naming the file, the array or the
item and what is wrong; `setae train --data pairs.npz` reads such a file (`load_data` tells the two kinds
apart by their arrays).

MNIST completion (`mnist_completion`, the built-in data `mnist-completion`): the target is the whole digit
(setae.datasets.mnist), the input part of it: `top-half`, its points with y < 1/2 (image rows 0..13, y
pointing down), or `random-30`, round(0.3·n) of its n points drawn without replacement, the same draw every
time (a fixed seed per split).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from setae.datasets.batch import SetBatch
from setae.datasets.mnist import MNISTSets
from setae.datasets.packed import PackedSets
from setae.datasets.pointfile import load_point_sets, npz_bytes, validate_packed
from setae.errors import SetaeError
from setae.fileio import atomic_write

PAIR_ARRAYS = ("input_points", "input_offsets", "target_points", "target_offsets")
COMPLETIONS = ("top-half", "random-30")
_COMPLETION_SEED = {"train": 0, "test": 1}


class PairedSets(Dataset):
    """B pairs. As a dataset of sets it is the targets: item i is (target [m_i, D], label), `sizes` theirs;
    `inputs` holds the input sets (a PackedSets, same labels), and `batch` gives the targets' SetBatch with
    the inputs as its `source`."""

    def __init__(self, inputs: PackedSets, targets: PackedSets):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs for {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.name, self.dim = targets.name, targets.dim
        self.max_size = max(inputs.max_size, targets.max_size)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.targets[index]

    def batch(self, indices) -> SetBatch:
        """The targets at `indices` as a SetBatch whose `source` is their inputs' SetBatch."""
        out = self.targets.batch(indices)
        out.source = self.inputs.batch(indices)
        return out

    def take(self, indices) -> PairedSets:
        return PairedSets(self.inputs.take(indices), self.targets.take(indices))

    def subset(self, start: int, stop: int) -> PairedSets:
        return self.take(np.arange(start, stop))

    def point_moments(self, num_sets: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """The targets' per-dimension mean and std [D] (the units the model's outputs are in)."""
        return self.targets.point_moments(num_sets, chunk)

    @property
    def sizes(self) -> np.ndarray:
        return self.targets.sizes

    @property
    def labels(self) -> np.ndarray:
        return self.targets.labels


def encoder_view(dataset):
    """The sets an encoder reads from `dataset`: a PairedSets' inputs, any other dataset itself."""
    return dataset.inputs if isinstance(dataset, PairedSets) else dataset


def is_pair_file(path: str | Path) -> bool:
    """Whether `path` is an `.npz` holding `input_points` (a pair file), not a file of sets."""
    path = Path(path)
    if path.suffix != ".npz" or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "input_points.npy" in archive.namelist()


def load_pairs(path: str | Path) -> PairedSets:
    """Read and validate a pair file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SetaeError(f"{path}: no such file")
    if path.suffix != ".npz" or not zipfile.is_zipfile(path):
        raise SetaeError(f"{path}: a pair file is an .npz file (numpy.savez), see `setae train --help`")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in PAIR_ARRAYS if name not in data.files]
            if missing:
                raise SetaeError(
                    f"{path}: missing array(s) {', '.join(missing)}; a pair file holds "
                    f"{', '.join(PAIR_ARRAYS)} (and labels)"
                )
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SetaeError(f"{path}: not a readable .npz file ({e})") from None
    labels = arrays.get("labels")
    for side in ("input_", "target_"):
        validate_packed(path, arrays[f"{side}points"], arrays[f"{side}offsets"], labels, prefix=side)
    count_in, count_out = len(arrays["input_offsets"]) - 1, len(arrays["target_offsets"]) - 1
    if count_in != count_out:
        raise SetaeError(f"{path}: {count_in} input sets but {count_out} target sets; they come in pairs")
    dim_in, dim_out = arrays["input_points"].shape[1], arrays["target_points"].shape[1]
    if dim_in != dim_out:
        raise SetaeError(f"{path}: input points have dimension {dim_in} but target points {dim_out}")
    inputs = PackedSets(arrays["input_points"], arrays["input_offsets"], labels, path.name)
    return PairedSets(
        inputs, PackedSets(arrays["target_points"], arrays["target_offsets"], labels, path.name)
    )


def save_pairs(
    path: str | Path,
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    labels: Sequence[int] | None = None,
) -> None:
    """Write pairs (inputs[i] [n_i, D], targets[i] [m_i, D]) and optional labels as a pair file (atomic)."""
    if len(inputs) != len(targets):
        raise SetaeError(f"save_pairs: {len(inputs)} inputs for {len(targets)} targets")
    arrays = {}
    for side, sets in (("input_", inputs), ("target_", targets)):
        sets = [np.asarray(s, dtype=np.float32) for s in sets]
        dim = sets[0].shape[1] if sets else 0
        arrays[f"{side}points"] = np.concatenate(sets) if sets else np.zeros((0, dim), np.float32)
        arrays[f"{side}offsets"] = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(npz_bytes(arrays)))


def load_data(path: str | Path) -> PackedSets | PairedSets:
    """A file of sets (setae.datasets.pointfile) or of pairs (`load_pairs`), told apart by its arrays."""
    return load_pairs(path) if is_pair_file(path) else load_point_sets(path)


def completion_inputs(targets: PackedSets, task: str, seed: int = 0) -> PackedSets:
    """The inputs of a completion task (module docstring) for the whole sets `targets` (stored one after
    the other), in the same order and with the same labels."""
    if task not in COMPLETIONS:
        raise SetaeError(f"completion task {task!r} is not one of {', '.join(COMPLETIONS)}")
    points, offsets = targets.points_array, targets.offsets
    owner = np.repeat(np.arange(len(targets)), targets.sizes)
    if task == "top-half":
        keep = points[offsets[0] : offsets[-1], 1] < 0.5
    else:  # each set's points ranked by a random key; the first round(0.3 n) are kept
        keys = np.random.default_rng(seed).random(len(owner))
        order = np.lexsort((keys, owner))
        rank = np.empty(len(owner), np.int64)
        rank[order] = np.arange(len(owner)) - np.repeat(offsets[:-1] - offsets[0], targets.sizes)
        keep = rank < np.round(0.3 * targets.sizes)[owner]
    kept = points[offsets[0] : offsets[-1]][keep]
    new_offsets = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=len(targets)))])
    return PackedSets(kept, new_offsets, targets.labels, f"{targets.name} ({task})")


def mnist_completion(root: str | None = None, split: str = "train", task: str = "top-half") -> PairedSets:
    """MNIST completion pairs of a split: part of each digit (`task`, module docstring) -> the digit."""
    targets = MNISTSets(root=root, split=split)
    return PairedSets(completion_inputs(targets, task, _COMPLETION_SEED[split]), targets)

"""Many sets stored as one contiguous array: `points [sum n_i, D]` with `offsets [B + 1]`, so that set i is
the slice points[offsets[i]:offsets[i+1]] and getting an item costs a slice. Subsets (`subset`, `take`) are
views: each set keeps its start and size in the shared points array, nothing is copied."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from setae.datasets.batch import SetBatch


class PackedSets(Dataset):
    """Item i is (points float32 tensor [n_i, D], label int; -1 when unlabelled). Arrays are read-only."""

    def __init__(self, points: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None, name: str):
        self._points = points if points.dtype == np.float32 else points.astype(np.float32)
        offsets = np.asarray(offsets, dtype=np.int64)
        self._starts, self._sizes = offsets[:-1], np.diff(offsets)
        count = len(self._sizes)
        self._labels = np.full(count, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.name = name
        self.dim = self._points.shape[1]
        self.max_size = int(self._sizes.max(initial=0))
        for array in (self._sizes, self._starts, self._labels):
            array.flags.writeable = False
        if self._points.flags.writeable:  # a read-only memory map already is
            self._points.flags.writeable = False

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} {self.name} sets")
        index %= len(self)
        start = self._starts[index]
        return torch.from_numpy(self._points[start : start + self._sizes[index]].copy()), int(
            self._labels[index]
        )

    def batch(self, indices) -> SetBatch:
        """The sets at `indices` [B] as one padded SetBatch, gathered by a single fancy index (no per-set
        copies); equal to `collate_sets([self[i] for i in indices])`."""
        indices = np.asarray(indices, dtype=np.int64)
        sizes = self._sizes[indices]
        width = int(sizes.max(initial=0))
        position = np.arange(width)
        padding = position[None, :] >= sizes[:, None]
        rows = np.where(padding, 0, self._starts[indices][:, None] + position[None, :])
        if len(self._points):
            points = self._points[rows]
            points[padding] = 0.0
        else:
            points = np.zeros((*rows.shape, self.dim), np.float32)
        return SetBatch(
            torch.from_numpy(points),
            torch.from_numpy(padding),
            torch.from_numpy(sizes),
            torch.from_numpy(self._labels[indices]),
        )

    def subset(self, start: int, stop: int) -> PackedSets:
        """Sets start..stop-1 as a PackedSets sharing this one's arrays (no copy)."""
        return self.take(np.arange(start, stop))

    def take(self, indices) -> PackedSets:
        """The sets at `indices` [K], in that order, as a PackedSets sharing this one's points (no copy)."""
        indices = np.asarray(indices, dtype=np.int64)
        view = PackedSets.__new__(PackedSets)
        view._points, view.name, view.dim = self._points, self.name, self.dim
        view._starts, view._sizes = self._starts[indices], self._sizes[indices]
        view._labels = self._labels[indices]
        view.max_size = int(view._sizes.max(initial=0))
        for array in (view._sizes, view._starts, view._labels):
            array.flags.writeable = False
        return view

    @property
    def points_array(self) -> np.ndarray:
        """[sum n_i, D] float32: every set's points, set after set (for a contiguous PackedSets: see
        `offsets`)."""
        return self._points

    @property
    def offsets(self) -> np.ndarray:
        """[B + 1] int64: set i is points_array[offsets[i]:offsets[i + 1]]; only for sets stored one after the
        other (a file, or a `subset` of one), not for the shuffled selection of `take`."""
        offsets = np.concatenate([self._starts[:1], self._starts[:1] + np.cumsum(self._sizes)])
        if len(self) and not np.array_equal(offsets[:-1], self._starts):
            raise ValueError(f"{self.name}: these sets are not stored one after the other")
        return offsets

    def point_moments(self, num_sets: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation [D] of the points of the first `num_sets` sets, about
        `chunk` points at a time (float64 sums), so a memory-mapped dataset is never loaded whole."""
        total, total_sq, count = np.zeros(self.dim), np.zeros(self.dim), 0
        per_batch = max(1, chunk // max(1, int(self._sizes[:num_sets].max(initial=1))))
        for first in range(0, num_sets, per_batch):
            batch = self.batch(np.arange(first, min(num_sets, first + per_batch)))
            block = batch.points.double()[~batch.padding_mask].numpy()
            total += block.sum(0)
            total_sq += (block**2).sum(0)
            count += len(block)
        mean = total / max(count, 1)
        return mean, np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 0.0))

    @property
    def sizes(self) -> np.ndarray:
        """[B] int64: the number of points in each set."""
        return self._sizes

    @property
    def labels(self) -> np.ndarray:
        """[B] int64 labels (-1 for unlabelled sets)."""
        return self._labels

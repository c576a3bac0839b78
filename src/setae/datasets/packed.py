"""Many sets stored as one contiguous array: `points [sum n_i, D]` with `offsets [B + 1]`, so that set i is
the slice points[offsets[i]:offsets[i+1]] and getting an item costs a slice."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from setae.datasets.batch import SetBatch


class PackedSets(Dataset):
    """Item i is (points float32 tensor [n_i, D], label int; -1 when unlabelled). Arrays are read-only."""

    def __init__(self, points: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None, name: str):
        self._points = points if points.dtype == np.float32 else points.astype(np.float32)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._sizes = np.diff(self._offsets)
        count = len(self._sizes)
        self._labels = np.full(count, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.name = name
        self.dim = self._points.shape[1]
        self.max_size = int(self._sizes.max(initial=0))
        for array in (self._sizes, self._offsets, self._labels):
            array.flags.writeable = False
        if self._points.flags.writeable:  # a read-only memory map already is
            self._points.flags.writeable = False

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} {self.name} sets")
        index %= len(self)
        start, end = self._offsets[index], self._offsets[index + 1]
        return torch.from_numpy(self._points[start:end].copy()), int(self._labels[index])

    def batch(self, indices) -> SetBatch:
        """The sets at `indices` [B] as one padded SetBatch, gathered by a single fancy index (no per-set
        copies); equal to `collate_sets([self[i] for i in indices])`."""
        indices = np.asarray(indices, dtype=np.int64)
        sizes = self._sizes[indices]
        width = int(sizes.max(initial=0))
        position = np.arange(width)
        padding = position[None, :] >= sizes[:, None]
        rows = np.where(padding, 0, self._offsets[indices][:, None] + position[None, :])
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
        return PackedSets(self._points, self._offsets[start : stop + 1], self._labels[start:stop], self.name)

    @property
    def points_array(self) -> np.ndarray:
        """[sum n_i, D] float32: every set's points, set after set."""
        return self._points

    @property
    def offsets(self) -> np.ndarray:
        """[B + 1] int64: set i is points_array[offsets[i]:offsets[i + 1]] (offsets[0] is 0 unless this is a
        `subset`)."""
        return self._offsets

    def point_moments(self, num_sets: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation [D] of the points of the first `num_sets` sets, in
        chunks (float64 sums), so a memory-mapped dataset is never loaded whole."""
        first, end = int(self._offsets[0]), int(self._offsets[num_sets])
        total, total_sq = np.zeros(self.dim), np.zeros(self.dim)
        for start in range(first, end, chunk):
            block = self._points[start : min(end, start + chunk)].astype(np.float64)
            total += block.sum(0)
            total_sq += (block**2).sum(0)
        count = max(end - first, 1)
        mean = total / count
        return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))

    @property
    def sizes(self) -> np.ndarray:
        """[B] int64: the number of points in each set."""
        return self._sizes

    @property
    def labels(self) -> np.ndarray:
        """[B] int64 labels (-1 for unlabelled sets)."""
        return self._labels

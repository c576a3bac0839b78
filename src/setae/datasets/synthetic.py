"""Small labelled point sets drawn from simple shapes, for tests and quick runs."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from setae.errors import SetaeError

SHAPES = ("sphere shell", "segment", "gaussian blob", "cube surface")
NOISE_STD = 0.01


class SyntheticSets(Dataset):
    """`num_sets` point sets in R^dim; item i is (points float32 [n_i, dim], label int in 0..num_classes-1).

    Class c draws its points from shape c % 4 of SHAPES (in 2-D: circle, diagonal segment, gaussian blob,
    square outline) with half-width s_c = 0.3 / (1 + c // 4), centred at 0.5 + u with u ~ U[-0.1, 0.1]^dim
    per set, plus N(0, 0.01^2) noise per coordinate. Sizes n_i ~ U{min_size..max_size} and labels
    ~ U{0..num_classes-1}. Everything is drawn at construction from `seed`: equal arguments, equal datasets.
    """

    def __init__(
        self,
        num_sets: int,
        dim: int = 2,
        min_size: int = 1,
        max_size: int = 32,
        num_classes: int = 4,
        seed: int = 0,
    ) -> None:
        if num_sets < 0 or dim < 1 or num_classes < 1 or not 0 <= min_size <= max_size:
            raise SetaeError(
                "SyntheticSets needs num_sets >= 0, dim >= 1, num_classes >= 1 and "
                f"0 <= min_size <= max_size; got num_sets={num_sets}, dim={dim}, num_classes={num_classes}, "
                f"min_size={min_size}, max_size={max_size}"
            )
        self.dim = dim
        self.max_size = max_size
        self.num_classes = num_classes
        rng = np.random.default_rng(seed)
        self._sizes = rng.integers(min_size, max_size + 1, size=num_sets)
        self._labels = rng.integers(0, num_classes, size=num_sets)
        centres = 0.5 + rng.uniform(-0.1, 0.1, size=(num_sets, dim))

        owner = np.repeat(np.arange(num_sets), self._sizes)  # the set each point belongs to
        label = self._labels[owner]
        total = len(owner)
        gaussian = rng.standard_normal((total, dim))
        uniform = rng.uniform(-1.0, 1.0, size=(total, dim))
        # Shapes of half-width 1 at the origin; every point gets all four and keeps its class's.
        shell = gaussian / np.maximum(np.linalg.norm(gaussian, axis=1, keepdims=True), 1e-12)
        segment = uniform[:, :1] * np.full(dim, dim**-0.5)
        blob = 0.5 * gaussian
        cube = uniform.copy()
        face = rng.integers(0, dim, size=total)
        cube[np.arange(total), face] = rng.choice([-1.0, 1.0], size=total)
        shape = np.stack([shell, segment, blob, cube])[label % len(SHAPES), np.arange(total)]

        half_width = 0.3 / (1 + label // len(SHAPES))
        points = centres[owner] + half_width[:, None] * shape + NOISE_STD * rng.standard_normal((total, dim))
        self._points = points.astype(np.float32)
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)])
        for array in (self._points, self._sizes, self._offsets, self._labels):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} synthetic sets")
        index %= len(self)
        start, end = self._offsets[index], self._offsets[index + 1]
        return torch.from_numpy(self._points[start:end].copy()), int(self._labels[index])

    @property
    def sizes(self) -> np.ndarray:
        """[num_sets] int64: the number of points in each set (read-only)."""
        return self._sizes

    @property
    def labels(self) -> np.ndarray:
        """[num_sets] int64 labels (read-only)."""
        return self._labels

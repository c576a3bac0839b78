"""Small labelled point sets drawn from simple shapes, for tests and quick runs."""

from __future__ import annotations

import numpy as np

from setae.datasets.packed import PackedSets
from setae.errors import SetaeError

SHAPES = ("sphere shell", "segment", "gaussian blob", "cube surface")
NOISE_STD = 0.01


class SyntheticSets(PackedSets):
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
        self.num_classes = num_classes
        rng = np.random.default_rng(seed)
        sizes = rng.integers(min_size, max_size + 1, size=num_sets)
        labels = rng.integers(0, num_classes, size=num_sets)
        centres = 0.5 + rng.uniform(-0.1, 0.1, size=(num_sets, dim))

        owner = np.repeat(np.arange(num_sets), sizes)  # the set each point belongs to
        label = labels[owner]
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
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        super().__init__(points.reshape(-1, dim), offsets, labels, "synthetic")
        self.max_size = max_size  # the bound sizes were drawn under, not the largest drawn


def example_clouds(path, num_sets: int = 400, seed: int = 0) -> None:
    """Write `num_sets` labelled 3-D clouds (the four SHAPES, 20-60 points each) in coordinates about
    [6, 14] to `path` (.npz, .csv or .parquet): an example of "your own data" in units that are not
    MNIST's."""
    from setae.datasets.pointfile import save_point_sets

    data = SyntheticSets(num_sets, dim=3, min_size=20, max_size=60, num_classes=4, seed=seed)
    sets = [(5.0 + 10.0 * data[i][0].numpy()).astype(np.float64) for i in range(len(data))]
    save_point_sets(path, sets, data.labels)

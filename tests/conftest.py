"""Shared pytest fixtures, one section per topic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------------------
# Real MNIST
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder with the four real MNIST files: $SETAE_DATA, else <repo>/../shared/data/mnist.
    Tests using it are skipped when that folder is absent."""
    folder = Path(os.environ.get("SETAE_DATA") or Path(__file__).parents[1].parent / "shared/data/mnist")
    if not folder.is_dir():
        pytest.skip(f"real MNIST not available at {folder}")
    return folder


# ---------------------------------------------------------------------------------------------------------
# Random sets
# ---------------------------------------------------------------------------------------------------------


def random_sets(sizes: list[int], dim: int, seed: int = 0) -> list:
    """Sets of the given sizes with float32 coordinates in [0, 1), reproducible from `seed`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, dim, generator=g) for n in sizes]


def permute_rows(points, size: int, seed: int):
    """`points` [N, D] with its first `size` rows shuffled (padding rows stay in place)."""
    import torch

    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    out = points.clone()
    out[:size] = points[perm]
    return out

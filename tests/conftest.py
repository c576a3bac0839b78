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

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
# The digit CNN: tests get a small one (4,000 digits, three epochs, seconds) instead of the cached full one
# ---------------------------------------------------------------------------------------------------------

_SMALL_CNN: dict[str, Path] = {}


def small_digit_cnn_file(folder: Path, tmp_root: Path, drawing: str = "pixels") -> Path:
    """A safetensors file of a DigitCNN fitted on 4,000 training sets of `drawing` (digit_cnn.DRAWINGS) for
    three epochs, made once per drawing."""
    if drawing not in _SMALL_CNN:
        from safetensors.torch import save

        from setae.evaluation.digit_cnn import DRAWINGS, train_digit_cnn
        from setae.fileio import write_bytes

        train = DRAWINGS[drawing](folder, split="train").subset(0, 4000)
        test = DRAWINGS[drawing](folder, split="test").subset(0, 1000)
        model, accuracy = train_digit_cnn(train, test, epochs=3)
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        path = tmp_root / f"small-digit-cnn-{drawing}.safetensors"
        write_bytes(path, save(weights, metadata={"test_accuracy": repr(accuracy)}))
        _SMALL_CNN[drawing] = path
    return _SMALL_CNN[drawing]


@pytest.fixture(autouse=True)
def _small_digit_cnn(monkeypatch, tmp_path_factory):
    """Every test that asks setae for its digit CNN gets the small one (built on first use)."""
    from setae.evaluation import digit_cnn

    folder = Path(os.environ.get("SETAE_DATA") or Path(__file__).parents[1].parent / "shared/data/mnist")
    monkeypatch.setattr(
        digit_cnn,
        "cache_path",
        lambda drawing="pixels": small_digit_cnn_file(folder, tmp_path_factory.getbasetemp(), drawing),
    )

"""The linear autoencoder as a yardstick: PCA on rasterised 28×28 MNIST images, scored as pixel sets.

PCA with K components is fitted on training images x ∈ [0, 1]^784 (intensities / 255): with mean μ and the
top-K right singular vectors V [K, 784] of the centred images, the code is c = (x − μ) Vᵀ and the
reconstruction x̂ = μ + c V. A reconstruction becomes a pixel set {pixels with x̂ ≥ t}, with t chosen on
(up to 5,000) training images so that reconstructed sets have the true mean size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from setae.datasets import read_idx
from setae.datasets.mnist import IMAGE_SIDE, MNIST_FILES, PIXEL_THRESHOLD, _find_file
from setae.errors import SetaeError

# Candidate thresholds for the reconstructions, searched on a grid.
THRESHOLD_GRID = np.linspace(0.05, 0.95, 181)
CALIBRATION_IMAGES = 5000


def load_images(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, 784] in [0, 1], labels int64 [N]) of an MNIST split in `folder`."""
    images_name, labels_name = MNIST_FILES[split]
    images = read_idx(_find_file(folder, images_name))
    labels = read_idx(_find_file(folder, labels_name))
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise SetaeError(f"{folder / images_name}: expected images [N, 28, 28], got {list(images.shape)}")
    return images.reshape(len(images), -1).astype(np.float32) / 255, labels.astype(np.int64)


def images_to_sets(images: np.ndarray, t: float) -> list[torch.Tensor]:
    """Pixel sets [n_i, 2] of images [N, 784]: points (column, row) / 27 of the pixels with value ≥ t."""
    rows, cols = np.divmod(np.arange(IMAGE_SIDE * IMAGE_SIDE), IMAGE_SIDE)
    grid = np.stack([cols, rows], axis=1).astype(np.float32) / (IMAGE_SIDE - 1)
    return [torch.from_numpy(grid[image >= t]) for image in images]


@dataclass
class PCABaseline:
    """A fitted PCA-K image model and its set threshold."""

    mean: np.ndarray  # [784]
    basis: np.ndarray  # [K, 784], orthonormal rows
    threshold: float

    @classmethod
    def fit(cls, train_images: np.ndarray, dim: int) -> PCABaseline:
        """PCA-`dim` of train_images [N, 784]; the threshold matches the mean set size of the first
        CALIBRATION_IMAGES images (true sets use intensity ≥ PIXEL_THRESHOLD / 255)."""
        if not 1 <= dim <= min(train_images.shape):
            raise SetaeError(f"PCA: --dim {dim} must be between 1 and {min(train_images.shape)}")
        mean = train_images.mean(0)
        _, _, vt = np.linalg.svd(train_images - mean, full_matrices=False)
        model = cls(mean, vt[:dim], 0.0)
        calib = train_images[:CALIBRATION_IMAGES]
        true_mean_size = (calib >= PIXEL_THRESHOLD / 255).sum(1).mean()
        recon = model.reconstruct(calib)
        sizes = np.array([(recon >= t).sum(1).mean() for t in THRESHOLD_GRID])
        model.threshold = float(THRESHOLD_GRID[np.argmin(np.abs(sizes - true_mean_size))])
        return model

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Codes [N, K] = (x − μ) Vᵀ."""
        return (images - self.mean) @ self.basis.T

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Images [N, 784] projected on the principal subspace: μ + (x − μ) Vᵀ V."""
        return self.encode(images) @ self.basis + self.mean

    def reconstruct_sets(self, images: np.ndarray) -> list[torch.Tensor]:
        """The pixel sets of the reconstructions, thresholded at `threshold`."""
        return images_to_sets(self.reconstruct(images), self.threshold)


def evaluate_pca(
    dim: int, limit: int | None = None, probe_train: int = 10_000, seed: int = 0, folder: Path | None = None
) -> dict[str, float]:
    """Fit PCA-`dim` on all MNIST training images and score it on the first `limit` test digits (all when
    None) with the keys of `setae eval` (`chamfer`, `hungarian`, `ospa`, `size_acc`, `size_mae`,
    `num_sets`, and the digit CNN's `recon_digit_acc`), plus `threshold` and the `code_metrics` of the PCA
    codes (probes trained on the codes of the first `probe_train` training images)."""
    from setae.datasets import MNISTSets, find_mnist
    from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn
    from setae.evaluation.representation import code_metrics
    from setae.evaluation.set_metrics import set_distances, summarize

    folder = find_mnist() if folder is None else folder
    train, train_labels = load_images(folder, "train")
    test, test_labels = load_images(folder, "test")
    test, test_labels = test[:limit], test_labels[:limit]
    model = PCABaseline.fit(train, dim)
    targets = MNISTSets(folder, "test")
    target_sets = [targets[i][0] for i in range(len(test))]
    reconstructions = model.reconstruct_sets(test)
    metrics = summarize(set_distances(target_sets, reconstructions))
    classifier, _ = load_digit_cnn(folder)
    metrics.update(
        digit_scores(
            classifier, reconstructions=reconstructions, targets=target_sets, target_labels=test_labels
        )
    )
    metrics.update(
        code_metrics(
            model.encode(train[:probe_train]),
            train_labels[:probe_train],
            model.encode(test),
            test_labels,
            seed,
        )
    )
    return {"dim": dim, "threshold": model.threshold, "num_sets": len(test), **metrics}

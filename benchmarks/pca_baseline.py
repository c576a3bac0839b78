"""The linear autoencoder as a yardstick: PCA on rasterised 28×28 MNIST images, scored as pixel sets.

    python benchmarks/pca_baseline.py [--dims 8,16,64] [--limit 1000]

PCA with K components is fitted on the 60,000 training images (intensities / 255). A test image's
reconstruction becomes a pixel set by a threshold chosen on 5,000 training images so that reconstructed sets
have the true mean size; sets are scored against the test digits' sets with setae's own metrics.
Writes benchmarks/results/pca_baseline.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from setae.datasets import MNISTSets, find_mnist, read_idx
from setae.datasets.mnist import MNIST_FILES, PIXEL_THRESHOLD
from setae.evaluation.set_metrics import set_distances, summarize

RESULTS = Path(__file__).parent / "results"
SIDE = 28


def load_images(folder: Path, split: str) -> np.ndarray:
    return read_idx(folder / MNIST_FILES[split][0]).reshape(-1, SIDE * SIDE).astype(np.float32) / 255


def to_sets(images: np.ndarray, threshold: float) -> list[torch.Tensor]:
    rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
    grid = np.stack([cols, rows], axis=1).astype(np.float32) / (SIDE - 1)
    return [torch.from_numpy(grid[img >= threshold]) for img in images]


def reconstruct(images: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Project [N, 784] images onto the K principal directions `basis` [K, 784] and back."""
    return (images - mean) @ basis.T @ basis + mean


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", default="8,16,64")
    parser.add_argument("--limit", type=int, default=1000, help="score the first N test digits")
    args = parser.parse_args()
    folder = find_mnist()
    train, test = load_images(folder, "train"), load_images(folder, "test")[: args.limit]
    target = [MNISTSets(folder, "test")[i][0] for i in range(len(test))]
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    calib = train[:5000]
    true_mean_size = (calib >= PIXEL_THRESHOLD / 255).sum(1).mean()
    rows = []
    for k in map(int, args.dims.split(",")):
        basis = vt[:k]
        calib_recon = reconstruct(calib, mean, basis)
        grid = np.linspace(0.05, 0.95, 181)
        sizes = np.array([(calib_recon >= t).sum(1).mean() for t in grid])
        threshold = float(grid[np.argmin(np.abs(sizes - true_mean_size))])
        metrics = summarize(set_distances(target, to_sets(reconstruct(test, mean, basis), threshold)))
        rows.append({"dim": k, "threshold": threshold, "num_sets": len(test), **metrics})
        print(f"PCA-{k}: " + "  ".join(f"{key} {value:.5g}" for key, value in metrics.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pca_baseline.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# PCA baseline on the first {args.limit} MNIST test digits (pixel sets)",
        "",
        "| K | threshold | chamfer | hungarian | ospa | size_acc | size_mae |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dim']} | {r['threshold']:.3f} | {r['chamfer']:.5f} | {r['hungarian']:.5f} | "
            f"{r['ospa']:.4f} | {r['size_acc']:.3f} | {r['size_mae']:.2f} |"
        )
    (RESULTS / "pca_baseline.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

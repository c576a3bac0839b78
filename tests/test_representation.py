"""Known answers for the representation metrics: NMI / ARI, k-means, the linear probe, the PCA baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from setae.cli import main
from setae.errors import SetaeError
from setae.evaluation.pca_baseline import PCABaseline, images_to_sets
from setae.evaluation.representation import (
    ari,
    balanced_subset,
    code_metrics,
    contingency,
    kmeans,
    linear_probe,
    nmi,
)


def blobs(per_blob: int, num_blobs: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs with std `spread` around centres 10 apart; returns (points [N, dim], labels [N])."""
    rng = np.random.default_rng(seed)
    centres = 10 * rng.standard_normal((num_blobs, dim))
    labels = np.repeat(np.arange(num_blobs), per_blob)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def test_nmi_ari_are_one_for_relabelled_clusters():
    labels = np.random.default_rng(0).integers(0, 10, 500)
    relabelled = (7 * labels + 3) % 10
    assert nmi(relabelled, labels) == pytest.approx(1.0)
    assert ari(relabelled, labels) == pytest.approx(1.0)


def test_nmi_ari_near_zero_for_random_clusters():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 10, 5000), rng.integers(0, 10, 5000)
    assert abs(ari(a, b)) < 0.01
    assert nmi(a, b) < 0.02


def test_ari_and_nmi_match_hand_computed_values():
    # Table [[2, 1], [0, 2]]: pairs Σ C(n_ij) = 2, rows 3 + 1 = 4, cols 1 + 3 = 4, C(5) = 10
    # -> ARI = (2 - 1.6) / (4 - 1.6) = 1/6.
    a, b = [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]
    assert contingency(a, b).tolist() == [[2, 1], [0, 2]]
    assert ari(a, b) == pytest.approx(1 / 6)
    p = np.array([[2, 1], [0, 2]]) / 5
    h = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    outer = np.outer([0.6, 0.4], [0.4, 0.6])
    mutual = sum(p[i, j] * np.log(p[i, j] / outer[i, j]) for i in range(2) for j in range(2) if p[i, j] > 0)
    assert nmi(a, b) == pytest.approx(mutual / h)


def test_kmeans_recovers_separated_blobs():
    points, labels = blobs(60, 5, 3, 0.3, seed=2)
    clusters = kmeans(points, 5, seed=0)
    assert ari(clusters, labels) == pytest.approx(1.0)
    assert np.array_equal(clusters, kmeans(points, 5, seed=0))


def test_kmeans_rejects_too_many_clusters():
    with pytest.raises(SetaeError, match="k=5"):
        kmeans(np.zeros((3, 2)), 5)


def test_probe_separable_codes_and_random_codes():
    codes, labels = blobs(100, 10, 8, 0.5, seed=3)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:600], order[600:]
    assert linear_probe(codes[train], labels[train], codes[test], labels[test], 10) > 0.98
    noise = np.random.default_rng(4).standard_normal(codes.shape)
    chance = linear_probe(noise[train], labels[train], noise[test], labels[test], 10)
    assert chance < 0.25


def test_balanced_subset_takes_equal_counts_per_label():
    labels = np.repeat(np.arange(10), 50)
    idx = balanced_subset(labels, 100, seed=0)
    assert np.bincount(labels[idx]).tolist() == [10] * 10
    assert len(balanced_subset(labels, None, seed=0)) == 500


def test_code_metrics_keys_and_values():
    codes, labels = blobs(40, 10, 6, 0.3, seed=5)
    metrics = code_metrics(codes, labels, codes, labels)
    expected = {"probe_acc_100", "probe_acc_all", "kmeans_nmi", "kmeans_ari", "skipped"}
    assert set(metrics) == expected  # 400 training codes: no 1000-code probe
    assert metrics["skipped"] == ["probe_acc_1000: only 400 training sets"]
    assert metrics["probe_acc_all"] > 0.98
    assert metrics["kmeans_nmi"] > 0.9


def test_pca_baseline_exact_for_low_rank_images_and_threshold_matches_size():
    rng = np.random.default_rng(6)
    images = np.clip(rng.random((200, 3)) @ rng.random((3, 784)) / 3, 0, 1).astype(np.float32)
    model = PCABaseline.fit(images, 3)
    assert np.abs(model.reconstruct(images) - images).max() < 1e-4
    assert model.encode(images).shape == (200, 3)
    true_sizes = np.array([len(s) for s in images_to_sets(images, 34 / 255)])
    recon_sizes = np.array([len(s) for s in model.reconstruct_sets(images)])
    assert abs(recon_sizes.mean() - true_sizes.mean()) / true_sizes.mean() < 0.05


def test_cli_pca_baseline_writes_eval_keys(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SETAE_DATA", str(mnist_root))
    out = tmp_path / "pca"
    args = ["baseline", "pca", "--dim", "8", "--limit", "30", "--probe-train", "300", "--out", str(out)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("chamfer", "hungarian", "ospa", "size_acc", "size_mae", "probe_acc_100", "kmeans_nmi"):
        assert isinstance(metrics[key], float), key
    assert metrics["num_sets"] == 30 and 0 < metrics["chamfer"] < 0.01

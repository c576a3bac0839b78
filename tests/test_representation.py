"""Known answers for the representation metrics: NMI / ARI, k-means, the linear probe, the PCA baseline,
and agreement of the scikit-learn figures with the hand-written ones they replaced."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from setae.cli import main
from setae.errors import SetaeError
from setae.evaluation.clustering import silhouette
from setae.evaluation.pca_baseline import PCABaseline, images_to_sets
from setae.evaluation.representation import (
    balanced_subset,
    code_metrics,
    fit_logistic_regression,
    kmeans,
    linear_probe,
)


def blobs(per_blob: int, num_blobs: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs with std `spread` around centres 10 apart; returns (points [N, dim], labels [N])."""
    rng = np.random.default_rng(seed)
    centres = 10 * rng.standard_normal((num_blobs, dim))
    labels = np.repeat(np.arange(num_blobs), per_blob)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def test_sklearn_figures_agree_with_the_former_implementation():
    # 10 overlapping unit Gaussians in 16-d (centres ~ N(0, 0.8² I)), 2000 train / 1000 test items. The
    # figures were computed with the hand-written torch L-BFGS probe, k-means, NMI, ARI and silhouette that
    # scikit-learn replaced. On the same subset the two probes agree to 0.001 (1000 items) and 0.005 (100);
    # the subsets themselves differ (old probe_acc_1000 over 10 seeds: 0.864 ± 0.007, probe_acc_100
    # 0.756 ± 0.014), and k-means NMI / ARI move by about ±0.005 between seeds.
    rng = np.random.default_rng(12345)
    centres = 0.8 * rng.standard_normal((10, 16))
    labels = rng.integers(0, 10, 3000)
    points = centres[labels] + rng.standard_normal((3000, 16))
    metrics = code_metrics(points[:2000], labels[:2000], points[2000:], labels[2000:], seed=0)
    assert metrics["probe_acc_all"] == pytest.approx(0.873, abs=0.01)
    assert metrics["probe_acc_1000"] == pytest.approx(0.858, abs=0.02)
    assert metrics["probe_acc_100"] == pytest.approx(0.724, abs=0.06)
    assert metrics["kmeans_nmi"] == pytest.approx(0.7778, abs=0.03)
    assert metrics["kmeans_ari"] == pytest.approx(0.7679, abs=0.03)
    assert silhouette(points[2000:], labels[2000:]) == pytest.approx(0.09867784010123963, abs=1e-9)


def test_kmeans_nmi_ari_known_answers_with_unequal_entropies():
    # Test codes in three far-apart groups of 8, 1 and 1 (k-means finds them exactly), labelled so that the
    # contingency table (clusters x labels) is asymmetric with different marginal entropies.
    table = np.array([[4, 2, 2], [0, 1, 0], [0, 0, 1]])
    codes = np.array([[0.0]] * 8 + [[100.0], [200.0]]) + 0.01 * np.arange(10)[:, None]
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 1, 2])
    metrics = code_metrics(codes, labels, codes, labels)
    p = table / table.sum()
    rows, cols = p.sum(1), p.sum(0)
    mutual = sum(p[i, j] * np.log(p[i, j] / (rows[i] * cols[j])) for i, j in zip(*np.nonzero(p), strict=True))
    h_rows, h_cols = -(rows * np.log(rows)).sum(), -(cols * np.log(cols)).sum()
    arithmetic = mutual / ((h_rows + h_cols) / 2)
    # Arithmetic 0.2976 here, geometric 0.3082, max 0.2361: far apart next to the tolerance.
    assert abs(arithmetic - mutual / np.sqrt(h_rows * h_cols)) > 0.01
    assert abs(arithmetic - mutual / max(h_rows, h_cols)) > 0.05
    assert metrics["kmeans_nmi"] == pytest.approx(arithmetic, abs=1e-12)
    # ARI: Σ C(n_ij) = 6 + 1 + 1 = 8, rows Σ C(a_i) = C(8) = 28, columns Σ C(b_j) = 6 + 3 + 3 = 12,
    # C(10) = 45, E = 28 · 12 / 45 -> ARI = (8 − E) / ((28 + 12) / 2 − E) = 2 / 47.
    assert metrics["kmeans_ari"] == pytest.approx(2 / 47, abs=1e-12)


def test_kmeans_recovers_separated_blobs():
    points, labels = blobs(60, 5, 3, 0.3, seed=2)
    clusters = kmeans(points, 5, seed=0)
    assert clusters.dtype == np.int64 and set(clusters.tolist()) == set(range(5))
    assert adjusted_rand_score(labels, clusters) == pytest.approx(1.0)
    assert np.array_equal(clusters, kmeans(points, 5, seed=0))


def test_kmeans_rejects_too_many_clusters():
    with pytest.raises(SetaeError, match="k=5"):
        kmeans(np.zeros((3, 2)), 5)


def test_probe_separable_codes_and_random_codes():
    codes, labels = blobs(100, 10, 8, 0.5, seed=3)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:600], order[600:]
    assert linear_probe(codes[train], labels[train], codes[test], labels[test]) > 0.98
    noise = np.random.default_rng(4).standard_normal(codes.shape)
    chance = linear_probe(noise[train], labels[train], noise[test], labels[test])
    assert chance < 0.25
    with pytest.raises(SetaeError, match="all the same"):
        linear_probe(codes[:5], [3] * 5, codes, labels)


@pytest.mark.parametrize("standardize", [True, False])
def test_probe_minimises_the_stated_objective(standardize):
    # At the fitted W [d, L], b [L] the gradient of mean_i −log softmax(z_i W + b)[y_i] + (λ / 2) |W|²
    # vanishes: Zᵀ(P − Y) / N + λ W = 0 and mean_i (p_i − y_i) = 0, Z the standardised (or raw) codes.
    codes, labels = blobs(40, 3, 4, 6.0, seed=8)
    codes = codes * [1, 10, 0.1, 1] + 5  # unequal scales and an offset, so standardising matters
    weight_decay = 0.1
    model = fit_logistic_regression(codes, labels, weight_decay, standardize=standardize)
    z = (codes - codes.mean(0)) / codes.std(0) if standardize else codes
    weight, bias = model[-1].coef_.T, model[-1].intercept_
    logits = z @ weight + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    residual = p - np.eye(3)[labels]
    assert np.abs(z.T @ residual / len(z) + weight_decay * weight).max() < 1e-3
    assert np.abs(residual.mean(0)).max() < 1e-3
    assert np.abs(weight).max() > 0.1  # not the trivial zero solution


def test_balanced_subset_is_stratified():
    labels = np.repeat(np.arange(3), [300, 150, 50])
    idx = balanced_subset(labels, 100, seed=0)
    assert np.bincount(labels[idx]).tolist() == [60, 30, 10]
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.array_equal(idx, balanced_subset(labels, 100, seed=0))
    assert not np.array_equal(idx, balanced_subset(labels, 100, seed=1))
    assert np.array_equal(balanced_subset(labels, None, seed=0), np.arange(500))
    assert np.array_equal(balanced_subset(labels, 500, seed=0), np.arange(500))


def test_code_metrics_keys_and_values():
    codes, labels = blobs(110, 10, 6, 0.3, seed=5)
    metrics = code_metrics(codes, labels, codes, labels)
    assert set(metrics) == {"probe_acc_100", "probe_acc_1000", "probe_acc_all", "kmeans_nmi", "kmeans_ari"}
    assert metrics["probe_acc_all"] > 0.98
    assert metrics["kmeans_nmi"] > 0.9


def test_code_metrics_skips_what_the_data_cannot_support():
    codes, labels = blobs(20, 10, 6, 0.3, seed=7)  # 200 items, 20 of each label
    metrics = code_metrics(codes, labels, codes, labels)
    assert set(metrics) == {"probe_acc_100", "probe_acc_all", "kmeans_nmi", "kmeans_ari", "skipped"}
    assert metrics["skipped"] == ["probe_acc_1000: only 200 training sets"]
    # A label with a single training item: no sized probe; one test label only: no k-means.
    lonely = np.concatenate([codes[:120], codes[-1:]]), np.concatenate([labels[:120], [9]])
    metrics = code_metrics(*lonely, codes[:20], labels[:20])
    assert set(metrics) == {"probe_acc_all", "skipped"}
    assert metrics["skipped"] == [
        "probe_acc_100: label 9 has only 1 training set",
        "probe_acc_1000: only 121 training sets",
        "kmeans_nmi, kmeans_ari: every test set has label 0",
    ]
    metrics = code_metrics(codes[:30], np.zeros(30, dtype=int), codes, labels)
    assert [key for key in metrics if key.startswith("probe")] == []
    assert metrics["skipped"][0] == "probe_acc_100: every training set has label 0"


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

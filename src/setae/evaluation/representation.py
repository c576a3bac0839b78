"""How much of the labels the codes carry: a linear probe, and k-means clusters scored against the labels;
scikit-learn fits and scores both.

- linear probe: multinomial logistic regression (`LogisticRegression`, L-BFGS) on codes standardised with
  the training mean and std (`StandardScaler`): the weights W [d, L] and bias b [L] minimise
      mean_i −log softmax(z_i W + b)[y_i] + (weight_decay / 2) |W|²  (sklearn's C = 1 / (weight_decay N)),
  scored by test accuracy; trained on stratified subsets (`resample`) of 100 and 1000 training codes and on
  all of them;
- k-means (`KMeans`: k-means++ initialisation, Lloyd iterations, the least-inertia run of `n_init`) on the
  test codes with k = number of distinct test labels, scored against the labels through the contingency
  table n_ij of clusters against labels (row sums a_i, column sums b_j, p_ij = n_ij / N, C(x) = x(x−1)/2):
      NMI = I(A; B) / ((H(A) + H(B)) / 2),  I = Σ_ij p_ij log(p_ij / (p_i p_j))
            (`normalized_mutual_info_score`, arithmetic normalisation),
      ARI = (Σ C(n_ij) − E) / (½(Σ C(a_i) + Σ C(b_j)) − E),  E = Σ C(a_i) Σ C(b_j) / C(N)
            (`adjusted_rand_score`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import resample

from setae.errors import SetaeError
from setae.models.autoencoder import SetAutoencoder

PROBE_SIZES: dict[str, int | None] = {"probe_acc_100": 100, "probe_acc_1000": 1000, "probe_acc_all": None}


def _as_array(values, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if array.ndim != ndim or len(array) == 0:
        raise SetaeError(f"{name}: expected a non-empty {ndim}-d array, got shape {list(array.shape)}")
    return array


def balanced_subset(labels: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """Sorted indices of `count` items (all when None or count >= len) drawn without replacement under
    `seed`, stratified: each label's share of the subset is (up to rounding) its share of `labels`."""
    labels = np.asarray(labels)
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    items = np.arange(len(labels))
    return np.sort(resample(items, replace=False, n_samples=count, stratify=labels, random_state=seed))


def linear_probe(
    train_codes, train_labels, test_codes, test_labels, weight_decay: float = 1e-3, max_iter: int = 1000
) -> float:
    """Test accuracy on (test_codes [M, d], test_labels [M]) of `fit_logistic_regression` trained on
    (train_codes [N, d], train_labels [N]); a test label never seen in training counts as wrong."""
    x_train, x_test = _as_array(train_codes, "train codes", 2), _as_array(test_codes, "test codes", 2)
    y_train, y_test = _as_array(train_labels, "train labels", 1), _as_array(test_labels, "test labels", 1)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise SetaeError("linear probe: codes and labels differ in number")
    if x_train.shape[1] != x_test.shape[1]:
        raise SetaeError(
            f"linear probe: train codes are {x_train.shape[1]}-d but test codes {x_test.shape[1]}-d"
        )
    if len(np.unique(y_train)) < 2:
        raise SetaeError("linear probe: the training labels are all the same")
    model = fit_logistic_regression(x_train, y_train, weight_decay, max_iter)
    return float(model.score(np.asarray(x_test, dtype=np.float64), y_test))


def fit_logistic_regression(
    x_train, y_train, weight_decay: float = 1e-3, max_iter: int = 1000, standardize: bool = True
) -> Pipeline:
    """The model of the module docstring fitted on (x_train [N, d], y_train [N]) in float64, as a pipeline
    (`predict`, `predict_proba`, `score` on x [M, d]); with two labels sklearn fits the equivalent binary
    model, one weight vector w with the penalty (weight_decay / 2) |w|². `standardize=False` keeps features
    as they are (e.g. binary pixels, where a rarely lit pixel would otherwise be scaled up enormously)."""
    x_train = np.asarray(x_train, dtype=np.float64)
    classifier = LogisticRegression(C=1 / (weight_decay * len(x_train)), max_iter=max_iter)
    steps = [StandardScaler()] if standardize else []
    return make_pipeline(*steps, classifier).fit(x_train, np.asarray(y_train))


def kmeans(codes, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 300) -> np.ndarray:
    """Cluster labels [N] (int64 in 0..k-1) of codes [N, d] minimising Σ_i |z_i − μ_{c(i)}|² (sklearn
    `KMeans`: k-means++ starts, Lloyd iterations, the least-inertia run of `n_init`, under `seed`)."""
    x = np.asarray(_as_array(codes, "codes", 2), dtype=np.float64)
    if not 1 <= k <= len(x):
        raise SetaeError(f"k-means: k={k} must be between 1 and the number of codes ({len(x)})")
    model = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
    return model.fit_predict(x).astype(np.int64)


def code_metrics(
    train_codes, train_labels, test_codes, test_labels, seed: int = 0
) -> dict[str, float | list[str]]:
    """`probe_acc_100`, `probe_acc_1000`, `probe_acc_all` (probes on stratified subsets of the training
    codes, chosen under `seed`, scored on all test codes) and `kmeans_nmi`, `kmeans_ari` (k-means on the
    test codes with k = number of distinct test labels). A sized probe needs at least that many training
    codes and 2 of every training label, any probe 2 distinct training labels, k-means 2 distinct test
    labels; what is left out is named, with the reason, in `skipped` (a list of strings, only when any)."""
    train_labels = _as_array(train_labels, "train labels", 1)
    test_labels = _as_array(test_labels, "test labels", 1)
    train_codes = _as_array(train_codes, "train codes", 2)
    classes, counts = np.unique(train_labels, return_counts=True)
    out, skipped = {}, []
    for key, count in PROBE_SIZES.items():
        if len(classes) < 2:
            skipped.append(f"{key}: every training set has label {classes[0]}")
        elif count is not None and len(train_labels) < count:
            skipped.append(f"{key}: only {len(train_labels)} training sets")
        elif count is not None and counts.min() < 2:
            skipped.append(f"{key}: label {classes[counts.argmin()]} has only 1 training set")
        else:
            idx = balanced_subset(train_labels, count, seed)
            out[key] = linear_probe(train_codes[idx], train_labels[idx], test_codes, test_labels)
    num_test_labels = len(np.unique(test_labels))
    if num_test_labels < 2:
        skipped.append(f"kmeans_nmi, kmeans_ari: every test set has label {test_labels[0]}")
    else:
        clusters = kmeans(test_codes, num_test_labels, seed=seed)
        nmi = normalized_mutual_info_score(test_labels, clusters, average_method="arithmetic")
        out["kmeans_nmi"], out["kmeans_ari"] = float(nmi), float(adjusted_rand_score(test_labels, clusters))
    if skipped:
        out["skipped"] = skipped
    return out


def representation_metrics(
    model: SetAutoencoder, train_sets: Sequence, train_labels, test_sets: Sequence, test_labels, seed: int = 0
) -> dict[str, float | list[str]]:
    """`code_metrics` of the model's codes (`model.encode`: posterior means for VAEs; a conditional model's
    codes are computed given the labels, so they describe what the label does not). A model with a latent
    set (latent_set = K > 0) is scored on its flattened codes [B, K·d_k] (ordered by the PMA seeds) and,
    as `pooled_probe_acc_*`, `pooled_kmeans_*`, on the pooled latent set (1/K) Σ_j z_j [B, d_k], which
    forgets which seed gave which element."""
    given = model.config.conditional
    train_codes = model.encode(train_sets, labels=train_labels if given else None)
    test_codes = model.encode(test_sets, labels=test_labels if given else None)
    out = code_metrics(train_codes, train_labels, test_codes, test_labels, seed)
    if model.config.latent_set:
        pooled = code_metrics(
            model.pooled_codes(train_codes), train_labels, model.pooled_codes(test_codes), test_labels, seed
        )
        pooled.pop("skipped", None)  # the same reasons as the flattened codes'
        out.update({f"pooled_{key}": value for key, value in pooled.items()})
    return out

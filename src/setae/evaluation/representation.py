"""How much of the labels the codes carry: a linear probe, and k-means clusters scored against the labels.

- linear probe: multinomial logistic regression on standardised codes, fitted by L-BFGS on the training
  codes, scored by test accuracy; trained on balanced subsets of 100, 1000 and all training codes;
- k-means (k-means++ initialisation, Lloyd iterations) on the test codes, with k = number of labels, scored by
  NMI and ARI, both computed from the contingency table of clusters against labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import comb

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
    `seed`, count // L from each of the L labels present (fewer when a label has fewer items)."""
    labels = np.asarray(labels)
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, count // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picks))


def linear_probe(
    train_codes,
    train_labels,
    test_codes,
    test_labels,
    num_labels: int | None = None,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> float:
    """Test accuracy of multinomial logistic regression trained on (train_codes [N, d], train_labels [N]).

    Codes are standardised with the training mean and std; the weights W [d, L] and bias b [L] minimise
        mean_i −log softmax(z_i W + b)[y_i] + (weight_decay / 2) |W|²
    by L-BFGS in float64 from zero weights (the problem is convex). L = num_labels, or 1 + the largest
    label seen."""
    x_train = torch.as_tensor(_as_array(train_codes, "train codes", 2), dtype=torch.float64)
    x_test = torch.as_tensor(_as_array(test_codes, "test codes", 2), dtype=torch.float64)
    y_train = torch.as_tensor(_as_array(train_labels, "train labels", 1), dtype=torch.long)
    y_test = torch.as_tensor(_as_array(test_labels, "test labels", 1), dtype=torch.long)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise SetaeError("linear probe: codes and labels differ in number")
    if x_train.shape[1] != x_test.shape[1]:
        raise SetaeError(
            f"linear probe: train codes are {x_train.shape[1]}-d but test codes {x_test.shape[1]}-d"
        )
    num_labels = num_labels or int(max(y_train.max(), y_test.max())) + 1
    classify = fit_logistic_regression(x_train, y_train, num_labels, weight_decay, max_iter)
    return float((classify(x_test).argmax(1) == y_test).double().mean())


def fit_logistic_regression(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    num_labels: int,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
    standardize: bool = True,
):
    """Fit the model of `linear_probe` on (x_train [N, d], y_train [N]); returns x [M, d] -> probabilities
    [M, num_labels]. `standardize=False` keeps features as they are (e.g. binary pixels, where a rarely lit
    pixel would otherwise be scaled up enormously)."""
    x_train = torch.as_tensor(x_train, dtype=torch.float64)
    mean, std = x_train.mean(0), x_train.std(0, unbiased=False).clamp(min=1e-12)
    if not standardize:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    x_train = (x_train - mean) / std
    # Zero start (the problem is convex): a feature that is constant in training keeps weight 0, so it cannot
    # swing predictions on inputs where it is not (e.g. a pixel never lit in training).
    weight = torch.zeros(x_train.shape[1], num_labels, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_labels, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=max_iter, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_train @ weight + bias, y_train)
        loss = loss + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()

    def classify(x) -> torch.Tensor:
        x = (torch.as_tensor(x, dtype=torch.float64) - mean) / std
        return torch.softmax(x @ weight + bias, dim=1)

    return classify


def kmeans(codes, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 300) -> np.ndarray:
    """Cluster labels [N] (int64 in 0..k-1) of codes [N, d] minimising Σ_i |z_i − μ_{c(i)}|².

    Each of `n_init` runs starts from k-means++ (first centre uniform, each next one drawn with probability
    ∝ squared distance to the nearest chosen centre) and alternates assignment / centre updates (Lloyd) until
    the assignment stops changing; an empty cluster keeps its centre. The run with the least inertia wins."""
    x = torch.as_tensor(_as_array(codes, "codes", 2), dtype=torch.float64)
    if not 1 <= k <= len(x):
        raise SetaeError(f"k-means: k={k} must be between 1 and the number of codes ({len(x)})")
    generator = torch.Generator().manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(n_init):
        centres = x[torch.randint(len(x), (1,), generator=generator)]
        nearest = torch.cdist(x, centres).square().squeeze(1)
        for _ in range(1, k):
            weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
            centre = x[torch.multinomial(weights, 1, generator=generator)]
            centres = torch.cat([centres, centre])
            nearest = torch.minimum(nearest, (x - centre).square().sum(1))
        assign = torch.full((len(x),), -1, dtype=torch.long)
        for _ in range(max_iter):
            new_assign = torch.cdist(x, centres).argmin(1)
            if torch.equal(new_assign, assign):
                break
            assign = new_assign
            counts = torch.bincount(assign, minlength=k).to(x.dtype)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            centres = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        inertia = float((x - centres[assign]).square().sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    return best.numpy()


def contingency(a, b) -> np.ndarray:
    """Counts n_ij [A, B] of items with label i in `a` and label j in `b` (labels renumbered densely)."""
    a, b = _as_array(a, "labels", 1), _as_array(b, "labels", 1)
    if len(a) != len(b):
        raise SetaeError(f"got {len(a)} and {len(b)} labels; expected the same number")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(a, b) -> float:
    """Normalised mutual information of two labelings, arithmetic normalisation:
        NMI = I(A; B) / ((H(A) + H(B)) / 2),  I = Σ_ij p_ij log(p_ij / (p_i p_j)),  p_ij = n_ij / N;
    1 when the labelings agree up to renaming (also when both are constant), 0 when independent."""
    table = contingency(a, b)
    h_a, h_b = _entropy(table.sum(1)), _entropy(table.sum(0))
    if h_a + h_b == 0:
        return 1.0
    p = table / table.sum()
    outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    nz = p > 0
    mutual = float((p[nz] * np.log(p[nz] / outer[nz])).sum())
    return max(0.0, mutual / (0.5 * (h_a + h_b)))


def ari(a, b) -> float:
    """Adjusted Rand index (Hubert & Arabie) from the contingency table n_ij with row sums a_i, column sums
    b_j and C(x) = x(x−1)/2:
        ARI = (Σ C(n_ij) − Σ C(a_i) Σ C(b_j) / C(N)) / (½(Σ C(a_i) + Σ C(b_j)) − Σ C(a_i) Σ C(b_j) / C(N));
    1 for identical labelings up to renaming, ≈ 0 in expectation for random ones (1 by convention when the
    denominator is 0, i.e. both labelings are all-one-cluster or all-singletons alike)."""
    table = contingency(a, b)
    pairs = float(comb(table, 2).sum())
    rows, cols = float(comb(table.sum(1), 2).sum()), float(comb(table.sum(0), 2).sum())
    expected = rows * cols / float(comb(table.sum(), 2)) if table.sum() > 1 else 0.0
    denominator = 0.5 * (rows + cols) - expected
    return 1.0 if denominator == 0 else (pairs - expected) / denominator


def code_metrics(train_codes, train_labels, test_codes, test_labels, seed: int = 0) -> dict[str, float]:
    """`probe_acc_100`, `probe_acc_1000`, `probe_acc_all` (probes on balanced subsets of the training codes,
    chosen under `seed`, scored on all test codes) and `kmeans_nmi`, `kmeans_ari` (k-means on the test codes
    with k = number of distinct test labels)."""
    train_labels = _as_array(train_labels, "train labels", 1)
    test_labels = _as_array(test_labels, "test labels", 1)
    train_codes = _as_array(train_codes, "train codes", 2)
    num_labels = int(max(train_labels.max(), test_labels.max())) + 1
    out, skipped = {}, []
    for key, count in PROBE_SIZES.items():
        if count is not None and count > len(train_labels):
            skipped.append(f"{key}: only {len(train_labels)} training sets")
            continue
        idx = balanced_subset(train_labels, count, seed)
        out[key] = linear_probe(train_codes[idx], train_labels[idx], test_codes, test_labels, num_labels)
    clusters = kmeans(test_codes, len(np.unique(test_labels)), seed=seed)
    out["kmeans_nmi"] = nmi(clusters, test_labels)
    out["kmeans_ari"] = ari(clusters, test_labels)
    if skipped:
        out["skipped"] = skipped
    return out


def representation_metrics(
    model: SetAutoencoder, train_sets: Sequence, train_labels, test_sets: Sequence, test_labels, seed: int = 0
) -> dict[str, float]:
    """`code_metrics` of the model's codes (`model.encode`: posterior means for VAEs; a conditional model's
    codes are computed given the labels, so they describe what the label does not)."""
    given = model.config.conditional
    train_codes = model.encode(train_sets, labels=train_labels if given else None)
    test_codes = model.encode(test_sets, labels=test_labels if given else None)
    return code_metrics(train_codes, train_labels, test_codes, test_labels, seed)

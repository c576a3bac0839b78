"""Clusters of codes: k-means, the within-cluster sum of squares and the silhouette, to choose k.

For codes z_1..z_N [N, d] and an assignment c(i) of each code to a cluster:

- k-means: `representation.kmeans` (scikit-learn's `KMeans`);
- inertia (within-cluster sum of squares) W = Σ_i |z_i − μ_{c(i)}|², μ_c the mean of cluster c's codes,
  computed here; it falls as k grows, and the "elbow" where it stops falling fast suggests k;
- silhouette (Rousseeuw 1987) with Euclidean distances d(i, j) = |z_i − z_j|: for code i in cluster A,
      a(i) = Σ_{j ∈ A, j ≠ i} d(i, j) / (|A| − 1)      mean distance to the rest of its own cluster,
      b(i) = min_{B ≠ A} Σ_{j ∈ B} d(i, j) / |B|       mean distance to the nearest other cluster,
      s(i) = (b(i) − a(i)) / max(a(i), b(i)),  s(i) = 0 when |A| = 1,
  and the score is the mean of s(i) over all N codes (singletons count as 0), in [−1, 1]; higher means
  tighter, better separated clusters. scikit-learn's `silhouette_score` computes it exactly, on all codes
  (not a sample), in O(N² d) time with the distances formed in memory-bounded chunks;
- against labels: NMI (arithmetic normalisation) and ARI by scikit-learn, as in `representation`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from setae.errors import SetaeError
from setae.evaluation.representation import _as_array, kmeans

GALLERY = 16  # members shown per cluster


def _codes(codes) -> torch.Tensor:
    return torch.as_tensor(_as_array(codes, "codes", 2), dtype=torch.float64)


def _clusters(assignment, count: int) -> torch.Tensor:
    """The assignment [N] renumbered densely 0..C-1 in order of cluster id (empty clusters dropped)."""
    a = _as_array(assignment, "assignment", 1)
    if len(a) != count or not np.issubdtype(a.dtype, np.integer):
        raise SetaeError(f"assignment: expected {count} integer cluster ids, got {len(a)} of type {a.dtype}")
    return torch.unique(torch.as_tensor(a, dtype=torch.long), return_inverse=True)[1]


def inertia(codes, assignment) -> float:
    """Within-cluster sum of squares W = Σ_i |z_i − μ_{c(i)}|² of codes [N, d] under assignment [N]
    (μ_c: mean of the codes in cluster c)."""
    x = _codes(codes)
    a = _clusters(assignment, len(x))
    counts = torch.bincount(a).to(x.dtype)
    means = torch.zeros(len(counts), x.shape[1], dtype=x.dtype).index_add_(0, a, x) / counts[:, None]
    return float((x - means[a]).square().sum())


def silhouette(codes, assignment) -> float:
    """Mean silhouette coefficient of codes [N, d] under assignment [N] (exact; module docstring):
    s(i) = (b(i) − a(i)) / max(a(i), b(i)) averaged over i, 0 for members of singleton clusters (so 0 when
    every cluster is a singleton, which `silhouette_score` refuses)."""
    x = _codes(codes)
    a = _clusters(assignment, len(x))
    clusters = int(a.max()) + 1
    if clusters < 2:
        raise SetaeError("silhouette: needs at least 2 non-empty clusters (are all codes equal?)")
    return 0.0 if clusters == len(x) else float(silhouette_score(x.numpy(), a.numpy()))


def selection_curve(codes, ks: Sequence[int], seed: int = 0) -> dict[str, list]:
    """k-means (`representation.kmeans` under `seed`) of codes [N, d] for each k in `ks` ->
    {"k": ks, "inertia": W per k, "silhouette": mean silhouette per k}."""
    x = _codes(codes)
    assignments = [kmeans(x, k, seed=seed) for k in ks]
    return {
        "k": list(ks),
        "inertia": [inertia(x, a) for a in assignments],
        "silhouette": [silhouette(x, a) for a in assignments],
    }


def parse_k_range(text: str, num_items: int) -> range:
    """'a:b' -> range(a, min(b, num_items) + 1): both ends included, the end cut at the number of items;
    a SetaeError unless 2 <= a <= b and a <= num_items."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match or not 2 <= int(match[1]) <= int(match[2]):
        raise SetaeError(f"--k-range {text!r}: expected A:B with 2 <= A <= B, e.g. 2:20")
    if int(match[1]) > num_items:
        raise SetaeError(f"--k-range {text!r}: starts above the number of items ({num_items})")
    return range(int(match[1]), min(int(match[2]), num_items) + 1)


def nearest_members(codes, assignment, num_clusters: int, count: int = GALLERY) -> list[list[int]]:
    """For each cluster id 0..num_clusters-1, the indices of its (at most `count`) codes nearest its mean,
    nearest first (ties by index); [] for an empty cluster."""
    x = _codes(codes)
    a = torch.as_tensor(_as_array(assignment, "assignment", 1), dtype=torch.long)
    out = []
    for c in range(num_clusters):
        members = torch.nonzero(a == c).squeeze(1)
        distances = (x[members] - x[members].mean(0)).square().sum(1)
        order = torch.sort(distances, stable=True).indices[:count]
        out.append(members[order].tolist())
    return out


def write_clusters(
    codes,
    items: Sequence,
    labels: Sequence[int],
    k: int,
    ks: Sequence[int],
    out: str | Path,
    seed: int = 0,
    strokes: bool = False,
    frame=None,
) -> dict:
    """Cluster codes [N, d] of `items` into k groups and write into `out`: clusters.json, the selection
    curve over `ks` (cluster_selection.png) and one gallery per cluster (cluster_00.png, ...) of its
    members nearest the centre, drawn as point sets or, with `strokes`, as stroke-3 drawings, all in one
    `plots.Frame` (default: guessed from the items). Labels (all >= 0) add NMI and ARI of the clusters
    against them. Returns the JSON's contents."""
    from setae.evaluation.plots import Frame, plot_cluster_members, plot_cluster_selection
    from setae.fileio import write_json

    x = _codes(codes)
    if not 2 <= k <= len(x):
        raise SetaeError(f"--k {k}: must be between 2 and the number of items ({len(x)})")
    assignment = kmeans(x, k, seed=seed)
    curve = selection_curve(x, ks, seed=seed)
    best = curve["k"][int(np.argmax(curve["silhouette"]))]
    result = {
        "k": k,
        "items": assignment.tolist(),
        "sizes": np.bincount(assignment, minlength=k).tolist(),
        "inertia": inertia(x, assignment),
        "silhouette": silhouette(x, assignment),
        "selection": curve,
        "best_k_silhouette": best,
    }
    if min(labels) >= 0:
        nmi = normalized_mutual_info_score(labels, assignment, average_method="arithmetic")
        result["nmi"], result["ari"] = float(nmi), float(adjusted_rand_score(labels, assignment))
    out = Path(out)
    frame = frame or Frame.guess(items, strokes)
    width = max(2, len(str(k - 1)))
    for c, members in enumerate(nearest_members(x, assignment, k)):
        titles = [f"#{i}" + (f" ({labels[i]})" if labels[i] >= 0 else "") for i in members]
        title = f"cluster {c}: {result['sizes'][c]} items, the {len(members)} nearest its centre"
        plot_cluster_members(
            [items[i] for i in members], out / f"cluster_{c:0{width}d}.png", title, titles, strokes, frame
        )
    for stale in out.glob("cluster_*.png"):  # galleries of an earlier, larger k
        match = re.fullmatch(r"cluster_(\d+)\.png", stale.name)
        if match and (int(match[1]) >= k or len(match[1]) != width):
            stale.unlink()
    plot_cluster_selection(
        curve["k"], curve["inertia"], curve["silhouette"], k, out / "cluster_selection.png"
    )
    write_json(out / "clusters.json", result)
    return result

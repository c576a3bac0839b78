"""Distances between target and reconstructed sets, for evaluation (float64, no gradients).

Per pair of sets X (target, n points) and Y (output, m points):

- chamfer: mean_x min_y |x - y|^2 + mean_y min_x |x - y|^2;
- hungarian: mean of |x - y|^2 over an optimal matching of min(n, m) pairs;
  both are 0 when both sets are empty and c^2 (OSPA's cost of an unmatched point) when exactly one is, so an
  empty output never scores as a perfect one;
- ospa: OSPA with p = 2 and cut-off c,
      sqrt((min over matchings pi of sum_i min(|x_i - y_pi(i)|^2, c^2) + c^2 |n - m|) / max(n, m)),
  where pi is optimal for the cut-off cost; 0 when both sets are empty and c when exactly one is;
- size_error: m - n.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from setae.datasets.batch import SetBatch
from setae.errors import SetaeError
from setae.nn.losses import chamfer_from_sq_dist, pairwise_sq_dist
from setae.nn.matching import hungarian_match, match_indices

# Sets per padded chunk: enough to amortise per-call overhead while the [chunk, n, m] distances stay in cache.
_CHUNK = 32


def _batch(sets: Sequence[Tensor]) -> SetBatch:
    return SetBatch.from_sets([torch.as_tensor(s).to("cpu", torch.float64) for s in sets])


def _matched_sum(cost: Tensor, n: Tensor, m: Tensor) -> Tensor:
    """Sum of cost [batch, n, m] over an optimal matching of each item's valid block, [batch]."""
    batch_idx, rows, cols = match_indices(hungarian_match(cost, n, m))
    return cost.new_zeros(cost.shape[0]).index_add(0, batch_idx, cost[batch_idx, rows, cols])


def _chunk_distances(target: Sequence[Tensor], output: Sequence[Tensor], cutoff: float) -> dict[str, Tensor]:
    t, o = _batch(target), _batch(output)
    n, m = t.sizes, o.sizes
    dist = pairwise_sq_dist(t.points, o.points)
    ospa_total = _matched_sum(dist.clamp(max=cutoff**2), n, m) + cutoff**2 * (n - m).abs()
    one_empty = (n == 0) != (m == 0)
    chamfer = chamfer_from_sq_dist(dist, t.padding_mask, o.padding_mask)
    hungarian = _matched_sum(dist, n, m) / torch.minimum(n, m).clamp(min=1)
    return {
        "chamfer": torch.where(one_empty, cutoff**2, chamfer),
        "hungarian": torch.where(one_empty, cutoff**2, hungarian),
        "ospa": (ospa_total / torch.maximum(n, m).clamp(min=1)).sqrt(),
        "size_error": m - n,
    }


def set_distances(
    target: Sequence[Tensor], output: Sequence[Tensor], ospa_cutoff: float = 0.1
) -> dict[str, np.ndarray]:
    """Per-set `chamfer`, `hungarian`, `ospa` (float64 [num_sets]) and `size_error` (int64 [num_sets])
    between target sets [n_i, dim] and output sets [m_i, dim]; see the module docstring."""
    if len(target) != len(output):
        raise SetaeError(f"got {len(target)} target sets but {len(output)} output sets")
    if len(target) == 0:
        raise SetaeError("cannot compute set distances over zero sets")
    with torch.no_grad():
        chunks = [
            _chunk_distances(target[i : i + _CHUNK], output[i : i + _CHUNK], ospa_cutoff)
            for i in range(0, len(target), _CHUNK)
        ]
    return {key: torch.cat([c[key] for c in chunks]).numpy() for key in chunks[0]}


def summarize(distances: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of `chamfer`, `hungarian` and `ospa`; `size_acc` = fraction of sets with m = n and
    `size_mae` = mean |m - n|."""
    size_error = distances["size_error"]
    summary = {key: float(np.mean(distances[key])) for key in ("chamfer", "hungarian", "ospa")}
    summary["size_acc"] = float(np.mean(size_error == 0))
    summary["size_mae"] = float(np.mean(np.abs(size_error)))
    return summary

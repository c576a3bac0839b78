"""Reconstruction losses between padded batches of sets, invariant to the order of points.

Both losses take x [batch, n, dim], y [batch, m, dim] and boolean padding masks [batch, n], [batch, m]
(True = padding, anywhere in the row). Padded rows never affect values or gradients. Neither loss charges
a difference in set sizes: that is the job of a size loss, and of OSPA at evaluation time.
"""

from __future__ import annotations

from functools import reduce

import torch
from torch import Tensor

from setae.nn.matching import hungarian_match, match_indices

REDUCTIONS = ("none", "mean", "sum")


def pairwise_sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances [batch, n, m]: D[k, i, j] = |a[k, i] - b[k, j]|^2 for a [batch, n, dim]
    and b [batch, m, dim].

    Uses differences rather than |a|^2 + |b|^2 - 2 a.b, so it is exact, non-negative, and smooth even where
    points coincide.
    """
    # Summing one [batch, n, m] plane per coordinate is several times faster than reducing the trailing dim
    # of a [batch, n, m, dim] difference.
    coords = zip(a.unbind(-1), b.unbind(-1), strict=True)
    return reduce(Tensor.add_, ((a_k.unsqueeze(2) - b_k.unsqueeze(1)).square() for a_k, b_k in coords))


def _reduce(per_set: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_set
    if reduction == "mean":
        return per_set.mean()
    if reduction == "sum":
        return per_set.sum()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def chamfer_from_sq_dist(dist: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor) -> Tensor:
    """Per-set Chamfer distance [batch] from squared distances dist [batch, n, m] (see `chamfer_loss`)."""
    if dist.numel() == 0:  # n = 0 or m = 0 for every set; summing keeps the graph
        return dist.sum((1, 2))
    x_valid, y_valid = ~x_padding_mask, ~y_padding_mask
    n, m = x_valid.sum(1), y_valid.sum(1)
    dist = dist.masked_fill(x_padding_mask.unsqueeze(2) | y_padding_mask.unsqueeze(1), float("inf"))
    # A point counts only if the other set is non-empty; torch.where (not a product) keeps inf out of grads.
    x_term = torch.where(x_valid & (m > 0).unsqueeze(1), dist.amin(2), 0.0).sum(1) / n.clamp(min=1)
    y_term = torch.where(y_valid & (n > 0).unsqueeze(1), dist.amin(1), 0.0).sum(1) / m.clamp(min=1)
    return x_term + y_term


def chamfer_loss(
    x: Tensor, y: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor, reduction: str = "mean"
) -> Tensor:
    """Chamfer distance per set:

        CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2 + mean_{y in Y} min_{x in X} |x - y|^2.

    Empty sets: CD is 0 when both are empty. When exactly one is empty the nearest-neighbour terms are
    undefined; setae takes the distance to an empty set as 0, so CD is 0 and the size mismatch is left to
    the size loss (and to OSPA when evaluating). Returns [batch] for reduction "none", else a scalar
    (mean or sum over sets).
    """
    return _reduce(chamfer_from_sq_dist(pairwise_sq_dist(x, y), x_padding_mask, y_padding_mask), reduction)


def _valid_first(points: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Reorder rows so each set's points come first (stable); returns the points and the sizes [batch]."""
    order = torch.argsort(padding_mask.to(torch.uint8), dim=1, stable=True)
    points = points.gather(1, order.unsqueeze(-1).expand_as(points))
    return points, (~padding_mask).sum(1)


def hungarian_loss(
    x: Tensor, y: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor, reduction: str = "mean"
) -> Tensor:
    """Mean squared distance over an optimal one-to-one matching, per set:

        H(X, Y) = 1 / min(n, m) * min over injective pi of sum_i |x_i - y_pi(i)|^2,

    over min(n, m) pairs; points left unmatched when n != m are not charged, and H is 0 when either set is
    empty. The matching is computed on the detached cost (`hungarian_match`) and the gradient flows through
    the matched pairs. Returns [batch] for reduction "none", else a scalar (mean or sum over sets).
    """
    x, n = _valid_first(x, x_padding_mask)
    y, m = _valid_first(y, y_padding_mask)
    with torch.no_grad():
        cost = pairwise_sq_dist(x, y)
    batch_idx, rows, cols = match_indices(hungarian_match(cost, n, m), device=x.device)
    pair_dist = (x[batch_idx, rows] - y[batch_idx, cols]).square().sum(-1)
    total = pair_dist.new_zeros(x.shape[0]).index_add(0, batch_idx, pair_dist)
    return _reduce(total / torch.minimum(n, m).clamp(min=1), reduction)

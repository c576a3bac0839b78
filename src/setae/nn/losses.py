"""Reconstruction losses between padded batches of sets, invariant to the order of points.

Every loss takes x [batch, n, dim], y [batch, m, dim] and boolean padding masks [batch, n], [batch, m]
(True = padding, anywhere in the row). Padded rows never affect values or gradients. No loss charges a
difference in set sizes as such: that is the job of a size loss, and of OSPA at evaluation time.

Multiplicities: Chamfer matches every point to its nearest neighbour, so many points of X may map to one
point of Y and it cannot tell a set from the same set with some points duplicated ({a, b} and {a, a, a, b}
are at distance 0). Hungarian (one-to-one pairs) and Sinkhorn (transport of equal mass per point) account
for multiplicities: {a, a, b} and {a, b, b} are at a positive distance under both. Sinkhorn compares
proportions, so X and X with every point doubled are at distance ~0 under it.
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


# Distances per chunk in `chamfer_loss` (two float32 buffers of 64 MiB); a training batch of 64 sets of 342
# points takes one chunk. Smaller chunks were up to 1.3 times faster on 1 thread; on 2 threads of a loaded
# CPU every operation can wait for the second thread, and fewer chunks were as fast or faster
# (benchmarks/results/chamfer.md).
CHAMFER_CHUNK_ELEMENTS = 2**24


def _sq_dist_into(a: Tensor, b: Tensor, out: Tensor, work: Tensor) -> Tensor:
    """`pairwise_sq_dist` of coordinate-major a [dim, batch, n] and b [dim, batch, m], written into `out`
    [batch, n, m] with `work` (alike) as scratch: the same operations in the same order, so bit-identical."""
    torch.sub(a[0].unsqueeze(2), b[0].unsqueeze(1), out=out).square_()
    for a_k, b_k in zip(a[1:], b[1:], strict=True):
        out.add_(torch.sub(a_k.unsqueeze(2), b_k.unsqueeze(1), out=work).square_())
    return out


def _nearest(
    x: Tensor, y: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor, chunk_elements: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For each row of x [batch, n, dim], the squared distance to and index of its nearest valid row of
    y [batch, m, dim], and the same from y to x: ([batch, n], [batch, n], [batch, m], [batch, m]). The
    distance is inf on padded rows and where the other set is empty (the index is then arbitrary)."""
    batch, n, m = x.shape[0], x.shape[1], y.shape[1]
    dtype = torch.result_type(x, y)
    dist_x, dist_y = (
        x.new_full((batch, n), float("inf"), dtype=dtype),
        x.new_full((batch, m), float("inf"), dtype=dtype),
    )
    idx_x, idx_y = x.new_zeros((batch, n), dtype=torch.long), x.new_zeros((batch, m), dtype=torch.long)
    if batch * n * m == 0:
        return dist_x, idx_x, dist_y, idx_y
    # Padded rows of x go to +inf and of y to -inf, so that every distance involving padding is +inf (never
    # nan, whatever the padding holds) without a masking pass over the distances.
    a = torch.where(x_padding_mask.unsqueeze(2), float("inf"), x.to(dtype)).movedim(2, 0).contiguous()
    b = torch.where(y_padding_mask.unsqueeze(2), float("-inf"), y.to(dtype)).movedim(2, 0).contiguous()
    rows = max(1, chunk_elements // (batch * m))
    buffers = x.new_empty((2, batch * min(rows, n) * m), dtype=dtype)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        out, work = (buf[: batch * (stop - start) * m].view(batch, stop - start, m) for buf in buffers)
        block = _sq_dist_into(a[:, :, start:stop], b, out, work)
        torch.min(block, 2, out=(dist_x[:, start:stop], idx_x[:, start:stop]))
        if start == 0:
            torch.min(block, 1, out=(dist_y, idx_y))
            continue
        col_dist, col_idx = block.min(1)
        closer = col_dist < dist_y  # strict: ties keep the earlier chunk's index
        dist_y = torch.minimum(dist_y, col_dist)
        idx_y = torch.where(closer, col_idx + start, idx_y)
    return dist_x, idx_x, dist_y, idx_y


def _nearest_grad(
    grad: Tensor, src: Tensor, dst: Tensor, idx: Tensor, has_nearest: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients w.r.t. src [batch, n, dim] and dst [batch, m, dim] of sum_i grad_i |src_i - dst_idx_i|^2
    over the rows i where has_nearest [batch, n] (elsewhere the distance is inf and counts nothing)."""
    idx = idx.unsqueeze(2).expand(-1, -1, dst.shape[2])
    # torch.where rather than a product: the difference is inf or nan on padding.
    pull = torch.where(has_nearest.unsqueeze(2), 2 * grad.unsqueeze(2) * (src - dst.gather(1, idx)), 0.0)
    return pull, torch.zeros_like(dst).scatter_add(1, idx, -pull)


class _NearestSqDist(torch.autograd.Function):
    """Squared distances [batch, n] from each valid x_i to its nearest valid y and [batch, m] from each valid
    y_j to its nearest valid x (inf on padded rows and where the other set is empty), for x [batch, n, dim],
    y [batch, m, dim] and padding masks [batch, n], [batch, m].

    Forward: the distances are computed as in `pairwise_sq_dist` (bit-identical), in chunks of rows of x
    with about `chunk_elements` distances each (at least one row: max(chunk_elements, batch * m)); each
    chunk gives its rows' minima over y outright and updates a running minimum over x for every column.
    Only the minima and their indices are kept.

    Backward: d/dx_i |x_i - y_k|^2 = 2 (x_i - y_k) at the saved nearest index k, added into y with
    scatter_add; differentiable, so double backward works. It equals the gradient of autograd through amin
    up to the order of floating-point sums, except at a tie, where amin's autograd splits the gradient
    evenly among the nearest points and this gives it all to one of them (a measure-zero difference).
    """

    @staticmethod
    def forward(ctx, x, y, x_padding_mask, y_padding_mask, chunk_elements):
        dist_x, idx_x, dist_y, idx_y = _nearest(x, y, x_padding_mask, y_padding_mask, chunk_elements)
        ctx.save_for_backward(x, y, x_padding_mask, y_padding_mask, idx_x, idx_y)
        return dist_x, dist_y

    @staticmethod
    def backward(ctx, grad_x, grad_y):
        x, y, x_padding_mask, y_padding_mask, idx_x, idx_y = ctx.saved_tensors
        x_valid, y_valid = ~x_padding_mask, ~y_padding_mask
        x_to_y = _nearest_grad(grad_x, x, y, idx_x, x_valid & y_valid.any(1, keepdim=True))
        y_to_x = _nearest_grad(grad_y, y, x, idx_y, y_valid & x_valid.any(1, keepdim=True))
        return x_to_y[0] + y_to_x[1], x_to_y[1] + y_to_x[0], None, None, None


def _chamfer_from_nearest(
    dist_x: Tensor, dist_y: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor
) -> Tensor:
    """Per-set Chamfer distance [batch] from the nearest-neighbour squared distances dist_x [batch, n] and
    dist_y [batch, m] (any value, inf included, on padded rows and where the other set is empty)."""
    x_valid, y_valid = ~x_padding_mask, ~y_padding_mask
    n, m = x_valid.sum(1), y_valid.sum(1)
    # A point counts only if the other set is non-empty; torch.where (not a product) keeps inf out of grads.
    x_term = torch.where(x_valid & (m > 0).unsqueeze(1), dist_x, 0.0).sum(1) / n.clamp(min=1)
    y_term = torch.where(y_valid & (n > 0).unsqueeze(1), dist_y, 0.0).sum(1) / m.clamp(min=1)
    return x_term + y_term


def chamfer_from_sq_dist(dist: Tensor, x_padding_mask: Tensor, y_padding_mask: Tensor) -> Tensor:
    """Per-set Chamfer distance [batch] from squared distances dist [batch, n, m] (see `chamfer_loss`), for
    callers that have the dense matrix anyway; gradients flow through amin."""
    if dist.numel() == 0:  # n = 0 or m = 0 for every set; summing keeps the graph
        return dist.sum((1, 2))
    dist = dist.masked_fill(x_padding_mask.unsqueeze(2) | y_padding_mask.unsqueeze(1), float("inf"))
    return _chamfer_from_nearest(dist.amin(2), dist.amin(1), x_padding_mask, y_padding_mask)


def chamfer_loss(
    x: Tensor,
    y: Tensor,
    x_padding_mask: Tensor,
    y_padding_mask: Tensor,
    reduction: str = "mean",
    chunk_elements: int = CHAMFER_CHUNK_ELEMENTS,
) -> Tensor:
    """Chamfer distance per set:

        CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2 + mean_{y in Y} min_{x in X} |x - y|^2.

    Empty sets: CD is 0 when both are empty. When exactly one is empty the nearest-neighbour terms are
    undefined; setae takes the distance to an empty set as 0, so CD is 0 and the size mismatch is left to
    the size loss (and to OSPA when evaluating). Returns [batch] for reduction "none", else a scalar
    (mean or sum over sets).

    The [batch, n, m] distances are never held whole: `_NearestSqDist` goes through them in chunks of about
    `chunk_elements` and keeps each point's nearest neighbour, through which the gradient flows.
    """
    dist_x, dist_y = _NearestSqDist.apply(x, y, x_padding_mask, y_padding_mask, chunk_elements)
    return _reduce(_chamfer_from_nearest(dist_x, dist_y, x_padding_mask, y_padding_mask), reduction)


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


# Defaults, measured in benchmarks/results/sinkhorn.md on MNIST sets in [0, 1]^2 (see `sinkhorn_loss`).
SINKHORN_EPSILON = 1e-4
SINKHORN_ITERATIONS = 50
# Fraction of the iterations over which epsilon is annealed, and the over-relaxation factor.
_ANNEAL_FRACTION = 0.9
_OVERRELAXATION = 1.8
# exp is many times slower where its result underflows, so exponents at or below this one (counted from the
# largest of a sum) are set to -inf first: the terms dropped are below the rounding of the sum.
_EXP_FLOOR = -80.0


def _exp_(t: Tensor) -> Tensor:
    """exp in place, exponents at or below `_EXP_FLOOR` giving exactly 0."""
    return torch.nn.functional.threshold_(t, _EXP_FLOOR, float("-inf")).exp_()


def _log_uniform(padding_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Log-weights [batch, n] of the uniform distribution on each set's valid rows: -log(size), and -inf on
    padding. An empty set gets 0 on every row instead, which keeps the iterations finite (its plan is
    discarded)."""
    size = (~padding_mask).sum(1, keepdim=True)
    log_w = (-size.clamp(min=1).to(dtype).log()).expand(padding_mask.shape)
    return log_w.masked_fill(padding_mask & (size > 0), float("-inf"))


def _epsilon_schedule(max_cost: Tensor, epsilon: float, iterations: int) -> Tensor:
    """Temperatures [iterations, batch, 1]: geometric from each set's largest cost (at least epsilon) down to
    epsilon over the first `_ANNEAL_FRACTION` of the iterations, then epsilon."""
    start = max_cost.clamp(min=epsilon).unsqueeze(1)
    last_annealed = max(round(iterations * _ANNEAL_FRACTION) - 1, 1)
    steps = torch.arange(iterations, dtype=max_cost.dtype, device=max_cost.device)
    return start * (epsilon / start) ** (steps / last_annealed).clamp(max=1).view(-1, 1, 1)


def _softmin(cost: Tensor, h: Tensor, eps: Tensor, out: Tensor) -> Tensor:
    """-eps * log sum_j exp(h_j - cost_ij / eps), [batch, n], for cost [batch, n, m], h [batch, m] and eps
    [batch, 1], each sum shifted by its largest exponent for stability; `out` (like cost) is overwritten."""
    torch.addcmul(h.unsqueeze(1), cost, -eps.reciprocal().unsqueeze(2), out=out)
    shift = out.amax(2, keepdim=True)
    return -eps * (_exp_(out.sub_(shift)).sum(2).log() + shift.squeeze(2))


def sinkhorn_plan(
    cost: Tensor,
    x_padding_mask: Tensor,
    y_padding_mask: Tensor,
    epsilon: float = SINKHORN_EPSILON,
    iterations: int = SINKHORN_ITERATIONS,
) -> Tensor:
    """Entropic transport plan P [batch, n, m] between the uniform distributions on the valid rows of X and Y
    for the cost [batch, n, m], by log-domain Sinkhorn (the algorithm is described in `sinkhorn_loss`).

    Runs under torch.no_grad() (the caller's autograd mode is restored on return or exception) and returns
    a detached tensor: 0 on padded rows and columns, and everywhere for a set where X or Y is empty. Column
    sums equal 1/m up to rounding; row sums approach 1/n as the iterations converge.
    """
    if epsilon <= 0 or iterations < 1:
        raise ValueError(f"need epsilon > 0 and iterations >= 1, got {epsilon} and {iterations}")
    if cost.numel() == 0:
        return torch.zeros_like(cost)
    with torch.no_grad():
        cost = cost.detach().masked_fill(x_padding_mask.unsqueeze(2) | y_padding_mask.unsqueeze(1), 0.0)
        cost_t = cost.transpose(1, 2).contiguous()  # so that both updates reduce over the last dimension
        work = torch.empty_like(cost)
        log_a, log_b = _log_uniform(x_padding_mask, cost.dtype), _log_uniform(y_padding_mask, cost.dtype)
        f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
        for k, eps in enumerate(_epsilon_schedule(cost.amax((1, 2)), epsilon, iterations)):
            # Plain steps first (f, g hold no estimate yet) and last (so the column sums come out exact).
            omega = _OVERRELAXATION if 0 < k < iterations - 1 else 1.0
            f_new = _softmin(cost, log_b + g / eps, eps, work)
            f = f_new if omega == 1.0 else torch.lerp(f, f_new, omega)
            g_new = _softmin(cost_t, log_a + f / eps, eps, work.view_as(cost_t))
            g = g_new if omega == 1.0 else torch.lerp(g, g_new, omega)
        eps = eps.unsqueeze(2)
        log_plan = (f.unsqueeze(2) + g.unsqueeze(1) - cost) / eps + log_a.unsqueeze(2) + log_b.unsqueeze(1)
        empty = (x_padding_mask.all(1) | y_padding_mask.all(1)).view(-1, 1, 1)
        return _exp_(log_plan).masked_fill_(empty, 0.0)


def sinkhorn_loss(
    x: Tensor,
    y: Tensor,
    x_padding_mask: Tensor,
    y_padding_mask: Tensor,
    reduction: str = "mean",
    epsilon: float = SINKHORN_EPSILON,
    iterations: int = SINKHORN_ITERATIONS,
) -> Tensor:
    """Transport cost of the entropic optimal transport plan between the uniform distributions on X and Y:

        S(X, Y) = <P, C> = sum_ij P_ij |x_i - y_j|^2,   C_ij = |x_i - y_j|^2,
        P = argmin { <P, C> + epsilon KL(P | a b^T) : P >= 0, P 1 = a, P^T 1 = b },

    with a_i = 1/n on the n valid points of X and b_j = 1/m on the m valid points of Y (padding has weight 0,
    log-weight -inf, so it moves no mass and changes no value or gradient). Balanced transport: when n != m
    every point of X still sends 1/n and every point of Y receives 1/m, so no point goes uncharged (unlike
    `hungarian_loss`), and S compares the two point distributions: X and X with every point doubled are at
    distance ~0. S is 0 when either set is empty. Returns [batch] for reduction "none", else a scalar (mean
    or sum over sets).

    Solver: log-domain Sinkhorn on the dual potentials f [n], g [m], with P_ij = a_i b_j exp((f_i + g_j -
    C_ij) / eps). Each iteration updates

        f_i <- -eps log sum_j exp(log b_j + (g_j - C_ij) / eps),
        g_j <- -eps log sum_i exp(log a_i + (f_i - C_ij) / eps),

    each logsumexp shifted by its largest term, over-relaxed (f <- (1 - w) f + w f_new, w = 1.8, except on
    the first and last iteration), with epsilon-scaling: eps goes geometrically from each set's largest cost
    C_ij down to `epsilon` over the first 90% of the iterations, then stays there. The final plain g-update
    makes P's column sums b up to rounding; the row sums carry the remaining error. Cost: O(iterations *
    batch * n * m) time and a few [batch, n, m] buffers; on 2 shared CPU threads, 64 sets padded to 342
    points took 30-140 ms an iteration, depending on the load (benchmarks/results/sinkhorn.md).

    Accuracy: once converged, OT <= S <= OT + epsilon log min(n, m), where OT is the unregularised transport
    cost min <P, C>; for n = m, OT is the Hungarian value (1/n) min over permutations pi of
    sum_i |x_i - y_pi(i)|^2 (Birkhoff), so S approaches `hungarian_loss` as epsilon -> 0.

    Gradient: the potentials are solved without a graph (`sinkhorn_plan`) and the gradient flows through C
    only, with P held fixed: dS/dx_i = sum_j P_ij 2 (x_i - y_j). By the envelope theorem this is the exact
    gradient of the entropic objective <P, C> + epsilon KL(P | a b^T) at the converged plan, which differs
    from S by at most epsilon log min(n, m); it ignores how P moves with C, as `hungarian_loss` does with
    its fixed matching.

    Defaults, for coordinates in [0, 1]^2 where good reconstructions have mean squared distance ~1e-3:
    epsilon = 1e-4 blurs at sqrt(epsilon) = 0.01, under MNIST's pixel spacing 1/27; converged, S exceeds
    the Hungarian value of good MNIST reconstructions by ~3% (18% at 3e-4, 107% at 1e-3). With 50
    iterations, S is within ~1% of its converged value on average over sets and the gradient within ~10%.
    Fewer than ~30 iterations anneal too fast for the over-relaxation and are not advised; in float32 keep
    epsilon above ~1e-5 times the largest cost.
    """
    # Padded rows are zeroed first: a masked non-finite cost would still send NaN back through (x − y)².
    x, y = x.masked_fill(x_padding_mask[..., None], 0.0), y.masked_fill(y_padding_mask[..., None], 0.0)
    cost = pairwise_sq_dist(x, y).masked_fill(x_padding_mask.unsqueeze(2) | y_padding_mask.unsqueeze(1), 0.0)
    plan = sinkhorn_plan(cost, x_padding_mask, y_padding_mask, epsilon, iterations)
    return _reduce((plan * cost).sum((1, 2)), reduction)

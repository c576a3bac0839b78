"""Optimal one-to-one matching between two sets.

For an n x m cost matrix C, the optimal assignment pairs min(n, m) rows with distinct columns (or columns
with distinct rows when m < n):

    pi* = argmin over injective maps pi of  sum_i C[i, pi(i)],

solved exactly by `scipy.optimize.linear_sum_assignment` (a shortest augmenting path method, O(n^3)).
Matching is not differentiable; losses compute it on detached costs and differentiate through the pairs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

Match = tuple[np.ndarray, np.ndarray]

# Below roughly this much work (sum of n * m * min(n, m) over the batch) one thread beats the pool's overhead.
_PARALLEL_MIN_WORK = 200_000


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def _pool(pid: int) -> ThreadPoolExecutor:
    """One pool per process: a forked child (e.g. a DataLoader worker) cannot use its parent's threads."""
    return ThreadPoolExecutor(max_workers=available_cpus(), thread_name_prefix="setae-match")


def _solve(cost: np.ndarray) -> Match:
    if cost.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64), cols.astype(np.int64)


def hungarian_match(cost: torch.Tensor, sizes_a: torch.Tensor, sizes_b: torch.Tensor) -> list[Match]:
    """Optimal assignment for each item of a batch of padded cost matrices.

    cost [batch, n, m] (rows: set a, columns: set b); sizes_a, sizes_b [batch] long. Item b is solved on its
    valid block `cost[b, :sizes_a[b], :sizes_b[b]]` only, so padding never takes part. Returns, per item,
    int64 arrays (rows, cols) of length min(n_b, m_b), rows sorted; both are empty when either set is.
    The cost is detached and solved in float64 on the CPU: float32 and float64 costs go to scipy as they
    are, which converts each valid block exactly (the padded batch is never converted whole); other dtypes
    are converted to float64 first. Large batches are split across a thread pool (scipy releases the GIL);
    the result does not depend on the number of threads.
    """
    blocks = cost.detach().cpu()
    if blocks.dtype not in (torch.float32, torch.float64):
        blocks = blocks.double()
    blocks = blocks.numpy()
    na, nb = sizes_a.tolist(), sizes_b.tolist()
    items = [blocks[i, : na[i], : nb[i]] for i in range(len(blocks))]
    work = sum(c.size * min(c.shape) for c in items)
    workers = min(available_cpus(), len(items))
    if workers < 2 or work < _PARALLEL_MIN_WORK:
        return [_solve(c) for c in items]
    chunks = np.array_split(np.arange(len(items)), workers)
    solved = _pool(os.getpid()).map(lambda idx: [_solve(items[i]) for i in idx], chunks)
    return [match for chunk in solved for match in chunk]


def match_indices(
    matches: list[Match], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flatten per-item matches into long tensors (batch_idx, row_idx, col_idx) [total pairs] for gathering,
    e.g. `a[batch_idx, row_idx]` and `b[batch_idx, col_idx]` are the matched points."""
    empty = np.empty(0, dtype=np.int64)
    batch_idx = np.repeat(np.arange(len(matches), dtype=np.int64), [len(r) for r, _ in matches])
    rows = np.concatenate([empty, *(r for r, _ in matches)])
    cols = np.concatenate([empty, *(c for _, c in matches)])
    return tuple(torch.from_numpy(t).to(device) for t in (batch_idx, rows, cols))

"""Shared test helpers: random sets, permutations, and brute-force reference implementations."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


def random_sets(sizes: list[int], dim: int, seed: int = 0) -> list:
    """Sets of the given sizes with float32 coordinates in [0, 1), reproducible from `seed`."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, dim, generator=g) for n in sizes]


def permute_rows(points, size: int, seed: int):
    """`points` [N, D] with its first `size` rows shuffled (padding rows stay in place)."""
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    out = points.clone()
    out[:size] = points[perm]
    return out


@st.composite
def set_pairs(draw, max_size: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """A batch of 1-3 pairs (X, Y) of float64 sets in R^dim, sizes 0..max_size."""
    dim = draw(st.integers(1, 3))
    coords = st.floats(-10, 10, allow_nan=False, width=64)
    sizes = st.integers(0, max_size)
    num_sets = 2 * draw(st.integers(1, 3))
    points = [draw(arrays(np.float64, (draw(sizes), dim), elements=coords)) for _ in range(num_sets)]
    return list(zip(points[::2], points[1::2], strict=True))


def brute_force_matching(cost: np.ndarray) -> float:
    """min over injective maps of the summed cost, min(n, m) pairs, by enumeration."""
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        return 0.0
    return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))


def sq_dist_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def chamfer_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) == 0 or len(y) == 0:
        return 0.0
    to_y = sum(min(float(((a - b) ** 2).sum()) for b in y) for a in x) / len(x)
    to_x = sum(min(float(((a - b) ** 2).sum()) for a in x) for b in y) / len(y)
    return to_y + to_x


def pad(sets: list[np.ndarray], n: int, fill: float = 0.0, scatter: bool = False) -> tuple[torch.Tensor, ...]:
    """[B, n, D] float64 points and padding mask; padded rows hold `fill`. With `scatter`, the valid rows
    sit at random positions instead of first."""
    rng = np.random.default_rng(0)
    points = torch.full((len(sets), n, sets[0].shape[1]), fill, dtype=torch.float64)
    mask = torch.ones(len(sets), n, dtype=torch.bool)
    for i, s in enumerate(sets):
        rows = np.sort(rng.choice(n, len(s), replace=False)) if scatter else np.arange(len(s))
        points[i, rows] = torch.from_numpy(s)
        mask[i, rows] = False
    return points, mask


def gradcheck_inputs(seed: int, uniform: bool = False) -> tuple[torch.Tensor, ...]:
    """Float64 x [3, 4, 2], y [3, 5, 2] (requiring grad; normal, or uniform in [0, 1)) and their padding
    masks, with sizes (4, 2, 3) and (3, 5, 1)."""
    g = torch.Generator().manual_seed(seed)
    draw = torch.rand if uniform else torch.randn
    x = draw(3, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = draw(3, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    xm = torch.arange(4) >= torch.tensor([4, 2, 3])[:, None]
    ym = torch.arange(5) >= torch.tensor([3, 5, 1])[:, None]
    return x, y, xm, ym


# A small set autoencoder's config for tests: fast, with every architecture's knobs at their smallest.
SMALL_MODEL = dict(
    point_dim=2,
    max_size=12,
    latent_dim=6,
    encoder_dim=16,
    decoder_dim=16,
    encoder_layers=1,
    decoder_layers=1,
    encoder_inducing=3,
    decoder_inducing=3,
    decoder_init_dim=4,
    point_sigma=1 / 27,
)

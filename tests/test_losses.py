"""Chamfer and Hungarian losses: exact values, invariance to order and padding, empty sets, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import brute_force_matching, chamfer_double_loop, gradcheck_inputs, pad, set_pairs, sq_dist_np
from setae.nn import matching
from setae.nn.losses import (
    _NearestSqDist,
    chamfer_from_sq_dist,
    chamfer_loss,
    hungarian_loss,
    pairwise_sq_dist,
)
from setae.nn.matching import hungarian_match, match_indices

LOSSES = {"chamfer": chamfer_loss, "hungarian": hungarian_loss}


def per_set(loss, pairs: list[tuple[np.ndarray, np.ndarray]], extra: int = 0, **kwargs) -> torch.Tensor:
    xs, ys = zip(*pairs, strict=True)
    x, xm = pad(list(xs), max(len(s) for s in xs) + extra, **kwargs)
    y, ym = pad(list(ys), max(len(s) for s in ys) + extra, **kwargs)
    return loss(x, y, xm, ym, reduction="none")


def close(a: torch.Tensor, b) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=1e-10, atol=1e-10)


def test_pairwise_sq_dist_is_exact_and_non_negative():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, 3, generator=g)
    dist = pairwise_sq_dist(a, b.double())
    expected = torch.stack([torch.tensor(sq_dist_np(a[i].numpy(), b[i].double().numpy())) for i in range(2)])
    close(dist, expected)
    assert (pairwise_sq_dist(a, a).diagonal(dim1=1, dim2=2) == 0).all()


@settings(max_examples=60, deadline=None)
@given(pairs=set_pairs())
def test_chamfer_equals_double_loop(pairs):
    close(per_set(chamfer_loss, pairs), [chamfer_double_loop(x, y) for x, y in pairs])


@settings(max_examples=60, deadline=None)
@given(pairs=set_pairs(max_size=5))
def test_hungarian_equals_brute_force(pairs):
    expected = [brute_force_matching(sq_dist_np(x, y)) / max(min(len(x), len(y)), 1) for x, y in pairs]
    close(per_set(hungarian_loss, pairs), expected)


@settings(max_examples=40, deadline=None)
@given(pairs=set_pairs(), seed=st.integers(0, 2**16))
def test_invariant_to_permutations_of_either_set(pairs, seed):
    rng = np.random.default_rng(seed)
    shuffled = [(rng.permutation(x), rng.permutation(y)) for x, y in pairs]
    for loss in LOSSES.values():
        close(per_set(loss, shuffled), per_set(loss, pairs))


@settings(max_examples=40, deadline=None)
@given(pairs=set_pairs(), extra=st.integers(1, 4))
def test_padding_is_ignored_even_with_garbage(pairs, extra):
    for loss in LOSSES.values():
        reference = per_set(loss, pairs)
        close(per_set(loss, pairs, extra=extra, fill=1e6), reference)
        close(per_set(loss, pairs, extra=extra, fill=-3e5, scatter=True), reference)


@settings(max_examples=30, deadline=None)
@given(pairs=set_pairs())
def test_batch_of_different_sizes_equals_sets_one_by_one(pairs):
    for loss in LOSSES.values():
        close(per_set(loss, pairs), torch.cat([per_set(loss, [pair]) for pair in pairs]))


@pytest.mark.parametrize("name", list(LOSSES))
def test_reductions_are_consistent(name):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 6, 2, generator=g), torch.randn(4, 5, 2, generator=g)
    xm = torch.arange(6) >= torch.tensor([0, 1, 6, 3])[:, None]
    ym = torch.arange(5) >= torch.tensor([2, 0, 5, 4])[:, None]
    loss = LOSSES[name]
    values = loss(x, y, xm, ym, reduction="none")
    assert values.shape == (4,) and values.dtype == torch.float32
    close(loss(x, y, xm, ym), values.mean())
    close(loss(x, y, xm, ym, reduction="sum"), values.sum())
    with pytest.raises(ValueError, match="reduction"):
        loss(x, y, xm, ym, reduction="max")


@pytest.mark.parametrize("name", list(LOSSES))
def test_empty_sets_give_zero(name):
    x, y = torch.ones(3, 2, 2), torch.ones(3, 2, 2) * 5
    xm = torch.tensor([[True, True], [True, True], [False, False]])  # X sizes 0, 0, 2
    ym = torch.tensor([[True, True], [False, True], [True, True]])  # Y sizes 0, 1, 0
    close(LOSSES[name](x, y, xm, ym, reduction="none"), [0.0, 0.0, 0.0])
    # Batches whose sets are all empty, down to zero rows.
    for n, m in [(0, 0), (0, 3), (3, 0)]:
        out = LOSSES[name](
            torch.zeros(2, n, 2),
            torch.zeros(2, m, 2),
            torch.ones(2, n, dtype=torch.bool),
            torch.ones(2, m, dtype=torch.bool),
            reduction="none",
        )
        close(out, [0.0, 0.0])


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck(name, seed):
    # Random continuous points have unique nearest neighbours and a unique optimal matching, so both losses
    # are smooth around them.
    x, y, xm, ym = gradcheck_inputs(seed)
    loss = LOSSES[name]
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, xm, ym, reduction="none"), (x, y), eps=1e-6)


def test_gradcheck_pairwise_sq_dist():
    x, y, _, _ = gradcheck_inputs(2)
    assert torch.autograd.gradcheck(pairwise_sq_dist, (x, y), eps=1e-6)


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_finite_for_coincident_points_and_empty_sets(name):
    base = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    x = torch.stack([base, base, base]).requires_grad_(True)
    y = torch.stack([base, base, base]).requires_grad_(True)
    xm = torch.tensor([[False, False, False], [True, True, True], [False, False, True]])
    ym = torch.tensor([[False, False, False], [False, False, True], [True, True, True]])
    LOSSES[name](x, y, xm, ym).backward()
    for t in (x, y):
        assert t.grad is not None and torch.isfinite(t.grad).all()
        assert (t.grad == 0).all()  # every term is 0 at its minimum, and padding gets no gradient
    empty = torch.zeros(2, 0, 2, requires_grad=True)
    mask = torch.ones(2, 0, dtype=torch.bool)
    LOSSES[name](empty, empty, mask, mask).backward()
    assert empty.grad is not None and empty.grad.shape == (2, 0, 2)


def dense_chamfer(x, y, xm, ym):
    """The dense reference [batch]: the full distance matrix, amin both ways, autograd through amin."""
    return chamfer_from_sq_dist(pairwise_sq_dist(x, y), xm, ym)


def dense_nearest(x, y, xm, ym) -> tuple[torch.Tensor, torch.Tensor]:
    dist = pairwise_sq_dist(x, y).masked_fill(xm.unsqueeze(2) | ym.unsqueeze(1), float("inf"))
    dist = torch.nn.functional.pad(dist, (0, 1, 0, 1), value=float("inf"))  # so that amin works for n, m = 0
    return dist.amin(2)[:, :-1], dist.amin(1)[:, :-1]


def random_batch(seed: int, extra: int = 0, fill: float = 0.0, dim: int = 2):
    """Padded float64 x [4, n, dim], y [4, m, dim] of normal points requiring grad, with set sizes 0..7 that
    include an empty set and a singleton on each side, and their padding masks."""
    rng = np.random.default_rng(seed)
    sizes_x, sizes_y = rng.permutation([0, 1, 5, 7]), rng.permutation([0, 1, 6, 3])
    xs = [rng.standard_normal((k, dim)) for k in sizes_x]
    ys = [rng.standard_normal((k, dim)) for k in sizes_y]
    x, xm = pad(xs, 7 + extra, fill=fill, scatter=extra > 0)
    y, ym = pad(ys, 6 + extra, fill=fill, scatter=extra > 0)
    return x.requires_grad_(True), y.requires_grad_(True), xm, ym


@settings(max_examples=40, deadline=None)
@given(pairs=set_pairs(), extra=st.integers(0, 3), chunk=st.sampled_from([1, 5, 2**22]))
def test_chunked_nearest_equals_dense_and_double_loop(pairs, extra, chunk):
    # chunk 1 takes one row of x per chunk, so the running column minimum crosses many chunks.
    xs, ys = zip(*pairs, strict=True)
    x, xm = pad(list(xs), max(len(s) for s in xs) + extra, fill=-7.0, scatter=True)
    y, ym = pad(list(ys), max(len(s) for s in ys) + extra, fill=-7.0, scatter=True)
    got = _NearestSqDist.apply(x, y, xm, ym, chunk)
    for a, b in zip(got, dense_nearest(x, y, xm, ym), strict=True):
        assert torch.equal(a, b)
    values = chamfer_loss(x, y, xm, ym, reduction="none", chunk_elements=chunk)
    assert torch.equal(values, dense_chamfer(x, y, xm, ym))
    close(values, [chamfer_double_loop(a, b) for a, b in pairs])


@pytest.mark.parametrize("chunk", [1, 16, 2**22])
def test_chunked_forward_is_bit_identical_to_dense_in_float32(chunk):
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(6, 40, 3, generator=g), torch.rand(6, 33, 3, generator=g)
    xm = torch.arange(40) >= torch.tensor([40, 0, 1, 17, 39, 25])[:, None]
    ym = torch.arange(33) >= torch.tensor([33, 5, 0, 1, 32, 20])[:, None]
    assert torch.equal(
        chamfer_loss(x, y, xm, ym, reduction="none", chunk_elements=chunk), dense_chamfer(x, y, xm, ym)
    )


@pytest.mark.parametrize("chunk", [1, 7, 2**22])
@pytest.mark.parametrize("seed", range(4))
def test_gradient_equals_dense_autograd(chunk, seed):
    # Normal points have unique nearest neighbours, where the index-based backward and amin's agree.
    x, y, xm, ym = random_batch(seed, dim=1 + seed % 3)
    weights = torch.rand(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    got = torch.autograd.grad(
        (chamfer_loss(x, y, xm, ym, reduction="none", chunk_elements=chunk) * weights).sum(), (x, y)
    )
    expected = torch.autograd.grad((dense_chamfer(x, y, xm, ym) * weights).sum(), (x, y))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in got)


@pytest.mark.parametrize("chunk", [1, 2**22])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_nearest_sq_dist(chunk, seed):
    x, y, xm, ym = gradcheck_inputs(seed)
    xm = xm.clone()
    xm[2] = True  # an empty set, whose partner's distances are inf

    def finite(a, b):  # gradcheck's finite differences need finite outputs
        dist_x, dist_y = _NearestSqDist.apply(a, b, xm, ym, chunk)
        return dist_x.masked_fill(dist_x.isinf(), 0.0), dist_y.masked_fill(dist_y.isinf(), 0.0)

    assert torch.autograd.gradcheck(finite, (x, y), eps=1e-6)
    assert torch.autograd.gradgradcheck(finite, (x, y), eps=1e-6)


@pytest.mark.parametrize("fill", [0.0, -3e5, float("nan"), float("inf")])
@pytest.mark.parametrize("seed", [0, 1])
def test_padding_changes_no_value_or_gradient(fill, seed):
    x, y, xm, ym = random_batch(seed)
    values = chamfer_loss(x, y, xm, ym, reduction="none", chunk_elements=3)
    grads = torch.autograd.grad(values.sum(), (x, y))
    for extra in (1, 4):
        xp, yp, xpm, ypm = random_batch(seed, extra=extra, fill=fill)
        values_p = chamfer_loss(xp, yp, xpm, ypm, reduction="none", chunk_elements=3)
        close(values_p, values)
        grads_p = torch.autograd.grad(values_p.sum(), (xp, yp))
        for g, gp, mask, mask_p in zip(grads, grads_p, (xm, ym), (xpm, ypm), strict=True):
            assert (gp[mask_p] == 0).all()
            close(gp[~mask_p], g[~mask])


def test_hungarian_match_handles_empty_and_rectangular_blocks():
    cost = torch.tensor([[[0.0, 5.0, 1.0], [5.0, 0.0, 9.0]]]).expand(4, 2, 3)
    matches = hungarian_match(cost, torch.tensor([2, 0, 2, 1]), torch.tensor([3, 2, 0, 1]))
    rows, cols = matches[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    assert all(len(r) == len(c) == 0 for r, c in matches[1:3])
    assert matches[3][0].tolist() == [0] and matches[3][1].tolist() == [0]
    batch_idx, row_idx, col_idx = match_indices(matches)
    assert batch_idx.tolist() == [0, 0, 3] and row_idx.tolist() == [0, 1, 0] and col_idx.tolist() == [0, 1, 0]
    assert all(t.numel() == 0 and t.dtype == torch.long for t in match_indices([]))


def test_hungarian_match_threaded_equals_sequential(monkeypatch):
    g = torch.Generator().manual_seed(3)
    cost = torch.rand(40, 30, 30, generator=g)
    sizes_a, sizes_b = torch.randint(0, 31, (40,), generator=g), torch.randint(0, 31, (40,), generator=g)
    monkeypatch.setattr(matching, "_PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(matching, "available_cpus", lambda: 4)
    threaded = hungarian_match(cost, sizes_a, sizes_b)
    monkeypatch.setattr(matching, "_PARALLEL_MIN_WORK", float("inf"))
    sequential = hungarian_match(cost, sizes_a, sizes_b)
    for (r1, c1), (r2, c2) in zip(threaded, sequential, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(c1, c2)

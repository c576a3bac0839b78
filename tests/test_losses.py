"""Chamfer and Hungarian losses: exact values, invariance to order and padding, empty sets, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import brute_force_matching, chamfer_double_loop, gradcheck_inputs, pad, set_pairs, sq_dist_np
from setae.nn import matching
from setae.nn.losses import chamfer_loss, hungarian_loss, pairwise_sq_dist
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
    monkeypatch.setattr(matching, "_num_workers", lambda: 4)
    threaded = hungarian_match(cost, sizes_a, sizes_b)
    monkeypatch.setattr(matching, "_PARALLEL_MIN_WORK", float("inf"))
    sequential = hungarian_match(cost, sizes_a, sizes_b)
    for (r1, c1), (r2, c2) in zip(threaded, sequential, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(c1, c2)

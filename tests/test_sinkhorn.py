"""Sinkhorn loss: bounds against exact transport, marginals, invariance to order and padding, empty sets,
gradients (fixed-plan and envelope theorem) and the caller's autograd mode."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import gradcheck_inputs, pad, set_pairs, sq_dist_np
from setae.nn import losses
from setae.nn.losses import (
    SINKHORN_EPSILON,
    chamfer_loss,
    hungarian_loss,
    pairwise_sq_dist,
    sinkhorn_loss,
    sinkhorn_plan,
)

# Enough iterations for the plans of the small sets below to be close to converged; the defaults are
# measured in benchmarks/results/sinkhorn.md.
ITERATIONS = 1000


def unit(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """set_pairs draws coordinates in [-10, 10]; map them to [0, 1], the units the defaults are made for."""
    return [(x / 20 + 0.5, y / 20 + 0.5) for x, y in pairs]


def batch(pairs, extra: int = 0, **kwargs) -> tuple[torch.Tensor, ...]:
    """x, y, x_padding_mask, y_padding_mask for a list of (X, Y), each side padded to its largest + extra."""
    xs, ys = zip(*pairs, strict=True)
    x, xm = pad(list(xs), max(len(s) for s in xs) + extra, **kwargs)
    y, ym = pad(list(ys), max(len(s) for s in ys) + extra, **kwargs)
    return x, y, xm, ym


def plan_of(x, y, xm, ym, **kwargs) -> torch.Tensor:
    return sinkhorn_plan(pairwise_sq_dist(x, y), xm, ym, **kwargs)


def close(a: torch.Tensor, b, tol: float = 1e-10) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=tol, atol=tol)


def uniform(padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[batch, n]: 1/size on valid rows, 0 on padding (and everywhere for an empty set)."""
    valid = (~padding_mask).to(dtype)
    return valid / valid.sum(1, keepdim=True).clamp(min=1)


def row_error(plan: torch.Tensor, xm: torch.Tensor) -> torch.Tensor:
    """L1 distance [batch] of the plan's row sums from the uniform weights (its column sums are exact)."""
    return (plan.sum(2) - uniform(xm, plan.dtype)).abs().sum(1)


def assignment_values(x: np.ndarray, y: np.ndarray) -> list[float]:
    """<P, C> of every vertex of the uniform-marginal transport polytope, sorted, by brute force over
    permutations: X and Y repeated to L = lcm(n, m) points of mass 1/L each, so that (Birkhoff) the
    vertices are (1/L) sum_i C(x_i, y_pi(i)) over the permutations pi of L. The first is the exact OT."""
    n, m = len(x), len(y)
    size = math.lcm(n, m)
    cost = sq_dist_np(np.repeat(x, size // n, 0), np.repeat(y, size // m, 0))
    rows = np.arange(size)
    return sorted(cost[rows, list(p)].sum() / size for p in itertools.permutations(range(size)))


def reference_entropic_plan(x: np.ndarray, y: np.ndarray, epsilon: float) -> np.ndarray:
    """The entropic plan argmin <P, C> + epsilon KL(P | a b^T) under uniform marginals a, b, by textbook
    Sinkhorn-Knopp scaling P = diag(u) K diag(v), K = exp(-C / epsilon), in float64 (no log domain, no
    epsilon-scaling, no over-relaxation), run until the row sums hold to 1e-14 (the column sums are exact
    after each v-update): a plan of this form with both marginals right is the unique minimiser."""
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    kernel = np.exp(-sq_dist_np(x, y) / epsilon)
    u, v = np.ones(len(x)), np.ones(len(y))
    for _ in range(100_000):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
        plan = u[:, None] * kernel * v[None, :]
        if np.abs(plan.sum(1) - a).sum() < 1e-14:
            return plan
    raise AssertionError("the reference Sinkhorn-Knopp did not converge")


# Asymmetric layouts (uniform random points) of sizes whose lcm is at most 6, equal and unequal.
LAYOUTS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (2, 3), (3, 2), (2, 4), (3, 6), (6, 2), (1, 4), (5, 1)]


def layout(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10 * n + m)
    return rng.random((n, 2)), rng.random((m, 2))


@pytest.mark.parametrize(("n", "m"), LAYOUTS)
def test_value_is_the_exact_transport_cost_up_to_epsilon_log_n(n, m):
    # Entropic OT: P_eps is feasible, so OT <= S; and <P_eps, C> + eps KL(P_eps) <= OT + eps KL(P*) with
    # 0 <= KL(P | a b^T) <= log min(n, m) for any plan with marginals a, b, so S <= OT + eps log min(n, m).
    # OT and the next-best vertex of the transport polytope come from the brute force; the vertices are
    # further apart than the bound is wide, so a suboptimal plan or wrong marginals fail.
    x, y = layout(n, m)
    values = assignment_values(x, y)
    exact, width = values[0], SINKHORN_EPSILON * math.log(min(n, m))
    next_best = next((v for v in values if v > exact + 1e-12), math.inf)
    assert next_best - exact > 10 * width  # (for min(n, m) = 1 there is a single plan)
    value = sinkhorn_loss(*batch([(x, y)]), reduction="none", iterations=ITERATIONS).item()
    assert exact - 1e-12 <= value <= exact + width + 1e-12  # 1e-12: float64 rounding of sums of costs <= 2


@pytest.mark.parametrize(("n", "m"), LAYOUTS)
def test_value_is_the_transport_cost_of_the_exact_entropic_plan(n, m):
    # At an epsilon as large as the costs the bound above is wide; the value must then be the transport
    # cost <P, C> of the entropic plan itself (not <P, C> + eps KL, and with marginals 1/n and 1/m).
    epsilon = 0.05
    x, y = layout(n, m)
    plan = reference_entropic_plan(x, y, epsilon)
    expected = float((plan * sq_dist_np(x, y)).sum())
    exact = assignment_values(x, y)[0]
    assert (
        exact - 1e-12 <= expected <= exact + epsilon * math.log(min(n, m)) + 1e-12
    )  # the reference obeys it
    value = sinkhorn_loss(*batch([(x, y)]), reduction="none", epsilon=epsilon, iterations=ITERATIONS)
    close(value, [expected], 1e-9)


@settings(max_examples=60, deadline=None)
@given(pairs=set_pairs(), scale=st.sampled_from([1.0, 1 / 20]), small_epsilon=st.booleans())
def test_plan_has_uniform_marginals_and_no_mass_on_padding(pairs, scale, small_epsilon):
    # Sinkhorn converges slowly where the plan must use costs many epsilons above others (ties, near-empty
    # links), so the default epsilon gets a looser bound than an epsilon as large as the costs.
    x, y, xm, ym = batch([(a * scale, b * scale) for a, b in pairs], extra=1, fill=7.0, scatter=True)
    largest = max([1e-3] + [float(sq_dist_np(a * scale, b * scale).max(initial=0)) for a, b in pairs])
    epsilon, tol = (SINKHORN_EPSILON, 1e-4) if small_epsilon else (largest, 1e-9)
    plan = plan_of(x, y, xm, ym, epsilon=epsilon, iterations=ITERATIONS)
    active = (~xm).any(1) & (~ym).any(1)
    assert (plan >= 0).all() and not plan.requires_grad
    assert (row_error(plan, xm)[active] < tol).all()
    # Column sums are exact up to the rounding of (f + g - C) / epsilon, up to ~1e7 here.
    close(plan.sum(1), uniform(ym, plan.dtype) * active.unsqueeze(1), 1e-8)
    assert (plan[~active] == 0).all() and (plan[xm] == 0).all() and (plan.transpose(1, 2)[ym] == 0).all()
    assert torch.isfinite(sinkhorn_loss(x, y, xm, ym, reduction="none", epsilon=epsilon)).all()


def test_default_iterations_give_close_marginals_on_unit_sets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 60, 2, generator=g), torch.rand(4, 45, 2, generator=g)
    xm = torch.arange(60) >= torch.tensor([60, 50, 30, 10])[:, None]
    ym = torch.arange(45) >= torch.tensor([45, 20, 30, 40])[:, None]
    assert (row_error(plan_of(x, y, xm, ym), xm) < 0.05).all()


@settings(max_examples=40, deadline=None)
@given(pairs=set_pairs(), seed=st.integers(0, 2**16))
def test_invariant_to_permutations_of_either_set(pairs, seed):
    pairs = unit(pairs)
    rng = np.random.default_rng(seed)
    shuffled = [(rng.permutation(x), rng.permutation(y)) for x, y in pairs]
    # Only the order of summations changes; the exponents (f + g - C) / epsilon reach ~1e4.
    expected = sinkhorn_loss(*batch(pairs), reduction="none")
    close(sinkhorn_loss(*batch(shuffled), reduction="none"), expected, 1e-9)


def value_and_grads(x, y, xm, ym) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Per-set values and the gradients of their sum w.r.t. each set's valid points (and padded rows)."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    value = sinkhorn_loss(x, y, xm, ym, reduction="none")
    value.sum().backward()
    valid = [[g[i][~mask[i]] for i in range(len(g))] for g, mask in ((x.grad, xm), (y.grad, ym))]
    padded = [g[mask] for g, mask in ((x.grad, xm), (y.grad, ym))]
    return value.detach(), valid, padded


@settings(max_examples=40, deadline=None)
@given(pairs=set_pairs(), extra=st.integers(1, 4))
def test_padding_is_ignored_even_with_garbage(pairs, extra):
    pairs = unit(pairs)
    value, grads, _ = value_and_grads(*batch(pairs))
    for fill, scatter in ((1e6, False), (-3e5, True), (float("nan"), False), (float("inf"), True)):
        padded_value, padded_grads, padding_grads = value_and_grads(
            *batch(pairs, extra=extra, fill=fill, scatter=scatter)
        )
        close(padded_value, value)
        for a, b in zip(padded_grads, grads, strict=True):
            for ga, gb in zip(a, b, strict=True):
                close(ga, gb)
        assert all((g == 0).all() for g in padding_grads)


@settings(max_examples=30, deadline=None)
@given(pairs=set_pairs())
def test_batch_of_different_sizes_equals_sets_one_by_one(pairs):
    pairs = unit(pairs)
    one_by_one = torch.cat([sinkhorn_loss(*batch([pair]), reduction="none") for pair in pairs])
    close(sinkhorn_loss(*batch(pairs), reduction="none"), one_by_one)


def test_empty_sets_give_zero_and_zero_gradients():
    x = torch.ones(3, 2, 2, requires_grad=True)
    y = (torch.ones(3, 2, 2) * 5).requires_grad_(True)
    xm = torch.tensor([[True, True], [True, True], [False, False]])  # X sizes 0, 0, 2
    ym = torch.tensor([[True, True], [False, True], [True, True]])  # Y sizes 0, 1, 0
    value = sinkhorn_loss(x, y, xm, ym, reduction="none")
    close(value, [0.0, 0.0, 0.0])
    value.sum().backward()
    assert (x.grad == 0).all() and (y.grad == 0).all()
    for n, m in [(0, 0), (0, 3), (3, 0)]:  # batches whose sets are all empty, down to zero rows
        a = torch.zeros(2, n, 2, requires_grad=True)
        out = sinkhorn_loss(
            a, torch.zeros(2, m, 2), torch.ones(2, n, dtype=torch.bool), torch.ones(2, m, dtype=torch.bool)
        )
        close(out, 0.0)
        out.backward()
        assert a.grad is not None and a.grad.shape == (2, n, 2)


def test_reductions_and_arguments():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 6, 2, generator=g), torch.rand(4, 5, 2, generator=g)
    xm = torch.arange(6) >= torch.tensor([0, 1, 6, 3])[:, None]
    ym = torch.arange(5) >= torch.tensor([2, 0, 5, 4])[:, None]
    values = sinkhorn_loss(x, y, xm, ym, reduction="none")
    assert values.shape == (4,) and values.dtype == torch.float32
    close(sinkhorn_loss(x, y, xm, ym), values.mean())
    close(sinkhorn_loss(x, y, xm, ym, reduction="sum"), values.sum())
    with pytest.raises(ValueError, match="reduction"):
        sinkhorn_loss(x, y, xm, ym, reduction="max")
    for kwargs in ({"epsilon": 0.0}, {"epsilon": -1e-3}, {"iterations": 0}):
        with pytest.raises(ValueError, match="epsilon > 0 and iterations >= 1"):
            sinkhorn_loss(x, y, xm, ym, **kwargs)


def test_float32_agrees_with_float64_at_the_defaults():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(3, 80, 2, generator=g), torch.rand(3, 80, 2, generator=g)
    x = torch.cat([x[:1], (y[1:] + 0.02 * torch.randn(2, 80, 2, generator=g))])  # two near pairs
    xm = ym = torch.zeros(3, 80, dtype=torch.bool)
    single = sinkhorn_loss(x, y, xm, ym, reduction="none")
    close(single.double(), sinkhorn_loss(x.double(), y.double(), xm, ym, reduction="none"), 1e-3)


def test_multiplicities_count_unlike_chamfer():
    a, b = [0.2, 0.3], [0.7, 0.6]

    def loss(fn, xs, ys):
        x, y, xm, ym = batch([(np.array(xs), np.array(ys))])
        return fn(x, y, xm, ym).item()

    # Chamfer cannot tell {a, b} from {a, a, a, b}; Hungarian and Sinkhorn tell {a, a, b} from {a, b, b}.
    assert loss(chamfer_loss, [a, b], [a, a, a, b]) == 0.0
    assert loss(hungarian_loss, [a, a, b], [a, b, b]) > 0.01
    assert loss(sinkhorn_loss, [a, a, b], [a, b, b]) > 0.01
    # Sinkhorn compares distributions: X and X with every point doubled are at distance ~0.
    assert loss(sinkhorn_loss, [a, b], [a, a, b, b]) <= SINKHORN_EPSILON * math.log(2)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_is_the_plan_weighted_displacement(seed):
    x, y, xm, ym = gradcheck_inputs(seed, uniform=True)
    sinkhorn_loss(x, y, xm, ym, reduction="sum").backward()
    plan = plan_of(x, y, xm, ym)
    diff = x.detach().unsqueeze(2) - y.detach().unsqueeze(1)  # [B, n, m, D]
    close(x.grad, 2 * (plan.unsqueeze(3) * diff).sum(2), 1e-12)  # sum_j P_ij 2 (x_i - y_j)
    close(y.grad, -2 * (plan.unsqueeze(3) * diff).sum(1), 1e-12)  # sum_i P_ij 2 (y_j - x_i)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_with_the_plan_held_fixed(seed, monkeypatch):
    x, y, xm, ym = gradcheck_inputs(seed, uniform=True)
    fixed = plan_of(x, y, xm, ym)
    monkeypatch.setattr(losses, "sinkhorn_plan", lambda *args: fixed)
    assert torch.autograd.gradcheck(lambda a, b: sinkhorn_loss(a, b, xm, ym, reduction="none"), (x, y))


def entropic_objective(x, y, xm, ym, epsilon: float, iterations: int) -> torch.Tensor:
    """<P, C> + epsilon KL(P | a b^T) per set, at the plan sinkhorn_plan returns."""
    cost = pairwise_sq_dist(x, y)
    plan = sinkhorn_plan(cost, xm, ym, epsilon, iterations)
    ab = uniform(xm, x.dtype).unsqueeze(2) * uniform(ym, y.dtype).unsqueeze(1)
    kl = torch.where(plan > 0, plan * (plan / ab).log(), 0.0).sum((1, 2))
    return (plan * cost).sum((1, 2)) + epsilon * kl


def test_gradient_is_that_of_the_entropic_objective():
    # Envelope theorem: the fixed-plan gradient is the true gradient of the entropic objective, checked by
    # central differences at a converged plan (epsilon large enough to converge to rounding).
    epsilon, iterations, h = 0.02, 1000, 1e-6
    x, y, xm, ym = gradcheck_inputs(3, uniform=True)
    sinkhorn_loss(x, y, xm, ym, reduction="sum", epsilon=epsilon, iterations=iterations).backward()
    numeric = torch.zeros_like(x)
    for index in np.ndindex(*x.shape):
        step = torch.zeros_like(x)
        step[index] = h
        up, down = (
            entropic_objective(x.detach() + s, y.detach(), xm, ym, epsilon, iterations) for s in (step, -step)
        )
        numeric[index] = (up - down).sum() / (2 * h)
    close(x.grad, numeric, 1e-7)


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_autograd_mode_is_restored(grad_enabled, monkeypatch):
    x, y, xm, ym = gradcheck_inputs(0, uniform=True)
    with torch.set_grad_enabled(grad_enabled):
        value = sinkhorn_loss(x, y, xm, ym)
        assert torch.is_grad_enabled() == grad_enabled
        assert value.requires_grad == grad_enabled

        def fail(*args):
            raise RuntimeError("inside the solver")

        monkeypatch.setattr(losses, "_softmin", fail)
        with pytest.raises(RuntimeError, match="inside the solver"):
            sinkhorn_loss(x, y, xm, ym)
        assert torch.is_grad_enabled() == grad_enabled

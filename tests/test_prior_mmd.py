"""The MMD between a batch of codes and N(0, I) (setae.nn.prior_mmd); its place in the objective:
test_models.py."""

from __future__ import annotations

import pytest
import torch

from setae.nn.prior_mmd import SCALES, mmd_to_standard_normal


def brute_force_mmd(z: list[list[float]], y: list[list[float]]) -> float:
    """The unbiased MMD² by loops over pairs, with the kernel written out."""

    def k(a, b):
        sq = sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True))
        return sum(s * 2 * len(a) / (s * 2 * len(a) + sq) for s in SCALES)

    n, m = len(z), len(y)
    zz = sum(k(z[i], z[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    zy = sum(k(a, b) for a in z for b in y) / (n * m)
    return zz + yy - 2 * zy


def test_matches_the_formula_with_unequal_batch_sizes():
    # 4 codes against 7 prior draws: swapping the two normalisers, keeping the diagonal (the biased
    # estimate) or a kernel scale off by a factor each change the value (each tried).
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, generator=g, dtype=torch.float64) * 2 + 0.5
    y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    expected = brute_force_mmd(z.tolist(), y.tolist())
    assert mmd_to_standard_normal(z, y).item() == pytest.approx(expected, rel=1e-12)


def test_is_near_zero_for_prior_codes_and_grows_with_the_mismatch():
    torch.manual_seed(0)
    estimates = {
        name: torch.stack([mmd_to_standard_normal(draw()) for _ in range(50)]).mean().item()
        for name, draw in {
            "prior": lambda: torch.randn(64, 8),
            "scaled": lambda: 0.5 * torch.randn(64, 8),
            "shifted": lambda: torch.randn(64, 8) + 1.0,
        }.items()
    }
    assert abs(estimates["prior"]) < 0.01
    assert estimates["scaled"] > 0.1 and estimates["shifted"] > 0.1


def test_is_invariant_to_the_order_of_the_codes_and_has_exact_gradients():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    value = mmd_to_standard_normal(z, y)
    torch.testing.assert_close(mmd_to_standard_normal(z[torch.randperm(5)], y[torch.randperm(6)]), value)
    assert torch.autograd.gradcheck(lambda x: mmd_to_standard_normal(x, y), (z,))
    single = torch.randn(1, 3, requires_grad=True)
    assert mmd_to_standard_normal(single).item() == 0.0  # no pair: no estimate

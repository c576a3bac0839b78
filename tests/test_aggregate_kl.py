"""The KL from the aggregate posterior's moments to N(0, I) (setae.nn.aggregate_kl); its place
in the objective: test_models.py."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from helpers import SMALL_MODEL, random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch
from setae.nn.aggregate_kl import AggregatePosteriorKL, gaussian_kl_to_standard_normal, mixture_moments


def test_the_gaussian_kl_matches_torch_distributions_in_the_right_direction():
    # A correlated covariance and a shifted mean: KL(N(m, C) ‖ N(0, I)) differs from the reverse
    # KL(N(0, I) ‖ N(m, C)) and from the diagonal-only formula (both tried).
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.3 * torch.eye(4, dtype=torch.float64)
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64)
    q, p = MultivariateNormal(mean, cov), MultivariateNormal(torch.zeros(4).double(), torch.eye(4).double())
    expected = kl_divergence(q, p)
    assert gaussian_kl_to_standard_normal(mean, cov).item() == pytest.approx(expected.item(), rel=1e-12)
    assert abs(kl_divergence(p, q).item() - expected.item()) > 0.1
    assert gaussian_kl_to_standard_normal(torch.zeros(3).double(), torch.eye(3).double()).item() == 0.0


def brute_force_moments(mean: torch.Tensor, log_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the mixture (1/B) Σ_i N(μ_i, diag σ²_i), entry by entry."""
    b, d = mean.shape
    m = torch.tensor([sum(mean[i, k].item() for i in range(b)) / b for k in range(d)], dtype=torch.float64)
    second = [
        [
            sum(
                mean[i, j].item() * mean[i, k].item() + (log_var[i, j].exp().item() if j == k else 0.0)
                for i in range(b)
            )
            / b
            for k in range(d)
        ]
        for j in range(d)
    ]
    return m, torch.tensor(second, dtype=torch.float64) - torch.outer(m, m)


def test_with_full_mixing_it_is_the_kl_of_the_batch_mixture_moments_and_its_gradient_is_exact():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(6, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.5, 1.0]).double() + 0.3
    log_var = torch.randn(6, 3, generator=g, dtype=torch.float64) - 1.0
    module = AggregatePosteriorKL(3, mix=1.0).double()
    expected = gaussian_kl_to_standard_normal(*brute_force_moments(mean, log_var))
    assert module(mean, log_var).item() == pytest.approx(expected.item(), rel=1e-10)
    assert torch.autograd.gradcheck(
        lambda m, v: module(m, v), (mean.requires_grad_(), log_var.requires_grad_())
    )
    permuted = torch.randperm(6)
    assert module(mean[permuted], log_var[permuted]).item() == pytest.approx(expected.item(), rel=1e-10)


def test_running_moments_converge_to_the_codes_and_carry_the_batch_gradient():
    # Codes from N(a, S) with posterior variance 0.25: the running covariance tends to S + 0.25·I.
    torch.manual_seed(0)
    s = torch.tensor([[2.0, 0.9], [0.9, 0.5]])
    a = torch.tensor([1.0, -0.5])
    module = AggregatePosteriorKL(2, mix=0.02)
    for _ in range(1500):
        codes = a + torch.randn(64, 2) @ torch.linalg.cholesky(s).T
        value = module(codes, torch.full((64, 2), 0.25).log())
    torch.testing.assert_close(module.running_mean, a, atol=0.05, rtol=0)
    torch.testing.assert_close(module.running_cov, s + 0.25 * torch.eye(2), atol=0.08, rtol=0)
    assert value.item() == pytest.approx(
        gaussian_kl_to_standard_normal(module.running_mean, module.running_cov).item(), rel=1e-6
    )
    # the gradient is the KL's at the running moments, applied to the batch's: d/dm_B = m̄
    codes = codes.clone().requires_grad_()
    module(codes, torch.full((64, 2), 0.25).log()).backward()
    torch.testing.assert_close(codes.grad.sum(0), module.running_mean, atol=1e-5, rtol=1e-4)


def test_it_needs_a_variational_model():
    with pytest.raises(SetaeError, match="aggregate_kl needs a variational model"):
        ModelConfig(**{**SMALL_MODEL, "aggregate_kl": 1.0, "variational": False}).validate()


def test_evaluation_reports_it_on_all_the_evaluated_sets_at_once():
    # Batches of 2: the moments are pooled over all sets, not a mean of the batches' KLs (that differs).
    from setae.evaluation.evaluate import objective_terms

    torch.manual_seed(0)
    model = SetAutoencoder(ModelConfig(**SMALL_MODEL)).eval()
    with torch.no_grad():
        model.to_latent.weight.mul_(30.0)  # codes spread well beyond N(0, I), unlike a fresh model's
    sets = random_sets([2, 5, 1, 9, 4, 7], 2, seed=3)
    mean, log_var = model.posterior(SetBatch.from_sets(sets))
    expected = gaussian_kl_to_standard_normal(*mixture_moments(mean.double(), log_var.double()))
    reported = objective_terms(model, sets, batch_size=2)["aggregate_kl"]
    assert reported == pytest.approx(expected.item(), rel=1e-5)
    per_batch = [
        gaussian_kl_to_standard_normal(
            *mixture_moments(*(p.double() for p in model.posterior(SetBatch.from_sets(sets[i : i + 2]))))
        ).item()
        for i in range(0, 6, 2)
    ]
    assert abs(sum(per_batch) / 3 - expected.item()) > 0.01
    assert "aggregate_kl" not in objective_terms(
        SetAutoencoder(ModelConfig(**{**SMALL_MODEL, "variational": False})).eval(), sets
    )

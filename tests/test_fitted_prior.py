"""The mixture fitted to the codes (sample(prior="fitted")), the code scale γ, the Chamfer warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch
from setae.models.fitted_prior import FittedPrior
from setae.nn.losses import chamfer_loss
from test_models import SMALL


def two_clusters(n: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.2, 0.5]) + torch.tensor([4.0, 0.0, 0.0])
    b = torch.randn(n // 4, 3, generator=g) * 0.3 - torch.tensor([4.0, 1.0, 0.0])
    return torch.cat([a, b])


def test_one_component_is_the_sample_gaussian_and_its_log_density():
    codes = two_clusters()
    prior = FittedPrior(3, 1)
    prior.fit(codes)
    mean = codes.double().mean(0)
    cov = torch.cov(codes.double().T, correction=0) + 1e-4 * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(prior.means[0].double(), mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(prior.scale_tril[0] @ prior.scale_tril[0].T, cov.float(), atol=1e-4, rtol=1e-4)
    z = torch.randn(5, 3)
    # brute force: −½ (z−m)ᵀ Σ⁻¹ (z−m) − ½ log det(2π Σ)
    diff = z.double() - mean
    quad = (diff @ torch.linalg.inv(cov) * diff).sum(1)
    expected = -0.5 * quad - 0.5 * torch.logdet(2 * math.pi * cov)
    torch.testing.assert_close(prior.log_prob(z).double(), expected, atol=1e-3, rtol=1e-4)


def test_mixture_matches_scikit_learn_and_its_samples_follow_it():
    from sklearn.mixture import GaussianMixture

    codes = two_clusters()
    prior = FittedPrior(3, 2)
    prior.fit(codes, seed=3)
    gmm = GaussianMixture(2, covariance_type="full", reg_covar=1e-4, max_iter=100, random_state=3).fit(
        codes.double().numpy()
    )
    z = torch.randn(7, 3) * 3
    np.testing.assert_allclose(prior.log_prob(z).numpy(), gmm.score_samples(z.double().numpy()), rtol=1e-4)
    draws = prior.sample(20_000, torch.Generator().manual_seed(0))
    # the smaller cluster (a fifth of the codes, centred at x = −4) gets a fifth of the samples
    assert (draws[:, 0] < 0).double().mean().item() == pytest.approx(0.2, abs=0.01)
    torch.testing.assert_close(draws.mean(0), codes.mean(0), atol=0.08, rtol=0)
    again = prior.sample(20_000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_sample_priors_and_the_fitted_prior_in_the_state_dict():
    m = SetAutoencoder(ModelConfig(**SMALL, prior_components=3)).eval()
    assert not m.has_fitted_prior
    with pytest.raises(SetaeError, match="no fitted prior"):
        m.sample(2, prior="fitted")
    with pytest.raises(SetaeError, match="prior='flat'"):
        m.sample(2, prior="flat")
    normal = m.sample(4, seed=0)  # the default before fitting
    m.fit_prior(random_sets([3, 5, 8, 2, 7, 4, 9, 6, 1, 10], 2, seed=0))
    assert m.has_fitted_prior
    fitted = m.sample(4, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(fitted, m.sample(4, seed=0, prior="fitted"), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(normal, m.sample(4, seed=0, prior="normal"), strict=True))
    copy = SetAutoencoder(ModelConfig(**SMALL, prior_components=3)).eval()
    copy.load_state_dict(m.state_dict())
    assert copy.has_fitted_prior
    torch.testing.assert_close(copy.fitted_prior.means, m.fitted_prior.means)
    with pytest.raises(SetaeError, match="2 sets for 3 mixture components"):
        m.fit_prior(random_sets([3, 4], 2))


def test_training_fits_the_prior_at_the_end(tmp_path):
    from setae import load
    from setae.training.config import resolve_config
    from setae.training.engine import train

    config = resolve_config("tiny", overrides={"model": {"prior_components": 4}, "train": {"steps": 6}})
    train(config, tmp_path / "run", progress=False)
    model = load(tmp_path / "run")
    assert model.has_fitted_prior
    assert len(model.sample(3)) == 3


@pytest.mark.parametrize("learned", [False, True])
def test_code_scale_sets_the_spread_of_the_posterior_means(learned):
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**SMALL, latent_scale=0.5, latent_scale_learned=learned)).train()
    batch = SetBatch.from_sets(random_sets([3, 5, 8, 2, 7, 4, 9, 6], 2, seed=0))
    mean, _ = m.posterior(batch)
    torch.testing.assert_close(mean.std(0, unbiased=False), torch.full((6,), 0.5), atol=1e-4, rtol=0)
    # with γ < 1 the KL's μ² part is latent·γ²/2, not the constant latent/2 of plain standardisation
    kl_mean_part = 0.5 * mean.pow(2).sum(1).mean()
    assert kl_mean_part.item() == pytest.approx(6 * 0.25 / 2, rel=1e-3)
    assert ("latent_scale" in dict(m.named_parameters())) == learned
    if learned:
        m(batch)["kl"].mean().backward()
        assert m.latent_scale.grad.abs().min() > 0  # the KL pulls on γ


def test_loss_override_trains_with_chamfer_for_a_hungarian_model():
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**SMALL, loss="hungarian", decoder="mlp", variational=False)).eval()
    batch = SetBatch.from_sets(random_sets([3, 5, 8, 2], 2, seed=0))
    out = m.decoder(m.posterior(batch)[0], batch.sizes)
    expected = chamfer_loss(out.points, batch.points, out.padding_mask, batch.padding_mask, reduction="none")
    torch.testing.assert_close(m(batch, "chamfer")["distance"], expected)
    assert not torch.allclose(m(batch)["distance"], expected)

"""The autoencoder's public API (encode / decode / reconstruct / sample) and its objective terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch

SMALL = dict(
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
)


def model(**kw) -> SetAutoencoder:
    torch.manual_seed(0)
    return SetAutoencoder(ModelConfig(**{**SMALL, **kw})).eval()


@pytest.mark.parametrize("encoder", ["settransformer", "deepsets"])
@pytest.mark.parametrize("decoder", ["tspn", "mlp"])
def test_encode_is_invariant_and_decode_predicts_sizes(encoder, decoder):
    m = model(encoder=encoder, decoder=decoder)
    sets = random_sets([0, 1, 5, 12], 2, seed=1)
    shuffled = [s[torch.randperm(len(s))] for s in sets]
    z = m.encode(sets)
    assert z.shape == (4, 6)
    torch.testing.assert_close(m.encode(shuffled), z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.encode([s.numpy() for s in sets]), z)  # arrays work like tensors
    torch.testing.assert_close(m.encode(sets[2:3])[0], z[2], atol=1e-5, rtol=1e-5)  # batch-independent
    out = m.decode(z)
    assert [o.shape[1] for o in out] == [2] * 4
    assert [len(o) for o in out] == m.decoder.predict_sizes(z).tolist()
    assert [len(o) for o in m.reconstruct(sets)] == [len(o) for o in out]


def test_sample_is_seeded_and_only_for_vaes():
    m = model()
    a, b, c = m.sample(3, seed=0), m.sample(3, seed=0), m.sample(3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(len(x) != len(y) or not torch.equal(x, y) for x, y in zip(a, c, strict=True))
    with pytest.raises(SetaeError, match="variational"):
        model(variational=False).sample(2)


def test_bad_sets_are_rejected_with_the_item_named():
    m = model()
    cases = [
        ([np.zeros((3, 3))], "set 0 has points of dimension 3"),
        ([np.zeros((2, 2)), np.array([[0.1, np.nan]])], "set 1 contains NaN"),
        ([np.zeros((13, 2))], "set 0 has 13 points"),
        ([np.zeros(4)], "set 0 has shape"),
    ]
    for sets, message in cases:
        with pytest.raises(SetaeError, match=message):
            m.encode(sets)
    with pytest.raises(SetaeError, match="expected"):
        m.decode(torch.zeros(2, 5))


@pytest.mark.parametrize("variational", [True, False])
@pytest.mark.parametrize("loss", ["chamfer", "hungarian"])
def test_objective_terms_and_gradients(variational, loss):
    m = model(variational=variational, loss=loss).train()
    batch = SetBatch.from_sets(random_sets([0, 1, 7, 12], 2, seed=2))
    terms = m(batch)
    assert set(terms) == {"recon", "size", "kl", "distance"}
    assert all(t.shape == (4,) and torch.isfinite(t).all() for t in terms.values())
    assert terms["recon"][0] == 0 and (terms["size"] > 0).all() and (terms["kl"] >= 0).all()
    assert (terms["kl"] > 0).all() == variational
    (terms["recon"] + terms["size"] + terms["kl"]).mean().backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


def test_unknown_component_is_a_config_error():
    with pytest.raises(SetaeError, match="decoder='dspn' is not one of"):
        model(decoder="dspn")


def test_calibrated_latent_norm_matches_batch_statistics():
    """After calibration on a batch, inference codes of that batch equal the training-mode (batch-stat) codes,
    however far the running average had drifted."""
    m = model(variational=False)
    batch = SetBatch.from_sets(random_sets([3, 5, 8, 12, 7, 1], 2, seed=4))
    m.latent_norm.running_mean.fill_(5.0)  # a stale running average
    m.eval()
    stale, _ = m.posterior(batch)
    m.calibrate_latent_norm([batch])
    assert not m.training
    calibrated, _ = m.posterior(batch)
    m.train()
    with torch.no_grad():
        batch_stats, _ = m.posterior(batch)
    n = len(batch)  # BatchNorm's running variance is unbiased, its batch normalisation biased
    torch.testing.assert_close(calibrated * (n / (n - 1)) ** 0.5, batch_stats, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(stale, calibrated, atol=1e-2)


def test_importance_weighted_bound_is_at_least_the_elbo():
    from setae.evaluation.evaluate import importance_weighted_bound, objective_terms

    m = model()
    sets = random_sets([5, 9, 12, 3] * 8, 2, seed=6)
    elbo = objective_terms(m, sets)["elbo"]
    one = importance_weighted_bound(m, sets, num_samples=1)
    many = importance_weighted_bound(m, sets, num_samples=64)
    assert abs(one - elbo) < 0.1 * abs(elbo), "K = 1 estimates the ELBO"
    assert many > one
    with pytest.raises(SetaeError, match="variational"):
        model(variational=False).importance_bound(SetBatch.from_sets(sets[:2]))

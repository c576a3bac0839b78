"""The autoencoder's public API (encode / decode / reconstruct / sample) and its objective terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import SMALL_MODEL, random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch
from setae.models.config import DECODERS, ENCODERS

SMALL = {**SMALL_MODEL, "dequantize": 0.0}  # the point process's: continuous points


def model(**kw) -> SetAutoencoder:
    torch.manual_seed(0)
    return SetAutoencoder(ModelConfig(**{**SMALL, **kw})).eval()


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("decoder", [d for d in DECODERS if d != "strokes"])
def test_encode_is_invariant_and_decode_predicts_sizes(encoder, decoder):
    m = model(encoder=encoder, decoder=decoder, decoder_steps=2)
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


def test_dspn_supervises_earlier_steps_by_chamfer_and_the_final_set_by_the_loss():
    """In training, DSPN's recon is n/(2σ²) times the mean over its inner steps of the earlier sets' Chamfer,
    halved into a one-to-one loss's units, and the final set's Hungarian, plus the representation term."""
    from setae.nn.losses import chamfer_loss, hungarian_loss

    m = model(decoder="dspn", decoder_steps=3, decoder_inner_lr=1.0, loss="hungarian", variational=False)
    batch = SetBatch.from_sets(random_sets([3, 5, 7, 4], 2, seed=2))
    m.train()
    recon = m(batch)["recon"]
    z, _ = m.posterior(batch)  # deterministic without a posterior sample
    out = m.decoder(z, batch.sizes)
    masks = (out.padding_mask, batch.padding_mask)
    earlier = [chamfer_loss(p, batch.points, *masks, reduction="none") / 2 for p in out.steps]
    final = hungarian_loss(out.points, batch.points, *masks, reduction="none")
    representation = m.decoder.representation_loss(z, batch.points, batch.padding_mask)
    supervised = torch.stack([*earlier, final]).mean(0) + m.decoder.representation_weight * representation
    expected = supervised * batch.sizes / (2 * m.config.point_sigma**2)
    assert len(out.steps) == 2
    torch.testing.assert_close(recon, expected)


@pytest.mark.parametrize("name", ["prior_mmd", "aggregate_kl"])
def test_a_code_regularizer_is_added_in_training_only_and_reaches_the_encoder_only(name):
    """`prior_mmd` and `aggregate_kl` are terms [B] of the training loss, not of the evaluated objective;
    they read the codes, so the decoder gets no gradient from them."""
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**{**SMALL_MODEL, name: 3.0})).train()
    batch = SetBatch.from_sets(random_sets([1, 3, 7, 12], 2, seed=2))
    terms = m(batch)
    assert terms[name].shape == (4,) and (terms[name] != 0).all() and (terms[name] == terms[name][0]).all()
    terms[name].mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.decoder.parameters())
    assert name not in m.eval()(batch)
    assert name not in SetAutoencoder(ModelConfig(**SMALL_MODEL)).train()(batch)
    with pytest.raises(SetaeError, match=f"{name} must be >= 0"):
        ModelConfig(**{**SMALL_MODEL, name: -1.0}).validate()


def test_unknown_component_is_a_config_error():
    with pytest.raises(SetaeError, match="decoder='transformer' is not one of"):
        model(decoder="transformer")
    with pytest.raises(SetaeError, match="size_head='gaussian' is not one of"):
        model(size_head="gaussian")


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


@pytest.mark.parametrize("standardize", [True, False])
def test_only_the_standardised_code_depends_on_the_rest_of_the_batch(standardize):
    """latent_standardize=False is a plain VAE: a set's posterior does not depend on the sets beside it in
    a training batch, and the KL's μ² part reaches the encoder (with the standardisation and γ fixed at 1,
    the batch's μ² is a constant and its gradient 0)."""
    torch.manual_seed(0)
    config = ModelConfig(**{**SMALL_MODEL, "latent_standardize": standardize, "latent_scale_learned": False})
    m = SetAutoencoder(config).train()
    sets = random_sets([3, 5, 8, 12], 2, seed=5)
    alone, _ = m.posterior(SetBatch.from_sets(sets[:2]))
    beside, _ = m.posterior(SetBatch.from_sets(sets))
    assert torch.allclose(alone, beside[:2], atol=1e-5) != standardize
    mean, _ = m.posterior(SetBatch.from_sets(sets))
    mean.pow(2).sum().backward()
    encoder_grad = sum(p.grad.abs().sum() for p in m.encoder.parameters() if p.grad is not None)
    assert (encoder_grad > 1e-3) != standardize
    if not standardize:  # training and inference give the same codes, calibrated or not
        m.calibrate_latent_norm([SetBatch.from_sets(sets)])
        torch.testing.assert_close(m.eval().posterior(SetBatch.from_sets(sets))[0], beside.detach())


def test_importance_weighted_bound_is_at_least_the_elbo():
    from setae.evaluation.evaluate import importance_weighted_bound, objective_terms

    m = model(loss="hungarian")
    sets = random_sets([5, 9, 12, 3] * 8, 2, seed=6)
    terms = objective_terms(m, sets)
    one = importance_weighted_bound(m, sets, num_samples=1)
    many = importance_weighted_bound(m, sets, num_samples=64)
    # K = 1 estimates the ELBO; leaving out log p(z) − log q(z) would move it by about the KL
    assert abs(one - terms["elbo"]) < 0.1 * terms["kl"]
    assert many > one
    with pytest.raises(SetaeError, match="variational"):
        model(variational=False).importance_bound(SetBatch.from_sets(sets[:2]))
    with pytest.raises(SetaeError, match="likelihood"):
        model(loss="chamfer").importance_bound(SetBatch.from_sets(sets[:2]))


@pytest.mark.parametrize("normalize", [False, True])
def test_matched_likelihood_brackets_the_permutation_mixture_density(normalize):
    """For p(X | z) = p(n | z) Σ_π Π_i N(x_i; y_π(i), σ²I), computed by brute force over all orderings:
    bound ≤ log p(X | z) ≤ bound + log n!, bound = −(recon + size + density_constant). Without the Gaussian
    normaliser (or the Jacobian of normalisation) the bound misses by ~4.75 nats a point at σ = 1/27."""
    import itertools
    import math

    m = model(loss="hungarian", decoder="mlp", point_sigma=0.1, normalize=normalize)
    std = torch.tensor([4.0, 5.0])
    if normalize:
        m.set_normalization(torch.tensor([0.3, -0.2]), std)
    sets = [s * 3 for s in random_sets([1, 3, 4, 0], 2, seed=3)]
    batch = SetBatch.from_sets(sets)
    z = torch.randn(len(sets), 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = m._negative_log_likelihood(m._normalize(batch), z)
        outputs = m.decoder(z, batch.sizes).points
    bound = -(terms["recon"] + terms["size"] + m.density_constant(batch.sizes))
    sigma = 0.1 * (std if normalize else torch.ones(2)).double()
    for i, points in enumerate(sets):
        n = len(points)
        y = outputs[i, :n].double() * (std if normalize else 1) + (
            torch.tensor([0.3, -0.2]) if normalize else 0
        )
        log_terms = [
            torch.distributions.Normal(y[list(order)], sigma).log_prob(points.double()).sum()
            for order in itertools.permutations(range(n))
        ]
        exact = -terms["size"][i].double() + torch.logsumexp(torch.stack(log_terms), 0)
        assert bound[i] <= exact + 1e-3
        assert exact <= bound[i] + math.lgamma(n + 1) + 1e-3


def test_chamfer_models_report_an_objective_not_a_bound():
    from setae.evaluation.evaluate import objective_terms

    sets = random_sets([5, 9, 12, 3], 2, seed=6)
    chamfer = objective_terms(model(loss="chamfer"), sets)
    assert "elbo" not in chamfer
    assert chamfer["neg_objective"] == pytest.approx(
        -(chamfer["recon_nll"] + chamfer["size_nll"] + chamfer["kl"])
    )
    assert "elbo" in objective_terms(model(loss="hungarian"), sets)


def test_conditional_model_needs_labels_and_uses_them():
    m = model(conditional=True)
    sets = random_sets([3, 5, 8], 2, seed=7)
    with pytest.raises(SetaeError, match="needs labels"):
        m.encode(sets)
    with pytest.raises(SetaeError, match="set 1 has label 10"):
        m.encode(sets, labels=[0, 10, 2])
    z = m.encode(sets, labels=[0, 1, 2])
    assert not torch.allclose(z, m.encode(sets, labels=[3, 3, 3])), "the label enters the encoder"
    a, b = m.decode(z, labels=4), m.decode(z, labels=[4, 4, 4])
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(x[:1], y[:1]) for x, y in zip(a, m.decode(z, labels=7), strict=True))
    assert len(m.sample(5, label=3)) == 5
    terms = m.train()(SetBatch.from_sets(sets, labels=[1, 2, 3]))
    assert torch.isfinite(terms["recon"]).all()


def test_denoising_corrupts_inputs_only_in_training():
    m = model(corrupt_drop=0.5, corrupt_jitter=0.05, variational=False)
    batch = SetBatch.from_sets(random_sets([12, 12, 12, 12], 2, seed=8))
    clean_code, _ = m.posterior(batch)
    m.train()
    torch.manual_seed(0)
    noisy = m._corrupt(batch)
    assert (noisy.sizes < batch.sizes).all() and (noisy.sizes > 0).all()
    kept = ~noisy.padding_mask
    assert 0 < (noisy.points[kept] - batch.points[kept]).abs().max() < 0.5
    m.eval()
    torch.testing.assert_close(m.posterior(batch)[0], clean_code)
    # Eval-mode objective terms see the clean input: they equal a model without corruption.
    plain = model(variational=False)
    plain.load_state_dict(m.state_dict())
    torch.manual_seed(1)
    ours = m(batch)["recon"]
    torch.manual_seed(1)  # the same draw of TSPN's initial set
    torch.testing.assert_close(ours, plain.eval()(batch)["recon"])


def train_briefly(
    m: SetAutoencoder, batch: SetBatch, scored: SetBatch, steps: int = 60
) -> tuple[float, float]:
    """Adam steps on `batch`; the eval-mode objective recon + size on `scored` before and after."""

    def objective() -> float:
        m.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            terms = m(scored)
        m.train()
        return float((terms["recon"] + terms["size"]).mean())

    before = objective()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(steps):
        terms = m(batch)
        opt.zero_grad()
        (terms["recon"] + terms["size"]).mean().backward()
        opt.step()
    m.calibrate_latent_norm([batch])
    return before, objective()


TRAINABLE = {
    "rnn-encoder": dict(encoder="rnn"),
    "rnn-encoder-shuffled": dict(encoder="rnn", encoder_shuffle=True),
    "rnn-decoder": dict(decoder="rnn"),
    "dspn": dict(decoder="dspn", decoder_steps=3, decoder_inner_lr=1.0),
    "slot": dict(decoder="slot"),
    "poisson": dict(size_head="poisson"),
    "conditional": dict(conditional=True),
    "denoising": dict(corrupt_drop=0.1, corrupt_jitter=0.01),
    "hungarian": dict(loss="hungarian"),
}


@pytest.mark.parametrize("name", TRAINABLE)
def test_short_training_lowers_the_loss(name):
    """60 Adam steps on 32 random sets lower the eval-mode objective of each component."""
    m = model(**TRAINABLE[name], variational=False).train()
    sets = random_sets(
        [int(n) for n in torch.randint(1, 13, (32,), generator=torch.Generator().manual_seed(0))], 2
    )
    batch = SetBatch.from_sets(sets, labels=[i % 10 for i in range(32)])

    before, after = train_briefly(m, batch, batch)
    assert after < 0.7 * before


@pytest.mark.parametrize("stroke_position", [0.0, 3.0])
def test_sequence_autoencoder_trains_and_decodes_drawings(stroke_position):
    """The strokes model (GRU encoder in input order -> autoregressive decoder), reading offsets only or
    positions too: 60 steps on 64 random drawings lower the NLL of 16 held-out ones; codes depend on the
    order of steps; decode gives stroke-3."""
    torch.manual_seed(0)
    m = SetAutoencoder(
        ModelConfig(
            point_dim=3,
            max_size=12,
            point_sigma=1 / 27,
            latent_dim=6,
            encoder="rnn",
            encoder_order="input",
            encoder_dim=16,
            decoder="strokes",
            decoder_dim=32,
            decoder_mixtures=2,
            stroke_position=stroke_position,
            variational=False,
        )
    )
    g = torch.Generator().manual_seed(0)
    drawings = []
    for n in torch.randint(2, 12, (80,), generator=g).tolist():
        steps = torch.randint(-1, 2, (n, 3), generator=g).float()
        steps[:, 2] = (torch.rand(n, generator=g) < 0.2).float()
        drawings.append(steps)
    drawings, held_out = drawings[:64], drawings[64:]
    batch = SetBatch.from_sets(drawings)

    before, after = train_briefly(m, batch, SetBatch.from_sets(held_out))
    assert after < before - 3.0
    m.eval()
    codes = m.encode(drawings[:4])
    assert not torch.allclose(codes, m.encode([d.flip(0) for d in drawings[:4]]), atol=1e-4)
    out = m.decode(codes)
    assert all(o.shape[1] == 3 and len(o) <= 12 and set(o[:, 2].tolist()) <= {0.0, 1.0} for o in out)


@pytest.mark.parametrize("garbage", [float("nan"), float("inf")])
def test_drawing_codes_read_positions_and_ignore_padding(garbage):
    """With stroke_position the encoder reads Σ Δ / P beside each step: codes differ from a model that reads
    offsets only, and padded rows (even NaN / inf) change neither codes nor their gradients."""
    config = dict(point_dim=3, max_size=12, point_sigma=1.0, latent_dim=4, encoder="rnn", encoder_dim=8)
    config.update(encoder_order="input", decoder="strokes", decoder_dim=8, decoder_mixtures=2)
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**config, stroke_position=3.0)).eval()
    assert m.encoder.embed.in_features == 5
    g = torch.Generator().manual_seed(1)
    drawings = [torch.randint(-2, 3, (n, 3), generator=g).float().clamp(0, 1) for n in (5, 1, 9)]
    clean = SetBatch.from_sets(drawings)
    dirty = SetBatch.from_sets(drawings, pad_to=12)
    points = dirty.points.masked_fill(dirty.padding_mask[..., None], garbage)
    dirty = SetBatch(points, dirty.padding_mask, dirty.sizes, dirty.labels)
    codes = [m.posterior(b)[0] for b in (clean, dirty)]
    torch.testing.assert_close(codes[0], codes[1])
    grads = [torch.autograd.grad(c.sum(), list(m.encoder.parameters())) for c in codes]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    without = SetAutoencoder(ModelConfig(**config, stroke_position=0.0)).eval()
    assert without.encoder.embed.in_features == 3

"""The point-process decoder: its exact likelihood against brute force, invariances, the dequantised bound,
its decodes, training through the engine, and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import setae
from helpers import permute_rows, random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch
from setae.evaluation.evaluate import importance_weighted_bound, metric_meanings, objective_terms
from setae.nn.decoders import PointProcessDecoder
from setae.nn.size_heads import PoissonSizeHead
from setae.rng import seeded

LATENT = 5
DENSITIES = ("mixture", "flow")


def decoder(density: str, dim: int = 2, size_head: str = "categorical", **kw) -> PointProcessDecoder:
    """A small decoder in a non-trivial frame (so a dropped Jacobian shows)."""
    torch.manual_seed(0)
    dec = PointProcessDecoder(
        LATENT,
        dim,
        max_size=9,
        density=density,
        num_components=3,
        dim=16,
        num_layers=2,
        size_head=size_head,
        **kw,
    )
    dec.set_frame(torch.linspace(0.2, 0.6, dim), torch.linspace(0.5, 1.5, dim))  # Σ log s ≠ 0
    return dec


def model(**kw) -> SetAutoencoder:
    config = dict(
        point_dim=2,
        max_size=12,
        latent_dim=LATENT,
        encoder_dim=16,
        decoder_dim=16,
        encoder_layers=1,
        decoder_layers=1,
        decoder_mixtures=3,
        point_sigma=0.1,
        decoder="pointprocess",
        dequantize=0.0,
    )
    torch.manual_seed(0)
    return SetAutoencoder(ModelConfig(**{**config, **kw})).eval()


def brute_force_log_likelihood(dec: PointProcessDecoder, z: torch.Tensor, sets: list) -> torch.Tensor:
    """log p(X | z) = log p(k | z) + log k! + Σ_i log f(x_i | z) [B], point by point: for the mixture,
    each component's MultivariateNormal and a logsumexp; for the flow, its own log_prob of one point;
    p(k | z) from the size head's distribution directly."""
    out = []
    for i, points in enumerate(sets):
        k = len(points)
        if isinstance(dec.size_head, PoissonSizeHead):
            log_pk = torch.distributions.Poisson(dec.size_head.rate(z[i : i + 1])[0]).log_prob(
                torch.tensor(k)
            )
        else:
            log_pk = torch.log_softmax(dec.size_head(z[i : i + 1])[0], 0)[k]
        total = log_pk + math.lgamma(k + 1)
        for x in points:
            x_frame = (x - dec.loc) / dec.scale
            if dec.density == "mixture":
                log_weights, means, tril = (t[0] for t in dec.mixture(z[i : i + 1]))
                terms = [
                    log_weights[m]
                    + torch.distributions.MultivariateNormal(means[m], scale_tril=tril[m]).log_prob(x_frame)
                    for m in range(dec.num_components)
                ]
                log_f = torch.logsumexp(torch.stack(terms), 0)
            else:
                log_f = dec.flow(z[i]).log_prob(x_frame)
            total = total + log_f - dec.scale.log().sum()
        out.append(total)
    return torch.stack(out)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("size_head", ["categorical", "poisson"])
def test_log_likelihood_matches_brute_force(density, size_head):
    dec = decoder(density, size_head=size_head)
    sets = random_sets([3, 1, 0, 5, 2], 2, seed=3)
    z = torch.randn(len(sets), LATENT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        nll = dec.nll(z, SetBatch.from_sets(sets))
        expected = brute_force_log_likelihood(dec, z, sets)
    torch.testing.assert_close(-(nll["recon"] + nll["size"]), expected, atol=1e-4, rtol=1e-5)
    sizes = torch.tensor([len(s) for s in sets])
    size_part = -dec.size_head.nll(z, sizes)
    torch.testing.assert_close(-nll["size"], size_part.detach())  # the split: size is −log p(k | z) alone
    assert nll["recon"][2] == 0 and nll["distance"][2] == 0  # an empty set: log 0! = 0, no points
    per_point = (nll["recon"] + torch.lgamma(sizes + 1.0)) / sizes.clamp(min=1)
    torch.testing.assert_close(nll["distance"], per_point)


def test_the_model_objective_is_the_decoders_likelihood():
    """SetAutoencoder routes the point process through decoder.nll (no matching loss), at any `loss`."""
    m = model(variational=False, loss="chamfer")
    sets = random_sets([4, 0, 7], 2, seed=2)
    batch = SetBatch.from_sets(sets)
    with torch.no_grad():
        terms = m(batch)
        z = m.posterior(batch)[0]
        nll = m.decoder.nll(z, batch)
        expected = brute_force_log_likelihood(m.decoder, z, sets)
    for key in ("recon", "size", "distance"):
        torch.testing.assert_close(terms[key], nll[key])
    torch.testing.assert_close(-(terms["recon"] + terms["size"]), expected, atol=1e-4, rtol=1e-5)
    assert m.has_likelihood_bound and m.has_exact_likelihood


DECODERS = {density: decoder(density) for density in DENSITIES}


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), min_size=1, max_size=4), seed=st.integers(0, 999))
def test_nll_is_permutation_invariant(sizes, seed):
    sets = random_sets(sizes, 2, seed=seed)
    batch = SetBatch.from_sets(sets)
    shuffled = torch.stack([permute_rows(p, n, seed) for p, n in zip(batch.points, sizes, strict=True)])
    z = torch.randn(len(sizes), LATENT, generator=torch.Generator().manual_seed(seed))
    for density in DENSITIES:
        dec = DECODERS[density]
        with torch.no_grad():
            a = dec.nll(z, batch)
            b = dec.nll(z, SetBatch(shuffled, batch.padding_mask, batch.sizes, batch.labels))
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-5, msg=f"{density} {key}")


@pytest.mark.parametrize("density", DENSITIES)
def test_padding_never_changes_the_nll_or_its_gradients(density):
    dec = decoder(density)
    sets = random_sets([3, 0, 5], 2, seed=4)
    clean = SetBatch.from_sets(sets)
    points = torch.cat([clean.points, torch.zeros(3, 3, 2)], 1)
    mask = torch.cat([clean.padding_mask, torch.ones(3, 3, dtype=torch.bool)], 1)
    points[mask] = torch.tensor([[math.nan, math.inf]]).expand(int(mask.sum()), 2)
    padded = SetBatch(points.requires_grad_(), mask, clean.sizes, clean.labels)
    z = torch.randn(3, LATENT, generator=torch.Generator().manual_seed(0), requires_grad=True)
    params = [p for p in dec.parameters() if p.requires_grad]

    def value_and_grads(batch):
        nll = dec.nll(z, batch)
        total = (nll["recon"] + nll["size"]).sum()
        return nll, torch.autograd.grad(total, [z, *params], allow_unused=True)

    a, grads_a = value_and_grads(clean)
    b, grads_b = value_and_grads(padded)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    for ga, gb in zip(grads_a, grads_b, strict=True):
        if ga is None:
            assert gb is None
        else:
            assert torch.isfinite(gb).all()
            torch.testing.assert_close(ga, gb)
    gradient_of_points = torch.autograd.grad(dec.nll(z, padded)["recon"].sum(), points)[0]
    assert torch.equal(gradient_of_points[mask], torch.zeros_like(gradient_of_points[mask]))


def grid_sets(count: int, seed: int) -> list[torch.Tensor]:
    """Sets of 2-12 points on the 1/27 grid in [0, 1]^2, each a noisy cluster."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        centre = rng.uniform(0.3, 0.7, size=2)
        points = centre + 0.1 * rng.standard_normal((int(rng.integers(2, 13)), 2))
        out.append(torch.from_numpy(np.round(np.clip(points, 0, 1) * 27) / 27).float())
    return out


@pytest.mark.parametrize("density", DENSITIES)
def test_importance_weighted_bound_is_at_least_the_elbo(density):
    """On a briefly trained model of dequantised grid data: IWAE-1 estimates the ELBO, and IWAE-64 is at
    least the ELBO, over several seeds, within a tolerance far below the KL."""
    m = model(point_density=density, dequantize=1 / 27).train()
    sets = grid_sets(64, seed=0)
    batch = SetBatch.from_sets(sets)
    optimizer = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(40):
        terms = m(batch)
        loss = (terms["recon"] + terms["size"] + terms["kl"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    m.calibrate_latent_norm([batch])
    m.eval()
    # The same sets, posterior draws and noise: IWAE-1 differs from the ELBO by the sampled KL only
    ones = [
        (objective_terms(m, sets, seed=s), importance_weighted_bound(m, sets, 1, seed=s)) for s in range(32)
    ]
    elbo, kl = np.mean([t["elbo"] for t, _ in ones]), np.mean([t["kl"] for t, _ in ones])
    one = np.mean([b for _, b in ones])
    assert kl > 1.0
    assert abs(one - elbo) < 0.1 * kl  # leaving out log p(z) − log q(z), or the constant, moves it more
    # ... exactly: IWAE-1 scores the same dequantised points as the ELBO (noise drawn after z in both)
    batch = SetBatch.from_sets(sets)
    with torch.no_grad(), seeded(0):
        terms = m(batch)
    with torch.no_grad(), seeded(0):
        iwae_1 = m.importance_bound(batch, 1)
    with torch.no_grad(), seeded(0):
        mean, log_var = m.posterior(batch)
        z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
        log_ratio = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(z) - (
            -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
        )
    elbo_1 = -(terms["recon"] + terms["size"] + terms["kl"]) - m.density_constant(batch.sizes)
    torch.testing.assert_close(iwae_1 - elbo_1, terms["kl"] - log_ratio.sum(1), atol=1e-3, rtol=0)
    many = np.mean([importance_weighted_bound(m, sets, num_samples=64, seed=s) for s in range(3)])
    assert many > elbo - 0.02 * kl
    assert many > one


def test_dequantisation_adds_the_cell_volume_to_the_density_constant():
    sizes = torch.tensor([0, 1, 5])
    continuous = model(dequantize=0.0)
    h = 1 / 27
    discrete = model(dequantize=h)
    difference = discrete.density_constant(sizes) - continuous.density_constant(sizes)
    torch.testing.assert_close(difference, -sizes * 2 * math.log(h))
    torch.testing.assert_close(continuous.density_constant(sizes), torch.zeros(3))  # f is normalised
    normalized = model(dequantize=h, normalize=True)
    normalized.set_normalization(torch.zeros(2), torch.tensor([2.0, 0.25]))
    expected = sizes * (math.log(2.0) + math.log(0.25) - 2 * math.log(h))
    torch.testing.assert_close(normalized.density_constant(sizes), expected)


def cell_terms(m: SetAutoencoder, points: torch.Tensor, h: float, draws: int) -> tuple[float, float, float]:
    """For a 1-D non-variational mixture model and one set `points` [k, 1] in data units: (the model's
    dequantised bound −(recon + size) − density_constant averaged over `draws` noise draws, the same
    expectation by quadrature over the cells, the exact log-probability of the cells from the normal CDF)."""
    batch = SetBatch.from_sets([points] * draws)  # the same set, the same z, `draws` noise draws
    k = len(points)
    with torch.no_grad():
        terms = m(batch)
        bound = float((-(terms["recon"] + terms["size"]) - m.density_constant(batch.sizes)).mean())
        z = m.posterior(batch)[0][:1]
        log_weights, means, tril = (t[0] for t in m.decoder.mixture(z))  # the decoder's frame is the identity
        components = torch.distributions.Normal(means[:, 0], tril[:, 0, 0])
        frame = lambda x: ((x - m.point_mean) / m.point_std)[..., None]  # noqa: E731  [..., 1] -> [..., 1, 1]
        log_size = math.lgamma(k + 1) - float(m.decoder.size_head.nll(z, torch.tensor([k]))[0])
        jacobian = k * float(m.point_std.log().sum())
        grid = points + torch.linspace(-h / 2, h / 2, 4001)  # [k, G]: u uniform over each cell
        log_f = torch.logsumexp(log_weights + components.log_prob(frame(grid)), -1)  # [k, G]
        quadrature = float(log_f.mean(1).sum()) - jacobian + k * math.log(h) + log_size
        upper, lower = frame(points + h / 2)[:, 0], frame(points - h / 2)[:, 0]  # [k, 1]
        cells = (log_weights.exp() * (components.cdf(upper) - components.cdf(lower))).sum(1)  # [k]
        exact = float(cells.log().sum()) + log_size
    return bound, quadrature, exact


def test_dequantised_bound_is_below_the_exact_cell_probability():
    """Known answers in 1-D (standardised units, a 3-Gaussian mixture): the grid cells' probability
    P(X | z) = p(k | z) k! Π_i ∫_cell f from the normal CDF, and E_u[log f(x + u)] by quadrature. The model's
    dequantised bound, averaged over its noise, is E_u[...] + k·log h (so the noise is U(−h/2, h/2)), below
    P(X | z) (Jensen), and within 0.01 nats of it for narrow cells."""
    m = model(point_dim=1, variational=False, normalize=True, dequantize=0.01)
    m.set_point_moments(torch.tensor([0.3]), torch.tensor([0.5]))
    points = torch.tensor([[0.30], [0.12], [0.55], [0.41]])
    bound, quadrature, exact = cell_terms(m, points, 0.01, draws=2000)
    assert bound <= exact + 1e-3 and exact - bound < 0.01
    assert abs(bound - quadrature) < 2e-3
    wide = model(point_dim=1, variational=False, normalize=True, dequantize=0.4)
    wide.set_point_moments(torch.tensor([0.3]), torch.tensor([0.5]))
    bound, quadrature, exact = cell_terms(wide, points, 0.4, draws=4000)
    assert abs(bound - quadrature) < 0.03  # without the noise (log f at the cells' centres) 0.1 away
    assert bound < exact - 0.02  # Jensen: strictly below for wide cells


@pytest.mark.parametrize("density", DENSITIES)
def test_quasi_decode_is_deterministic_and_random_decode_is_seeded(density):
    quasi = model(point_density=density, point_sampling="quasi")
    z = torch.randn(4, LATENT, generator=torch.Generator().manual_seed(5))
    out = quasi.decode(z, seed=0)
    assert [len(o) for o in out] == quasi.decoder.predict_sizes(z).tolist()
    assert all(torch.equal(a, b) for a, b in zip(out, quasi.decode(z, seed=7), strict=True))
    random = model(point_density=density, point_sampling="random")
    a, b, c = random.decode(z, seed=1), random.decode(z, seed=1), random.decode(z, seed=2)
    assert [len(o) for o in a] == random.decoder.predict_sizes(z).tolist()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_quasi_mixture_decode_allots_points_by_weight():
    """k = 1: the heaviest component's mean; larger k: largest-remainder counts, each point within its
    component (the Sobol quantiles are centred: the first point of each component is its mean)."""
    dec = decoder("mixture")
    z = torch.randn(2, LATENT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        log_weights, means, _ = dec.mixture(z)
        one = dec(z, torch.tensor([1, 1])).points[:, 0]
        torch.testing.assert_close(one, dec.loc + dec.scale * means[[0, 1], log_weights.argmax(1)])
        k = 7
        points = dec(z, torch.tensor([k, k])).points
        for i in range(2):
            share = k * log_weights[i].exp()
            counts = share.floor()
            leftover = int(k - counts.sum())
            counts[torch.argsort(share - counts, descending=True)[:leftover]] += 1
            firsts = torch.cat([torch.zeros(1), counts.cumsum(0)[:-1]]).long()
            for m in range(dec.num_components):
                if counts[m] > 0:  # the component's first point is its mean
                    torch.testing.assert_close(points[i, firsts[m]], dec.loc + dec.scale * means[i, m])


def test_config_rejects_unknown_choices_and_needs_dequantize():
    for kw, message in (
        (dict(point_density="kde"), "point_density='kde' is not one of mixture, flow"),
        (dict(point_sampling="grid"), "point_sampling='grid' is not one of quasi, random"),
        (dict(dequantize=-1.0), "dequantize must be >= 0"),
        (dict(decoder_mixtures=0), "decoder_mixtures must be >= 1"),
    ):
        with pytest.raises(SetaeError, match=message) as error:
            model(**kw)
        assert "\n" not in str(error.value)
    with pytest.raises(SetaeError, match="dequantize not set"):
        model(dequantize=None)
    model(decoder="mlp", dequantize=None)  # other decoders do not need it


def test_objective_terms_report_bits_per_point_and_their_meaning():
    m = model(dequantize=1 / 27)
    sets = grid_sets(6, seed=1)
    terms = objective_terms(m, sets)
    points = sum(len(s) for s in sets)
    assert terms["bits_per_point"] == pytest.approx(-terms["elbo"] * len(sets) / (points * math.log(2)))
    meanings = metric_meanings(m)
    assert "point process" in meanings["elbo"] and "dequantised" in meanings["elbo"]
    assert "n·d·log h" in meanings["elbo"] and "bits per point" in meanings["bits_per_point"]
    hungarian = SetAutoencoder(ModelConfig(point_dim=2, max_size=12, latent_dim=LATENT, point_sigma=0.1))
    assert "bits_per_point" not in objective_terms(hungarian, sets)  # a matching's bound, not exact


def test_mnist_configs_resolve_as_before_plus_the_pixel_cell():
    """resolve_from_data on MNIST-named data (small stand-in sets): the pixel's spacing for the point process
    only, every other field as for the other decoders."""
    from setae.datasets import SyntheticSets
    from setae.training.config import resolve_config
    from setae.training.data import MNIST_PIXEL, resolve_from_data

    full = SyntheticSets(300, max_size=20, seed=0)
    resolved = {}
    for name in ("pointprocess", "tspn"):
        config = resolve_config("demo", overrides={"model": {"decoder": name}, "train": {"val_size": 30}})
        resolve_from_data(config, full)
        resolved[name] = config.model
    assert resolved["pointprocess"].dequantize == MNIST_PIXEL and resolved["tspn"].dequantize is None
    assert resolved["pointprocess"].point_sigma == resolved["tspn"].point_sigma == MNIST_PIXEL
    assert resolved["pointprocess"].max_size == resolved["tspn"].max_size == 342
    assert resolved["pointprocess"].normalize is resolved["tspn"].normalize is False


@pytest.mark.parametrize("density", DENSITIES)
def test_engine_trains_on_synthetic_sets(tmp_path, density):
    from setae.training.config import resolve_config
    from setae.training.engine import train

    overrides = {
        "model": {"decoder": "pointprocess", "point_density": density},
        "train": {"steps": 12, "eval_every": 12, "checkpoint_every": 12, "threads": 1},
    }
    config = resolve_config("tiny", overrides=overrides)
    m = train(config, tmp_path / "run", progress=False)
    assert config.model.dequantize == 0.0  # synthetic sets are continuous
    assert m.decoder.loc.sub(0.5).abs().max() < 0.1 and (m.decoder.scale < 0.5).all()  # the data's frame
    records = (tmp_path / "run/log.jsonl").read_text().splitlines()
    assert any('"bits_per_point"' in r for r in records)
    assert setae.load(tmp_path / "run").config.point_density == density


def test_engine_trains_on_3d_user_sets(tmp_path):
    from setae.datasets.synthetic import example_clouds
    from setae.training.config import resolve_config
    from setae.training.engine import train

    example_clouds(tmp_path / "clouds.npz", num_sets=120)
    overrides = {
        "model": {"decoder": "pointprocess", "max_size": "auto"},
        "train": {"data": str(tmp_path / "clouds.npz"), "val_size": 12, "steps": 10, "threads": 1},
    }
    config = resolve_config("tiny", overrides=overrides)
    m = train(config, tmp_path / "run", progress=False)
    assert config.model.point_dim == 3 and config.model.normalize and config.model.dequantize == 0.0
    torch.testing.assert_close(m.decoder.loc, torch.zeros(3))  # standardised points: the identity frame
    out = m.reconstruct([torch.full((20, 3), 10.0)])
    assert out[0].shape[1] == 3 and (out[0].mean(0) - 10).abs().max() < 5  # back in the data's units


@pytest.mark.parametrize("density", DENSITIES)
def test_checkpoint_round_trip(tmp_path, density):
    m = model(point_density=density, dequantize=1 / 27, normalize=True)
    m.set_point_moments(torch.tensor([0.4, 0.6]), torch.tensor([0.3, 0.2]))
    m.decoder.set_frame(torch.tensor([0.1, -0.2]), torch.tensor([1.5, 0.8]))
    sets = grid_sets(5, seed=2)
    loaded = setae.load(m.save(tmp_path / "model"))
    assert loaded.config == m.config
    torch.testing.assert_close(loaded.decoder.scale, m.decoder.scale)
    batch = SetBatch.from_sets(sets)
    torch.manual_seed(0)
    a = m(batch)
    torch.manual_seed(0)
    b = loaded(batch)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    z = m.encode(sets)
    assert all(torch.equal(x, y) for x, y in zip(m.decode(z), loaded.decode(z), strict=True))


def test_a_matching_model_scored_dequantised_adds_the_noise_and_the_cell_volume():
    """`dequantized(h)` on a Hungarian model trained without it: the constant gains −n·d·log h, and the
    target gets U(−h/2, h/2)^d noise, which raises the squared error by d·h²/12 (E|x + u − y|² = |x − y|² +
    d·h²/12; one point, so no matching to change), i.e. d·h²/(24σ²) nats."""
    h, sigma = 1.0, 1.0
    m = SetAutoencoder(
        ModelConfig(max_size=8, point_sigma=sigma, variational=False, decoder="mlp", loss="hungarian")
    ).eval()
    batch = SetBatch.from_sets([torch.tensor([[0.3, 0.8]])] * 8000)
    sizes = batch.sizes
    with torch.no_grad():
        clean = float(m(batch)["recon"][0])
        plain = m.density_constant(sizes)
        with m.dequantized(h), seeded(0):
            noisy = m(batch)["recon"]
            torch.testing.assert_close(m.density_constant(sizes) - plain, -sizes * 2 * math.log(h) + 0.0)
            constant = m.density_constant(torch.tensor([3]))
    assert m.config.dequantize is None, "restored after the block"
    assert noisy.std() > 0.01, "fresh noise per set"
    assert abs(float(noisy.mean()) - clean - 2 * h**2 / (24 * sigma**2)) < 0.01
    big = 0.25  # the constant scales with log h: −n·d·log h
    with m.dequantized(big):
        torch.testing.assert_close(
            m.density_constant(torch.tensor([3])) - constant, torch.tensor([-3 * 2 * math.log(big)])
        )


def test_eval_gives_matching_models_discrete_bounds_on_grid_data():
    from setae.cli import _likelihood_metrics

    m = SetAutoencoder(ModelConfig(max_size=16, point_sigma=1 / 27, latent_dim=4, decoder="mlp")).eval()
    sets = grid_sets(8, seed=1)
    plain = _likelihood_metrics(m, sets, None, 0, grid=None)
    assert set(plain) == {"iwae_sets", "iwae_64", "elbo_iwae_sets"}
    out = _likelihood_metrics(m, sets, None, 0, grid=1 / 27)
    assert {"iwae_64_discrete", "elbo_iwae_sets_discrete", "bits_per_point_iwae_64_discrete"} <= set(out)
    points = sum(len(s) for s in sets) / len(sets)
    # log P(cells) = log p(X + u) + n·d·log h: −n·d·log 27 ≈ −41 nats here, ± the noise's (an untrained
    # model's large errors make u's cross term a few nats per set); a density of points is not a probability
    shift = out["elbo_iwae_sets_discrete"] - out["elbo_iwae_sets"]
    assert -1.5 * points * 2 * math.log(27) < shift < -0.5 * points * 2 * math.log(27)
    assert out["bits_per_point_iwae_64_discrete"] > 0, "a probability: log P ≤ 0"

"""The point refiner: point-wise and padding-proof, not applied until fitted, and fitted to lower the Chamfer
distance of the decoded sets; the model applies it wherever it decodes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import SMALL_MODEL, permute_rows, random_sets
from setae.datasets.batch import SetBatch
from setae.errors import SetaeError
from setae.models.autoencoder import SetAutoencoder
from setae.models.config import LOSSES, ModelConfig
from setae.nn.decoders import padding_mask_from_sizes
from setae.nn.losses import chamfer_loss
from setae.nn.point_refiner import PointRefiner
from setae.training.config import TrainConfig

LATENT = 5


def moving_refiner(seed: int = 0) -> PointRefiner:
    torch.manual_seed(seed)
    refiner = PointRefiner(LATENT, 2, hidden=16, spacing=0.1)
    torch.nn.init.normal_(refiner.displacement.weight)  # Δ ≠ 0
    return refiner


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=3),
    extra=st.integers(0, 3),
    seed=st.integers(0, 99),
)
def test_refiner_is_point_wise_and_padding_never_reaches_a_point(sizes, extra, seed):
    """Permuting a set's points permutes their refinements; padded rows (inf and NaN among them) change
    neither the valid points' outputs nor their gradients, and come out as zeros."""
    g = torch.Generator().manual_seed(seed)
    refiner = moving_refiner(seed)
    sizes_t = torch.tensor(sizes)
    n = max(sizes) + extra
    points = torch.rand(len(sizes), n, 2, generator=g)
    z = torch.randn(len(sizes), LATENT, generator=g)
    mask = padding_mask_from_sizes(sizes_t, n)
    clean = points.masked_fill(mask[..., None], 0.0).requires_grad_()
    out = refiner(clean, z, mask)
    poisoned = points.masked_fill(mask[..., None], float("nan"))
    poisoned[..., 0] = poisoned[..., 0].masked_fill(mask, float("inf"))
    poisoned.requires_grad_()
    out_poisoned = refiner(poisoned, z, mask)
    assert torch.equal(out, out_poisoned) and torch.all(out[mask] == 0)
    (grad,) = torch.autograd.grad(out.square().sum(), clean)
    (grad_poisoned,) = torch.autograd.grad(out_poisoned.square().sum(), poisoned)
    assert torch.equal(grad[~mask], grad_poisoned[~mask]) and torch.all(grad_poisoned[mask] == 0)
    for i, k in enumerate(sizes):
        shuffled = refiner(permute_rows(points[i], k, seed)[None], z[i : i + 1], mask[i : i + 1])[0]
        torch.testing.assert_close(shuffled[:k], permute_rows(out[i].detach(), k, seed)[:k])
    assert not torch.allclose(out[~mask], points[~mask]) or not (~mask).any()  # it does move points


def test_a_fresh_refiner_is_the_identity_and_unfitted():
    refiner = moving_refiner()
    refiner.reset_parameters()
    points, z = torch.rand(2, 4, 2), torch.randn(2, LATENT)
    torch.testing.assert_close(refiner(points, z, torch.zeros(2, 4, dtype=torch.bool)), points)
    assert not refiner.is_fitted


def model_with_refiner() -> SetAutoencoder:
    """A plain autoencoder, so that `forward` decodes the posterior mean as `decode` does."""
    torch.manual_seed(0)
    return SetAutoencoder(ModelConfig(**{**SMALL_MODEL, "variational": False, "point_refiner": 16}))


def test_model_applies_the_refiner_only_once_fitted_and_fitting_lowers_the_chamfer_distance():
    model = model_with_refiner()
    sets = random_sets([5, 8, 3, 12, 7, 9], dim=2, seed=1)
    batch = SetBatch.from_sets(sets)
    model.eval()
    z = model.posterior(batch)[0]
    decoded = model.decoder(z, batch.sizes)
    sizes = model.decoder.predict_sizes(z)
    plain = model.decoder(z, sizes).points
    # an unfitted refiner that would move points is still not applied
    torch.nn.init.normal_(model.point_refiner.displacement.weight)
    for out, ref, k in zip(model.reconstruct(sets), plain, sizes, strict=True):
        torch.testing.assert_close(out, ref[:k].detach())
    model.point_refiner.reset_parameters()

    def chamfer(points):
        return chamfer_loss(points, batch.points, decoded.padding_mask, batch.padding_mask).item()

    with torch.no_grad():
        before = chamfer(decoded.points)
        assert chamfer(model.point_refiner(decoded.points, z, decoded.padding_mask)) == before
    model.fit_point_refiner([batch] * 200, lr=1e-2)
    assert model.has_point_refiner
    with torch.no_grad():
        refined = model.point_refiner(decoded.points, z, decoded.padding_mask)
        assert chamfer(refined) < 0.5 * before
        # the rest of the model is untouched: the plain decoder's sets are the same
        torch.testing.assert_close(model.decoder(z, batch.sizes).points, decoded.points)
    # decode (and so reconstruct and sample) and the evaluation-time likelihood go through the refiner
    expected = model.point_refiner(plain, z, padding_mask_from_sizes(sizes))
    assert not torch.allclose(expected, plain)
    for out, ref, k in zip(model.reconstruct(sets), expected, sizes, strict=True):
        torch.testing.assert_close(out, ref[:k].detach())
    with torch.no_grad():  # the model is in eval mode: `forward` scores the refined set
        distance = model(batch)["distance"]
        loss_fn, _ = LOSSES[model.config.loss]
        expected = loss_fn(refined, batch.points, decoded.padding_mask, batch.padding_mask, reduction="none")
    torch.testing.assert_close(distance, expected)


def test_refiner_needs_a_set_loss_decoder_and_valid_settings():
    with pytest.raises(SetaeError, match="point_refiner"):
        ModelConfig(**{**SMALL_MODEL, "point_refiner": -1}).validate()
    with pytest.raises(SetaeError, match="refine_steps"):
        TrainConfig(refine_steps=-1).validate()
    pointprocess = SetAutoencoder(
        ModelConfig(**{**SMALL_MODEL, "decoder": "pointprocess", "dequantize": 0.0, "point_refiner": 16})
    )
    assert not hasattr(pointprocess, "point_refiner")
    with pytest.raises(SetaeError, match="fit_point_refiner"):
        pointprocess.fit_point_refiner([])

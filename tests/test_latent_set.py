"""A latent set (latent_set = K > 0): PMA with K seeds -> K code vectors -> a TSPN that cross-attends to them.

What holds, and what does not: the code is invariant to the input's order and padding; it is ordered by
the PMA seeds (permuting the seeds, with their per-element statistics, permutes its K elements); the decoder
treats the K elements as a set (permuting them leaves the decoded set unchanged); a flat code's order is not
free otherwise (swapping two elements of a single-vector model's code changes its output)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import SMALL_MODEL, random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch

K, D_K = 4, 3
SMALL = {
    **SMALL_MODEL,
    "latent_dim": K * D_K,
    "latent_set": K,
    "encoder": "settransformer",
    "decoder": "tspn",
    "decoder_layers": 2,
}


def model(**kw) -> SetAutoencoder:
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**{**SMALL, **kw}))
    m.train()  # give the code standardisation non-trivial statistics, as after training
    sizes, labels = [5, 7, 12, 3, 9, 1], [0, 1, 2, 3, 4, 5]
    m.calibrate_latent_norm([SetBatch.from_sets(random_sets(sizes, 2, seed=s), labels) for s in range(2)])
    return m.eval()


MODELS = {"vae": model(), "plain": model(variational=False), "conditional": model(conditional=True)}


def element_permutation(perm: torch.Tensor) -> torch.Tensor:
    """The flat index order [K·d_k] that permutes whole elements of a latent set by `perm` [K]."""
    return (perm[:, None] * D_K + torch.arange(D_K)).flatten()


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    seed=st.integers(0, 999),
    junk=st.sampled_from([0.0, 7.0, float("nan"), float("inf")]),
)
def test_code_is_invariant_to_order_and_padding(sizes, extra, seed, junk):
    for name, m in MODELS.items():
        sets = random_sets(sizes, 2, seed=seed)
        labels = [i % 10 for i in range(len(sets))]
        batch = SetBatch.from_sets(sets, labels)
        g = torch.Generator().manual_seed(seed)
        shuffled = SetBatch.from_sets([s[torch.randperm(len(s), generator=g)] for s in sets], labels)
        width = batch.points.shape[1] + extra
        padded = SetBatch.from_sets(sets, labels, pad_to=width)
        padded.points[padded.padding_mask] = junk  # NaN / inf at padding never reach the code
        mean = m.posterior(batch)[0]
        assert mean.shape == (len(sizes), K * D_K), name
        torch.testing.assert_close(m.posterior(shuffled)[0], mean, atol=1e-4, rtol=1e-4, msg=name)
        torch.testing.assert_close(m.posterior(padded)[0], mean, atol=1e-4, rtol=1e-4, msg=name)
        assert torch.isfinite(mean).all(), name


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 999))
def test_decoder_treats_the_latent_set_as_a_set(seed):
    """Permuting the K elements of z (each element's d_k numbers together) leaves the decoded set — its
    predicted size, its points and its size likelihood — unchanged; a vector model's decoder is not."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(K, generator=g)
    while torch.equal(perm, torch.arange(K)):
        perm = torch.randperm(K, generator=g)
    index = element_permutation(perm)
    m = MODELS["vae"]
    z = torch.randn(3, K * D_K, generator=g)
    sizes = torch.tensor([0, 1, 9])
    with torch.no_grad():
        out = m.decoder(z, sizes, generator=torch.Generator().manual_seed(1))
        out_p = m.decoder(z[:, index], sizes, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out_p.points, out.points, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_p.size_nll, out.size_nll, atol=1e-5, rtol=1e-5)
    assert torch.equal(m.decoder.predict_sizes(z[:, index]), m.decoder.predict_sizes(z))
    labels = torch.tensor([3, 0, 9])
    conditional = MODELS["conditional"]
    with torch.no_grad():
        a = conditional._decoder_input(z, labels)
        b = conditional._decoder_input(z[:, index], labels)
    torch.testing.assert_close(b, a[:, index])  # the label is added to every element alike
    vector = model(latent_set=0)  # the same flat code read as one vector: its order matters
    with torch.no_grad():
        a = vector.decoder(z, sizes, generator=torch.Generator().manual_seed(1))
        b = vector.decoder(z[:, index], sizes, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a.size_nll, b.size_nll, atol=1e-4)


def test_the_seeds_order_the_elements():
    """Permuting the PMA seeds (and with them each element's standardisation statistics and scale γ, which
    belong to the seed) permutes the code's elements, and the reconstruction is the same; permuting the
    seeds alone is another model, whose code is not the permuted one."""
    m = MODELS["plain"]
    sets = random_sets([0, 1, 6, 12], 2, seed=3)
    z = m.encode(sets)
    perm = torch.tensor([2, 0, 3, 1])
    index = element_permutation(perm)
    moved = model(variational=False)
    with torch.no_grad():
        moved.encoder.pool.seeds.copy_(m.encoder.pool.seeds[perm])
    assert not torch.allclose(moved.encode(sets), z[:, index], atol=1e-4)  # the statistics stay behind
    with torch.no_grad():
        moved.latent_norm.running_mean.copy_(m.latent_norm.running_mean[index])
        moved.latent_norm.running_var.copy_(m.latent_norm.running_var[index])
        moved.latent_scale.copy_(m.latent_scale[index])
    torch.testing.assert_close(moved.encode(sets), z[:, index], atol=1e-5, rtol=1e-5)
    a, b = m.reconstruct(sets, seed=2), moved.reconstruct(sets, seed=2)
    assert [len(x) for x in a] == [len(x) for x in b]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_api_shapes_pooled_codes_and_sampling():
    m = MODELS["vae"]
    sets = random_sets([3, 0, 12], 2, seed=0)
    z = m.encode(sets)
    assert z.shape == (3, K * D_K)
    assert m.latent_elements(z).shape == (3, K, D_K)
    torch.testing.assert_close(m.pooled_codes(z), z.view(3, K, D_K).mean(1))
    perm = element_permutation(torch.tensor([3, 2, 1, 0]))
    torch.testing.assert_close(m.pooled_codes(z[:, perm]), m.pooled_codes(z))
    assert all(s.shape[1] == 2 for s in m.sample(4, seed=0))
    assert [len(s) for s in m.reconstruct(sets)] == m.decoder.predict_sizes(z).tolist()
    vector = model(latent_set=0)
    torch.testing.assert_close(vector.pooled_codes(z), z)


def test_training_step_and_kl_on_the_flat_code():
    m = MODELS["vae"]
    m.train()
    terms = m(SetBatch.from_sets(random_sets([4, 0, 12, 1], 2, seed=1)))
    m.eval()
    assert terms["kl"].shape == (4,) and torch.isfinite(terms["kl"]).all()
    (terms["recon"] + terms["size"] + terms["kl"]).mean().backward()
    assert m.encoder.pool.seeds.grad is not None and m.decoder.cross[0].to_q.weight.grad is not None


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(latent_set=5), "divide latent_dim"),
        (dict(latent_set=-1), "latent_set must be >= 0"),
        (dict(encoder="deepsets"), "needs encoder='settransformer'"),
        (dict(decoder="mlp"), "decoder='tspn'"),
    ],
)
def test_bad_latent_set_configs(bad, match):
    with pytest.raises(SetaeError, match=match):
        ModelConfig(**{**SMALL, **bad}).validate()

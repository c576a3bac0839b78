"""Decoders: equivariant blocks, padding-proof outputs, proper size distributions, sizes that are learned."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import permute_rows
from setae.nn import DSPNDecoder, MLPDecoder, RNNDecoder, SlotDecoder, TSPNDecoder
from setae.nn.decoders import padding_mask_from_sizes
from setae.nn.size_heads import CategoricalSizeHead, PoissonSizeHead

LATENT = 8


def tspn(num_inducing: int, latent_set: int = 0) -> TSPNDecoder:
    torch.manual_seed(0)
    return TSPNDecoder(
        LATENT,
        3,
        max_size=12,
        dim=16,
        num_heads=4,
        num_layers=2,
        num_inducing=num_inducing,
        init_dim=4,
        latent_set=latent_set,
    )


def slot() -> SlotDecoder:
    torch.manual_seed(0)
    return SlotDecoder(LATENT, 3, max_size=12, dim=16, num_tokens=5, num_iters=2, init_dim=4)


# Decoders whose `transform(initial [B, n, dim], z, padding_mask)` must be permutation-equivariant.
EQUIVARIANT = {"tspn-sab": tspn(0), "tspn-isab": tspn(3), "tspn-latent-set": tspn(3, 4), "slot": slot()}


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    seed=st.integers(0, 999),
)
def test_transforms_equivariant_and_padding_invariant(sizes, extra, seed):
    g = torch.Generator().manual_seed(seed)
    sizes_t = torch.tensor(sizes)
    z = torch.randn(len(sizes), LATENT, generator=g)
    for name, dec in EQUIVARIANT.items():
        initial = dec.initial(sizes_t, generator=g)
        mask = padding_mask_from_sizes(sizes_t)
        out = dec.transform(initial, z, mask)
        permuted = torch.stack([permute_rows(e, n, seed) for e, n in zip(initial, sizes, strict=True)])
        out_p = dec.transform(permuted, z, mask)
        padded = torch.cat([initial, torch.full((len(sizes), extra, initial.shape[2]), 9.0)], dim=1)
        out_pad = dec.transform(padded, z, padding_mask_from_sizes(sizes_t, initial.shape[1] + extra))
        for i, n in enumerate(sizes):
            expected = permute_rows(out[i], n, seed)[:n]
            torch.testing.assert_close(out_p[i, :n], expected, atol=1e-5, rtol=1e-5, msg=name)
            torch.testing.assert_close(out_pad[i, :n], out[i, :n], atol=1e-5, rtol=1e-5, msg=name)
            assert torch.all(out_pad[i, n:] == 0), name


def test_slot_attention_normalises_over_queries():
    """Each token's attention is a distribution over the real slots: slots compete for tokens."""
    dec = slot()
    sizes = torch.tensor([4, 1, 0])
    slots = dec.initial(sizes, torch.Generator().manual_seed(0))
    keys = torch.randn(3, dec.num_tokens, 16)
    a = dec.attention(slots, keys, padding_mask_from_sizes(sizes))
    assert a.shape == (3, 4, dec.num_tokens)
    torch.testing.assert_close(a[:2].sum(1), torch.ones(2, dec.num_tokens))
    assert torch.all(a[1, 1:] == 0) and torch.all(a[2] == 0)
    assert not torch.allclose(a[0].sum(1), torch.ones(4)), "rows (over tokens) are not normalised"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 999))
def test_dspn_inner_loop_is_permutation_equivariant(seed):
    torch.manual_seed(0)
    dec = DSPNDecoder(LATENT, 2, max_size=7, dim=16, num_steps=3, inner_lr=5.0)
    g = torch.Generator().manual_seed(seed)
    points, presence, z = (
        torch.randn(2, 7, 2, generator=g),
        torch.randn(2, 7, generator=g),
        torch.randn(2, LATENT),
    )
    perm = torch.randperm(7, generator=g)
    for train in (True, False):
        dec.train(train)
        out = dec.refine(points, presence, z)
        out_p = dec.refine(points[:, perm], presence[:, perm], z)
        assert len(out) == 3
        for (a, pa), (b, pb) in zip(out, out_p, strict=True):
            torch.testing.assert_close(b, a[:, perm], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(pb, pa[:, perm], atol=1e-5, rtol=1e-5)


def test_dspn_inner_gradients_match_autograd():
    """The closed-form ∇_Y L and ∇_a L equal autograd's gradient of L = Σ mean_c (g(Y, σ(a)) − t)²."""
    torch.manual_seed(0)
    dec = DSPNDecoder(LATENT, 3, max_size=9, dim=16, num_layers=2).double()
    points = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 16, dtype=torch.float64)
    loss = (dec.embedding(points, torch.sigmoid(logits)) - target).square().mean(1).sum()
    expected = torch.autograd.grad(loss, (points, logits))
    with torch.no_grad():
        got = dec.inner_gradients(points, logits, target)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
        assert b.abs().max() > 1e-3, "a zero gradient would compare equal trivially"


def test_dspn_supervises_every_step_and_restores_grad_mode():
    torch.manual_seed(0)
    dec = DSPNDecoder(LATENT, 2, max_size=7, dim=16, num_steps=4, inner_lr=5.0)
    z, sizes = torch.randn(3, LATENT, requires_grad=True), torch.tensor([0, 3, 7])
    out = dec(z, sizes)
    assert len(out.steps) == 3 and all(s.shape == out.points.shape for s in out.steps)
    out.steps[0].sum().backward()  # the earlier steps are part of the graph (create_graph)
    assert z.grad is not None and dec.init_points.grad is not None
    dec.eval()
    with torch.no_grad():
        points = dec(z, sizes).points
        assert not torch.is_grad_enabled() and not points.requires_grad
    assert points.shape == (3, 7, 2) and torch.all(points[0] == 0)


def test_forward_uses_given_sizes_and_generator():
    z = torch.randn(3, LATENT)
    sizes = torch.tensor([0, 1, 5])
    for dec in EQUIVARIANT.values():
        a = dec(z, sizes, generator=torch.Generator().manual_seed(1))
        b = dec(z, sizes, generator=torch.Generator().manual_seed(1))
        c = dec(z, sizes, generator=torch.Generator().manual_seed(2))
        assert a.points.shape == (3, 5, 3) and a.padding_mask.sum(1).tolist() == [5, 4, 0]
        torch.testing.assert_close(a.points, b.points)
        assert not torch.allclose(a.points[2], c.points[2]), "a new draw of the initial set gives new points"
        assert 0 <= int(dec.predict_sizes(z).max()) <= 12


def all_size_nlls(dec, z: torch.Tensor, max_size: int) -> torch.Tensor:
    """[B, max_size + 1]: −log p(k | z) for every k."""
    return torch.stack([dec(z, torch.full((z.shape[0],), k)).size_nll for k in range(max_size + 1)], 1)


def test_size_distributions_sum_to_one():
    """The RNN's stop model, DSPN's size and the categorical head are proper distributions over
    k = 0..max_size; the Poisson head's mass on 0..max_size is at most 1."""
    torch.manual_seed(0)
    z = torch.randn(4, LATENT)
    rnn = RNNDecoder(LATENT, 2, max_size=9, dim=16)
    dspn = DSPNDecoder(LATENT, 2, max_size=9, dim=16, num_steps=2, inner_lr=5.0)
    for dec in (rnn, dspn):
        torch.testing.assert_close(
            torch.logsumexp(-all_size_nlls(dec, z, 9), 1), torch.zeros(4), atol=1e-5, rtol=0
        )
    sizes = torch.arange(10)
    categorical, poisson = CategoricalSizeHead(LATENT, 9), PoissonSizeHead(LATENT, 9)
    for head, exact in ((categorical, True), (poisson, False)):
        mass = torch.stack([torch.exp(-head.nll(z, k.expand(4))) for k in sizes], 1).sum(1)
        assert torch.allclose(mass, torch.ones(4), atol=1e-5) if exact else torch.all(mass <= 1 + 1e-6)


def test_rnn_decoder_predicts_the_median_size():
    torch.manual_seed(0)
    rnn = RNNDecoder(LATENT, 2, max_size=9, dim=16)
    z = torch.randn(16, LATENT) * 3
    cdf = torch.exp(-all_size_nlls(rnn, z, 9)).cumsum(1)
    medians = (cdf >= 0.5).float().argmax(1)
    assert len(set(medians.tolist())) > 1, "the test needs codes with different medians"
    assert rnn.predict_sizes(z).tolist() == medians.tolist()


def test_poisson_head_matches_the_poisson_pmf():
    head = PoissonSizeHead(LATENT, 50)
    z, k = torch.randn(5, LATENT), torch.tensor([0, 1, 3, 10, 50])
    expected = -torch.distributions.Poisson(head.rate(z)).log_prob(k.float())
    torch.testing.assert_close(head.nll(z, k), expected)
    z = torch.randn(7, LATENT)
    rates = torch.tensor([0.0011, 0.04, 0.5, 2.0, 8.7, 9.0, 30.3])  # the approximation is < 0 below 0.046
    cdf = torch.distributions.Poisson(rates[:, None]).log_prob(torch.arange(200.0)).exp().cumsum(1)
    medians = (cdf >= 0.5).float().argmax(1)
    head.rate = lambda z: rates
    assert head.predict(z).tolist() == medians.tolist()
    head.max_size = 20
    assert head.predict(z).tolist() == medians.clamp(max=20).tolist()


@pytest.mark.parametrize(
    "make",
    [
        lambda: TSPNDecoder(LATENT, 2, 12, dim=16, num_layers=1),
        lambda: TSPNDecoder(LATENT, 2, 12, dim=16, num_layers=1, size_head="poisson"),
        lambda: MLPDecoder(LATENT, 2, 12, hidden=32),
        lambda: RNNDecoder(LATENT, 2, 12, dim=32),
        lambda: SlotDecoder(LATENT, 2, 12, dim=16, num_iters=1),
        lambda: DSPNDecoder(LATENT, 2, 12, dim=32, num_steps=4, inner_lr=4.0),
    ],
    ids=["tspn", "tspn-poisson", "mlp", "rnn", "slot", "dspn"],
)
def test_size_models_learn_the_size(make):
    """Every size model fits a size that is a function of z (the Poisson head down to its own entropy)."""
    torch.manual_seed(0)
    dec = make()
    z = torch.randn(64, LATENT)
    sizes = (z[:, 0] > 0).long() * 7 + 2  # 2 or 9
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    floor = 0.0
    if "Poisson" in repr(dec):
        floor = -torch.distributions.Poisson(sizes.float()).log_prob(sizes.float()).mean().item()
    before = dec(z, sizes).size_nll.mean().item() - floor
    for _ in range(150):
        opt.zero_grad()
        dec(z, sizes).size_nll.mean().backward()
        opt.step()
    assert dec(z, sizes).size_nll.mean().item() - floor < 0.1 * before
    dec.eval()
    assert (dec.predict_sizes(z) == sizes).float().mean() > 0.9


def test_mlp_decoder_presents_the_first_slots():
    dec = MLPDecoder(LATENT, 2, max_size=10, hidden=16)
    z = torch.randn(2, LATENT)
    out = dec(z, torch.tensor([3, 0]))
    assert out.points.shape == (2, 3, 2) and out.padding_mask.tolist() == [[False] * 3, [True] * 3]
    slots, _ = dec.slots(z)
    torch.testing.assert_close(out.points[0], slots[0, :3])


def test_inference_draws_do_not_depend_on_the_other_sizes():
    """Decoding with a generator: set i's first k initial elements are the same draws whatever the sizes."""
    dec = EQUIVARIANT["tspn-isab"].initial
    small = dec.sample(torch.tensor([3, 2]), generator=torch.Generator().manual_seed(5))
    large = dec.sample(torch.tensor([4, 12]), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(small[0, :3], large[0, :3])
    torch.testing.assert_close(small[1, :2], large[1, :2])


def test_dspn_presence_is_a_training_term_beside_the_size_likelihood():
    """DSPN's presence NLL is `auxiliary_nll`: in the training objective's size term, not in eval's."""
    from setae import ModelConfig, SetAutoencoder
    from setae.datasets import SetBatch

    torch.manual_seed(0)
    model = SetAutoencoder(
        ModelConfig(
            max_size=7, point_sigma=0.1, latent_dim=LATENT, decoder="dspn", decoder_dim=16, decoder_steps=2
        )
    )
    batch = SetBatch.from_sets([torch.rand(n, 2) for n in (2, 5, 7)])
    z = model.posterior(batch)[0].detach()
    out = model.decoder(z, batch.sizes)
    assert out.auxiliary_nll is not None and torch.all(out.auxiliary_nll > 0)
    torch.testing.assert_close(out.size_nll, model.decoder.size_head.nll(z, batch.sizes))
    train_size = model._negative_log_likelihood(batch, z)["size"]
    torch.testing.assert_close(train_size, out.size_nll + out.auxiliary_nll)
    model.eval()
    torch.testing.assert_close(model._negative_log_likelihood(batch, z)["size"], out.size_nll)

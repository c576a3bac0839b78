"""Decoders: the TSPN transformer stack is permutation-equivariant and padding-proof; sizes are predicted."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import permute_rows
from setae.nn import MLPDecoder, TSPNDecoder
from setae.nn.decoders import padding_mask_from_sizes

LATENT = 8


def tspn(num_inducing: int) -> TSPNDecoder:
    torch.manual_seed(0)
    return TSPNDecoder(
        LATENT, 3, max_size=12, dim=16, num_heads=4, num_layers=2, num_inducing=num_inducing, init_dim=4
    )


TSPNS = {"sab": tspn(0), "isab": tspn(3)}


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    seed=st.integers(0, 999),
)
def test_tspn_transform_equivariant_and_padding_invariant(sizes, extra, seed):
    g = torch.Generator().manual_seed(seed)
    sizes_t = torch.tensor(sizes)
    z = torch.randn(len(sizes), LATENT, generator=g)
    for dec in TSPNS.values():
        initial = dec.initial_set(sizes_t, generator=g)
        mask = padding_mask_from_sizes(sizes_t)
        out = dec.transform(initial, z, mask)
        permuted = torch.stack([permute_rows(e, n, seed) for e, n in zip(initial, sizes, strict=True)])
        out_p = dec.transform(permuted, z, mask)
        padded = torch.cat([initial, torch.full((len(sizes), extra, initial.shape[2]), 9.0)], dim=1)
        out_pad = dec.transform(padded, z, padding_mask_from_sizes(sizes_t, initial.shape[1] + extra))
        for i, n in enumerate(sizes):
            torch.testing.assert_close(out_p[i, :n], permute_rows(out[i], n, seed)[:n], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out_pad[i, :n], out[i, :n], atol=1e-5, rtol=1e-5)
            assert torch.all(out_pad[i, n:] == 0)


def test_tspn_forward_uses_given_sizes_and_generator():
    dec = TSPNS["isab"]
    z = torch.randn(3, LATENT)
    sizes = torch.tensor([0, 1, 5])
    a, mask = dec(z, sizes, generator=torch.Generator().manual_seed(1))
    b, _ = dec(z, sizes, generator=torch.Generator().manual_seed(1))
    c, _ = dec(z, sizes, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 5, 3) and mask.sum(1).tolist() == [5, 4, 0]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[2], c[2]), "a new draw of the initial set gives new points"
    assert 0 <= int(dec.predict_sizes(z).max()) <= 12


def test_size_heads_learn_the_size():
    """Both size models fit a size that is a function of z."""
    torch.manual_seed(0)
    z = torch.randn(64, LATENT)
    sizes = (z[:, 0] > 0).long() * 7 + 2  # 2 or 9
    for dec in (TSPNDecoder(LATENT, 2, 12, dim=16, num_layers=1), MLPDecoder(LATENT, 2, 12, hidden=32)):
        opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
        before = dec.size_nll(z, sizes).mean().item()
        for _ in range(150):
            opt.zero_grad()
            dec.size_nll(z, sizes).mean().backward()
            opt.step()
        assert dec.size_nll(z, sizes).mean().item() < 0.1 * before
        assert (dec.predict_sizes(z) == sizes).float().mean() > 0.95


def test_mlp_decoder_presents_the_first_slots():
    dec = MLPDecoder(LATENT, 2, max_size=10, hidden=16)
    z = torch.randn(2, LATENT)
    points, mask = dec(z, torch.tensor([3, 0]))
    assert points.shape == (2, 3, 2) and mask.tolist() == [[False] * 3, [True] * 3]
    slots, _ = dec._slots(z)
    torch.testing.assert_close(points[0], slots[0, :3])


def test_tspn_inference_draws_do_not_depend_on_the_other_sizes():
    """Decoding with a generator: set i's first k initial elements are the same draws whatever the sizes."""
    dec = TSPNS["isab"]
    small = dec.initial_set(torch.tensor([3, 2]), generator=torch.Generator().manual_seed(5))
    large = dec.initial_set(torch.tensor([4, 12]), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(small[0, :3], large[0, :3])
    torch.testing.assert_close(small[1, :2], large[1, :2])

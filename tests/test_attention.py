"""SAB/ISAB are permutation-equivariant, PMA invariant, and padding never changes a real element's output."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import permute_rows, random_sets
from setae.datasets import SetBatch
from setae.nn import ISAB, PMA, SAB, MultiheadAttentionBlock

DIM = 16


def blocks():
    torch.manual_seed(0)
    return {"sab": SAB(DIM, 4), "isab": ISAB(DIM, 4, num_inducing=3), "pma": PMA(DIM, 4, num_seeds=2)}


BLOCKS = blocks()
sizes_strategy = st.lists(st.integers(0, 9), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(sizes=sizes_strategy, extra=st.integers(0, 5), seed=st.integers(0, 1000))
def test_padding_never_changes_outputs(sizes, extra, seed):
    sets = random_sets(sizes, DIM, seed)
    tight = SetBatch.from_sets(sets)
    loose = SetBatch.from_sets(sets, pad_to=max(sizes) + extra)
    loose.points[loose.padding_mask] = 1e3  # garbage in padded rows must be ignored
    for name, block in BLOCKS.items():
        a, b = block(tight.points, tight.padding_mask), block(loose.points, loose.padding_mask)
        if name == "pma":
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        else:
            for i, n in enumerate(sizes):
                torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-5, rtol=1e-5)
                assert torch.all(b[i, n:] == 0), "padded output rows are zeroed"


@settings(max_examples=30, deadline=None)
@given(sizes=sizes_strategy, seed=st.integers(0, 1000))
def test_sab_isab_equivariant_and_pma_invariant(sizes, seed):
    batch = SetBatch.from_sets(random_sets(sizes, DIM, seed))
    permuted = torch.stack([permute_rows(p, n, seed) for p, n in zip(batch.points, sizes, strict=True)])
    for name, block in BLOCKS.items():
        out, out_p = block(batch.points, batch.padding_mask), block(permuted, batch.padding_mask)
        if name == "pma":
            torch.testing.assert_close(out, out_p, atol=1e-5, rtol=1e-5)
        else:
            for i, n in enumerate(sizes):
                expected = permute_rows(out[i], n, seed)
                torch.testing.assert_close(out_p[i, :n], expected[:n], atol=1e-5, rtol=1e-5)


def test_empty_key_set_gives_finite_output_and_no_attention_update():
    torch.manual_seed(0)
    mab = MultiheadAttentionBlock(DIM, 4)
    x, y = torch.randn(2, 3, DIM), torch.randn(2, 5, DIM)
    mask = torch.tensor([[True] * 5, [False, False, True, True, True]])
    out = mab(x, y, mask)
    assert torch.isfinite(out).all()
    # with no keys the block is x + FF(LN(x)): the same as attending over a zero update
    expected = x[0] + mab.ff(mab.norm_ff(x[0]))
    torch.testing.assert_close(out[0], expected)


def test_sab_changes_when_a_real_element_changes():
    """Guards the tests above against a block that ignores its input."""
    batch = SetBatch.from_sets(random_sets([5], DIM, 1))
    block = BLOCKS["sab"]
    moved = batch.points.clone()
    moved[0, 4] = torch.randn(DIM)  # not a constant shift, which LayerNorm would remove
    assert not torch.allclose(
        block(batch.points, batch.padding_mask)[0, 0], block(moved, batch.padding_mask)[0, 0]
    )


def test_bad_head_count_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttentionBlock(10, 3)

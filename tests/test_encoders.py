"""Set encoders are invariant to the order of elements and to padding, for sets of size 0 and up."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import permute_rows, random_sets
from setae.datasets import SetBatch
from setae.nn import DeepSets, RNNEncoder, SetTransformer, masked_pool
from setae.nn.encoders import raster_order


def encoders(dim: int):
    torch.manual_seed(0)
    out = {f"deepsets-{p}": DeepSets(dim, 16, 2, pool=p) for p in ("sum", "mean", "max")}
    out["settransformer-sab"] = SetTransformer(dim, 16, 4, 2, num_inducing=0)
    out["settransformer-isab"] = SetTransformer(dim, 16, 4, 2, num_inducing=4, num_seeds=2)
    out["rnn-raster"] = RNNEncoder(dim, 16, 2, order="raster")  # sorted first: invariant (no ties here)
    return out


ENCODERS = {d: encoders(d) for d in (1, 2, 3)}


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 10), min_size=1, max_size=4),
    dim=st.sampled_from([1, 2, 3]),
    extra=st.integers(0, 4),
    seed=st.integers(0, 10_000),
)
def test_encoders_permutation_and_padding_invariant(sizes, dim, extra, seed):
    sets = random_sets(sizes, dim, seed)
    batch = SetBatch.from_sets(sets)
    padded = SetBatch.from_sets(sets, pad_to=max(sizes) + extra)
    padded.points[padded.padding_mask] = -7.0
    permuted = torch.stack([permute_rows(p, n, seed + 1) for p, n in zip(batch.points, sizes, strict=True)])
    for name, enc in ENCODERS[dim].items():
        out = enc(batch.points, batch.padding_mask)
        assert out.shape == (len(sizes), enc.out_dim), name
        torch.testing.assert_close(enc(padded.points, padded.padding_mask), out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc(permuted, batch.padding_mask), out, atol=1e-5, rtol=1e-5)


def test_encoders_distinguish_different_sets():
    a, b = random_sets([6, 6], 2, seed=3)
    batch = SetBatch.from_sets([a, b])
    for name, enc in ENCODERS[2].items():
        out = enc(batch.points, batch.padding_mask)
        assert not torch.allclose(out[0], out[1]), name


def test_masked_pool_values():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[-2.0], [5.0], [7.0]]])
    mask = torch.tensor([[False, False, True], [True, True, True]])
    assert masked_pool(x, mask, "sum").flatten().tolist() == [4.0, 0.0]
    assert masked_pool(x, mask, "mean").flatten().tolist() == [2.0, 0.0]
    assert masked_pool(x, mask, "max").flatten().tolist() == [3.0, 0.0]
    with pytest.raises(ValueError):
        DeepSets(2, pool="median")


def test_masked_pool_weights_scale_elements():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[False, False, True]])
    assert masked_pool(x, mask, "sum", weights=torch.tensor([[0.5, 2.0, 9.0]])).item() == 6.5
    with pytest.raises(ValueError, match="sum pooling"):
        masked_pool(x, mask, "max", weights=torch.ones(1, 3))


def test_raster_order_sorts_rows_then_columns_with_padding_last():
    points = torch.tensor([[[0.5, 0.2], [0.1, 0.9], [9.0, 9.0], [0.3, 0.2], [0.0, 0.0]]])
    mask = torch.tensor([[False, False, False, False, True]])
    points[0, 2] = torch.tensor([0.0, 0.9])
    assert raster_order(points, mask).tolist() == [[3, 0, 2, 1, 4]]


@settings(max_examples=20, deadline=None)
@given(size=st.integers(2, 10), extra=st.integers(0, 3), seed=st.integers(0, 999))
def test_rnn_encoder_in_input_order_is_order_dependent_and_padding_invariant(size, extra, seed):
    torch.manual_seed(0)
    enc = RNNEncoder(2, 16, 1, order="input", bidirectional=True).eval()
    (x,) = random_sets([size], 2, seed)
    batch, padded = SetBatch.from_sets([x]), SetBatch.from_sets([x], pad_to=size + extra)
    padded.points[padded.padding_mask] = 5.0
    out = enc(batch.points, batch.padding_mask)
    torch.testing.assert_close(enc(padded.points, padded.padding_mask), out, atol=1e-5, rtol=1e-5)
    reversed_ = enc(batch.points.flip(1), batch.padding_mask)
    assert (reversed_ - out).abs().max() > 1e-3, "a reversed sequence gives a different code"


def test_rnn_encoder_shuffles_only_in_training():
    torch.manual_seed(0)
    enc = RNNEncoder(2, 16, 1, order="input", shuffle=True)
    batch = SetBatch.from_sets(random_sets([8, 3], 2, seed=1))
    assert not torch.allclose(enc(batch.points, batch.padding_mask), enc(batch.points, batch.padding_mask))
    enc.eval()
    torch.testing.assert_close(enc(batch.points, batch.padding_mask), enc(batch.points, batch.padding_mask))

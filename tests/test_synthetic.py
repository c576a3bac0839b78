from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from setae.datasets import SetBatch, SyntheticSets, as_point_sets, collate_sets
from setae.errors import SetaeError


def _items(sets: SyntheticSets) -> list[tuple[torch.Tensor, int]]:
    return [sets[i] for i in range(len(sets))]


def test_deterministic_given_seed():
    a, b = SyntheticSets(50, dim=3, seed=7), SyntheticSets(50, dim=3, seed=7)
    for (pa, la), (pb, lb) in zip(_items(a), _items(b), strict=True):
        assert la == lb and torch.equal(pa, pb)
    c = SyntheticSets(50, dim=3, seed=8)
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(_items(a), _items(c), strict=True))


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_items_shapes_and_attributes(dim):
    sets = SyntheticSets(200, dim=dim, min_size=2, max_size=9, num_classes=6, seed=1)
    assert len(sets) == 200 and sets.dim == dim and sets.max_size == 9 and sets.num_classes == 6
    for i, (points, label) in enumerate(_items(sets)):
        assert points.dtype == torch.float32 and points.shape == (sets.sizes[i], dim)
        assert torch.isfinite(points).all()
        assert isinstance(label, int) and label == sets.labels[i]
    assert sets.sizes.min() >= 2 and sets.sizes.max() <= 9
    assert set(sets.labels.tolist()) == set(range(6))


def test_empty_sets_allowed():
    sets = SyntheticSets(300, min_size=0, max_size=3, seed=2)
    assert set(sets.sizes.tolist()) == {0, 1, 2, 3}
    empty = int(np.flatnonzero(sets.sizes == 0)[0])
    assert sets[empty][0].shape == (0, 2)
    assert len(SyntheticSets(0)) == 0


def test_index_errors_and_negative_indices():
    sets = SyntheticSets(4, seed=3)
    assert torch.equal(sets[-1][0], sets[3][0])
    with pytest.raises(IndexError):
        sets[4]
    sets[0][0].fill_(100.0)  # items are copies
    assert sets[0][0].max() < 100


def test_shapes_are_where_the_docstring_says():
    sets = SyntheticSets(400, min_size=20, max_size=20, num_classes=4, seed=4)
    for points, label in _items(sets):
        centre_box = (points >= 0.5 - 0.1 - 0.3 - 0.05) & (points <= 0.5 + 0.1 + 0.3 + 0.05)
        if label != 2:  # all but the gaussian blob are bounded
            assert centre_box.all()
        if label == 0:  # circle of radius 0.3 around the set's centre
            radii = (points - points.mean(0)).norm(dim=1)
            assert abs(radii.mean().item() - 0.3) < 0.06


@pytest.mark.parametrize(
    "kwargs",
    [{"num_sets": -1}, {"dim": 0}, {"min_size": 5, "max_size": 4}, {"min_size": -1}, {"num_classes": 0}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(SetaeError, match="SyntheticSets needs"):
        SyntheticSets(**{"num_sets": 3, **kwargs})


def test_collate_sets_pads_and_unpads():
    sets = SyntheticSets(40, dim=3, min_size=0, max_size=6, seed=5)
    batches = list(DataLoader(sets, batch_size=16, collate_fn=collate_sets))
    assert [len(b) for b in batches] == [16, 16, 8]
    start = 0
    for batch in batches:
        assert isinstance(batch, SetBatch)
        items = [sets[i] for i in range(start, start + len(batch))]
        sizes = torch.tensor([len(p) for p, _ in items])
        assert batch.points.shape == (len(batch), int(sizes.max()), 3)
        assert torch.equal(batch.sizes, sizes)
        assert torch.equal(batch.labels, torch.tensor([label for _, label in items]))
        rows = torch.arange(batch.points.shape[1])
        assert torch.equal(batch.padding_mask, rows[None, :] >= sizes[:, None])
        assert (batch.points[batch.padding_mask] == 0).all()
        for unpadded, (points, _) in zip(batch.unpad(), items, strict=True):
            assert torch.equal(unpadded, points)
        start += len(batch)


def test_as_point_sets_converts():
    out = as_point_sets([np.ones((3, 2), dtype=np.float64), torch.zeros(0, 2), np.array([])], dim=2)
    assert [t.shape for t in out] == [(3, 2), (0, 2), (0, 2)]
    assert all(t.dtype == torch.float32 for t in out)


@pytest.mark.parametrize(
    "bad, index, fragment",
    [
        (np.array([[0.0, np.nan]]), 1, "NaN or infinite"),
        (np.array([[0.0, np.inf]]), 1, "NaN or infinite"),
        (np.zeros((2, 3)), 2, "dimension 3; the model expects 2"),
        (np.zeros((5, 2)), 0, "has 5 points; the model handles at most 4"),
        (np.zeros((2, 2, 2)), 3, "has shape (2, 2, 2); expected [n, D]"),
    ],
)
def test_as_point_sets_errors_name_the_item(bad, index, fragment):
    sets = [np.zeros((1, 2))] * 4
    sets[index] = bad
    with pytest.raises(SetaeError) as info:
        as_point_sets(sets, dim=2, max_size=4, source="my.npz")
    assert str(info.value).startswith(f"my.npz: set {index} ")
    assert fragment in str(info.value)

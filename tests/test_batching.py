"""The training data path: PackedSets.batch / subset, and size bucketing in batch_indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from setae.datasets import SyntheticSets, collate_sets
from setae.datasets.packed import PackedSets
from setae.training.engine import batch_indices


def assert_same_batch(a, b):
    for name in ("points", "padding_mask", "sizes", "labels"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_equals_collating_the_items(seed):
    sets = SyntheticSets(120, dim=3, min_size=0, max_size=11, seed=seed)
    rng = np.random.default_rng(seed)
    for count in (1, 7, 40):
        indices = rng.choice(len(sets), count, replace=False)
        assert_same_batch(sets.batch(indices), collate_sets([sets[int(i)] for i in indices]))


def test_batch_of_empty_sets_and_of_an_empty_dataset():
    sets = PackedSets(np.zeros((0, 2), np.float32), np.zeros(4, np.int64), None, "empty")
    batch = sets.batch([2, 0])
    assert (
        batch.points.shape == (2, 0, 2)
        and batch.sizes.tolist() == [0, 0]
        and batch.labels.tolist() == [-1, -1]
    )


def test_subset_shares_the_sets_and_their_moments():
    sets = SyntheticSets(60, dim=2, min_size=1, max_size=9, seed=3)
    part = sets.subset(20, 50)
    assert len(part) == 30 and part.sizes.tolist() == sets.sizes[20:50].tolist()
    for i in (0, 13, 29):
        assert torch.equal(part[i][0], sets[20 + i][0]) and part[i][1] == sets[20 + i][1]
    assert_same_batch(part.batch([3, 0, 29]), sets.batch([23, 20, 49]))
    points = np.concatenate([sets[20 + i][0].numpy() for i in range(10)]).astype(np.float64)
    mean, std = part.point_moments(10)
    np.testing.assert_allclose(mean, points.mean(0), rtol=1e-10)
    np.testing.assert_allclose(std, points.std(0), rtol=1e-10)


def padding_fraction(sizes: np.ndarray, batches: list[torch.Tensor]) -> float:
    return 1 - sum(sizes[b].sum() for b in batches) / sum(len(b) * sizes[b].max() for b in batches)


@pytest.mark.parametrize("window", [1, 4, 7])
def test_bucketing_visits_every_item_once_per_epoch_with_less_padding(window):
    sizes = np.random.default_rng(0).integers(1, 300, size=230)
    per_epoch = 230 // 10

    def epoch(e, w):
        return [
            batch_indices(230, 10, seed=5, step=e * per_epoch + k, sizes=sizes, bucket_batches=w)
            for k in range(per_epoch)
        ]

    bucketed = epoch(0, window)
    visited = torch.cat(bucketed)
    assert len(visited) == per_epoch * 10 and len(set(visited.tolist())) == len(visited)
    assert set(visited.tolist()) == set(torch.cat(epoch(0, 0)).tolist()), "the same items as unbucketed"
    if window == 1:
        assert [sorted(b.tolist()) for b in bucketed] == [sorted(b.tolist()) for b in epoch(0, 0)]
    else:
        assert padding_fraction(sizes, bucketed) < 0.7 * padding_fraction(sizes, epoch(0, 0))
    again = batch_indices(230, 10, seed=5, step=per_epoch + 3, sizes=sizes, bucket_batches=window)
    assert torch.equal(again, epoch(1, window)[3]), "a step's batch depends only on (seed, step)"
    assert [b.tolist() for b in epoch(1, window)] != [b.tolist() for b in bucketed]

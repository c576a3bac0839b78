"""Evaluation distances between lists of sets: known answers, OSPA's cut-off matching, size statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import brute_force_matching, chamfer_double_loop, set_pairs, sq_dist_np
from setae.errors import SetaeError
from setae.evaluation import set_metrics
from setae.evaluation.set_metrics import set_distances, summarize

GRID = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.5]], dtype=torch.float64)


def ospa_brute_force(x: np.ndarray, y: np.ndarray, c: float) -> float:
    if len(x) == 0 and len(y) == 0:
        return 0.0
    matched = brute_force_matching(np.minimum(sq_dist_np(x, y), c**2))
    return math.sqrt((matched + c**2 * abs(len(x) - len(y))) / max(len(x), len(y)))


def test_identical_sets_are_at_distance_zero():
    sets = [GRID, GRID[:3], GRID[:1]]
    d = set_distances(sets, [s.flip(0) for s in sets])
    for key in ("chamfer", "hungarian", "ospa"):
        np.testing.assert_allclose(d[key], 0.0, atol=1e-15)
    assert summarize(d) == {"chamfer": 0.0, "hungarian": 0.0, "ospa": 0.0, "size_acc": 1.0, "size_mae": 0.0}


def test_shifted_set():
    d = set_distances([GRID], [GRID + torch.tensor([0.01, 0.0], dtype=torch.float64)], ospa_cutoff=0.1)
    np.testing.assert_allclose(d["chamfer"], [2e-4], rtol=1e-9)
    np.testing.assert_allclose(d["hungarian"], [1e-4], rtol=1e-9)
    np.testing.assert_allclose(d["ospa"], [0.01], rtol=1e-9)


def test_empty_sets():
    a, empty = GRID[:1], torch.zeros(0, 2, dtype=torch.float64)
    d = set_distances([a, empty, empty], [empty, a, empty], ospa_cutoff=0.3)
    np.testing.assert_allclose(d["ospa"], [0.3, 0.3, 0.0])
    # empty against non-empty costs c² (an unmatched point under OSPA), never 0; empty against empty is 0
    np.testing.assert_allclose(d["chamfer"], [0.09, 0.09, 0.0])
    np.testing.assert_allclose(d["hungarian"], [0.09, 0.09, 0.0])
    np.testing.assert_array_equal(d["size_error"], [-1, 1, 0])


def test_ospa_charges_cutoff_per_missing_point():
    c = 0.5
    d = set_distances([GRID], [GRID[:2]], ospa_cutoff=c)  # two exact matches, three points missing
    np.testing.assert_allclose(d["ospa"], [math.sqrt(3 * c**2 / 5)])
    d = set_distances([GRID[:2]], [GRID[:2] + torch.tensor([0.0, 0.1], dtype=torch.float64)], ospa_cutoff=c)
    np.testing.assert_allclose(d["ospa"], [0.1])
    d = set_distances([GRID[:1]], [GRID[[0, 3]]], ospa_cutoff=c)  # the far point is cut off at c^2
    np.testing.assert_allclose(d["ospa"], [math.sqrt(c**2 / 2)])


def test_ospa_matches_on_the_cutoff_cost():
    # Raw costs prefer 0->1, 1->2 (1 + 1 = 2 < 4 + 0); cut off at c^2 = 1, 0->2, 1->1 is better (1 + 0 < 2).
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    d = set_distances([x], [y], ospa_cutoff=1.0)
    np.testing.assert_allclose(d["hungarian"], [1.0])
    np.testing.assert_allclose(d["ospa"], [math.sqrt(0.5)])
    np.testing.assert_allclose(d["ospa"], [ospa_brute_force(x.numpy(), y.numpy(), 1.0)])


@settings(max_examples=60, deadline=None)
@given(pairs=set_pairs(max_size=5), cutoff=st.sampled_from([0.5, 2.0, 5.0, 100.0]))
def test_distances_match_brute_force(pairs, cutoff):
    x, y = zip(*pairs, strict=True)
    d = set_distances(list(x), list(y), ospa_cutoff=cutoff)
    np.testing.assert_allclose(d["ospa"], [ospa_brute_force(a, b, cutoff) for a, b in pairs], rtol=1e-9)
    one_empty = [(len(a) == 0) != (len(b) == 0) for a, b in pairs]  # costs c², see test_empty_sets
    chamfer = [
        cutoff**2 if e else chamfer_double_loop(a, b) for e, (a, b) in zip(one_empty, pairs, strict=True)
    ]
    hungarian = [
        cutoff**2 if e else brute_force_matching(sq_dist_np(a, b)) / max(min(len(a), len(b)), 1)
        for e, (a, b) in zip(one_empty, pairs, strict=True)
    ]
    np.testing.assert_allclose(d["chamfer"], chamfer, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["hungarian"], hungarian, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(d["size_error"], [len(b) - len(a) for a, b in pairs])


def test_size_statistics():
    target = [GRID[:2], GRID[:2], GRID[:3], GRID[:0]]
    output = [GRID[:2], GRID[:3], GRID[:1], GRID[:0]]
    d = set_distances(target, output)
    np.testing.assert_array_equal(d["size_error"], [0, 1, -2, 0])
    s = summarize(d)
    assert s["size_acc"] == 0.5 and s["size_mae"] == 0.75


def test_many_sets_in_chunks_equal_sets_one_by_one(monkeypatch):
    g = torch.Generator().manual_seed(0)
    target = [torch.rand(int(n), 2, generator=g) for n in torch.randint(0, 9, (11,), generator=g)]
    output = [torch.rand(int(n), 2, generator=g).numpy() for n in torch.randint(0, 9, (11,), generator=g)]
    monkeypatch.setattr(set_metrics, "_CHUNK", 3)
    chunked = set_distances(target, output)
    for i, (t, o) in enumerate(zip(target, output, strict=True)):
        single = set_distances([t], [o])
        for key, values in chunked.items():
            np.testing.assert_allclose(values[i], single[key][0], rtol=1e-12)
    assert chunked["ospa"].dtype == np.float64 and chunked["size_error"].dtype == np.int64


def test_bad_input_raises():
    with pytest.raises(SetaeError, match="2 target sets but 1 output"):
        set_distances([GRID, GRID], [GRID])
    with pytest.raises(SetaeError, match="zero sets"):
        set_distances([], [])

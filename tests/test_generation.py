"""Known answers for the generation metrics (MMD, COV, 1-NNA) and interpolation smoothness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import random_sets
from setae.cli import main
from setae.evaluation.generation import generation_metrics, interpolation_smoothness, pairwise_chamfer


def chamfer_with_cutoff(x: torch.Tensor, y: torch.Tensor, cutoff: float) -> float:
    """Chamfer by a double loop over points, with set_metrics' convention for empty sets: 0 when both are
    empty, cutoff² when exactly one is."""
    x, y = x.double().tolist(), y.double().tolist()
    if not x or not y:
        return 0.0 if not x and not y else cutoff**2

    def sq(p, q):
        return sum((pi - qi) ** 2 for pi, qi in zip(p, q, strict=True))

    return sum(min(sq(p, q) for q in y) for p in x) / len(x) + sum(min(sq(p, q) for p in x) for q in y) / len(
        y
    )


@pytest.mark.parametrize("cutoff", [0.1, 0.7])
def test_pairwise_chamfer_matches_double_loop_with_empty_sets_on_each_side(cutoff):
    a = random_sets([3, 0, 7, 1, 40, 0], dim=2, seed=0)
    b = random_sets([5, 2, 0, 33], dim=2, seed=1)
    expected = np.array([[chamfer_with_cutoff(x, y, cutoff) for y in b] for x in a])
    assert expected[1, 2] == 0.0 and expected[1, 0] == expected[0, 2] == cutoff**2
    np.testing.assert_allclose(pairwise_chamfer(a, b, ospa_cutoff=cutoff), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pairwise_chamfer(b, a, ospa_cutoff=cutoff), expected.T, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        pairwise_chamfer(a, ospa_cutoff=cutoff), pairwise_chamfer(a, a, ospa_cutoff=cutoff), rtol=1e-6
    )


def test_pairwise_chamfer_of_one_list_across_blocks_matches_double_loop():
    # more sets than a block (BLOCK = 32): sorted by size, the first block holds empty sets only (no points
    # at all), and empty sets meet the others across block pairs
    sets = random_sets([0] * 34 + [i % 5 for i in range(15)], dim=2, seed=5)
    expected = np.array([[chamfer_with_cutoff(x, y, 0.3) for y in sets] for x in sets])
    np.testing.assert_allclose(pairwise_chamfer(sets, ospa_cutoff=0.3), expected, rtol=1e-5, atol=1e-7)


def test_an_empty_sample_does_not_make_mmd_zero():
    references = random_sets([4, 6, 5], dim=2, seed=6)
    samples = [torch.zeros(0, 2), *(r + 5.0 for r in references[:2])]  # one empty, two far-off copies
    metrics = generation_metrics(samples, references, ospa_cutoff=0.1)
    # each reference's nearest sample is the empty one, at c² = 0.01 (the copies are ~50 away)
    assert metrics["gen_mmd"] == pytest.approx(0.01)
    assert metrics["gen_cov"] == pytest.approx(1 / 3)  # all three samples' nearest reference is the first
    both_empty = generation_metrics([torch.zeros(0, 2)], [torch.zeros(0, 2)], ospa_cutoff=0.1)
    assert both_empty["gen_mmd"] == 0.0 and both_empty["gen_cov"] == 1.0


def points(*xs: float) -> list[torch.Tensor]:
    """One-point sets at (x, 0): CD between two of them is 2 (x - x')²."""
    return [torch.tensor([[x, 0.0]]) for x in xs]


def test_mmd_and_cov_take_the_min_over_the_right_axis():
    # CD[r, s] (references r at 1, 50; samples s at 0, 5):  r=1: 2, 32;  r=50: 5000, 4050.
    metrics = generation_metrics(points(0, 5), points(1, 50))
    # MMD = mean over references of the min over samples = (2 + 4050) / 2; the other axis would give
    # (2 + 32) / 2 = 17.
    assert metrics["gen_mmd"] == pytest.approx(2026.0)
    # COV: both samples' nearest reference is r=1, so half the references are covered; counting the
    # samples that are some reference's nearest would give 1.
    assert metrics["gen_cov"] == 0.5


def test_known_answers_with_more_samples_than_references():
    # samples at 0, 5, 20; references at 1, 50. CD[r, s]: r=1: 2, 32, 722; r=50: 5000, 4050, 1800.
    metrics = generation_metrics(points(0, 5, 20), points(1, 50))
    assert metrics["gen_mmd"] == pytest.approx((2 + 1800) / 2)  # wrong axis: (2 + 32 + 722) / 3 = 252
    assert metrics["gen_cov"] == 0.5  # every sample is nearest r=1; wrong axis: 2/3 (s=0 and s=20)
    # 1-NNA, leave one out (nearest own-group / other-group CD): s0 50 / 2 wrong, s5 50 / 32 wrong,
    # s20 450 / 722 right, r1 4802 / 2 wrong, r50 4802 / 1800 wrong: 1 of 5.
    assert metrics["gen_1nna"] == pytest.approx(0.2)


def test_identical_distinct_sets_give_zero_mmd_full_coverage_and_zero_1nna():
    sets = random_sets([5, 8, 3, 12, 7, 9], dim=2, seed=2)
    metrics = generation_metrics(sets, [s.clone() for s in sets])
    assert metrics["gen_mmd"] == 0.0
    assert metrics["gen_cov"] == 1.0
    # each set's unique nearest neighbour (distance 0) is its copy in the other group: memorisation shows as 0
    assert metrics["gen_1nna"] == 0.0


def test_all_sets_equal_is_a_tie_everywhere_and_gives_half():
    one = torch.tensor([[0.2, 0.3], [0.5, 0.5]])
    metrics = generation_metrics([one.clone() for _ in range(4)], [one.clone() for _ in range(4)])
    assert metrics["gen_mmd"] == 0.0
    assert metrics["gen_1nna"] == 0.5  # every d_same = d_other = 0 counts 1/2
    assert metrics["gen_cov"] == 0.25  # ties go to the lowest-index reference


def test_far_apart_groups_give_perfect_1nna():
    samples = random_sets([6, 4, 9, 5], dim=2, seed=3)
    references = [s + 100.0 for s in random_sets([6, 4, 9, 5], dim=2, seed=4)]
    metrics = generation_metrics(samples, references)
    assert metrics["gen_1nna"] == 1.0
    assert metrics["gen_mmd"] > 1e4


class PointModel:
    """A 'perfect linear decoder': a set is coded by its mean point and decoded as that single point; with
    `jump`, decoding snaps to the nearer of the two ends of the segment [0, 1]² diagonal instead."""

    def __init__(self, jump: bool = False):
        self.jump = jump

    def encode(self, sets):
        return torch.stack([torch.as_tensor(s).mean(0) for s in sets])

    def decode(self, z, seed: int = 0):
        if self.jump:
            z = (z.sum(1, keepdim=True) > 1).float().expand_as(z)
        return [row[None] for row in z]


def test_interpolation_smoothness_is_one_for_uniform_motion_and_steps_for_a_jump():
    starts = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.1, 0.9]])]
    ends = [torch.tensor([[1.0, 1.0]]), torch.tensor([[0.7, 0.2]])]
    assert interpolation_smoothness(PointModel(), starts, ends, steps=8) == pytest.approx(1.0, rel=1e-5)
    assert interpolation_smoothness(PointModel(jump=True), starts[:1], ends[:1], steps=8) == pytest.approx(
        8.0
    )


def test_cli_eval_adds_generation_metrics_for_a_vae_and_skips_them_on_request(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--run-dir", str(run), "--no-progress", "--steps", "4"]) == 0
    assert main(["eval", str(run), "--limit", "24", "--gen-samples", "12"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("gen_mmd", "gen_cov", "gen_1nna", "interp_smoothness", "probe_acc_all", "kmeans_nmi"):
        assert isinstance(metrics[key], float), key
    assert main(["eval", str(run), "--limit", "24", "--no-representation"]) == 0
    assert "gen_mmd" not in json.loads((run / "metrics.json").read_text())


def test_rasterize_inverts_the_mnist_protocol(mnist_root):
    from setae.datasets import MNISTSets, read_idx
    from setae.datasets.mnist import MNIST_FILES, PIXEL_THRESHOLD
    from setae.evaluation.generation import rasterize

    images = read_idx(mnist_root / MNIST_FILES["test"][0])[:50]
    test = MNISTSets(mnist_root, split="test")
    raster = rasterize([test[i][0] for i in range(50)])
    expected = torch.as_tensor((images.reshape(50, -1) >= PIXEL_THRESHOLD).astype("float64"))
    assert torch.equal(raster, expected)


def test_rasterize_gives_empty_sets_blank_images_and_clamps_outside_points():
    from setae.evaluation.generation import rasterize

    raster = rasterize([torch.zeros(0, 2), torch.tensor([[-0.5, 0.0], [1.0, 2.0], [0.5, 1 / 27]])], side=28)
    assert raster[0].sum() == 0
    lit = set(raster[1].nonzero()[:, 0].tolist())
    # (x, y) -> row round(27 y), column round(27 x), clamped: (0, 0), (27, 27) and (1, 14)
    assert lit == {0 * 28 + 0, 27 * 28 + 27, 1 * 28 + 14}

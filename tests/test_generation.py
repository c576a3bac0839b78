"""Known answers for the generation metrics (MMD, COV, 1-NNA) and interpolation smoothness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import chamfer_double_loop, random_sets
from setae.cli import main
from setae.evaluation.generation import generation_metrics, interpolation_smoothness, pairwise_chamfer


def test_pairwise_chamfer_matches_double_loop_including_empty_sets():
    a = random_sets([3, 0, 7, 1, 40], dim=2, seed=0)
    b = random_sets([5, 2, 0, 33], dim=2, seed=1)
    expected = np.array([[chamfer_double_loop(x.double().numpy(), y.double().numpy()) for y in b] for x in a])
    np.testing.assert_allclose(pairwise_chamfer(a, b), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pairwise_chamfer(a), pairwise_chamfer(a, a), rtol=1e-6)


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

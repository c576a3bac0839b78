"""Conditional models: one code decoded with every label (the same style as every class)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.image import imread

from setae.cli import main
from setae.evaluation.evaluate import dataset_items
from setae.evaluation.generation import label_swaps
from setae.training.checkpoint import load_checkpoint
from setae.training.data import make_test_set


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cvae") / "run"
    args = ["train", "--preset", "tiny", "--conditional", "--steps", "30", "--run-dir", str(folder)]
    assert main([*args, "--no-progress"]) == 0
    return folder


def test_label_swaps_decode_one_code_as_every_class(run):
    model, config, _, _ = load_checkpoint(run)
    sets, labels = dataset_items(make_test_set(config), 5)
    columns = label_swaps(model, sets, labels, seed=0)
    assert len(columns) == config.model.num_classes and all(len(c) == 5 for c in columns)
    own = [columns[label][i] for i, label in enumerate(labels)]
    direct = model.decode(model.encode(sets, labels=labels), seed=0, labels=labels)
    assert all(torch.equal(a, b) for a, b in zip(own, direct, strict=True)), "own label = reconstruction"
    other = [columns[(label + 1) % len(columns)][i] for i, label in enumerate(labels)]
    assert any(a.shape != b.shape or not torch.allclose(a, b) for a, b in zip(own, other, strict=True))


def test_plot_draws_the_label_swap_grid(run):
    assert main(["plot", str(run), "--num", "4"]) == 0
    grid = imread(run / "plots" / "label_swap.png")[..., :3]
    assert grid.shape[1] > 2 * grid.shape[0], "4 rows (the sets), 11 columns (the input, 10 classes)"
    assert (grid.max(-1) - grid.min(-1) > 0.2).mean() > 0.001


def test_eval_of_a_conditional_model_with_more_test_sets_than_the_bound_uses(run):
    """The importance-weighted bound reads the first 200 test sets with their own labels (a partial last
    batch once took the labels of the sets after it)."""
    import json

    args = ["eval", str(run), "--limit", "230", "--probe-train", "60", "--gen-samples", "20", "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iwae_sets"] == 200 and metrics["iwae_64"] >= metrics["elbo_iwae_sets"] - 1.0


def test_an_encoder_without_the_label_gives_the_same_code_for_any_label():
    from setae.models import ModelConfig, SetAutoencoder

    sets = [torch.rand(5, 2), torch.rand(3, 2)]
    blind = SetAutoencoder(
        ModelConfig(max_size=8, point_sigma=0.1, latent_dim=4, conditional=True, encoder_label=False)
    )
    assert not hasattr(blind, "label_to_encoder"), "no unused parameters (DistributedDataParallel)"
    torch.testing.assert_close(blind.encode(sets, labels=[0, 1]), blind.encode(sets, labels=[7, 3]))
    seeing = SetAutoencoder(ModelConfig(max_size=8, point_sigma=0.1, latent_dim=4, conditional=True))
    with torch.no_grad():
        seeing.label_to_encoder.weight.normal_()
    assert not torch.allclose(seeing.encode(sets, labels=[0, 1]), seeing.encode(sets, labels=[7, 3]))

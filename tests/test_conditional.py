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


def test_label_centring_keeps_running_means_and_fits_exact_ones():
    from setae.nn.normalization import LabelCentering

    centring = LabelCentering(num_classes=4, dim=2, momentum=0.5)
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [-4.0, 0.0]])
    labels = torch.tensor([2, 2, 0])
    out = centring(x, labels)  # training: means 0 → halfway to the batch means [2, 4] and [−4, 0]
    halfway = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(centring.label_mean, halfway)
    torch.testing.assert_close(out, x - centring.label_mean[labels])
    centring.label_mean[3] = 7.0
    centring.fit(x, labels)
    torch.testing.assert_close(
        centring.label_mean, torch.tensor([[-4.0, 0.0], [0.0, 0.0], [2.0, 4.0], [7.0, 7.0]])
    )
    centring.eval()
    torch.testing.assert_close(centring(x, labels), torch.tensor([[-1.0, -2.0], [1.0, 2.0], [0.0, 0.0]]))


def test_label_centring_gives_every_label_the_same_mean_code_and_keeps_invariance():
    from helpers import SMALL_MODEL
    from setae.datasets import SetBatch
    from setae.errors import SetaeError
    from setae.models import ModelConfig, SetAutoencoder

    # Sets whose label moves all their points: the uncentred codes separate the labels.
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    sets = [
        torch.rand(int(n), 2, generator=g) + 2.0 * y
        for n, y in zip(torch.randint(1, 12, (40,), generator=g), labels, strict=True)
    ]
    config = {**SMALL_MODEL, "conditional": True, "num_classes": 4}
    batches = [SetBatch.from_sets(sets[i : i + 10], labels=labels[i : i + 10]) for i in range(0, 40, 10)]
    means = {}
    for centred in (False, True):
        torch.manual_seed(0)
        model = SetAutoencoder(ModelConfig(**config, label_centering=centred))
        model.calibrate_latent_norm(batches)
        codes = model.eval().encode(sets, labels=labels)
        means[centred] = torch.stack([codes[labels == y].mean(0) for y in range(4)])
        shuffled = [s[torch.randperm(len(s), generator=g)] for s in sets]
        torch.testing.assert_close(model.encode(shuffled, labels=labels), codes, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(means[True], torch.zeros(4, 6), atol=1e-5, rtol=0)
    assert (means[False] - means[False].mean(0)).abs().max() > 0.1
    fitted = model.label_centering.label_mean.clone()
    assert torch.isfinite(model.train()(batches[0])["kl"]).all()
    assert not torch.equal(model.label_centering.label_mean, fitted), "training moves the running means"
    with pytest.raises(SetaeError, match="label_centering needs a conditional model"):
        ModelConfig(**SMALL_MODEL, label_centering=True).validate()

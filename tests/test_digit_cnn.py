"""The digit CNN that judges samples and reconstructions: training, its cache, and the scores it reports."""

from __future__ import annotations

import pytest
import torch

from setae.errors import SetaeError
from setae.evaluation import digit_cnn
from setae.evaluation.digit_cnn import DigitCNN, digit_scores, load_digit_cnn


@pytest.fixture
def small_cnn(mnist_root):
    """The tests' small CNN (conftest: 4,000 digits, three epochs), its accuracy, 1,000 test digits."""
    from setae.datasets import MNISTSets

    return (*load_digit_cnn(str(mnist_root)), MNISTSets(mnist_root, split="test").subset(0, 1000))


def test_cnn_reads_digits_and_is_not_confident_on_uniform_noise(small_cnn):
    from setae.evaluation.evaluate import dataset_items

    model, accuracy, test = small_cnn
    assert accuracy > 0.85
    sets, labels = dataset_items(test, 300)
    g = torch.Generator().manual_seed(0)
    noise = [torch.rand(150, 2, generator=g) for _ in range(100)]
    real = digit_scores(model, samples=sets, targets=sets, target_labels=labels)
    blobs = digit_scores(model, samples=noise)
    assert real["digit_classifier_acc"] > 0.85
    assert real["samples_confident"] > blobs["samples_confident"] + 0.3


def test_the_blur_is_fixed_not_learned():
    model = DigitCNN()
    assert "blur" not in dict(model.named_parameters())
    assert model.blur.sum().item() == pytest.approx(1.0)


def test_cache_round_trip_and_corrupt_cache(small_cnn, tmp_path, mnist_root, monkeypatch):
    from safetensors.torch import save

    from setae.fileio import write_bytes

    model, accuracy, _ = small_cnn
    assert 0.85 < accuracy < 1
    path = tmp_path / "cnn.safetensors"
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_bytes(path, save(weights, metadata={"test_accuracy": repr(accuracy)}))
    loaded, loaded_accuracy = load_digit_cnn(str(mnist_root), path=path)
    assert loaded_accuracy == accuracy
    images = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(images), model(images))
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(SetaeError, match="cnn.safetensors: unreadable digit classifier cache"):
        load_digit_cnn(str(mnist_root), path=path)


@pytest.mark.parametrize("drawing", ["pixels", "skeleton"])
def test_a_missing_cache_is_trained_once_and_written(tmp_path, monkeypatch, drawing):
    calls = []

    def fake_training(train, test):
        calls.append((train, test))
        return DigitCNN().eval(), 0.5

    monkeypatch.setitem(digit_cnn.DRAWINGS, drawing, lambda root, split: f"{drawing} {split}")
    monkeypatch.setattr(digit_cnn, "train_digit_cnn", fake_training)
    path = tmp_path / "cache" / "cnn.safetensors"
    first, accuracy = load_digit_cnn(path=path, drawing=drawing)
    assert path.exists() and accuracy == 0.5 and calls == [(f"{drawing} train", f"{drawing} test")]
    second, _ = load_digit_cnn(path=path, drawing=drawing)
    assert len(calls) == 1
    images = torch.rand(2, 1, 28, 28)
    assert torch.equal(first(images), second(images))


def test_the_skeleton_judge_reads_drawings_and_has_its_own_cache(mnist_root):
    from setae.datasets.mnist_strokes import MNISTSkeletonSets
    from setae.evaluation.evaluate import dataset_items

    assert digit_cnn.cache_path("skeleton") != digit_cnn.cache_path("pixels")
    model, accuracy = load_digit_cnn(str(mnist_root), drawing="skeleton")
    sets, labels = dataset_items(MNISTSkeletonSets(mnist_root, split="test").subset(0, 300), 300)
    assert accuracy > 0.8
    assert digit_scores(model, targets=sets, target_labels=labels)["digit_classifier_acc"] > 0.8
    with pytest.raises(SetaeError, match="drawing='ink' is not one of pixels, skeleton"):
        load_digit_cnn(str(mnist_root), drawing="ink")


class TableClassifier:
    """A stand-in classifier returning a fixed probability table, row i for set i."""

    def __init__(self, table):
        self.table = torch.tensor(table, dtype=torch.float64)

    def probabilities(self, sets):
        return self.table[: len(sets)]


def _rows(*peaks):
    """Probability rows: digit d with probability p, the rest spread evenly over the other nine."""
    rows = []
    for digit, p in peaks:
        row = [(1 - p) / 9] * 10
        row[digit] = p
        rows.append(row)
    return rows


def test_digit_scores_known_answers():
    # confident: rows 0, 1, 3 (digits 3, 3, 7); row 2 is 0.85, below the 0.9 threshold
    classifier = TableClassifier(_rows((3, 0.95), (3, 0.99), (5, 0.85), (7, 0.91)))
    sets = [torch.zeros(1, 2)] * 4
    out = digit_scores(
        classifier,
        samples=sets,
        reconstructions=sets,
        targets=sets,
        target_labels=[3, 1, 5, 7],
        requested=[3, 3, 3, 3],
    )
    assert out["samples_confident"] == 0.75
    share = out["samples_digit_share"]
    assert share == pytest.approx([0, 0, 0, 2 / 3, 0, 0, 0, 1 / 3, 0, 0], abs=1e-4)  # 4 decimals
    assert out["samples_rarest_digit"] == 0.0
    assert out["samples_as_requested"] == 0.5
    assert out["recon_digit_acc"] == 0.75 and out["digit_classifier_acc"] == 0.75
    assert out["real_confident"] == 0.75

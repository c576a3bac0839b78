"""A small CNN that tells which digit a 2-D point set draws: the judge of samples and reconstructions.

Sets are rasterised onto the 28×28 MNIST grid (point (x, y) ∈ [0, 1]² lights pixel round((y, x)·27);
`generation.rasterize`), blurred by a fixed Gaussian (σ = 1 px; not learned), then classified by
conv(32)–pool–conv(64)–pool–linear(128)–linear(10). Decoders draw strokes differently — scattered points,
clumps, solid lines — so the network is trained on the training digits' pixel sets moved by random jitter
(each set gets an amplitude a ~ U(0, 0.8) px, each point a N(0, a²) offset per axis) before rasterising;
the blur makes scattered and solid strokes look alike.

Trained once (3 epochs, ~1.5 min on 2 CPU cores) and cached as safetensors in $XDG_CACHE_HOME/setae (or
~/.cache/setae), with its test accuracy in the file's metadata. Two judges (`DRAWINGS`): "pixels", trained on
the MNIST pixel sets, and "skeleton", trained on the one-pixel-wide skeletons of the MNIST drawings
(`MNISTSkeletonSets`), the judge of drawings (pen strokes) and of their points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor, nn

from setae.datasets.mnist import MNISTSets
from setae.datasets.mnist_strokes import MNISTSkeletonSets
from setae.datasets.packed import PackedSets
from setae.datasets.strokes import strokes_to_points
from setae.errors import SetaeError
from setae.evaluation.generation import rasterize, rasterize_packed
from setae.fileio import write_bytes
from setae.rng import seeded

SIDE = 28
VERSION = "digit-cnn-1"
MAX_JITTER_PX = 0.8
CONFIDENT = 0.9
# what a judge is trained on -> the sets (train and test splits) of such drawings
DRAWINGS = {"pixels": MNISTSets, "skeleton": MNISTSkeletonSets}


def _images(points: np.ndarray, offsets: np.ndarray) -> Tensor:
    return rasterize_packed(points, offsets, SIDE).float().view(-1, 1, SIDE, SIDE)


def _gaussian_kernel(sigma: float = 1.0, radius: int = 2) -> Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum())[None, None]


class DigitCNN(nn.Module):
    """images [B, 1, 28, 28] -> class logits [B, 10]; the first layer is a fixed Gaussian blur."""

    def __init__(self):
        super().__init__()
        self.register_buffer("blur", _gaussian_kernel())
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, images: Tensor) -> Tensor:
        x = F.conv2d(images, self.blur, padding=self.blur.shape[-1] // 2)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))

    @torch.no_grad()
    def probabilities(self, sets: Sequence, batch_size: int = 1000) -> Tensor:
        """Class probabilities [B, 10] of 2-D sets (a list of [n_i, 2])."""
        was_training = self.training
        self.eval()
        images = rasterize(sets, SIDE).float().view(-1, 1, SIDE, SIDE)
        out = [self(images[i : i + batch_size]).softmax(1) for i in range(0, len(images), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, 10)


def jittered_images(data: PackedSets, generator: torch.Generator) -> Tensor:
    """All sets of `data`, each moved by N(0, a²) per point and axis with a ~ U(0, MAX_JITTER_PX) pixels per
    set, rasterised: [B, 1, 28, 28]."""
    sizes = torch.from_numpy(data.sizes.astype(np.int64))
    amplitude = torch.rand(len(sizes), generator=generator) * MAX_JITTER_PX / (SIDE - 1)
    points = torch.tensor(data.points_array[data.offsets[0] : data.offsets[-1]])
    noise = torch.randn(points.shape, generator=generator) * amplitude.repeat_interleave(sizes)[:, None]
    return _images((points + noise).numpy(), data.offsets - data.offsets[0])


def _accuracy(model: DigitCNN, images: Tensor, labels: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(images[i : i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    return float((predicted == labels).double().mean())


def train_digit_cnn(
    train: PackedSets, test: PackedSets, epochs: int = 3, batch_size: int = 128, seed: int = 0
) -> tuple[DigitCNN, float]:
    """Fit a DigitCNN on jittered training sets (fresh jitter every epoch) with Adam; -> (model in eval
    mode, accuracy on the un-jittered test sets)."""
    generator = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = DigitCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    total = epochs * (len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=max(total, 1))
    labels = torch.from_numpy(train.labels.astype(np.int64))
    model.train()
    for _ in range(epochs):
        images = jittered_images(train, generator)
        order = torch.randperm(len(train), generator=generator)
        for i in range(len(train) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    test_images = _images(test.points_array, test.offsets)
    accuracy = _accuracy(model, test_images, torch.from_numpy(test.labels.astype(np.int64)))
    return model.eval(), accuracy


def drawing_points(drawings: Sequence) -> list[Tensor]:
    """What the classifier reads of MNIST drawings (stroke-3 [T, 3] in pixels): the points they visit, as
    sets in [0, 1]² like the MNIST sets."""
    return [torch.from_numpy(strokes_to_points(d)).float() / (SIDE - 1) for d in drawings]


def cache_path(drawing: str = "pixels") -> Path:
    name = VERSION if drawing == "pixels" else f"{VERSION}-{drawing}"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "setae" / f"{name}.safetensors"


def load_digit_cnn(
    root: str | None = None, path: Path | None = None, drawing: str = "pixels"
) -> tuple[DigitCNN, float]:
    """The cached DigitCNN trained on `drawing` sets ("pixels" or "skeleton", `DRAWINGS`) and its test
    accuracy, training (and caching) it first when there is none. `root` is the MNIST folder (MNISTSets)."""
    if drawing not in DRAWINGS:
        raise SetaeError(f"digit classifier: drawing={drawing!r} is not one of {', '.join(DRAWINGS)}")
    path = path or cache_path(drawing)
    model = DigitCNN()
    if path.exists():
        try:
            with safe_open(str(path), "pt") as f:
                accuracy = float(f.metadata()["test_accuracy"])
                model.load_state_dict({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
            return model.eval(), accuracy
        except (OSError, SafetensorError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise SetaeError(
                f"{path}: unreadable digit classifier cache ({e}); delete it to retrain"
            ) from None
    sets = DRAWINGS[drawing]
    model, accuracy = train_digit_cnn(sets(root, "train"), sets(root, "test"))
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    metadata = {"test_accuracy": repr(accuracy), "version": VERSION, "drawing": drawing}
    write_bytes(path, save(weights, metadata=metadata))
    return model, accuracy


def digit_scores(
    classifier: DigitCNN,
    samples: Sequence | None = None,
    reconstructions: Sequence | None = None,
    targets: Sequence | None = None,
    target_labels: Sequence[int] | None = None,
    requested: Sequence[int] | None = None,
) -> dict[str, float | list[float]]:
    """What the classifier reads in generated sets:

    - `samples_confident`: the fraction of `samples` it gives some digit with probability > 0.9;
      `samples_digit_share`: each digit's share [10] of those confident samples, `samples_rarest_digit` the
      smallest share; `samples_as_requested` (with `requested` labels): the fraction classified as asked;
    - `recon_digit_acc`: the fraction of `reconstructions` classified as their target's label;
    - `real_confident`, `digit_classifier_acc`: the same confidence and the accuracy on the real `targets`
      (the ceiling for the figures above)."""
    out: dict[str, float | list[float]] = {}
    if samples is not None and len(samples):
        p = classifier.probabilities(samples)
        confident = p.max(1).values > CONFIDENT
        out["samples_confident"] = float(confident.double().mean())
        counts = torch.bincount(p.argmax(1)[confident], minlength=10).double()
        share = counts / counts.sum().clamp(min=1)
        out["samples_digit_share"] = [round(float(s), 4) for s in share]
        out["samples_rarest_digit"] = float(share.min())
        if requested is not None:
            hit = p.argmax(1) == torch.as_tensor(list(requested))
            out["samples_as_requested"] = float(hit.double().mean())
    if targets is not None and target_labels is not None:
        labels = torch.as_tensor(list(target_labels))
        p = classifier.probabilities(targets)
        out["digit_classifier_acc"] = float((p.argmax(1) == labels).double().mean())
        out["real_confident"] = float((p.max(1).values > CONFIDENT).double().mean())
        if reconstructions is not None:
            hit = classifier.probabilities(reconstructions).argmax(1) == labels
            out["recon_digit_acc"] = float(hit.double().mean())
    return out

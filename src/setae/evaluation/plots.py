"""Pictures a person can look at: sets as scatter plots (image orientation, y down), training curves."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from setae.datasets.strokes import strokes_to_polylines  # noqa: E402
from setae.fileio import atomic_write  # noqa: E402


def _draw_set(ax, points: torch.Tensor, title: str | None = None, color: str = "black") -> None:
    p = points.detach().cpu().numpy()
    if p.shape[1] >= 2:
        ax.scatter(p[:, 0], p[:, 1], s=6, c=color, linewidths=0)
    else:
        ax.scatter(p[:, 0], [0.5] * len(p), s=6, c=color, linewidths=0)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(1.05, -0.05)  # y down, as in the image
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_reconstructions(
    inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], path: Path, labels: Sequence[int] = ()
) -> Path:
    """Inputs (top row of each pair) above their reconstructions (bottom row), with set sizes in titles."""
    cols = min(8, len(inputs))
    pairs = (len(inputs) + cols - 1) // cols
    fig, axes = plt.subplots(2 * pairs, cols, figsize=(1.3 * cols, 2.7 * pairs), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
        r, c = divmod(i, cols)
        label = f"digit {labels[i]}, " if i < len(labels) else ""
        for ax, pts, name, color in (
            (axes[2 * r, c], x, "input", "black"),
            (axes[2 * r + 1, c], y, "output", "C0"),
        ):
            ax.axis("on")
            _draw_set(ax, pts, f"{label if name == 'input' else ''}{name} n={len(pts)}", color)
    return _save(fig, path)


def plot_sets(sets: Sequence[torch.Tensor], path: Path, title: str) -> Path:
    cols = min(8, len(sets))
    rows = (len(sets) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pts in zip(axes.flat, sets, strict=False):
        ax.axis("on")
        _draw_set(ax, pts, f"n={len(pts)}", "C0")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_training_curves(log_path: Path, path: Path) -> Path:
    """Training terms per set (nats) and the validation Chamfer distance and size error against step."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "split" not in r]
    val = [r for r in records if r.get("split") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    steps = [r["step"] for r in train]
    for key in ("recon", "size", "kl"):
        axes[0].plot(steps, [r[key] for r in train], label=key)
    axes[0].set_yscale("symlog")
    axes[0].set_title("training terms (nats per set)")
    axes[0].legend(fontsize=7)
    axes[1].plot(steps, [r["distance"] for r in train], label="train (true size)")
    axes[1].plot(
        [r["step"] for r in val],
        [r["chamfer"] for r in val],
        "o-",
        label="validation chamfer (predicted size)",
    )
    axes[1].set_yscale("log")
    axes[1].set_title("set distance")
    axes[1].legend(fontsize=7)
    val_steps = [r["step"] for r in val]
    axes[2].plot(val_steps, [r["size_mae"] for r in val], "o-", color="C0")
    axes[2].set_ylabel("size MAE (points)", color="C0")
    accuracy = axes[2].twinx()
    accuracy.plot(val_steps, [r["size_acc"] for r in val], "s-", color="C1")
    accuracy.set_ylabel("size accuracy", color="C1")
    axes[2].set_title("validation set size")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_set_grid(
    columns: Sequence[Sequence[torch.Tensor]], path: Path, title: str, titles: Sequence[str]
) -> Path:
    """A grid of sets: `columns[c][r]` is drawn in column c, row r; `titles` label the columns."""
    steps, rows = len(columns), len(columns[0])
    fig, axes = plt.subplots(rows, steps, figsize=(1.1 * steps, 1.2 * rows), squeeze=False)
    for c, column in enumerate(columns):
        for r, pts in enumerate(column):
            _draw_set(axes[r, c], pts, titles[c] if r == 0 else None, "C0")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_interpolations(lines: Sequence[Sequence[torch.Tensor]], path: Path) -> Path:
    """One row per pair: the decoded sets X_0 .. X_T along a straight line in code space (`lines` is a list
    over t of lists over pairs, as from setae.evaluation.generation.interpolate)."""
    titles = [f"t={t}/{len(lines) - 1}" for t in range(len(lines))]
    return plot_set_grid(lines, path, "decoded sets along straight lines between two test codes", titles)


def plot_traversal(columns: Sequence[Sequence[torch.Tensor]], offsets: Sequence[float], path: Path) -> Path:
    """One row per principal direction of the codes: sets decoded at mean + offset·σ·direction."""
    titles = [f"{a:+.1f}σ" for a in offsets]
    return plot_set_grid(columns, path, "latent traversal along the codes' principal directions", titles)


def animate_sets(
    frames: Sequence[torch.Tensor], path: Path, title: str, seconds_per_frame: float = 0.12
) -> Path:
    """An animated GIF with one set per frame (e.g. an interpolation there and back)."""
    from PIL import Image

    images = []
    for pts in frames:
        fig, ax = plt.subplots(figsize=(2.4, 2.6))
        _draw_set(ax, pts, f"{title}\nn={len(pts)}", "C0")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        images.append(Image.open(io.BytesIO(buffer.getvalue())).convert("P"))

    def write(tmp: Path) -> None:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(1000 * seconds_per_frame),
            loop=0,
        )

    return atomic_write(path, write)


def plot_code_map(codes: torch.Tensor, labels: Sequence[int], path: Path) -> Path:
    """Codes [N, latent] projected on their first two principal components, coloured by label."""
    x = codes.double() - codes.double().mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy() if x.shape[1] >= 2 else torch.cat([x, torch.zeros_like(x)], 1).numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(
        xy[:, 0], xy[:, 1], c=list(labels), cmap="tab10", s=4, linewidths=0, vmin=-0.5, vmax=9.5
    )
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"test codes ({len(xy)}), first two principal components", fontsize=9)
    return _save(fig, path)


def plot_cluster_gallery(
    sets: Sequence[torch.Tensor], clusters: Sequence[int], path: Path, per_cluster: int = 8
) -> Path:
    """One row per k-means cluster (largest first): its first `per_cluster` member sets and its size."""
    ids, counts = torch.unique(torch.as_tensor(clusters), return_counts=True)
    order = ids[counts.argsort(descending=True)].tolist()
    members = {c: [i for i, k in enumerate(clusters) if k == c] for c in order}
    fig, axes = plt.subplots(
        len(order), per_cluster, figsize=(1.0 * per_cluster, 1.05 * len(order)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, c in enumerate(order):
        for col, i in enumerate(members[c][:per_cluster]):
            axes[r, col].axis("on")
            _draw_set(axes[r, col], sets[i], f"cluster {c}: {len(members[c])}" if col == 0 else None)
    fig.suptitle("k-means clusters of test codes", fontsize=9)
    return _save(fig, path)


def draw_strokes(
    ax, steps, title: str | None = None, frame: tuple[int, int] | None = None, linewidth: float = 1.5
) -> None:
    """Draw a stroke-3 drawing [T, 3] (setae.datasets.strokes) on `ax`, one colour per stroke, y down.

    With `frame` (height, width) the axes show an image of that size in pixel units, as `imshow` places it
    (pixel (row r, column c) centred on (c, r)); otherwise they fit the drawing."""
    steps = steps.detach().cpu().numpy() if torch.is_tensor(steps) else steps
    for k, line in enumerate(strokes_to_polylines(steps)):
        ax.plot(line[:, 0], line[:, 1], "-o", color=f"C{k % 10}", linewidth=linewidth, markersize=1.5)
    if frame is None:
        ax.invert_yaxis()
    else:
        ax.set_xlim(-0.5, frame[1] - 0.5)
        ax.set_ylim(frame[0] - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def plot_strokes(
    drawings: Sequence, path: Path, titles: Sequence[str] = (), images: Sequence | None = None
) -> Path:
    """A grid of stroke-3 drawings, eight to a row, or four to a row each after its image when `images`
    ([H, W] arrays, e.g. the MNIST digits the drawings were traced from) are given."""
    per_item = 1 if images is None else 2
    cols = min(8 // per_item, len(drawings))
    rows = (len(drawings) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, per_item * cols, figsize=(1.1 * per_item * cols, 1.25 * rows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, steps in enumerate(drawings):
        r, c = divmod(i, cols)
        ax = axes[r, per_item * c + per_item - 1]
        ax.axis("on")
        frame = None
        if images is not None:
            image = np.asarray(images[i])
            frame = image.shape
            axes[r, per_item * c].imshow(image, cmap="gray_r")
        draw_strokes(ax, steps, titles[i] if i < len(titles) else None, frame)
    fig.tight_layout()
    return _save(fig, path)


def plot_cluster_members(
    items: Sequence, path: Path, title: str, titles: Sequence[str] = (), strokes: bool = False
) -> Path:
    """Up to 16 items of one cluster, four to a row: point sets [n, D] (as `_draw_set`) or, with `strokes`,
    stroke-3 drawings [T, 3] (as `draw_strokes`); an empty cluster gives a picture saying so."""
    cols = max(1, min(4, len(items)))
    rows = max(1, (len(items) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.45 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, item) in enumerate(zip(axes.flat, items, strict=False)):
        ax.axis("on")
        name = titles[i] if i < len(titles) else None
        if strokes:
            draw_strokes(ax, item, name)
        else:
            _draw_set(ax, torch.as_tensor(np.asarray(item)), name)
    fig.suptitle(title if len(items) else f"{title} (empty)", fontsize=8)
    return _save(fig, path)


def plot_cluster_selection(
    ks: Sequence[int], inertia: Sequence[float], silhouette: Sequence[float], chosen: int, path: Path
) -> Path:
    """Two panels against k: the within-cluster sum of squares (look for the elbow) and the mean
    silhouette (higher is better; its best k is marked), with the chosen k as a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(ks, inertia, "o-")
    axes[0].set_title("within-cluster sum of squares (elbow)", fontsize=9)
    axes[1].plot(ks, silhouette, "o-", color="C1")
    best = int(np.argmax(silhouette))
    axes[1].plot([ks[best]], [silhouette[best]], "*", color="C3", markersize=12, label=f"best k={ks[best]}")
    axes[1].set_title("mean silhouette coefficient", fontsize=9)
    for ax in axes:
        ax.axvline(chosen, color="gray", linestyle="--", linewidth=1, label=f"chosen k={chosen}")
        ax.set_xlabel("k (k-means clusters)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)

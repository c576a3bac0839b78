"""Pictures a person can look at: sets as scatter plots in a `Frame` fitted to the data, training curves.

Every function that draws point sets takes a `frame`: the box the sets are drawn in (per-axis limits, whether
y points down as in an image, 2-D or 3-D axes) and the word for labels ("digit" for MNIST, else "class").
`Frame.for_data` chooses it: MNIST pixel sets keep the unit square with y down (image coordinates), MNIST
strokes the 28 × 28 pixel square; any other data get limits fitted to the points being drawn (min to max of
all points, a margin of 5 %, equal units on every axis unless their extents differ more than tenfold), 3-D
points a 3-D scatter (equal box aspect), and points of more than three dimensions their first two principal
axes, which the picture's title says. Labels are named with the word and only the labels present.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from setae.datasets.strokes import strokes_to_points, strokes_to_polylines  # noqa: E402
from setae.fileio import atomic_write  # noqa: E402

IMAGE_DATA = (
    "mnist",
    "mnist-skeleton",
    "mnist-completion",
)  # point sets in image coordinates: (column, row) / 27, y down
MNIST_DATA = (*IMAGE_DATA, "mnist-strokes")
MNIST_SIDE = 28
MARGIN = 0.05  # of an axis's span, on each side of a fitted frame
MAX_ASPECT = 10.0  # a fitted frame keeps equal units on all axes unless their extents differ more than this


def _numpy(points) -> np.ndarray:
    if torch.is_tensor(points):
        points = points.detach().cpu().numpy()
    points = np.asarray(points, dtype=np.float64)
    return points.reshape(len(points), -1) if points.ndim != 2 else points


@dataclass(frozen=True)
class Frame:
    """The box sets are drawn in. `limits`: (low, high) per drawn axis, 2 or 3 of them; `y_down`: y grows
    downwards (images); `equal`: the same unit on every axis; `label_word`: "digit" or "class", for titles
    and colour bars; `strokes`: items are stroke-3 drawings [T, 3] (setae.datasets.strokes), drawn as lines;
    `mean`, `basis` [D, 2]: for points of D > 3 (or D = 1) dimensions, the drawn coordinates are
    (p - mean) @ basis (the first two principal axes of the fitted points; D = 1: the coordinate and 0)."""

    limits: tuple[tuple[float, float], ...]
    y_down: bool = False
    equal: bool = True
    label_word: str = "class"
    strokes: bool = False
    point_dim: int | None = None
    mean: tuple[float, ...] | None = None
    basis: tuple[tuple[float, ...], ...] | None = None

    @property
    def dims(self) -> int:
        return len(self.limits)

    @property
    def note(self) -> str:
        """What a title should add about the drawn coordinates ("" when they are the points' own)."""
        if self.point_dim is not None and self.point_dim > 3:
            return f"first two principal axes of the {self.point_dim}-D points"
        if self.point_dim == 1:
            return "1-D points, drawn along x"
        return ""

    def label(self, value: int) -> str:
        return f"{self.label_word} {value}"

    @classmethod
    def unit_square(cls, label_word: str = "digit") -> Frame:
        """MNIST pixel sets: the unit square (plus 0.05), y down, as the digit appears in the image."""
        return cls(((-0.05, 1.05), (-0.05, 1.05)), y_down=True, label_word=label_word, point_dim=2)

    @classmethod
    def pixels(cls, side: int = MNIST_SIDE, label_word: str = "digit") -> Frame:
        """Stroke-3 drawings in pixel units of a side × side image: pixel centres 0..side-1, y down."""
        lim = (-0.5, side - 0.5)
        return cls((lim, lim), y_down=True, label_word=label_word, strokes=True, point_dim=3)

    @classmethod
    def fit(
        cls,
        sets: Iterable,
        image: bool = False,
        label_word: str = "class",
        strokes: bool = False,
        margin: float = MARGIN,
    ) -> Frame:
        """The frame of every point of `sets` ([n_i, D] each; with `strokes`, stroke-3 drawings whose absolute
        points count): per-axis limits from the smallest to the largest coordinate, the same unit on every
        axis (centred, so all axes span the largest extent) unless the extents differ more than MAX_ASPECT
        times, and `margin` of the span on each side; y down with `image`. Points of D > 3
        dimensions are drawn on their first two principal axes, D = 3 (not strokes) in 3-D."""
        items = [_numpy(strokes_to_points(s) if strokes else s) for s in sets]
        nonempty = [p for p in items if p.size]
        dims = sorted({p.shape[1] for p in nonempty})
        if len(dims) > 1:
            raise ValueError(f"Frame.fit: sets of different point dimensions {dims}")
        if strokes:
            point_dim = 3
        else:
            point_dim = dims[0] if dims else (items[0].shape[1] if items else 2)
        points = np.concatenate(nonempty) if nonempty else np.zeros((0, 2 if strokes else point_dim))
        points = points[np.isfinite(points).all(1)]
        mean = basis = None
        if not strokes and point_dim not in (2, 3):
            if point_dim == 1:
                mean_v, basis_m = np.zeros(1), np.array([[1.0, 0.0]])
            else:
                mean_v = points.mean(0) if len(points) else np.zeros(point_dim)
                basis_m = np.eye(point_dim)[:, :2]
                if len(points) >= 2:
                    basis_m = np.linalg.svd(points - mean_v, full_matrices=False)[2][:2].T
            mean = tuple(float(v) for v in mean_v)
            basis = tuple(tuple(float(v) for v in row) for row in basis_m)
            points = (points - mean_v) @ basis_m
        ndim = 3 if point_dim == 3 and not strokes else 2
        if len(points) == 0:
            points = np.array([[0.0] * ndim, [1.0] * ndim])
        low, high = points[:, :ndim].min(0), points[:, :ndim].max(0)
        extent = high - low
        largest = float(extent.max()) if extent.max() > 0 else 1.0
        smallest = float(extent[extent > 0].min()) if (extent > 0).any() else largest
        equal = largest / smallest <= MAX_ASPECT
        centre = (low + high) / 2
        own = np.where(equal | (extent <= 0), largest, extent)  # the extent each axis spans
        half = own / 2 + margin * own
        limits = tuple((float(c - h), float(c + h)) for c, h in zip(centre, half, strict=True))
        return cls(
            limits,
            y_down=image or strokes,
            equal=equal,
            label_word=label_word,
            strokes=strokes,
            point_dim=point_dim,
            mean=mean,
            basis=basis,
        )

    @classmethod
    def for_data(cls, data: str | None, sets: Iterable = (), strokes: bool = False) -> Frame:
        """The frame for items of the source `data` (train.data; None: unknown): MNIST pixel or skeleton
        sets the unit square with y down, MNIST strokes the 28 × 28 pixel square, anything else fitted to
        `sets` (`fit`; the word "class")."""
        if data in IMAGE_DATA and not strokes:
            return cls.unit_square()
        if data == "mnist-strokes" and strokes:
            return cls.pixels()
        word = "digit" if data in MNIST_DATA else "class"
        return cls.fit(sets, label_word=word, strokes=strokes)

    @classmethod
    def guess(cls, sets: Sequence, strokes: bool = False) -> Frame:
        """For callers that pass no frame: the unit square with y down when every set is 2-D with all its
        points in [0, 1]² (MNIST's protocol, as every picture was drawn before frames), else `fit`."""
        if not strokes:
            items = [_numpy(s) for s in sets]
            if items and all(p.ndim == 2 and p.shape[1] == 2 for p in items):
                points = np.concatenate(items)
                if len(points) and points.min() >= 0 and points.max() <= 1:
                    return cls.unit_square(label_word="class")
        return cls.fit(sets, strokes=strokes)

    def project(self, points) -> np.ndarray:
        """Drawn coordinates [n, dims] of points [n, D] (D > 3 or D = 1: on the frame's basis)."""
        p = _numpy(points)
        if self.basis is not None and p.shape[1] == len(self.basis):
            return (p - np.asarray(self.mean)) @ np.asarray(self.basis)
        if p.shape[1] < self.dims:
            return np.concatenate([p, np.zeros((len(p), self.dims - p.shape[1]))], 1)
        return p[:, : self.dims]

    def contains(self, points) -> bool:
        """Whether every (projected) point lies inside the limits."""
        p = self.project(strokes_to_points(points) if self.strokes else points)
        low = np.array([lo for lo, _ in self.limits])
        high = np.array([hi for _, hi in self.limits])
        return bool(((p >= low) & (p <= high)).all())

    def apply(self, ax) -> None:
        """Set `ax`'s limits, orientation and aspect to the frame's, without ticks."""
        (x0, x1), (y0, y1) = self.limits[:2]
        ax.set_xlim(x0, x1)
        ax.set_ylim((y1, y0) if self.y_down else (y0, y1))
        ax.set_xticks([])
        ax.set_yticks([])
        if self.dims == 3:
            ax.set_zlim(*self.limits[2])
            ax.set_zticks([])
            spans = [hi - lo for lo, hi in self.limits]
            ax.set_box_aspect(spans if self.equal else (1, 1, 1))
        else:
            ax.set_aspect("equal" if self.equal else "auto")


def _subplots(rows: int, cols: int, figsize, frame: Frame, **kwargs):
    """plt.subplots with 3-D axes when the frame is 3-D."""
    if frame.dims == 3:
        kwargs["subplot_kw"] = {"projection": "3d"}
    return plt.subplots(rows, cols, figsize=figsize, squeeze=False, **kwargs)


def _draw_set(ax, points, frame: Frame, title: str | None = None, color: str = "black") -> None:
    """One item in `frame`: a point set [n, D] as a scatter (3-D axes for a 3-D frame), or a stroke-3
    drawing as lines, one colour per stroke."""
    if frame.strokes:
        steps = _numpy(points)
        for k, line in enumerate(strokes_to_polylines(steps) if len(steps) else []):
            ax.plot(line[:, 0], line[:, 1], "-o", color=f"C{k % 10}", linewidth=1.0, markersize=1.2)
    else:
        p = frame.project(points)
        if frame.dims == 3:
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=5, c=color, linewidths=0, depthshade=True)
        else:
            ax.scatter(p[:, 0], p[:, 1], s=6, c=color, linewidths=0)
    frame.apply(ax)
    if title:
        ax.set_title(title, fontsize=7)


def _suptitle(fig, title: str, frame: Frame, fontsize: int = 9) -> None:
    """The figure's title (with the frame's note), just above the top row's titles however tall the figure."""
    text = f"{title} ({frame.note})" if title and frame.note else title or frame.note
    if text:
        top = max(ax.get_position().y1 for ax in fig.axes)
        fig.suptitle(text, fontsize=fontsize, y=top + 0.3 / fig.get_figheight(), va="bottom")


def _frame(frame: Frame | None, *groups: Sequence, strokes: bool = False) -> Frame:
    return frame if frame is not None else Frame.guess([s for g in groups for s in g], strokes=strokes)


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_reconstructions(
    inputs: Sequence[torch.Tensor],
    outputs: Sequence[torch.Tensor],
    path: Path,
    labels: Sequence[int] = (),
    frame: Frame | None = None,
) -> Path:
    """Inputs (top row of each pair) above their reconstructions (bottom row), with set sizes in titles,
    all in one frame (default: `Frame.guess` of inputs and outputs)."""
    frame = _frame(frame, inputs, outputs)
    cols = min(8, len(inputs))
    pairs = (len(inputs) + cols - 1) // cols
    size = 1.6 if frame.dims == 3 else 1.3  # 3-D boxes need more room than their titles
    fig, axes = _subplots(2 * pairs, cols, (size * cols, (2 * size + 0.1) * pairs), frame)
    for ax in axes.flat:
        ax.axis("off")
    for i, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
        r, c = divmod(i, cols)
        label = f"{frame.label(labels[i])}, " if i < len(labels) and labels[i] >= 0 else ""
        for ax, pts, name, color in (
            (axes[2 * r, c], x, "input", "black"),
            (axes[2 * r + 1, c], y, "output", "C0"),
        ):
            ax.axis("on")
            _draw_set(ax, pts, frame, f"{label if name == 'input' else ''}{name} n={len(pts)}", color)
    _suptitle(fig, "", frame)
    return _save(fig, path)


def plot_sets(sets: Sequence[torch.Tensor], path: Path, title: str, frame: Frame | None = None) -> Path:
    frame = _frame(frame, sets)
    cols = min(8, len(sets))
    rows = (len(sets) + cols - 1) // cols
    size = 1.6 if frame.dims == 3 else 1.3
    fig, axes = _subplots(rows, cols, (size * cols, (size + 0.1) * rows + 0.3), frame)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pts in zip(axes.flat, sets, strict=False):
        ax.axis("on")
        _draw_set(ax, pts, frame, f"n={len(pts)}", "C0")
    _suptitle(fig, title, frame)
    return _save(fig, path)


def _run_normalizes(log_path: Path) -> tuple[bool, str]:
    """(config.model.normalize, config.model.loss) of the run whose log this is, from its config.json."""
    config_path = log_path.parent / "config.json"
    if not config_path.exists():
        return False, "set"
    model = json.loads(config_path.read_text()).get("model", {})
    return bool(model.get("normalize")), str(model.get("loss") or "set")


def plot_training_curves(log_path: Path, path: Path, normalized: bool | None = None) -> Path:
    """Training terms per set (nats), the training set distance, the validation Chamfer distance and the
    validation size error against step. log.jsonl's training `distance` is in the model's units, which
    are standardised (per-dimension z-scores) when the model normalises its points (`normalized`; None:
    read from the run's config.json), while validation Chamfer is in the data's own units: then they are
    drawn on two panels, each labelled with its unit, never on one axis."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "split" not in r]
    val = [r for r in records if r.get("split") == "val"]
    normalizes, loss = _run_normalizes(log_path)
    if normalized is not None:
        normalizes = normalized
    panels = 4 if normalizes else 3
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.2))
    steps = [r["step"] for r in train]
    for key in ("recon", "size", "kl"):
        if train and key in train[0]:
            axes[0].plot(steps, [r[key] for r in train], label=key)
    axes[0].set_yscale("symlog")
    axes[0].set_title("training terms (nats per set)", fontsize=9)
    axes[0].set_ylabel("nats per set")
    axes[0].legend(fontsize=7)
    train_distance = [(r["step"], r["distance"]) for r in train if "distance" in r]
    val_chamfer = [(r["step"], r["chamfer"]) for r in val if "chamfer" in r]
    train_label = f"train {loss} (true size)"
    val_label = "validation chamfer (predicted size)"
    data_unit = "squared distance, data units²"
    if normalizes:
        distance_axes = [
            (axes[1], train_distance, train_label, "-", "C0"),
            (axes[2], val_chamfer, val_label, "o-", "C1"),
        ]
        axes[1].set_title(f"training {loss} distance (standardised points)", fontsize=9)
        axes[1].set_ylabel("squared distance, standardised units²")
        axes[2].set_title("validation chamfer (data units)", fontsize=9)
        axes[2].set_ylabel(data_unit)
    else:
        distance_axes = [
            (axes[1], train_distance, train_label, "-", "C0"),
            (axes[1], val_chamfer, val_label, "o-", "C1"),
        ]
        axes[1].set_title("set distance", fontsize=9)
        axes[1].set_ylabel(data_unit)
    for ax, pairs, label, style, color in distance_axes:
        if pairs:
            ax.plot(*zip(*pairs, strict=True), style, color=color, label=label)
            if min(v for _, v in pairs) > 0:
                ax.set_yscale("log")
        ax.legend(fontsize=7)
    size_ax = axes[-1]
    val_steps = [r["step"] for r in val]
    size_ax.plot(val_steps, [r.get("size_mae", np.nan) for r in val], "o-", color="C0")
    size_ax.set_ylabel("size MAE (points)", color="C0")
    accuracy = size_ax.twinx()
    accuracy.plot(val_steps, [r.get("size_acc", np.nan) for r in val], "s-", color="C1")
    accuracy.set_ylabel("size accuracy (fraction)", color="C1")
    size_ax.set_title("validation set size", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_gan_curves(log_path: Path, path: Path) -> Path:
    """A GAN run's log against step: the two players' objectives (no nats: a GAN has no likelihood), the
    discriminator's mean scores of real and generated sets with the R1 penalty, and the validation
    generation metrics (MMD of Chamfer distances, 1-NNA, whose ideal is 0.5)."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "split" not in r]
    val = [r for r in records if r.get("split") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    steps = [r["step"] for r in train]
    panels = (
        (axes[0], ("d_objective", "g_objective"), "objectives (per set)"),
        (axes[1], ("real_score", "fake_score", "r1"), "discriminator: mean scores, R1 penalty"),
    )
    for ax, keys, title in panels:
        for key in keys:
            if train and key in train[0]:
                ax.plot(steps, [r[key] for r in train], label=key)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    val_steps = [r["step"] for r in val]
    axes[2].plot(val_steps, [r.get("gen_mmd", np.nan) for r in val], "o-", color="C0")
    axes[2].set_ylabel("MMD (Chamfer, data units²)", color="C0")
    nna = axes[2].twinx()
    nna.plot(val_steps, [r.get("gen_1nna", np.nan) for r in val], "s-", color="C1")
    nna.axhline(0.5, color="C1", lw=0.8, ls=":")
    nna.set_ylabel("1-NNA (ideal 0.5)", color="C1")
    axes[2].set_title("validation generation metrics", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_sample_comparison(
    groups: dict[str, Sequence[torch.Tensor]], path: Path, cols: int = 4, frame: Frame | None = None
) -> Path:
    """Side by side, one block per entry of `groups` (heading: its key), each a grid of its sets, `cols`
    wide, all in one frame: e.g. a GAN's samples beside a VAE's."""
    frame = _frame(frame, *groups.values())
    rows = max((len(sets) + cols - 1) // cols for sets in groups.values())
    size = 1.1
    fig = plt.figure(figsize=(size * cols * len(groups) + 0.3 * (len(groups) - 1), size * rows + 0.5))
    for sub, (name, sets) in zip(np.atleast_1d(fig.subfigures(1, len(groups))), groups.items(), strict=True):
        axes = sub.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, pts in zip(axes.flat, sets, strict=False):
            ax.axis("on")
            _draw_set(ax, pts, frame, None, "C0")
        sub.suptitle(name, fontsize=9)
    return _save(fig, path)


def plot_set_grid(
    columns: Sequence[Sequence[torch.Tensor]],
    path: Path,
    title: str,
    titles: Sequence[str],
    frame: Frame | None = None,
) -> Path:
    """A grid of sets: `columns[c][r]` is drawn in column c, row r; `titles` label the columns."""
    frame = _frame(frame, *columns)
    steps, rows = len(columns), len(columns[0])
    size = 1.4 if frame.dims == 3 else 1.1
    fig, axes = _subplots(rows, steps, (size * steps, (size + 0.1) * rows), frame)
    for c, column in enumerate(columns):
        for r, pts in enumerate(column):
            _draw_set(axes[r, c], pts, frame, titles[c] if r == 0 else None, "C0")
    _suptitle(fig, title, frame)
    return _save(fig, path)


def plot_interpolations(
    lines: Sequence[Sequence[torch.Tensor]], path: Path, frame: Frame | None = None
) -> Path:
    """One row per pair: the decoded sets X_0 .. X_T along a straight line in code space (`lines` is a list
    over t of lists over pairs, as from setae.evaluation.generation.interpolate)."""
    titles = [f"t={t}/{len(lines) - 1}" for t in range(len(lines))]
    return plot_set_grid(
        lines, path, "decoded sets along straight lines between two test codes", titles, frame
    )


def plot_traversal(
    columns: Sequence[Sequence[torch.Tensor]],
    offsets: Sequence[float],
    path: Path,
    frame: Frame | None = None,
) -> Path:
    """One row per principal direction of the codes: sets decoded at mean + offset·σ·direction."""
    titles = [f"{a:+.1f}σ" for a in offsets]
    return plot_set_grid(
        columns, path, "latent traversal along the codes' principal directions", titles, frame
    )


def animate_sets(
    frames: Sequence[torch.Tensor],
    path: Path,
    title: str,
    seconds_per_frame: float = 0.12,
    frame: Frame | None = None,
) -> Path:
    """An animated GIF with one set per picture (`frames`, e.g. an interpolation there and back), all drawn
    in one `frame` (default: `Frame.guess` of all of them)."""
    from PIL import Image

    box = _frame(frame, frames)
    images = []
    for pts in frames:
        fig, ax = _subplots(1, 1, (2.4, 2.6), box)
        ax = ax[0, 0]
        _draw_set(ax, pts, box, f"{title}\nn={len(pts)}" + (f"\n{box.note}" if box.note else ""), "C0")
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


def class_colours(labels: Sequence[int]) -> tuple[list[int], list]:
    """The classes present (sorted) and one colour each: tab10's colour C<k> for class k when every class
    is in 0..9 (so a class keeps its colour from picture to picture), else tab10 / tab20 / a sampled
    viridis by rank."""
    classes = sorted({int(v) for v in labels})
    if classes and classes[0] >= 0 and classes[-1] <= 9:
        return classes, [plt.get_cmap("tab10")(c) for c in classes]
    if len(classes) <= 20:
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        return classes, [cmap(i) for i in range(len(classes))]
    return classes, [plt.get_cmap("viridis")(x) for x in np.linspace(0, 1, len(classes))]


def plot_code_map(codes: torch.Tensor, labels: Sequence[int], path: Path, label_word: str = "class") -> Path:
    """Codes [N, latent] projected on their first two principal components, coloured by label, with a
    discrete colour bar of the labels present (named `label_word`: "digit", "class")."""
    x = codes.double() - codes.double().mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy() if x.shape[1] >= 2 else torch.cat([x, torch.zeros_like(x)], 1).numpy()
    classes, colours = class_colours(labels)
    rank = {c: i for i, c in enumerate(classes)}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    norm = BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes))
    points = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=[rank[int(v)] for v in labels],
        cmap=ListedColormap(colours),
        norm=norm,
        s=4,
        linewidths=0,
    )
    every = max(1, len(classes) // 20)
    bar = fig.colorbar(points, ax=ax, ticks=range(0, len(classes), every), label=label_word)
    bar.set_ticklabels([str(c) for c in classes[::every]])
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"test codes ({len(xy)}) by {label_word}, first two principal components", fontsize=9)
    return _save(fig, path)


def plot_cluster_gallery(
    sets: Sequence[torch.Tensor],
    clusters: Sequence[int],
    path: Path,
    per_cluster: int = 8,
    frame: Frame | None = None,
) -> Path:
    """One row per k-means cluster (largest first), in the cluster's colour: its first `per_cluster`
    member sets and its size."""
    frame = _frame(frame, sets)
    ids, counts = torch.unique(torch.as_tensor(clusters), return_counts=True)
    order = ids[counts.argsort(descending=True)].tolist()
    members = {c: [i for i, k in enumerate(clusters) if k == c] for c in order}
    size = 1.3 if frame.dims == 3 else 1.0
    fig, axes = _subplots(len(order), per_cluster, (size * per_cluster, (size + 0.05) * len(order)), frame)
    for ax in axes.flat:
        ax.axis("off")
    for r, c in enumerate(order):
        for col, i in enumerate(members[c][:per_cluster]):
            axes[r, col].axis("on")
            title = f"cluster {c}: {len(members[c])}" if col == 0 else None
            _draw_set(axes[r, col], sets[i], frame, title, f"C{r % 10}")
    _suptitle(fig, "k-means clusters of test codes", frame)
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
    drawings: Sequence,
    path: Path,
    titles: Sequence[str] = (),
    images: Sequence | None = None,
    frame: tuple[int, int] | None = None,
) -> Path:
    """A grid of stroke-3 drawings, eight to a row, or four to a row each after its image when `images`
    ([H, W] arrays, e.g. the MNIST digits the drawings were traced from) are given. Every drawing is shown
    in the same `frame` (height, width) in pixels at equal aspect, or in its image's, or else fitted to
    itself."""
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
        shown = frame
        if images is not None:
            image = np.asarray(images[i])
            shown = image.shape
            axes[r, per_item * c].imshow(image, cmap="gray_r")
        draw_strokes(ax, steps, titles[i] if i < len(titles) else None, shown)
    fig.tight_layout()
    return _save(fig, path)


def plot_cluster_members(
    items: Sequence,
    path: Path,
    title: str,
    titles: Sequence[str] = (),
    strokes: bool = False,
    frame: Frame | None = None,
) -> Path:
    """Up to 16 items of one cluster, four to a row: point sets [n, D] (in `frame`, default `Frame.guess`
    of the items) or, with `strokes`, stroke-3 drawings [T, 3] (as `draw_strokes`, each fitted to itself
    unless a frame is given); an empty cluster gives a picture saying so."""
    box = frame if frame is not None or strokes else _frame(None, [np.asarray(i) for i in items])
    cols = max(1, min(4, len(items)))
    rows = max(1, (len(items) + cols - 1) // cols)
    size = 1.8 if box is not None and box.dims == 3 else 1.4
    figsize = (size * cols, (size + 0.05) * rows + 0.4)
    if box is None:
        fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    else:
        fig, axes = _subplots(rows, cols, figsize, box)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, item) in enumerate(zip(axes.flat, items, strict=False)):
        ax.axis("on")
        name = titles[i] if i < len(titles) else None
        if box is None:
            draw_strokes(ax, item, name)
        else:
            _draw_set(ax, item, box, name, "C0")
    text = title if len(items) else f"{title} (empty)"
    if box is not None and box.note:
        text = f"{text}\n({box.note})"
    fig.suptitle(text, fontsize=8)
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

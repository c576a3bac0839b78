"""Pictures of sets: the frame fits the data (any range, 2-D, 3-D, more), MNIST keeps its image frame, the
labels are the data's own, and training curves never put two units on one axis."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from setae.evaluation import plots
from setae.evaluation.plots import (
    Frame,
    animate_sets,
    plot_cluster_gallery,
    plot_cluster_members,
    plot_code_map,
    plot_reconstructions,
    plot_sets,
    plot_training_curves,
    plot_traversal,
)


def ink(path) -> float:
    """Fraction of the picture's pixels that are not near-white (points, frames, text)."""
    rgb = imread(path)[..., :3]
    return float((rgb.min(-1) < 0.85).mean())


def coloured(path) -> float:
    """Fraction of pixels with a colour (not white, grey or black): drawn points and curves, never the
    frames, panes or text, which are black and grey."""
    rgb = imread(path)[..., :3]
    return float((rgb.max(-1) - rgb.min(-1) > 0.2).mean())


def sets_in(low: float, high: float, dim: int, count: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(20, 40, (count,), generator=g).tolist()
    return [low + (high - low) * torch.rand(n, dim, generator=g) for n in sizes]


@pytest.fixture
def figures(monkeypatch):
    """The texts and axes limits of every figure the plots module saves, captured before it closes them."""
    seen = []
    save = plots._save

    def capture(fig, path):
        seen.append(
            {
                "titles": [ax.get_title() for ax in fig.axes],
                "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
                "axes": fig.axes,
                "xlim": [ax.get_xlim() for ax in fig.axes],
                "ylim": [ax.get_ylim() for ax in fig.axes],
                "ylabels": [ax.get_ylabel() for ax in fig.axes],
                "lines": [[line.get_label() for line in ax.get_lines()] for ax in fig.axes],
                "ticklabels": [[t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes],
            }
        )
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return seen


@pytest.mark.parametrize("dim", [2, 3])
def test_sets_far_from_the_unit_square_are_visible(tmp_path, dim):
    """Sets in [5, 15]: far more ink than the same frame with no points, and coloured points at all."""
    sets = sets_in(5, 15, dim)
    frame = Frame.fit(sets)
    drawn = plot_sets(sets, tmp_path / "sets.png", "sets", frame)
    empty = plot_sets([s[:0] for s in sets], tmp_path / "empty.png", "sets", frame)
    assert coloured(empty) == 0
    assert coloured(drawn) > 0.003, "the points are drawn in the picture"
    assert ink(drawn) > 1.5 * ink(empty), "well above the frame's own ink"
    # the default frame (none given) fits the sets as well
    default = plot_sets(sets, tmp_path / "default.png", "sets")
    assert coloured(default) > 0.003


def test_3d_reconstructions_of_four_classes(tmp_path, figures):
    inputs = sets_in(5, 15, 3)
    outputs = [x + 0.2 * torch.randn_like(x) for x in inputs]
    labels = [0, 1, 2, 3, 0, 1, 2, 3]
    frame = Frame.for_data("points.npz", [*inputs, *outputs])
    assert frame.dims == 3 and frame.label_word == "class" and not frame.y_down
    path = plot_reconstructions(inputs, outputs, tmp_path / "reconstructions.png", labels, frame)
    assert coloured(path) > 0.003 and ink(path) > 0.02
    (figure,) = figures
    assert all(ax.name == "3d" for ax in figure["axes"]), "3-D sets as 3-D scatter plots"
    titles = [t for t in figure["titles"] if t.startswith(("class", "digit"))]
    assert titles and all(t.startswith("class ") for t in titles), titles
    assert {t.split(",")[0] for t in titles} == {"class 0", "class 1", "class 2", "class 3"}


@pytest.mark.parametrize(
    ("dim", "low", "high"), [(2, 5, 15), (3, 5, 15), (2, -1e4, 3e4), (3, 0.001, 0.002), (5, -3, 3), (1, 2, 4)]
)
def test_the_frame_contains_every_point(dim, low, high):
    sets = sets_in(low, high, dim, seed=dim)
    sets[0][0] = torch.full((dim,), float(high) + (high - low))  # one point far outside the rest
    frame = Frame.fit(sets)
    assert all(frame.contains(s) for s in sets)
    assert frame.dims == (3 if dim == 3 else 2)
    spans = [hi - lo for lo, hi in frame.limits]
    assert max(spans) == pytest.approx(min(spans)), "equal units on every axis"
    assert max(spans) < 3 * (high - low) * max(1, dim) ** 0.5 + 1e-9, "fitted, not a fixed box"


def test_an_anisotropic_frame_stretches_and_still_contains_every_point():
    sets = [torch.stack([torch.linspace(0, 1000, 30), torch.rand(30)], 1)]
    frame = Frame.fit(sets)
    assert not frame.equal and frame.contains(sets[0])
    (x0, x1), (y0, y1) = frame.limits
    assert x1 - x0 > 100 * (y1 - y0) > 0


def test_more_than_three_dimensions_are_drawn_on_principal_axes(tmp_path, figures):
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([5.0, 0.1, 0.1, 3, 0.1, 0.1])
    sets = [10 + torch.randn(30, 6, generator=g) * scale for _ in range(4)]
    frame = Frame.fit(sets)
    assert frame.dims == 2 and "principal axes" in frame.note and "6-D" in frame.note
    assert all(frame.contains(s) for s in sets)
    plot_sets(sets, tmp_path / "sets.png", "samples", frame)
    assert "principal axes of the 6-D points" in figures[0]["suptitle"]
    assert coloured(tmp_path / "sets.png") > 0.003


@pytest.mark.parametrize("data", ["mnist", "mnist-skeleton"])
def test_mnist_keeps_the_unit_square_with_y_down(tmp_path, figures, data):
    g = torch.Generator().manual_seed(0)
    sets = [0.2 + 0.6 * torch.rand(30, 2, generator=g) for _ in range(4)]
    frame = Frame.for_data(data, sets)
    assert frame == Frame.unit_square() and frame.y_down and frame.label_word == "digit"
    plot_reconstructions(sets, sets, tmp_path / "r.png", [7, 1, 2, 3], frame)
    drawn = [i for i, t in enumerate(figures[0]["titles"]) if t]
    assert all(figures[0]["xlim"][i] == (-0.05, 1.05) for i in drawn)
    assert all(figures[0]["ylim"][i] == (1.05, -0.05) for i in drawn), "y down, as in the image"
    assert figures[0]["titles"][0].startswith("digit 7, input")


def test_other_data_point_y_up_and_callers_without_a_frame_keep_the_old_square(tmp_path, figures):
    sets = sets_in(5, 15, 2)
    plot_sets(sets, tmp_path / "a.png", "fitted")
    (y0, y1) = figures[0]["ylim"][0]
    assert y0 < 5 < 15 < y1, "y up, fitted"
    unit = [s / 20 for s in sets]
    assert Frame.guess(unit) == Frame.unit_square(label_word="class")
    assert Frame.for_data("mnist-strokes", strokes=True) == Frame.pixels()


def test_code_map_colour_bar_has_only_the_classes_present(tmp_path, figures):
    g = torch.Generator().manual_seed(0)
    labels = [3, 5, 7, 12] * 10
    codes = torch.randn(len(labels), 8, generator=g)
    plot_code_map(codes, labels, tmp_path / "map.png", "class")
    bar = [i for i, label in enumerate(figures[0]["ylabels"]) if label == "class"]
    assert len(bar) == 1
    assert figures[0]["ticklabels"][bar[0]] == ["3", "5", "7", "12"]
    assert "class" in figures[0]["titles"][0] and "digit" not in " ".join(figures[0]["titles"])


def test_galleries_and_animations_fit_the_frame(tmp_path):
    sets = sets_in(5, 15, 3, count=12)
    frame = Frame.fit(sets)
    assert coloured(plot_cluster_gallery(sets, [0, 1, 2] * 4, tmp_path / "g.png", frame=frame)) > 0.002
    assert coloured(plot_cluster_members(sets[:4], tmp_path / "m.png", "cluster 0", ["#0"] * 4)) > 0.002
    columns = [sets[:3], sets[3:6]]
    assert coloured(plot_traversal(columns, [-1.0, 1.0], tmp_path / "t.png", frame)) > 0.002
    from PIL import Image

    gif = animate_sets(sets[:3], tmp_path / "a.gif", "interpolation", frame=frame)
    first = tmp_path / "first.png"
    Image.open(gif).convert("RGB").save(first)
    assert coloured(first) > 0.002


def write_log(run, normalize: bool):
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"normalize": normalize, "loss": "hungarian"}}))
    terms = {"loss": 9.0, "recon": 5.0, "size": 3.0, "kl": 1.0}
    lines = [{"step": s, **terms, "distance": 0.3 / s} for s in range(1, 9)]
    val = {"split": "val", "size_mae": 1.0, "size_acc": 0.5}
    lines += [{"step": s, **val, "chamfer": 2.0 / s} for s in (4, 8)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run / "log.jsonl"


def test_normalised_training_distance_and_validation_chamfer_never_share_an_axis(tmp_path, figures):
    log = write_log(tmp_path / "run", normalize=True)
    path = plot_training_curves(log, tmp_path / "curves.png")
    assert coloured(path) > 0.002
    fig = figures[0]

    def axes_with(prefix):
        return [i for i, names in enumerate(fig["lines"]) if any(n.startswith(prefix) for n in names)]

    train, val = axes_with("train "), axes_with("validation chamfer")
    assert len(train) == len(val) == 1 and train != val
    assert "standardised" in fig["ylabels"][train[0]]
    assert "data units" in fig["ylabels"][val[0]]
    assert all(label for label, lines in zip(fig["ylabels"], fig["lines"], strict=True) if lines), "units"


def test_unnormalised_training_and_validation_distances_share_the_data_units(tmp_path, figures):
    log = write_log(tmp_path / "run", normalize=False)
    plot_training_curves(log, tmp_path / "curves.png")
    fig = figures[0]
    both = [i for i, names in enumerate(fig["lines"]) if len(names) == 2 and "validation" in names[1]]
    assert len(both) == 1 and "data units" in fig["ylabels"][both[0]]
    plot_training_curves(log, tmp_path / "forced.png", normalized=True)  # overrides config.json
    assert not any(len(names) == 2 and "validation" in names[1] for names in figures[1]["lines"])


def test_empty_and_degenerate_sets_still_draw(tmp_path):
    same = [torch.full((5, 3), 7.0)]
    frame = Frame.fit(same)
    assert frame.contains(same[0]) and all(hi > lo for lo, hi in frame.limits)
    assert Frame.fit([torch.zeros(0, 2)]).contains(torch.zeros(0, 2))
    assert plot_sets([torch.zeros(0, 3)], tmp_path / "e.png", "empty").is_file()
    assert np.isfinite(np.array(Frame.fit([torch.tensor([[1.0, float("nan")], [2.0, 3.0]])]).limits)).all()

"""Clustering codes: the silhouette and inertia against hand and brute-force values, choosing k on blobs,
and `setae cluster` end to end on a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from setae.cli import main
from setae.errors import SetaeError
from setae.evaluation.clustering import (
    inertia,
    nearest_members,
    parse_k_range,
    selection_curve,
    silhouette,
    write_clusters,
)
from setae.evaluation.plots import plot_cluster_members


def silhouette_double_loop(x: np.ndarray, labels: list[int]) -> float:
    scores = []
    for i in range(len(x)):
        own = [j for j in range(len(x)) if labels[j] == labels[i] and j != i]
        if not own:
            scores.append(0.0)
            continue
        a = sum(math.dist(x[i], x[j]) for j in own) / len(own)
        b = min(
            sum(math.dist(x[i], x[j]) for j in range(len(x)) if labels[j] == c) / labels.count(c)
            for c in set(labels) - {labels[i]}
        )
        scores.append((b - a) / max(a, b))
    return sum(scores) / len(scores)


def blobs(count: int, per_blob: int = 40, seed: int = 0) -> np.ndarray:
    """`count` Gaussian blobs (std 0.3) in 2-D with centres 10 apart on a circle."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(count) / count
    centres = 10 * np.stack([np.cos(angles), np.sin(angles)], 1) / (2 * np.sin(np.pi / count))
    return np.concatenate([c + 0.3 * rng.standard_normal((per_blob, 2)) for c in centres])


def test_silhouette_and_inertia_of_1d_examples_by_hand():
    # {0, 1} and {5, 6}: s(0) = (5.5 - 1) / 5.5 = 9/11, s(1) = (4.5 - 1) / 4.5 = 7/9, the same mirrored.
    x = np.array([[0.0], [1.0], [5.0], [6.0]])
    assert silhouette(x, [0, 0, 1, 1]) == pytest.approx((9 / 11 + 7 / 9) / 2, abs=1e-12)
    assert inertia(x, [0, 0, 1, 1]) == pytest.approx(4 * 0.25, abs=1e-12)
    # {0, 2} and the singleton {10}: s(0) = (10 - 2) / 10, s(2) = (8 - 2) / 8, s(10) = 0.
    x = np.array([[0.0], [2.0], [10.0]])
    assert silhouette(x, [3, 3, 7]) == pytest.approx((0.8 + 0.75 + 0.0) / 3, abs=1e-12)
    assert inertia(x, [3, 3, 7]) == pytest.approx(2.0, abs=1e-12)


def test_silhouette_matches_a_double_loop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 3))
    labels = [int(c) for c in rng.integers(0, 4, 29)] + [9]  # 9 is a singleton cluster
    expected = silhouette_double_loop(x, labels)
    assert silhouette(torch.as_tensor(x), labels) == pytest.approx(expected, abs=1e-12)
    assert silhouette(x, labels) != pytest.approx(silhouette(x, labels[::-1]), abs=1e-3)
    # Every code its own cluster: all s(i) = 0 (scikit-learn's silhouette_score refuses this case).
    assert silhouette(x[:5], [4, 3, 2, 1, 0]) == silhouette_double_loop(x[:5], [4, 3, 2, 1, 0]) == 0.0


def test_silhouette_needs_two_clusters():
    with pytest.raises(SetaeError, match="2 non-empty clusters"):
        silhouette(np.zeros((5, 2)), [1] * 5)


def test_selection_curve_finds_the_number_of_blobs():
    x = blobs(4)
    curve = selection_curve(x, range(2, 8), seed=0)
    assert curve["k"] == [2, 3, 4, 5, 6, 7]
    assert all(a > b for a, b in zip(curve["inertia"], curve["inertia"][1:], strict=False))
    assert curve["k"][int(np.argmax(curve["silhouette"]))] == 4
    assert curve["silhouette"][2] > 0.8


def test_parse_k_range():
    assert parse_k_range("2:20", 100) == range(2, 21)
    assert parse_k_range("3:20", 10) == range(3, 11)  # cut at the number of items
    for bad in ("1:5", "5:4", "2-5", "a:b", "4"):
        with pytest.raises(SetaeError, match="--k-range"):
            parse_k_range(bad, 100)
    with pytest.raises(SetaeError, match="number of items"):
        parse_k_range("12:20", 10)


def test_nearest_members_and_an_empty_gallery(tmp_path):
    # cluster 0 = {0, 9, 2} (mean 11/3: 2 nearest, then 0, then 9), cluster 2 = {1, 6} (a tie: by index);
    # clusters 1 and 3 are empty.
    x = np.array([[0.0], [1.0], [6.0], [9.0], [2.0]])
    assert nearest_members(x, [0, 2, 2, 0, 0], 4) == [[4, 0, 3], [], [1, 2], []]
    assert nearest_members(x, [0, 2, 2, 0, 0], 4, count=1) == [[4], [], [1], []]
    assert plot_cluster_members([], tmp_path / "empty.png", "cluster 1").stat().st_size > 0


def test_stroke_items_are_drawn_as_drawings(tmp_path):
    rng = np.random.default_rng(0)
    steps = [
        np.concatenate([rng.normal(size=(6, 2)), (np.arange(6) % 3 == 2)[:, None]], 1) for _ in range(12)
    ]
    result = write_clusters(blobs(3, per_blob=4), steps, [-1] * 12, 3, range(2, 5), tmp_path, strokes=True)
    assert sorted(result["sizes"]) == [4, 4, 4] and "nmi" not in result
    assert sorted(p.name for p in tmp_path.glob("cluster_*.png")) == [
        "cluster_00.png",
        "cluster_01.png",
        "cluster_02.png",
        "cluster_selection.png",
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster") / "run"
    args = ["train", "--preset", "tiny", "--steps", "4", "--run-dir", str(folder), "--no-progress"]
    assert main(args) == 0
    return folder


def test_cluster_command_end_to_end(run, capsys):
    assert main(["cluster", str(run), "--k", "3", "--k-range", "2:4", "--limit", "48"]) == 0
    out = run / "clusters"
    result = json.loads((out / "clusters.json").read_text())
    assert result["k"] == 3 and len(result["items"]) == 48
    assert set(result["items"]) <= {0, 1, 2}
    assert result["sizes"] == [result["items"].count(c) for c in range(3)] and sum(result["sizes"]) == 48
    assert result["selection"]["k"] == [2, 3, 4]
    assert len(result["selection"]["inertia"]) == len(result["selection"]["silhouette"]) == 3
    assert 0 <= result["nmi"] <= 1 and -1 <= result["ari"] <= 1  # the synthetic sets are labelled
    assert (out / "cluster_selection.png").stat().st_size > 0
    assert sorted(p.name for p in out.glob("cluster_[0-9]*.png")) == [f"cluster_0{c}.png" for c in range(3)]
    assert "best K by silhouette in 2..4" in capsys.readouterr().out
    # A smaller K elsewhere leaves exactly K galleries.
    assert (
        main(["cluster", str(run), "--k", "2", "--k-range", "2:3", "--limit", "48", "--out", str(out)]) == 0
    )
    assert len(list(out.glob("cluster_[0-9]*.png"))) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "1"], "--k 1: must be between 2 and the number of items (20)"),
        (["--k", "21"], "--k 21: must be between 2 and the number of items (20)"),
        (["--k", "3", "--k-range", "5:2"], "--k-range '5:2': expected A:B with 2 <= A <= B, e.g. 2:20"),
    ],
)
def test_cluster_command_reports_bad_k_in_one_line(run, tmp_path, capsys, args, message):
    assert main(["cluster", str(run), "--limit", "20", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"setae: error: {message}\n"  # one line, no traceback
    assert not (tmp_path / "out").exists()


def test_cluster_command_needs_a_checkpoint(tmp_path, capsys):
    assert main(["cluster", str(tmp_path), "--k", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("setae: error:") and err.count("\n") == 1

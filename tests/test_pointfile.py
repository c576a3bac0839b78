"""User data files (.npz / .csv): round trip, one-line errors naming the set, training and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import random_sets
from setae.cli import main
from setae.datasets.pointfile import load_point_sets, save_point_sets
from setae.errors import SetaeError


def test_npz_round_trip(tmp_path):
    sets = [s.numpy() for s in random_sets([3, 0, 5], 4, seed=0)]
    save_point_sets(tmp_path / "sets.npz", sets, labels=[2, 0, 1])
    data = load_point_sets(tmp_path / "sets.npz")
    assert len(data) == 3 and data.dim == 4 and data.max_size == 5
    for i, s in enumerate(sets):
        points, label = data[i]
        np.testing.assert_array_equal(points.numpy(), s)
        assert label == [2, 0, 1][i]


def test_csv_reads_sets_and_labels(tmp_path):
    path = tmp_path / "sets.csv"
    path.write_text("set_id,label,x,y,z\na,1,0,0,0\na,1,1,2,3\nb,0,5,5,5\n")
    data = load_point_sets(path)
    assert (
        len(data) == 2 and data.dim == 3 and data.sizes.tolist() == [2, 1] and data.labels.tolist() == [1, 0]
    )
    np.testing.assert_array_equal(data[0][0].numpy(), [[0, 0, 0], [1, 2, 3]])


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"points": np.zeros((4, 2))}, "missing array(s) offsets"),
        ({"points": np.zeros((4, 2)), "offsets": np.array([0, 2, 5])}, "end at 4"),
        ({"points": np.zeros((4, 2)), "offsets": np.array([0, 3, 2, 4])}, "offsets decrease at set 1"),
        (
            {"points": np.array([[0, 0], [0, 0], [np.nan, 1.0]]), "offsets": np.array([0, 2, 3])},
            "set 1 contains NaN",
        ),
        (
            {"points": np.array([[0, 0], [np.inf, 0]]), "offsets": np.array([0, 2])},
            "set 0 contains NaN or infinite",
        ),
        ({"points": np.zeros(4), "offsets": np.array([0, 4])}, "numeric [total, D] array"),
        ({"points": np.zeros((4, 2)), "offsets": np.array([0, 4]), "labels": np.array([-1])}, "label -1"),
        ({"points": np.zeros((4, 2)), "offsets": np.array([0, 4]), "labels": np.array([1, 2])}, "B = 1"),
    ],
)
def test_bad_npz_files_are_rejected_naming_the_problem(tmp_path, arrays, message):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(SetaeError) as error:
        load_point_sets(path)
    assert str(path) in str(error.value) and message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y\n1,2\n", "set_id column"),
        ("set_id,x\na,1\nb,2\na,3\n", "line 4: rows of set 'a' are not consecutive"),
        ("set_id,x\na,1\na,oops\n", "line 3: coordinate .x. is .oops., not a number"),
        ("set_id,x,label\na,1,0\na,2,1\n", "line 3: set 'a' has more than one label"),
        ("set_id,x\na,1,2\n", "line 2 has 3 fields"),
    ],
)
def test_bad_csv_files_are_rejected_naming_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SetaeError, match=message):
        load_point_sets(path)


def test_truncated_npz_and_unknown_suffix(tmp_path):
    save_point_sets(tmp_path / "ok.npz", [np.zeros((2, 2))])
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:50])
    with pytest.raises(SetaeError, match="not a readable .npz file"):
        load_point_sets(tmp_path / "cut.npz")
    (tmp_path / "ok.txt").write_text("1,2\n")
    with pytest.raises(SetaeError, match="expected .npz, .csv or .parquet"):
        load_point_sets(tmp_path / "ok.txt")


def test_train_and_encode_on_a_users_3d_file_in_their_units(tmp_path, capsys):
    rng = np.random.default_rng(0)
    sets = [1000 + 50 * rng.standard_normal((int(n), 3)) for n in rng.integers(1, 12, 200)]
    save_point_sets(tmp_path / "train.npz", sets)
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data", str(tmp_path / "train.npz"), "--normalize"]
    assert main([*args, "--val-size", "20", "--steps", "6", "--run-dir", str(run), "--no-progress"]) == 0
    assert (
        main(["encode", str(run), "--data", str(tmp_path / "train.npz"), "--out", str(tmp_path / "z.npy")])
        == 0
    )
    codes = np.load(tmp_path / "z.npy")
    assert codes.shape == (200, 8) and np.isfinite(codes).all()
    from setae import load

    model = load(run)
    assert model.config.point_dim == 3
    decoded = model.reconstruct([s.astype(np.float32) for s in sets[:5]])
    assert all(abs(float(d.mean()) - 1000) < 200 for d in decoded if len(d)), (
        "outputs come back in user units"
    )
    save_point_sets(tmp_path / "flat.npz", [np.zeros((3, 2))])
    assert (
        main(["encode", str(run), "--data", str(tmp_path / "flat.npz"), "--out", str(tmp_path / "y.npy")])
        == 2
    )
    assert "set 0 has points of dimension 2; the model expects 3" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()


def test_a_dataset_folder_is_memory_mapped_and_trains(tmp_path):
    rng = np.random.default_rng(1)
    sets = [rng.random((int(n), 2), dtype=np.float32) for n in rng.integers(0, 10, 300)]
    folder = tmp_path / "big"
    folder.mkdir()
    np.save(folder / "points.npy", np.concatenate(sets))
    np.save(folder / "offsets.npy", np.concatenate([[0], np.cumsum([len(s) for s in sets])]))
    data = load_point_sets(folder)
    assert isinstance(data.points_array, np.memmap), "points are mapped, not read"
    np.testing.assert_array_equal(data[7][0].numpy(), sets[7])
    mean, std = data.point_moments(len(data))
    np.testing.assert_allclose(mean, np.concatenate(sets).astype(np.float64).mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, np.concatenate(sets).astype(np.float64).std(0), rtol=1e-6)
    args = ["train", "--preset", "tiny", "--data", str(folder), "--normalize", "--val-size", "20"]
    assert main([*args, "--steps", "4", "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    (folder / "offsets.npy").unlink()
    with pytest.raises(SetaeError, match="missing offsets.npy"):
        load_point_sets(folder)

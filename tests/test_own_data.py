"""Your own sets, as a new user meets setae: an example file, training with no flags but the data, derived
settings recorded, evaluation from another folder, codes written by extension, and the Python API."""

from __future__ import annotations

import csv
import json
import os
import stat

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import setae
from setae.cli import main
from setae.datasets.pointfile import load_point_sets, save_point_sets
from setae.datasets.synthetic import example_clouds
from setae.errors import SetaeError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short run on a generated file of 3-D clouds in [6, 14], trained with nothing but --data."""
    folder = tmp_path_factory.mktemp("own")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["example-data", "clouds.npz", "--sets", "240"]) == 0
        assert (
            main(["train", "--data", "clouds.npz", "--steps", "30", "--no-progress", "--preset", "demo"]) == 0
        )
    finally:
        os.chdir(cwd)
    (run_dir,) = (folder / "runs").iterdir()
    return folder, run_dir


def test_training_derives_split_size_scale_and_records_them(run):
    folder, run_dir = run
    assert run_dir.name.startswith("clouds-")
    config = json.loads((run_dir / "config.json").read_text())
    model, train = config["model"], config["train"]
    data = load_point_sets(folder / "clouds.npz")
    assert model["max_size"] == data.max_size <= 60 and model["point_dim"] == 3
    assert model["normalize"] is True
    assert 0.05 < model["point_sigma"] < 1.0  # standardised units: a fraction of one std
    extent = float((data.points_array.max(0) - data.points_array.min(0)).max())
    assert train["ospa_cutoff"] == pytest.approx(0.1 * extent, rel=0.1)
    assert train["val_size"] == 24 and os.path.isabs(train["data"])
    assert (run_dir / "tensorboard").is_dir() and any((run_dir / "tensorboard").iterdir())


def test_test_split_is_held_out_random_and_named(run):
    from setae.training.config import config_from_dict
    from setae.training.data import make_datasets, make_test_set

    _, run_dir = run
    saved = json.loads((run_dir / "config.json").read_text())
    config = config_from_dict({"model": saved["model"], "train": saved["train"]}, "config")
    train, val = make_datasets(config)
    test = make_test_set(config)
    assert (len(train), len(val), len(test)) == (192, 24, 24)
    key = lambda s: s[0].numpy().tobytes()  # noqa: E731
    seen = {key(train[i]) for i in range(len(train))}
    assert not any(key(test[i]) in seen or key(val[i]) in seen for i in range(24))
    assert len(set(test.labels.tolist())) > 1  # a random split, not the file's last sets


def test_eval_from_another_folder_names_the_split(run, tmp_path, monkeypatch):
    _, run_dir = run
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(run_dir), "--no-progress", "--gen-samples", "20"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"].startswith("test: a tenth of clouds.npz held out")
    assert metrics["num_sets"] == 24
    assert "probe_acc_1000" not in metrics  # 192 training sets cannot train a 1000-set probe


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".parquet"])
def test_encode_writes_by_extension(run, suffix):
    folder, run_dir = run
    out = folder / f"codes{suffix}"
    assert main(["encode", str(run_dir), "--data", str(folder / "clouds.npz"), "--out", str(out)]) == 0
    labels = load_point_sets(folder / "clouds.npz").labels
    if suffix == ".npy":
        codes = np.load(out)
    elif suffix == ".npz":
        with np.load(out) as f:
            codes = f["codes"]
            assert f["set_ids"].tolist() == list(range(240)) and f["labels"].tolist() == labels.tolist()
    elif suffix == ".csv":
        rows = list(csv.reader(out.open()))
        assert rows[0][:3] == ["set_id", "label", "z0"]
        codes = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
        assert [int(r[1]) for r in rows[1:]] == labels.tolist()
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        codes = np.stack([table.column(f"z{j}").to_numpy() for j in range(64)], 1)
    assert codes.shape == (240, 64)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_csv_and_parquet_read_like_npz_and_pandas_index_is_ignored(tmp_path):
    example_clouds(tmp_path / "c.npz", 8)
    example_clouds(tmp_path / "c.parquet", 8)
    example_clouds(tmp_path / "c.csv", 8)
    reference = load_point_sets(tmp_path / "c.npz")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    indexed = ["," + lines[0]] + [f"{i},{line}" for i, line in enumerate(lines[1:])]  # as DataFrame.to_csv()
    (tmp_path / "indexed.csv").write_text("\n".join(indexed) + "\n")
    for name in ("c.parquet", "c.csv", "indexed.csv"):
        data = load_point_sets(tmp_path / name)
        assert data.dim == 3 and len(data) == 8
        assert np.allclose(data.points_array, reference.points_array, atol=1e-5)
        assert data.labels.tolist() == reference.labels.tolist()


def test_python_api_save_load_device_grad_and_one_array(run, tmp_path):
    _, run_dir = run
    model = setae.load(run_dir, device="cpu")
    saved = model.save(tmp_path / "model")
    again = setae.load(saved)
    sets = [torch.rand(7, 3) * 8 + 6, torch.rand(3, 3) * 8 + 6]
    assert torch.equal(model.encode(sets), again.encode(sets))
    x = sets[0].clone().requires_grad_(True)
    z = model.encode([x, sets[1]], grad=True)
    z.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(SetaeError, match=r"got one array of shape \(7, 3\); pass a list of sets"):
        model.encode(sets[0])
    with pytest.raises(SetaeError, match="no CUDA device|not a device|only"):
        if torch.cuda.is_available():
            raise SetaeError("only")  # a CUDA build: nothing to refuse
        setae.load(run_dir, device="cuda")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"setae {setae.__version__}"


def test_saved_sets_round_trip_in_every_format(tmp_path):
    sets = [np.random.default_rng(0).random((n, 2)) for n in (1, 4, 2)]
    for suffix in (".npz", ".csv", ".parquet"):
        save_point_sets(tmp_path / f"s{suffix}", sets, [0, 1, 0])
        data = load_point_sets(tmp_path / f"s{suffix}")
        assert [len(data[i][0]) for i in range(3)] == [1, 4, 2] and data.labels.tolist() == [0, 1, 0]


def test_cluster_galleries_share_the_data_frame(run, monkeypatch):
    """`setae cluster` on 3-D sets: every gallery in one 3-D frame that holds the data's range, [6, 14]."""
    from setae.evaluation import plots

    folder, run_dir = run
    frames = []
    drawn = plots.plot_cluster_members

    def recording(items, path, title, titles=(), strokes=False, frame=None):
        frames.append(frame)
        return drawn(items, path, title, titles, strokes, frame)

    monkeypatch.setattr(plots, "plot_cluster_members", recording)
    assert main(["cluster", str(run_dir), "--k", "4", "--k-range", "2:5", "--no-progress"]) == 0
    assert len(frames) == 4 and all(f == frames[0] for f in frames)
    assert frames[0].dims == 3 and frames[0].label_word == "class"
    assert all(low < 6.5 and high > 13.5 for low, high in frames[0].limits)
    gallery = imread(run_dir / "clusters" / "cluster_00.png")[..., :3]
    assert (gallery.max(-1) - gallery.min(-1) > 0.2).mean() > 0.001  # coloured points drawn

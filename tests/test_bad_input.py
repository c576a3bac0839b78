"""Bad input through the command line: exit status 2, one line naming the file/item and the problem, no
traceback, nothing half-written. docs/bad-input.md lists what the user sees for each case."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from setae.cli import main
from setae.datasets.pointfile import save_point_sets
from setae.errors import SetaeError

MNIST = Path(__file__).parents[1].parent / "shared/data/mnist"


def setae(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "setae", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    save_point_sets(w / "ok.npz", [rng.random((int(n), 3)) for n in rng.integers(1, 9, 120)])
    np.savez(w / "nan.npz", points=np.array([[0, 0], [np.nan, 1.0]]), offsets=np.array([0, 1, 2]))
    np.savez(w / "inf.npz", points=np.array([[0, np.inf]]), offsets=np.array([0, 1]))
    np.savez(w / "nosets.npz", points=np.zeros((0, 2)), offsets=np.array([0]))
    np.savez(
        w / "neglabel.npz", points=np.zeros((4, 2)), offsets=np.array([0, 2, 4]), labels=np.array([0, -3])
    )
    save_point_sets(w / "big.npz", [rng.random((40, 2))] * 100)
    save_point_sets(w / "flat.npz", [rng.random((5, 2))])
    save_point_sets(w / "huge.npz", [rng.random((500, 3))])
    (w / "cut.npz").write_bytes((w / "ok.npz").read_bytes()[:300])
    (w / "a-file").write_text("x")
    (w / "text.npz").write_text("set_id,x\n0,1\n")
    (w / "badtype.toml").write_text("[train]\nsteps = 'many'\n")
    (w / "broken.toml").write_text("[train\nsteps = 3\n")
    (w / "unknown.toml").write_text("[model]\nwidth = 3\n")
    assert (
        main(
            [
                "train",
                "--preset",
                "tiny",
                "--data",
                str(w / "ok.npz"),
                "--val-size",
                "10",
                "--steps",
                "2",
                "--run-dir",
                str(w / "good"),
                "--no-progress",
            ]
        )
        == 0
    )
    return w


TINY = ["train", "--preset", "tiny", "--run-dir", "r"]
CASES = {
    "no MNIST files": (
        ["train", "--run-dir", "r"],
        {"SETAE_DATA": "nothing"},
        "SETAE_DATA=nothing: no such folder",
    ),
    "NaN coordinates": (
        ["train", "--preset", "tiny", "--data", "nan.npz", "--run-dir", "r"],
        None,
        "nan.npz: set 1 contains NaN or infinite coordinates",
    ),
    "inf coordinates": (
        ["train", "--preset", "tiny", "--data", "inf.npz", "--run-dir", "r"],
        None,
        "inf.npz: set 0 contains NaN or infinite coordinates",
    ),
    "no sets": (["train", "--preset", "tiny", "--data", "nosets.npz", "--run-dir", "r"], None, "B >= 1"),
    "negative label": (
        ["train", "--preset", "tiny", "--data", "neglabel.npz", "--run-dir", "r"],
        None,
        "neglabel.npz: set 1 has label -3",
    ),
    "truncated data file": (
        ["train", "--preset", "tiny", "--data", "cut.npz", "--run-dir", "r"],
        None,
        "cut.npz: not a readable .npz file",
    ),
    "set over max size (train)": (
        ["train", "--preset", "tiny", "--data", "big.npz", "--max-size", "16", "--run-dir", "r"],
        None,
        "big.npz: set 0 has 40 points; model.max_size=16",
    ),
    "set over max size (encode)": (
        ["encode", "good", "--data", "huge.npz", "--out", "z.npy"],
        None,
        "huge.npz: set 0 has 500 points; the model handles at most 32",
    ),
    "wrong dimension (encode)": (
        ["encode", "good", "--data", "flat.npz", "--out", "z.npy"],
        None,
        "flat.npz: set 0 has points of dimension 2; the model expects 3",
    ),
    "config: wrong type": (
        ["train", "--preset", "tiny", "--config", "badtype.toml", "--run-dir", "r"],
        None,
        "badtype.toml: train.steps='many' is not a valid int",
    ),
    "config: unknown key": (
        ["train", "--preset", "tiny", "--config", "unknown.toml", "--run-dir", "r"],
        None,
        "unknown.toml: unknown key model.width",
    ),
    "config: missing file": (
        ["train", "--preset", "tiny", "--config", "missing.toml", "--run-dir", "r"],
        None,
        "missing.toml: cannot read config file",
    ),
    "flag: unknown component": (
        ["train", "--preset", "tiny", "--loss", "l1", "--run-dir", "r"],
        None,
        "config: loss='l1' is not one of chamfer, hungarian",
    ),
    "config: not TOML": (
        ["train", "--preset", "tiny", "--config", "broken.toml", "--run-dir", "r"],
        None,
        "broken.toml: not a valid TOML file",
    ),
    "flag: wrong type": (
        ["train", "--preset", "tiny", "--lr", "fast", "--run-dir", "r"],
        None,
        "train.lr='fast' is not a valid float",
    ),
    "output folder not writable": (
        ["train", "--preset", "tiny", "--run-dir", "a-file/run"],
        None,
        "a-file/run/config.json: cannot write (Not a directory)",
    ),
    "run folder already used": (
        ["train", "--preset", "tiny", "--run-dir", "good"],
        None,
        "good: already holds a run",
    ),
    "resume with another model": (
        ["train", "--run-dir", "good", "--resume", "--latent-dim", "3"],
        None,
        "cannot resume with a different model config",
    ),
    "no checkpoint": (["eval", "nothing"], None, "nothing: no such run folder or checkpoint"),
    "eval of a file that is not a run": (["eval", "ok.npz"], None, "ok.npz: not a setae run or checkpoint"),
    "text file renamed .npz": (
        ["train", "--preset", "tiny", "--data", "text.npz", "--run-dir", "r"],
        None,
        "text.npz: not a readable .npz file (not a complete zip archive",
    ),
    "flag: negative lr": (TINY + ["--lr", "-1"], None, "train.lr must be > 0, got -1.0"),
    "flag: batch size 0": (TINY + ["--batch-size", "0"], None, "train.batch_size must be >= 1, got 0"),
    "flag: eval every 0": (TINY + ["--eval-every", "0"], None, "train.eval_every must be >= 1, got 0"),
    "flag: negative beta": (TINY + ["--beta", "-1"], None, "train.beta must be >= 0, got -1.0"),
    "flag: negative prior mmd": (
        TINY + ["--prior-mmd", "-1"],
        None,
        "prior_mmd must be >= 0 (0: none), got -1.0",
    ),
    "flag: aggregate kl on a plain autoencoder": (
        TINY + ["--aggregate-kl", "2", "--no-variational"],
        None,
        "aggregate_kl needs a variational model",
    ),
    "flag: adversary steps 0": (
        TINY + ["--adversary-steps", "0"],
        None,
        "train.adversary_steps must be >= 1, got 0",
    ),
    "flag: negative grad clip": (TINY + ["--grad-clip", "-1"], None, "train.grad_clip must be > 0, got -1.0"),
    "flag: negative threads": (TINY + ["--threads", "-1"], None, "train.threads must be >= 0, got -1"),
    "eval flag: negative threads": (
        ["eval", "ok.npz", "--threads", "-1"],
        None,
        "--threads must be >= 0, got -1",
    ),
    "flag: negative stroke position": (
        TINY + ["--stroke-position", "-1"],
        None,
        "stroke_position must be >= 0 (0: offsets only), got -1.0",
    ),
    "flag: negative temperature": (
        TINY + ["--decoder-temperature", "-0.5"],
        None,
        "decoder_temperature must be >= 0 (0: greedy), got -0.5",
    ),
    "flag: point sigma 0": (TINY + ["--point-sigma", "0"], None, "point_sigma must be > 0, got 0.0"),
    "flag: device gpu": (TINY + ["--device", "gpu"], None, "train.device='gpu' is not one of auto, cpu"),
    "flag: device cuda without CUDA": (
        TINY + ["--device", "cuda"],
        {"CUDA_VISIBLE_DEVICES": ""},
        "--device cuda: this PyTorch build has no CUDA device available",
    ),
    "flag: bool given a value": (
        TINY + ["--normalize", "yes"],
        None,
        "--normalize takes no value ('yes'): write --normalize or --no-normalize",
    ),
    "flag: switch given a value": (
        ["eval", "good", "--progress", "false"],
        None,
        "--progress takes no value ('false'): write --progress or --no-progress",
    ),
    "adversary without labels": (
        ["train", "--data", "ok.npz", "--adversary", "label", "--run-dir", "r"],
        None,
        "ok.npz: the label adversary needs a label in 0..9 for every set; labels range over -1..-1",
    ),
    "flag: misspelt": (TINY + ["--lerning-rate", "1e-3"], None, "did you mean --learning-rate?"),
    "flag: missing value": (["train", "--steps"], None, "argument --steps: expected one argument"),
    "encode: unknown output format": (
        ["encode", "good", "--data", "ok.npz", "--out", "codes.txt"],
        None,
        "--out codes.txt: unknown format '.txt'",
    ),
    "encode: missing output folder": (
        ["encode", "good", "--data", "ok.npz", "--out", "no/such/z.npy"],
        None,
        "--out no/such/z.npy: folder no/such does not exist",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line(workspace, case):
    args, env, message = CASES[case]
    before = sorted(str(p) for p in workspace.rglob("*"))
    result = setae(*args, cwd=workspace, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("setae: error: ") and result.stderr.count("\n") == 1
    assert sorted(str(p) for p in workspace.rglob("*")) == before


def test_wrong_idx_dimensions_and_truncated_mnist(tmp_path):
    if not MNIST.is_dir():
        pytest.skip("real MNIST not available")
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, tmp_path / name)
    raw = gzip.decompress((MNIST / "train-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:3] + b"\x03" + raw[4:]))
    result = setae("train", "--run-dir", "r", "--data-root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "expected 1 dimension(s), not 3" in result.stderr
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:5000]))
    result = setae("train", "--run-dir", "r", "--data-root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "train-labels-idx1-ubyte.gz: truncated" in result.stderr


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import errno

    from setae.training import checkpoint

    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "10", "--run-dir", str(run), "--no-progress"]) == 0
    before = (run / "checkpoint/model.safetensors").read_bytes()
    real_write_bytes = checkpoint.write_bytes

    def full_disk(path, data):
        if path.name == "state.pt":  # the weights went through; the disk fills up on the next file
            path.write_bytes(data[: len(data) // 2])
            raise SetaeError(f"{path}: cannot write ({__import__('os').strerror(errno.ENOSPC)})")
        return real_write_bytes(path, data)

    monkeypatch.setattr(checkpoint, "write_bytes", full_disk)
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "20", "--no-progress"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (run / "checkpoint/model.safetensors").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint",
        "config.json",
        "log.jsonl",
        "tensorboard",
        "train_summary.json",
    ]
    monkeypatch.undo()
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "20", "--no-progress"]) == 0

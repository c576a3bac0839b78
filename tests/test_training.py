"""Training: a short run lowers the held-out loss, checkpoints resume exactly, the CLI reports user errors."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from setae import SetaeError, load
from setae.cli import main
from setae.training.config import resolve_config
from setae.training.engine import train


def tiny(**train):
    return resolve_config("tiny", overrides={"train": train})


def test_short_run_lowers_held_out_loss(tmp_path):
    train(tiny(steps=60, eval_every=60, log_every=60), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    val = [r for r in records if r.get("split") == "val"]
    untrained = train(tiny(steps=0), tmp_path / "untrained", progress=False)
    from setae.evaluation.evaluate import dataset_items, evaluate
    from setae.training.data import make_datasets

    sets, _ = dataset_items(make_datasets(tiny())[1], 32)
    before = evaluate(untrained, sets)
    assert val[-1]["recon_nll"] < 0.5 * before["recon_nll"]
    assert val[-1]["chamfer"] < before["chamfer"]
    assert val[-1]["size_nll"] < before["size_nll"]


def test_run_killed_at_a_random_moment_resumes_to_the_same_parameters(tmp_path):
    args = ["train", "--preset", "tiny", "--steps", "40", "--checkpoint-every", "3", "--no-progress"]
    args += ["--point-refiner", "8"]  # fitted at the end: a kill may land in the fit too
    assert main([*args, "--run-dir", str(tmp_path / "straight")]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "setae", *args, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while (
        not (killed / "checkpoint/meta.json").exists() and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    time.sleep(random.Random(0).uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads((killed / "checkpoint/meta.json").read_text())["step"]
    assert stopped_at < 40, "the run finished before it was killed; nothing was resumed"
    assert main(["train", "--run-dir", str(killed), "--resume", "--no-progress"]) == 0
    a = load_file(tmp_path / "straight/checkpoint/model.safetensors")
    b = load_file(killed / "checkpoint/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"differs after resuming from step {stopped_at}"
    losses = [
        [
            json.loads(line)["loss"]
            for line in (run / "log.jsonl").read_text().splitlines()
            if "split" not in line
        ]
        for run in (tmp_path / "straight", killed)
    ]
    assert losses[0] == losses[1]


def test_resume_may_extend_training_but_not_change_the_model(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "4", "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "6", "--no-progress"]) == 0
    assert json.loads((run / "checkpoint/meta.json").read_text())["step"] == 6
    assert main(["train", "--run-dir", str(run), "--resume", "--latent-dim", "3", "--no-progress"]) == 2
    assert (
        main(["train", "--preset", "tiny", "--run-dir", str(run), "--no-progress"]) == 2
    )  # no silent overwrite


def test_cli_train_eval_plot(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--run-dir", str(run), "--no-progress", "--steps", "10"]) == 0
    assert main(["eval", str(run), "--limit", "20"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "chamfer",
        "hungarian",
        "ospa",
        "size_acc",
        "size_mae",
        "elbo",
        "kl",
        "recon_nll",
        "size_nll",
    ):
        assert isinstance(metrics[key], float), key
    assert metrics["num_sets"] == 20
    assert main(["plot", str(run), "--num", "4"]) == 0
    for name in ("reconstructions.png", "samples.png", "training_curves.png"):
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load(run)
    assert not model.training and model.config.max_size == 32


def test_loading_a_corrupt_or_foreign_checkpoint_fails_clearly(tmp_path):
    run = tmp_path / "run"
    train(tiny(steps=2), run, progress=False)
    weights = run / "checkpoint/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SetaeError, match="cannot read weights"):
        load(run)
    other = tmp_path / "other"
    train(
        resolve_config("tiny", overrides={"train": {"steps": 2}, "model": {"latent_dim": 4}}),
        other,
        progress=False,
    )
    (run / "checkpoint/model.safetensors").write_bytes((other / "checkpoint/model.safetensors").read_bytes())
    with pytest.raises(SetaeError, match="has shape"):
        load(run)
    meta = run / "checkpoint/meta.json"
    newer = {**json.loads(meta.read_text()), "setae": "99.0.0"}
    meta.write_text(json.dumps(newer))
    with pytest.raises(SetaeError, match="written by setae 99.0.0; this is setae"):
        load(run)
    meta.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SetaeError, match="is not 'setae-checkpoint-1'"):
        load(run)


def test_bf16_autocast_trains(tmp_path):
    model = train(tiny(steps=6, precision="bf16"), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("regularizer", ["prior_mmd", "aggregate_kl"])
def test_the_logged_loss_adds_the_codes_regularizer(tmp_path, regularizer):
    config = resolve_config(
        "tiny", overrides={"train": {"steps": 2, "log_every": 1}, "model": {regularizer: 50.0}}
    )
    train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    for r in (r for r in records if "loss" in r):
        weighted = r["recon"] + config.train.size_weight * r["size"] + r["beta"] * r["kl"]
        assert r[regularizer] > 0
        assert r["loss"] == pytest.approx(weighted + r[regularizer], rel=1e-5)

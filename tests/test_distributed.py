"""torchrun + DDP on CPU (gloo): 2 processes × batch b take the same step as 1 process × batch 2b."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

# A deterministic model (no VAE noise, MLP decoder) and plain SGD, whose step is linear in the gradient.
COMMON = (
    "--preset tiny --steps 2 --optimizer sgd --lr 1e-6 --lr-warmup-steps 1 --no-variational --decoder mlp "
    "--log-every 1 --no-progress"
).split()


def run(args: list[str], processes: int) -> None:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, "-m", "setae", "train", *COMMON, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_two_gloo_ranks_match_one_process_with_twice_the_batch(tmp_path):
    run(["--batch-size", "16", "--run-dir", str(tmp_path / "one")], processes=1)
    run(["--batch-size", "8", "--run-dir", str(tmp_path / "two")], processes=2)
    one = load_file(tmp_path / "one/checkpoint/model.safetensors")
    two = load_file(tmp_path / "two/checkpoint/model.safetensors")
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 1e-5, f"parameters differ by up to {worst}"
    logs = [
        [json.loads(line) for line in (tmp_path / r / "log.jsonl").read_text().splitlines()]
        for r in ("one", "two")
    ]
    for a, b in zip(*logs, strict=True):
        if "split" in a:  # a validation record
            continue
        assert abs(a["loss"] - b["loss"]) < 1e-4 * abs(a["loss"]), (
            "the reduced loss is the global batch's loss"
        )
    assert json.loads((tmp_path / "two/config.json").read_text())["processes"] == 2
    untrained_change = max(float(v.abs().max()) for v in one.values())
    assert untrained_change > 0
    meta = json.loads((tmp_path / "two/checkpoint/meta.json").read_text())
    assert meta["step"] == 2
    rng = torch.load(tmp_path / "two/checkpoint/state.pt", weights_only=True)["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["cpu"], rng[1]["cpu"]), "each rank's RNG state is kept"

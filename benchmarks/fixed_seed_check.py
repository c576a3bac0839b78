""" "No result changes": the losses and validation metrics of short fixed-seed MNIST runs, recorded before a
speed change and compared after it.

    python benchmarks/fixed_seed_check.py record   # writes benchmarks/results/fixed_seed.json
    python benchmarks/fixed_seed_check.py compare  # reruns, prints the largest relative difference per run

Each run trains 30 steps (seed 0, 2 threads, batch 64) through `setae train` and logs the training terms
every 10 steps and the validation metrics of 256 sets at step 30. Timings are dropped; every other number
is compared. `compare` exits non-zero when a value differs by more than `--rtol` (relative).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

# The configurations as recorded (session 3's defaults): code scale fixed at 1, no Chamfer warm-up.
OLD = ["--no-latent-scale-learned", "--chamfer-warmup-steps", "0"]
TSPN = ["--encoder", "settransformer", "--decoder", "tspn", *OLD]
RUNS = {
    "tspn-chamfer": [*TSPN, "--loss", "chamfer"],
    "tspn-hungarian": [*TSPN, "--loss", "hungarian"],
    "deepsets-mlp": ["--encoder", "deepsets", "--decoder", "mlp", "--loss", "chamfer", *OLD],
}
COMMON = ["--steps", "30", "--log-every", "10", "--eval-every", "30", "--eval-sets", "256"]
COMMON += ["--seed", "0", "--threads", "2", "--no-progress"]
TIMINGS = {"sets_per_s", "elapsed_s"}
RESULT = Path(__file__).parent / "results" / "fixed_seed.json"


def run(name: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "setae", "train", "--run-dir", f"{tmp}/run", *COMMON, *RUNS[name]]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        lines = Path(f"{tmp}/run/log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def largest_difference(before: list[dict], after: list[dict]) -> float:
    if len(before) != len(after) or any(a.keys() != b.keys() for a, b in zip(before, after, strict=True)):
        return math.inf
    worst = 0.0
    for b, a in zip(before, after, strict=True):
        for key, value in b.items():
            if isinstance(value, float):
                worst = max(worst, abs(a[key] - value) / max(abs(value), 1e-12))
            elif a[key] != value:
                return math.inf
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("--rtol", type=float, default=1e-4)
    args = parser.parse_args()
    results = {name: run(name) for name in RUNS}
    if args.mode == "record":
        RESULT.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {RESULT}")
        return
    recorded = json.loads(RESULT.read_text())
    failed = False
    for name, logged in results.items():
        worst = largest_difference(recorded[name], logged)
        failed |= worst > args.rtol
        print(f"{name}: largest relative difference {worst:.2e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Rank evaluated MNIST runs by their bound on the log-probability of the discrete test digits.

    python benchmarks/likelihood_table.py NAME=RUN [NAME=RUN ...]

Each RUN must have been scored by `setae eval` (metrics.json) after training (train_summary.json). The bound
is a dequantised model's own `iwae_64` (the point process) or a matching model's `iwae_64_discrete`: both
are lower bounds on log P(X) of the pixel set X, on the first `iwae_sets` test digits. Writes
benchmarks/results/likelihood.md and .json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def row(name: str, run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    own = "iwae_64_discrete" not in m  # dequantised in training: its own figures are the discrete ones
    suffix = "" if own else "_discrete"
    return {
        "model": name,
        "likelihood": "exact (point process)" if own else "matching bound (Hungarian)",
        "iwae_64": m[f"iwae_64{suffix}"],
        "elbo": m[f"elbo_iwae_sets{suffix}"],
        "bits_per_point": m[f"bits_per_point_iwae_64{suffix}"],
        "chamfer": m["chamfer"],
        "hungarian": m["hungarian"],
        "ospa": m["ospa"],
        "recon_digit_acc": m.get("recon_digit_acc"),
        "samples_confident": m.get("samples_confident"),
        "steps": summary["step"],
        "minutes": summary["train_seconds"] / 60,
        "sets_per_s": summary["sets_per_s"],
        "parameters": summary["parameters"],
        "num_sets": m["num_sets"],
        "iwae_sets": m["iwae_sets"],
        "decoder": config["model"]["decoder"],
    }


def main(pairs: list[str]) -> None:
    rows = sorted((row(n, Path(r)) for n, r in (p.split("=", 1) for p in pairs)), key=lambda r: -r["iwae_64"])
    lines = [
        "# MNIST models ranked by the bound on the discrete digits' log-probability",
        "",
        f"Bounds on the first {rows[0]['iwae_sets']} test digits (64 importance samples; ELBO on the same "
        "digits), reconstructions and samples on the first `digits` test digits; 2 CPU cores, nothing else "
        "running. "
        "Written by `python benchmarks/likelihood_table.py`.",
        "",
        "| model | likelihood | IWAE-64 (nats) | ELBO (nats) | bits / point | chamfer | hungarian | ospa | "
        "digit kept | samples confident | digits | steps | train min | sets/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['likelihood']} | {r['iwae_64']:.1f} | {r['elbo']:.1f} | "
            f"{r['bits_per_point']:.2f} | {r['chamfer']:.5f} | {r['hungarian']:.5f} | {r['ospa']:.4f} | "
            f"{r['recon_digit_acc']:.1%} | {r['samples_confident']:.1%} | {r['num_sets']:,} | "
            f"{r['steps']:,} | {r['minutes']:.1f} | "
            f"{r['sets_per_s']:.0f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "likelihood.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "likelihood.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The linear autoencoder as a yardstick: PCA on rasterised MNIST images, scored as pixel sets.

    python benchmarks/pca_baseline.py [--dims 8,16,64] [--limit 1000]

Runs `setae.evaluation.pca_baseline.evaluate_pca` (the same as `setae baseline pca --dim K`) for each K and
writes benchmarks/results/pca_baseline.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from setae.evaluation.pca_baseline import evaluate_pca

RESULTS = Path(__file__).parent / "results"
COLUMNS = (
    "chamfer",
    "hungarian",
    "ospa",
    "size_acc",
    "size_mae",
    "recon_digit_acc",
    "probe_acc_all",
    "kmeans_nmi",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", default="8,16,32,64")
    parser.add_argument("--limit", type=int, default=1000, help="score the first N test digits")
    args = parser.parse_args()
    rows = []
    for k in map(int, args.dims.split(",")):
        rows.append(evaluate_pca(k, args.limit))
        print(f"PCA-{k}: " + "  ".join(f"{key} {rows[-1][key]:.5g}" for key in COLUMNS))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pca_baseline.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# PCA baseline on the first {args.limit} MNIST test digits (pixel sets)",
        "",
        "| K | threshold | " + " | ".join(COLUMNS) + " |",
        "|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for r in rows:
        lines.append(
            f"| {r['dim']} | {r['threshold']:.3f} | " + " | ".join(f"{r[c]:.5g}" for c in COLUMNS) + " |"
        )
    (RESULTS / "pca_baseline.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Held-out Chamfer against training minutes, one line per run, from the runs' own logs.

    python benchmarks/chamfer_curve.py NAME=RUN [NAME=RUN ...] [--out benchmarks/results/chamfer_curve.png]

Each run's log.jsonl has validation records (Chamfer on the first `eval_sets` validation digits, every
`eval_every` steps) and training records with the elapsed training time; a validation record is placed at
the elapsed time of the training record of the same step. Also writes the points as JSON beside the plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(run: Path) -> tuple[list[float], list[float]]:
    """(minutes, validation Chamfer) of a run's evaluations."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    elapsed = {r["step"]: r["elapsed_s"] for r in records if "elapsed_s" in r}
    points = [(elapsed[r["step"]] / 60, r["chamfer"]) for r in records if r.get("split") == "val"]
    return [m for m, _ in points], [c for _, c in points]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results/chamfer_curve.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from setae.fileio import write_json

    figure, axes = plt.subplots(figsize=(6, 4))
    data = {}
    for item in args.runs:
        name, _, run = item.rpartition("=")  # a name may hold "="
        minutes, chamfer = curve(Path(run))
        data[name] = {"minutes": minutes, "chamfer": chamfer, "run": run}
        axes.plot(minutes, chamfer, marker="o", markersize=3, label=name)
    axes.set_yscale("log")
    axes.set_xlabel("training minutes (2 CPU cores)")
    axes.set_ylabel("validation Chamfer (500 digits)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    write_json(out.with_suffix(".json"), data)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

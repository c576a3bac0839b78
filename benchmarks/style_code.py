"""One handwriting in every digit: conditional VAEs whose code should keep the style, not the digit.

    setae train --preset demo --conditional [FLAGS] --point-refiner 0 --steps 5500 --run-dir runs/cvae-NAME
    setae eval runs/cvae-NAME --limit 2000
    python benchmarks/style_code.py "NAME=runs/cvae-NAME" [...]

Collects each run's `setae eval` figures (metrics.json) into benchmarks/results/style_code.{json,md}, a row
per run in the order given: how often the digit CNN reads a code decoded with another label as the requested
digit (`swap_as_requested`, and confidently, p > 0.9), prior samples as the requested digit, reconstructions
kept, Chamfer and size error, and how much of the label the code still carries — k-means NMI against the
labels and the linear probe's accuracy from 100 labels and from all (chance: 10%). The flags of each run are
read from its config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tables import markdown_table

RESULTS = Path(__file__).parent / "results"
FLAGS = ("adversary", "adversary_weight", "encoder_label", "label_centering")
COLUMNS = (
    ("swap_as_requested", "swapped decodes read as the requested digit", "{:.1%}"),
    ("swap_confident", "confident", "{:.1%}"),
    ("samples_as_requested", "samples as requested", "{:.1%}"),
    ("recon_digit_acc", "reconstructions kept", "{:.1%}"),
    ("chamfer", "chamfer", "{:.5f}"),
    ("size_mae", "size error", "{:.2f}"),
    ("kmeans_nmi", "k-means NMI of codes", "{:.3f}"),
    ("probe_acc_100", "probe: 100 labels", "{:.3f}"),
    ("probe_acc_all", "probe: all", "{:.3f}"),
)


def run_row(run: Path) -> dict:
    for name in ("metrics.json", "config.json", "train_summary.json"):
        if not (run / name).is_file():
            raise SystemExit(f"{run}: no {name} (train the run, then `setae eval {run} --limit 2000`)")
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    return {
        **{key: metrics[key] for key, _, _ in COLUMNS},
        **{flag: config["model"].get(flag) for flag in FLAGS},
        "adversary_steps": config["train"]["adversary_steps"],
        "steps": summary["step"],
        "run": str(run),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER (NAME: the row's title)")
    args = parser.parse_args()
    from setae.fileio import write_json, write_text

    rows = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        rows[name] = run_row(Path(folder))
    write_json(RESULTS / "style_code.json", {"rows": rows})
    lines = [
        "# One handwriting in every digit: how much of the label the conditional VAE's code keeps",
        "",
        "Deep Sets + MLP conditional VAE (`--preset demo --conditional`), each run for the steps shown; "
        "2,000 test digits; written by `python benchmarks/style_code.py` (see its docstring).",
        "",
        *markdown_table(rows.items(), [*COLUMNS, ("steps", "steps", "{:,}")], first="run"),
    ]
    write_text(RESULTS / "style_code.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

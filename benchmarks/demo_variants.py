"""Candidates for the default: `make demo`'s configuration and schedule with one change each, scored on all
10,000 MNIST test digits.

    python benchmarks/demo_variants.py ROW [ROW ...]    # train runs/demo_variants/ROW, evaluate, record
    python benchmarks/demo_variants.py --record ROW=RUN  # record a run already trained with ROW's change
    python benchmarks/demo_variants.py --table           # rewrite the table from the JSON

Unlike the ablation (benchmarks/ablation.py: short rows at equal wall-clock on a flat schedule), every row
here runs the demo's own schedule (16,000 steps of 64 with its warm-ups and cosine decay, unless the row
changes the steps), so the table says what `make demo` would give with the change, and its minutes what it
would cost. Run one row at a time on a quiet machine; `--record` takes a run trained by hand with the same
change (`setae train` + `setae eval`). Results go to benchmarks/results/demo_variants.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from ablation import COLUMNS as ABLATION_COLUMNS
from compare import cpu_name, slug
from tables import markdown_table, other_machine_notes

RESULTS = Path(__file__).parent / "results"
JSON, TABLE = RESULTS / "demo_variants.json", RESULTS / "demo_variants.md"

# The rows measured before the point refiner change the demo's configuration without it.
NO_REFINER = {"point_refiner": 0}
# row name -> overrides of the demo preset
ROWS: dict[str, dict] = {
    "the default (make demo)": {},
    "no point refiner": {"model": NO_REFINER},
    "no point refiner, on the machine of the default": {"model": NO_REFINER},
    "β = 0.03": {"model": NO_REFINER, "train": {"beta": 0.03}},
    "Deep Sets encoder width 128": {"model": {**NO_REFINER, "encoder_dim": 128}},
    "Deep Sets encoder width 128, 12,000 steps": {
        "model": {**NO_REFINER, "encoder_dim": 128},
        "train": {"steps": 12_000},
    },
    "no code standardisation (a plain β-VAE)": {"model": {**NO_REFINER, "latent_standardize": False}},
    "prior adversary λ = 10": {"model": {**NO_REFINER, "prior_adversary": 10.0}},
    "batch 32, 32,000 steps (the same sets)": {
        "model": NO_REFINER,
        "train": {"batch_size": 32, "steps": 32_000},
    },
    "learning rate 2e-3": {"model": NO_REFINER, "train": {"lr": 2e-3}},
}
# the ablation's figure columns, then the code's KL and what the row cost
COLUMNS = (
    *(column for column in ABLATION_COLUMNS if column[0] not in ("steps", "sets_per_s")),
    ("kl", "KL (nats)", "{:.1f}"),
    ("steps", "steps", "{:,}"),
    ("train_minutes", "minutes", "{:.1f}"),
    ("sets_per_s", "sets/s", "{:.0f}"),
)


def row_config(name: str):
    from setae.training.config import apply_overrides, resolve_config

    return apply_overrides(resolve_config("demo"), ROWS[name], "demo variant")


def trained_row(name: str, run_dir: Path) -> dict:
    """The figures of `run_dir` (trained with row `name`'s change), evaluated on all test digits."""
    from setae.cli import cmd_eval
    from setae.training.config import Config

    saved = json.loads((run_dir / "config.json").read_text())
    expected, defaults = row_config(name).to_dict(), Config().to_dict()
    for part in ("model", "train"):
        config = {**defaults[part], **saved[part]}  # fields newer than the run: their defaults
        # None: derived from the data when training starts, and saved resolved
        differ = sorted(k for k, v in expected[part].items() if v is not None and config[k] != v)
        if differ:
            raise SystemExit(f"{run_dir}: trained with other {part} settings than row {name!r}: {differ}")
    summary = json.loads((run_dir / "train_summary.json").read_text())
    evaluated = run_dir / "metrics.json"  # `setae eval RUN`'s, when it scored all test digits
    metrics = json.loads(evaluated.read_text()) if evaluated.exists() else {}
    if metrics.get("num_sets") != 10_000 or metrics.get("step") != summary["step"]:
        metrics = cmd_eval(str(run_dir), None, 0, progress=False)
    return {
        **{k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
        "steps": summary["step"],
        "sets_per_s": summary["sets_per_s"],
        "train_minutes": summary["train_seconds"] / 60,
        "parameters": summary["parameters"],
        "change": ROWS[name],
        "run": str(run_dir),
        "machine": cpu_name(),
        "date": datetime.date.fromtimestamp((run_dir / "train_summary.json").stat().st_mtime).isoformat(),
    }


def write_table(results: dict) -> None:
    from setae.fileio import write_text

    rows = results["rows"]
    dates = sorted({row["date"] for row in rows.values()})
    machine = rows.get("the default (make demo)", {}).get("machine", results["machine"])
    lines = [
        "# Candidates for the default: the demo's schedule with one change each",
        "",
        "Each row trains `make demo`'s configuration with the change its name says, on its schedule (16,000 "
        f"steps of 64 unless the row changes them), on {machine} (2 threads, one run at a time), "
        "and is scored on all 10,000 MNIST test digits, raw decoder outputs. Rows trained on "
        f"{', '.join(dates)}. Written by `python benchmarks/demo_variants.py` (see its docstring); the "
        "columns are those of benchmarks/results/ablation.md.",
        "",
        *markdown_table(((n, results["rows"][n]) for n in ROWS if n in results["rows"]), COLUMNS),
    ]
    notes = [f"- {n}: {rows[n]['caveat']}" for n in ROWS if rows.get(n, {}).get("caveat")]
    notes += other_machine_notes(ROWS, rows, machine)
    lines += ["", *notes] if notes else []
    write_text(TABLE, "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="*", help="row names to train and evaluate")
    parser.add_argument("--record", nargs="*", default=[], metavar="ROW=RUN", help="record trained runs")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
    args = parser.parse_args()
    from setae.fileio import write_json
    from setae.training.engine import train

    unknown = [n for n in [*args.rows, *(r.rpartition("=")[0] for r in args.record)] if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; the rows are: {', '.join(ROWS)}")
    results = json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
    todo = [(n, None) for n in ([] if args.table else args.rows)]
    todo += [(r.rpartition("=")[0], Path(r.rpartition("=")[2])) for r in args.record]
    for name, run_dir in todo:
        if run_dir is None:
            run_dir = Path("runs/demo_variants") / slug(name)
            train(row_config(name), run_dir, progress=False)
        results["rows"][name] = trained_row(name, run_dir)
        results.setdefault("machine", cpu_name())  # the machine of rows recorded without one
        write_json(JSON, results)
    write_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

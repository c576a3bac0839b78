"""From the blog's model to setae's default, one change per row, at equal wall-clock.

    python benchmarks/ablation.py [ROW ...] [--minutes 6] [--test-sets 2000]   # all rows when none named
    python benchmarks/ablation.py --table                                      # rewrite the table

Row k is the last kept row before it plus one change (rows marked "not kept" are not built upon). Every row
trains for the same minutes of wall-clock on this machine (the learning rate and KL weight warm up over 100
and 200 steps, then stay constant, so the schedule does not depend on a row's speed), then `setae eval --limit
TEST_SETS` scores it: reconstruction of test digits, sizes, the digit CNN on reconstructions and on 1,000
prior samples (from the fitted mixture and from N(0, I)), the linear probe and k-means NMI of the codes.
Results go to benchmarks/results/ablation.{json,md}; runs to runs/ablation/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from compare import cpu_name, slug, timed_schedule
from tables import markdown_table, other_machine_notes

RESULTS = Path(__file__).parent / "results"
JSON, TABLE = RESULTS / "ablation.json", RESULTS / "ablation.md"

# The first row: Set Transformer + TSPN VAE, Chamfer, code standardised to unit scale (γ = 1); its schedule
# is replaced by the timed one.
FIRST_ROW = Path(__file__).parent / "settransformer_tspn_chamfer.toml"
# (row name, the one change it makes to the kept rows before it); "(not kept)" rows are not built upon
CHANGES: list[tuple[str, dict]] = [
    ("Set Transformer + TSPN, Chamfer, γ = 1", {}),
    ("Deep Sets + MLP", {"model": {"encoder": "deepsets", "decoder": "mlp"}}),
    ("learned code scale γ", {"model": {"latent_scale_learned": True}}),
    (
        "Hungarian after 1,000 Chamfer steps",
        {"model": {"loss": "hungarian"}, "train": {"chamfer_warmup_steps": 1000}},
    ),
    ("width 128 (not kept)", {"model": {"encoder_dim": 128, "decoder_dim": 128}}),
    ("the default again, beside the two rows below (not kept)", {}),
    ("MMD to N(0, I), weight 100 (not kept)", {"model": {"prior_mmd": 100.0}}),
    ("MMD to N(0, I), weight 1000 (not kept)", {"model": {"prior_mmd": 1000.0}}),
    ("the default again, beside the aggregate-KL rows below (not kept)", {}),
    ("aggregate-posterior KL, weight 1 (not kept)", {"model": {"aggregate_kl": 1.0}}),
    ("aggregate-posterior KL, weight 10 (not kept)", {"model": {"aggregate_kl": 10.0}}),
    ("β = 0.3 (not kept)", {"train": {"beta": 0.3}}),
    (
        "β = 0.3, aggregate-posterior KL 1 (not kept)",
        {"model": {"aggregate_kl": 1.0}, "train": {"beta": 0.3}},
    ),
    ("code of 32, aggregate-posterior KL 1 (not kept)", {"model": {"latent_dim": 32, "aggregate_kl": 1.0}}),
    ("the default without the point refiner, beside the row below (not kept)", {}),
    # its fit (a fifth of the steps trained) comes after the row's minutes of training
    ("point refiner fitted after training (the default)", {"model": {"point_refiner": 64}}),
]
COLUMNS = (
    ("chamfer", "chamfer", "{:.5f}"),
    ("hungarian", "hungarian", "{:.5f}"),
    ("ospa", "OSPA", "{:.4f}"),
    ("size_mae", "size_mae", "{:.2f}"),
    ("recon_digit_acc", "digit kept", "{:.1%}"),
    ("samples_confident", "samples confident (fitted)", "{:.1%}"),
    ("samples_rarest_digit", "rarest digit (fitted)", "{:.1%}"),
    ("samples_confident_normal", "samples confident (N(0, I))", "{:.1%}"),
    ("probe_acc_all", "probe", "{:.3f}"),
    ("kmeans_nmi", "NMI", "{:.3f}"),
    ("steps", "steps", "{:,}"),
    ("sets_per_s", "sets/s", "{:.0f}"),
)


def row_config(index: int, minutes: float):
    from setae.training.config import apply_overrides, resolve_config

    config = resolve_config("demo", file=FIRST_ROW)
    for name, change in CHANGES[1 : index + 1]:
        if name == CHANGES[index][0] or "(not kept)" not in name:
            config = apply_overrides(config, change, "ablation")
    return apply_overrides(config, {"train": timed_schedule(minutes)}, "ablation")


def run_row(index: int, minutes: float, test_sets: int) -> dict:
    from setae.cli import cmd_eval
    from setae.training.engine import train

    name = CHANGES[index][0]
    run_dir = Path("runs/ablation") / slug(name)
    shutil.rmtree(run_dir, ignore_errors=True)
    train(row_config(index, minutes), run_dir, progress=False)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    metrics = cmd_eval(str(run_dir), test_sets, 0, gen_samples=200)
    return {
        **{k: v for k, v in metrics.items() if not isinstance(v, list)},
        "samples_digit_share": metrics.get("samples_digit_share"),
        "steps": summary["step"],
        "sets_per_s": summary["sets_per_s"],
        "train_minutes": summary["train_seconds"] / 60,
        "parameters": summary["parameters"],
        "change": CHANGES[index][1],
        "machine": cpu_name(),
    }


def write_table(results: dict) -> None:
    from setae.fileio import write_text

    rows = results["rows"]
    machine = rows.get(CHANGES[0][0], {}).get("machine", results["machine"])
    lines = [
        "# Ablation: from the blog's model to the default, one change per row",
        "",
        "Each row adds one change to the last kept row above it (rows marked not kept are not built upon) "
        f"and trains for {results['minutes']} minutes on "
        f"{machine} (2 threads, nothing else running); test figures on the first "
        f"{results['test_sets']} MNIST test digits, raw decoder outputs. Written by "
        "`python benchmarks/ablation.py` (see its docstring). 'digit kept': the digit CNN reads the input's "
        "digit in the reconstruction; 'samples confident': share of 1,000 prior samples it gives some digit "
        "with p > 0.9 (real test digits: "
        f"{results.get('real_confident', float('nan')):.1%}); 'rarest digit': the least sampled digit's "
        "share of the confident samples.",
        "",
        *markdown_table(((n, rows[n]) for n, _ in CHANGES if n in rows), COLUMNS),
    ]
    others = other_machine_notes([n for n, _ in CHANGES], rows, machine)
    lines += ["", *others] if others else []
    write_text(TABLE, "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="*", type=int, help="row indices (default: all)")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--test-sets", type=int, default=2000)
    args = parser.parse_args()
    from setae.fileio import write_json

    results = json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
    for index in [] if args.table else args.rows or range(len(CHANGES)):
        row = run_row(index, args.minutes, args.test_sets)
        results.update(minutes=args.minutes, test_sets=args.test_sets)
        results.setdefault("machine", cpu_name())  # the machine of rows recorded without one
        results["real_confident"] = row.get("real_confident", float("nan"))
        results["rows"][CHANGES[index][0]] = row
        write_json(JSON, results)
    write_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

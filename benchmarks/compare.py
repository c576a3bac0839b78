"""Every set model on one table: train each on MNIST for the same wall-clock budget, score it on test digits.

    python benchmarks/compare.py --list                      # the rows
    python benchmarks/compare.py ROW [ROW ...] [--minutes 4] [--test-sets 2000] [--threads 1]
    python benchmarks/compare.py --table                     # rewrite the table from the JSON

One command trains and scores the named rows (each in runs/compare/ROW, a fresh run, in a process of its
own so that its peak RSS is its own), merges their figures into benchmarks/results/mnist.json and rewrites
benchmarks/results/mnist.md. Every row starts from the demo configuration (VAE, β = 0.1, learned code
scale, Hungarian loss, latent 64, batch 64, AdamW 1e-3) and changes only what its name says. The budget is
training time, so a slow model takes fewer steps; learning rate and KL weight follow short warm-ups (100 and
200 steps) and then stay constant, and there is no Chamfer warm-up, so a row's schedule does not depend on
its speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from tables import markdown_table

RESULTS = Path(__file__).parent / "results"
JSON, TABLE = RESULTS / "mnist.json", RESULTS / "mnist.md"

# row name -> model config overrides of the demo configuration
ST = {"encoder": "settransformer"}
ROWS: dict[str, dict] = {
    "deepsets+mlp": {"encoder": "deepsets", "decoder": "mlp"},
    "settransformer+mlp": {**ST, "decoder": "mlp"},
    "settransformer+rnn": {**ST, "decoder": "rnn"},
    "rnn+rnn": {"encoder": "rnn", "decoder": "rnn"},
    "settransformer+dspn": {**ST, "decoder": "dspn"},
    "settransformer+slot": {**ST, "decoder": "slot"},
    "settransformer+tspn (chamfer)": {**ST, "decoder": "tspn", "loss": "chamfer"},
    "settransformer+tspn (hungarian)": {**ST, "decoder": "tspn", "loss": "hungarian"},
    "settransformer+tspn (sinkhorn)": {**ST, "decoder": "tspn", "loss": "sinkhorn"},
    "settransformer+tspn, poisson size": {**ST, "decoder": "tspn", "size_head": "poisson"},
    "settransformer+tspn, vanilla AE": {**ST, "decoder": "tspn", "variational": False},
    "settransformer+tspn, denoising AE": {
        **ST,
        "decoder": "tspn",
        "variational": False,
        "corrupt_drop": 0.2,
        "corrupt_jitter": 0.01,
    },
    "settransformer+tspn, conditional VAE": {**ST, "decoder": "tspn", "conditional": True},
    "deepsets+pointprocess (mixture)": {"encoder": "deepsets", "decoder": "pointprocess"},
    "deepsets+pointprocess (flow)": {
        "encoder": "deepsets",
        "decoder": "pointprocess",
        "point_density": "flow",
    },
}
COLUMNS = (
    ("chamfer", "test chamfer", "{:.5f}"),
    ("hungarian", "test hungarian", "{:.5f}"),
    ("size_acc", "size_acc", "{:.3f}"),
    ("size_mae", "size_mae", "{:.2f}"),
    ("size_nll", "size NLL (nats)", "{:.2f}"),
    ("parameters", "parameters", "{:,}"),
    ("sets_per_s", "train sets/s", "{:.0f}"),
    ("steps", "steps", "{:,}"),
    ("peak_memory_mb", "peak RSS (MB)", "{:.0f}"),
)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def slug(name: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in name.replace("×", "x")).strip("-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


def timed_schedule(minutes: float) -> dict:
    """Training overrides for a budget of `minutes` of wall-clock on a schedule that does not depend on
    speed: short warm-ups of the learning rate and KL weight, then constant; no evaluation or checkpoint."""
    return {
        "max_minutes": minutes,
        "steps": 1_000_000,  # the budget is time; the cosine decay over 10⁶ steps is flat
        "lr_warmup_steps": 100,
        "kl_warmup_steps": 200,
        "eval_every": 10**9,
        "checkpoint_every": 10**9,
    }


def train_for(run_dir: Path, model: dict, minutes: float, threads: int, seed: int, **train: object):
    """Train the demo preset with `model` overrides for `minutes` of wall-clock into a fresh `run_dir`, on
    a schedule that does not depend on speed (short warm-ups, no Chamfer warm-up, flat decay) ->
    (config, the trained model, train_summary.json)."""
    from setae.training.checkpoint import load
    from setae.training.config import resolve_config
    from setae.training.engine import train as run_training

    overrides = {
        "model": {"point_refiner": 0, **model},  # the trained models themselves, without the refiner's fit
        "train": {
            **timed_schedule(minutes),
            "chamfer_warmup_steps": 0,
            "threads": threads,
            "seed": seed,
            **train,
        },
    }
    config = resolve_config("demo", overrides=overrides)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_training(config, run_dir, progress=False)
    return config, load(run_dir), json.loads((run_dir / "train_summary.json").read_text())


def run_row(name: str, minutes: float, test_sets: int, threads: int, seed: int) -> dict:
    import torch

    from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn
    from setae.evaluation.evaluate import dataset_items, evaluate
    from setae.training.data import make_test_set

    config, model, summary = train_for(Path("runs/compare") / slug(name), ROWS[name], minutes, threads, seed)
    sets, labels = dataset_items(make_test_set(config), test_sets)
    metrics = evaluate(model, sets, seed=seed, labels=labels)
    row = {
        "model": ROWS[name],
        **{k: metrics[k] for k in ("chamfer", "hungarian", "ospa", "size_acc", "size_mae", "size_nll")},
        "recon_nll": metrics["recon_nll"],
        "test_sets": len(sets),
        "parameters": summary["parameters"],
        "sets_per_s": summary["sets_per_s"],
        "steps": summary["step"],
        "train_minutes": summary["train_seconds"] / 60,
        "date": datetime.date.today().isoformat(),
        "peak_memory_mb": summary["peak_memory_mb"],
        "threads": torch.get_num_threads(),
    }
    if config.model.conditional:
        requested = [i % 10 for i in range(1000)]
        samples = model.sample(len(requested), seed=seed, label=requested)
        classifier, _ = load_digit_cnn(config.train.data_root or None)
        scores = digit_scores(
            classifier, samples=samples, targets=sets, target_labels=labels, requested=requested
        )
        row.update(scores)
    return row


def write_table(results: dict) -> None:
    from setae.fileio import write_text

    rows = results["rows"]
    lines = [
        "# Set models on MNIST",
        "",
        f"Budget: {results['minutes']} minutes of training per row on {results['machine']}, "
        f"{results['threads']} thread(s) each; test figures on the first {results['test_sets']} test digits. "
        "Written by `python benchmarks/compare.py` (see its docstring for the shared configuration). "
        "Peak RSS '–': not measured in a process of the row's own.",
        "",
        *markdown_table(((n, rows[n]) for n in ROWS if n in rows), COLUMNS, first="model"),
    ]
    by_date: dict[str, list[str]] = {}
    for name in (n for n in ROWS if n in rows):
        by_date.setdefault(rows[name]["date"], []).append(name)
    if len(by_date) > 1:  # the machine's speed varies from day to day: say which rows shared one
        days = "; ".join(f"{day}: {', '.join(names)}" for day, names in sorted(by_date.items()))
        lines += ["", f"Measured on {days}."]
    conditional = [n for n in ROWS if "samples_as_requested" in rows.get(n, {})]
    for name in conditional:
        r = rows[name]
        lines += [
            "",
            f"{name}: of 1,000 samples (100 per requested digit), {r['samples_as_requested']:.1%} are "
            f"classified as the requested digit by setae's digit CNN (its test "
            f"accuracy on real digits: {r['digit_classifier_acc']:.1%}).",
        ]
    write_text(TABLE, "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="*", help="row names (see --list)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--test-sets", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.list:
        print("\n".join(ROWS))
        return 0
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        print(f"unknown row(s) {unknown}; see --list", file=sys.stderr)
        return 2
    if len(args.rows) > 1:  # a process per row: its peak RSS is then the row's, not the largest so far
        flags = [
            f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("minutes", "test_sets", "threads", "seed")
        ]
        for name in args.rows:
            if code := subprocess.call([sys.executable, __file__, name, *flags]):
                return code
        return 0
    from setae.fileio import write_json

    results = json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
    for name in args.rows:
        row = run_row(name, args.minutes, args.test_sets, args.threads, args.seed)
        results = (
            json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
        )  # other rows may have landed
        results.update(
            minutes=args.minutes,
            test_sets=args.test_sets,
            threads=args.threads,
            machine=cpu_name(),
        )
        results["rows"][name] = row
        write_json(JSON, results)
        print(json.dumps({name: row}, indent=1))
    if results["rows"]:
        write_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

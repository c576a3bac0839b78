"""A latent set against a single code vector of the same size, on MNIST reconstruction and completion.

    python benchmarks/latent_set.py --list                   # the rows
    python benchmarks/latent_set.py ROW [ROW ...] [--minutes 5] [--test-sets 2000] [--threads 2]
    python benchmarks/latent_set.py --table                  # rewrite the table from the JSON
    python benchmarks/latent_set.py --figure [--task top-half] # the completion picture for the README

Each row trains a fresh run in runs/latent-set/ROW for the same wall-clock budget, scores it on the first
test digits, merges its figures into benchmarks/results/latent_set.json and rewrites
benchmarks/results/latent_set.md. Every row is the Set Transformer + TSPN model (`--preset blog`'s) with a
code of 64 numbers: "set 8×8" is 8 latent vectors of 8 (`--latent-set 8`: PMA with 8 seeds, the TSPN
cross-attends to them), "vector 64" one vector of 64. Learning-rate and KL warm-ups are short (100, 200
steps) and there is no Chamfer warm-up, so a row's schedule does not depend on its speed.

- reconstruction rows (VAE, β = 0.1): test digits in, the same digits out; with the probe / k-means figures
  of the codes, and for the latent set also of the pooled latent set (the mean of its 8 vectors);
- completion rows (plain autoencoders, Hungarian loss): `mnist-completion` pairs, part of the digit in
  (`top-half`: its points with y < 1/2; `random-30`: a fixed random 30% of them) and the whole digit out.
  "trained on pairs" rows train on the task itself; "denoising AE" trains the single-vector model on whole
  digits with 70% of the input points dropped at random (`--corrupt-drop 0.7`, the existing denoising
  autoencoder) and is scored on the same pairs. The fair comparison of a latent set with a vector is
  between the two "trained on pairs" rows (same data, objective, budget); the denoising AE is the baseline
  that never saw the task (its corruption matches random-30, not top-half). Figures: Chamfer / Hungarian /
  OSPA of the completed digit against the whole digit, and `completed_digit_acc`: the fraction of
  completed digits the digit CNN (setae.evaluation.digit_cnn) classifies as the right digit
  (`input_digit_acc`: the same for the inputs alone; `digit_classifier_acc`: for the real digits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compare import cpu_name, slug, train_for
from tables import markdown_table

RESULTS = Path(__file__).parent / "results"
JSON, TABLE = RESULTS / "latent_set.json", RESULTS / "latent_set.md"
FIGURE = RESULTS / "completion.png"
RUNS = Path("runs/latent-set")

BLOG = {"encoder": "settransformer", "decoder": "tspn", "latent_dim": 64}
SET, VECTOR = {**BLOG, "latent_set": 8}, {**BLOG, "latent_set": 0}
PLAIN = {"variational": False}
# row name -> (model overrides, train overrides, the completion task it is scored on or None)
ROWS: dict[str, tuple[dict, dict, str | None]] = {
    "reconstruction: set 8×8": (SET, {"data": "mnist"}, None),
    "reconstruction: vector 64": (VECTOR, {"data": "mnist"}, None),
}
for _task in ("top-half", "random-30"):
    pairs = {"data": "mnist-completion", "completion": _task}
    ROWS[f"{_task}: set 8×8, trained on pairs"] = ({**SET, **PLAIN}, pairs, _task)
    ROWS[f"{_task}: vector 64, trained on pairs"] = ({**VECTOR, **PLAIN}, pairs, _task)
    ROWS[f"{_task}: vector 64, denoising AE"] = (
        {**VECTOR, **PLAIN, "corrupt_drop": 0.7},
        {"data": "mnist"},
        _task,
    )
COLUMNS = (
    ("chamfer", "chamfer", "{:.5f}"),
    ("hungarian", "hungarian", "{:.5f}"),
    ("ospa", "OSPA", "{:.4f}"),
    ("size_mae", "size_mae", "{:.2f}"),
    ("completed_digit_acc", "digit acc", "{:.3f}"),
    ("probe_acc_1000", "probe 1000", "{:.3f}"),
    ("kmeans_nmi", "NMI", "{:.3f}"),
    ("pooled_probe_acc_1000", "pooled probe 1000", "{:.3f}"),
    ("pooled_kmeans_nmi", "pooled NMI", "{:.3f}"),
    ("parameters", "parameters", "{:,}"),
    ("steps", "steps", "{:,}"),
    ("sets_per_s", "train sets/s", "{:.0f}"),
)


def test_pairs(config, task: str | None, count: int):
    """(targets, labels, inputs or None) of the first `count` test digits (completion pairs for `task`)."""
    from setae.evaluation.evaluate import dataset_items, source_items
    from setae.training.data import make_test_set

    test = make_test_set(config, "mnist-completion" if task else None, task)
    sets, labels = dataset_items(test, count)
    return sets, labels, source_items(test, count)


def run_row(
    name: str, minutes: float, test_sets: int, threads: int, seed: int, probe_train: int = 10_000
) -> dict:
    import torch

    from setae.datasets.pairs import encoder_view
    from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn
    from setae.evaluation.evaluate import dataset_items, evaluate
    from setae.evaluation.representation import representation_metrics
    from setae.training.data import make_datasets

    model_overrides, data, task = ROWS[name]
    config, model, summary = train_for(
        RUNS / slug(name), model_overrides, minutes, threads, seed, prior_fit_sets=5000, **data
    )
    sets, labels, inputs = test_pairs(config, task, test_sets)
    metrics = evaluate(model, sets, seed=seed, labels=labels, sources=inputs)
    row = {
        "model": model_overrides,
        "train": data,
        "task": task,
        **{k: metrics[k] for k in ("chamfer", "hungarian", "ospa", "size_acc", "size_mae", "size_nll")},
        "test_sets": len(sets),
        "parameters": summary["parameters"],
        "sets_per_s": summary["sets_per_s"],
        "steps": summary["step"],
        "train_minutes": summary["train_seconds"] / 60,
        "threads": torch.get_num_threads(),
    }
    classifier, _ = load_digit_cnn(config.train.data_root or None)
    read = inputs if inputs is not None else sets
    outputs = model.reconstruct(read, seed=seed)
    scores = digit_scores(classifier, reconstructions=outputs, targets=sets, target_labels=labels)
    row["completed_digit_acc"] = scores["recon_digit_acc"]
    row["digit_classifier_acc"] = scores["digit_classifier_acc"]
    if inputs is not None:
        given = digit_scores(classifier, reconstructions=inputs, targets=sets, target_labels=labels)
        row["input_digit_acc"] = given["recon_digit_acc"]
    train_read, train_labels = dataset_items(encoder_view(make_datasets(config)[0]), probe_train)
    if task and config.train.data == "mnist":  # the denoising AE's probes read the task's inputs too
        from setae.datasets.pairs import mnist_completion

        train_read, train_labels = dataset_items(mnist_completion(None, "train", task).inputs, probe_train)
    row.update(representation_metrics(model, train_read, train_labels, read, labels, seed=seed))
    row.pop("skipped", None)
    return row


def write_table(results: dict) -> None:
    from setae.fileio import write_text

    rows = results["rows"]
    lines = [
        "# A latent set (8 × 8) against a code vector (64) on MNIST",
        "",
        f"Budget: {results['minutes']} minutes of training per row on {results['machine']}, "
        f"{results['threads']} thread(s) each; test figures on the first {results['test_sets']} test digits "
        "(completion rows: Chamfer / Hungarian / OSPA of the completed digit against the whole digit; digit "
        "acc: completed digits the digit CNN reads as the right digit; probes and NMI on the codes of what "
        "the encoder reads). Written by `python benchmarks/latent_set.py` (its docstring says what each row "
        "is).",
        "",
        *markdown_table(((n, rows[n]) for n in ROWS if n in rows), COLUMNS),
    ]
    inputs = {r["task"]: r["input_digit_acc"] for r in rows.values() if "input_digit_acc" in r}
    for task, acc in inputs.items():
        lines.append(f"\n{task}: the digit CNN reads {acc:.1%} of the inputs alone as the right digit.")
    write_text(TABLE, "\n".join(lines) + "\n")


def draw_figure(task: str, seed: int = 0, count: int = 8) -> Path:
    """Columns: `count` test digits; rows: the input (part of the digit), each completion row's output
    (the runs in runs/latent-set that exist), the whole digit."""
    from setae.evaluation.plots import Frame, plot_set_grid
    from setae.training.checkpoint import load
    from setae.training.engine import saved_config

    names = [n for n, (_, _, t) in ROWS.items() if t == task and (RUNS / slug(n) / "checkpoint").exists()]
    if not names:
        raise SystemExit(f"no completion runs for {task} in {RUNS}; train the {task} rows first")
    sets, labels, inputs = test_pairs(saved_config(RUNS / slug(names[0])), task, count)
    outputs = [load(RUNS / slug(n)).reconstruct(inputs, seed=seed) for n in names]
    columns = [[inputs[i], *(o[i] for o in outputs), sets[i]] for i in range(count)]
    short = {", trained on pairs": " (pairs)", ", denoising AE": " (denoising AE)"}
    rows = ["input"]
    for name in names:
        label = name.split(": ", 1)[1]
        for long, brief in short.items():
            label = label.replace(long, brief)
        rows.append(label)
    rows.append("whole digit")
    title = f"{task} completion; rows: " + " / ".join(rows)
    titles = [f"digit {label}" for label in labels[:count]]
    return plot_set_grid(columns, FIGURE, title, titles, Frame.unit_square())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="*", help="row names (see --list)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
    parser.add_argument("--figure", action="store_true", help="only draw benchmarks/results/completion.png")
    parser.add_argument("--task", default="top-half", choices=("top-half", "random-30"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--test-sets", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-train", type=int, default=10_000, help="training codes for the probes")
    args = parser.parse_args()
    if args.list:
        print("\n".join(ROWS))
        return 0
    if args.figure:
        print(draw_figure(args.task, args.seed))
        return 0
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        print(f"unknown row(s) {unknown}; see --list", file=sys.stderr)
        return 2
    from setae.fileio import write_json

    results = json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
    for name in args.rows:
        row = run_row(name, args.minutes, args.test_sets, args.threads, args.seed, args.probe_train)
        results = json.loads(JSON.read_text()) if JSON.exists() else {"rows": {}}
        results.update(
            minutes=args.minutes, test_sets=args.test_sets, threads=args.threads, machine=cpu_name()
        )
        results["rows"][name] = row
        write_json(JSON, results)
        print(json.dumps({name: row}, indent=1))
    if results["rows"]:
        write_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sequence autoencoder vs set autoencoder vs PCA on the same drawings: MNIST digits traced into pen strokes.

    setae train --preset strokes --run-dir runs/strokes-seq --threads 1   # 14,000 steps, 79 min
    setae train --data mnist-skeleton --max-size 100 --run-dir runs/strokes-set --encoder settransformer \
        --decoder tspn --loss chamfer --no-latent-scale-learned [--max-minutes 8 ...]
    python benchmarks/strokes_compare.py runs/strokes-seq runs/strokes-set [--test-sets 2000]

The sequence model reads the stroke-3 drawings (`mnist-strokes`); the set model reads the same drawings'
points with the order gone (`mnist-skeleton`); PCA (K = the models' latent size) reads the drawings
rasterised to 28×28. For each: linear probes and k-means (k = 10) on the codes of the first `--test-sets`
test drawings, probes trained on 10,000 training drawings; and the Chamfer distance of reconstructions in
pixel² (the set model's [0, 1] units scaled by 27²). Writes benchmarks/results/mnist_strokes.{json,md} and
docs/images/strokes_reconstructions.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PICTURE = Path(__file__).parents[1] / "docs/images/strokes_reconstructions.png"
PIXEL = 27.0  # MNIST set units -> pixels


def model_row(run: str, test_sets: int) -> dict:
    from setae.evaluation.digit_cnn import digit_scores, drawing_points, load_digit_cnn
    from setae.evaluation.evaluate import dataset_items, evaluate
    from setae.evaluation.representation import representation_metrics
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import make_datasets, make_test_set, ospa_cutoff_of

    model, config, meta, _ = load_checkpoint(run)
    sets, labels = dataset_items(make_test_set(config), test_sets)
    train_sets, train_labels = dataset_items(make_datasets(config)[0], 10_000)
    drawings = config.model.decoder == "strokes"
    judge, _ = load_digit_cnn(drawing="skeleton")
    points = drawing_points if drawings else list
    row = {}
    # drawings: greedy decoding, then sampling at the model's temperature (the last one's metrics are kept)
    for temperature in (0.0, config.model.decoder_temperature) if drawings else (None,):
        if drawings:
            model.config.decoder_temperature = temperature
        outputs = model.reconstruct(sets)
        metrics = evaluate(model, sets, seed=0, outputs=outputs, ospa_cutoff=ospa_cutoff_of(config))
        scores = digit_scores(
            judge, reconstructions=points(outputs), targets=points(sets), target_labels=labels
        )
        suffix = "" if temperature is None else f"_t{temperature:g}"
        row[f"recon_digit_acc{suffix}"] = scores["recon_digit_acc"]
    scale = 1.0 if drawings else PIXEL**2
    summary = json.loads((Path(run) / "train_summary.json").read_text())
    return {
        "run": run,
        "data": config.train.data,
        "steps": meta["step"],
        "train_minutes": summary["train_seconds"] / 60,
        "parameters": summary["parameters"],
        "chamfer_px2": metrics["chamfer"] * scale,
        "size_mae": metrics["size_mae"],
        "real_digit_acc": scores["digit_classifier_acc"],
        **row,
        **representation_metrics(model, train_sets, train_labels, sets, labels),
    }


def pca_row(latent: int, test_sets: int) -> dict:
    import torch

    from setae.datasets.mnist_strokes import MNISTSkeletonSets
    from setae.evaluation.evaluate import dataset_items
    from setae.evaluation.generation import rasterize
    from setae.evaluation.representation import code_metrics

    train_sets, train_labels = dataset_items(MNISTSkeletonSets(split="train"), 10_000)
    sets, labels = dataset_items(MNISTSkeletonSets(split="test"), test_sets)
    train_x, test_x = rasterize(train_sets), rasterize(sets)
    mean = train_x.mean(0)
    _, _, v = torch.linalg.svd(train_x - mean, full_matrices=False)
    basis = v[:latent].T
    codes = (train_x - mean) @ basis, (test_x - mean) @ basis
    return {
        "run": f"PCA-{latent} on rasterised drawings",
        **code_metrics(codes[0], train_labels, codes[1], labels),
    }


def draw_reconstructions(run: str, count: int = 16) -> None:
    from setae.evaluation.evaluate import dataset_items
    from setae.evaluation.plots import plot_strokes
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import make_test_set

    model, config, _, _ = load_checkpoint(run)
    sets, labels = dataset_items(make_test_set(config), count)
    model.config.decoder_temperature = 0.0
    pairs = [d for pair in zip(sets, model.reconstruct(sets), strict=True) for d in pair]
    titles = [t for label in labels for t in (f"input {label}", "greedy reconstruction")]
    plot_strokes(pairs, PICTURE, titles, frame=(28, 28))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sequence_run")
    parser.add_argument("set_run", nargs="?", help="left out: the set AE's row is kept from the JSON")
    parser.add_argument("--test-sets", type=int, default=2000)
    args = parser.parse_args()
    from setae.fileio import write_json, write_text

    set_name = "set AE (Set Transformer → TSPN)"
    rows = {"sequence AE (GRU → mixture-density RNN)": model_row(args.sequence_run, args.test_sets)}
    if args.set_run:
        rows[set_name] = model_row(args.set_run, args.test_sets)
    else:
        rows[set_name] = json.loads((RESULTS / "mnist_strokes.json").read_text())["rows"][set_name]
    latent = json.loads((Path(args.sequence_run) / "config.json").read_text())["model"]["latent_dim"]
    rows[f"PCA-{latent}"] = pca_row(latent, args.test_sets)
    write_json(RESULTS / "mnist_strokes.json", {"test_sets": args.test_sets, "rows": rows})
    columns = ("probe_acc_100", "probe_acc_1000", "probe_acc_all", "kmeans_nmi", "kmeans_ari")
    real = rows["sequence AE (GRU → mixture-density RNN)"]["real_digit_acc"]
    lines = [
        "# Drawings: sequence vs set autoencoder vs PCA (MNIST strokes)",
        "",
        f"Codes of the first {args.test_sets} test drawings; probes trained on 10,000 training drawings "
        "(100 / 1,000 / all labels); k-means with k = 10 against the digit labels. *digit kept*: the "
        "fraction of reconstructions that a digit classifier trained on the rasterised training drawings "
        f"(setae.evaluation.digit_cnn, 'skeleton') reads as the input's digit; on the real test drawings it "
        f"scores {real:.3f}, the ceiling. The sequence model's drawings are decoded greedily (τ = 0) and "
        "sampled at τ = 0.5. Written by `python benchmarks/strokes_compare.py` (commands in its docstring).",
        "",
        "| model | " + " | ".join(columns) + " | digit kept | chamfer (px²) | training |",
        "|---|" + "---|" * (len(columns) + 3),
    ]
    for name, r in rows.items():
        cells = [f"{r[c]:.3f}" for c in columns]
        if "recon_digit_acc_t0" in r:
            kept = " / ".join(f"{r[k]:.3f}" for k in r if k.startswith("recon_digit_acc_t"))
        else:
            kept = f"{r['recon_digit_acc']:.3f}" if "recon_digit_acc" in r else "–"
        chamfer = f"{r['chamfer_px2']:.2f}" if "chamfer_px2" in r else "–"
        training = f"{r['steps']} steps, {r['train_minutes']:.0f} min" if "steps" in r else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {kept} | {chamfer} | {training} |")
    write_text(RESULTS / "mnist_strokes.md", "\n".join(lines) + "\n")
    draw_reconstructions(args.sequence_run)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

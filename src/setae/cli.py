"""The `setae` command line: train, eval, baseline, encode, sample, plot, report, cluster, demo.

Every field of the model and training config is a flag (`--latent-dim 32`, `--loss hungarian`); see
`setae train --help`. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from setae.errors import SetaeError
from setae.models.config import ModelConfig
from setae.training.config import COMPLETIONS, PRESETS, TrainConfig
from setae.versions import __version__

IWAE_SETS = 200  # test sets for the 64-sample importance-weighted bound (64 decoder passes each)
DIGIT_SAMPLES = 1000  # prior samples the digit classifier reads
SWAP_SETS = 200  # conditional MNIST models: test digits decoded as each of the 10 digits
# the digit classifier judging each MNIST dataset's reconstructions and samples (setae.evaluation.digit_cnn)
DIGIT_JUDGES = {
    "mnist": "pixels",
    "mnist-completion": "pixels",
    "mnist-skeleton": "skeleton",
    "mnist-strokes": "skeleton",
}
BOOL_FIELDS = ("normalize",)  # bool | None config fields: a --x / --no-x pair, left out = from the data


# What a flag allows, where "default X" alone would not say it.
FLAG_HELP = {
    "max_size": "largest set the model handles; default: the largest set in the data (MNIST: 342)",
    "point_sigma": "σ of the Gaussian point likelihood, > 0; default: the data's median nearest-neighbour "
    "distance (MNIST: 1/27)",
    "normalize": "standardise points per dimension (--no-normalize: raw units); default: on for your own "
    "files, off for MNIST",
    "variational": "a VAE; --no-variational: a plain autoencoder",
    "conditional": "condition encoder and decoder on the set's label (train.data must have labels)",
    "encoder_label": "conditional models: the encoder reads the label too; --no-encoder-label: only the "
    "decoder does (q(z | X)), so the code need not carry it",
    "encoder_shuffle": "rnn encoder: read each set in a random order in training",
    "encoder_bidirectional": "rnn encoder: bidirectional",
    "latent_scale_learned": "learn the code scale γ per dimension (from --latent-scale)",
    "compile": "torch.compile the model (for GPUs)",
    "tensorboard": "also log every record to RUN/tensorboard",
    "adversary": "none, or label: a classifier learns the label from the code and the encoder learns to "
    "confuse it, so the code keeps the style and not the class",
    "adversary_weight": "λ >= 0: the weight of the code's confusion term, λ·KL(uniform ‖ q(label | z))",
    "label_centering": "conditional models: remove each label's mean code (running in training, exact after "
    "it), so every label has the same mean code and no linear probe reads the label",
    "prior_mmd": "w >= 0: add w·MMD²(the batch's codes, N(0, I)) per set (InfoVAE), pulling the codes of all "
    "sets towards the prior; 0: none",
    "aggregate_kl": "w >= 0, VAEs: add w·KL(N(m, C) ‖ N(0, I)), m and C the running mean and covariance of "
    "all sets' codes, so N(0, I) samples land where codes are; 0: none",
    "prior_adversary": "λ >= 0: a discriminator learns to tell N(0, I) draws from the codes and the codes "
    "learn to fool it (adversarial autoencoder), so q(z) fills the prior; 0: none",
    "adversary_steps": "label adversary: steps of its classifier per training step, on the batch's codes, "
    ">= 1 (more: it keeps up with the encoder)",
    "encoder": "deepsets, settransformer or rnn",
    "decoder": "mlp, tspn, rnn, dspn, slot, pointprocess (i.i.d. points, exact likelihood), or strokes "
    "(stroke-3 sequences)",
    "point_density": "pointprocess: mixture (--decoder-mixtures full-covariance Gaussians) or flow (zuko "
    "spline flow)",
    "point_sampling": "pointprocess decoding: quasi (deterministic, Sobol) or random (seeded draws)",
    "dequantize": "grid spacing h of discrete coordinates in data units, >= 0 (0: continuous), for the "
    "likelihood (points + U(−h/2, h/2) noise); default: for pointprocess 1/27 on MNIST pixels and skeletons, "
    "1 on strokes, else 0; for other decoders 0 (objective gan: as pointprocess; noise on the real sets D "
    "reads)",
    "stroke_position": "strokes: the pen's absolute position divided by this is read beside the offsets by "
    "encoder and decoder, >= 0 (0: offsets only); default: the drawings' position spread",
    "stroke_input_dropout": "strokes: in training, blank the decoder's view of the previous step with this "
    "probability (the position stays), in [0, 1)",
    "decoder_temperature": "strokes: sampling temperature of decoded drawings, >= 0 (0: greedy)",
    "loss": "hungarian, chamfer or sinkhorn",
    "size_head": "categorical or poisson",
    "deepsets_pool": "max, mean or sum",
    "encoder_order": "raster or input",
    "encoder_inducing": "ISAB inducing points; 0: full self-attention (SAB)",
    "decoder_inducing": "tspn: ISAB inducing points (0: SAB); slot: tokens of z",
    "point_refiner": "hidden width of a point-wise field that moves each decoded point, fitted with the "
    "Chamfer loss after training (set-loss decoders; the demo preset's 64); 0: none",
    "refine_steps": "batches of the point refiner's fit after training (default: a fifth of the steps)",
    "prior_components": "Gaussian mixture components fitted to the codes; 0: no fitted prior",
    "data": "mnist, synthetic, mnist-strokes, mnist-skeleton, mnist-completion (part of a digit in, the "
    "digit out), a .npz/.csv/.parquet file or dataset folder of sets, or an .npz of input/target pairs "
    "(arrays input_points, input_offsets, target_points, target_offsets, labels: set-to-set training)",
    "latent_set": "K > 0: the code is a set of K vectors of latent_dim / K (PMA with K seeds; the tspn "
    "decoder cross-attends to them; needs --encoder settransformer --decoder tspn); 0: one vector",
    "completion": "mnist-completion: the input, top-half (points with y < 1/2) or random-30 (a fixed random "
    "30%% of the points)",
    "test_data": "file of test sets; default: MNIST's test digits, or a tenth of your file held out",
    "val_size": "validation sets, >= 1; default: a tenth of the sets, at most 5000",
    "ospa_cutoff": "OSPA cut-off c in data units, > 0; default: a tenth of the data's extent (MNIST: 0.1)",
    "bucket_batches": "> 0: batch sets of similar size within runs of this many batches; 0: off",
    "optimizer": "adamw or sgd",
    "lr": "learning rate, > 0",
    "precision": "fp32 or bf16",
    "max_minutes": "stop after this many minutes of training; 0: no limit",
    "threads": "CPU threads; 0: PyTorch's default (all cores)",
    "device": "auto (CUDA when available), cpu, cuda, cuda:N or mps",
    "kl_warmup_steps": "steps of linear KL warm-up; 0: none",
    "chamfer_warmup_steps": "steps trained with the Chamfer loss before model.loss; 0: none",
    "steps": "optimiser steps; 0: save the untrained model",
    "objective": "autoencoder, or gan: the decoder (tspn or slot) generates sets from noise against a "
    "discriminator (the encoder's architecture, settransformer or deepsets); see --preset gan",
    "gan_loss": "gan: nonsaturating or hinge",
    "gan_r1": "gan: γ >= 0 of the R1 penalty (γ/2)‖∇D(X)‖² on real sets; 0: none",
    "gan_spectral": "gan: spectral normalisation of the discriminator's linear maps",
}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        group = parser.add_argument_group(f"{section} config (overrides preset and --config)")
        for f in fields(cls):
            default = getattr(cls(), f.name)
            described = FLAG_HELP.get(f.name, "")
            flag = f"--{f.name.replace('_', '-')}"
            if isinstance(default, bool) or f.name in BOOL_FIELDS:
                shown = "" if default is None else f"default {flag if default else '--no-' + flag[2:]}"
                kwargs = {"action": argparse.BooleanOptionalAction}
            else:
                shown = "" if default is None else f"default {default!r}"
                kind = type(default).__name__ if default is not None else "value"
                kwargs = {"metavar": kind.upper()}
            names = [flag] + (["--learning-rate"] if f.name == "lr" else [])
            group.add_argument(
                *names,
                dest=f"{section}.{f.name}",
                help="; ".join(part for part in (described, shown) if part),
                **kwargs,
            )


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"model": {}, "train": {}}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            out[section][name] = value
    return out


DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (default cpu)"


def _add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bars on the terminal (default on; never into a file or pipe)",
    )


def _add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch, >= 0 (default 0: torch's choice)"
    )


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2) that point to --help."""

    def error(self, message: str):
        self.exit(2, f"setae: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="setae", description="Autoencoders for sets.")
    parser.add_argument("--version", action="version", version=f"setae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_train_args(p: argparse.ArgumentParser, run_dir: str | None) -> None:
        p.add_argument(
            "--preset",
            default="demo",
            choices=sorted(PRESETS),
            help="starting configuration (ignored when resuming: the run's saved config is used)",
        )
        p.add_argument("--config", help="TOML or JSON file with [model] and [train] tables")
        p.add_argument(
            "--run-dir",
            default=run_dir,
            help=f"output folder (default {run_dir or 'runs/<data name>-<date>-<time>'})",
        )
        _add_progress_flag(p)
        _add_config_flags(p)

    train = sub.add_parser("train", help="train a set autoencoder into a run folder")
    add_train_args(train, None)
    train.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")

    demo = sub.add_parser("demo", help="train (or finish) the default model, evaluate it, plot it, summarise")
    add_train_args(demo, "runs/demo")

    ev = sub.add_parser("eval", help="evaluate a run on its test set; writes RUN/metrics.json")
    ev.add_argument("run", help="run folder or checkpoint")
    ev.add_argument(
        "--data",
        help="evaluate on this .npz/.csv/.parquet file of sets, an .npz of input/target pairs, or "
        "mnist-completion (MNIST's test digits completed from part of them), instead of the run's test set",
    )
    ev.add_argument("--completion", choices=COMPLETIONS, help="--data mnist-completion: the input")
    ev.add_argument("--device", default="cpu", help=DEVICE_HELP)
    _add_progress_flag(ev)
    ev.add_argument("--limit", type=int, help="only the first N test sets")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--representation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the probe / k-means metrics of the codes and the VAE generation metrics (default on)",
    )
    ev.add_argument(
        "--probe-train", type=int, default=10_000, help="training sets whose codes train the linear probes"
    )
    ev.add_argument(
        "--gen-samples", type=int, default=200, help="prior samples (and test sets) for MMD / COV / 1-NNA"
    )

    _add_threads_flag(ev)

    base = sub.add_parser("baseline", help="score a non-neural baseline like `setae eval`")
    base.add_argument(
        "kind", choices=["pca"], help="pca: PCA on rasterised MNIST images (linear autoencoder)"
    )
    base.add_argument("--dim", type=int, required=True, help="number of principal components K")
    base.add_argument("--limit", type=int, help="only the first N test digits")
    base.add_argument("--probe-train", type=int, default=10_000, help="training images for the linear probes")
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--out", help="output folder for metrics.json (default runs/baseline-pca-K)")

    _add_threads_flag(base)

    report = sub.add_parser("report", help="write RUN/report.html: metrics beside PCA, pictures, config")
    report.add_argument("run", help="run folder (after `setae eval` and `setae plot`)")
    report.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the PCA row of the same code size (MNIST runs only; default on)",
    )

    enc = sub.add_parser("encode", help="write the codes of a file's sets, by the output's extension")
    enc.add_argument("run", help="run folder or checkpoint")
    enc.add_argument(
        "--data", required=True, help=".npz, .csv or .parquet file of sets (format: setae.datasets.pointfile)"
    )
    enc.add_argument(
        "--out",
        required=True,
        help="output file: .npy (codes [B, latent]), .npz (codes, set_ids, labels), .csv or .parquet "
        "(columns set_id, label, z0 .. z{latent-1}); its folder must exist",
    )
    enc.add_argument("--device", default="cpu", help=DEVICE_HELP)
    _add_progress_flag(enc)

    _add_threads_flag(enc)

    plot = sub.add_parser("plot", help="write reconstruction, sample, curve and code PNGs into RUN/plots")
    plot.add_argument("run", help="run folder")
    plot.add_argument("--num", type=int, default=16, help="sets per picture")
    plot.add_argument("--seed", type=int, default=0)
    plot.add_argument("--device", default="cpu", help=DEVICE_HELP)
    plot.add_argument(
        "--data", help="draw this file's sets or pairs, or mnist-completion, instead of the run's test set"
    )
    plot.add_argument("--completion", choices=COMPLETIONS, help="--data mnist-completion: the input")

    _add_threads_flag(plot)

    sample = sub.add_parser(
        "sample", help="write sets drawn from a VAE's prior or a GAN's generator to a file"
    )
    sample.add_argument("run", help="run folder or checkpoint")
    sample.add_argument("--num", type=int, default=100, help="number of sets (default 100)")
    sample.add_argument(
        "--out", required=True, help="output .npz, .csv or .parquet (setae.datasets.pointfile)"
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--label", type=int, help="conditional models: the class to generate (default: 0, 1, 2, ... in turn)"
    )
    sample.add_argument("--device", default="cpu", help=DEVICE_HELP)

    _add_threads_flag(sample)

    cluster = sub.add_parser(
        "cluster", help="k-means of a run's codes: clusters.json, a gallery per cluster, a k-selection plot"
    )
    cluster.add_argument("run", help="run folder or checkpoint")
    cluster.add_argument("--k", type=int, required=True, help="number of clusters K (2 .. number of items)")
    cluster.add_argument(
        "--k-range",
        default="2:20",
        help="A:B, the k (both ends included, cut at the number of items) of the elbow / silhouette curve",
    )
    cluster.add_argument("--data", help=".npz or .csv file of sets to cluster (default: the run's test set)")
    cluster.add_argument("--limit", type=int, help="only the first N items")
    cluster.add_argument("--seed", type=int, default=0, help="k-means initialisation seed")
    cluster.add_argument("--out", help="output folder (default RUN/clusters)")
    cluster.add_argument("--device", default="cpu", help=DEVICE_HELP)
    _add_progress_flag(cluster)

    _add_threads_flag(cluster)

    example = sub.add_parser(
        "example-data", help="write a small example file of 3-D point clouds (4 shapes) to try setae on"
    )
    example.add_argument("out", nargs="?", default="clouds.npz", help="output .npz, .csv or .parquet")
    example.add_argument("--sets", type=int, default=400, help="number of clouds (default 400)")
    example.add_argument("--seed", type=int, default=0)
    parser.commands = sub.choices
    return parser


def cmd_train(args: argparse.Namespace, resume: bool) -> None:
    from setae.training.config import resolve_config
    from setae.training.engine import saved_config, train

    if args.run_dir is None:
        if resume:
            raise SetaeError("--resume needs --run-dir, the run folder to continue")
        data = _overrides(args)["train"].get("data") or "mnist"
        args.run_dir = str(Path("runs") / f"{Path(data).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"run folder: {args.run_dir}")
    base = saved_config(args.run_dir) if resume else None
    config = resolve_config(args.preset, args.config, _overrides(args), base=base)
    train(config, args.run_dir, resume=resume, progress=args.progress and sys.stderr.isatty())


def cmd_eval(
    run: str,
    limit: int | None,
    seed: int,
    representation: bool = True,
    probe_train: int = 10_000,
    gen_samples: int = 200,
    data: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    completion: str | None = None,
) -> dict:
    """Test metrics into RUN/metrics.json. On pairs (a run trained on them, or `data` naming a pair file or
    mnist-completion) the model's outputs of the input sets are scored against the targets, and on MNIST
    `recon_digit_acc` is then the completed digits' accuracy (`input_digit_acc` the inputs')."""
    from tqdm.auto import tqdm

    from setae.datasets.pairs import encoder_view
    from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn
    from setae.evaluation.evaluate import dataset_items, evaluate, metric_meanings, source_items
    from setae.evaluation.representation import representation_metrics
    from setae.fileio import write_json
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import (
        GRID_SPACING,
        make_datasets,
        make_test_set,
        ospa_cutoff_of,
        test_split_name,
    )

    model, config, meta, checkpoint = load_checkpoint(run, device)
    if config.model.objective == "gan":
        return _eval_gan(model, config, meta, checkpoint, limit, seed, gen_samples, data)
    phases = ["reconstruct"] + (["codes", "samples"] if representation else [])
    bar = tqdm(phases, desc="eval", disable=None if progress else True, leave=False)
    phase = iter(bar)
    next(phase)
    if completion and data != "mnist-completion":
        raise SetaeError("--completion applies to --data mnist-completion only")
    test_set = make_test_set(config, data, completion)
    sets, labels = dataset_items(test_set, limit)
    sources = source_items(test_set, limit)  # pairs: the input sets, whose targets `sets` are
    if not sets:
        raise SetaeError(f"{data or 'the test set'}: no sets to evaluate (--limit {limit})")
    given = labels if config.model.conditional else None
    inputs = sets if sources is None else sources
    reconstructions = model.reconstruct(inputs, seed=seed, labels=given)
    metrics = {
        "split": test_split_name(config, data),
        "step": meta["step"],
        **evaluate(
            model,
            sets,
            seed=seed,
            labels=labels,
            outputs=reconstructions,
            ospa_cutoff=ospa_cutoff_of(config),
            sources=sources,
        ),
    }
    if sources is not None:  # which completion task (MNIST), or pairs from a file
        if data == "mnist-completion" or (data is None and config.train.data == "mnist-completion"):
            metrics["task"] = completion or config.train.completion
        else:
            metrics["task"] = "pairs"
    judged = "mnist-completion" if data == "mnist-completion" else config.train.data if data is None else None
    drawing = DIGIT_JUDGES.get(judged)
    classifier = None
    if drawing:
        classifier, _ = load_digit_cnn(config.train.data_root or None, drawing=drawing)
        metrics.update(
            digit_scores(
                classifier,
                reconstructions=_digit_sets(model, reconstructions),
                targets=_digit_sets(model, sets),
                target_labels=labels,
            )
        )
        if sources is not None:  # how recognisable the input part alone is
            read = digit_scores(classifier, reconstructions=sources, targets=sets, target_labels=labels)
            metrics["input_digit_acc"] = read["recon_digit_acc"]
        if config.model.conditional:  # style transfer: the first sets' codes decoded as every digit
            from setae.evaluation.generation import label_swaps

            first, first_labels = sets[:SWAP_SETS], labels[:SWAP_SETS]
            swapped = [s for column in label_swaps(model, first, first_labels, seed) for s in column]
            digits = [c for c in range(config.model.num_classes) for _ in first]
            scores = digit_scores(classifier, samples=swapped, requested=digits)
            metrics["swap_as_requested"] = scores["samples_as_requested"]
            metrics["swap_confident"] = scores["samples_confident"]
    skipped = []
    if representation:
        next(phase)
        # codes of what the encoder reads: a pair's input set (probes trained on the run's training split,
        # or on the completion task's training inputs when scored on it)
        probe_data = make_datasets(config)[0]
        if data == "mnist-completion":
            from setae.datasets.pairs import mnist_completion

            task = completion or config.train.completion
            probe_data = mnist_completion(config.train.data_root or None, "train", task)
        train_sets, train_labels = dataset_items(encoder_view(probe_data), probe_train)
        if min(labels + train_labels) >= 0:  # labelled data only
            metrics.update(representation_metrics(model, train_sets, train_labels, inputs, labels, seed=seed))
        else:
            skipped.append("probe_acc, kmeans_nmi: the sets have no labels")
        next(phase)
        if config.model.variational:
            metrics.update(
                _sample_metrics(model, sets, labels, gen_samples, seed, classifier, ospa_cutoff_of(config))
            )
            if sources is not None:
                skipped.append("iwae_64: not computed on pairs")
            elif model.has_likelihood_bound:
                grid = GRID_SPACING.get(config.train.data) if data is None else None
                first = given[:IWAE_SETS] if given is not None else None
                metrics.update(_likelihood_metrics(model, sets[:IWAE_SETS], first, seed, grid))
    bar.close()
    skipped += metrics.pop("skipped", [])
    if skipped:
        metrics["skipped"] = skipped
    metrics["nats"] = {key: meaning for key, meaning in metric_meanings(model).items() if key in metrics}
    write_json(checkpoint.parent / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    return metrics


def _digit_sets(model, sets: list) -> list:
    """What the digit classifier reads: the sets, or for drawings the points they visit in [0, 1]²."""
    from setae.evaluation.digit_cnn import drawing_points

    return drawing_points(sets) if model.config.decoder == "strokes" else sets


GAN_SKIPPED = (
    "reconstruction, code and likelihood metrics (chamfer, size_acc, probe_acc, kmeans_nmi, elbo, iwae_64): "
    "a GAN has no encoder and no likelihood"
)


def _eval_gan(model, config, meta, checkpoint, limit, seed: int, gen_samples: int, data) -> dict:
    """`setae eval` of a GAN: the VAEs' generation metrics (`_sample_metrics`) only, and no nats."""
    from setae.evaluation.digit_cnn import load_digit_cnn
    from setae.evaluation.evaluate import dataset_items
    from setae.fileio import write_json
    from setae.training.data import make_test_set, ospa_cutoff_of, test_split_name

    sets, labels = dataset_items(make_test_set(config, data), limit)
    if not sets:
        raise SetaeError(f"{data or 'the test set'}: no sets to evaluate (--limit {limit})")
    classifier = None
    if config.train.data == "mnist" and data is None:
        classifier, _ = load_digit_cnn(config.train.data_root or None)
    metrics = {"split": test_split_name(config, data), "step": meta["step"], "num_sets": len(sets)}
    metrics.update(
        _sample_metrics(model, sets, labels, gen_samples, seed, classifier, ospa_cutoff_of(config))
    )
    if classifier is not None:  # the ceiling of the confident fraction: the real test digits'
        from setae.evaluation.digit_cnn import digit_scores

        real = digit_scores(classifier, targets=sets, target_labels=labels)
        metrics.update({k: v for k, v in real.items() if k in ("real_confident", "digit_classifier_acc")})
    metrics["skipped"] = [GAN_SKIPPED]
    write_json(checkpoint.parent / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    print(f"skipped {GAN_SKIPPED}", file=sys.stderr)
    return metrics


def _likelihood_metrics(model, sets: list, labels, seed: int, grid: float | None) -> dict:
    """The 64-sample importance-weighted bound and the elbo on the same `sets`; for a model trained on grid
    points (cell width `grid`) without dequantisation, both also as bounds on the discrete sets' probability
    (`_discrete`, with `SetAutoencoder.dequantized`), in nats and bits per point, as a dequantised model's."""
    from setae.evaluation.evaluate import bits_per_point, importance_weighted_bound, objective_terms

    def bounds(suffix: str) -> dict:
        iwae = importance_weighted_bound(model, sets, num_samples=64, seed=seed, labels=labels)
        elbo = objective_terms(model, sets, seed=seed, labels=labels)["elbo"]
        out = {f"iwae_64{suffix}": iwae, f"elbo_iwae_sets{suffix}": elbo}
        if model.has_exact_likelihood or suffix:
            out[f"bits_per_point_iwae_64{suffix}"] = bits_per_point(iwae, sets)
        return out

    out = {"iwae_sets": len(sets), **bounds("")}
    if grid and not model.config.dequantize and model.config.decoder != "strokes":
        with model.dequantized(grid):
            out.update(bounds("_discrete"))
    return out


def _sample_metrics(
    model, sets, labels, gen_samples: int, seed: int, classifier, ospa_cutoff: float = 0.1
) -> dict:
    """Generation metrics of prior samples, from each prior the model has: the default one (`sample_prior`)
    unsuffixed, N(0, I) with the suffix `_normal` when the default is the fitted mixture. One draw serves
    the set metrics (its first `gen_samples` against as many test sets) and, on MNIST, the digit classifier
    (DIGIT_SAMPLES samples); a conditional model is asked for the test sets' digits."""
    from setae.evaluation.digit_cnn import digit_scores
    from setae.evaluation.generation import vae_metrics

    conditional = model.config.conditional
    count = max(min(gen_samples, len(sets)), DIGIT_SAMPLES if classifier is not None else 0)
    requested = [labels[i % len(labels)] for i in range(count)] if conditional else None
    priors = ["fitted", "normal"] if model.has_fitted_prior else ["normal"]
    out: dict = {"sample_prior": priors[0]}
    for prior in priors:
        suffix = "" if prior == priors[0] else f"_{prior}"
        samples = model.sample(count, seed=seed, label=requested, prior=prior)
        # interpolation is a property of the decoder, not of the prior: once (a GAN has no codes)
        pairs = 0 if suffix or model.config.objective == "gan" else 64
        scores = vae_metrics(
            model, sets, samples[: min(gen_samples, len(sets))], pairs, seed=seed, ospa_cutoff=ospa_cutoff
        )
        if classifier is not None:
            scores.update(digit_scores(classifier, samples=_digit_sets(model, samples), requested=requested))
        scores["empty_samples"] = sum(len(s) == 0 for s in samples) / len(samples)
        out.update({f"{name}{suffix}": value for name, value in scores.items()})
    return out


def cmd_baseline(args: argparse.Namespace) -> dict:
    from setae.evaluation.pca_baseline import evaluate_pca
    from setae.fileio import write_json

    metrics = {"split": "test", **evaluate_pca(args.dim, args.limit, args.probe_train, args.seed)}
    out = Path(args.out or f"runs/baseline-pca-{args.dim}")
    write_json(out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    return metrics


def cmd_report(run: str, baseline: bool = True) -> Path:
    from setae.errors import SetaeError
    from setae.evaluation.report import write_report
    from setae.fileio import write_json
    from setae.training.checkpoint import load_checkpoint

    _, config, _, checkpoint = load_checkpoint(run)
    folder = checkpoint.parent
    if not (folder / "metrics.json").exists():
        raise SetaeError(f"{folder}: no metrics.json yet; run `setae eval {run}` first")
    pca = None
    if baseline and config.train.data == "mnist":
        cached = folder / f"baseline-pca-{config.model.latent_dim}.json"
        if not cached.exists():
            from setae.evaluation.pca_baseline import evaluate_pca

            limit = json.loads((folder / "metrics.json").read_text()).get("num_sets")
            write_json(cached, evaluate_pca(config.model.latent_dim, limit))
        pca = json.loads(cached.read_text())
    path = write_report(folder, pca)
    print(path)
    return path


ENCODE_FORMATS = (".npy", ".npz", ".csv", ".parquet")
POINT_FILE_FORMATS = (".npz", ".csv", ".parquet")  # what `setae sample` and `example-data` write


def _encode(model, sets: list, labels: list[int], progress: bool, chunk: int = 4096):
    """model.encode of `sets` (labels given to a conditional model) in chunks, with a progress bar."""
    from tqdm.auto import tqdm

    given = labels if model.config.conditional else None
    parts = []
    with tqdm(
        total=len(sets), desc="encode", unit="set", disable=None if progress else True, leave=False
    ) as bar:
        for i in range(0, len(sets), chunk):
            parts.append(model.encode(sets[i : i + chunk], labels=given and given[i : i + chunk]))
            bar.update(len(parts[-1]))
    return torch.cat(parts) if parts else model.encode([])


def _output_path(out: str, formats: tuple[str, ...], shown: str) -> Path:
    """`out` as a Path, once its suffix is one of `formats` and its folder exists (errors name `shown`)."""
    target = Path(out)
    if target.suffix not in formats:
        raise SetaeError(f"{shown}: unknown format {target.suffix!r}; use {', '.join(formats)}")
    if not target.parent.is_dir():
        raise SetaeError(f"{shown}: folder {target.parent} does not exist")
    return target


def cmd_encode(run: str, data: str, out: str, device: str = "cpu", progress: bool = True) -> None:
    from setae.datasets.batch import as_point_sets
    from setae.datasets.pointfile import load_point_sets, write_codes
    from setae.evaluation.evaluate import dataset_items
    from setae.training.checkpoint import load

    target = _output_path(out, ENCODE_FORMATS, f"--out {out}")
    model = load(run, device)
    sets, labels = dataset_items(load_point_sets(data))
    sets = as_point_sets(sets, dim=model.config.point_dim, max_size=model.config.max_size, source=data)
    codes = _encode(model, sets, labels, progress).numpy()
    write_codes(target, codes, labels)
    print(f"{out}: codes of {len(codes)} sets, shape {list(codes.shape)}")


def cmd_sample(run: str, num: int, out: str, seed: int = 0, label: int | None = None, device: str = "cpu"):
    """`setae sample`: `num` sets from `model.sample` (a VAE prior, a GAN generator) into `out`."""
    from setae.datasets.pointfile import save_point_sets
    from setae.training.checkpoint import load

    target = _output_path(out, POINT_FILE_FORMATS, f"--out {out}")
    if num < 1:
        raise SetaeError(f"--num {num}: need at least one set")
    model = load(run, device)
    c = model.config
    if c.objective != "gan" and not c.variational:
        raise SetaeError(f"{run}: a plain autoencoder (variational=False) has no prior to sample from")
    labels = None
    if c.objective != "gan" and c.conditional:
        labels = [label if label is not None else i % c.num_classes for i in range(num)]
    elif label is not None:
        raise SetaeError(f"--label {label}: {run} is not a conditional model")
    sets = model.sample(num, seed=seed, label=labels)
    save_point_sets(target, [s.numpy() for s in sets], labels)
    print(f"{out}: {num} sampled sets, {sum(len(s) for s in sets) / num:.1f} points on average")


def cmd_example_data(out: str, num_sets: int, seed: int) -> None:
    from setae.datasets.synthetic import example_clouds

    path = _output_path(out, POINT_FILE_FORMATS, out)
    if num_sets < 4:
        raise SetaeError(f"--sets {num_sets}: need at least 4 (one per shape)")
    example_clouds(path, num_sets, seed)
    print(
        f"{out}: {num_sets} 3-D point clouds (4 shapes: sphere shell, segment, gaussian blob, cube "
        "surface; 20-60 points, coordinates in [6, 14])"
    )


def cmd_cluster(
    run: str,
    k: int,
    k_range: str = "2:20",
    data: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    out: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    from setae.datasets.batch import as_point_sets
    from setae.datasets.pointfile import load_point_sets
    from setae.evaluation.clustering import parse_k_range, write_clusters
    from setae.evaluation.evaluate import dataset_items
    from setae.evaluation.plots import Frame
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import make_test_set

    model, config, _, checkpoint = load_checkpoint(run, device)
    source = data or "the test set"
    sets, labels = dataset_items(load_point_sets(data) if data else make_test_set(config), limit)
    sets = as_point_sets(sets, dim=config.model.point_dim, max_size=config.model.max_size, source=source)
    if not sets:
        raise SetaeError(f"{source}: no items to cluster (--limit {limit})")
    ks = parse_k_range(k_range, len(sets))
    codes = _encode(model, sets, labels, progress)
    folder = Path(out) if out else checkpoint.parent / "clusters"
    strokes = config.model.decoder == "strokes"
    frame = Frame.for_data(config.train.data if data is None else data, sets, strokes)
    result = write_clusters(codes, sets, labels, k, ks, folder, seed=seed, strokes=strokes, frame=frame)
    curve = result["selection"]
    best = curve["k"].index(result["best_k_silhouette"])
    lines = [
        f"k-means of {len(sets)} codes of {source}: K={k}, silhouette {result['silhouette']:.3f}, "
        f"cluster sizes {result['sizes']}",
        f"best K by silhouette in {ks.start}..{ks.stop - 1}: {curve['k'][best]} "
        f"({curve['silhouette'][best]:.3f})",
    ]
    if "nmi" in result:
        lines.append(f"against the labels: NMI {result['nmi']:.3f}  ARI {result['ari']:.3f}")
    lines.append(f"{folder}/: clusters.json, cluster_selection.png, {k} galleries cluster_*.png")
    print("\n".join(lines))
    return result


def cmd_plot(
    run: str,
    num: int,
    seed: int,
    device: str = "cpu",
    data: str | None = None,
    completion: str | None = None,
) -> list[Path]:
    """PNGs into RUN/plots; on pairs (the run's, or `data`'s) `completions.png`: the first min(num, 8)
    test inputs, the model's outputs of them and the targets, instead of `reconstructions.png`."""
    from setae.datasets.pairs import encoder_view
    from setae.evaluation.evaluate import dataset_items, source_items
    from setae.evaluation.plots import (
        Frame,
        plot_gan_curves,
        plot_reconstructions,
        plot_set_grid,
        plot_sets,
        plot_training_curves,
    )
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import make_test_set

    if completion and data != "mnist-completion":
        raise SetaeError("--completion applies to --data mnist-completion only")
    model, config, _, checkpoint = load_checkpoint(run, device)
    out = checkpoint.parent / "plots"
    test_set = make_test_set(config, data, completion)
    sets, labels = dataset_items(test_set, num)
    sources = source_items(test_set, num)
    if config.model.objective == "gan":  # no encoder: samples and training curves only
        samples = model.sample(num, seed=seed)
        frame = Frame.for_data(config.train.data, [*sets, *samples])
        written = [plot_sets(samples, out / "samples.png", "samples of the GAN's generator", frame)]
        if (checkpoint.parent / "log.jsonl").exists():
            written.append(plot_gan_curves(checkpoint.parent / "log.jsonl", out / "training_curves.png"))
        for path in written:
            print(path)
        return written
    given = labels if config.model.conditional else None
    recon = model.reconstruct(sets if sources is None else sources, seed=seed, labels=given)
    strokes = config.model.decoder == "strokes"
    shown = data if data and not Path(data).suffix else config.train.data

    def frame(*groups) -> Frame:
        """MNIST: the image's fixed frame; other data: fitted to these test sets and the sets drawn."""
        return Frame.for_data(shown, [*sets, *(s for g in groups for s in g)], strokes)

    if sources is None:
        written = [plot_reconstructions(sets, recon, out / "reconstructions.png", labels, frame(recon))]
    else:  # one column per pair: input, output, target
        count = min(len(sets), 8)
        columns = [[sources[i], recon[i], sets[i]] for i in range(count)]
        word = frame().label_word
        title = "rows: the input, the model's output of it, the target"
        titles = [f"{word} {labels[i]}" if labels[i] >= 0 else f"pair {i}" for i in range(count)]
        path = out / "completions.png"
        written = [plot_set_grid(columns, path, title, titles, frame(sources, recon))]
    if config.model.variational:
        requested = [i % config.model.num_classes for i in range(num)] if given else None
        kinds = "digits" if frame().label_word == "digit" else "classes"
        title = "samples from the prior" + (f" of {kinds} 0, 1, 2, ..." if given else "")
        samples = model.sample(num, seed=seed, label=requested)
        written.append(plot_sets(samples, out / "samples.png", title, frame(samples)))
    log = checkpoint.parent / "log.jsonl"
    if log.exists():
        written.append(plot_training_curves(log, out / "training_curves.png"))
    if config.model.conditional:
        written.append(_label_swap_plot(model, sets, labels, out / "label_swap.png", seed, frame))
    else:  # interpolations and code maps of a conditional model need labels
        written.extend(_representation_plots(model, encoder_view(test_set), out, seed, frame=frame))
    for path in written:
        print(path)
    return written


def _label_swap_plot(model, sets, labels, path: Path, seed: int, frame) -> Path:
    """The grid of `label_swaps` for up to 8 test sets: rows the sets, columns the input then each class."""
    from setae.evaluation.generation import label_swaps
    from setae.evaluation.plots import plot_set_grid

    sets, labels = sets[:8], labels[:8]
    columns = label_swaps(model, sets, labels, seed)
    word = frame().label_word
    titles = ["input"] + [f"as {word} {c}" for c in range(len(columns))]
    title = f"each input's code decoded with every {word} label"
    return plot_set_grid([sets, *columns], path, title, titles, frame(*columns))


def _representation_plots(
    model, test_set, out: Path, seed: int, num_codes: int = 2000, frame=None
) -> list[Path]:
    """Interpolation strips (4 pairs of test sets) and an animated GIF of the first, a latent traversal along
    the codes' principal directions, and for labelled data the 2-D PCA map of the first `num_codes` test
    codes and a gallery of their k-means clusters (k = 10). `frame(*groups of sets)` gives the
    `plots.Frame` a picture of those sets is drawn in (None: each picture's default)."""
    from setae.evaluation.evaluate import dataset_items
    from setae.evaluation.generation import interpolate, latent_traversal
    from setae.evaluation.plots import (
        animate_sets,
        plot_cluster_gallery,
        plot_code_map,
        plot_interpolations,
        plot_traversal,
    )
    from setae.evaluation.representation import kmeans

    sets, labels = dataset_items(test_set, num_codes)
    frame = frame or (lambda *groups: None)
    written = []
    if len(sets) >= 2:
        pairs = min(4, len(sets) // 2)
        lines = interpolate(model, sets[: 2 * pairs : 2], sets[1 : 2 * pairs : 2], seed=seed)
        written.append(plot_interpolations(lines, out / "interpolations.png", frame(*lines)))
        there = [line[0] for line in interpolate(model, sets[:1], sets[1:2], steps=20, seed=seed)]
        gif = out / "interpolation.gif"
        written.append(animate_sets(there + there[::-1], gif, "interpolation", frame=frame(there)))
    if len(sets) >= 4:
        offsets = (-2.0, -1.0, 0.0, 1.0, 2.0)
        columns = latent_traversal(model, model.encode(sets), directions=3, offsets=offsets, seed=seed)
        written.append(plot_traversal(columns, offsets, out / "traversal.png", frame(*columns)))
    if min(labels, default=-1) >= 0 and len(sets) >= 10:
        codes = model.encode(sets)
        word = getattr(frame(), "label_word", "class")
        written.append(plot_code_map(codes, labels, out / "code_map.png", word))
        clusters = kmeans(codes, 10, seed=seed).tolist()
        written.append(plot_cluster_gallery(sets, clusters, out / "clusters.png", frame=frame(sets)))
    return written


def cmd_demo(args: argparse.Namespace) -> None:
    run = Path(args.run_dir)
    cmd_train(args, resume=(run / "checkpoint").exists())
    metrics = cmd_eval(str(run), None, 0)
    cmd_plot(str(run), 16, 0)
    cmd_report(str(run))
    summary = json.loads((run / "train_summary.json").read_text())
    m = metrics
    if "chamfer" not in m:  # a GAN: generation metrics only
        scores = f"gen_mmd {m['gen_mmd']:.5f}  gen_cov {m['gen_cov']:.3f}  gen_1nna {m['gen_1nna']:.3f}"
        if "samples_confident" in m:
            scores += f"  confident {m['samples_confident']:.3f}"
        minutes = summary["train_seconds"] / 60
        print(f"\nsetae demo: {summary['parameters']:,} parameters, trained {minutes:.1f} min")
        print(f"samples: {scores}\nmetrics: {run / 'metrics.json'}   pictures: {run / 'plots'}/")
        return
    print(
        f"\nsetae demo: {summary['parameters']:,} parameters, trained "
        f"{summary['train_seconds'] / 60:.1f} min at {summary['sets_per_s']:.0f} sets/s, "
        f"peak memory {summary['peak_memory_mb']:.0f} MB\n"
        f"test ({m['num_sets']} digits): chamfer {m['chamfer']:.5f}  hungarian {m['hungarian']:.5f}  "
        f"ospa {m['ospa']:.4f}  size_acc {m['size_acc']:.3f}  size_mae {m['size_mae']:.2f}\n"
        + (
            f"codes: linear probe {m['probe_acc_all']:.3f} "
            f"(100 labels: {m.get('probe_acc_100', float('nan')):.3f})  "
            f"k-means NMI {m['kmeans_nmi']:.3f}  ARI {m['kmeans_ari']:.3f}\n"
            if "probe_acc_all" in m
            else ""
        )
        + f"metrics: {run / 'metrics.json'}   pictures: {run / 'plots'}/   report: {run / 'report.html'}"
    )


def _unknown_flag(
    parser: argparse.ArgumentParser, command: str | None, unknown: list[str], argv: list[str]
) -> str:
    """One line for unrecognised arguments, with the nearest flag of the command when there is one, or how
    to write a boolean flag given a value (`--variational false`)."""
    sub = parser.commands.get(command) if command else None
    actions = (sub or parser)._actions
    options = [o for a in actions for o in a.option_strings]
    flag = unknown[0]
    switches = {
        o: a for a in actions if isinstance(a, argparse.BooleanOptionalAction) for o in a.option_strings
    }
    before = argv[argv.index(flag) - 1] if flag in argv and argv.index(flag) > 0 else None
    if before in switches:
        on, off = switches[before].option_strings
        return f"setae: error: {before} takes no value ({flag!r}): write {on} or {off}"
    near = difflib.get_close_matches(flag.split("=")[0], options, n=1, cutoff=0.7)
    prog = f"setae {command}" if sub else "setae"
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"setae: error: unrecognized argument {flag}{hint} (see {prog} --help)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(_unknown_flag(parser, getattr(args, "command", None), unknown, argv), file=sys.stderr)
        return 2
    try:
        if getattr(args, "threads", 0) and args.command not in ("train", "demo"):  # train: train.threads
            if args.threads < 0:
                raise SetaeError(f"--threads must be >= 0, got {args.threads}")
            torch.set_num_threads(args.threads)
        if args.command == "train":
            cmd_train(args, resume=args.resume)
        elif args.command == "demo":
            cmd_demo(args)
        elif args.command == "eval":
            cmd_eval(
                args.run,
                args.limit,
                args.seed,
                args.representation,
                args.probe_train,
                args.gen_samples,
                args.data,
                args.device,
                args.progress,
                args.completion,
            )
        elif args.command == "baseline":
            cmd_baseline(args)
        elif args.command == "report":
            cmd_report(args.run, baseline=args.baseline)
        elif args.command == "encode":
            cmd_encode(args.run, args.data, args.out, args.device, args.progress)
        elif args.command == "plot":
            cmd_plot(args.run, args.num, args.seed, args.device, args.data, args.completion)
        elif args.command == "sample":
            cmd_sample(args.run, args.num, args.out, args.seed, args.label, args.device)
        elif args.command == "cluster":
            cmd_cluster(
                args.run,
                args.k,
                args.k_range,
                args.data,
                args.limit,
                args.seed,
                args.out,
                args.device,
                args.progress,
            )
        elif args.command == "example-data":
            cmd_example_data(args.out, args.sets, args.seed)
    except SetaeError as e:
        print(f"setae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("setae: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

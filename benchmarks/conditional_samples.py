"""Does a conditional VAE generate the digit it is asked for? Scores a trained run's prior samples.

    setae train --run-dir runs/cvae-mlp --encoder deepsets --decoder mlp --conditional --beta 1 \\
        --steps 14000 --kl-warmup-steps 2000 --threads 1 --max-minutes 28
    python benchmarks/conditional_samples.py runs/cvae-mlp

Draws 100 samples z ~ N(0, I) per digit 0..9 (seed 0), decodes each with its requested label, and
classifies them with setae's digit classifier (logistic regression on rasterised sets, trained on 10,000
training digits). Writes benchmarks/results/conditional_vae.json and .md, and a picture of 8 samples per
digit to docs/images/conditional_samples.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).parent.parent
PER_DIGIT = 100


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a conditional VAE's run folder")
    parser.add_argument("--test-sets", type=int, default=2000)
    args = parser.parse_args()
    import torch

    from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn
    from setae.evaluation.evaluate import dataset_items
    from setae.evaluation.plots import plot_set_grid
    from setae.fileio import write_json, write_text
    from setae.training.checkpoint import load
    from setae.training.data import make_test_set
    from setae.training.engine import saved_config

    torch.set_num_threads(1)
    model, config = load(args.run), saved_config(args.run)
    summary = json.loads((Path(args.run) / "train_summary.json").read_text())
    test_sets, test_labels = dataset_items(make_test_set(config), args.test_sets)
    requested = [i % 10 for i in range(10 * PER_DIGIT)]
    samples = model.sample(len(requested), seed=0, label=requested)
    classifier, _ = load_digit_cnn(config.train.data_root or None)
    scores = digit_scores(
        classifier, samples=samples, targets=test_sets, target_labels=test_labels, requested=requested
    )
    result = {"run": args.run, "model": config.to_dict()["model"], "beta": config.train.beta, **scores}
    result.update(steps=summary["step"], train_minutes=summary["train_seconds"] / 60)
    write_json(ROOT / "benchmarks/results/conditional_vae.json", result)
    m = config.model
    write_text(
        ROOT / "benchmarks/results/conditional_vae.md",
        f"# Conditional VAE: samples of the requested digit\n\n"
        f"Model: {m.encoder} encoder + {m.decoder} decoder, latent {m.latent_dim}, β = {config.train.beta}, "
        f"{summary['step']:,} steps ({summary['train_seconds'] / 60:.0f} min). Of {len(requested):,} prior "
        f"samples ({PER_DIGIT} per digit), **{scores['samples_as_requested']:.1%}** are classified as the "
        f"requested digit by setae's digit CNN (its accuracy on real test digits: "
        f"{scores['digit_classifier_acc']:.1%}); {scores['samples_confident']:.1%} get a class probability "
        f"above 0.9. Written by `python benchmarks/conditional_samples.py {args.run}`.\n",
    )
    columns = [[samples[digit + 10 * r] for r in range(8)] for digit in range(10)]
    plot_set_grid(
        columns,
        ROOT / "docs/images/conditional_samples.png",
        "conditional VAE: prior samples, one column per requested digit",
        [str(d) for d in range(10)],
    )
    print(json.dumps(scores))


if __name__ == "__main__":
    main()

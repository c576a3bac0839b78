"""GAN samples beside VAE samples, and their generation metrics side by side.

Train both at the same wall-clock budget (one at a time, on a quiet machine), evaluate, then compare:

    setae train --preset gan  --threads 1 --max-minutes 20 --run-dir runs/gan-20min
    setae train --preset blog --threads 1 --max-minutes 20 --point-refiner 0 --run-dir runs/vae-20min
    setae eval runs/gan-20min && setae eval runs/vae-20min
    python benchmarks/gan_vs_vae.py --gan runs/gan-20min --vae runs/vae-20min

Draws 16 samples of each (seed 0; the VAE from its default prior, the fitted mixture) into
docs/images/gan_vs_vae.png and prints a markdown table of both runs' metrics.json generation figures and
train_summary.json (steps, minutes, sets/s).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).parent.parent
FIGURES = ("gen_mmd", "gen_cov", "gen_1nna", "samples_confident", "samples_rarest_digit", "empty_samples")


def row(name: str, run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    cells = [f"{metrics[k]:.4f}" if k == "gen_mmd" else f"{metrics[k]:.3f}" for k in FIGURES]
    shares = " ".join(f"{100 * s:.0f}" for s in metrics["samples_digit_share"])
    minutes = summary["train_seconds"] / 60
    return (
        f"| {name} | {' | '.join(cells)} | {shares} | {summary['step']} | {minutes:.1f} | "
        f"{summary['sets_per_s']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gan", required=True, help="the GAN's run folder (objective gan)")
    parser.add_argument("--vae", required=True, help="the VAE's run folder")
    parser.add_argument("--num", type=int, default=16, help="samples of each (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs/images/gan_vs_vae.png"))
    args = parser.parse_args()
    import torch

    from setae.evaluation.plots import Frame, plot_sample_comparison
    from setae.training.checkpoint import load

    torch.set_num_threads(1)
    gan, vae = load(args.gan), load(args.vae)
    groups = {
        f"GAN ({Path(args.gan).name})": gan.sample(args.num, seed=args.seed),
        f"VAE ({Path(args.vae).name})": vae.sample(args.num, seed=args.seed),
    }
    print(plot_sample_comparison(groups, Path(args.out), frame=Frame.unit_square()))
    header = ["model", *FIGURES, "digit shares % (0-9)", "steps", "train min", "sets/s"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, run in (("GAN", Path(args.gan)), ("VAE", Path(args.vae))):
        if (run / "metrics.json").exists() and (run / "train_summary.json").exists():
            print(row(name, run))


if __name__ == "__main__":
    main()

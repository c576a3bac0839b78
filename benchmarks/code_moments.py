"""How well N(0, I) covers a VAE's codes, to second order: the aggregate posterior's moments on test digits.

    python benchmarks/code_moments.py NAME=RUN [NAME=RUN ...] [--test-sets 2000] [--out code_moments]

For each run, the posterior means and variances of the first TEST_SETS test sets give the mean m and the
covariance C of the aggregate posterior (1/N) Σ q(z | X) (setae.nn.aggregate_kl.mixture_moments). The table
has KL(N(m, C) ‖ N(0, I)), the smallest and largest eigenvalue of C and how many are below 0.5 (directions
that N(0, I) samples fill twice as widely as the codes do), beside the run's own `samples_confident_normal`
from its metrics.json when `setae eval` has written one, and the share of 1,000 codes drawn from N(m, C)
itself that decode to a confident digit (the digit CNN, p > 0.9): what N(0, I) samples would give if a
regulariser matched the first two moments exactly and changed nothing else (not for conditional models).
Results go to benchmarks/results/OUT.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tables import markdown_table

RESULTS = Path(__file__).parent / "results"
COLUMNS = (
    ("aggregate_kl", "KL(N(m, C) ‖ N(0, I)) (nats)", "{:.1f}"),
    ("eigenvalue_min", "smallest eigenvalue of C", "{:.3f}"),
    ("eigenvalue_max", "largest", "{:.2f}"),
    ("eigenvalues_below_half", "eigenvalues < 0.5", "{}"),
    ("samples_confident_normal", "N(0, I) samples confident", "{:.1%}"),
    ("samples_confident_moments", "N(m, C) samples confident", "{:.1%}"),
)
SAMPLES = 1000


def moments_row(run: Path, test_sets: int) -> dict:
    import torch

    from setae.datasets import SetBatch
    from setae.evaluation.evaluate import dataset_items
    from setae.nn.aggregate_kl import gaussian_kl_to_standard_normal, mixture_moments
    from setae.training.checkpoint import load_checkpoint
    from setae.training.data import make_test_set

    model, config, _, _ = load_checkpoint(str(run))
    sets, labels = dataset_items(make_test_set(config), test_sets)
    labels = labels if model.config.conditional else None
    parts = []
    with torch.no_grad():
        for i in range(0, len(sets), 500):
            chunk_labels = None if labels is None else labels[i : i + 500]
            parts.append(model.posterior(SetBatch.from_sets(sets[i : i + 500], chunk_labels)))
    mean, log_var = (torch.cat(p).double() for p in zip(*parts, strict=True))
    m, cov = mixture_moments(mean, log_var)
    eigenvalues = torch.linalg.eigvalsh(cov)
    metrics = run / "metrics.json"
    row = {
        "aggregate_kl": float(gaussian_kl_to_standard_normal(m, cov)),
        "eigenvalue_min": float(eigenvalues.min()),
        "eigenvalue_max": float(eigenvalues.max()),
        "eigenvalues_below_half": int((eigenvalues < 0.5).sum()),
        "test_sets": len(sets),
    }
    if metrics.exists():
        row["samples_confident_normal"] = json.loads(metrics.read_text()).get("samples_confident_normal")
    if not model.config.conditional:
        from setae.evaluation.digit_cnn import digit_scores, load_digit_cnn

        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(SAMPLES, len(m), generator=generator, dtype=torch.float64)
        z = m + noise @ torch.linalg.cholesky(cov).T
        classifier, _ = load_digit_cnn()
        scores = digit_scores(classifier, samples=model.decode(z.float(), seed=1))
        row["samples_confident_moments"] = scores["samples_confident"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER")
    parser.add_argument("--test-sets", type=int, default=2000)
    parser.add_argument("--out", default="code_moments")
    args = parser.parse_args()
    from setae.fileio import write_json, write_text

    rows = {}
    for item in args.runs:
        name, _, run = item.rpartition("=")  # a name may hold "=", a folder not
        rows[name] = {"run": run, **moments_row(Path(run), args.test_sets)}
    lines = [
        "# The aggregate posterior's moments against N(0, I)",
        "",
        f"On the first {args.test_sets} MNIST test digits; written by `python benchmarks/code_moments.py` "
        "(see its docstring). 'N(0, I) samples confident': the run's share of 1,000 prior samples the "
        "digit CNN gives some digit with p > 0.9; 'N(m, C) samples confident': the same share of 1,000 codes "
        "drawn from the Gaussian with the codes' mean and covariance.",
        "",
        *markdown_table(rows.items(), COLUMNS, first="run"),
    ]
    write_json(RESULTS / f"{args.out}.json", rows)
    write_text(RESULTS / f"{args.out}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sinkhorn loss against Chamfer, Hungarian and geomloss on one MNIST batch: time and accuracy, on the CPU.

    python benchmarks/sinkhorn.py [--repeats 5] [--reference-iterations 2000] [--mnist FOLDER]

Batch: 64 real MNIST digits (train + test) with sizes spread evenly over 100..342 (342 is the largest set),
padded to 342 points. Two targets for each digit: "near", the digit's points shuffled plus Gaussian noise of
0.02 per coordinate (a good reconstruction: Hungarian ~6e-4), and "far", another digit of the batch. Times
are forward + backward (gradient w.r.t. the target points) on 2 torch threads: median over --repeats rounds
after a warm-up round, the losses taking turns in each round so that they share the machine's load alike.
Values and gradients are checked against a converged reference: `sinkhorn_plan` in float64 with
--reference-iterations iterations. geomloss (`pip install geomloss`, not a setae dependency) is included
when importable. Writes benchmarks/results/sinkhorn.md; text from its "## Recommendation" line on is kept.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset

from setae.datasets.batch import SetBatch
from setae.datasets.mnist import MNIST_MAX_SET_SIZE, MNISTSets
from setae.nn.losses import (
    SINKHORN_EPSILON,
    SINKHORN_ITERATIONS,
    chamfer_loss,
    hungarian_loss,
    pairwise_sq_dist,
    sinkhorn_loss,
    sinkhorn_plan,
)

RESULTS = Path(__file__).parent / "results"
KEEP_FROM = "## Recommendation"
BATCH, MIN_SIZE, NOISE = 64, 100, 0.02
Loss = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # per-set values [batch]


def default_mnist() -> str | None:
    """$SETAE_DATA, else <repo>/../shared/data/mnist when it exists, else None (setae's cache/download)."""
    shared = Path(__file__).resolve().parents[2] / "shared/data/mnist"
    return os.environ.get("SETAE_DATA") or (str(shared) if shared.is_dir() else None)


def pick_digits(root: str | None) -> list[Tensor]:
    """BATCH digits whose sizes are spread evenly over MIN_SIZE..342, largest last."""
    splits = [MNISTSets(root, split) for split in ("train", "test")]
    sizes = np.concatenate([np.diff(ds.offsets) for ds in splits])
    order = np.argsort(sizes, kind="stable")
    targets = np.linspace(MIN_SIZE, MNIST_MAX_SET_SIZE, BATCH)
    pos = np.searchsorted(sizes[order], targets).clip(max=len(sizes) - 1)
    for k in range(BATCH - 2, -1, -1):  # distinct digits: the largest sizes are rare
        pos[k] = min(pos[k], pos[k + 1] - 1)
    digits = ConcatDataset(splits)
    return [digits[int(i)][0] for i in order[pos]]


def geomloss_sinkhorn(scaling: float) -> Loss | None:
    try:
        from geomloss import SamplesLoss
    except ImportError:
        return None
    # geomloss's cost for p=2 is |x - y|^2 / 2, so blur^2 = epsilon / 2 gives the same plan as ours; its value
    # (debias=False) is the entropic objective of that cost, doubled here to be in our units.
    solver = SamplesLoss(
        "sinkhorn",
        p=2,
        blur=math.sqrt(SINKHORN_EPSILON / 2),
        debias=False,
        scaling=scaling,
        backend="tensorized",
    )

    def loss(x: Tensor, y: Tensor, xm: Tensor, ym: Tensor) -> Tensor:
        a, b = (~xm).to(x.dtype), (~ym).to(y.dtype)
        return 2 * solver(a / a.sum(1, keepdim=True), x, b / b.sum(1, keepdim=True), y)

    return loss


def methods() -> dict[str, Loss | None]:
    table: dict[str, Loss | None] = {
        "chamfer": lambda x, y, xm, ym: chamfer_loss(x, y, xm, ym, reduction="none"),
        "hungarian": lambda x, y, xm, ym: hungarian_loss(x, y, xm, ym, reduction="none"),
    }
    for iterations in sorted({20, 30, SINKHORN_ITERATIONS, 100}):
        default = " (default)" if iterations == SINKHORN_ITERATIONS else ""
        table[f"setae sinkhorn, {iterations} iterations{default}"] = lambda x, y, xm, ym, k=iterations: (
            sinkhorn_loss(x, y, xm, ym, reduction="none", iterations=k)
        )
    for scaling in (0.5, 0.9):
        table[f"geomloss, scaling {scaling}"] = geomloss_sinkhorn(scaling)
    return table


def forward_backward(
    loss: Loss, x: Tensor, y: Tensor, xm: Tensor, ym: Tensor
) -> tuple[float, Tensor, Tensor]:
    """(ms, per-set values, gradient) of loss(x, y).mean() and its backward w.r.t. y."""
    target = y.clone().requires_grad_(True)
    started = time.perf_counter()
    values = loss(x, target, xm, ym)
    values.mean().backward()
    return 1000 * (time.perf_counter() - started), values.detach().double(), target.grad.double()


def reference(x: Tensor, y: Tensor, xm: Tensor, ym: Tensor, iterations: int) -> dict[str, Tensor | float]:
    """From a converged float64 plan P: its transport cost <P, C>, the entropic objective <P, C> + eps KL(P |
    a b) (what geomloss returns), the gradient of the mean over sets of either w.r.t. y (the same, by the
    envelope theorem), and the largest L1 error of P's row sums."""
    x, y = x.double(), y.double()
    cost = pairwise_sq_dist(x, y).masked_fill(xm.unsqueeze(2) | ym.unsqueeze(1), 0.0)
    plan = sinkhorn_plan(cost, xm, ym, iterations=iterations)
    a = (~xm).double() / (~xm).sum(1, keepdim=True)
    b = (~ym).double() / (~ym).sum(1, keepdim=True)
    kl = torch.where(plan > 0, plan * (plan / (a.unsqueeze(2) * b.unsqueeze(1))).log(), 0.0).sum((1, 2))
    transport = (plan * cost).sum((1, 2))
    # d/dy_j of sum_ij P_ij |x_i - y_j|^2 = 2 (sum_i P_ij) y_j - 2 sum_i P_ij x_i
    grad = 2 * (plan.sum(1).unsqueeze(2) * y - plan.transpose(1, 2) @ x) / len(x)
    return {
        "transport": transport,
        "entropic": transport + SINKHORN_EPSILON * kl,
        "grad": grad,
        "row_error": float((plan.sum(2) - a).abs().sum(1).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-iterations", type=int, default=2000)
    parser.add_argument("--mnist", default=default_mnist(), help="folder with the four MNIST files")
    args = parser.parse_args()
    torch.set_num_threads(2)
    digits = pick_digits(args.mnist)
    g = torch.Generator().manual_seed(0)
    near = [
        s[torch.randperm(len(s), generator=g)] + NOISE * torch.randn(len(s), 2, generator=g) for s in digits
    ]
    far = digits[7:] + digits[:7]
    x = SetBatch.from_sets(digits, pad_to=MNIST_MAX_SET_SIZE)
    sizes = x.sizes.tolist()
    table = methods()
    lines = [
        f"# Sinkhorn loss: time and accuracy ({platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)",
        "",
        f"Batch of {BATCH} MNIST digits, sizes {min(sizes)}..{max(sizes)} "
        f"(mean {statistics.mean(sizes):.0f}), padded to {MNIST_MAX_SET_SIZE}, float32, against targets "
        f"near (each digit shuffled, plus noise {NOISE}) and far (another digit); epsilon = "
        f"{SINKHORN_EPSILON:g}. Time: forward + backward (w.r.t. the targets) in ms, median (min) of "
        f"{args.repeats} rounds in which the losses take turns (1-minute load average at the start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs). Value: mean over sets. Errors against a "
        f"converged float64 Sinkhorn ({args.reference_iterations} iterations): value, relative, mean (max) "
        "over sets, of <P, C> for setae, of the entropic objective <P, C> + eps KL(P | a x b) for geomloss, "
        "which returns that (doubled: geomloss's cost is |x - y|^2 / 2, so it runs with blur = "
        "sqrt(eps / 2)); gradient, relative L2 over the batch (both have the converged plan's gradient as "
        "their limit).",
    ]
    skipped = [name for name, loss in table.items() if loss is None]
    if skipped:
        lines += ["", f"Not measured (geomloss is not installed): {', '.join(skipped)}."]
    for scenario, targets in (("near", near), ("far", far)):
        y = SetBatch.from_sets(targets, pad_to=MNIST_MAX_SET_SIZE)
        ref = reference(x.points, y.points, x.padding_mask, y.padding_mask, args.reference_iterations)
        lines += [
            "",
            f"## {scenario}: reference <P, C> {ref['transport'].mean():.4g}, entropic objective "
            f"{ref['entropic'].mean():.4g} (row sums' L1 error {ref['row_error']:.1e})",
            "",
            "| loss | time ms | value | value error | gradient error |",
            "|---|---:|---:|---:|---:|",
        ]
        # Round robin after one warm-up round, so that on a shared machine every loss sees the same load.
        measured = {name: loss for name, loss in table.items() if loss is not None}
        times: dict[str, list[float]] = {name: [] for name in measured}
        results: dict[str, tuple[Tensor, Tensor]] = {}
        for _ in range(args.repeats + 1):
            for name, loss in measured.items():
                ms, values, grad = forward_backward(loss, x.points, y.points, x.padding_mask, y.padding_mask)
                results[name] = (values, grad)
                times[name].append(ms)
        for name, (values, grad) in results.items():
            errors = " | "  # Chamfer and Hungarian are other losses, not approximations of this one
            if "sinkhorn" in name or "geomloss" in name:
                exact = ref["entropic" if "geomloss" in name else "transport"]
                relative = ((values - exact) / exact).abs()
                grad_error = float((grad - ref["grad"]).norm() / ref["grad"].norm())
                errors = f"{relative.mean():.1%} ({relative.max():.1%}) | {grad_error:.1%}"
            ms = times[name][1:]
            lines.append(
                f"| {name} | {statistics.median(ms):.0f} ({min(ms):.0f}) | {values.mean():.4g} | {errors} |"
            )
            print(scenario, lines[-1], flush=True)
    out = RESULTS / "sinkhorn.md"
    kept = out.read_text().partition(KEEP_FROM)[2] if out.exists() else ""
    RESULTS.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + (f"\n{KEEP_FROM}{kept}" if kept else ""))


if __name__ == "__main__":
    main()

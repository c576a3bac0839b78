"""Optimal matching backends on padded batches of cost matrices: time per batch, on the CPU.

    python benchmarks/matching.py [--sizes 100,200,342,500,1000] [--repeats 5] [--threads 2] [--quick]

Problems: for each padded size N, 64 pairs of sets of points uniform in [0, 1]^2, each set's size drawn
independently and uniformly from [ceil(0.6 N), N] and padded to N with points at the origin (as `SetBatch`
pads). The costs are their squared distances [64, N, N] in float32 from `pairwise_sq_dist`, as
`hungarian_loss` builds them; item b's problem is its valid block cost[b, :n_b, :m_b]. Backends:

- scipy-padded-loop: `linear_sum_assignment` on each full N x N matrix, as a naive loop over the padded
  batch does; the baseline of the speed-ups. It solves another problem, so its pairs are not checked (the
  results say how far they are from the optimum): every valid point left over when n_b != m_b must pair
  with padding at the origin, at its squared norm, so the points near the origin are left over rather than
  the ones that are costly to match. (When n_b = m_b it keeps the optimum here, since points in [0, 1]^2
  have |x - y|^2 <= |x|^2 + |y|^2.)
- scipy-padded-loop, constant padding: the same loop after setting every entry in a padded row or column to
  one constant c above every valid cost. This keeps the valid block's optimum: an assignment that pairs a
  valid row and a valid column each with padding can pair them together instead, changing its cost by
  C_rc - c < 0; so optimal assignments pair min(n_b, m_b) valid rows with valid columns, the rest costs
  c * (N - min(n_b, m_b)) for all of them, and its valid pairs are compared like the sub-block backends'.
- scipy-subblock-loop: the loop on each valid block only, in one thread; the reference for the costs.
- setae: `setae.nn.matching.hungarian_match` (valid blocks, on a thread pool).
- lapx-subblock-loop: `lap.lapjvx` on each valid block, in one thread, when lapx is installed (its
  `lapjvx_batch` takes one [batch, n, m] array, so it could only solve the padded problem).
- setae, cost on CUDA: `hungarian_match` on the cost batch on a GPU (so the copy to the host is timed),
  when CUDA is available.

Each backend's cost per item (the float64 costs summed over its valid pairs) must equal scipy-subblock-loop's
to 1e-9 relative, or the script stops. Times: solver calls and the conversions inside them, not building
the input arrays; median (min) of --repeats rounds after a warm-up round, the backends taking turns in each
round so that they share the machine's load alike. --threads sets torch's threads; setae's pool has one
thread per CPU the process may use (the heading gives both). Writes benchmarks/results/matching.json and .md
(not with --quick, which runs tiny sizes as a smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy.optimize import linear_sum_assignment

from setae.nn.losses import pairwise_sq_dist
from setae.nn.matching import Match, available_cpus, hungarian_match

RESULTS = Path(__file__).parent / "results"
BATCH, MIN_FRACTION, TOLERANCE = 64, 0.6, 1e-9
NAIVE = "scipy-padded-loop"
REFERENCE = "scipy-subblock-loop"


class Problem:
    """One padded batch: float32 costs [batch, N, N] (as a tensor, a NumPy view, and on the GPU when there is
    one), valid sizes, and the costs with every padded entry set to one constant above the valid ones."""

    def __init__(self, size: int, batch: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        low = math.ceil(MIN_FRACTION * size)
        self.n = torch.randint(low, size + 1, (batch,), generator=g)
        self.m = torch.randint(low, size + 1, (batch,), generator=g)
        positions = torch.arange(size)
        x_pad, y_pad = positions >= self.n[:, None], positions >= self.m[:, None]
        x = torch.rand(batch, size, 2, generator=g).masked_fill(x_pad[..., None], 0.0)
        y = torch.rand(batch, size, 2, generator=g).masked_fill(y_pad[..., None], 0.0)
        self.cost = pairwise_sq_dist(x, y)
        self.array = self.cost.numpy()
        padding = x_pad[:, :, None] | y_pad[:, None, :]
        above = float(self.cost.masked_fill(padding, 0.0).amax()) + 1.0
        self.constant_padded = self.cost.masked_fill(padding, above).numpy()
        self.exact = self.cost.double().numpy()
        self.cuda_cost = self.cost.cuda() if torch.cuda.is_available() else None
        self.sizes = list(zip(self.n.tolist(), self.m.tolist(), strict=True))

    def blocks(self) -> list[np.ndarray]:
        return [self.array[b, :n, :m] for b, (n, m) in enumerate(self.sizes)]

    def valid_pairs(self, matches: list[Match]) -> list[Match]:
        """Each item's pairs within its valid block."""
        kept = []
        for (rows, cols), (n, m) in zip(matches, self.sizes, strict=True):
            keep = (rows < n) & (cols < m)
            kept.append((rows[keep], cols[keep]))
        return kept

    def item_costs(self, matches: list[Match]) -> np.ndarray:
        return np.array([self.exact[b][rows, cols].sum() for b, (rows, cols) in enumerate(matches)])


def scipy_loop(matrices: list[np.ndarray]) -> list[Match]:
    return [linear_sum_assignment(c) for c in matrices]


def lapx_loop() -> Callable[[Problem], list[Match]] | str:
    try:
        import lap
    except ImportError:
        return "not installed"

    def solve(p: Problem) -> list[Match]:
        return [lap.lapjvx(c, extend_cost=True, return_cost=False) for c in p.blocks()]

    return solve


def backends() -> dict[str, Callable[[Problem], list[Match]] | str]:
    """Name -> solver returning each item's pairs, or the reason the backend is not measured."""
    return {
        NAIVE: lambda p: scipy_loop(list(p.array)),
        f"{NAIVE}, constant padding": lambda p: scipy_loop(list(p.constant_padded)),
        REFERENCE: lambda p: scipy_loop(p.blocks()),
        "setae": lambda p: hungarian_match(p.cost, p.n, p.m),
        "lapx-subblock-loop": lapx_loop(),
        "setae, cost on CUDA": (
            (lambda p: hungarian_match(p.cuda_cost, p.n, p.m)) if torch.cuda.is_available() else "no CUDA"
        ),
    }


def measure(p: Problem, solvers: dict[str, Callable[[Problem], list[Match]]], repeats: int) -> dict:
    """Times in ms per backend (warm-up round dropped), checked costs, and how far the naive loop's valid
    pairs are from the optimum."""
    times: dict[str, list[float]] = {name: [] for name in solvers}
    matches: dict[str, list[Match]] = {}
    for _ in range(repeats + 1):
        for name, solve in solvers.items():
            started = time.perf_counter()
            matches[name] = solve(p)
            times[name].append(1000 * (time.perf_counter() - started))
    reference = p.item_costs(matches[REFERENCE])
    errors = {}
    for name, found in matches.items():
        error = (p.item_costs(p.valid_pairs(found)) - reference) / reference
        if name == NAIVE:
            naive_excess = error
        else:
            errors[name] = float(np.abs(error).max())
            if errors[name] > TOLERANCE:
                raise AssertionError(f"{name} at N={p.cost.shape[1]}: cost differs by {errors[name]:.2e}")
    return {
        "ms": {name: ms[1:] for name, ms in times.items()},
        "max_relative_cost_error": errors,
        "naive_valid_pairs": sum(len(rows) for rows, _ in p.valid_pairs(matches[NAIVE])),
        "valid_pairs": sum(min(n, m) for n, m in p.sizes),
        "naive_items_off": int((np.abs(naive_excess) > TOLERANCE).sum()),
        "naive_mean_excess": float(naive_excess.mean()),
        "naive_max_excess": float(naive_excess.max()),
        "mean_valid_size": float(torch.cat([p.n, p.m]).double().mean()),
    }


def table(rows: dict[int, dict], skipped: dict[str, str]) -> list[str]:
    sizes = list(rows)
    lines = [
        "| backend | " + " | ".join(f"N = {n}" for n in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name in rows[sizes[0]]["ms"]:
        cells = []
        for n in sizes:
            ms = rows[n]["ms"]
            speedup = statistics.median(ms[NAIVE]) / statistics.median(ms[name])
            cells.append(f"{statistics.median(ms[name]):.1f} ({min(ms[name]):.1f}), {speedup:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, reason in skipped.items():
        lines.append(f"| {name} | " + " | ".join([reason] * len(sizes)) + " |")
    naive = "; ".join(
        f"N = {n}: {r['naive_items_off']} items, {r['naive_valid_pairs']} of {r['valid_pairs']} pairs, "
        f"{100 * r['naive_mean_excess']:.2f}% ({100 * r['naive_max_excess']:.2f}%)"
        for n, r in rows.items()
    )
    errors = max(e for r in rows.values() for e in r["max_relative_cost_error"].values())
    return lines + [
        "",
        f"Costs: every other backend's cost per item equals {REFERENCE}'s to {errors:.1e} relative (at "
        f"most). {NAIVE} solves another problem; per N, the items on which its valid pairs are not optimal, "
        "its valid-to-valid pairs against the optimum's sum of min(n, m), and the mean (max) relative excess "
        f"of its valid pairs' cost over the optimum: {naive}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,200,342,500,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 30, batch 8, 1 repeat; no files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [10, 30] if args.quick else [int(s) for s in args.sizes.split(",")]
    batch, repeats = (8, 1) if args.quick else (BATCH, args.repeats)
    available = backends()
    solvers = {name: solve for name, solve in available.items() if not isinstance(solve, str)}
    skipped = {name: reason for name, reason in available.items() if isinstance(reason, str)}
    load = os.getloadavg()[0]
    rows = {}
    for size in sizes:
        rows[size] = measure(Problem(size, batch, seed=size), solvers, repeats)
        print(
            f"N = {size}: "
            + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in rows[size]["ms"].items())
        )
    cpu = platform.processor() or platform.machine()
    machine = (
        f"{cpu}, {available_cpus()} CPUs, torch {torch.__version__}, scipy {scipy.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    lines = [
        f"# Matching backends: time per batch ({machine})",
        "",
        f"`python benchmarks/matching.py`: {batch} pairs of random 2-D sets per batch, each set's size "
        f"uniform in [ceil({MIN_FRACTION} N), N], padded to N; squared-distance costs in float32 (see the "
        f"script's docstring for the backends). Cell: time per batch in ms, median (min) of {repeats} "
        f"rounds, and the speed-up over {NAIVE}. 1-minute load average at the start: {load:.1f}.",
        "",
        *table(rows, skipped),
    ]
    print("\n".join(lines))
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    result = {"machine": machine, "batch": batch, "load_average": load, "skipped": skipped, "sizes": rows}
    (RESULTS / "matching.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "matching.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

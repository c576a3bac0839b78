"""Cost against set size N: forward + backward time and peak memory of set encoders and losses, on the CPU.

    python benchmarks/scaling.py [--sizes 64,128,256,512,1024,2048,4096] [--batch 8] [--threads 2] [--quick]

Curves, each on a batch of --batch sets of N points uniform in [0, 1]^2 (no padding, but an all-False
padding mask, as training passes one):
- encoders: a linear embedding 2 -> 64, then 2 SAB layers or 2 ISAB layers with 16 inducing points
  (`setae.nn.attention.set_attention_stack`, dim 64, 4 heads); backward of the mean square of the output.
- losses: `chamfer_loss`, `hungarian_loss` and `sinkhorn_loss` (its defaults) between two random sets of N
  points; backward w.r.t. the first.

Each curve runs in its own subprocess, sizes in increasing order, with --threads torch threads (setae's
matching pool has one thread per CPU the process may use) and OMP_WAIT_POLICY=PASSIVE unless it is set:
with OpenMP's default spin-waiting, on a machine shared with other jobs, a 75 ms Sinkhorn call on 2 threads
took 0.2-1.8 s, each parallel op waiting for a time slice. Time: the fastest of the calls made in ~1 s (the
least disturbed by other jobs on the machine), at least --repeats of them unless they take over ~3 s, and at
least one; after a warm-up call unless the previous size took over 1 s. Memory: the process's peak RSS after
the size (sizes grow, so it is that size's peak; it includes the interpreter and torch: the baseline). A
size is skipped, with the sizes above it, when the two before it predict more than --max-seconds or
--max-gb: the last time, and the last peak above the baseline, times the growth since the size before,
clipped to [1, 8]. Slope: a least-squares fit of log time against log N over the upper half of the sizes
measured; last: the slope over the last doubling measured. Writes benchmarks/results/scaling.json, .md and
.png (not with --quick, a smoke test on tiny sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from setae.nn import losses
from setae.nn.attention import set_attention_stack
from setae.nn.matching import available_cpus

RESULTS = Path(__file__).parent / "results"
ENCODERS = {"SAB x2": 0, "ISAB x2 (16 inducing)": 16}
LOSSES = ("chamfer", "hungarian", "sinkhorn")
DIM, HEADS, LAYERS = 64, 4, 2
MIN_SECONDS, MAX_SECONDS = 1.0, 3.0  # time spent on the calls of one size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_for(curve: str, size: int, batch: int) -> Callable[[], None]:
    """One forward + backward of `curve` on fresh random sets of `size` points."""
    torch.manual_seed(size)
    x, y = torch.rand(batch, size, 2), torch.rand(batch, size, 2)
    mask = torch.zeros(batch, size, dtype=torch.bool)
    if curve in ENCODERS:
        embed = torch.nn.Linear(2, DIM)
        layers = set_attention_stack(DIM, HEADS, LAYERS, ENCODERS[curve])

        def step() -> None:
            h = embed(x)
            for layer in layers:
                h = layer(h, mask)
            h.square().mean().backward()

        return step
    loss = getattr(losses, f"{curve}_loss")
    x.requires_grad_(True)
    return lambda: loss(x, y, mask, mask).backward()


def run_curve(
    curve: str, sizes: list[int], batch: int, repeats: int, max_seconds: float, max_gb: float
) -> dict:
    """Times (s) and peak RSS (MB) per size in this process, or why a size was skipped."""
    baseline = peak_rss_mb()
    points: list[dict] = []
    for size in sizes:
        if len(points) >= 2:
            seconds, gb = predict(points, baseline)
            if seconds > max_seconds or gb > max_gb:
                points.append({"size": size, "skipped": f"skip (~{seconds:.2g} s, {gb:.2g} GB)"})
                break
        step = step_for(curve, size, batch)
        if not points or points[-1]["seconds"] < 1.0:
            step()  # warm-up
        times: list[float] = []
        while not times or sum(times) < MAX_SECONDS and (len(times) < repeats or sum(times) < MIN_SECONDS):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        seconds = min(times)
        points.append({"size": size, "seconds": seconds, "calls_s": times, "peak_rss_mb": peak_rss_mb()})
        print(f"{curve:24s} N = {size:5d}: {seconds:8.3f} s", file=sys.stderr, flush=True)
    return {"curve": curve, "baseline_rss_mb": baseline, "points": points}


def predict(points: list[dict], baseline: float) -> tuple[float, float]:
    """Time (s) and peak RSS (GB) at the next size: the last size's, times the growth from the size before
    (for memory, of the part above the baseline), clipped to [1, 8]."""
    before, last = points[-2], points[-1]

    def growth(old: float, new: float) -> float:
        return min(max(new / old, 1.0), 8.0) if old > 0 else 8.0

    extra_before, extra_last = before["peak_rss_mb"] - baseline, last["peak_rss_mb"] - baseline
    seconds = last["seconds"] * growth(before["seconds"], last["seconds"])
    return seconds, (baseline + extra_last * growth(extra_before, extra_last)) / 1024


def slopes(points: list[dict]) -> tuple[float | None, float | None]:
    """Least-squares slope of log time against log N over the upper half of the measured sizes, and the
    slope between the last two."""
    measured = [p for p in points if "seconds" in p]
    upper = measured[len(measured) // 2 :]
    if len(upper) < 2:
        return None, None
    n, t = np.log([p["size"] for p in upper]), np.log([p["seconds"] for p in upper])
    return float(np.polyfit(n, t, 1)[0]), float((t[-1] - t[-2]) / (n[-1] - n[-2]))


def table(results: list[dict], sizes: list[int], key: str, fmt: Callable[[float], str]) -> list[str]:
    """One row per curve, one column per size; the time table (key "seconds") adds the slopes."""
    timed = key == "seconds"
    extra = [" slope |", " last |"] if timed else []
    lines = [
        "| curve | " + " | ".join(f"N = {n}" for n in sizes) + " |" + "".join(extra),
        "|---|" + "---:|" * (len(sizes) + len(extra)),
    ]
    for r in results:
        by_size = {p["size"]: p for p in r["points"]}
        cells = []
        for n in sizes:
            p = by_size.get(n, {})
            cells.append(fmt(p[key]) if key in p else p.get("skipped", ""))
        if timed:
            cells += ["" if r[k] is None else f"{r[k]:.2f}" for k in ("slope", "last_slope")]
        lines.append(f"| {r['curve']} | " + " | ".join(cells) + " |")
    return lines


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref_sizes = sorted({p["size"] for r in results for p in r["points"] if "seconds" in p})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    panels = (("Encoders (2 layers, dim 64, 4 heads)", list(ENCODERS)), ("Losses", list(LOSSES)))
    for ax, (title, curves) in zip(axes, panels, strict=True):
        firsts = []
        for r in results:
            if r["curve"] in curves:
                measured = [p for p in r["points"] if "seconds" in p]
                n, t = [p["size"] for p in measured], [p["seconds"] for p in measured]
                fitted = "" if r["slope"] is None else f" (slope {r['slope']:.2f})"
                ax.plot(n, t, marker="o", label=r["curve"] + fitted)
                firsts.append((n[0], t[0]))
        n0 = min(n for n, _ in firsts)
        t0 = float(np.exp(np.mean(np.log([t for _, t in firsts]))))
        ref = np.array([n0, max(ref_sizes)])
        for power, style in ((1, ":"), (2, "--")):
            ax.plot(ref, t0 * (ref / n0) ** power, "k" + style, linewidth=1, label=f"slope {power}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ref_sizes, [str(n) for n in ref_sizes])
        ax.set(title=title, xlabel="set size N")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("forward + backward time per batch (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="64,128,256,512,1024,2048,4096")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--max-gb", type=float, default=6.0)
    parser.add_argument("--quick", action="store_true", help="sizes 16, 32, 64, batch 2; no files")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.batch, args.repeats = "16,32,64", 2, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.one:
        torch.set_num_threads(args.threads)
        curve = run_curve(args.one, sizes, args.batch, args.repeats, args.max_seconds, args.max_gb)
        print(json.dumps(curve))
        return
    load = os.getloadavg()[0]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    results = []
    for curve in [*ENCODERS, *LOSSES]:
        cmd = [sys.executable, __file__, "--one", curve, *sys.argv[1:]]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
        results.append(json.loads(out))
        results[-1]["slope"], results[-1]["last_slope"] = slopes(results[-1]["points"])
    cpu = platform.processor() or platform.machine()
    machine = (
        f"{cpu}, {available_cpus()} CPUs, torch {torch.__version__}, {args.threads} threads, "
        f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}"
    )
    lines = [
        f"# Cost against set size ({machine})",
        "",
        f"`python benchmarks/scaling.py`: forward + backward on a batch of {args.batch} sets of N random 2-D "
        "points (see the script's docstring). Slope: least-squares fit of log time against log N over the "
        "upper half of the sizes measured; last: the slope over the last doubling. Skipped: predicted above "
        f"{args.max_seconds:g} s or {args.max_gb:g} GB. 1-minute load average at the start: {load:.1f}. "
        "Plot: scaling.png.",
        "",
        "## Time per batch (ms, fastest call)",
        "",
        *table(results, sizes, "seconds", lambda s: f"{1000 * s:.1f}"),
        "",
        "## Peak RSS of the process (MB)",
        "",
        *table(results, sizes, "peak_rss_mb", lambda mb: f"{mb:.0f}"),
        "",
        "Baseline RSS before the first size (interpreter, torch, setae): "
        + ", ".join(f"{r['curve']} {r['baseline_rss_mb']:.0f} MB" for r in results)
        + ".",
    ]
    print("\n".join(lines))
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    result = {"machine": machine, "batch": args.batch, "load_average": load, "curves": results}
    (RESULTS / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "scaling.md").write_text("\n".join(lines) + "\n")
    plot(results, RESULTS / "scaling.png")


if __name__ == "__main__":
    main()

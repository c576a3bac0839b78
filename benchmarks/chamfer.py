"""Chamfer loss on the CPU: the dense [batch, n, m] formulation against the chunked nearest-neighbour kernel.

    python benchmarks/chamfer.py [--repeats 3] [--max-dense-gb 6]

Inputs: float32 sets of uniform points in [0, 1]^2, sizes spread evenly over n/2..n and padded to n, against
sets of the same kind (m = n); x requires grad. Each case (formulation, batch, n, forward or forward +
backward) runs in a fresh subprocess on 2 torch threads: one warm-up call, then --repeats timed calls (ms,
median and min). Peak memory: the process's peak resident set size (VmHWM, reset through
/proc/self/clear_refs just before the warm-up) minus its resident set size at that moment, i.e. the most
memory the calls held at once beyond the inputs (Linux). "dense" is the formulation `chamfer_loss` had
before the kernel (autograd through amin over the full masked matrix), skipped where its peak, at about
DENSE_BYTES = 52 bytes per distance, would exceed --max-dense-gb; the table says whether the kernel's
per-set values are bit-identical to its. A second table times the kernel's forward at several chunk
sizes, on 1 and 2 threads. Writes benchmarks/results/chamfer.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from setae.nn.losses import CHAMFER_CHUNK_ELEMENTS, chamfer_loss, pairwise_sq_dist

RESULTS = Path(__file__).parent / "results"
THREADS = 2
SIZES = [(64, 64), (64, 342), (64, 1024), (16, 4096), (4, 4096)]  # (batch, n)
SWEEP = (64, 1024, [2**20, 2**22, 2**24])  # batch, n, chunk sizes of the forward-only sweep
# Peak of the dense forward + backward per distance: 26 to 51 bytes measured (float32), rounded up.
DENSE_BYTES = 52


def dense_chamfer(x, y, xm, ym):
    """The old formulation: [batch] Chamfer distances through amin over the whole masked matrix."""
    dist = pairwise_sq_dist(x, y).masked_fill(xm.unsqueeze(2) | ym.unsqueeze(1), float("inf"))
    n, m = (~xm).sum(1), (~ym).sum(1)
    x_term = torch.where(~xm & (m > 0).unsqueeze(1), dist.amin(2), 0.0).sum(1) / n.clamp(min=1)
    y_term = torch.where(~ym & (n > 0).unsqueeze(1), dist.amin(1), 0.0).sum(1) / m.clamp(min=1)
    return x_term + y_term


def memory_kb() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) for key in ("VmRSS", "VmHWM")}


def measure(case: dict, repeats: int) -> dict:
    torch.set_num_threads(case["threads"])
    g = torch.Generator().manual_seed(0)
    batch, n = case["batch"], case["n"]
    sizes = torch.linspace(n // 2, n, batch).round().long()
    mask = torch.arange(n) >= sizes.unsqueeze(1)
    x = torch.rand(batch, n, 2, generator=g).requires_grad_(True)
    y = torch.rand(batch, n, 2, generator=g)
    ym = mask[torch.randperm(batch, generator=g)]
    if case["method"] == "dense":
        loss = dense_chamfer
    else:
        chunk = case["chunk"]

        def loss(x, y, xm, ym):
            return chamfer_loss(x, y, xm, ym, reduction="none", chunk_elements=chunk)

    def call():
        values = loss(x, y, mask, ym)
        if case["backward"]:
            values.mean().backward()
            x.grad = None
        return values.detach()

    Path("/proc/self/clear_refs").write_text("5")
    before = memory_kb()["VmRSS"]
    values = call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return {
        **case,
        "ms_median": statistics.median(times),
        "ms_min": min(times),
        "peak_mb": (memory_kb()["VmHWM"] - before) / 1024,
        "values": values.tolist(),
    }


def run_case(case: dict, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps(case), "--repeats", str(repeats)]
    row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    pass_ = ("fwd+bwd" if case["backward"] else "fwd") + f", {case['threads']} thr"
    print(
        f"{case['method']:6s} {case['batch']:3d} x {case['n']:5d} {pass_:14s} {row['ms_median']:9.1f} ms "
        f"{row['peak_mb']:8.1f} MB",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-dense-gb", type=float, default=6.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one), args.repeats)))
        return
    load = os.getloadavg()[0]
    rows = {}
    for batch, n in SIZES:
        for method in ("dense", "kernel"):
            if method == "dense" and DENSE_BYTES * batch * n * n > args.max_dense_gb * 1e9:
                continue
            for backward in (False, True):
                case = {"method": method, "batch": batch, "n": n, "backward": backward, "threads": THREADS}
                rows[method, batch, n, backward] = run_case(
                    {**case, "chunk": CHAMFER_CHUNK_ELEMENTS}, args.repeats
                )
    batch, n, chunks = SWEEP
    sweep = [
        run_case(
            {"method": "kernel", "batch": batch, "n": n, "backward": False, "threads": t, "chunk": c},
            args.repeats,
        )
        for c in chunks
        for t in (1, THREADS)
    ]
    for (method, batch, n, backward), row in rows.items():
        dense = rows.get(("dense", batch, n, backward))
        if method == "kernel":
            row["identical_to_dense"] = None if dense is None else row["values"] == dense["values"]
    for row in [*rows.values(), *sweep]:
        del row["values"]
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, torch {torch.__version__}, {THREADS} threads"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chamfer.json").write_text(
        json.dumps(
            {"machine": machine, "load_average": load, "rows": list(rows.values()), "sweep": sweep}, indent=2
        )
        + "\n"
    )

    def ms(row: dict | None) -> str:
        return "skipped" if row is None else f"{row['ms_median']:.1f} ({row['ms_min']:.1f})"

    def peak(row: dict | None) -> str:
        return "skipped" if row is None else f"{row['peak_mb']:.0f}"

    lines = [
        f"# Chamfer loss: dense against the chunked kernel ({machine})",
        "",
        f"float32 sets in [0, 1]^2, sizes n/2..n padded to n, m = n; the kernel in chunks of "
        f"{CHAMFER_CHUNK_ELEMENTS:,} distances. Time: ms, median (min) of {args.repeats} calls after a "
        "warm-up call; peak: MB of resident memory above the inputs, in a fresh process per cell. 1-minute "
        f"load average at the start: {load:.1f} on {os.cpu_count()} CPUs. Values: whether the kernel's "
        "per-set values are bit-identical to the dense ones.",
        "",
        "| batch | n | pass | dense ms | kernel ms | dense peak MB | kernel peak MB | values |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for batch, n in SIZES:
        for backward in (False, True):
            dense, kernel = (rows.get((method, batch, n, backward)) for method in ("dense", "kernel"))
            same = {None: "-", True: "identical", False: "DIFFER"}[kernel["identical_to_dense"]]
            lines.append(
                f"| {batch} | {n} | {'fwd+bwd' if backward else 'fwd'} | {ms(dense)} | {ms(kernel)} | "
                f"{peak(dense)} | {peak(kernel)} | {same} |"
            )
    batch, n, _ = SWEEP
    lines += [
        "",
        f"## Chunk size: kernel forward at batch {batch}, n = m = {n}",
        "",
        f"| chunk_elements | 1 thread ms | {THREADS} threads ms | peak MB ({THREADS} threads) |",
        "|---:|---:|---:|---:|",
    ]
    for one, two in zip(sweep[::2], sweep[1::2], strict=True):
        lines.append(f"| 2^{one['chunk'].bit_length() - 1} | {ms(one)} | {ms(two)} | {peak(two)} |")
    (RESULTS / "chamfer.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Training throughput, peak memory and model FLOP utilisation of every set model, on real MNIST batches.

    python benchmarks/train_throughput.py [--seconds 15] [--threads 2] [--rows demo dspn-reference]

Rows: every row of the comparison table (`benchmarks/compare.py`: the demo configuration changed only as
the row's name says, batch 64), the `long` preset's model, and `dspn-reference`: the DSPN paper's MNIST
configuration (Deep Sets set embedding of width 256, latent 64, 10 inner steps, inner rate 800 on the
batch-mean loss = 25 per set, batch 32, every set refined as 342 elements with presence).

Each row runs in a fresh subprocess (so peak RSS is its own): 2 warm-up optimiser steps, then timed steps
until `--seconds` have passed (at least 3), batches drawn as training draws them. FLOPs of one step
(forward + backward) are counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and
attention, the standard MFU convention); MFU = FLOPs per second / the machine's fp32 matmul throughput,
measured in the same run (4096² × 4096² products). Writes benchmarks/results/train_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import ROWS, cpu_name  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DSPN_REFERENCE = {
    "encoder": "deepsets",
    "encoder_dim": 256,
    "deepsets_pool": "sum",
    "decoder": "dspn",
    "decoder_dim": 256,
    "decoder_layers": 2,
    "decoder_steps": 10,
    "decoder_inner_lr": 25.0,
    "latent_dim": 64,
}
LONG = {"encoder_dim": 256, "decoder_dim": 256, "encoder_layers": 3, "decoder_layers": 4}
# name -> (model overrides, train overrides) of the demo configuration
CONFIGS: dict[str, tuple[dict, dict]] = {
    "demo": ({}, {}),
    **{name: (model, {}) for name, model in ROWS.items()},
    "settransformer+tspn (chamfer), size-bucketed batches": (
        ROWS["settransformer+tspn (chamfer)"],
        {"bucket_batches": 32},
    ),
    "dspn-reference": (DSPN_REFERENCE, {"batch_size": 32}),
    "long-preset-model": (LONG, {}),
}


def matmul_flops_per_second(size: int = 4096, repeats: int = 5) -> float:
    """fp32 matrix-product throughput of this process's threads: the MFU denominator."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def measure(name: str, seconds: float, threads: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from setae.models import SetAutoencoder
    from setae.training.config import resolve_config
    from setae.training.data import make_datasets, resolve_from_data, training_split
    from setae.training.engine import batch_indices

    torch.set_num_threads(threads)
    model_overrides, train_overrides = CONFIGS[name]
    config = resolve_config("demo", overrides={"model": model_overrides, "train": train_overrides})
    t = config.train
    torch.manual_seed(0)
    full = training_split(config)
    resolve_from_data(config, full)
    train_set, _ = make_datasets(config, full)
    model = SetAutoencoder(config.model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(index: int):
        batch = train_set.batch(
            batch_indices(len(train_set), t.batch_size, 0, index, train_set.sizes, t.bucket_batches)
        )
        terms = model(batch)
        loss = (terms["recon"] + terms["size"] + terms["kl"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return batch

    for index in range(2):
        step(index)
    counter = FlopCounterMode(display=False)
    with counter:
        step(2)
    flops = counter.get_total_flops()
    timed, sets, points, started = 0, 0, 0, time.perf_counter()
    while timed < 3 or time.perf_counter() - started < seconds:
        batch = step(3 + timed)
        timed, sets, points = timed + 1, sets + len(batch), points + int(batch.sizes.sum())
    elapsed = time.perf_counter() - started
    return {
        "config": name,
        "overrides": {"model": model_overrides, "train": train_overrides},
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": t.batch_size,
        "steps": timed,
        "sets_per_s": sets / elapsed,
        "points_per_s": points / elapsed,
        "flops_per_step": flops,
        "flops_per_s": flops * timed / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def write_results(rows: list[dict], peak: float, threads: int) -> None:
    import torch

    from setae.fileio import write_json, write_text

    machine = f"{cpu_name()} ({platform.machine()}), torch {torch.__version__}, {threads} threads"
    for row in rows:
        row["mfu"] = row["flops_per_s"] / peak
    summary = {"machine": machine, "matmul_flops_per_s": peak, "rows": rows}
    write_json(RESULTS / "train_throughput.json", summary)
    lines = [
        f"# Training throughput on MNIST pixel sets ({machine})",
        "",
        f"fp32 matmul throughput measured in the same run: {peak / 1e9:.0f} GFLOP/s. MFU = counted FLOPs "
        "of a training step (matrix products and attention) per second / that throughput. Written by "
        "`python benchmarks/train_throughput.py`.",
        "",
        "| config | parameters | batch | sets/s | points/s | GFLOP/step | MFU | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['parameters']:,} | {r['batch_size']} | {r['sets_per_s']:.1f} | "
            f"{r['points_per_s']:,.0f} | {r['flops_per_step'] / 1e9:.2f} | {r['mfu']:.1%} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    write_text(RESULTS / "train_throughput.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="timed seconds per row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", nargs="+", default=list(CONFIGS), help="row names (default: all)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, args.threads)))
        return
    import torch

    names = args.rows
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown row(s) {unknown}; rows: {', '.join(CONFIGS)}")
    torch.set_num_threads(args.threads)
    peak = matmul_flops_per_second()
    print(f"fp32 matmul: {peak / 1e9:.0f} GFLOP/s on {args.threads} threads")
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--one", name, "--seconds", str(args.seconds)]
        command += ["--threads", str(args.threads)]
        rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
        r = rows[-1]
        print(
            f"{name:40s} {r['sets_per_s']:7.1f} sets/s  {r['flops_per_s'] / peak:6.1%} MFU  "
            f"peak RSS {r['peak_rss_mb']:6.0f} MB"
        )
    write_results(rows, peak, args.threads)


if __name__ == "__main__":
    main()

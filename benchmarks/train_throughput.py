"""Training throughput and peak memory of set autoencoders on real MNIST batches.

    python benchmarks/train_throughput.py [--steps 30] [--configs demo,hungarian,deepsets-mlp]

Each configuration runs in a fresh subprocess (so peak RSS is its own): `--warmup` steps, then `--steps`
timed optimiser steps at batch size 64 drawn exactly as training draws them. Writes
benchmarks/results/train_throughput.json and .md.
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

CONFIGS = {
    "demo": {},
    "demo-hungarian": {"loss": "hungarian"},
    "deepsets-mlp": {"encoder": "deepsets", "decoder": "mlp"},
    "long-preset-model": {"encoder_dim": 256, "decoder_dim": 256, "encoder_layers": 3, "decoder_layers": 4},
}
RESULTS = Path(__file__).parent / "results"


def measure(name: str, steps: int, warmup: int) -> dict:
    import torch

    from setae.datasets import collate_sets
    from setae.training.config import resolve_config
    from setae.training.engine import batch_indices, make_datasets

    config = resolve_config("demo", overrides={"model": CONFIGS[name]})
    from setae.models import SetAutoencoder

    torch.manual_seed(0)
    train_set, _ = make_datasets(config)
    model = SetAutoencoder(config.model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = config.train
    seconds, sets, points = 0.0, 0, 0
    for step in range(warmup + steps):
        batch = collate_sets(
            [train_set[int(i)] for i in batch_indices(len(train_set), t.batch_size, 0, step)]
        )
        started = time.perf_counter()
        terms = model(batch)
        loss = (terms["recon"] + terms["size"] + terms["kl"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= warmup:
            seconds += time.perf_counter() - started
            sets += len(batch)
            points += int(batch.sizes.sum())
    return {
        "config": name,
        "overrides": CONFIGS[name],
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": t.batch_size,
        "steps": steps,
        "sets_per_s": sets / seconds,
        "points_per_s": points / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.warmup)))
        return
    rows = []
    for name in args.configs.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
        ]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        print(f"{name:20s} {rows[-1]['sets_per_s']:7.1f} sets/s  peak RSS {rows[-1]['peak_rss_mb']:6.0f} MB")
    import torch

    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, torch {torch.__version__}, {rows[0]['threads']} threads"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        f"# Training throughput on MNIST pixel sets ({machine})",
        "",
        "| config | parameters | batch | sets/s | points/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['parameters']:,} | {r['batch_size']} | {r['sets_per_s']:.1f} | "
            f"{r['points_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    (RESULTS / "train_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""The speed targets, checked against the results files the other benchmarks wrote (run them first:
`make bench` runs everything, then this).

    python benchmarks/targets.py    # prints each target and writes benchmarks/results/targets.md

Targets (on the 2-core CPU): the DSPN reference configuration trains at ≥ 80 sets/s in less than the
authors' code's 2.9 GB; batched Hungarian ≥ 3× faster than the plain scipy loop over padded matrices at
size 342; the Set Transformer + TSPN model's training step (Chamfer) at ≥ 25% of the measured fp32 matmul
throughput; ISAB's time at most linear in N (log-log slope over the upper half of the sizes ≤ 1.1).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DSPN_REFERENCE = {"sets_per_s": 16.0, "peak_rss_mb": 2.9 * 1024}  # the authors' code, measured on this CPU


def main() -> None:
    throughput = {r["config"]: r for r in json.loads((RESULTS / "train_throughput.json").read_text())["rows"]}
    matching = json.loads((RESULTS / "matching.json").read_text())["sizes"]["342"]["ms"]
    curves = {c["curve"]: c for c in json.loads((RESULTS / "scaling.json").read_text())["curves"]}
    dspn, tspn = throughput["dspn-reference"], throughput["settransformer+tspn (chamfer)"]
    speedup = statistics.median(matching["scipy-padded-loop"]) / statistics.median(matching["setae"])
    isab = next(c for name, c in curves.items() if name.startswith("ISAB"))
    rows = [
        (
            "DSPN reference ≥ 80 sets/s",
            f"{dspn['sets_per_s']:.1f} sets/s ({dspn['sets_per_s'] / DSPN_REFERENCE['sets_per_s']:.1f}× the "
            "authors' 16)",
            dspn["sets_per_s"] >= 80,
        ),
        (
            "DSPN reference < 2.9 GB",
            f"{dspn['peak_rss_mb']:.0f} MB peak RSS",
            dspn["peak_rss_mb"] < DSPN_REFERENCE["peak_rss_mb"],
        ),
        ("Hungarian ≥ 3× the scipy loop at 342", f"{speedup:.2f}×", speedup >= 3),
        ("TSPN step ≥ 25% MFU", f"{tspn['mfu']:.1%}", tspn["mfu"] >= 0.25),
        ("ISAB at most linear in N", f"log-log slope {isab['slope']:.2f}", isab["slope"] <= 1.1),
    ]
    lines = ["# Speed targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in rows]
    (RESULTS / "targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Benchmark production.simulate: rows per second and peak memory.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_simulate.py                    # ~10M rows, both modes
    .venv/bin/python scripts/bench_simulate.py --rows 1000000     # smaller
    .venv/bin/python scripts/bench_simulate.py --mode iter        # streaming only

Modes:

* ``iter``: ``iter_days`` day by day (what a loader writing 10M+ rows does); only
  one day is in memory at a time;
* ``simulate``: ``simulate`` returns every row in one DataFrame.

``both`` runs each mode in its own subprocess, so that each peak RSS
(``resource.getrusage(...).ru_maxrss``) belongs to one mode. ``--tracemalloc``
also reports the peak of memory allocated through Python's allocators (numpy
included), at some cost in speed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import tracemalloc


def _sizes(rows: int) -> dict:
    # ~2 transactions per customer per day; keep the default 1000:300 customer/terminal ratio.
    n_days = 50
    n_customers = max(1, round(rows / (2 * n_days)))
    return {
        "n_customers": n_customers,
        "n_terminals": max(1, round(n_customers * 0.3)),
        "n_days": n_days,
    }


def _run(mode: str, params: dict, use_tracemalloc: bool) -> None:
    from production.simulate import iter_days, simulate

    if use_tracemalloc:
        tracemalloc.start()
    start = time.perf_counter()
    if mode == "iter":
        rows = frauds = 0
        for frame in iter_days(**params):
            rows += len(frame)
            frauds += int(frame["is_fraud"].sum())
    else:
        tx = simulate(**params).transactions
        rows, frauds = len(tx), int(tx["is_fraud"].sum())
    elapsed = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    line = (
        f"mode={mode:<8} rows={rows:,} fraud_rate={frauds / rows:.4f} time={elapsed:.1f}s "
        f"rows/s={rows / elapsed:,.0f} peak_rss={peak_rss_mb:,.0f} MB"
    )
    if use_tracemalloc:
        line += f" tracemalloc_peak={tracemalloc.get_traced_memory()[1] / 2**20:,.0f} MB"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="target number of rows")
    parser.add_argument("--mode", choices=("iter", "simulate", "both"), default="both")
    parser.add_argument("--drift", action="store_true", help="drift from the middle day on")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    parser.add_argument("--random-state", type=int, default=42)
    args = parser.parse_args()

    params = _sizes(args.rows) | {"random_state": args.random_state}
    if args.drift:
        import numpy as np

        middle = np.datetime64("2026-01-01") + params["n_days"] // 2
        params["drift_start"] = str(middle)
    if args.mode == "both":
        print(f"params={params}", flush=True)
        for mode in ("iter", "simulate"):
            command = [sys.executable, __file__, "--rows", str(args.rows), "--mode", mode]
            command += ["--random-state", str(args.random_state)]
            command += ["--drift"] * args.drift + ["--tracemalloc"] * args.tracemalloc
            subprocess.run(command, check=True)
    else:
        _run(args.mode, params, args.tracemalloc)


if __name__ == "__main__":
    main()

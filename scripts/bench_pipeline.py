"""Benchmark the silver/gold pipeline: pandas vs Dask on ~10M rows, and under a 4 GiB limit.

    python scripts/bench_pipeline.py [--rows 10000000] [--limit-rows 10000000] [--limit-gib 4]

1. Lands raw CSV files with export_raw_days (not timed; reused when already there):
   100,000 customers make ~200k transactions a day, so 10M rows are ~50 daily files.
2. Runs run_pipeline(load=False) -- bronze, silver, gold, rejected report -- once with
   backend="pandas" and once with backend="dask" (local threaded scheduler), each in its
   own subprocess, which reports its wall time, CPU time and peak RSS (getrusage
   RUSAGE_SELF: the kernel's high-water mark of the whole process, all threads). The 1-minute
   load average before and after each run is printed too: on a shared machine other work
   stretches wall times.
3. Runs both again on --limit-rows rows in subprocesses whose address space is capped at
   --limit-gib (resource.setrlimit(RLIMIT_AS)), and reports which succeeded.

Writes under <data_dir>/bench_pipeline (data_dir from get_settings(), gitignored) unless
--data-dir is given; the landed files are reused by later runs.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CUSTOMERS = 100_000
TERMINALS = 10_000
ROWS_PER_DAY = 2 * CUSTOMERS  # customers make ~2 transactions a day on average
START = "2026-01-01"


def _child(args) -> None:
    """Run one pipeline in this process (optionally capped) and print a JSON line."""
    if args.cap_gib:
        cap = int(args.cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import pandas as pd

    from production.data import run_pipeline

    end = pd.Timestamp(START) + pd.Timedelta(days=args.days - 1)
    started = time.perf_counter()
    report = run_pipeline(
        START, end, data_dir=args.data_dir, backend=args.backend, load=False, show_progress=False
    )
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mib": peak,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "raw_rows": report.total("raw_rows"),
                "silver_rows": report.total("silver_rows"),
                "gold_rows": report.total("gold_rows"),
                "rejected_rows": report.total("rejected_rows"),
            }
        )
    )


def _land(data_dir: Path, days: int) -> float:
    """Export ``days`` + 1 raw files (the extra day holds late rows) unless already there."""
    marker = data_dir / "raw" / "bench.json"
    params = {"customers": CUSTOMERS, "terminals": TERMINALS, "days": days + 1, "start": START}
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return 0.0
    from production.data import export_raw_days

    started = time.perf_counter()
    export_raw_days(
        n_customers=CUSTOMERS,
        n_terminals=TERMINALS,
        n_days=days + 1,
        start_date=START,
        data_dir=data_dir,
    )
    marker.write_text(json.dumps(params))
    return time.perf_counter() - started


def _run(backend: str, data_dir: Path, days: int, limit_gib: float | None = None) -> dict:
    """Run the pipeline in a fresh subprocess; return its figures or why it failed."""
    command = [sys.executable, __file__, "--child", backend, "--data-dir", str(data_dir)]
    command += ["--days", str(days)]
    if limit_gib:
        command += ["--cap-gib", str(limit_gib)]
    started, load = time.perf_counter(), os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    load = {"load_before": load, "load_after": os.getloadavg()[0]}  # others' work skews walls
    if done.returncode != 0:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:]
        return {
            "ok": False,
            "seconds": time.perf_counter() - started,
            "error": last[0][:160] if last else f"exit code {done.returncode}",
            **load,
        }
    return {"ok": True, **json.loads(done.stdout.strip().splitlines()[-1]), **load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--limit-rows", type=int, default=10_000_000)
    parser.add_argument("--limit-gib", type=float, default=4.0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--child", choices=["pandas", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cap-gib", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.backend = args.child
        _child(args)
        return

    from production.config import get_settings

    root = args.data_dir or get_settings().data_dir / "bench_pipeline"
    print(f"{os.cpu_count()} cores; data under {root}")
    results = []
    for rows, limit in ((args.rows, None), (args.limit_rows, args.limit_gib)):
        days = max(1, round(rows / ROWS_PER_DAY))
        data_dir = root / f"{days}d"
        landed = _land(data_dir, days)
        if landed:
            print(f"landed {days + 1} raw files in {landed:.0f} s (not timed)")
        for backend in ("pandas", "dask"):
            result = _run(backend, data_dir, days, limit)
            results.append({"days": days, "limit": limit, "backend": backend, **result})
            print(json.dumps(results[-1]))

    print(f"\n{'run':<36}{'rows':>12}{'seconds':>10}{'CPU s':>8}{'peak RSS':>12}{'load':>11}")
    for r in results:
        label = f"{r['backend']}" + (f", address space <= {r['limit']:g} GiB" if r["limit"] else "")
        if r["ok"]:
            print(
                f"{label:<36}{r['raw_rows']:>12,}{r['seconds']:>10.1f}{r['cpu_seconds']:>8.0f}"
                f"{r['peak_rss_mib'] / 1024:>8.2f} GiB{r['load_before']:>6.1f}-{r['load_after']:.1f}"
            )
        else:
            print(f"{label:<36}{'FAILED':>12}{r['seconds']:>10.1f}  {r['error']}")
    timed = {r["backend"]: r for r in results if r["limit"] is None and r["ok"]}
    if len(timed) == 2:
        pandas, dask = timed["pandas"], timed["dask"]
        print(
            f"\nDask vs pandas: {pandas['seconds'] / dask['seconds']:.2f}x the speed, "
            f"{dask['peak_rss_mib'] / pandas['peak_rss_mib']:.2f}x the peak memory"
        )


if __name__ == "__main__":
    main()

"""Load test of the online scoring API: throughput and latency of single-transaction scoring.

    python scripts/bench_serving.py                  # 2 uvicorn workers, default levels
    python scripts/bench_serving.py --workers 1 --requests 5000 --concurrency 1 8 32

What it does, all on 127.0.0.1 and in a throwaway folder (nothing is downloaded):

1. simulates 30 days of transactions into an embedded SQLite database, trains the course
   model (HistGradientBoosting on ``production.serving.compute_model_features``) and
   registers it as ``fraud-demo@champion`` in a local MLflow store;
2. starts ``uvicorn course.api:create_app --factory`` with 1-2 workers and waits for
   ``/ready``;
3. sends real HTTP/1.1 requests over keep-alive connections: *closed loop* at each
   concurrency level (C connections, each sending its next request when the previous answer
   arrives) with ``wrk`` when it is installed (``apt-get install wrk``; a C generator that
   leaves the CPU to the server) or else an asyncio generator (one process, raw sockets);
   then, always with the asyncio generator, *open loop* at a fixed
   rate (requests scheduled every 1/rate s; latency counted from the scheduled time, so a
   stalled server cannot hide its queue -- no coordinated omission; an overloaded server
   shows as fewer requests sent and a throughput below the rate);
4. prints one table: requests, errors, throughput, latency p50/p90/p99/max.

Every level is bounded by ``--requests`` and ``--seconds``. The generator shares the
machine's cores with the server: on 2 cores its own CPU time is part of the result.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(home: Path, random_state: int) -> list[bytes]:
    """Fill ``home`` with a database and a champion model; return request bodies."""
    os.environ["PRODUCTION_HOME"] = str(home)
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "PRODUCTION_DATA_DIR"):
        os.environ.pop(name, None)
    from sklearn.ensemble import HistGradientBoostingClassifier

    from production.db import write_table
    from production.features import build_pipeline, build_preprocessor
    from production.serving import (
        CATEGORICAL_FEATURES,
        FEATURE_COLUMNS,
        MODEL_NAME,
        NUMERIC_FEATURES,
        compute_model_features,
    )
    from production.simulate import simulate
    from production.tracking import log_run, register_model

    data = simulate(n_customers=1000, n_terminals=300, n_days=31, random_state=random_state)
    transactions = data.transactions
    last_day = transactions["tx_datetime"].dt.normalize().max()
    history = transactions[transactions["tx_datetime"] < last_day]
    future = transactions[transactions["tx_datetime"] >= last_day]
    write_table(history, "transactions")
    features = compute_model_features(history)
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES), scale=False),
        HistGradientBoostingClassifier(random_state=random_state),
    ).fit(features[list(FEATURE_COLUMNS)], history["is_fraud"])
    run_id = log_run("bench-serving", model=pipeline)
    register_model(run_id, MODEL_NAME, alias="champion")
    bodies = []
    for row in future.to_dict(orient="records"):
        payload = {
            "transaction_id": int(row["transaction_id"]),
            "tx_datetime": row["tx_datetime"].isoformat(),
            "customer_id": int(row["customer_id"]),
            "terminal_id": int(row["terminal_id"]),
            "amount": float(row["amount"]),
            "merchant_category": str(row["merchant_category"]),
            "channel": str(row["channel"]),
        }
        bodies.append(json.dumps(payload).encode())
    return bodies


def start_server(home: Path, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    """Start uvicorn on 127.0.0.1:port and wait until /ready answers 200."""
    env = {
        **os.environ,
        "PRODUCTION_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "MODEL_RELOAD_INTERVAL_S": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # as in deploy/Dockerfile: the workers add up their metrics in one folder
        "PROMETHEUS_MULTIPROC_DIR": str(home / "prometheus"),
    }
    shutil.rmtree(home / "prometheus", ignore_errors=True)
    (home / "prometheus").mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "course.api:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--http",
        "course.api:TcpNoDelayH11Protocol",
        "--log-level",
        "warning",
    ]
    log = log_path.open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(server)
    raise RuntimeError(f"uvicorn was not ready within 90 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (graceful), then SIGKILL after 10 s."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class _Connection:
    """One keep-alive HTTP/1.1 connection sending POST /predict."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> int:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def _closed_loop(port, bodies, concurrency, max_requests, max_seconds):
    connections = [_Connection(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies, errors = [], 0
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    async def user(connection):
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            status = await connection.post(bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - sent)
            errors += status != 200

    await asyncio.gather(*(user(c) for c in connections))
    elapsed = time.perf_counter() - started
    for c in connections:
        c.close()
    return latencies, errors, elapsed


async def _open_loop(port, bodies, rate, max_requests, max_seconds, connections=64):
    n_requests = int(min(max_requests, rate * max_seconds))
    pool = [_Connection(port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in pool))
    latencies, errors = [], 0
    counter = iter(range(n_requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    async def sender(connection):
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:  # overloaded: stop sending, report what was
                return
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await connection.post(bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - scheduled)
            errors += status != 200

    await asyncio.gather(*(sender(c) for c in pool))
    elapsed = time.perf_counter() - started
    for c in pool:
        c.close()
    return latencies, errors, elapsed


_WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _wrk_closed_loop(port, bodies_path: Path, concurrency, max_seconds) -> dict:
    """Closed loop with wrk (C, one thread): returns a result row (latencies in ms)."""
    script = bodies_path.with_suffix(".lua")
    script.write_text(_WRK_SCRIPT)
    duration = max(1, int(max_seconds))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        env={**os.environ, "BENCH_BODIES": str(bodies_path)},
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    n, errors, micros, p50, p90, p99, worst = (int(v) for v in line.split()[1:])
    return {
        "requests": n,
        "errors": errors,
        "req/s": n / (micros / 1e6),
        "p50 ms": p50 / 1e3,
        "p90 ms": p90 / 1e3,
        "p99 ms": p99 / 1e3,
        "max ms": worst / 1e3,
    }


def _row(label, workers, latencies, errors, elapsed) -> dict:
    ms = np.asarray(latencies) * 1000
    return {
        "load": label,
        "workers": workers,
        "requests": len(ms),
        "errors": errors,
        "req/s": len(ms) / elapsed,
        "p50 ms": np.percentile(ms, 50),
        "p90 ms": np.percentile(ms, 90),
        "p99 ms": np.percentile(ms, 99),
        "max ms": ms.max(),
    }


def _print_table(rows: list[dict]) -> None:
    header = f"{'load':<18}{'workers':>8}{'requests':>10}{'errors':>8}{'req/s':>9}"
    header += f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['load']:<18}{r['workers']:>8}{r['requests']:>10}{r['errors']:>8}"
            f"{r['req/s']:>9.0f}{r['p50 ms']:>9.2f}{r['p90 ms']:>9.2f}{r['p99 ms']:>9.2f}"
            f"{r['max ms']:>9.1f}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2], choices=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0])
    parser.add_argument("--requests", type=int, default=10_000, help="max per level (<= 20000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="max per level (<= 30)")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="closed-loop generator (auto: wrk when installed)",
    )
    args = parser.parse_args(argv)
    max_requests = min(args.requests, 20_000)
    max_seconds = min(args.seconds, 30.0)

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        bodies = prepare(home, args.random_state)
        print(f"prepared {len(bodies):,} request bodies in {time.perf_counter() - started:.1f} s")
        use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
        bodies_path = home / "bodies.jsonl"
        bodies_path.write_bytes(b"\n".join(bodies) + b"\n")
        for workers in args.workers:
            port = _free_port()
            server = start_server(home, port, workers, home / f"uvicorn-{workers}.log")
            try:
                asyncio.run(_closed_loop(port, bodies, 4, args.warmup, max_seconds))
                for concurrency in args.concurrency:
                    if use_wrk:
                        result = _wrk_closed_loop(port, bodies_path, concurrency, max_seconds)
                        rows.append({"load": f"wrk c={concurrency}", "workers": workers, **result})
                        continue
                    result = asyncio.run(
                        _closed_loop(port, bodies, concurrency, max_requests, max_seconds)
                    )
                    rows.append(_row(f"closed c={concurrency}", workers, *result))
                for rate in args.rates:
                    result = asyncio.run(_open_loop(port, bodies, rate, max_requests, max_seconds))
                    rows.append(_row(f"open {rate:.0f}/s", workers, *result))
            finally:
                stop_server(server)
    print()
    print(
        f"single-transaction POST /predict, {os.cpu_count()} CPU(s), generator on the same "
        f"host; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

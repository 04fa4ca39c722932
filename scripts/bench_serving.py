"""The scoring API on ONNX Runtime vs on plain scikit-learn vs ``mlflow models serve``.

    python scripts/bench_serving.py                  # 2 workers each, default levels
    python scripts/bench_serving.py --concurrency 1 8 --rates 500 --seconds 10

What it does, all on 127.0.0.1 and in a throwaway folder (nothing is downloaded):

1. simulates 31 days of transactions into an embedded SQLite database, trains the course
   model (HistGradientBoosting on ``production.features.compute_model_features``) and logs it
   twice in a local MLflow store: ``fraud-demo@champion`` with its checked ONNX graph
   (``production.serving.register_for_serving``) and ``fraud-demo-sklearn@champion``, the
   same pipeline without one (so the API serves it with scikit-learn);
2. for each target, starts the server (2 workers by default) and waits until it answers:
   ``uvicorn course.api:create_app --factory`` for both API targets (``POST /predict`` of a
   raw transaction: feature lookup, scoring, decision), and ``mlflow models serve`` of
   ``models:/fraud-demo@champion`` (``POST /invocations`` of the transaction's feature row:
   no feature lookup at all);
3. sends real HTTP/1.1 requests over keep-alive connections: *closed loop* at each
   concurrency level with ``wrk`` when it is installed (``apt-get install wrk``: a C
   generator that leaves the CPU to the servers) or else an asyncio generator (one Python
   process), then, always with the asyncio generator, *open loop* at a fixed rate (latency
   counted from the scheduled time: no coordinated omission);
4. prints one table (generator, requests, errors, req/s, p50/p90/p99/max) and the
   throughput ratios.

Every level is bounded by ``--seconds`` (and ``--requests`` for the asyncio generator). The
generator shares the machine's cores with the servers: on 2 cores its own CPU time is part
of the result (the asyncio generator alone takes about one core at 8 clients).
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


def prepare(home: Path, random_state: int) -> tuple[list[bytes], list[bytes]]:
    """Fill ``home`` with a database and two champions; return API and MLflow request bodies."""
    os.environ["PRODUCTION_HOME"] = str(home)
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "PRODUCTION_DATA_DIR"):  # embedded
        os.environ.pop(name, None)
    from sklearn.ensemble import HistGradientBoostingClassifier

    from production.db import write_table
    from production.features import (
        CATEGORICAL_FEATURES,
        FEATURE_COLUMNS,
        NUMERIC_FEATURES,
        build_pipeline,
        build_preprocessor,
        compute_model_features,
    )
    from production.serving import MODEL_NAME, register_for_serving
    from production.simulate import simulate
    from production.tracking import configure_tracking, log_run, register_model

    transactions = simulate(
        n_customers=1000, n_terminals=300, n_days=31, random_state=random_state
    ).transactions
    last_day = transactions["tx_datetime"].dt.normalize().max()
    history = transactions[transactions["tx_datetime"] < last_day]
    future = transactions[transactions["tx_datetime"] >= last_day]
    write_table(history, "transactions")
    os.environ["MLFLOW_TRACKING_URI"] = configure_tracking()  # for `mlflow models serve` too
    features = compute_model_features(history)[list(FEATURE_COLUMNS)]
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(random_state=random_state),
    ).fit(features, history["is_fraud"])
    run_id = log_run("bench-serving", model=pipeline, input_example=features.head(3))
    check = register_for_serving(pipeline, features, run_id=run_id)
    print(f"ONNX check: {check}")
    register_model(run_id, MODEL_NAME, alias="champion")
    plain = log_run("bench-serving", model=pipeline, input_example=features.head(3))
    register_model(plain, f"{MODEL_NAME}-sklearn", alias="champion")
    api = []
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
        api.append(json.dumps(payload).encode())
    rows = compute_model_features(transactions)[list(FEATURE_COLUMNS)].loc[future.index]
    split = json.loads(rows.to_json(orient="split", index=False))
    mlflow = [
        json.dumps({"dataframe_split": {"columns": split["columns"], "data": [r]}}).encode()
        for r in split["data"]
    ]
    return api, mlflow


def start_server(target: str, home: Path, port: int, workers: int) -> subprocess.Popen:
    """Start ``target`` ("onnx", "sklearn" or "mlflow") on 127.0.0.1:port; wait until it answers."""
    env = {
        **os.environ,
        "PRODUCTION_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "MODEL_RELOAD_INTERVAL_S": "0",
        **({"LOG_LEVEL": os.environ["BENCH_LOG_LEVEL"]} if "BENCH_LOG_LEVEL" in os.environ else {}),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MODEL_NAME": "fraud-demo" if target == "onnx" else "fraud-demo-sklearn",
        # mlflow models serve runs `uvicorn` by name: the venv's bin folder first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # as in deploy/Dockerfile: the workers add up their metrics in one folder
        "PROMETHEUS_MULTIPROC_DIR": str(home / "prometheus"),
    }
    shutil.rmtree(home / "prometheus", ignore_errors=True)
    (home / "prometheus").mkdir(parents=True)
    if target == "mlflow":
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        command = [mlflow, "models", "serve", "-m", "models:/fraud-demo@champion",
                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers)]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/ping"
    else:
        command = [sys.executable, "-m", "uvicorn", "course.api:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   "--no-access-log", "--http", os.environ.get("BENCH_HTTP", "course.api:TcpNoDelayHttpToolsProtocol"),
                   "--log-level", "warning"]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/ready"
    log_path = home / f"{target}.log"
    server = subprocess.Popen(  # its own process group: stop_server ends its workers too
        command,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text()[-2000:]
            raise RuntimeError(f"{target} server exited with {server.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(ready, timeout=1) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(server)
    raise RuntimeError(f"{target} server was not ready within 120 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM its process group (graceful), then SIGKILL after 10 s."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


class _Connection:
    """One keep-alive HTTP/1.1 connection sending POST requests to one path."""

    def __init__(self, port: int, path: str):
        self.port, self.path = port, path
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> int:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
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


async def _closed_loop(port, path, bodies, concurrency, max_requests, max_seconds):
    connections = [_Connection(port, path) for _ in range(concurrency)]
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


async def _open_loop(port, path, bodies, rate, max_requests, max_seconds, connections=64):
    n_requests = int(min(max_requests, rate * max_seconds))
    pool = [_Connection(port, path) for _ in range(connections)]
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
local path = os.getenv("BENCH_PATH")
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, path, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _wrk_closed_loop(port, path, bodies_path: Path, concurrency, max_seconds) -> dict:
    """Closed loop with wrk (C, one thread): the measured columns of a row (ms)."""
    script = bodies_path.with_suffix(".lua")
    script.write_text(_WRK_SCRIPT)
    duration = max(1, int(max_seconds))
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "5s",
               "-s", str(script), f"http://127.0.0.1:{port}"]  # fmt: skip
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 30,
        env={**os.environ, "BENCH_BODIES": str(bodies_path), "BENCH_PATH": path},
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


def _row(latencies, errors, elapsed) -> dict:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": errors,
        "req/s": len(ms) / elapsed,
        "p50 ms": np.percentile(ms, 50),
        "p90 ms": np.percentile(ms, 90),
        "p99 ms": np.percentile(ms, 99),
        "max ms": ms.max(),
    }


def _print_table(rows: list[dict]) -> None:
    header = f"{'target':<22}{'load':<14}{'generator':<10}{'requests':>10}{'errors':>8}{'req/s':>9}"
    header += f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['target']:<22}{r['load']:<14}{r['generator']:<10}{r['requests']:>10}{r['errors']:>8}"
            f"{r['req/s']:>9.0f}{r['p50 ms']:>9.2f}{r['p90 ms']:>9.2f}{r['p99 ms']:>9.2f}"
            f"{r['max ms']:>9.1f}"
        )


TARGETS = {
    "onnx": "API, ONNX Runtime",
    "sklearn": "API, scikit-learn",
    "mlflow": "mlflow models serve",
}


def _bench(target, home, bodies, args) -> list[dict]:
    """Start one target, warm it up, run every level, stop it: one row per level."""
    port, path = _free_port(), "/invocations" if target == "mlflow" else "/predict"
    max_requests, max_seconds = min(args.requests, 20_000), min(args.seconds, 30.0)
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    bodies_path = home / f"bodies-{target}.jsonl"
    bodies_path.write_bytes(b"\n".join(bodies) + b"\n")
    server = start_server(target, home, port, args.workers)
    rows = []
    try:
        asyncio.run(_closed_loop(port, path, bodies, 4, args.warmup, max_seconds))
        for concurrency in args.concurrency:
            if use_wrk:
                result = _wrk_closed_loop(port, path, bodies_path, concurrency, max_seconds)
            else:
                loop = _closed_loop(port, path, bodies, concurrency, max_requests, max_seconds)
                result = _row(*asyncio.run(loop))
            generator = "wrk" if use_wrk else "asyncio"
            rows.append({"load": f"closed c={concurrency}", "generator": generator, **result})
        for rate in args.rates:
            loop = _open_loop(port, path, bodies, rate, max_requests, max_seconds)
            rows.append(
                {"load": f"open {rate:.0f}/s", "generator": "asyncio", **_row(*asyncio.run(loop))}
            )
    finally:
        stop_server(server)
    return [{"target": TARGETS[target], **row} for row in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, choices=[1, 2])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0])
    parser.add_argument("--requests", type=int, default=10_000, help="max per level (<= 20000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="max per level (<= 30)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="closed-loop generator (auto: wrk when installed)",
    )
    args = parser.parse_args(argv)

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        api_bodies, mlflow_bodies = prepare(home, args.random_state)
        print(f"prepared {len(api_bodies):,} requests in {time.perf_counter() - started:.1f} s")
        for target in args.targets:
            bodies = mlflow_bodies if target == "mlflow" else api_bodies
            rows += _bench(target, home, bodies, args)
    print()
    print(
        f"single-transaction requests, {args.workers} worker(s) per server, {os.cpu_count()} "
        f"CPU(s), generator on the same host; load average before {load_before:.2f}, "
        f"after {os.getloadavg()[0]:.2f}"
    )
    _print_table(rows)
    by = {(r["target"], r["load"]): r["req/s"] for r in rows}
    for load in sorted({r["load"] for r in rows if r["load"].startswith("closed")}):
        onnx = by.get((TARGETS["onnx"], load))
        for other in ("sklearn", "mlflow"):
            if onnx and by.get((TARGETS[other], load)):
                print(
                    f"{load}: API on ONNX / {TARGETS[other]} = {onnx / by[(TARGETS[other], load)]:.1f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

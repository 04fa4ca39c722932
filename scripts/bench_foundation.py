"""Benchmark the foundation: bulk loads into the database and the cost of one logged run.

    uv run python scripts/bench_foundation.py [--rows 1000000] [--runs 10]

Uses DATABASE_URL / MLFLOW_TRACKING_URI when set (PostgreSQL and the server from
`bash scripts/services.sh start`), else the embedded defaults. Prints a table of figures.
"""

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from production.config import RANDOM_STATE, get_settings
from production.db import get_engine, write_table
from production.tracking import configure_tracking, log_run


def _frame(n_rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(RANDOM_STATE)
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n_rows, dtype="int64"),
            "tx_datetime": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(rng.integers(0, 86400 * 30, n_rows), unit="s"),
            "customer_id": rng.integers(0, 10_000, n_rows),
            "amount": rng.lognormal(3, 1, n_rows).round(2),
            "channel": rng.choice(["chip", "contactless", "swipe", "online"], n_rows),
            "is_fraud": (rng.random(n_rows) < 0.01).astype("int8"),
        }
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    settings = get_settings()
    engine = get_engine()
    print(f"database: {settings.describe()['DATABASE_URL'][0]}")
    frame = _frame(args.rows)

    ours = _timed(lambda: write_table(frame, "bench_write_table", engine=engine))
    again = _timed(lambda: write_table(frame, "bench_write_table", engine=engine))
    upsert = _timed(
        lambda: write_table(
            frame, "bench_write_table", mode="upsert", key_cols="transaction_id", engine=engine
        )
    )

    def pandas_to_sql():
        with engine.begin() as conn:
            frame.to_sql("bench_to_sql", conn, if_exists="replace", index=False)

    baseline = _timed(pandas_to_sql)
    print(
        f"\n{'load of ' + format(args.rows, ',') + ' rows x 6 columns':<44}{'seconds':>9}{'rows/s':>12}"
    )
    for label, seconds in [
        ("write_table(mode='replace')", ours),
        ("write_table(mode='replace'), again", again),
        ("write_table(mode='upsert'), all keys exist", upsert),
        ("DataFrame.to_sql (pandas default)", baseline),
    ]:
        print(f"{label:<44}{seconds:>9.2f}{args.rows / seconds:>12,.0f}")
    print(f"speed-up of write_table over to_sql: {baseline / ours:.1f}x")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_write_table")
        conn.exec_driver_sql("DROP TABLE bench_to_sql")

    uri = configure_tracking()
    print(f"\ntracking: {settings.describe()['MLFLOW_TRACKING_URI'][0]}")
    X = frame[["amount", "customer_id"]].head(5000)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=RANDOM_STATE).fit(
        X, frame["is_fraud"].head(5000)
    )
    warnings.simplefilter("ignore")  # the benchmark times logging, not MLflow's advice
    log_run("bench", params={"warm": 1}, metrics={"x": 0.0}, model=model, input_example=X.head(3))
    times = [
        _timed(
            lambda i=i: log_run(
                "bench",
                run_name=f"run-{i}",
                params={"max_iter": 20, "random_state": RANDOM_STATE},
                metrics={"average_precision": 0.5},
                tags={"bench": "yes"},
                model=model,
                input_example=X.head(3),
            )
        )
        for i in range(args.runs)
    ]
    print(
        f"log_run with params, metrics, tags and a model, {args.runs} runs on {uri.split(':')[0]}:"
    )
    print(f"  median {np.median(times):.2f} s, max {max(times):.2f} s per run")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak:,.0f} MB")


if __name__ == "__main__":
    main()

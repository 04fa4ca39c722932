"""Benchmark production.tuning: the cost of logging a search, and the four strategies.

    .venv/bin/python scripts/bench_tuning.py [--rows 20000] [--max-iter 50] [--cv 5]

On ~20k simulated transactions (~1 % fraud, time-ordered) with a small pipeline
(impute + scale + one-hot + HistGradientBoosting), prints:

1. a 24-candidate grid without logging, then logged to a fresh local store (its
   tables created beforehand) and, when MLFLOW_TRACKING_URI points at a server
   (`bash scripts/services.sh start`), logged to that server;
2. grid vs random vs halving vs optuna at a comparable budget (24 candidates or
   trials): wall time and best CV average precision.

Fits run on one thread (``--threads``): on a shared 2-core machine OpenMP threads of
HistGradientBoosting make timings swing 3x. Timings are wall clock: run twice before
trusting a difference.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.simulate import simulate
from production.tracking import configure_tracking, get_or_create_experiment
from production.tuning import run_search

GRID = {  # 3 x 2 x 2 x 2 = 24 candidates
    "model__learning_rate": [0.05, 0.1, 0.2],
    "model__max_leaf_nodes": [15, 31],
    "model__l2_regularization": [0.0, 1.0],
    "model__class_weight": [None, "balanced"],
}
RANGES = {  # the same region, sampled
    "model__learning_rate": ("float", 0.03, 0.3, "log"),
    "model__max_leaf_nodes": ("int", 8, 64, "log"),
    "model__l2_regularization": ("float", 1e-3, 10.0, "log"),
    "model__class_weight": [None, "balanced"],
}


def _data(rows: int):
    n_days = 60
    sim = simulate(n_customers=max(1, round(rows / (2 * n_days))), n_days=n_days)
    tx = sim.transactions
    X = pd.DataFrame(
        {
            "tx_datetime": tx["tx_datetime"],
            "amount": tx["amount"],
            "hour": tx["tx_datetime"].dt.hour,
            "channel": tx["channel"],
            "merchant_category": tx["merchant_category"],
        }
    )
    return X, tx["is_fraud"]


def _pipeline(max_iter: int) -> Pipeline:
    cat_cols = ["channel", "merchant_category"]
    preprocess = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                ["amount", "hour"],
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat_cols),
        ]
    )
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=False, random_state=RANDOM_STATE
    )
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _row(label: str, result) -> str:
    return (
        f"{label:<34} {result.elapsed_s:8.1f} s {result.log_elapsed_s:8.1f} s "
        f"{result.n_candidates:6d} {result.best_score_:10.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--max-iter", type=int, default=50, help="boosting iterations")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads per fit")
    args = parser.parse_args()
    threadpool_limits(args.threads)
    server = os.environ.get("MLFLOW_TRACKING_URI", "")
    server = server if server.startswith("http") else ""

    X, y = _data(args.rows)
    print(
        f"data: {len(X)} rows, {y.mean():.2%} fraud, TimeSeriesSplit({args.cv}); "
        f"HistGradientBoosting(max_iter={args.max_iter})"
    )
    common = {
        "cv": args.cv,
        "time_col": "tx_datetime",
        "random_state": RANDOM_STATE,
        "n_iter": 24,
        "experiment": "bench-tuning",
    }
    search = lambda space, **kw: run_search(_pipeline(args.max_iter), space, X, y, **common | kw)  # noqa: E731
    header = f"{'':<34} {'total':>10} {'logging':>10} {'cands':>6} {'best AP':>10}"

    print("\n1. Logging overhead, 24-candidate grid")
    print(header)
    rows = [("grid, no logging", search(GRID, log=False))]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        configure_tracking()
        get_or_create_experiment(common["experiment"])  # create the tables outside the timing
        rows.append(("grid, logged to a local store", search(GRID)))
    if server:
        os.environ["MLFLOW_TRACKING_URI"] = server
        rows.append(("grid, logged to the server", search(GRID)))
    else:
        print("(MLFLOW_TRACKING_URI is not a server URL: server run skipped)")
    for label, result in rows:
        print(_row(label, result))
    base = rows[0][1].elapsed_s
    for label, result in rows[1:]:
        print(
            f"  {label}: +{result.elapsed_s - base:.1f} s wall vs no logging "
            f"({result.log_elapsed_s:.1f} s measured inside run_search)"
        )
    assert np.isclose(rows[0][1].best_score_, rows[-1][1].best_score_)

    print("\n2. Strategies at a comparable budget (no logging)")
    print(header)
    print(_row("grid (24 points)", rows[0][1]))
    for label, strategy, space in [
        ("random (24 draws from ranges)", "random", RANGES),
        ("halving (same 24-point grid)", "halving", GRID),
        ("optuna TPE (24 trials, ranges)", "optuna", RANGES),
    ]:
        result = search(space, strategy=strategy, log=False)
        print(_row(label, result))
        if strategy == "halving":
            frame = result.cv_results
            rounds = [
                f"{int((frame['iter'] >= i).sum())} candidates x "
                f"{frame.loc[frame['iter'] == i, 'n_resources'].iloc[0]} rows"
                for i in sorted(frame["iter"].unique())
            ]
            print(f"  halving rounds: {', '.join(rounds)}")
        print(f"  best: {result.best_params_}")
    print(f"\ngrid best: {rows[0][1].best_params_}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

"""Benchmark hyperparameter searches: the cost of logging a search, and four strategies.

    .venv/bin/python scripts/bench_tuning.py [--rows 20000] [--max-iter 50] [--cv 5]

On ~20k simulated transactions (~1 % fraud) with a small pipeline (impute + scale +
one-hot + HistGradientBoosting), cross-validated on ``time_ordered_cv`` folds, prints:

1. a 24-candidate ``GridSearchCV`` fit, then ``log_search`` of it (parent run, 24 nested
   runs, the best pipeline) to a fresh local store (its tables created beforehand) and,
   when MLFLOW_TRACKING_URI points at a server (`bash scripts/services.sh start`), to that
   server: logging time and its ratio to the search's own time;
2. grid vs random vs halving vs Optuna at a comparable budget (24 candidates or trials):
   wall time and best CV average precision.

Fits run on one thread (``--threads``): on a shared 2-core machine OpenMP threads of
HistGradientBoosting make timings swing 3x. Wall clock: run twice before trusting a difference.
"""

import argparse
import os
import tempfile
import time

import optuna
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.impute import SimpleImputer
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
    cross_val_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.simulate import simulate
from production.tracking import configure_tracking, get_or_create_experiment
from production.tuning import log_search, time_ordered_cv

GRID = {  # 3 x 2 x 2 x 2 = 24 candidates
    "model__learning_rate": [0.05, 0.1, 0.2],
    "model__max_leaf_nodes": [15, 31],
    "model__l2_regularization": [0.0, 1.0],
    "model__class_weight": [None, "balanced"],
}
DISTRIBUTIONS = {  # the same region, sampled
    "model__learning_rate": stats.loguniform(0.03, 0.3),
    "model__max_leaf_nodes": stats.randint(8, 65),
    "model__l2_regularization": stats.loguniform(1e-3, 10.0),
    "model__class_weight": [None, "balanced"],
}
EXPERIMENT = "bench-tuning"


def _data(rows: int):
    n_days = 60
    tx = simulate(n_customers=max(1, round(rows / (2 * n_days))), n_days=n_days).transactions
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
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    preprocess = ColumnTransformer(
        [
            ("num", numeric, ["amount", "hour"]),
            ("cat", categorical, ["channel", "merchant_category"]),
        ]
    )
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=False, random_state=RANDOM_STATE
    )
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _timed(fit):
    started = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - started


def _optuna(pipeline, X, y, folds, n_trials: int):
    def objective(trial):
        params = {
            "model__learning_rate": trial.suggest_float("lr", 0.03, 0.3, log=True),
            "model__max_leaf_nodes": trial.suggest_int("leaves", 8, 64),
            "model__l2_regularization": trial.suggest_float("l2", 1e-3, 10.0, log=True),
            "model__class_weight": trial.suggest_categorical("class_weight", [None, "balanced"]),
        }
        candidate = clone(pipeline).set_params(**params)
        return cross_val_score(candidate, X, y, cv=folds, scoring="average_precision").mean()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=RANDOM_STATE)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


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

    frame, y = _data(args.rows)
    folds = time_ordered_cv(frame, n_splits=args.cv)
    X = frame.drop(columns="tx_datetime")
    pipeline = _pipeline(args.max_iter)
    common = {"cv": folds, "scoring": "average_precision", "n_jobs": 1}
    print(
        f"data: {len(X)} rows, {y.mean():.2%} fraud, time_ordered_cv({args.cv} folds); "
        f"HistGradientBoosting(max_iter={args.max_iter})"
    )

    print("\n1. Logging a fitted 24-candidate grid (parent + 24 nested runs + best model)")
    grid, grid_s = _timed(lambda: GridSearchCV(pipeline, GRID, **common).fit(X, y))
    print(f"{'grid search, no logging':<34} {grid_s:7.1f} s")
    stores = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        configure_tracking()
        get_or_create_experiment(EXPERIMENT)  # create the tables outside the timing
        log = lambda: log_search(grid, experiment=EXPERIMENT, input_example=X.head(5))  # noqa: E731
        stores.append(("log_search to a local store", _timed(log)[1]))
        if server:
            os.environ["MLFLOW_TRACKING_URI"] = server
            stores.append(("log_search to the server", _timed(log)[1]))
        else:
            print("(MLFLOW_TRACKING_URI is not a server URL: server run skipped)")
    for label, seconds in stores:
        print(f"{label:<34} {seconds:7.1f} s  = {seconds / grid_s:.2f} x the search's time")

    print("\n2. Strategies at a comparable budget (no logging)")
    rows = [("grid (24 points)", grid_s, grid.best_score_, grid.best_params_)]
    random_search = RandomizedSearchCV(
        pipeline, DISTRIBUTIONS, n_iter=24, random_state=RANDOM_STATE, **common
    )
    result, seconds = _timed(lambda: random_search.fit(X, y))
    rows.append(("random (24 draws)", seconds, result.best_score_, result.best_params_))
    halving = HalvingRandomSearchCV(
        pipeline,
        DISTRIBUTIONS,
        n_candidates=24,
        resource="model__max_iter",
        min_resources=max(1, args.max_iter // 9),
        max_resources=args.max_iter,
        random_state=RANDOM_STATE,
        **common,
    )
    result, seconds = _timed(lambda: halving.fit(X, y))
    rows.append(
        ("halving (24, rounds = resource)", seconds, result.best_score_, result.best_params_)
    )
    study, seconds = _timed(lambda: _optuna(pipeline, X, y, folds, 24))
    rows.append(("optuna TPE (24 trials)", seconds, study.best_value, study.best_params))
    print(f"{'':<34} {'time':>9} {'vs grid':>8} {'best AP':>8}")
    for label, seconds, score, params in rows:
        print(f"{label:<34} {seconds:7.1f} s {seconds / grid_s:7.2f}x {score:8.4f}  {params}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

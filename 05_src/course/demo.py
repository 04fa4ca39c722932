"""The end-to-end demo behind ``production demo``: every stage of the course, small and fast.

Stages: configuration check -> simulate: land the days as raw CSV files, dirty records
included, with drift injected on the last day -> ingest: bronze -> silver -> gold and the
database load (idempotent, all or nothing) -> point-in-time features -> train a per-row
baseline (tracked) -> tune gradient boosting on windowed features: a ``GridSearchCV`` over
time-ordered folds, logged as a parent run with one nested run per candidate -> register
the best pipeline as ``challenger``, with its ONNX graph for serving -> promote it to
``champion`` through the metric gate -> explain the champion with SHAP -> batch-score the
last day with the champion into ``predictions`` -> monitor: drift of that day against the
validation period, into ``drift_reports`` and an MLflow run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from production._validation import Interval, validate_params
from production.config import RANDOM_STATE, get_settings, mask_url
from production.data import export_raw_days, read_lake, run_pipeline
from production.db import check_connection, read_sql
from production.explain import compute_shap_values, plot_shap_summary
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.monitoring import plot_drift_report
from production.serving import MODEL_NAME, register_for_serving, run_drift_check, score_day
from production.tracking import (
    configure_tracking,
    get_model_version,
    get_or_create_experiment,
    load_model,
    log_run,
    promote_model,
    register_best_model,
)
from production.tuning import log_search, time_ordered_cv

__all__ = ["run_demo"]

EXPERIMENT = "demo"
START = pd.Timestamp("2026-01-01")  # the first simulated day
METRIC = "cv_average_precision"  # what log_search names the best mean CV average precision
GRID = {"model__learning_rate": [0.05, 0.1], "model__max_leaf_nodes": [15, 31]}


@dataclass(frozen=True)
class _Split:
    """Model inputs of the labelled days: train (first 70% of the time) and validation."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    train_times: pd.DataFrame  # tx_datetime of the training rows, row for row


def _stage(log: Callable[[str], None], name: str, stage: Callable, *args):
    """Log ``name``, run ``stage(*args)`` -> (result, detail), log the detail and duration."""
    started = time.perf_counter()
    log(f"-> {name}")
    result, detail = stage(*args)
    log(f"   {detail} ({time.perf_counter() - started:.1f} s)")
    return result


def _configure():
    """Check the database and the tracking store answer (a new local store is created)."""
    database, tracking_uri = check_connection(), configure_tracking()
    get_or_create_experiment(EXPERIMENT)
    tracking = get_settings().describe()["MLFLOW_TRACKING_URI"][0]  # password masked
    return tracking_uri, f"database: {database}; tracking: {tracking}"


def _land_raw(start: pd.Timestamp, last_day: pd.Timestamp, n_days: int, random_state: int):
    """Write the raw CSV files, dirty records included, drift from the last day on."""
    raw = export_raw_days(
        n_days=n_days,
        start_date=start.date(),
        drift_start=last_day.date(),
        random_state=random_state,
    )
    return raw, (
        f"{len(raw.transaction_files)} daily CSV files in {raw.customers_file.parent}, "
        f"{len(raw.injected):,} dirty records; drift injected on {last_day:%Y-%m-%d}"
    )


def _ingest(start: pd.Timestamp, last_day: pd.Timestamp):
    """Run bronze -> silver -> gold -> database; return the silver transactions."""
    report = run_pipeline(start.date(), last_day.date(), show_progress=False)
    transactions = read_lake("silver").sort_values(
        ["tx_datetime", "transaction_id"], ignore_index=True
    )
    counts = read_sql(
        "select (select count(*) from transactions) as transactions, "
        "(select count(*) from customers) as customers"
    ).iloc[0]
    n = {c: f"{report.total(c):,}" for c in ("raw_rows", "silver_rows", "rejected_rows")}
    return transactions, (
        f"{n['raw_rows']} raw rows = {n['silver_rows']} silver + {n['rejected_rows']} "
        f"rejected (in rejected/) + {report.total('late_rows'):,} late; database: "
        f"{int(counts['transactions']):,} transactions, {int(counts['customers']):,} "
        f"customers; fraud rate {transactions['is_fraud'].mean():.2%}"
    )


def _split(transactions: pd.DataFrame, last_day: pd.Timestamp):
    """Compute the features; split the days before ``last_day`` 70/30 in time."""
    features = compute_model_features(transactions)
    labelled = (transactions["tx_datetime"] < last_day).to_numpy()
    history = transactions[labelled]
    cutoff = history["tx_datetime"].quantile(0.7)
    is_train = (history["tx_datetime"] < cutoff).to_numpy()
    X, y = features[labelled], history["is_fraud"]
    split = _Split(
        X[is_train], y[is_train], X[~is_train], y[~is_train], history[is_train][["tx_datetime"]]
    )
    return split, (
        f"{len(FEATURE_COLUMNS)} columns ({len(FEATURE_COLUMNS) - 5} windowed); train "
        f"{len(split.X_train):,} rows before {cutoff:%Y-%m-%d %H:%M}, validate {len(split.X_test):,}"
    )


def _validation_ap(model, split: _Split) -> float:
    """Average precision of ``model`` on the validation rows."""
    return average_precision_score(split.y_test, model.predict_proba(split.X_test)[:, 1])


def _train_baseline(split: _Split, random_state: int):
    """Fit and log gradient boosting on the per-row columns only."""
    baseline = build_pipeline(
        build_preprocessor(["amount", "tx_hour", "tx_weekday"], list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(random_state=random_state),
    )
    with threadpool_limits(1):  # small data: one thread is faster than a busy team
        baseline.fit(split.X_train, split.y_train)
    baseline_ap = _validation_ap(baseline, split)
    log_run(
        EXPERIMENT,
        run_name="per-row baseline",
        params={"model": "HistGradientBoostingClassifier", "random_state": random_state},
        metrics={"test_average_precision": baseline_ap},
        tags={"features": "per-row"},
    )
    return baseline_ap, f"validation average precision {baseline_ap:.3f} (per-row columns only)"


def _tune(split: _Split, random_state: int, baseline_ap: float):
    """Grid-search the windowed-feature pipeline on time-ordered folds; log nested runs."""
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(random_state=random_state),
    )
    folds = time_ordered_cv(split.train_times, n_splits=3)
    search = GridSearchCV(pipeline, GRID, scoring="average_precision", cv=folds)
    with threadpool_limits(1):
        search.fit(split.X_train, split.y_train)
    run_id = log_search(
        search,
        experiment=EXPERIMENT,
        run_name="windowed-features-grid",
        input_example=split.X_train.head(5),
    )
    test_ap = _validation_ap(search.best_estimator_, split)
    return (search, run_id, test_ap), (
        f"best {search.best_params_} CV average precision {search.best_score_:.3f}; "
        f"validation {test_ap:.3f} (per-row baseline {baseline_ap:.3f})"
    )


def _register(search: GridSearchCV, run_id: str, split: _Split):
    """Register the search's best pipeline as challenger and log its checked ONNX graph."""
    version = register_best_model(run_id, MODEL_NAME, alias="challenger")
    serving = register_for_serving(search.best_estimator_, split.X_train, run_id=run_id)
    if serving["backend"] == "onnx":
        how = f"ONNX Runtime, within {serving['max_difference']:.1g} of scikit-learn"
    else:
        how = f"scikit-learn ({serving['reason']})"
    return (version, how), f"v{version} from run {run_id[:8]}; served by {how}"


def _promote(version: str):
    """Pass the challenger through the gate; return the champion's version and the verdict."""
    decision = promote_model(MODEL_NAME, metric=METRIC)
    champion = get_model_version(MODEL_NAME, "champion")
    if decision.promoted:
        gate = f"v{version} promoted to champion ({decision.reason})"
    else:
        gate = (
            f"v{version} kept as challenger: it does not beat champion v{champion} "
            f"({decision.reason})"
        )
    return (champion, gate), gate


def _explain(model, split: _Split, plots: Path, random_state: int):
    """SHAP values of the champion on validation rows; save the beeswarm."""
    plots.mkdir(parents=True, exist_ok=True)
    explanation = compute_shap_values(model, split.X_test, max_rows=500, random_state=random_state)
    importance = pd.Series(
        abs(explanation.values).mean(axis=0), index=explanation.feature_names
    ).sort_values(ascending=False)
    plot_shap_summary(explanation).savefig(plots / "shap_summary.png", dpi=100)
    top = ", ".join(importance.index[:3])
    return None, f"{len(explanation.values)} rows; top features: {top}"


def _score(last_day: pd.Timestamp, champion: str):
    """Batch-score the last day with the champion (resumable: done rows are skipped)."""
    scored = score_day(last_day, model_name=MODEL_NAME, alias="champion")
    if str(scored.model_version) != champion:  # the alias moved while we ran
        raise RuntimeError(f"scored with v{scored.model_version}, champion is v{champion}")
    blocked = read_sql(
        "select count(*) as n from predictions where model_name = :name and decision = 'block' "
        "and tx_date >= :start",
        params={"name": MODEL_NAME, "start": f"{last_day:%Y-%m-%d} 00:00:00"},
    )["n"].iloc[0]
    return scored, (
        f"{scored.n_scored:,} scored ({scored.n_already_scored:,} already), {int(blocked)} "
        f"blocked, v{scored.model_version}"
    )


def _monitor(model, split: _Split, plots: Path):
    """Drift of the scored day against the validation period, features and score."""
    reference = split.X_test.assign(score=model.predict_proba(split.X_test)[:, 1])
    # PSI only, from the "moderate shift" band: with 17k reference rows the KS and
    # chi-squared tests flag even an hour-of-day wobble (PSI 0.015)
    check = run_drift_check(
        reference, model_name=MODEL_NAME, psi_threshold=0.1, p_value_threshold=0.0
    )
    plot_drift_report(check.report).savefig(plots / "drift_report.png", dpi=100)
    drifted = ", ".join(check.drifted_features[:4])
    more = " ..." if len(check.drifted_features) > 4 else ""
    verdict = f"DRIFT in {drifted}{more}" if check.flagged else "no drift"
    return verdict, f"{verdict} (run {check.run_id[:8]})"


def _mlflow_ui(tracking_uri: str) -> str:
    """Return the command (local store) or the address (server) of the MLflow UI."""
    if tracking_uri.startswith("sqlite"):
        return f"mlflow ui --backend-store-uri {tracking_uri}"
    return mask_url(tracking_uri)


@validate_params(random_state=Interval(int, 0, None), n_days=Interval(int, 4, None))
def run_demo(
    *, random_state: int = RANDOM_STATE, n_days: int = 30, log: Callable[[str], None] = print
) -> dict:
    """Run the demo pipeline on the configured backends and return a summary.

    Parameters
    ----------
    random_state : int, default=RANDOM_STATE
        Seed for the simulator, the models and the SHAP sample.
    n_days : int, default=30
        Days of transactions to simulate, >= 4: all but the last train and validate the
        model (time split 70/30), the last is scored in batch and monitored.
    log : callable, default=print
        Where progress lines go.

    Returns
    -------
    dict
        What was written where (database, tables, runs, model version, plots), and the
        commands to look at it. InvalidParameterError (a ValueError) if ``n_days`` < 4.
    """
    start, plots = START, get_settings().data_dir / "plots"
    last_day = start + pd.Timedelta(days=n_days - 1)
    stage = functools.partial(_stage, log)
    tracking_uri = stage("configuration", _configure)
    raw = stage(
        "simulate: land raw files (dirty records included)", _land_raw,
        start, last_day, n_days, random_state,
    )  # fmt: skip
    transactions = stage("ingest: bronze -> silver -> gold -> database", _ingest, start, last_day)
    split = stage("point-in-time features", _split, transactions, last_day)
    baseline_ap = stage("train: per-row baseline", _train_baseline, split, random_state)
    search, run_id, test_ap = stage(
        "tune: windowed features, grid of 4, 3 time-ordered folds (tracked)", _tune,
        split, random_state, baseline_ap,
    )  # fmt: skip
    version, served_by = stage(
        "register as challenger, with its ONNX graph for serving", _register, search, run_id, split
    )
    champion, gate = stage("promote through the metric gate", _promote, version)
    model = load_model(MODEL_NAME, "champion")  # what serving uses, explained and monitored
    stage(f"explain champion v{champion} (SHAP)", _explain, model, split, plots, random_state)
    scored = stage(f"batch-score {last_day:%Y-%m-%d} with the champion", _score, last_day, champion)
    verdict = stage(
        "monitor: drift against the validation period (PSI >= 0.1)", _monitor, model, split, plots
    )
    return {
        "database": get_settings().describe()["DATABASE_URL"][0],
        "lake": f"{raw.customers_file.parent.parent} (raw/, lake/bronze|silver|gold/, rejected/)",
        "tables": "customers, terminals, transactions, predictions, drift_reports",
        "transactions": f"{len(transactions):,}",
        "tuning run": f"{run_id} ({len(search.cv_results_['params'])} nested candidate runs)",
        "registered model": f"{MODEL_NAME} version {champion} (alias champion)",
        "gate": gate,
        "served by": f"v{version}: {served_by}",
        "validation AP": f"{test_ap:.3f} (per-row baseline {baseline_ap:.3f})",
        "scored rows": f"{scored.n_transactions:,} on {last_day:%Y-%m-%d} -> table predictions",
        "drift": f"{verdict} -> table drift_reports, experiment monitoring",
        "plots": f"{plots / 'shap_summary.png'}, {plots / 'drift_report.png'}",
        "MLflow UI": _mlflow_ui(tracking_uri),
        "serve the champion": "uvicorn course.api:create_app --factory --port 8000",
    }

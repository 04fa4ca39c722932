"""The end-to-end demo behind ``production demo``: every stage of the course, small and fast.

Stages: configuration check -> simulate transactions (drift injected on the last day) ->
load them into the database (idempotently) -> point-in-time features -> train a per-row
baseline and a model on windowed features (time split) -> log both to MLflow, register the
feature model and point the ``champion`` alias at it -> explain it with SHAP -> batch-score
the last day from the registry's champion into ``predictions`` -> monitor: drift of that
day against the validation period, into ``drift_reports`` and an MLflow run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from production.config import RANDOM_STATE, get_settings

__all__ = ["run_demo"]

EXPERIMENT = "demo"
MODEL_NAME = "fraud-demo"


def _stage(name: str, log: Callable[[str], None]):
    """Print a stage header and return a function that reports its duration."""
    started = time.perf_counter()
    log(f"-> {name}")

    def done(detail: str) -> None:
        log(f"   {detail} ({time.perf_counter() - started:.1f} s)")

    return done


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
        What was written where: database, tables and row counts, MLflow runs, model
        version, plots, and the commands to look at them.

    Raises
    ------
    ValueError
        If ``n_days`` < 4.
    """
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score
    from threadpoolctl import threadpool_limits

    from production.db import check_connection, read_sql, write_table
    from production.explain import compute_shap_values, plot_shap_summary
    from production.features import build_pipeline, build_preprocessor
    from production.monitoring import plot_drift_report
    from production.serving import (
        CATEGORICAL_FEATURES,
        FEATURE_COLUMNS,
        NUMERIC_FEATURES,
        compute_model_features,
        run_drift_check,
        score_day,
    )
    from production.simulate import simulate
    from production.tracking import configure_tracking, log_run, register_model, set_alias

    if n_days < 4:
        raise ValueError(
            f"The 'n_days' parameter of run_demo must be an int >= 4 (train, validate, score). "
            f"Got {n_days!r} instead."
        )
    settings = get_settings()
    done = _stage("configuration", log)
    database = check_connection()
    tracking_uri = configure_tracking()
    done(f"database: {database}; tracking: {settings.describe()['MLFLOW_TRACKING_URI'][0]}")

    done = _stage("simulate transactions", log)
    start = pd.Timestamp("2026-01-01")
    last_day = start + pd.Timedelta(days=n_days - 1)
    data = simulate(
        n_days=n_days,
        start_date=start.date(),
        drift_start=last_day.date(),
        random_state=random_state,
    )
    transactions = data.transactions
    done(
        f"{len(transactions):,} transactions, fraud rate {transactions['is_fraud'].mean():.2%}; "
        f"drift injected on {last_day:%Y-%m-%d}"
    )

    done = _stage("load into the database", log)
    write_table(data.customers, "customers", mode="upsert", key_cols="customer_id")
    write_table(data.terminals, "terminals", mode="upsert", key_cols="terminal_id")
    write_table(transactions, "transactions", mode="upsert", key_cols="transaction_id")
    counts = read_sql(
        "select (select count(*) from transactions) as transactions, "
        "(select count(*) from customers) as customers"
    ).iloc[0]
    done(f"{int(counts['transactions']):,} transactions, {int(counts['customers']):,} customers")

    done = _stage("point-in-time features", log)
    features = compute_model_features(transactions)
    labelled = (transactions["tx_datetime"] < last_day).to_numpy()
    history = transactions[labelled]
    cutoff = history["tx_datetime"].quantile(0.7)
    is_train = (history["tx_datetime"] < cutoff).to_numpy()
    X, y = features[labelled], history["is_fraud"]
    X_train, X_test, y_train, y_test = X[is_train], X[~is_train], y[is_train], y[~is_train]
    done(
        f"{len(FEATURE_COLUMNS)} columns ({len(FEATURE_COLUMNS) - 5} windowed); "
        f"train {len(X_train):,} rows before {cutoff:%Y-%m-%d %H:%M}, validate {len(X_test):,}"
    )

    done = _stage("train: per-row baseline vs windowed features", log)
    row_numeric = ["amount", "tx_hour", "tx_weekday"]

    def fit(numeric):
        pipeline = build_pipeline(
            build_preprocessor(numeric, list(CATEGORICAL_FEATURES), scale=False),
            HistGradientBoostingClassifier(random_state=random_state),
        )
        with threadpool_limits(1):  # small data: one thread is faster than a busy team
            return pipeline.fit(X_train, y_train)

    baseline = fit(row_numeric)
    baseline_ap = average_precision_score(y_test, baseline.predict_proba(X_test)[:, 1])
    model = fit(list(NUMERIC_FEATURES))
    test_ap = average_precision_score(y_test, model.predict_proba(X_test)[:, 1])
    done(f"validation average precision: per-row {baseline_ap:.3f}, with windows {test_ap:.3f}")

    done = _stage("track, register, alias", log)
    params = {"model": "HistGradientBoostingClassifier", "random_state": random_state}
    log_run(
        EXPERIMENT,
        run_name="per-row baseline",
        params={**params, "features": "per-row"},
        metrics={"test_average_precision": baseline_ap},
    )
    run_id = log_run(
        EXPERIMENT,
        run_name="windowed features",
        params={**params, "features": "per-row + windowed"},
        metrics={"test_average_precision": test_ap},
        model=model,
        input_example=X_train[list(FEATURE_COLUMNS)].head(5),
    )
    version = register_model(run_id, MODEL_NAME)
    set_alias(MODEL_NAME, "champion", version)
    done(f"run {run_id[:8]}, {MODEL_NAME} v{version} @champion")

    done = _stage("explain (SHAP)", log)
    plots = settings.data_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    explanation = compute_shap_values(model, X_test, max_rows=500, random_state=random_state)
    importance = pd.Series(
        abs(explanation.values).mean(axis=0), index=explanation.feature_names
    ).sort_values(ascending=False)
    plot_shap_summary(explanation).savefig(plots / "shap_summary.png", dpi=100)
    done(f"{len(explanation.values)} rows; top features: {', '.join(importance.index[:3])}")

    done = _stage(f"batch-score {last_day:%Y-%m-%d} with the champion", log)
    scored = score_day(last_day, model_name=MODEL_NAME, alias="champion")
    blocked = read_sql(
        "select count(*) as n from predictions where model_name = :name and decision = 'block' "
        "and tx_date >= :start",
        params={"name": MODEL_NAME, "start": f"{last_day:%Y-%m-%d} 00:00:00"},
    )["n"].iloc[0]
    done(
        f"{scored.n_scored:,} scored ({scored.n_already_scored:,} already), {int(blocked)} "
        f"blocked, v{scored.model_version}"
    )

    done = _stage("monitor: drift against the validation period (PSI >= 0.1)", log)
    reference = X_test.copy()
    reference["score"] = model.predict_proba(X_test)[:, 1]
    # PSI only, from the "moderate shift" band: with 17k reference rows the KS and
    # chi-squared tests flag even an hour-of-day wobble (PSI 0.015)
    check = run_drift_check(
        reference, model_name=MODEL_NAME, psi_threshold=0.1, p_value_threshold=0.0
    )
    plot_drift_report(check.report).savefig(plots / "drift_report.png", dpi=100)
    verdict = (
        f"DRIFT in {', '.join(check.drifted_features[:4])}"
        + (" ..." if len(check.drifted_features) > 4 else "")
        if check.flagged
        else "no drift"
    )
    done(f"{verdict} (run {check.run_id[:8]})")

    ui = (
        f"mlflow ui --backend-store-uri {tracking_uri}"
        if tracking_uri.startswith("sqlite")
        else tracking_uri
    )
    return {
        "database": settings.describe()["DATABASE_URL"][0],
        "tables": "customers, terminals, transactions, predictions, drift_reports",
        "transactions": f"{len(transactions):,}",
        "mlflow run": run_id,
        "registered model": f"{MODEL_NAME} version {version} (alias champion)",
        "test AP": f"{test_ap:.3f} (per-row baseline {baseline_ap:.3f})",
        "scored rows": f"{scored.n_transactions:,} on {last_day:%Y-%m-%d} -> table predictions",
        "drift": f"{verdict} -> table drift_reports, experiment monitoring",
        "plots": f"{plots / 'shap_summary.png'}, {plots / 'drift_report.png'}",
        "MLflow UI": ui,
        "serve the champion": "uvicorn production.api:create_app --factory --port 8000",
    }

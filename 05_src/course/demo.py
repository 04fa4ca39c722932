"""The end-to-end demo behind ``production demo``: every stage of the course, small and fast.

Stages: configuration check -> simulate: land the days as raw CSV files, dirty records
included, with drift injected on the last day -> ingest: bronze -> silver -> gold and the
database load (idempotent, all or nothing) -> point-in-time features -> train a per-row
baseline (tracked) -> tune gradient boosting on windowed features with time-ordered folds
(a parent run with one nested run per candidate) -> register the best pipeline as
``challenger`` and promote it to ``champion`` through the metric gate -> explain the
champion with SHAP -> batch-score the last day from the registry's champion into
``predictions`` -> monitor: drift of that day against the validation period, into
``drift_reports`` and an MLflow run.
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

    from production.data import export_raw_days, read_lake, run_pipeline
    from production.db import check_connection, read_sql
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
    from production.tracking import (
        configure_tracking,
        get_model_version,
        load_model,
        log_run,
        promote_model,
        register_best_model,
    )
    from production.tuning import run_search

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

    done = _stage("simulate: land raw files (dirty records included)", log)
    start = pd.Timestamp("2026-01-01")
    last_day = start + pd.Timedelta(days=n_days - 1)
    raw = export_raw_days(
        n_days=n_days,
        start_date=start.date(),
        drift_start=last_day.date(),
        random_state=random_state,
    )
    done(
        f"{len(raw.transaction_files)} daily CSV files in {raw.customers_file.parent}, "
        f"{len(raw.injected):,} dirty records; drift injected on {last_day:%Y-%m-%d}"
    )

    done = _stage("ingest: bronze -> silver -> gold -> database", log)
    report = run_pipeline(start.date(), last_day.date(), show_progress=False)
    transactions = read_lake("silver")
    transactions = transactions.sort_values(["tx_datetime", "transaction_id"], ignore_index=True)
    counts = read_sql(
        "select (select count(*) from transactions) as transactions, "
        "(select count(*) from customers) as customers"
    ).iloc[0]
    done(
        f"{report.total('raw_rows'):,} raw rows -> {report.total('silver_rows'):,} silver "
        f"({report.total('rejected_rows'):,} rejected, reported in rejected/); "
        f"database: {int(counts['transactions']):,} transactions, "
        f"{int(counts['customers']):,} customers; fraud rate {transactions['is_fraud'].mean():.2%}"
    )

    done = _stage("point-in-time features", log)
    features = compute_model_features(transactions)
    labelled = (transactions["tx_datetime"] < last_day).to_numpy()
    history = transactions[labelled]
    cutoff = history["tx_datetime"].quantile(0.7)
    is_train = (history["tx_datetime"] < cutoff).to_numpy()
    X, y = features[labelled], history["is_fraud"]
    X_train, X_test, y_train, y_test = X[is_train], X[~is_train], y[is_train], y[~is_train]
    categorical = list(CATEGORICAL_FEATURES)
    done(
        f"{len(FEATURE_COLUMNS)} columns ({len(FEATURE_COLUMNS) - 5} windowed); "
        f"train {len(X_train):,} rows before {cutoff:%Y-%m-%d %H:%M}, validate {len(X_test):,}"
    )

    done = _stage("train: per-row baseline", log)
    with threadpool_limits(1):  # small data: one thread is faster than a busy team
        baseline = build_pipeline(
            build_preprocessor(["amount", "tx_hour", "tx_weekday"], categorical, scale=False),
            HistGradientBoostingClassifier(random_state=random_state),
        ).fit(X_train, y_train)
    baseline_ap = average_precision_score(y_test, baseline.predict_proba(X_test)[:, 1])
    log_run(
        EXPERIMENT,
        run_name="per-row baseline",
        params={
            "model": "HistGradientBoostingClassifier",
            "random_state": random_state,
            "features": "per-row",
        },
        metrics={"test_average_precision": baseline_ap},
    )
    done(f"validation average precision {baseline_ap:.3f} (per-row columns only)")

    done = _stage("tune: windowed features, grid of 4, 3 time-ordered folds (tracked)", log)
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), categorical, scale=False),
        HistGradientBoostingClassifier(random_state=random_state),
    )
    with threadpool_limits(1):
        search = run_search(
            pipeline,
            {"model__learning_rate": [0.05, 0.1], "model__max_leaf_nodes": [15, 31]},
            X_train.assign(tx_datetime=history["tx_datetime"].to_numpy()[is_train]),
            y_train,
            cv=3,
            time_col="tx_datetime",
            random_state=random_state,
            experiment=EXPERIMENT,
            run_name="windowed-features-grid",
        )
    model = search.best_estimator_
    test_ap = average_precision_score(y_test, model.predict_proba(X_test)[:, 1])
    done(
        f"best {search.best_params_} CV average precision {search.best_score_:.3f}; "
        f"validation {test_ap:.3f} (per-row baseline {baseline_ap:.3f})"
    )

    done = _stage("register as challenger, promote through the metric gate", log)
    version = register_best_model(search.parent_run_id, MODEL_NAME)
    promoted = promote_model(MODEL_NAME, metric="cv_average_precision")
    champion = get_model_version(MODEL_NAME, "champion")
    model = load_model(MODEL_NAME, "champion")  # what serving uses, explained and monitored
    gate = (
        f"v{version} promoted to champion"
        if promoted
        else f"v{version} kept as challenger: it does not beat champion v{champion}"
    )
    done(f"run {search.parent_run_id[:8]}; {gate}")

    done = _stage(f"explain champion v{champion} (SHAP)", log)
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
    if str(scored.model_version) != champion:  # the alias moved while we ran
        raise RuntimeError(f"scored with v{scored.model_version}, champion is v{champion}")
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
        "lake": f"{raw.customers_file.parent.parent} (raw/, lake/bronze|silver|gold/, rejected/)",
        "tables": "customers, terminals, transactions, predictions, drift_reports",
        "transactions": f"{len(transactions):,}",
        "tuning run": f"{search.parent_run_id} ({search.n_candidates} nested candidate runs)",
        "registered model": f"{MODEL_NAME} version {champion} (alias champion)",
        "gate": gate,
        "validation AP": f"{test_ap:.3f} (per-row baseline {baseline_ap:.3f})",
        "scored rows": f"{scored.n_transactions:,} on {last_day:%Y-%m-%d} -> table predictions",
        "drift": f"{verdict} -> table drift_reports, experiment monitoring",
        "plots": f"{plots / 'shap_summary.png'}, {plots / 'drift_report.png'}",
        "MLflow UI": ui,
        "serve the champion": "uvicorn course.api:create_app --factory --port 8000",
    }

"""The course pipeline as a Prefect flow: every stage of the demo is a task.

configure -> land raw files -> ingest (bronze -> silver -> gold -> database) -> features
-> per-row baseline -> tune -> register -> gate -> explain -> batch score -> monitor,
and, when the monitor flags drift, the continuous-training flow as a subflow.

Each task's cache key is made of its inputs, its source code, where it writes (database,
tracking store, data folder) and a content hash of the data it reads (the raw files for
ingest, the lake after it): run the flow again with nothing changed and every stage is
skipped; change a raw file, the code of a stage or the data folder and what depends on it
runs again. Results are kept in ``<data_dir>/prefect``. Without ``PREFECT_API_URL``,
Prefect starts a temporary local server for the run; with it, the run shows in its UI.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, serve, task
from prefect.cache_policies import NO_CACHE, TASK_SOURCE, CacheKeyFnPolicy, Inputs
from prefect.runtime import flow_run
from prefect.utilities.hashing import hash_objects
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from course.retrain import RetrainDecision, continuous_training, gate, move_aliases, record
from production._validation import Interval, validate_params
from production.config import RANDOM_STATE, get_settings
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
    register_best_model,
)
from production.tuning import log_search, time_ordered_cv

__all__ = [
    "IO_TASKS",
    "START",
    "build_deployments",
    "build_features",
    "configure",
    "course_pipeline",
    "explain",
    "fingerprint",
    "ingest",
    "land_raw",
    "monitor",
    "promote",
    "register",
    "retrain",
    "score",
    "serve_flows",
    "train_baseline",
    "tune",
]

EXPERIMENT = "demo"
START = pd.Timestamp("2026-01-01")  # the first simulated day
METRIC = "validation_average_precision"  # the gate's: both models on the same validation rows
GRID = {"model__learning_rate": [0.05, 0.1], "model__max_leaf_nodes": [15, 31]}
IO = {"retries": 2, "retry_delay_seconds": 2}  # tasks that talk to files, database, MLflow
LABEL_DELAY_DAYS = 7  # the simulator's: legitimate transactions are labelled a week later
PIPELINE_CRON, RETRAIN_CRON = "0 2 * * *", "0 6 * * *"  # nightly run, daily retraining check


@dataclass(frozen=True)
class _Split:
    """Model inputs of the labelled days: train (first 70% of the time) and validation."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    train_times: pd.DataFrame  # tx_datetime of the training rows, row for row


def fingerprint(folder: Path) -> str:
    """Return a content hash of every file under ``folder`` (names and bytes).

    Parameters
    ----------
    folder : Path
        The folder to hash; a missing folder hashes as ``"missing"``.

    Returns
    -------
    str
        16 hex digits; the same files give the same hash.
    """
    if not folder.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _where_and_what(reads: tuple[str, ...], context, parameters) -> str:
    """Cache-key part: where the task writes and the content of the folders it reads."""
    settings = get_settings()
    versions = [fingerprint(settings.data_dir / folder) for folder in reads]
    where = [settings.database_url, settings.mlflow_tracking_uri, str(settings.data_dir)]
    return hash_objects(*where, *versions)


def _cached(*reads: str, exclude: tuple[str, ...] = ()):
    """Cache policy: task source + inputs (bar ``exclude``) + destinations + data read."""
    data = CacheKeyFnPolicy(cache_key_fn=functools.partial(_where_and_what, reads))
    return TASK_SOURCE + Inputs(exclude=list(exclude)) + data


def _validation_ap(model, split: _Split) -> float:
    """Average precision of ``model`` on the validation rows."""
    return average_precision_score(split.y_test, model.predict_proba(split.X_test)[:, 1])


@task(name="configure", cache_policy=NO_CACHE)
def configure():
    """Check the database and the tracking store answer (a new local store is created)."""
    database, tracking_uri = check_connection(), configure_tracking()
    get_or_create_experiment(EXPERIMENT)
    tracking = get_settings().describe()["MLFLOW_TRACKING_URI"][0]  # password masked
    return tracking_uri, f"database: {database}; tracking: {tracking}"


@task(name="land-raw", cache_policy=_cached())
def land_raw(start: pd.Timestamp, last_day: pd.Timestamp, n_days: int, random_state: int):
    """Write the raw CSV files, dirty records included, drift from the last day on."""
    raw = export_raw_days(
        n_days=n_days,
        start_date=start.date(),
        drift_start=last_day.date(),
        random_state=random_state,
    )
    return str(raw.customers_file.parent.parent), (
        f"{len(raw.transaction_files)} daily CSV files in {raw.customers_file.parent}, "
        f"{len(raw.injected):,} dirty records; drift injected on {last_day:%Y-%m-%d}"
    )


@task(name="ingest", cache_policy=_cached("raw"), **IO)
def ingest(start: pd.Timestamp, last_day: pd.Timestamp):
    """Run bronze -> silver -> gold -> database; return the row count and fraud rate."""
    report = run_pipeline(start.date(), last_day.date(), show_progress=False)
    counts = read_sql(
        "select (select count(*) from transactions) as transactions, "
        "(select count(*) from customers) as customers, "
        "(select avg(is_fraud) from transactions) as fraud_rate"
    ).iloc[0]
    n = {c: f"{report.total(c):,}" for c in ("raw_rows", "silver_rows", "rejected_rows")}
    return int(counts["transactions"]), (
        f"{n['raw_rows']} raw rows = {n['silver_rows']} silver + {n['rejected_rows']} "
        f"rejected (in rejected/) + {report.total('late_rows'):,} late; database: "
        f"{int(counts['transactions']):,} transactions, {int(counts['customers']):,} "
        f"customers; fraud rate {float(counts['fraud_rate']):.2%}"
    )


@task(name="features", cache_policy=_cached("lake"))
def build_features(last_day: pd.Timestamp):
    """Compute the features of the silver lake; split the days before ``last_day`` 70/30."""
    transactions = read_lake("silver").sort_values(
        ["tx_datetime", "transaction_id"], ignore_index=True
    )
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


@task(name="train-baseline", cache_policy=_cached("lake", exclude=("split",)))
def train_baseline(split: _Split, random_state: int):
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


@task(name="tune", cache_policy=_cached("lake", exclude=("split",)))
def tune(split: _Split, random_state: int, baseline_ap: float):
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


@task(name="register", cache_policy=_cached(exclude=("search", "split")), **IO)
def register(search: GridSearchCV, run_id: str, split: _Split):
    """Register the search's best pipeline as challenger and log its checked ONNX graph."""
    version = str(register_best_model(run_id, MODEL_NAME, alias="challenger"))
    serving = register_for_serving(search.best_estimator_, split.X_train, run_id=run_id)
    if serving["backend"] == "onnx":
        how = f"ONNX Runtime, within {serving['max_difference']:.1g} of scikit-learn"
    else:
        how = f"scikit-learn ({serving['reason']})"
    return (version, how), f"v{version} from run {run_id[:8]}; served by {how}"


@task(name="promote", cache_policy=_cached("lake", exclude=("split",)), **IO)
def promote(version: str, split: _Split):
    """Gate the challenger: both models scored on the same validation rows; recorded.

    As in continuous training (``course.retrain.gate``): the challenger is promoted when
    it beats the champion's average precision, and the champion it replaces keeps the
    alias ``previous``. The decision goes to the model version's tags and to the table
    ``training_decisions``.
    """
    challenger = get_model_version(MODEL_NAME, "challenger")
    challenger_ap = _validation_ap(load_model(MODEL_NAME, "challenger"), split)
    try:
        champion = get_model_version(MODEL_NAME, "champion")
    except LookupError:
        champion, champion_ap = None, None
        verdict, reason = "promoted", "there was no champion"
    else:
        champion_ap = _validation_ap(load_model(MODEL_NAME, "champion"), split)
        verdict, reason = gate(challenger_ap, champion_ap, 0.0, "validation average precision")
    move_aliases(verdict, MODEL_NAME, str(challenger), champion and str(champion))
    decision = RetrainDecision(
        verdict, reason, METRIC, str(challenger), champion and str(champion), challenger_ap,
        champion_ap, "pipeline", pd.Timestamp.now(tz="UTC").tz_localize(None),
    )  # fmt: skip
    record(decision, MODEL_NAME, str(challenger), challenger.run_id)
    if verdict == "promoted":
        text = f"v{version} promoted to champion ({reason})"
    else:
        text = f"v{version} kept as challenger: it does not beat champion v{champion} ({reason})"
    return text, text


@task(name="explain", cache_policy=_cached("lake", exclude=("split",)))
def explain(champion: str, split: _Split, random_state: int):
    """SHAP values of the champion on validation rows; save the beeswarm."""
    plots = get_settings().data_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    model = load_model(MODEL_NAME, "champion")  # what serving uses
    explanation = compute_shap_values(model, split.X_test, max_rows=500, random_state=random_state)
    importance = pd.Series(
        abs(explanation.values).mean(axis=0), index=explanation.feature_names
    ).sort_values(ascending=False)
    plot_shap_summary(explanation).savefig(plots / "shap_summary.png", dpi=100)
    top = ", ".join(importance.index[:3])
    return None, f"{len(explanation.values)} rows; top features: {top}"


@task(name="score", cache_policy=_cached("lake"), **IO)
def score(last_day: pd.Timestamp, champion: str):
    """Batch-score the last day with the champion (resumable: done rows are skipped)."""
    scored = score_day(last_day, model_name=MODEL_NAME, alias="champion")
    if str(scored.model_version) != champion:  # the alias moved while we ran
        raise RuntimeError(f"scored with v{scored.model_version}, champion is v{champion}")
    blocked = read_sql(
        "select count(*) as n from predictions where model_name = :name and decision = 'block' "
        "and tx_date >= :start",
        params={"name": MODEL_NAME, "start": f"{last_day:%Y-%m-%d} 00:00:00"},
    )["n"].iloc[0]
    return scored.n_transactions, (
        f"{scored.n_scored:,} scored ({scored.n_already_scored:,} already), {int(blocked)} "
        f"blocked, v{scored.model_version}"
    )


@task(name="monitor", cache_policy=_cached("lake", exclude=("split",)), **IO)
def monitor(champion: str, split: _Split):
    """Drift of the scored day against the validation period, features and score."""
    model = load_model(MODEL_NAME, "champion")
    reference = split.X_test.assign(score=model.predict_proba(split.X_test)[:, 1])
    # PSI only, from the "moderate shift" band: with 17k reference rows the KS and
    # chi-squared tests flag even an hour-of-day wobble (PSI 0.015)
    check = run_drift_check(
        reference, model_name=MODEL_NAME, psi_threshold=0.1, p_value_threshold=0.0
    )
    plots = get_settings().data_dir / "plots"
    plot_drift_report(check.report).savefig(plots / "drift_report.png", dpi=100)
    drifted = ", ".join(check.drifted_features[:4])
    more = " ..." if len(check.drifted_features) > 4 else ""
    verdict = f"DRIFT in {drifted}{more}" if check.flagged else "no drift"
    return (check.flagged, verdict), f"{verdict} (run {check.run_id[:8]})"


@task(name="retrain", cache_policy=_cached("lake"))
def retrain(champion: str, as_of: pd.Timestamp, train_days: int, eval_days: int):
    """Run the continuous-training flow (a subflow) on the latest labelled window."""
    decision = continuous_training(
        as_of=as_of, trigger="drift", train_days=train_days, eval_days=eval_days
    )
    verdict = f"{decision.decision}: {decision.reason}"
    return verdict, verdict


IO_TASKS = (ingest, register, score, monitor)  # retried: files, database, MLflow


def _say(line: str) -> None:
    """Print a progress line and send it to the flow run's log (the UI)."""
    print(line, flush=True)
    get_run_logger().info(line)


def _retrain_days(n_days: int) -> tuple[int, int]:
    """Train and evaluation days of the window labelled the day after the last; or (0, 0)."""
    labelled = n_days - LABEL_DELAY_DAYS  # days whose legitimate labels are known by then
    if labelled < 2:
        return 0, 0
    eval_days = min(3, labelled // 3) or 1
    return labelled - eval_days, eval_days


def _stage(name: str, stage, *args, refresh: bool):
    """Run ``stage(*args)`` -> (result, detail); say its name, detail, time or that it was cached."""
    started = time.perf_counter()
    _say(f"-> {name}")
    options = {"result_storage": get_settings().data_dir / "prefect", "persist_result": True}
    state = stage.with_options(refresh_cache=refresh, **options)(*args, return_state=True)
    result, detail = state.result()
    how = "cached: skipped" if state.name == "Cached" else f"{time.perf_counter() - started:.1f} s"
    _say(f"   {detail} ({how})")
    return result, state.name == "Cached"


@flow(name="course-pipeline")
@validate_params(n_days=Interval(int, 4, None), random_state=Interval(int, 0, None))
def course_pipeline(
    n_days: int = 30, random_state: int = RANDOM_STATE, refresh: bool = False
) -> dict:
    """Run the course pipeline: ingest, features, train and tune, gate, score, monitor.

    Parameters
    ----------
    n_days : int, default=30
        Days of transactions to simulate, >= 4: all but the last train and validate the
        model (time split 70/30), the last is scored in batch and monitored.
    random_state : int, default=RANDOM_STATE
        Seed for the simulator, the models and the SHAP sample.
    refresh : bool, default=False
        Run every stage even if its inputs did not change (refresh Prefect's cache).

    Returns
    -------
    dict
        What was written where, the gate's and the monitor's verdicts, the stages skipped.
    """
    last_day = START + pd.Timedelta(days=n_days - 1)
    skipped = []  # for each stage: was it cached?

    def run(name, stage, *args):
        result, cached = _stage(name, stage, *args, refresh=refresh)
        skipped.append(cached)
        return result

    tracking_uri, _ = _stage("configuration", configure, refresh=refresh)
    root = run(
        "simulate: land raw files (dirty records included)", land_raw,
        START, last_day, n_days, random_state,
    )  # fmt: skip
    n_rows = run("ingest: bronze -> silver -> gold -> database", ingest, START, last_day)
    split = run("point-in-time features", build_features, last_day)
    baseline_ap = run("train: per-row baseline", train_baseline, split, random_state)
    search, run_id, test_ap = run(
        "tune: windowed features, grid of 4, 3 time-ordered folds (tracked)", tune,
        split, random_state, baseline_ap,
    )  # fmt: skip
    version, served_by = run(
        "register as challenger, with its ONNX graph for serving", register,
        search, run_id, split,
    )  # fmt: skip
    gate_text = run("promote through the metric gate", promote, version, split)
    champion = str(get_model_version(MODEL_NAME, "champion"))  # today's: the gate may be cached
    run(f"explain champion v{champion} (SHAP)", explain, champion, split, random_state)
    n_day = run(f"batch-score {last_day:%Y-%m-%d} with the champion", score, last_day, champion)
    flagged, verdict = run(
        "monitor: drift against the validation period (PSI >= 0.1)", monitor, champion, split
    )
    as_of, (train_days, eval_days) = last_day + pd.Timedelta(days=1), _retrain_days(n_days)
    retraining = "not needed (no drift)"
    if flagged and not train_days:
        retraining = f"skipped: too few labelled days by {as_of:%Y-%m-%d} (labels: a week later)"
    elif flagged:
        retraining = run(
            "continuous training: drift flagged, retrain on the latest labelled window",
            retrain, champion, as_of, train_days, eval_days,
        )  # fmt: skip
    plots, champion = get_settings().data_dir / "plots", get_model_version(MODEL_NAME, "champion")
    return {
        "database": get_settings().describe()["DATABASE_URL"][0],
        "lake": f"{root} (raw/, lake/bronze|silver|gold/, rejected/)",
        "tables": "customers, terminals, transactions, predictions, drift_reports",
        "transactions": f"{n_rows:,}",
        "tuning run": f"{run_id} ({len(search.cv_results_['params'])} nested candidate runs)",
        "registered model": f"{MODEL_NAME} version {champion} (alias champion)",
        "gate": gate_text,
        "served by": f"v{version}: {served_by}",
        "validation AP": f"{test_ap:.3f} (per-row baseline {baseline_ap:.3f})",
        "scored rows": f"{n_day:,} on {last_day:%Y-%m-%d} -> table predictions",
        "drift": f"{verdict} -> table drift_reports, experiment monitoring",
        "retraining": retraining,
        "plots": f"{plots / 'shap_summary.png'}, {plots / 'drift_report.png'}",
        "stages cached": f"{sum(skipped)} of {len(skipped)}",
        "tracking_uri": tracking_uri,
        "flow_run": f"{flow_run.name} at {flow_run.ui_url}",
    }


def build_deployments(pipeline_cron: str = PIPELINE_CRON, retrain_cron: str = RETRAIN_CRON):
    """Return the deployments of the pipeline (nightly) and of continuous training (daily).

    Parameters
    ----------
    pipeline_cron : str, default="0 2 * * *"
        When the course pipeline runs (cron, local time of the serving process).
    retrain_cron : str, default="0 6 * * *"
        When the continuous-training flow checks whether to retrain.

    Returns
    -------
    list
        Two ``RunnerDeployment`` objects for ``prefect.serve``.
    """
    return [
        course_pipeline.to_deployment(name="nightly", cron=pipeline_cron),
        continuous_training.to_deployment(name="daily", cron=retrain_cron),
    ]


def serve_flows(pipeline_cron: str = PIPELINE_CRON, retrain_cron: str = RETRAIN_CRON) -> None:
    """Serve both deployments on their schedules until interrupted (needs a Prefect server).

    Parameters
    ----------
    pipeline_cron : str, default="0 2 * * *"
        When the course pipeline runs.
    retrain_cron : str, default="0 6 * * *"
        When the continuous-training flow runs.
    """
    serve(*build_deployments(pipeline_cron, retrain_cron))

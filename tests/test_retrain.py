"""Continuous training: a drifted week triggers retraining; the gate's decision is recorded."""

import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier

from course.retrain import (
    COLUMNS,
    DECISIONS_TABLE,
    RetrainDecision,
    continuous_training,
    decision_row,
    gate,
    labelled_window,
    read_labelled_window,
    rollback,
    split_window,
)
from production.config import RANDOM_STATE
from production.data import export_raw_days, run_pipeline
from production.db import get_engine, read_table, write_table
from production.feature_store import read_transactions
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.serving import MODEL_NAME, run_drift_check, score_day
from production.simulate import simulate
from production.tracking import get_model_version, log_run, register_model, training_data

DAYS, DRIFT = pd.date_range("2026-01-01", "2026-01-21"), "2026-01-15"  # the last week drifts


def _build_database():
    """Three weeks of transactions in the embedded database, drift from day 15, labels in a day."""
    export_raw_days(
        n_customers=300, n_terminals=100, n_days=len(DAYS), start_date=DAYS[0],
        drift_start=DRIFT, label_delay_days=1, dirty_rate=0.0, random_state=RANDOM_STATE,
    )  # fmt: skip
    run_pipeline(DAYS[0], DAYS[-1], show_progress=False)


def _register_champion():
    """Train on the days before the drift, register as champion; return validation rows."""
    rows = read_transactions(DAYS[0], DRIFT)
    features, is_train = (
        compute_model_features(rows),
        (rows["tx_datetime"] < "2026-01-11").to_numpy(),
    )
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(max_iter=30, random_state=RANDOM_STATE),
    ).fit(features[is_train], rows.loc[is_train, "is_fraud"])
    run_id = log_run("champion", model=pipeline, input_example=features.head(2))
    register_model(run_id, MODEL_NAME, alias="champion")
    validation = features[~is_train]
    return validation.assign(score=pipeline.predict_proba(validation)[:, 1])


def test_drift_triggers_retraining_and_every_decision_is_recorded(prefect_api):
    _build_database()
    with pytest.raises(ValueError, match="no labelled transactions by as_of=2025-12-31"):
        continuous_training(as_of="2025-12-31")
    with pytest.raises(LookupError, match="no alias 'champion'.*register a champion first"):
        continuous_training()
    reference = _register_champion()
    score_day(DAYS[-1])
    check = run_drift_check(reference, psi_threshold=0.1, p_value_threshold=0.0)
    assert check.flagged, check.report

    promoted = continuous_training(trigger="drift", train_days=10, eval_days=3)
    assert (promoted.decision, promoted.trigger) == ("promoted", "drift"), promoted
    assert (promoted.champion_version, promoted.candidate_version) == ("1", "2")
    assert promoted.candidate_score > promoted.champion_score
    assert promoted.as_of == read_table("transactions")["tx_datetime"].max()
    assert get_model_version(MODEL_NAME, "champion") == "2"
    assert get_model_version(MODEL_NAME, "previous") == "1"
    tags = MlflowClient().get_model_version(MODEL_NAME, "2").tags
    assert tags["decision"] == "promoted" and tags["trigger"] == "drift"
    assert tags["reason"] == promoted.reason and tags["champion_version"] == "1"
    assert float(tags["candidate_score"]) == pytest.approx(promoted.candidate_score)
    lineage = training_data(MODEL_NAME, 2)  # the candidate's run logged its training rows
    assert lineage["source"].startswith("db://transactions?start=")

    kept = continuous_training(
        promoted.as_of, trigger="manual", train_days=10, eval_days=3, min_improvement=1.0
    )
    assert (kept.decision, kept.candidate_version, kept.champion_version) == ("kept", "3", "2")
    assert "not more than the margin 1" in kept.reason
    assert get_model_version(MODEL_NAME, "champion") == "2"

    rolled = rollback(reason="candidate blocks too many good customers")
    assert (rolled.decision, rolled.candidate_version, rolled.champion_version) == (
        "rolled_back", "1", "2",
    )  # fmt: skip
    assert get_model_version(MODEL_NAME, "champion") == "1"
    assert MlflowClient().get_model_version(MODEL_NAME, "2").tags["decision"] == "rolled_back"
    with pytest.raises(LookupError, match="no alias 'previous'.*nothing to roll back to"):
        rollback(reason="again")

    decisions = read_table(DECISIONS_TABLE)
    assert list(decisions.columns) == list(COLUMNS)
    assert decisions["decision"].tolist() == ["promoted", "kept", "rolled_back"]
    assert decisions["candidate_version"].tolist() == ["2", "3", "1"]
    assert decisions["trigger"].tolist() == ["drift", "manual", "manual"]
    assert decisions["candidate_score"].iloc[:2].tolist() == pytest.approx(
        [promoted.candidate_score, kept.candidate_score]
    )


def test_window_split_and_gate_are_pure():
    window = labelled_window("2026-01-10", "2026-01-09 12:00", train_days=2, eval_days=1)
    assert (window.train_start, window.eval_start) == (
        pd.Timestamp("2026-01-06 12:00"), pd.Timestamp("2026-01-08 12:00"),
    )  # fmt: skip
    times = pd.to_datetime(
        ["2026-01-07 00:00", "2026-01-07 06:00", "2026-01-09 00:00", "2026-01-09 06:00"]
    )
    rows = pd.DataFrame(
        {
            "tx_datetime": times,
            "label_available_at": times + pd.Timedelta(hours=12),
            "is_fraud": [0, 1, 1, 0],
        }
    )
    features = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0]})
    data = split_window(rows, features, window)
    assert data["X_train"]["amount"].tolist() == [1.0, 2.0]
    assert data["X_eval"]["amount"].tolist() == [3.0, 4.0]
    late = rows.assign(label_available_at=rows["label_available_at"].where(rows["is_fraud"] == 0))
    with pytest.raises(ValueError, match="widen train_days"):
        split_window(
            late.fillna({"label_available_at": pd.Timestamp("2026-02-01")}), features, window
        )
    assert gate(0.5, 0.4, 0.05)[0] == "promoted"
    assert gate(0.5, 0.4, 0.1)[0] == "kept"  # the gain must be MORE than the margin


@pytest.mark.parametrize(
    "bad",
    [
        {"trigger": "cron"},
        {"train_days": 0},
        {"eval_days": 2.5},
        {"min_improvement": 2.0},
        {"random_state": -1},
        {"model_name": None},
        {"as_of": "not a date"},
        {"table": "transactions; drop table x"},
    ],
)
def test_bad_parameters_are_named(bad):
    with pytest.raises(ValueError, match=f"'{next(iter(bad))}' parameter"):
        continuous_training.fn(**bad)  # the flow's function: checks come first


def test_clear_errors_without_data(prefect_api):
    with pytest.raises(ValueError, match="'eval_days' parameter"):
        continuous_training(eval_days=0)  # through Prefect: the flow run fails, the error is raised
    with pytest.raises(ValueError, match="no table 'transactions'"):
        continuous_training()
    with pytest.raises(ValueError, match="no table 'lab_transactions'"):
        continuous_training(table="lab_transactions")
    with pytest.raises(ValueError, match="'reason' parameter of rollback"):
        rollback(reason=" ")


@pytest.mark.integration
def test_labelled_window_and_decisions_on_postgresql(postgres_url, monkeypatch):
    schema = f"retrain_{uuid.uuid4().hex[:8]}"  # a scratch schema: the tables have fixed names
    with get_engine(postgres_url).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    monkeypatch.setenv("DATABASE_URL", f"{postgres_url}{sep}options=-csearch_path%3D{schema}")
    try:
        rows = simulate(n_customers=100, n_terminals=40, n_days=6, label_delay_days=1).transactions
        write_table(rows, "lab_transactions")  # any table of transactions
        window, read, _ = read_labelled_window.fn(None, 3, 1, "lab_transactions")
        assert window.source().startswith("db://lab_transactions?start=")
        legit = rows[(rows["is_fraud"] == 0) & (rows["label_available_at"] <= window.as_of)]
        assert (window.as_of, window.end) == (rows["tx_datetime"].max(), legit["tx_datetime"].max())
        assert read["tx_datetime"].max() == window.end
        kept = RetrainDecision("kept", "test", "ap", "2", "1", 0.5, 0.6, "manual", window.as_of)
        rolled = RetrainDecision(
            "rolled_back", "test", "ap", "1", "2", None, None, "manual", window.as_of
        )
        for decision in (kept, rolled):  # created on first use, then appended
            write_table(decision_row(decision, "m"), DECISIONS_TABLE, mode="append")
        stored = read_table(DECISIONS_TABLE)
        assert stored["decision"].tolist() == ["kept", "rolled_back"]
        assert stored["champion_score"].iloc[0] == 0.6 and pd.isna(stored["champion_score"].iloc[1])
    finally:
        with get_engine(postgres_url).begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))

"""Serving: ONNX = the pipeline, fallback with a reason, online = offline features, jobs."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

import production.serving as serving
from production import tracking
from production.db import get_engine, read_table, write_table
from production.feature_store import OnlineFeatureStore
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.serving import (
    ServingModel,
    check_onnx,
    convert_to_onnx,
    load_features,
    load_serving_model,
    probe_rows,
    register_for_serving,
    resolve_threshold,
    run_drift_check,
    score_day,
)
from production.simulate import simulate

DAY = "2026-01-09"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP thread: on a busy 2-core machine a spinning thread team costs seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def transactions():
    """Ten days, 80 customers, 30 terminals (~150 transactions a day), drift from day 8."""
    return simulate(
        n_customers=80, n_terminals=30, n_days=10, drift_start="2026-01-08", random_state=0
    ).transactions


@pytest.fixture(scope="module")
def features(transactions):
    return compute_model_features(transactions)


def _fit(model, features, transactions):
    preprocessor = build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES))
    return build_pipeline(preprocessor, model).fit(features, transactions["is_fraud"])


@pytest.fixture(scope="module")
def pipeline(transactions, features):
    model = HistGradientBoostingClassifier(max_iter=25, random_state=0)
    return _fit(model, features, transactions)


@pytest.fixture(scope="module")
def onnx_model(pipeline, features):
    return convert_to_onnx(pipeline, features.head())


@pytest.fixture(scope="module")
def model(pipeline, onnx_model):
    return ServingModel(pipeline, name="fraud-test", version="1", onnx_model=onnx_model)


@pytest.fixture
def engine(tmp_path, transactions):
    engine = get_engine(f"sqlite:///{(tmp_path / 'serving.db').as_posix()}")
    write_table(transactions, "transactions", engine=engine)
    return engine


# ------------------------------------------------------------------------------ ONNX


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "logistic_regression"])
def test_onnx_scores_equal_the_pipeline_on_10000_rows_with_extremes(kind, transactions, features):
    """ONNX's trees compare and sum in float32: about 1e-6 at most, no decision flipped."""
    estimator = {
        "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
        "logistic_regression": LogisticRegression(max_iter=2000),
    }[kind]
    fitted = _fit(estimator, features, transactions)
    probes = probe_rows(fitted, features, n_rows=10_000, random_state=1)
    assert probes["amount"].isin([1e9, 0.0]).any() and probes["channel"].isna().any()
    assert (probes["channel"] == "__unseen_category__").any()
    served = ServingModel(fitted, onnx_model=convert_to_onnx(fitted, features.head()))
    assert (served.backend, served.fallback_reason) == ("onnx", None)
    expected = fitted.predict_proba(probes)[:, 1]
    scores = served.score_frame(probes)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=2e-6)
    assert (served.decide(scores) == served.decide(expected)).all()
    records = probes.head(2_000).to_dict(orient="records")  # the API's path, row by row
    one_by_one = [served.score_records([r])[0] for r in records[:200]]
    np.testing.assert_array_equal(one_by_one, scores[:200])
    np.testing.assert_array_equal(served.score_records(records), scores[:2_000])


def test_check_onnx_measures_the_difference(pipeline, onnx_model, features, transactions):
    inputs = ort.InferenceSession(onnx_model).get_inputs()  # packed: one run feeds two arrays
    assert [(i.name, i.shape[1]) for i in inputs] == [
        ("numbers", len(NUMERIC_FEATURES)),
        ("text", len(CATEGORICAL_FEATURES)),
    ]
    probes = probe_rows(pipeline, features, n_rows=500)
    assert check_onnx(onnx_model, pipeline, probes) < 1e-6
    other = _fit(HistGradientBoostingClassifier(max_iter=5, random_state=0), features, transactions)
    assert check_onnx(onnx_model, other, probes) > 1e-3
    with pytest.raises(ValueError, match="amount"):
        check_onnx(onnx_model, pipeline, probes.drop(columns="amount"))


def test_probe_rows_are_seeded_and_checked(pipeline, features):
    pd.testing.assert_frame_equal(probe_rows(pipeline, n_rows=50), probe_rows(pipeline, n_rows=50))
    assert list(probe_rows(pipeline, n_rows=3).columns) == list(FEATURE_COLUMNS)
    with pytest.raises(ValueError, match="n_rows"):
        probe_rows(pipeline, n_rows=0)


def test_a_model_onnx_cannot_serve_falls_back_to_sklearn_with_the_reason(
    pipeline, onnx_model, features, transactions, monkeypatch, caplog
):
    logged = []
    monkeypatch.setattr(tracking, "log_onnx_model", lambda *a, **k: logged.append(k))
    unconvertible = build_pipeline(  # skl2onnx converts no FunctionTransformer(func=...)
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        LogisticRegression(max_iter=500),
    )
    unconvertible.set_params(preprocess__num__scale=FunctionTransformer(np.tanh))
    unconvertible.fit(features, transactions["is_fraud"])
    result = register_for_serving(unconvertible, features, run_id="r1", n_rows=200)
    assert result["backend"] == "sklearn" and "ONNX conversion failed" in result["reason"]
    assert not logged and "served by scikit-learn" in caplog.text

    assert register_for_serving(pipeline, features, run_id="r2", n_rows=500)["backend"] == "onnx"
    assert logged == [{"run_id": "r2", "name": "onnx"}]

    broken = ServingModel(pipeline, onnx_model=b"not an onnx model")
    assert broken.backend == "sklearn" and broken.fallback_reason.startswith("ONNX model rejected")
    other = _fit(HistGradientBoostingClassifier(max_iter=5, random_state=0), features, transactions)
    wrong = ServingModel(other, onnx_model=onnx_model)  # another model's graph
    assert wrong.backend == "sklearn" and "differ" in wrong.fallback_reason
    plain = ServingModel(pipeline)
    assert plain.backend == "sklearn" and "no ONNX model" in plain.fallback_reason
    np.testing.assert_allclose(broken.score_frame(features), pipeline.predict_proba(features)[:, 1])


def test_serving_model_scores_decides_and_names_unknown_categories(model, features):
    record = features.iloc[0].to_dict()
    assert model.unknown_categories({**record, "channel": "crypto"}) == ["channel"]
    assert model.unknown_categories(record) == []
    assert list(model.decide([0.1, 0.5, 0.9])) == ["approve", "block", "block"]
    with pytest.raises(ValueError, match="amount"):
        model.score_records([{k: v for k, v in record.items() if k != "amount"}])
    with pytest.raises(ValueError, match="amount"):
        model.score_frame(features.drop(columns="amount"))
    assert model.score_frame(features.head(0)).shape == (0,)
    with pytest.raises(TypeError, match="predict_proba"):
        ServingModel(object())


def test_threshold_comes_from_argument_then_environment_then_default(monkeypatch):
    assert resolve_threshold() == 0.5
    monkeypatch.setenv("DECISION_THRESHOLD", "0.8")
    assert resolve_threshold() == 0.8 and resolve_threshold(0.3) == 0.3
    monkeypatch.setenv("DECISION_THRESHOLD", "high")
    with pytest.raises(ValueError, match="DECISION_THRESHOLD"):
        resolve_threshold()
    with pytest.raises(ValueError, match="threshold"):
        resolve_threshold(1.5)


def test_two_huge_amounts_still_score(transactions, model):
    store = OnlineFeatureStore()
    row = transactions.iloc[0].to_dict()
    for i in range(2):
        when = row["tx_datetime"] + pd.Timedelta(minutes=i)
        store.record({**row, "transaction_id": i, "amount": 1e308, "tx_datetime": when})
    features = store.lookup({**row, "tx_datetime": row["tx_datetime"] + pd.Timedelta(hours=1)})
    assert 0.0 <= model.score_records([features])[0] <= 1.0


# ---------------------------------------------------------------------- batch scoring


def test_score_day_is_idempotent_and_keyed_by_day_and_id(engine, model, transactions):
    first = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert first.n_scored == first.n_transactions > 100 and first.n_chunks >= 3
    table = read_table("predictions", engine=engine)
    assert len(table) == first.n_transactions
    expected = model.score_frame(load_features(DAY, "2026-01-10", engine=engine))
    np.testing.assert_allclose(np.sort(table["score"]), np.sort(expected))
    again = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert (again.n_scored, again.n_already_scored) == (0, first.n_transactions)
    pd.testing.assert_frame_equal(read_table("predictions", engine=engine), table)

    # the same transaction_id on another day is another prediction, not an overwrite
    other_day = score_day("2026-01-08", model=model, engine=engine)
    both = read_table("predictions", engine=engine)
    assert len(both) == first.n_transactions + other_day.n_transactions
    assert not both.duplicated(["tx_date", "transaction_id"]).any()


def test_crash_mid_run_then_rerun_scores_every_row_exactly_once(engine, model, monkeypatch):
    real_write, calls = serving.write_table, []

    def crash_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full (simulated)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(serving, "write_table", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert len(read_table("predictions", engine=engine)) == 80  # chunk 3 rolled back
    monkeypatch.setattr(serving, "write_table", real_write)
    rerun = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert (rerun.n_already_scored, rerun.n_scored) == (80, rerun.n_transactions - 80)
    final = read_table("predictions", engine=engine)
    assert len(final) == final["transaction_id"].nunique() == rerun.n_transactions


def test_a_new_version_replaces_the_days_predictions(engine, pipeline, model):
    score_day(DAY, model=model, chunk_size=40, engine=engine)
    v2 = ServingModel(pipeline, name="fraud-test", version="2", threshold=0.0)
    assert score_day(DAY, model=v2, engine=engine).n_scored > 100
    table = read_table("predictions", engine=engine)
    assert set(table["model_version"]) == {"2"} and set(table["decision"]) == {"block"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"day": "yesterday-ish"}, "'day' parameter"),
        ({"chunk_size": 0}, "'chunk_size' parameter"),
        ({"predictions_table": "p; drop table x"}, "'predictions_table' parameter"),
        ({"table": "no_such_table"}, "no_such_table"),
    ],
)
def test_score_day_rejects_bad_input(engine, model, kwargs, match):
    kwargs = {"day": DAY, **kwargs}
    with pytest.raises(ValueError, match=match):
        score_day(kwargs.pop("day"), model=model, engine=engine, **kwargs)


# ------------------------------------------------------------- registry and monitoring


def test_registered_version_is_served_through_onnx_and_drift_is_recorded(
    monkeypatch, tmp_path, engine, pipeline, features
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    run_id = tracking.log_run("serving-tests", model=pipeline)
    assert register_for_serving(pipeline, features, run_id=run_id, n_rows=500)["backend"] == "onnx"
    version = tracking.register_model(run_id, "fraud-batch", alias="champion")
    loaded = load_serving_model("fraud-batch")
    assert (loaded.version, loaded.alias, loaded.backend) == (version, "champion", "onnx")
    result = score_day(DAY, model_name="fraud-batch", engine=engine)
    assert (result.model_name, result.model_version) == ("fraud-batch", version)
    with pytest.raises(LookupError, match="no-such-model"):
        load_serving_model("no-such-model")

    reference = load_features("2026-01-01", "2026-01-07", engine=engine)
    reference["score"] = loaded.score_frame(reference)
    check = run_drift_check(reference, model_name="fraud-batch", engine=engine)
    assert (check.window_start, check.window_end) == (pd.Timestamp(DAY), pd.Timestamp("2026-01-10"))
    assert check.flagged and "amount" in check.drifted_features
    assert "tx_weekday" not in check.report["feature"].tolist()  # one day: weekday left out
    from mlflow import MlflowClient

    assert MlflowClient().get_run(check.run_id).data.tags["drift.flagged"] == "true"
    again = run_drift_check(reference, model_name="fraud-batch", engine=engine)
    assert again.run_id != check.run_id and again.report.equals(check.report)
    assert len(read_table("drift_reports", engine=engine)) == len(check.report)  # one report


def test_drift_check_needs_predictions_in_the_window(engine, model, features):
    with pytest.raises(ValueError, match="predictions"):
        run_drift_check(features, model_name="fraud-test", engine=engine)
    score_day(DAY, model=model, engine=engine)
    with pytest.raises(ValueError, match="no predictions of 'fraud-test' on 2026-01-02"):
        run_drift_check(features, model_name="fraud-test", window_end="2026-01-03", engine=engine)
    with pytest.raises(TypeError, match="reference"):
        run_drift_check(features.to_numpy(), engine=engine)


def test_nothing_runs_at_import(tmp_path):
    code = "import production.serving, course.api, os; print(os.listdir('.'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PRODUCTION_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.integration
def test_resumable_batch_scoring_on_postgres(postgres_url, transactions, model, monkeypatch):
    import uuid

    import sqlalchemy as sa

    engine = get_engine(postgres_url)
    suffix = uuid.uuid4().hex[:8]
    source, target = f"tx_serving_{suffix}", f"predictions_{suffix}"
    write_table(transactions, source, engine=engine)
    real_write, calls = serving.write_table, []

    def crash_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("connection lost (simulated)")
        return real_write(*args, **kwargs)

    jobs = {"model": model, "table": source, "predictions_table": target, "engine": engine}
    try:
        monkeypatch.setattr(serving, "write_table", crash_on_second_chunk)
        with pytest.raises(RuntimeError):
            score_day(DAY, chunk_size=50, **jobs)
        monkeypatch.setattr(serving, "write_table", real_write)
        result = score_day(DAY, chunk_size=50, **jobs)
        assert result.n_already_scored == 50
        final = read_table(target, engine=engine)
        assert len(final) == final["transaction_id"].nunique() == result.n_transactions
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop table if exists {source}"))
            conn.execute(sa.text(f"drop table if exists {target}"))

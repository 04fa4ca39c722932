"""Serving: features online = offline, the fast path = the pipeline, batch scoring, drift job."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
)

import production.serving as serving
from production.db import get_engine, read_sql, read_table, write_table
from production.features import build_pipeline, build_preprocessor
from production.serving import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    PREDICTION_COLUMNS,
    OnlineFeatureStore,
    ServingModel,
    compute_model_features,
    load_features,
    load_serving_model,
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


@pytest.fixture(scope="module")
def pipeline(transactions, features):
    preprocessor = build_preprocessor(
        list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES), scale=False
    )
    model = HistGradientBoostingClassifier(max_iter=25, random_state=0)
    return build_pipeline(preprocessor, model).fit(features, transactions["is_fraud"])


@pytest.fixture(scope="module")
def model(pipeline):
    return ServingModel.from_pipeline(pipeline, name="fraud-test", version="1")


@pytest.fixture
def engine(tmp_path, transactions):
    engine = get_engine(f"sqlite:///{(tmp_path / 'serving.db').as_posix()}")
    write_table(transactions, "transactions", engine=engine)
    return engine


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0, equal_nan=True))


def _mismatches(online: list[dict], offline: pd.DataFrame) -> list:
    return [
        (i, column, record[column], offline.iloc[i][column])
        for i, record in enumerate(online)
        for column in FEATURE_COLUMNS
        if not _same(record[column], offline.iloc[i][column])
    ]


# --------------------------------------------------------------------------- features


def test_model_features_have_the_documented_columns(features, transactions):
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert features.index.equals(transactions.index)
    assert (features["tx_hour"] == transactions["tx_datetime"].dt.hour).all()


def test_model_features_name_a_missing_column(transactions):
    with pytest.raises(ValueError, match="label_available_at"):
        compute_model_features(transactions.drop(columns="label_available_at"))
    with pytest.raises(TypeError, match="DataFrame"):
        compute_model_features(transactions.to_numpy())


def test_online_and_offline_features_equal_for_the_same_transaction(transactions, features):
    """History loaded with its labels: every lookup equals the offline row."""
    cutoff = pd.Timestamp(DAY)
    past = transactions[transactions["tx_datetime"] < cutoff]
    today = transactions[transactions["tx_datetime"] >= cutoff]
    store = OnlineFeatureStore()
    store.add_history(past)
    online = []
    for row in today.to_dict(orient="records"):
        online.append(store.lookup(row))
        store.add_history(pd.DataFrame([row]))  # the transaction, then its label later
    assert len(online) > 100
    assert not _mismatches(online, features.loc[today.index])
    assert (features.loc[today.index, "terminal_fraud_count_28d"] > 0).any()


def test_streaming_store_with_label_feedback_equals_offline(transactions, features):
    """Transactions recorded unlabelled, labels fed back as they arrive: still equal."""
    start = pd.Timestamp("2026-01-06")
    past = transactions[transactions["tx_datetime"] < start]
    stream = transactions[transactions["tx_datetime"] >= start]
    store = OnlineFeatureStore()
    store.add_history(past)
    pending = stream.sort_values("label_available_at")
    fed = 0
    online = []
    for row in stream.to_dict(orient="records"):
        arrived = pending.iloc[fed:]
        arrived = arrived[arrived["label_available_at"] <= row["tx_datetime"]]
        if len(arrived):
            store.add_labels(arrived)
            fed += len(arrived)
        online.append(store.lookup(row))
        assert store.record(row)
    assert fed > 0
    assert not _mismatches(online, features.loc[stream.index])


def test_store_ignores_repeated_transactions_and_forgets_old_history(transactions):
    store = OnlineFeatureStore()
    store.add_history(transactions)
    n = store.n_rows
    row = transactions.iloc[-1].to_dict()
    before = store.lookup(row)
    assert not store.record(row)  # same transaction_id: a retried request
    assert store.n_rows == n
    assert store.lookup(row) == pytest.approx(before, nan_ok=True)
    later = {
        **row,
        "transaction_id": None,
        "tx_datetime": row["tx_datetime"] + pd.Timedelta(days=40),
    }
    store.record(later)
    store.add_history(transactions.head(0))  # prunes
    assert store.n_rows == 1


def test_store_names_missing_columns():
    with pytest.raises(ValueError, match="amount"):
        OnlineFeatureStore().add_history(pd.DataFrame({"tx_datetime": [], "customer_id": []}))


# ------------------------------------------------------------------------- fast path


def _mixed_frame(n=400, random_state=0):
    rng = np.random.default_rng(random_state)
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "amount": amount,
            "hour": rng.integers(0, 24, n).astype(float),
            "channel": rng.choice(["chip", "online", "swipe", "rare"], n, p=[0.5, 0.3, 0.18, 0.02]),
            "size": rng.choice(["S", "M", "L"], n),
        }
    ).astype({"channel": object, "size": object})


@pytest.mark.parametrize(
    "kind",
    ["course_hgb", "scaled_logistic", "infrequent_onehot", "ordinal_minmax"],
)
def test_fast_path_scores_equal_the_pipeline(kind):
    X = _mixed_frame()
    y = ((X["amount"].fillna(0) > 40) & (X["channel"] == "online")).astype(int)
    y.iloc[:5] = 1 - y.iloc[:5]
    if kind == "course_hgb":
        pipe = build_pipeline(
            build_preprocessor(["amount", "hour"], ["channel", "size"], scale=False),
            HistGradientBoostingClassifier(max_iter=30, random_state=0),
        )
    elif kind == "scaled_logistic":
        pipe = build_pipeline(
            build_preprocessor(["amount", "hour"], ["channel"]), LogisticRegression()
        )
    elif kind == "infrequent_onehot":
        pipe = build_pipeline(
            build_preprocessor(["amount"], ["channel", "size"], min_frequency=20),
            LogisticRegression(),
        )
    else:
        pre = ColumnTransformer(
            [
                ("num", MinMaxScaler(), ["hour"]),
                (
                    "ord",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    ["size"],
                ),
                ("cat", OneHotEncoder(handle_unknown="ignore", drop="first"), ["channel"]),
            ]
        )
        pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression())])
    pipe.fit(X, y)
    served = ServingModel.from_pipeline(pipe)
    assert served.fast_path, served.fast_path_reason
    assert served.compiled_trees == (kind == "course_hgb")
    probe = _mixed_frame(300, random_state=1)
    probe.loc[::7, "channel"] = "never-seen"
    expected = pipe.predict_proba(probe)[:, 1]
    got = served.score_records(probe.to_dict(orient="records"))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_unsupported_steps_fall_back_to_the_pipeline():
    X = _mixed_frame()
    y = (X["hour"] > 12).astype(int)
    pre = ColumnTransformer(
        [
            ("log", FunctionTransformer(np.log1p), ["hour"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression())]).fit(X, y)
    served = ServingModel.from_pipeline(pipe)
    assert not served.fast_path and "FunctionTransformer" in served.fast_path_reason
    records = X.head(20).to_dict(orient="records")
    np.testing.assert_allclose(served.score_records(records), pipe.predict_proba(X.head(20))[:, 1])


def test_serving_model_reports_unknown_categories_and_missing_features(model, features):
    record = features.iloc[0].to_dict()
    assert model.unknown_categories(record) == []
    assert model.unknown_categories({**record, "channel": "telepathy"}) == ["channel"]
    with pytest.raises(ValueError, match=r"\['amount'\]"):
        model.score_records([{k: v for k, v in record.items() if k != "amount"}])
    with pytest.raises(ValueError, match="tx_hour"):
        model.score_frame(features.drop(columns="tx_hour"))


def test_serving_model_rejects_what_it_cannot_serve():
    with pytest.raises(TypeError, match="predict_proba"):
        ServingModel.from_pipeline(object())
    fitted_on_numpy = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(TypeError, match="feature_names_in_"):
        ServingModel.from_pipeline(fitted_on_numpy)


def test_threshold_comes_from_argument_then_environment_then_default(monkeypatch, pipeline):
    assert resolve_threshold() == serving.DEFAULT_THRESHOLD
    monkeypatch.setenv("DECISION_THRESHOLD", "0.2")
    assert resolve_threshold() == 0.2
    assert resolve_threshold(0.7) == 0.7
    assert ServingModel.from_pipeline(pipeline).threshold == 0.2
    monkeypatch.setenv("DECISION_THRESHOLD", "high")
    with pytest.raises(ValueError, match="DECISION_THRESHOLD"):
        resolve_threshold()
    with pytest.raises(ValueError, match="'threshold' parameter"):
        resolve_threshold(1.5)


def test_decisions_follow_the_threshold(model):
    assert model.decide([0.0, model.threshold, 1.0]).tolist() == ["approve", "block", "block"]


# ----------------------------------------------------------------------- batch scoring


def test_score_day_writes_one_prediction_per_transaction_and_is_idempotent(engine, model):
    first = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert first.n_scored == first.n_transactions > 100 and first.n_chunks >= 3
    table = read_table("predictions", engine=engine)
    assert set(table.columns) == set(PREDICTION_COLUMNS)
    day_ids = read_sql(
        "select transaction_id from transactions where tx_datetime >= :a and tx_datetime < :b",
        params={"a": f"{DAY} 00:00:00", "b": "2026-01-10 00:00:00"},
        engine=engine,
    )["transaction_id"]
    assert sorted(table["transaction_id"]) == sorted(day_ids)
    expected = model.score_frame(load_features(DAY, "2026-01-10", engine=engine))
    np.testing.assert_allclose(np.sort(table["score"]), np.sort(expected))

    second = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert (second.n_scored, second.n_already_scored) == (0, first.n_transactions)
    again = read_table("predictions", engine=engine)
    pd.testing.assert_frame_equal(
        again.sort_values("transaction_id", ignore_index=True),
        table.sort_values("transaction_id", ignore_index=True),
    )


def test_crash_mid_run_then_rerun_scores_every_row_exactly_once(engine, model, monkeypatch):
    real_write = serving.write_table
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full (simulated)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(serving, "write_table", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        score_day(DAY, model=model, chunk_size=40, engine=engine)
    partial = read_table("predictions", engine=engine)
    assert len(partial) == 80  # chunks 1 and 2 committed, chunk 3 rolled back

    monkeypatch.setattr(serving, "write_table", real_write)
    rerun = score_day(DAY, model=model, chunk_size=40, engine=engine)
    assert rerun.n_already_scored == 80
    assert rerun.n_scored == rerun.n_transactions - 80
    final = read_table("predictions", engine=engine)
    assert len(final) == final["transaction_id"].nunique() == rerun.n_transactions
    kept = final.set_index("transaction_id").loc[partial["transaction_id"], "scored_at"]
    assert (kept.to_numpy() == partial["scored_at"].to_numpy()).all()  # not scored twice


def test_killed_process_then_rerun_scores_every_row_exactly_once(tmp_path, engine, pipeline):
    """A real process death (os._exit, no clean-up) right after the second commit."""
    model_path = tmp_path / "pipeline.pkl"
    model_path.write_bytes(pickle.dumps(pipeline))
    script = textwrap.dedent(
        f"""
        import os, pickle
        from production.db import get_engine
        from production.serving import ServingModel, score_day
        pipeline = pickle.loads(open({str(model_path)!r}, "rb").read())
        model = ServingModel.from_pipeline(pipeline, name="fraud-test", version="1")
        def die(index, n_rows):
            if index == 1:
                os._exit(137)
        score_day({DAY!r}, model=model, chunk_size=40, engine=get_engine({str(engine.url)!r}),
                  on_chunk=die)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert child.returncode == 137, child.stderr.decode()[-2000:]
    assert len(read_table("predictions", engine=engine)) == 80

    model = ServingModel.from_pipeline(pipeline, name="fraud-test", version="1")
    rerun = score_day(DAY, model=model, chunk_size=40, engine=engine)
    final = read_table("predictions", engine=engine)
    assert rerun.n_already_scored == 80
    assert len(final) == final["transaction_id"].nunique() == rerun.n_transactions


def test_new_model_version_replaces_the_days_predictions(engine, pipeline, model):
    score_day(DAY, model=model, chunk_size=40, engine=engine)
    v2 = ServingModel.from_pipeline(pipeline, name="fraud-test", version="2", threshold=0.0)
    result = score_day(DAY, model=v2, chunk_size=40, engine=engine)
    assert result.n_scored == result.n_transactions
    table = read_table("predictions", engine=engine)
    assert len(table) == result.n_transactions
    assert set(table["model_version"]) == {"2"} and set(table["decision"]) == {"block"}
    forced = score_day(DAY, model=v2, force=True, chunk_size=1000, engine=engine)
    assert forced.n_scored == forced.n_transactions and forced.n_chunks == 1


def test_dask_backend_gives_the_same_predictions(engine, model):
    score_day(DAY, model=model, chunk_size=40, engine=engine, backend="dask")
    with_dask = read_table("predictions", engine=engine).sort_values("transaction_id")
    score_day(DAY, model=model, chunk_size=40, engine=engine, force=True)
    with_pandas = read_table("predictions", engine=engine).sort_values("transaction_id")
    np.testing.assert_array_equal(with_dask["transaction_id"], with_pandas["transaction_id"])
    np.testing.assert_allclose(with_dask["score"], with_pandas["score"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"day": "yesterday-ish"}, "'day' parameter"),
        ({"chunk_size": 0}, "'chunk_size' parameter"),
        ({"backend": "spark"}, "'backend' parameter"),
        ({"predictions_table": "p; drop table x"}, "'predictions_table' parameter"),
        ({"table": "no_such_table"}, "no_such_table"),
    ],
)
def test_score_day_rejects_bad_input(engine, model, kwargs, match):
    kwargs = {"day": DAY, **kwargs}
    with pytest.raises(ValueError, match=match):
        score_day(kwargs.pop("day"), model=model, engine=engine, **kwargs)


# --------------------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    return f"sqlite:///{(tmp_path_factory.mktemp('mlruns') / 'mlflow.db').as_posix()}"


def test_batch_scoring_loads_the_champion_by_alias(monkeypatch, store_uri, engine, pipeline):
    from production.tracking import log_run, register_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    run_id = log_run("serving-tests", model=pipeline)
    version = register_model(run_id, "fraud-batch", alias="champion")
    loaded = load_serving_model("fraud-batch")
    assert (loaded.version, loaded.alias, loaded.fast_path) == (version, "champion", True)
    result = score_day(DAY, model_name="fraud-batch", engine=engine)
    assert (result.model_name, result.model_version) == ("fraud-batch", version)
    with pytest.raises(LookupError, match="no-such-model"):
        load_serving_model("no-such-model")


# -------------------------------------------------------------------------- monitoring


def test_drift_check_flags_the_drifted_window_and_records_it(monkeypatch, store_uri, engine, model):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    reference = load_features("2026-01-01", "2026-01-07", engine=engine)
    reference["score"] = model.score_frame(reference)
    score_day(DAY, model=model, engine=engine)
    check = run_drift_check(reference, model_name="fraud-test", engine=engine)
    assert (check.window_start, check.window_end) == (pd.Timestamp(DAY), pd.Timestamp("2026-01-10"))
    assert check.flagged and "amount" in check.drifted_features
    assert "tx_weekday" not in check.report["feature"].tolist()  # one day: weekday left out
    stored = read_table("drift_reports", engine=engine)
    assert len(stored) == len(check.report)
    assert {"window_start", "model_version", "psi", "drifted"} <= set(stored.columns)

    from mlflow import MlflowClient

    run = MlflowClient().get_run(check.run_id)
    assert run.data.tags["drift.flagged"] == "true"
    assert run.data.metrics["n_drifted"] == len(check.drifted_features)
    artifacts = {a.path for a in MlflowClient().list_artifacts(check.run_id, "drift")}
    assert {"drift/drift_report.png", "drift/drift_report.json"} <= artifacts

    again = run_drift_check(reference, model_name="fraud-test", engine=engine, log_to_mlflow=False)
    assert again.run_id is None
    assert len(read_table("drift_reports", engine=engine)) == len(check.report)  # idempotent


def test_drift_check_needs_predictions_in_the_window(engine, model, features):
    with pytest.raises(ValueError, match="predictions"):
        run_drift_check(features, model_name="fraud-test", engine=engine, log_to_mlflow=False)
    score_day(DAY, model=model, engine=engine)
    with pytest.raises(ValueError, match="no predictions of model 'fraud-test' between 2026-01-02"):
        run_drift_check(
            features,
            model_name="fraud-test",
            window_end="2026-01-03",
            engine=engine,
            log_to_mlflow=False,
        )
    with pytest.raises(TypeError, match="DataFrame"):
        run_drift_check(features.to_numpy(), engine=engine)


# ------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_resumable_batch_scoring_on_postgres(postgres_url, transactions, model, monkeypatch):
    import uuid

    engine = get_engine(postgres_url)
    suffix = uuid.uuid4().hex[:8]
    source, target = f"tx_serving_{suffix}", f"predictions_{suffix}"
    write_table(transactions, source, engine=engine)
    try:
        real_write = serving.write_table
        calls = {"n": 0}

        def crash_on_second_chunk(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("connection lost (simulated)")
            return real_write(*args, **kwargs)

        monkeypatch.setattr(serving, "write_table", crash_on_second_chunk)
        with pytest.raises(RuntimeError):
            score_day(
                DAY,
                model=model,
                table=source,
                predictions_table=target,
                chunk_size=50,
                engine=engine,
            )
        monkeypatch.setattr(serving, "write_table", real_write)
        result = score_day(
            DAY, model=model, table=source, predictions_table=target, chunk_size=50, engine=engine
        )
        assert result.n_already_scored == 50
        final = read_table(target, engine=engine)
        assert len(final) == final["transaction_id"].nunique() == result.n_transactions
    finally:
        import sqlalchemy as sa

        with engine.begin() as conn:
            conn.execute(sa.text(f"drop table if exists {source}"))
            conn.execute(sa.text(f"drop table if exists {target}"))


def test_nothing_runs_at_import(tmp_path):
    code = "import production.serving, course.api, os; print(os.listdir('.'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PRODUCTION_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "[]"

import json
import socket
import time
import urllib.parse
import urllib.request
import uuid

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from production.tracking import (
    TrackingServerUnavailableError,
    compare_runs,
    configure_tracking,
    get_model_version,
    get_or_create_experiment,
    list_runs,
    load_model,
    log_child_runs,
    log_model,
    log_run,
    log_search,
    promote_model,
    register_best_model,
    register_model,
    set_alias,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One local MLflow store for the module: creating its tables takes ~1.5 s."""
    return tmp_path_factory.mktemp("mlruns") / "mlflow.db"


@pytest.fixture
def local_tracking(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.as_posix()}")
    return configure_tracking()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 300),
            "channel": rng.choice(["chip", "online", "contactless"], 300),
        }
    )
    y = ((X["amount"] > 40) & (X["channel"] == "online")).astype(int)
    return X, y


def _pipeline(estimator):
    return Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])],
                    remainder="passthrough",
                ),
            ),
            ("model", estimator),
        ]
    )


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return _pipeline(HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, y)


def _unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_log_run_records_everything(local_tracking, data, model):
    X, _ = data
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    run_id = log_run(
        _unique("exp"),
        run_name="baseline",
        params={"max_iter": 20, "random_state": 0},
        metrics={"average_precision": np.float64(0.75)},
        tags={"stage": "test"},
        model=model,
        input_example=X.head(3),
        figures={"plots/line.png": figure},
        tables={"tables/sample.json": X.head(3)},
    )
    plt.close(figure)
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params == {"max_iter": "20", "random_state": "0"}
    assert run.data.metrics == {"average_precision": 0.75}
    assert run.data.tags["stage"] == "test"
    assert run.info.run_name == "baseline"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"plots", "tables"} <= artifacts
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.name for m in logged] == ["model"]
    assert logged[0].source_run_id == run_id


def test_artifacts_stay_beside_the_local_store(local_tracking, store):
    experiment_id = get_or_create_experiment(_unique("where"))
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (store.parent / "artifacts").as_uri()
    assert (
        get_or_create_experiment(MlflowClient().get_experiment(experiment_id).name) == experiment_id
    )


@pytest.mark.parametrize("estimator", [RandomForestClassifier(n_estimators=5, random_state=0)])
def test_tree_models_in_pipelines_round_trip(local_tracking, data, estimator):
    X, y = data
    fitted = _pipeline(estimator).fit(X, y)
    run_id = log_run(_unique("trees"), model=fitted, input_example=X.head(2))
    name = _unique("rf")
    register_model(run_id, name, alias="champion")
    loaded = load_model(name, "champion")
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))


def test_aliases_move_between_versions(local_tracking, data, model):
    X, y = data
    name = _unique("fraud")
    other = _pipeline(HistGradientBoostingClassifier(max_iter=5, random_state=1)).fit(X, y)
    v1 = register_model(log_run("aliases", model=model), name, alias="champion")
    v2 = register_model(log_run("aliases", model=other), name, alias="challenger")
    assert (v1, v2) == ("1", "2")
    assert get_model_version(name, "champion") == "1"
    np.testing.assert_allclose(load_model(name).predict_proba(X), model.predict_proba(X))
    set_alias(name, "champion", v2)  # promote the challenger
    assert get_model_version(name, "champion") == "2"
    np.testing.assert_allclose(load_model(name).predict_proba(X), other.predict_proba(X))


def test_missing_alias_is_a_clear_lookup_error(local_tracking):
    with pytest.raises(LookupError, match="'no-such-model' has no alias 'champion'"):
        load_model("no-such-model", "champion")


def test_register_model_needs_a_logged_model(local_tracking):
    run_id = log_run(_unique("nomodel"), metrics={"x": 1})
    with pytest.raises(ValueError, match="has no logged model named 'model'"):
        register_model(run_id, "anything")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": {"auc": "high"}}, TypeError, "metrics must be numbers; got {'auc': 'high'}"),
        ({"metrics": {"ok": True}}, TypeError, "'ok': True"),
        ({"model": "not a model"}, TypeError, "'model' parameter of log_run"),
    ],
)
def test_log_run_rejects_bad_input(local_tracking, kwargs, error, match):
    with pytest.raises(error, match=match):
        log_run("bad-input", **kwargs)


def test_experiment_name_must_not_be_empty(local_tracking):
    with pytest.raises(ValueError, match="'name' parameter of get_or_create_experiment"):
        get_or_create_experiment(" ")


def test_log_model_needs_an_active_run(local_tracking, model):
    with pytest.raises(RuntimeError, match="needs an active run"):
        log_model(model)


def test_log_model_hides_only_advice_that_does_not_apply(local_tracking, data, caplog, monkeypatch):
    import logging
    import os
    import warnings
    from pathlib import Path

    import mlflow

    X, y = data
    example = X.head(5).assign(count=np.arange(5))  # an integer column: MLflow's hint
    fitted = _pipeline(HistGradientBoostingClassifier(max_iter=5)).fit(X.assign(count=0), y)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the course's uv project
    monkeypatch.delenv("MLFLOW_LOG_UV_FILES", raising=False)
    get_or_create_experiment(_unique("quiet"))
    with (
        caplog.at_level(logging.INFO, logger="mlflow"),
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        with mlflow.start_run():
            info = log_model(fitted, input_example=example)
    messages = [r.getMessage() for r in caplog.records] + [str(w.message) for w in seen]
    quiet = ("cloudpickle format", "integer column", "pip version", "uv project", "uv file")
    assert not [m for m in messages if any(q in m for q in quiet)]
    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(info.model_uri)).iterdir()}
    assert "MLmodel" in files and "uv.lock" not in files, files
    assert "MLFLOW_LOG_UV_FILES" not in os.environ, "the environment is restored"
    sklearn_logger = logging.getLogger("mlflow.sklearn")
    assert not sklearn_logger.filters, "the filter is removed after log_model"
    with caplog.at_level(logging.WARNING, logger="mlflow.sklearn"):
        sklearn_logger.warning("Saving scikit-learn models in the pickle or cloudpickle format x")
    assert "cloudpickle format x" in caplog.text, "other code still sees the advice"


def test_default_store_is_in_the_repo(embedded_defaults):
    uri = configure_tracking()
    assert uri == f"sqlite:///{(embedded_defaults / 'mlruns' / 'mlflow.db').as_posix()}"


def test_unreachable_server_fails_fast_without_password(monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ana:topsecret@127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(TrackingServerUnavailableError) as info:
        log_run("anything", metrics={"x": 1})
    assert time.perf_counter() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "docker compose up -d mlflow" in str(info.value)
    assert "topsecret" not in str(info.value)


def test_silent_server_times_out():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts connections, never answers
    try:
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.perf_counter()
        with pytest.raises(TrackingServerUnavailableError, match="time limit"):
            configure_tracking(uri, timeout=1)
        assert time.perf_counter() - started < 5
    finally:
        server.close()


def _rest(server, path, **query):
    url = f"{server.rstrip('/')}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.integration
def test_runs_and_aliases_live_on_the_server(monkeypatch, mlflow_server_uri, data, model):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_uri)
    X, _ = data
    name = _unique("server-model")
    run_id = log_run(
        "integration", run_name="server", metrics={"ap": 0.5}, model=model, input_example=X.head(2)
    )
    version = register_model(run_id, name, alias="champion")
    run = _rest(mlflow_server_uri, "runs/get", run_id=run_id)["run"]
    assert run["data"]["metrics"][0]["key"] == "ap"
    alias = _rest(mlflow_server_uri, "registered-models/alias", name=name, alias="champion")
    assert alias["model_version"]["version"] == version
    np.testing.assert_allclose(load_model(name).predict_proba(X), model.predict_proba(X))


def test_list_runs_reads_back_what_was_logged(local_tracking):
    experiment = _unique("listing")
    first = log_run(experiment, run_name="a", params={"C": 1}, metrics={"ap": 0.1})
    second = log_run(experiment, run_name="b", params={"C": 2}, metrics={"ap": 0.2})
    runs = list_runs(experiment)
    assert runs["run_id"].tolist() == [second, first]
    assert runs["run_name"].tolist() == ["b", "a"]
    assert runs["metrics.ap"].tolist() == [0.2, 0.1]
    assert runs["params.C"].tolist() == ["2", "1"]
    with pytest.raises(ValueError, match=f"experiment 'nope' not found; available: .*{experiment}"):
        list_runs("nope")


# ----------------------------------------------------------------------------- searches


def _children(n):
    return [
        {
            "run_name": f"c{i}",
            "params": {"C": 10**i, "penalty": "l2"},
            "metrics": {"cv_ap": 0.1 * i, "fit_time_s": 0.01},
            "tags": {"candidate": i},
        }
        for i in range(n)
    ]


def test_log_search_nests_one_run_per_candidate(local_tracking, data, model):
    X, _ = data
    experiment = _unique("search")
    parent_id = log_search(
        experiment,
        run_name="grid-search",
        params={"strategy": "grid", "n_candidates": 3},
        metrics={"cv_ap": np.float64(0.2)},
        tags={"search.strategy": "grid"},
        children=_children(3),
        model=model,
        input_example=X.head(2),
        tables={"search/cv_results.csv": pd.DataFrame({"candidate": [0, 1, 2]})},
    )
    client = MlflowClient()
    parent = client.get_run(parent_id)
    assert parent.data.params == {"strategy": "grid", "n_candidates": "3"}
    assert parent.data.metrics == {"cv_ap": 0.2}
    runs = compare_runs(experiment, "cv_ap", parent_run_id=parent_id)
    assert runs["run_name"].tolist() == ["c2", "c1", "c0"]
    assert runs["params.C"].tolist() == ["100", "10", "1"]
    assert runs["metrics.cv_ap"].tolist() == pytest.approx([0.2, 0.1, 0.0])
    assert list(runs.columns[:3]) == ["run_id", "run_name", "metrics.cv_ap"]
    for run_id in runs["run_id"]:
        child = client.get_run(run_id)
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent_id
    # without parent_run_id: the parent too; ascending for a loss
    everything = compare_runs(experiment, "cv_ap", higher_is_better=False)
    assert len(everything) == 4 and everything["run_name"].iloc[0] == "c0"
    csv = client.download_artifacts(parent_id, "search/cv_results.csv")
    assert pd.read_csv(csv)["candidate"].tolist() == [0, 1, 2]
    # the best model of a search registers as challenger
    name = _unique("search-model")
    version = register_best_model(parent_id, name)
    assert get_model_version(name, "challenger") == version
    with pytest.raises(ValueError, match=f"is not the parent run of a search.*'{parent_id}'"):
        register_best_model(runs["run_id"].iloc[0], name)


def test_many_params_are_batched(local_tracking):
    params = {f"p{i:03d}": i for i in range(250)}
    parent_id = log_search(_unique("wide"), params=params, children=[{"params": params}])
    client = MlflowClient()
    assert len(client.get_run(parent_id).data.params) == 250
    (child,) = client.search_runs(
        [client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
    )
    assert child.data.params["p249"] == "249"
    assert len(child.data.params) == 250


def test_log_child_runs_reports_bad_children(local_tracking):
    parent_id = log_run(_unique("kids"), metrics={"x": 1})
    with pytest.raises(ValueError, match=r"child 1 has unknown key\(s\) \['metric'\]"):
        log_child_runs(parent_id, [{}, {"metric": {"ap": 1}}])
    with pytest.raises(TypeError, match=r"child 0: metrics must be numbers; got \{'ap': 'x'\}"):
        log_child_runs(parent_id, [{"metrics": {"ap": "x"}}])
    assert len(log_child_runs(parent_id, [{}, {"run_name": "only-a-name"}])) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": {"ap": None}}, TypeError, r"log_search: metrics must be numbers"),
        ({"children": [{"metrics": {"ap": "x"}}]}, TypeError, "log_search: child 0: metrics"),
        ({"model": "model"}, TypeError, "'model' parameter of log_search must be a fitted"),
    ],
)
def test_log_search_rejects_bad_input(local_tracking, kwargs, error, match):
    with pytest.raises(error, match=match):
        log_search("bad-search", **kwargs)


def test_compare_runs_reports_what_is_missing(local_tracking):
    experiment = _unique("compare")
    run_id = log_run(experiment, metrics={"ap": 0.3})
    with pytest.raises(ValueError, match=f"experiment 'nope' not found; available: .*{experiment}"):
        compare_runs("nope", "ap")
    with pytest.raises(ValueError, match=r"no run logged metric 'auc'; available: \['ap'\]"):
        compare_runs(experiment, "auc")
    with pytest.raises(ValueError, match=f"run '{run_id}' has no child runs"):
        compare_runs(experiment, "ap", parent_run_id=run_id)


@pytest.fixture
def versions(local_tracking, model):
    """A registered model with versions whose source runs scored 0.5, 0.4, 0.6, 0.61."""
    name = _unique("gate")
    run_ids = [
        log_run("promotion", metrics={"cv_ap": ap}, model=model) for ap in (0.5, 0.4, 0.6, 0.61)
    ]
    return name, [register_model(run_id, name) for run_id in run_ids]


def test_promotion_gate(versions):
    name, (v1, v2, v3, v4) = versions
    set_alias(name, "challenger", v1)
    assert promote_model(name, metric="cv_ap") is True  # no champion yet: the first wins
    assert get_model_version(name, "champion") == v1
    assert promote_model(name, metric="cv_ap") is False  # already the champion
    set_alias(name, "challenger", v2)  # worse: refused
    assert promote_model(name, metric="cv_ap") is False
    assert get_model_version(name, "champion") == v1
    set_alias(name, "challenger", v3)  # better: promoted
    assert promote_model(name, metric="cv_ap") is True
    assert get_model_version(name, "champion") == v3
    set_alias(name, "challenger", v4)  # better by 0.01 only
    assert promote_model(name, metric="cv_ap", min_improvement=0.05) is False
    assert get_model_version(name, "champion") == v3
    set_alias(name, "challenger", v2)  # a loss: lower wins
    assert promote_model(name, metric="cv_ap", higher_is_better=False) is True
    assert get_model_version(name, "champion") == v2


def test_promotion_gate_rejects_bad_input(versions):
    name, (v1, *_) = versions
    set_alias(name, "candidate", v1)
    with pytest.raises(
        ValueError, match="from_alias and to_alias must differ; both are 'champion'"
    ):
        promote_model(name, metric="cv_ap", from_alias="champion")
    with pytest.raises(ValueError, match="'min_improvement' parameter of promote_model"):
        promote_model(name, metric="cv_ap", from_alias="candidate", min_improvement=-0.1)
    with pytest.raises(ValueError, match=r"has no metric 'auc'; available: \['cv_ap'\]"):
        promote_model(name, metric="auc", from_alias="candidate")
    with pytest.raises(LookupError, match="has no alias 'nobody'"):
        promote_model(name, metric="cv_ap", from_alias="nobody")

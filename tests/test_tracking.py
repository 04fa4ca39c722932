import base64
import os
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import matplotlib.pyplot as plt
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from production import tracking
from production.tracking import (
    ModelVersion,
    TrackingServerUnavailableError,
    compare_runs,
    configure_tracking,
    frame_digest,
    get_model_version,
    get_or_create_experiment,
    list_runs,
    load_model,
    load_onnx_bytes,
    log_child_runs,
    log_model,
    log_onnx_model,
    log_run,
    log_training_data,
    promote_model,
    register_best_model,
    register_model,
    set_alias,
    training_data,
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
        {"amount": rng.lognormal(3, 1, 200), "channel": rng.choice(["chip", "online"], 200)}
    )
    y = ((X["amount"] > 40) & (X["channel"] == "online")).astype(int)
    return X, y


def _pipeline(estimator):
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])], remainder="passthrough"
    )
    return Pipeline([("preprocess", encode), ("model", estimator)])


@pytest.fixture(scope="module")
def model(data):
    return _pipeline(HistGradientBoostingClassifier(max_iter=10, random_state=0)).fit(*data)


def _unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_log_run_records_everything(local_tracking, data, model):
    X, _ = data
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    run_id = log_run(
        _unique("exp"),
        run_name="baseline",
        params={"max_iter": 10, "random_state": 0},
        metrics={"average_precision": np.float64(0.75), "n": np.int64(3)},
        tags={"stage": "test"},
        model=model,
        input_example=X.head(3),
        figures={"plots/line.png": figure},
        tables={"tables/sample.json": X.head(3)},
    )
    plt.close(figure)
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params == {"max_iter": "10", "random_state": "0"}
    assert run.data.metrics == {"average_precision": 0.75, "n": 3.0}
    assert run.data.tags["stage"] == "test"
    assert run.info.run_name == "baseline"
    assert {"plots", "tables"} <= {a.path for a in client.list_artifacts(run_id)}
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [(m.name, m.source_run_id) for m in logged] == [("model", run_id)]


def test_artifacts_stay_beside_the_local_store(local_tracking, store):
    name = _unique("where")
    experiment_id = get_or_create_experiment(name)
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (store.parent / "artifacts").as_uri()
    assert get_or_create_experiment(name) == experiment_id


def test_registered_model_round_trips_and_serves_probabilities(local_tracking, data):
    X, y = data
    fitted = _pipeline(RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, y)
    run_id = log_run(_unique("trees"), model=fitted, input_example=X.head(2))
    name = _unique("rf")
    assert register_model(run_id, name, alias="champion") == "1"
    np.testing.assert_allclose(
        load_model(name, "champion").predict_proba(X), fitted.predict_proba(X)
    )
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(X)
    assert served.dtype.kind == "f" and ((served >= 0) & (served <= 1)).all()
    np.testing.assert_allclose(served[:, 1], fitted.predict_proba(X)[:, 1])


def test_aliases_move_between_versions(local_tracking, data, model):
    X, y = data
    name = _unique("fraud")
    other = _pipeline(HistGradientBoostingClassifier(max_iter=5, random_state=1)).fit(X, y)
    first_run = log_run("aliases", model=model)
    v1 = register_model(first_run, name, alias="champion")
    v2 = register_model(log_run("aliases", model=other), name, alias="challenger")
    assert (v1, v2) == ("1", "2")
    champion = get_model_version(name, "champion")
    assert isinstance(champion, ModelVersion)
    assert (champion, champion.version, champion.run_id) == ("1", "1", first_run)
    set_alias(name, "champion", v2)
    assert get_model_version(name) == "2"
    np.testing.assert_allclose(load_model(name).predict_proba(X), other.predict_proba(X))


def test_onnx_bytes_travel_with_the_version(local_tracking, model):
    name = _unique("onnx")
    with_onnx = log_run("onnx", model=model)
    register_model(with_onnx, name, alias="champion")
    register_model(log_run("onnx", model=model), name, alias="challenger")
    log_onnx_model(b"\x08\x07onnx", run_id=with_onnx)
    assert "onnx/model.onnx" in {a.path for a in MlflowClient().list_artifacts(with_onnx, "onnx")}
    assert load_onnx_bytes(name, "champion") == b"\x08\x07onnx"
    assert load_onnx_bytes(name, "challenger") is None
    with pytest.raises(ValueError, match="onnx_bytes"):
        log_onnx_model("not bytes", run_id=with_onnx)


def test_missing_alias_is_a_clear_lookup_error(local_tracking):
    for call in (load_model, get_model_version, lambda n, a: load_onnx_bytes(n, a)):
        with pytest.raises(LookupError, match="'no-such-model' has no alias 'champion'"):
            call("no-such-model", "champion")


def test_register_model_needs_a_logged_model(local_tracking):
    run_id = log_run(_unique("nomodel"), metrics={"x": 1})
    with pytest.raises(ValueError, match="has no logged model named 'model'"):
        register_model(run_id, "anything")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": {"auc": "high"}}, "metrics must be numbers; got {'auc': 'high'}"),
        ({"metrics": {"ok": True}}, "'ok': True"),
        ({"model": "not a model"}, "model must have predict"),
    ],
)
def test_log_run_rejects_bad_input(local_tracking, kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_run("bad-input", **kwargs)


def test_experiment_name_must_not_be_empty(local_tracking):
    with pytest.raises(ValueError, match="'name' parameter of get_or_create_experiment"):
        get_or_create_experiment(" ")


def test_log_model_needs_an_active_run(local_tracking, model):
    with pytest.raises(RuntimeError, match="needs an active run"):
        log_model(model)


def test_default_store_is_in_the_repo(embedded_defaults):
    uri = configure_tracking()
    assert uri == f"sqlite:///{(embedded_defaults / 'mlruns' / 'mlflow.db').as_posix()}"


def test_list_runs_reads_back_what_was_logged(local_tracking):
    experiment = _unique("listing")
    first = log_run(experiment, run_name="a", params={"C": 1}, metrics={"ap": 0.1})
    second = log_run(experiment, run_name="b", params={"C": 2}, metrics={"ap": 0.2})
    runs = list_runs(experiment)
    assert runs["run_id"].tolist() == [second, first]
    assert runs["params.C"].tolist() == ["2", "1"]
    with pytest.raises(ValueError, match=f"experiment 'nope' not found; available: .*{experiment}"):
        list_runs("nope")
    with pytest.raises(ValueError, match="max_results"):
        list_runs(experiment, max_results=0)


def test_child_runs_nest_under_their_parent(local_tracking):
    experiment = _unique("kids")
    parent_id = log_run(experiment, metrics={"cv_ap": 0.3})
    wide = {f"p{i:03d}": i for i in range(150)}  # more than one log_batch holds
    children = [
        {"run_name": f"c{i}", "params": {"C": 10**i}, "metrics": {"cv_ap": 0.1 * i}}
        for i in range(3)
    ]
    ids = log_child_runs(parent_id, [*children, {"params": wide, "tags": {"note": "x" * 7000}}])
    runs = compare_runs(experiment, "cv_ap", parent_run_id=parent_id)
    assert runs["run_name"].tolist()[:3] == ["c2", "c1", "c0"]
    assert runs["metrics.cv_ap"].tolist()[:3] == pytest.approx([0.2, 0.1, 0.0])
    client = MlflowClient()
    for run_id in ids:
        child = client.get_run(run_id)
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert len(client.get_run(ids[-1]).data.params) == 150
    assert len(client.get_run(ids[-1]).data.tags["note"]) == 6000
    everything = compare_runs(experiment, "cv_ap", higher_is_better=False)
    assert len(everything) == 5 and everything["run_name"].iloc[0] == "c0"
    with pytest.raises(ValueError, match=r"child 1 has unknown key\(s\) \['metric'\]"):
        log_child_runs(parent_id, [{}, {"metric": {"ap": 1}}])
    with pytest.raises(ValueError, match=r"child 0: metrics must be numbers; got \{'ap': 'x'\}"):
        log_child_runs(parent_id, [{"metrics": {"ap": "x"}}])


def test_compare_runs_reports_what_is_missing(local_tracking):
    experiment = _unique("compare")
    run_id = log_run(experiment, metrics={"ap": 0.3})
    with pytest.raises(ValueError, match=f"experiment 'nope' not found; available: .*{experiment}"):
        compare_runs("nope", "ap")
    with pytest.raises(ValueError, match=r"no run logged metric 'auc'; available: \['ap'\]"):
        compare_runs(experiment, "auc")
    with pytest.raises(ValueError, match=f"run '{run_id}' has no child runs"):
        compare_runs(experiment, "ap", parent_run_id=run_id)


def test_register_best_model_needs_a_search_parent(local_tracking, model):
    experiment = _unique("search")
    parent_id = log_run(experiment, tags={"search.strategy": "GridSearchCV"}, model=model)
    (child_id,) = log_child_runs(parent_id, [{"metrics": {"ap": 1}}])
    name = _unique("best")
    assert register_best_model(parent_id, name) == get_model_version(name, "challenger")
    with pytest.raises(ValueError, match=f"not the parent run of a search.*'{parent_id}'"):
        register_best_model(child_id, name)


@pytest.fixture
def versions(local_tracking, model):
    """A registered model whose versions' runs scored 0.5, 0.4, 0.6, 0.61."""
    name = _unique("gate")
    run_ids = [log_run("gate", metrics={"cv_ap": ap}, model=model) for ap in (0.5, 0.4, 0.6, 0.61)]
    return name, [register_model(run_id, name) for run_id in run_ids]


def test_promotion_gate(versions):
    name, (v1, v2, v3, v4) = versions
    set_alias(name, "challenger", v1)
    first = promote_model(name, metric="cv_ap")
    assert first and first.reason == "there was no champion" and first.champion_version is None
    assert get_model_version(name, "champion") == v1
    assert not promote_model(name, metric="cv_ap")  # already the champion
    set_alias(name, "challenger", v2)
    refused = promote_model(name, metric="cv_ap")
    assert not refused.promoted
    assert (refused.champion_score, refused.challenger_score) == (0.5, 0.4)
    assert get_model_version(name, "champion") == v1
    set_alias(name, "challenger", v3)
    assert promote_model(name, metric="cv_ap").promoted
    assert get_model_version(name, "champion") == v3
    set_alias(name, "challenger", v4)  # better by 0.01 only
    small = promote_model(name, metric="cv_ap", min_improvement=0.05)
    assert not small and "margin 0.05" in small.reason
    assert get_model_version(name, "champion") == v3
    set_alias(name, "challenger", v2)  # a loss: lower wins
    assert promote_model(name, metric="cv_ap", higher_is_better=False)
    assert get_model_version(name, "champion") == v2


def test_promotion_gate_rejects_bad_input(versions):
    name, (v1, *_) = versions
    set_alias(name, "candidate", v1)
    with pytest.raises(ValueError, match="from_alias and to_alias are both .champion."):
        promote_model(name, metric="cv_ap", from_alias="champion")
    with pytest.raises(ValueError, match="'min_improvement' parameter of promote_model"):
        promote_model(name, metric="cv_ap", from_alias="candidate", min_improvement=-0.1)
    with pytest.raises(ValueError, match=r"has no metric 'auc'; available: \['cv_ap'\]"):
        promote_model(name, metric="auc", from_alias="candidate")
    with pytest.raises(LookupError, match="has no alias 'nobody'"):
        promote_model(name, metric="cv_ap", from_alias="nobody")


# ----------------------------------------------------------------------- server down (issue 11)

ENTRY_POINTS = {
    "configure_tracking": lambda: configure_tracking(),
    "get_or_create_experiment": lambda: get_or_create_experiment("e"),
    "log_run": lambda: log_run("e", metrics={"x": 1}),
    "log_child_runs": lambda: log_child_runs("r", []),
    "log_onnx_model": lambda: log_onnx_model(b"x", run_id="r"),
    "register_model": lambda: register_model("r", "m"),
    "register_best_model": lambda: register_best_model("r", "m"),
    "set_alias": lambda: set_alias("m", "champion", 1),
    "get_model_version": lambda: get_model_version("m", "champion"),
    "load_model": lambda: load_model("m"),
    "load_onnx_bytes": lambda: load_onnx_bytes("m", "champion"),
    "list_runs": lambda: list_runs("e"),
    "compare_runs": lambda: compare_runs("e", "x"),
    "promote_model": lambda: promote_model("m", metric="x"),
}


@pytest.fixture
def refused_port():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    return port


@pytest.fixture
def silent_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # accepts connections, never answers
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_points_fail_fast_on_a_refused_port(monkeypatch, refused_port, entry_point):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ana:top/se#cr%40t@127.0.0.1:{refused_port}")
    started = time.perf_counter()
    with pytest.raises(TrackingServerUnavailableError) as info:
        ENTRY_POINTS[entry_point]()
    assert time.perf_counter() - started < 10
    assert f"http://127.0.0.1:{refused_port}" in str(info.value)
    assert "docker compose up -d mlflow" in str(info.value)
    assert "top/se" not in str(info.value) and "cr%40t" not in str(info.value)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_points_fail_fast_on_a_silent_server(monkeypatch, silent_port, entry_point):
    monkeypatch.setattr(tracking, "HEALTH_TIMEOUT_S", 0.2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent_port}")
    with pytest.raises(
        TrackingServerUnavailableError, match=f"127.0.0.1:{silent_port}.*time limit"
    ):
        ENTRY_POINTS[entry_point]()


def test_a_silent_server_fails_within_the_default_limit(monkeypatch, silent_port):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent_port}")
    started = time.perf_counter()
    with pytest.raises(TrackingServerUnavailableError, match="ReadTimeout"):
        get_model_version("m", "champion")
    assert time.perf_counter() - started < 10


def test_credentials_in_the_uri_are_sent_as_basic_auth(monkeypatch):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # restored after the test: configure_tracking sets them
    seen = []

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = configure_tracking(f"http://ana:s%40cret@127.0.0.1:{server.server_port}")
        assert uri == f"http://127.0.0.1:{server.server_port}"  # MLflow prints its URI
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s@cret"
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/health", "Basic " + base64.b64encode(b"ana:s@cret").decode())]


@pytest.mark.integration
def test_runs_and_aliases_live_on_the_server(monkeypatch, capsys, mlflow_server_uri, data, model):
    scheme, rest = mlflow_server_uri.split("://", 1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{scheme}://learner:pa%2Fss@{rest}")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # restored after the test: configure_tracking sets them
    X, _ = data
    name = _unique("server-model")
    run_id = log_run("integration", metrics={"ap": 0.5}, model=model, input_example=X.head(2))
    version = register_model(run_id, name, alias="champion")
    log_onnx_model(b"onnx", run_id=run_id)
    found = get_model_version(name, "champion")
    assert (found.version, found.run_id) == (version, run_id)
    assert load_onnx_bytes(name, "champion") == b"onnx"
    assert MlflowClient().get_run(run_id).data.metrics == {"ap": 0.5}
    np.testing.assert_allclose(load_model(name).predict_proba(X), model.predict_proba(X))
    assert "pa%2Fss" not in capsys.readouterr().out, "the password is never printed"


def test_frame_digest_changes_with_any_value_name_dtype_or_order():
    frame = pd.DataFrame({"amount": [1.5, 2.0, 3.25], "channel": ["chip", "online", "chip"]})
    digest = frame_digest(frame)
    assert len(digest) == 16 and digest == frame_digest(frame.copy())
    assert digest == frame_digest(frame.set_axis([7, 8, 9]))  # the index is not content
    changed = [
        frame.assign(amount=[1.5, 2.0, 3.5]),
        frame.rename(columns={"amount": "value"}),
        frame.astype({"amount": "float32"}),
        frame.iloc[::-1],
        frame.head(2),
    ]
    assert len({digest, *map(frame_digest, changed)}) == 1 + len(changed)
    with pytest.raises(ValueError, match="'frame' parameter of frame_digest"):
        frame_digest([[1, 2]])


def test_training_data_names_the_dataset_a_version_trained_on(local_tracking, data, model):
    X, y = data
    name, frame = _unique("lineage"), X.assign(is_fraud=y)
    run_id = log_run("lineage", model=model)
    source = "lake://silver/transactions?start=2026-01-01&end=2026-01-21"
    digest = log_training_data(frame, source=source, run_id=run_id, tags={"git_rev": "abc123"})
    assert digest == frame_digest(frame)
    register_model(run_id, name, alias="champion")
    found = training_data(name, 1)
    assert found == training_data(name) == training_data(name, "1")
    assert found == {
        "run_id": run_id,
        "version": "1",
        "name": "training",
        "digest": digest,
        "source": source,
        "tags": {"git_rev": "abc123"},
    }
    (logged,) = MlflowClient().get_run(run_id).inputs.dataset_inputs  # visible in MLflow's UI
    assert logged.dataset.digest == digest and "amount" in logged.dataset.schema
    register_model(log_run("lineage", model=model), name)  # version 2: no dataset logged
    with pytest.raises(LookupError, match=f"version 2 of '{name}' logged no training data"):
        training_data(name, 2)
    with pytest.raises(LookupError, match=f"model '{name}' has no version '9'"):
        training_data(name, 9)
    with pytest.raises(LookupError, match="no alias 'previous'"):
        training_data(name, alias="previous")
    for bad in ({"tags": ["git_rev"]}, {"source": None}, {"frame": X.to_numpy()}):
        arguments = {"frame": frame, "source": source, "run_id": run_id} | bad
        with pytest.raises(ValueError, match=f"'{next(iter(bad))}' parameter"):
            log_training_data(**arguments)
    with pytest.raises(ValueError, match="'version' parameter of training_data"):
        training_data(name, 1.0)

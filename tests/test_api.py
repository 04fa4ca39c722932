"""The online service: contract, auth, health, metrics and model reloads (FastAPI TestClient)."""

import logging
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import HistGradientBoostingClassifier

from course.api import create_app
from production.features import build_pipeline, build_preprocessor
from production.serving import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    OnlineFeatureStore,
    ServingModel,
    compute_model_features,
)
from production.simulate import simulate

TOKEN = "test-token-" + "x" * 20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def transactions():
    return simulate(n_customers=80, n_terminals=30, n_days=9, random_state=1).transactions


@pytest.fixture(scope="module")
def pipeline(transactions):
    features = compute_model_features(transactions)
    return build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES), scale=False),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ).fit(features, transactions["is_fraud"])


@pytest.fixture(scope="module")
def model(pipeline):
    return ServingModel.from_pipeline(pipeline, name="fraud-api", version="7", alias="champion")


def _store(transactions):
    store = OnlineFeatureStore()
    store.add_history(transactions[transactions["tx_datetime"] < "2026-01-09"])
    return store


@pytest.fixture
def client(model, transactions):
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token="")
    with TestClient(app) as client:
        yield client


@pytest.fixture
def payload(transactions):
    row = transactions[transactions["tx_datetime"] >= "2026-01-09"].iloc[0]
    return {
        "transaction_id": int(row["transaction_id"]),
        "tx_datetime": row["tx_datetime"].isoformat(),
        "customer_id": int(row["customer_id"]),
        "terminal_id": int(row["terminal_id"]),
        "amount": float(row["amount"]),
        "merchant_category": str(row["merchant_category"]),
        "channel": str(row["channel"]),
    }


# ---------------------------------------------------------------------------- contract


def test_valid_transaction_gets_the_offline_score(client, payload, transactions, pipeline):
    response = client.post("/predict", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "transaction_id",
        "score",
        "decision",
        "threshold",
        "model_name",
        "model_version",
        "unknown_categories",
    }
    assert (body["model_name"], body["model_version"]) == ("fraud-api", "7")
    assert body["transaction_id"] == payload["transaction_id"]
    assert body["decision"] == ("block" if body["score"] >= body["threshold"] else "approve")
    offline = compute_model_features(transactions)
    index = transactions.index[transactions["transaction_id"] == payload["transaction_id"]]
    expected = pipeline.predict_proba(offline.loc[index])[0, 1]
    assert body["score"] == pytest.approx(expected, rel=1e-9)


def test_timezone_aware_times_are_converted_to_utc(client, payload):
    naive = client.post("/predict", json=payload).json()["score"]
    shifted = pd.Timestamp(payload["tx_datetime"]).tz_localize("UTC").tz_convert("Europe/Paris")
    aware = client.post("/predict", json={**payload, "tx_datetime": shifted.isoformat()})
    assert aware.json()["score"] == pytest.approx(naive)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount": -5.0}, "amount", "greater than or equal to 0"),
        ({"amount": "lots"}, "amount", "valid number"),
        ({"customer_id": -1}, "customer_id", "greater than or equal to 0"),
        ({"tx_datetime": "yesterday"}, "tx_datetime", "datetime"),
        ({"channel": ""}, "channel", "at least 1 character"),
        ({"ammount": 10.0}, "ammount", "Extra inputs are not permitted"),
    ],
)
def test_invalid_payloads_get_a_422_naming_the_field(client, payload, change, field, message):
    response = client.post("/predict", json={**payload, **change})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"][-1] == field and message in e["msg"] for e in errors), errors


@pytest.mark.parametrize("missing", ["tx_datetime", "customer_id", "amount", "channel"])
def test_missing_required_field_is_a_422(client, payload, missing):
    response = client.post("/predict", json={k: v for k, v in payload.items() if k != missing})
    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "type": "missing",
        "loc": ["body", missing],
        "msg": "Field required",
        "input": {k: v for k, v in payload.items() if k != missing},
    }


def test_transaction_id_is_optional(client, payload):
    response = client.post(
        "/predict", json={k: v for k, v in payload.items() if k != "transaction_id"}
    )
    assert response.status_code == 200
    assert response.json()["transaction_id"] is None


def test_unknown_categories_are_scored_and_reported(client, payload):
    response = client.post(
        "/predict", json={**payload, "channel": "telepathy", "merchant_category": "moon_base"}
    )
    assert response.status_code == 200
    body = response.json()
    assert sorted(body["unknown_categories"]) == ["channel", "merchant_category"]
    assert 0.0 <= body["score"] <= 1.0


def test_customer_history_feeds_the_next_request(client, payload, model):
    first = client.get("/model").json()["history_rows"]
    client.post("/predict", json=payload)
    client.post("/predict", json=payload)  # a retry: same transaction_id, counted once
    assert client.get("/model").json()["history_rows"] == first + 1


# ------------------------------------------------------------------------ health, auth


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_name": "fraud-api", "model_version": "7"}


def test_not_ready_without_a_model_but_alive(monkeypatch, tmp_path, payload):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(tmp_path / 'm.db').as_posix()}")
    app = create_app(model_name="no-such-model", reload_interval=0, feature_history=False)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "no-such-model" in ready.json()["reason"]
        response = client.post("/predict", json=payload)
        assert response.status_code == 503 and "not ready" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
def test_bearer_token_when_configured(model, transactions, payload, headers, status):
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token=TOKEN)
    with TestClient(app) as client:
        response = client.post("/predict", json=payload, headers=headers)
        assert response.status_code == status
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert client.get("/model", headers=headers).status_code == 401
            assert client.post("/admin/reload", headers=headers).status_code == 401
        for open_path in ("/health", "/ready", "/metrics"):
            assert client.get(open_path).status_code == 200


def test_token_comes_from_the_environment(monkeypatch, model, transactions, payload):
    monkeypatch.setenv("API_TOKEN", TOKEN)
    with TestClient(create_app(model=model, store=_store(transactions), reload_interval=0)) as c:
        assert c.post("/predict", json=payload).status_code == 401
    monkeypatch.setenv("API_TOKEN", "")
    with TestClient(create_app(model=model, store=_store(transactions), reload_interval=0)) as c:
        assert c.post("/predict", json=payload).status_code == 200


def test_request_log_is_structured_and_has_no_secrets(model, transactions, payload):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("course.api")
    handler = Keep()
    logger.addHandler(handler)
    try:
        app = create_app(model=model, store=_store(transactions), reload_interval=0, token=TOKEN)
        with TestClient(app) as client:
            client.post("/predict", json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
            client.post("/predict", json=payload, headers={"Authorization": "Bearer guess"})
    finally:
        logger.removeHandler(handler)
    requests = [r for r in records if r.getMessage() == "request"]
    assert [(r.route, r.status) for r in requests] == [("/predict", 200), ("/predict", 401)]
    assert all(r.duration_ms > 0 for r in requests)
    text = " ".join(str(vars(r)) for r in records)
    assert TOKEN not in text and "guess" not in text


def test_bad_reload_interval_is_named(monkeypatch):
    monkeypatch.setenv("MODEL_RELOAD_INTERVAL_S", "soon")
    with pytest.raises(ValueError, match="MODEL_RELOAD_INTERVAL_S"):
        create_app()
    with pytest.raises(ValueError, match="reload interval"):
        create_app(reload_interval=-1)


# ----------------------------------------------------------------------------- metrics


def test_metrics_count_requests_latency_and_scores(client, payload):
    for _ in range(3):
        client.post("/predict", json=payload)
    client.post("/predict", json={**payload, "amount": -1})
    client.post("/predict", json={**payload, "channel": "telepathy"})
    text = client.get("/metrics").text
    assert 'fraud_api_requests_total{method="POST",route="/predict",status="200"} 4.0' in text
    assert 'fraud_api_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    assert 'fraud_api_request_duration_seconds_bucket{le="0.05",route="/predict"}' in text
    assert "fraud_api_score_count 4.0" in text
    assert 'fraud_api_unknown_categories_total{column="channel"} 1.0' in text
    assert 'fraud_api_model_info{alias="champion",name="fraud-api",version="7"} 1.0' in text
    decisions = [line for line in text.splitlines() if line.startswith("fraud_api_decisions_total")]
    assert sum(float(line.split()[-1]) for line in decisions) == 4.0


# ------------------------------------------------------------------------------ labels


def _at(payload, **change):
    """The payload moved in time (ISO strings), with a new transaction_id."""
    moved = {**payload, **change}
    moved["transaction_id"] = payload["transaction_id"] + 10_000_000
    return moved


def _known_frauds(client, transaction):
    """The terminal's known-fraud count the service would use for ``transaction``."""
    store = client.app.state.serving.store
    row = {**transaction, "tx_datetime": pd.Timestamp(transaction["tx_datetime"]).to_pydatetime()}
    return store.lookup(row)["terminal_fraud_count_28d"]


def test_a_label_counts_from_when_it_is_known(client, payload):
    assert client.post("/predict", json=payload).status_code == 200  # held, label unknown
    t = pd.Timestamp(payload["tx_datetime"])
    label = {
        "terminal_id": payload["terminal_id"],
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": True,
        "label_available_at": (t + pd.Timedelta(hours=2)).isoformat(),
    }
    before_label = _at(payload, tx_datetime=(t + pd.Timedelta(hours=1)).isoformat())
    after_label = _at(payload, tx_datetime=(t + pd.Timedelta(hours=3)).isoformat())
    counts = (_known_frauds(client, before_label), _known_frauds(client, after_label))

    response = client.post("/labels", json={"labels": [label]})
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "attached": 1, "not_found": 0}
    assert _known_frauds(client, before_label) == counts[0]  # not known yet at that time
    assert _known_frauds(client, after_label) == counts[1] + 1


def test_labels_of_unknown_transactions_are_counted_not_found(client, payload):
    label = {
        "terminal_id": 999_999,
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": False,
        "label_available_at": payload["tx_datetime"],
    }
    response = client.post("/labels", json={"labels": [label, label]})
    assert response.json() == {"received": 2, "attached": 0, "not_found": 2}
    assert 'fraud_api_labels_total{outcome="not_found"} 2.0' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"label_available_at": "2025-12-31T00:00:00"}, "", "cannot precede its transaction"),
        ({"is_fraud": "maybe"}, "is_fraud", "boolean"),
        ({"terminal_id": -1}, "terminal_id", "greater than or equal to 0"),
        ({"label": 1}, "label", "Extra inputs are not permitted"),
    ],
)
def test_invalid_labels_get_a_422_naming_the_field(client, payload, change, field, message):
    label = {
        "terminal_id": payload["terminal_id"],
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": True,
        "label_available_at": payload["tx_datetime"],
        **change,
    }
    response = client.post("/labels", json={"labels": [label]})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"][-1] == field or (not field and detail["loc"][-1] == 0)
    assert message in detail["msg"]


def test_an_empty_label_batch_is_a_422(client):
    response = client.post("/labels", json={"labels": []})
    assert response.status_code == 422 and "at least 1 item" in response.text


def test_labels_need_the_token_when_configured(model, transactions, payload):
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token=TOKEN)
    label = {
        "terminal_id": payload["terminal_id"],
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": True,
        "label_available_at": payload["tx_datetime"],
    }
    with TestClient(app) as client:
        assert client.post("/labels", json={"labels": [label]}).status_code == 401
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            client.post("/labels", json={"labels": [label]}, headers=authorized).status_code == 200
        )


# ------------------------------------------------------------------------------ reload


@pytest.fixture
def registry(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    return f"fraud-{uuid.uuid4().hex[:6]}"


def _register(pipeline, name, alias="champion"):
    from production.tracking import log_run, register_model

    return register_model(log_run("api-tests", model=pipeline), name, alias=alias)


def test_admin_reload_serves_the_new_version_without_restart(registry, pipeline, payload):
    _register(pipeline, registry)
    app = create_app(model_name=registry, reload_interval=0, feature_history=False)
    with TestClient(app) as client:
        assert client.post("/predict", json=payload).json()["model_version"] == "1"
        assert client.post("/admin/reload").json() == {"reloaded": False, "model_version": "1"}
        _register(pipeline, registry, alias="challenger")  # v2, not yet champion
        assert client.post("/admin/reload").json()["model_version"] == "1"
        from production.tracking import set_alias

        set_alias(registry, "champion", "2")
        assert client.post("/admin/reload").json() == {"reloaded": True, "model_version": "2"}
        assert client.post("/predict", json=payload).json()["model_version"] == "2"
        metrics = client.get("/metrics").text
        assert (
            f'fraud_api_model_info{{alias="champion",name="{registry}",version="2"}} 1.0' in metrics
        )
        assert (
            f'fraud_api_model_info{{alias="champion",name="{registry}",version="1"}} 0.0' in metrics
        )


@pytest.mark.slow
def test_metrics_add_up_across_uvicorn_workers(registry, pipeline, payload, tmp_path):
    """Two workers, PROMETHEUS_MULTIPROC_DIR as in deploy/Dockerfile: /metrics counts all."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    _register(pipeline, registry)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MODEL_NAME": registry,
        "FEATURE_HISTORY": "0",
        "MODEL_RELOAD_INTERVAL_S": "0",
        "OMP_NUM_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PRODUCTION_HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "uvicorn", "course.api:create_app", "--factory"]
    command += ["--port", str(port), "--workers", "2", "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def call(path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            base + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:  # a new connection each
            return reply.read().decode()

    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read()[-2000:]
            try:
                call("/ready")
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn not ready within 90 s"
                time.sleep(0.25)
        for i in range(40):
            call("/predict", {**payload, "transaction_id": i})
        expected = 'fraud_api_requests_total{method="POST",route="/predict",status="200"} 40.0'
        for _ in range(10):  # whichever worker answers, the totals are the same
            text = call("/metrics")
            assert expected in text
            assert "fraud_api_score_count 40.0" in text
            assert f'name="{registry}",version="1"}} 1.0' in text
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_background_check_swaps_versions_while_serving(registry, pipeline, payload):
    _register(pipeline, registry)
    app = create_app(model_name=registry, reload_interval=0.2, feature_history=False)
    with TestClient(app) as client:
        statuses, versions, stop = [], [], threading.Event()

        def traffic():
            while not stop.is_set():
                response = client.post("/predict", json=payload)
                statuses.append(response.status_code)
                versions.append(response.json().get("model_version"))

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            time.sleep(0.3)
            _register(pipeline, registry)  # v2 takes the champion alias
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (not versions or versions[-1] != "2"):
                time.sleep(0.1)
        finally:
            stop.set()
            worker.join()
    assert versions[-1] == "2" and "1" in versions
    assert set(statuses) == {200}  # no request failed during the swap
    first_v2 = versions.index("2")
    assert set(versions[first_v2:]) == {"2"}  # swapped once, atomically


@pytest.mark.integration
def test_reload_against_the_mlflow_server(monkeypatch, mlflow_server_uri, pipeline, payload):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_uri)
    name = f"fraud-api-{uuid.uuid4().hex[:6]}"
    _register(pipeline, name)
    app = create_app(model_name=name, reload_interval=0, feature_history=False)
    with TestClient(app) as client:
        assert client.get("/ready").json()["model_version"] == "1"
        _register(pipeline, name)
        assert client.post("/admin/reload").json() == {"reloaded": True, "model_version": "2"}
        body = client.post("/predict", json=payload).json()
        assert body["model_version"] == "2" and np.isfinite(body["score"])

"""The scoring service: contract, bad input (hand-written and generated), auth, metrics, reloads."""

import datetime as dt
import json
import logging
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier

from course.api import MAX_BODY_BYTES, MAX_LABELS_PER_REQUEST, create_app
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.serving import OnlineFeatureStore, ServingModel
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
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ).fit(features, transactions["is_fraud"])


@pytest.fixture(scope="module")
def model(pipeline):
    return ServingModel(pipeline, name="fraud-api", version="7", alias="champion")


def _store(transactions):
    store = OnlineFeatureStore()
    store.add_history(transactions[transactions["tx_datetime"] < "2026-01-09"])
    return store


@pytest.fixture
def client(model, transactions):
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token="")
    with TestClient(app) as client:
        yield client


def _payload(transactions):
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


@pytest.fixture
def payload(transactions):
    return _payload(transactions)


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
        ({"amount": -5.0}, "amount", "greater than 0"),
        ({"amount": 0}, "amount", "greater than 0"),
        ({"amount": 5e6}, "amount", "less than or equal to 1000000"),
        ({"amount": True}, "amount", "valid number"),
        ({"amount": "42"}, "amount", "valid number"),
        ({"amount": "lots"}, "amount", "valid number"),
        ({"customer_id": True}, "customer_id", "valid integer"),
        ({"customer_id": 2**63}, "customer_id", "less than or equal to"),
        ({"transaction_id": -1}, "transaction_id", "greater than or equal to 0"),
        ({"tx_datetime": "2262-04-12T00:00:00"}, "tx_datetime", "must be between 2000-01-01"),
        ({"tx_datetime": "1677-09-21T00:00:00"}, "tx_datetime", "must be between 2000-01-01"),
        ({"tx_datetime": "0001-01-01T00:00:00+01:00"}, "tx_datetime", "must be between"),
        ({"tx_datetime": "9999-12-31T23:59:59-01:00"}, "tx_datetime", "must be between"),
        ({"tx_datetime": 1e20}, "tx_datetime", "valid datetime"),
        ({"channel": "   "}, "channel", "at least 1 character"),
        ({"merchant_category": "x" * 65}, "merchant_category", "at most 64 characters"),
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
        "input": {k: v for k, v in payload.items() if k != missing},  # short: echoed as sent
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


def test_openapi_documents_the_predict_body_answers_and_token(client, model, transactions):
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) >= {"tx_datetime", "customer_id", "amount"}
    assert {"200", "422", "503"} <= set(operation["responses"]) and "security" not in operation
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token=TOKEN)
    assert "security" in app.openapi()["paths"]["/predict"]["post"]


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_name": "fraud-api", "model_version": "7"}


def test_not_ready_without_a_model_but_alive(registry, payload):
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
        ({"is_fraud": 1}, "is_fraud", "valid boolean"),
        ({"terminal_id": -1}, "terminal_id", "greater than or equal to 0"),
        ({"label_available_at": "2262-01-01T00:00:00"}, "label_available_at", "must be between"),
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


# --------------------------------------------------------------------------- bad input


def _post_raw(client, path, text, **kwargs):
    """POST ``text`` as a JSON body as is (NaN, Infinity and 1e400 included)."""
    headers = {"Content-Type": "application/json"}
    return client.post(path, content=text.encode(), headers=headers, **kwargs)


def _names_field(response, field):
    """Whether a 422 names ``field`` in the loc of one of its errors."""
    return any(field in error["loc"] for error in response.json()["detail"])


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("field", ["amount", "customer_id", "terminal_id", "transaction_id"])
def test_non_finite_numbers_are_a_422_naming_the_field(client, payload, field, token):
    body = json.dumps({**payload, field: "__TOKEN__"}).replace('"__TOKEN__"', token)
    response = _post_raw(client, "/predict", body)
    assert response.status_code == 422, response.text
    assert _names_field(response, field)
    json.loads(response.text)  # standard JSON: no NaN in the answer


def test_a_far_future_transaction_is_refused_and_leaves_the_store_alone(client, payload):
    store = client.app.state.serving.store
    before = store.n_rows
    response = client.post("/predict", json={**payload, "tx_datetime": "2262-01-01T00:00:00"})
    assert response.status_code == 422 and _names_field(response, "tx_datetime")
    assert client.post("/predict", json=payload).status_code == 200
    assert store.n_rows == before + 1


def test_huge_amounts_are_refused_and_the_customer_keeps_scoring(client, payload):
    for amount in (1e308, 5e6, 1_000_000.01):
        response = client.post("/predict", json={**payload, "amount": amount})
        assert response.status_code == 422 and _names_field(response, "amount")
    assert client.post("/predict", json={**payload, "amount": 1_000_000}).status_code == 200
    later = {**payload, "transaction_id": payload["transaction_id"] + 1}
    assert client.post("/predict", json=later).status_code == 200


def test_a_body_over_the_limit_is_a_413_without_echo(client, payload):
    big = {**payload, "channel": "x" * (MAX_BODY_BYTES + 10)}
    started = time.perf_counter()
    response = client.post("/predict", json=big)
    assert response.status_code == 413
    assert len(response.content) < 200 and "larger than" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit counts bytes as they arrive
        yield b'{"channel": "'
        for _ in range(MAX_BODY_BYTES // 100_000 + 1):
            yield b"x" * 100_000
        yield b'"}'

    response = client.post(
        "/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert time.perf_counter() - started < 30  # generous: a sanity bound, not a timing test


def test_a_100k_label_batch_is_refused_fast_and_health_answers(client, payload):
    label = {
        "terminal_id": payload["terminal_id"],
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": True,
        "label_available_at": payload["tx_datetime"],
    }
    response = client.post("/labels", json={"labels": [label] * 100_000})
    assert response.status_code == 413
    response = client.post("/labels", json={"labels": [label] * (MAX_LABELS_PER_REQUEST + 1)})
    assert response.status_code == 422 and _names_field(response, "labels")
    assert "at most 10000 items" in response.text
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "",
        "null",
        "[]",
        '"text"',
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 5_000 + "1" + "}" * 5_000,
        "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
    ],
)
def test_malformed_bodies_are_4xx(client, body):
    response = client.post("/predict", content=body.encode("utf-8", "surrogatepass"))
    assert 400 <= response.status_code < 500
    assert len(response.content) < 20_000


def test_long_field_names_and_values_are_truncated_in_the_answer(client, payload):
    response = client.post("/predict", json={**payload, "k" * 100_000: "v" * 100_000})
    assert response.status_code == 422
    assert len(response.content) < 2_000


def test_many_bad_labels_answer_with_a_bounded_list(client, payload):
    bad = {"terminal_id": -1, "tx_datetime": "x", "is_fraud": 2, "label_available_at": None}
    response = client.post("/labels", json={"labels": [bad] * 1_000})
    assert response.status_code == 422
    body = response.json()
    assert len(body["detail"]) == 20 and body["n_errors"] == 4_000


# generated bad requests: one field replaced by a value its schema refuses ------------------

_FUTURE = dt.datetime.now() + dt.timedelta(days=3)
_NOT_A_NUMBER = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
_BAD_ID = st.one_of(
    _NOT_A_NUMBER.filter(lambda v: v is not None),
    st.integers(max_value=-1),
    st.integers(min_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not float(v).is_integer()),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
_BAD_TIME = st.one_of(
    st.datetimes(max_value=dt.datetime(1999, 12, 31)).map(dt.datetime.isoformat),
    st.datetimes(min_value=_FUTURE).map(dt.datetime.isoformat),
    st.datetimes(
        max_value=dt.datetime(1999, 12, 30),
        timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=h)) for h in (-12, 0, 5, 14)]),
    ).map(dt.datetime.isoformat),
    st.integers(max_value=946_684_799),
    st.sampled_from(["yesterday", "", "2026-13-01", "0001-01-01T00:00:00+01:00", "2262-04-12"]),
    st.booleans(),
    st.text(max_size=30).filter(lambda v: not v[:1].isdigit()),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 < v < 1e13),
)
_BAD_TEXT = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.text(min_size=65, max_size=200),
    st.text(alphabet=" \t\n", max_size=5), st.lists(st.text(max_size=3), max_size=2),
)  # fmt: skip
_BAD_AMOUNT = st.one_of(
    _NOT_A_NUMBER,
    st.floats(max_value=0),
    st.floats(min_value=1_000_000, exclude_min=True),
    st.integers(max_value=0),
    st.integers(min_value=1_000_001),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
_BAD_TRANSACTION_FIELDS = {
    "transaction_id": _BAD_ID,
    "tx_datetime": _BAD_TIME | st.none(),
    "customer_id": _BAD_ID | st.none(),
    "terminal_id": _BAD_ID | st.none(),
    "amount": _BAD_AMOUNT,
    "merchant_category": _BAD_TEXT | st.none(),
    "channel": _BAD_TEXT | st.none(),
}
_BAD_LABEL_FIELDS = {
    "terminal_id": _BAD_ID | st.none(),
    "tx_datetime": _BAD_TIME | st.none(),
    "is_fraud": _NOT_A_NUMBER.filter(lambda v: not isinstance(v, bool)) | st.integers(),
    "label_available_at": _BAD_TIME | st.none(),
}
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def fuzz_client(model, transactions):
    """One app for all generated requests: it must keep answering /health throughout."""
    app = create_app(model=model, store=_store(transactions), reload_interval=0, token="")
    logger = logging.getLogger("course.api")
    level, _ = logger.level, logger.setLevel(logging.WARNING)  # no request log lines
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
            assert client.get("/health").json() == {"status": "ok"}
    finally:
        logger.setLevel(level)


@pytest.fixture(scope="module")
def fuzz_payload(transactions):
    return _payload(transactions)


def _send(client, path, body):
    """POST ``body`` as JSON that may hold NaN and Infinity, as some clients send."""
    return _post_raw(client, path, json.dumps(body, allow_nan=True))


@_FUZZ
@given(data=st.data(), field=st.sampled_from(sorted(_BAD_TRANSACTION_FIELDS)))
def test_generated_bad_transactions_get_a_422_naming_the_field(
    fuzz_client, fuzz_payload, data, field
):
    value = data.draw(_BAD_TRANSACTION_FIELDS[field], label=field)
    response = _send(fuzz_client, "/predict", {**fuzz_payload, field: value})
    assert response.status_code == 422, (field, value, response.text)
    assert _names_field(response, field), response.text
    assert len(response.content) < 5_000


@settings(_FUZZ, max_examples=200)
@given(data=st.data(), field=st.sampled_from(sorted(_BAD_LABEL_FIELDS)))
def test_generated_bad_labels_get_a_422_naming_the_field(fuzz_client, fuzz_payload, data, field):
    payload = fuzz_payload
    label = {
        "terminal_id": payload["terminal_id"],
        "tx_datetime": payload["tx_datetime"],
        "is_fraud": False,
        "label_available_at": payload["tx_datetime"],
        field: data.draw(_BAD_LABEL_FIELDS[field], label=field),
    }
    response = _send(fuzz_client, "/labels", {"labels": [label]})
    assert response.status_code == 422, (label, response.text)
    assert _names_field(response, field), response.text


@settings(_FUZZ, max_examples=250)
@given(body=_JSON, path=st.sampled_from(["/predict", "/labels"]))
def test_generated_junk_bodies_are_4xx(fuzz_client, body, path):
    response = _send(fuzz_client, path, body)
    assert 400 <= response.status_code < 500, (body, response.text)


@settings(_FUZZ, max_examples=250)
@given(body=st.binary(max_size=200), path=st.sampled_from(["/predict", "/labels"]))
def test_generated_bytes_are_4xx(fuzz_client, body, path):
    response = fuzz_client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (body, response.text)


# ------------------------------------------------------------------------------ reload


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory):
    """One local MLflow store for the module (creating one costs seconds)."""
    return f"sqlite:///{(tmp_path_factory.mktemp('mlflow') / 'mlflow.db').as_posix()}"


@pytest.fixture
def registry(monkeypatch, registry_uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_uri)
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

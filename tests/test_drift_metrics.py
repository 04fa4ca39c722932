import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from course.api import create_app
from course.drift_metrics import DriftMetrics
from production.db import write_table


def _report(end, psi, model="fraud-demo", features=("amount", "terminal_id", "score")):
    return pd.DataFrame({
        "feature": list(features),
        "kind": "numeric",
        "psi": psi,
        "drifted": [value >= 0.2 for value in psi],
        "model_name": model,
        "window_start": pd.Timestamp(end) - pd.Timedelta(days=1),
        "window_end": pd.Timestamp(end),
        "created_at": pd.Timestamp("2026-12-01 06:00"),
    })  # fmt: skip


def _write(*reports):
    window = ["model_name", "window_start", "window_end"]
    for report in reports:
        write_table(report, "drift_reports", mode="replace_partitions", partition_cols=window)


@pytest.fixture
def registry():
    return CollectorRegistry()


def _value(registry, name, **labels):
    return registry.get_sample_value(name, {"model": "fraud-demo", **labels})


def test_exports_the_latest_window_of_the_model(registry):
    _write(
        _report("2026-11-29", [0.9, 0.9, 0.9]),
        _report("2026-11-30", [0.31, 0.02, 0.25]),
        _report("2026-12-01", [0.7, 0.7, 0.7], model="other"),
    )
    assert DriftMetrics(registry, "fraud-demo").refresh() == 2
    assert _value(registry, "fraud_feature_psi", feature="amount") == pytest.approx(0.31)
    assert _value(registry, "fraud_feature_psi", feature="terminal_id") == pytest.approx(0.02)
    assert _value(registry, "fraud_feature_psi", feature="score") is None
    assert _value(registry, "fraud_score_psi") == pytest.approx(0.25)
    written = pd.Timestamp("2026-12-01 06:00").timestamp()
    assert _value(registry, "fraud_drift_report_timestamp_seconds") == written


def test_no_report_means_no_sample_not_zero(registry):
    drift = DriftMetrics(registry, "fraud-demo")
    assert drift.refresh() == 0  # no table
    _write(_report("2026-11-30", [0.1, 0.1, 0.1], model="other"))
    assert drift.refresh() == 0  # no row of this model
    assert _value(registry, "fraud_score_psi") is None
    assert _value(registry, "fraud_feature_psi", feature="amount") is None


def test_a_feature_dropped_from_the_report_is_dropped_from_the_metrics(registry):
    drift = DriftMetrics(registry, "fraud-demo")
    _write(_report("2026-11-29", [0.3, 0.1, 0.1]))
    drift.refresh()
    _write(_report("2026-11-30", [0.05, 0.1], features=("amount", "score")))
    assert drift.refresh() == 1
    assert _value(registry, "fraud_feature_psi", feature="amount") == pytest.approx(0.05)
    assert _value(registry, "fraud_feature_psi", feature="terminal_id") is None


def test_an_unreachable_database_keeps_the_refresh_loop_alive(registry, monkeypatch, caplog):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://u:p@127.0.0.1:9/none")
    drift = DriftMetrics(registry, "fraud-demo")
    assert drift.refresh() == 0  # logged, not raised: the API's loop calls it again later
    assert "drift report not read" in caplog.text
    assert _value(registry, "fraud_score_psi") is None


def test_the_api_exports_the_report_at_start_up(monkeypatch):
    _write(_report("2026-11-30", [0.31, 0.02, 0.25]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # no model: not needed
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    with TestClient(create_app(reload_interval=0, feature_history=False)) as client:
        text = client.get("/metrics").text
    assert 'fraud_feature_psi{feature="amount",model="fraud-demo"} 0.31' in text
    assert 'fraud_score_psi{model="fraud-demo"} 0.25' in text

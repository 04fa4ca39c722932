"""The course pipeline flow: cache keys, retries, schedules and the drift branch."""

from types import SimpleNamespace

import pandas as pd
import pytest
from prefect import task
from prefect.cache_policies import NO_CACHE

import course.flows as flows
from course.flows import (
    IO_TASKS,
    build_deployments,
    configure,
    fingerprint,
    ingest,
    land_raw,
    train_baseline,
)

START, LAST = pd.Timestamp("2026-01-01"), pd.Timestamp("2026-01-04")


def _key(stage, **inputs) -> str:
    """The cache key Prefect computes for ``stage`` called with ``inputs``."""
    context = SimpleNamespace(task=stage)
    return stage.cache_policy.compute_key(context, inputs, flow_parameters={})


def test_fingerprint_follows_the_content_of_a_folder(tmp_path):
    assert fingerprint(tmp_path / "nowhere") == "missing"
    (tmp_path / "a.csv").write_text("x\n1\n")
    first = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == first
    (tmp_path / "a.csv").write_text("x\n2\n")
    assert fingerprint(tmp_path) != first


def test_cache_key_changes_with_the_data_read_the_inputs_and_the_data_dir(tmp_path, monkeypatch):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "customers.csv").write_text("customer_id\n1\n")
    key = _key(ingest, start=START, last_day=LAST)
    assert _key(ingest, start=START, last_day=LAST) == key  # nothing changed: cached
    (raw / "customers.csv").write_text("customer_id\n2\n")
    changed = _key(ingest, start=START, last_day=LAST)
    assert changed != key
    assert _key(ingest, start=START, last_day=LAST + pd.Timedelta(days=1)) != changed
    monkeypatch.setenv("PRODUCTION_DATA_DIR", str(tmp_path / "elsewhere"))
    assert _key(ingest, start=START, last_day=LAST) != changed


def test_cache_key_of_training_follows_the_lake_not_the_frames_passed(tmp_path):
    lake = tmp_path / "data" / "lake"
    lake.mkdir(parents=True)
    (lake / "part-0.parquet").write_bytes(b"v1")
    key = _key(train_baseline, split="one split", random_state=0)
    assert _key(train_baseline, split="another object", random_state=0) == key
    assert _key(train_baseline, split="one split", random_state=1) != key
    (lake / "part-0.parquet").write_bytes(b"v2")
    assert _key(train_baseline, split="one split", random_state=0) != key
    # landing the raw files reads nothing: its key does not follow the lake
    args = {"start": START, "last_day": LAST, "n_days": 4, "random_state": 0}
    assert _key(land_raw, **args) == _key(land_raw, **args)


def test_io_tasks_are_retried_and_the_check_is_not():
    assert [t.name for t in IO_TASKS] == ["ingest", "register", "score", "monitor"]
    for stage in IO_TASKS:
        assert (stage.retries, stage.retry_delay_seconds) == (2, 2), stage.name
    assert configure.retries == 0 and configure.cache_policy is NO_CACHE


def test_deployments_carry_their_cron_schedules():
    pipeline, retrain = build_deployments(retrain_cron="30 5 * * *")
    assert pipeline.name == "nightly" and pipeline.flow_name == "course-pipeline"
    assert [s.schedule.cron for s in pipeline.schedules] == [flows.PIPELINE_CRON]
    assert retrain.name == "daily"
    assert [s.schedule.cron for s in retrain.schedules] == ["30 5 * * *"]


def _fake(result):
    """A task that returns ``(result, "fake")`` whatever its arguments."""
    return task(lambda *args: (result, "fake"), cache_policy=NO_CACHE)


@pytest.mark.parametrize(("flagged", "n_days"), [(True, 10), (False, 10), (True, 8)])
def test_drift_flagged_by_the_monitor_triggers_continuous_training(
    prefect_api, monkeypatch, capsys, flagged, n_days
):
    search = SimpleNamespace(cv_results_={"params": [{}, {}]})
    fakes = {
        "configure": "sqlite:///mlflow.db",
        "land_raw": "data",
        "ingest": 100,
        "build_features": None,
        "train_baseline": 0.1,
        "tune": (search, "run123", 0.3),
        "register": ("1", "ONNX Runtime"),
        "promote": "v1 promoted to champion",
        "explain": None,
        "score": 10,
        "monitor": (flagged, "DRIFT in amount" if flagged else "no drift"),
    }
    for name, result in fakes.items():
        monkeypatch.setattr(flows, name, _fake(result))
    monkeypatch.setattr(flows, "get_model_version", lambda name, alias: "1")
    calls = []

    def fake_training(**kwargs):
        calls.append(kwargs)
        return SimpleNamespace(decision="kept", reason="candidate does not beat champion")

    monkeypatch.setattr(flows, "continuous_training", fake_training)
    summary = flows.course_pipeline(n_days=n_days, random_state=0)
    as_of = START + pd.Timedelta(days=n_days)  # the day after the scored day
    if flagged and n_days == 10:  # 3 days labelled by then (labels come a week later)
        assert calls == [{"as_of": as_of, "trigger": "drift", "train_days": 2, "eval_days": 1}]
        assert summary["retraining"] == "kept: candidate does not beat champion"
        assert "-> continuous training" in capsys.readouterr().out
        assert summary["stages cached"] == "0 of 11"
    elif flagged:
        assert calls == [] and summary["retraining"].startswith("skipped: too few labelled days")
    else:
        assert calls == [] and summary["retraining"] == "not needed (no drift)"
    if not calls:
        assert summary["stages cached"] == "0 of 10"


def test_pipeline_refuses_too_few_days():
    with pytest.raises(ValueError, match="n_days"):
        flows.course_pipeline.fn(n_days=3)

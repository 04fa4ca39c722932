"""The README's main command: `production demo` on the embedded defaults, from a clean folder."""

import os
import re
import socket
import sqlite3
import subprocess
import sys

import pytest

from course.cli import main


def _run(args, home, **env):
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")
    }
    clean.update(PRODUCTION_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "course.cli", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
    )


STAGES = (
    "simulate: land raw files",
    "ingest: bronze -> silver -> gold",
    "point-in-time features",
    "train: per-row baseline",
    "tune:",
    "register as challenger",
    "promote through the metric gate",
    "explain champion v1",
    "batch-score",
    "monitor:",
    "continuous training:",
)


def _detail(out: str, stage: str) -> str:
    """The line printed after ``-> stage``: its detail and time, or that it was cached."""
    lines = out.splitlines()
    return lines[lines.index(next(x for x in lines if x.startswith(f"-> {stage}"))) + 1]


@pytest.mark.slow
def test_demo_runs_as_a_flow_then_skips_every_unchanged_stage(tmp_path, prefect_api):
    first = _run(["demo", "--days", "10"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout
    assert "-> configuration" in out and f"Prefect UI: {prefect_api.removesuffix('/api')}" in out
    for stage in STAGES:
        assert "(cached: skipped)" not in _detail(out, stage), stage
    assert "stages cached          0 of 11" in out
    assert re.search(r"Prefect UI +flow run [\w-]+ at http://\S+/flow-runs/flow-run/", out)
    # every raw row is accounted for: silver, rejected or late
    raw, silver, rejected, late = (
        int(n.replace(",", ""))
        for n in re.search(
            r"([\d,]+) raw rows = ([\d,]+) silver \+ ([\d,]+) rejected .*\+ ([\d,]+) late", out
        ).groups()
    )
    assert raw == silver + rejected + late and rejected > 0
    assert re.search(r"served by +v1: (ONNX Runtime|scikit-learn \()", out)
    assert "registered model       fraud-demo version 1 (alias champion)" in out
    assert "gate                   v1 promoted to champion" in out
    assert "(4 nested candidate runs)" in out
    # the last day drifts: the monitor flags it and continuous training decides
    assert "drift                  DRIFT in" in out
    assert re.search(r"retraining +(promoted|kept|rolled_back): ", out)
    assert (tmp_path / "data" / "production.db").is_file()
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert (tmp_path / "data" / "prefect").is_dir()  # task results, for the cache
    with sqlite3.connect(tmp_path / "data" / "production.db") as db:  # every gate decision
        decisions = db.execute(
            "select trigger, decision, candidate_version from training_decisions order by rowid"
        ).fetchall()
    assert decisions[0] == ("pipeline", "promoted", "1") and len(decisions) == 2
    assert sorted(p.name for p in (tmp_path / "data" / "lake").iterdir()) == [
        "bronze",
        "gold",
        "silver",
    ]
    rows = next(line for line in out.splitlines() if line.strip().startswith("transactions "))
    scored = next(line for line in out.splitlines() if line.strip().startswith("scored rows "))

    # again, nothing changed: every stage is skipped, no model version is created
    second = _run(["demo", "--days", "10"], tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    again = second.stdout
    for stage in STAGES:
        assert _detail(again, stage) == _detail(out, stage).rsplit(" (", 1)[0] + (
            " (cached: skipped)"
        )
    assert "stages cached          11 of 11" in again
    assert "Created version" not in again + second.stderr
    assert rows in again and scored in again


def test_check_reports_configuration(tmp_path, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "DATABASE_URL" in out and "[default]" in out and "SQLite" in out


def test_demo_with_a_dead_database_fails_fast_and_clearly(tmp_path, prefect_api):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = _run(
        ["demo"],
        tmp_path,
        DATABASE_URL=f"postgresql+psycopg2://course:topsecret@127.0.0.1:{port}/course",
    )
    assert result.returncode == 1
    assert "-> configuration" in result.stdout and "-> simulate" not in result.stdout
    assert f"Cannot reach the database: PostgreSQL at 127.0.0.1:{port}" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout


def test_demo_refuses_too_few_days(tmp_path, capsys):
    assert main(["demo", "--days", "3"]) == 1
    err = capsys.readouterr().err
    assert "'n_days' parameter of run_demo must be an int >= 4" in err and "Got 3" in err


def test_flows_serve_serves_both_deployments_on_their_crons(monkeypatch, capsys):
    served = []
    monkeypatch.setattr("course.cli.serve_flows", lambda *crons: served.append(crons))
    assert main(["flows", "serve", "--retrain-cron", "0 7 * * *"]) == 0
    assert served == [("0 2 * * *", "0 7 * * *")]
    assert "course-pipeline/nightly (0 2 * * *)" in capsys.readouterr().out

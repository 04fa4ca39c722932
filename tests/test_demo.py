"""The README's main command: `production demo` on the embedded defaults, from a clean folder."""

import os
import re
import socket
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


@pytest.mark.slow
def test_demo_runs_end_to_end_on_embedded_defaults_and_again(tmp_path):
    first = _run(["demo", "--days", "10"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout
    for stage in (
        "configuration",
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
    ):
        assert f"-> {stage}" in out
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
    assert (tmp_path / "data" / "production.db").is_file()
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert sorted(p.name for p in (tmp_path / "data" / "lake").iterdir()) == [
        "bronze",
        "gold",
        "silver",
    ]
    rows = next(line for line in out.splitlines() if line.strip().startswith("transactions "))
    scored = next(line for line in out.splitlines() if line.strip().startswith("scored rows "))

    # again: same rows, a new challenger that ties with the champion (same data and seeds),
    # so the gate keeps version 1, which has already scored the day
    second = _run(["demo", "--days", "10"], tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert rows in second.stdout  # loads are idempotent: same row count in the database
    assert "gate                   v2 kept as challenger: it does not beat champion v1" in (
        second.stdout
    )
    assert "fraud-demo version 1 (alias champion)" in second.stdout
    assert scored in second.stdout
    n_day = int(scored.split()[2].replace(",", ""))
    assert f"0 scored ({n_day:,} already)" in second.stdout


def test_check_reports_configuration(tmp_path, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "DATABASE_URL" in out and "[default]" in out and "SQLite" in out


def test_demo_with_a_dead_database_fails_fast_and_clearly(tmp_path):
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

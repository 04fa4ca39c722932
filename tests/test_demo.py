"""The README's main command: `production demo` on the embedded defaults, from a clean folder."""

import os
import socket
import subprocess
import sys
import time

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
    for stage in ("simulate: land raw files", "ingest: bronze -> silver -> gold", "tune:"):
        assert f"-> {stage}" in out
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
    started = time.perf_counter()
    result = _run(
        ["demo"],
        tmp_path,
        DATABASE_URL=f"postgresql+psycopg2://course:topsecret@127.0.0.1:{port}/course",
    )
    assert time.perf_counter() - started < 30  # interpreter start + imports + a refused connect
    assert result.returncode == 1
    assert f"Cannot reach the database: PostgreSQL at 127.0.0.1:{port}" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout

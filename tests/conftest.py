"""Shared fixtures: every test starts from the embedded defaults in its own folder.

The real services' URLs (set by ``bash scripts/test.sh`` / ``.ci/run`` from
``scripts/services.sh``) are captured once, removed from the environment of unit tests,
and handed only to tests that ask for them through ``postgres_url`` / ``mlflow_server_uri``.
"""

import os

import pytest

SERVICE_VARIABLES = ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS")
SERVICES = {name: os.environ.get(name, "") for name in SERVICE_VARIABLES}
REQUIRE_SERVICES = os.environ.get("PRODUCTION_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def embedded_defaults(monkeypatch, tmp_path):
    """Unset service variables and point PRODUCTION_HOME at a fresh folder (no .env)."""
    for name in (*SERVICE_VARIABLES, "PRODUCTION_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PRODUCTION_HOME", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def _service(name: str, what: str) -> str:
    value = SERVICES[name]
    if not value:
        message = f"{name} is not set: start {what} with 'bash scripts/services.sh start'"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (PRODUCTION_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return value


@pytest.fixture
def postgres_url():
    """URL of the real PostgreSQL started by scripts/services.sh (skips if none)."""
    url = _service("DATABASE_URL", "PostgreSQL")
    assert url.startswith("postgresql"), f"DATABASE_URL is not PostgreSQL: {url.split('@')[-1]}"
    return url


@pytest.fixture
def mlflow_server_uri():
    """URL of the real MLflow server started by scripts/services.sh (skips if none)."""
    uri = _service("MLFLOW_TRACKING_URI", "the MLflow server")
    assert uri.startswith("http"), "MLFLOW_TRACKING_URI is not a server URL"
    return uri


@pytest.fixture(scope="session")
def prefect_api():
    """URL of a Prefect API for tests that run flows (started once per test session).

    The server of ``scripts/services.sh`` when ``PREFECT_API_URL`` is set; otherwise a
    temporary server on a temporary database (Prefect's test harness, ~15-25 s to start).
    Subprocesses (the demo's CLI) get it through ``os.environ["PREFECT_API_URL"]``.
    """
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield url
        return
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            del os.environ["PREFECT_API_URL"]

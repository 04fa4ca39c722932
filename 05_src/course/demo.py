"""The end-to-end demo behind ``production demo``: the course pipeline as a Prefect flow.

Stages (``course.flows``): configuration check -> simulate: land the days as raw CSV
files, dirty records included, with drift injected on the last day -> ingest: bronze ->
silver -> gold and the database load -> point-in-time features -> per-row baseline ->
tune gradient boosting on windowed features (nested MLflow runs) -> register the best
pipeline as ``challenger`` with its ONNX graph -> promote it to ``champion`` through the
metric gate -> explain it with SHAP -> batch-score the last day -> monitor drift, and
retrain (continuous training) when drift is flagged. A second run with nothing changed
skips every cached stage.
"""

from __future__ import annotations

import logging
import os

from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import (
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

from course.flows import course_pipeline
from production._validation import Interval, validate_params
from production.config import RANDOM_STATE, mask_url

__all__ = ["run_demo"]


def _mlflow_ui(tracking_uri: str) -> str:
    """Return the command (local store) or the address (server) of the MLflow UI."""
    if tracking_uri.startswith("sqlite"):
        return f"mlflow ui --backend-store-uri {tracking_uri}"
    return mask_url(tracking_uri)


def _prefect_ui(flow_run: str | None = None) -> str:
    """Return where the flow run can be seen: the Prefect UI, or how to start one."""
    api_url = os.environ.get("PREFECT_API_URL", "")
    if api_url and flow_run:
        return f"flow run {flow_run}"
    if api_url:
        return f"{api_url.removesuffix('/').removesuffix('/api')}/runs (flow course-pipeline)"
    return (
        "`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api "
        "production demo (UI at http://127.0.0.1:4200)"
    )


def _quiet_prefect(verbose: bool) -> None:
    """Show Prefect's own log lines on the console from WARNING up (INFO if ``verbose``)."""
    level = logging.INFO if verbose else logging.WARNING
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(level)


@validate_params(random_state=Interval(int, 0, None), n_days=Interval(int, 4, None))
def run_demo(
    *,
    random_state: int = RANDOM_STATE,
    n_days: int = 30,
    refresh: bool = False,
    verbose: bool = False,
) -> dict:
    """Run the course pipeline flow on the configured backends and return a summary.

    Parameters
    ----------
    random_state : int, default=RANDOM_STATE
        Seed for the simulator, the models and the SHAP sample.
    n_days : int, default=30
        Days of transactions to simulate, >= 4: all but the last train and validate the
        model (time split 70/30), the last is scored in batch and monitored.
    refresh : bool, default=False
        Run every stage, even those whose inputs did not change since the last run.
    verbose : bool, default=False
        Show Prefect's INFO log lines too (task runs created, finished...).

    Returns
    -------
    dict
        What was written where (database, tables, runs, model version, plots), and the
        commands to look at it. InvalidParameterError (a ValueError) if ``n_days`` < 4.
    """
    _quiet_prefect(verbose)
    print(f"Prefect UI: {_prefect_ui()}", flush=True)
    # the temporary server (no PREFECT_API_URL): offline, and its first start creates
    # its database, slow on a busy laptop
    local = {
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180,
    }
    with temporary_settings(updates=local):
        summary = course_pipeline(n_days=n_days, random_state=random_state, refresh=refresh)
    tracking_uri, run = summary.pop("tracking_uri"), summary.pop("flow_run")
    return summary | {
        "MLflow UI": _mlflow_ui(tracking_uri),
        "Prefect UI": _prefect_ui(run),
        "serve the champion": "uvicorn course.api:create_app --factory --port 8000",
    }

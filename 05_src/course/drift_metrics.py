"""Drift metrics of the scoring API: the latest drift report as Prometheus gauges.

The drift monitor (:func:`production.serving.run_drift_check`, the CronJob of ``deploy/k8s``)
writes one row per feature and window into table ``drift_reports``. The API exports the
latest window of the model it serves, so that Prometheus can alert on it
(``monitoring/prometheus/rules/fraud-api.yml``, alert ``FraudFeatureDrift``)::

    fraud_feature_psi{model="fraud-demo", feature="amount"}      PSI of each feature
    fraud_score_psi{model="fraud-demo"}                          PSI of the score
    fraud_drift_report_timestamp_seconds{model="fraud-demo"}     when the report was written

The API calls :meth:`DriftMetrics.refresh` at start-up, then every
:data:`REFRESH_INTERVAL_S` seconds from a background task (in a thread: the event loop never
waits on the database): never on a request; a scrape only reads the values in memory. Until a
report exists the gauges have no sample (a missing report is not a PSI of 0). With several
workers (``PROMETHEUS_MULTIPROC_DIR``) each worker refreshes its own copy and ``/metrics``
shows the most recent value.
"""

from __future__ import annotations

import logging

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.exc import SQLAlchemyError

from production.db import read_sql, table_exists

logger = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 60.0  # drift reports are written daily: a minute late is on time

LATEST_REPORT = """
select feature, psi, created_at from drift_reports
where model_name = :name
  and window_end = (select max(window_end) from drift_reports where model_name = :name)
"""


class DriftMetrics:
    """Gauges of the latest drift report of one model, set by :meth:`refresh`.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry
        The app's registry, where the gauges are registered.
    model_name : str
        Rows of ``drift_reports`` with this ``model_name`` are exported.
    engine : sqlalchemy.engine.Engine, optional
        Database to read; default :func:`production.db.get_engine`.

    Examples
    --------
    >>> drift = DriftMetrics(CollectorRegistry(), "fraud-demo")  # doctest: +SKIP
    >>> drift.refresh()  # doctest: +SKIP
    """

    def __init__(self, registry: CollectorRegistry, model_name: str, *, engine=None):
        self.model_name, self.engine = model_name, engine
        kwargs = {"registry": registry, "multiprocess_mode": "mostrecent"}
        self.feature_psi = Gauge(
            "fraud_feature_psi",
            "PSI of each feature in the latest drift report (table drift_reports).",
            ["model", "feature"],
            **kwargs,
        )
        self.score_psi = Gauge(
            "fraud_score_psi", "PSI of the score in the latest drift report.", ["model"], **kwargs
        )
        self.report_time = Gauge(
            "fraud_drift_report_timestamp_seconds",
            "When the latest drift report was written (Unix time).",
            ["model"],
            **kwargs,
        )

    def refresh(self) -> int:
        """Read the latest report and set the gauges; return the number of features set.

        A database that cannot be read keeps the previous values (and logs a warning).
        """
        try:
            if not table_exists("drift_reports", engine=self.engine):
                return 0
            report = read_sql(LATEST_REPORT, params={"name": self.model_name}, engine=self.engine)
        except (SQLAlchemyError, OSError) as err:
            logger.warning("drift report not read: %s", err)
            return 0
        features = report.loc[report["feature"] != "score"]
        for feature in set(self._exported()) - set(features["feature"]):
            self.feature_psi.remove(self.model_name, feature)  # a column no longer checked
        for feature, value in zip(features["feature"], features["psi"], strict=True):
            self.feature_psi.labels(self.model_name, feature).set(float(value))
        score = report.loc[report["feature"] == "score", "psi"]
        if len(score):
            self.score_psi.labels(self.model_name).set(float(score.iloc[0]))
        if len(report):
            written = pd.Timestamp(report["created_at"].max())
            self.report_time.labels(self.model_name).set(written.timestamp())
        return len(features)

    def _exported(self) -> list[str]:
        """Return the features that have a sample now."""
        return [s.labels["feature"] for m in self.feature_psi.collect() for s in m.samples]

"""Serve the champion model: batch scoring, online features, the monitoring job.

Four parts, all built on the registry's aliases (``models:/name@champion``):

* **The model** -- :func:`load_serving_model` loads the version an alias points at as a
  :class:`ServingModel`: the pipeline, its version, its decision threshold and a *fast
  path* for one-row scoring (a ColumnTransformer on a one-row DataFrame costs ~5 ms; the
  compiled fast path does the same arithmetic on plain Python values in microseconds,
  and is checked equal to the pipeline when the model is loaded).
* **Features** -- :func:`compute_model_features` is THE definition of the model's input:
  per-row columns plus the point-in-time windowed features of
  :func:`production.features.compute_windowed_features`. Training (``production demo``),
  batch scoring and the monitoring job call it; the online service uses
  :class:`OnlineFeatureStore`, which keeps each customer's and terminal's recent history
  in memory and computes the same values for one new transaction (tested equal).
* **Batch scoring** -- :func:`score_day` scores one day of the ``transactions`` table into
  ``predictions``: chunk by chunk, one transaction per chunk, resumable after a crash and
  idempotent (a re-run scores only what the current model version has not scored).
* **Monitoring** -- :func:`run_drift_check` compares the latest window of scored
  transactions with the training reference (:func:`production.monitoring.drift_report`),
  stores the report in ``drift_reports`` (idempotent per window) and logs an MLflow run.

The online API lives in :mod:`course.api`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from production.db import get_engine, read_sql, table_exists, write_table
from production.features import (
    CUSTOMER_WINDOWS,
    TERMINAL_WINDOWS,
    compute_windowed_features,
)

__all__ = [
    "MODEL_NAME",
    "DEFAULT_THRESHOLD",
    "DECISIONS",
    "NUMERIC_FEATURES",
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "PREDICTION_COLUMNS",
    "compute_model_features",
    "OnlineFeatureStore",
    "ServingModel",
    "resolve_threshold",
    "load_serving_model",
    "read_transactions",
    "load_features",
    "BatchScoringResult",
    "score_day",
    "DriftCheck",
    "run_drift_check",
]

#: Registered model served by default (the one ``production demo`` registers).
MODEL_NAME = "fraud-demo"
#: Decision threshold when neither the caller, ``DECISION_THRESHOLD`` nor the model sets one.
DEFAULT_THRESHOLD = 0.5
#: Decisions, for a score below and at-or-above the threshold.
DECISIONS = ("approve", "block")
#: Table names.
PREDICTIONS_TABLE = "predictions"
DRIFT_TABLE = "drift_reports"
#: Columns of the ``predictions`` table.
PREDICTION_COLUMNS = (
    "transaction_id",
    "tx_date",
    "score",
    "decision",
    "threshold",
    "model_name",
    "model_version",
    "scored_at",
)

_ROW_NUMERIC = ("amount", "tx_hour", "tx_weekday")
_WINDOWED = tuple(
    f"customer_{kind}_{w}d" for w in CUSTOMER_WINDOWS for kind in ("tx_count", "amount_mean")
) + tuple(
    f"terminal_{kind}_{w}d"
    for w in TERMINAL_WINDOWS
    for kind in ("tx_count", "fraud_count", "fraud_rate")
)
#: Numeric model inputs: per-row values, then the windowed features.
NUMERIC_FEATURES = _ROW_NUMERIC + _WINDOWED
#: Categorical model inputs.
CATEGORICAL_FEATURES = ("merchant_category", "channel")
#: Every column :func:`compute_model_features` returns, in order.
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES
#: Columns of a transaction the features need (labels only for the terminal history).
_INPUT_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "merchant_category",
    "channel",
)
_LABEL_COLUMNS = ("is_fraud", "label_available_at")
_DAY_NS = 86_400 * 10**9
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


# ------------------------------------------------------------------------ features


def compute_model_features(transactions: pd.DataFrame, *, backend: str = "pandas") -> pd.DataFrame:
    """Compute the model's input columns for every transaction, point in time.

    Per-row columns (``amount``, ``tx_hour``, ``tx_weekday`` with Monday = 0,
    ``merchant_category``, ``channel``) plus the windowed features of
    :func:`production.features.compute_windowed_features` with its default windows:
    the customer's count and mean amount over 1, 7 and 30 days and the terminal's
    count, known frauds and known fraud rate over 28 days, all over transactions
    strictly before each one and with labels only once they are available.

    Rows earlier than the one being scored must be in ``transactions`` for its
    windows to be complete: to score a day, pass that day and the 30 days before it.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Columns ``tx_datetime``, ``customer_id``, ``terminal_id``, ``amount``,
        ``merchant_category``, ``channel``, ``is_fraud`` (NaN when unknown) and
        ``label_available_at`` (NaT when unknown); a unique index.
    backend : {"pandas", "dask"}, default="pandas"
        How to compute the windowed features (identical results).

    Returns
    -------
    pandas.DataFrame
        :data:`FEATURE_COLUMNS`, indexed like ``transactions``.

    Raises
    ------
    TypeError
        If ``transactions`` is not a DataFrame or a time column is not datetime64.
    ValueError
        If a column is missing (named) or the index has duplicates.

    Examples
    --------
    >>> from production.simulate import simulate
    >>> tx = simulate(n_customers=20, n_terminals=10, n_days=3).transactions
    >>> compute_model_features(tx).columns[:4].tolist()
    ['amount', 'tx_hour', 'tx_weekday', 'customer_tx_count_1d']
    """
    caller = "compute_model_features"
    if not isinstance(transactions, pd.DataFrame):
        raise TypeError(
            f"{caller}: transactions must be a pandas DataFrame. "
            f"Got {type(transactions).__name__} instead."
        )
    needed = [c for c in _INPUT_COLUMNS if c != "transaction_id"] + list(_LABEL_COLUMNS)
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise ValueError(
            f"{caller}: column(s) {missing} not found in transactions; "
            f"available: {[str(c) for c in transactions.columns]}"
        )
    windowed = compute_windowed_features(
        transactions[needed],
        customer_windows=CUSTOMER_WINDOWS,
        terminal_windows=TERMINAL_WINDOWS,
        backend=backend,
    )
    when = transactions["tx_datetime"]
    rows = pd.DataFrame(
        {
            "amount": transactions["amount"].astype("float64"),
            "tx_hour": when.dt.hour.astype("float64"),
            "tx_weekday": when.dt.day_of_week.astype("float64"),
            "merchant_category": transactions["merchant_category"].astype(object),
            "channel": transactions["channel"].astype(object),
        },
        index=transactions.index,
    )
    features = pd.concat([rows, windowed], axis=1)
    return features[list(FEATURE_COLUMNS)]


def _ns(value) -> int:
    """Nanoseconds since the epoch of a naive-UTC datetime-like."""
    return pd.Timestamp(value).value


class OnlineFeatureStore:
    """Recent history per customer and terminal, in memory: online features in microseconds.

    :meth:`lookup` returns, for one new transaction, exactly the values
    :func:`compute_model_features` gives it offline when run on the same history: same
    windows, strictly before the transaction, labels counted only once available. Each
    customer keeps sorted times and amounts; each terminal sorted times with label, label
    time and fraud flag; a query is two binary searches per window plus a short scan.
    History older than the longest window (relative to the latest time seen) is dropped.

    Parameters
    ----------
    customer_windows : tuple of int, default=CUSTOMER_WINDOWS
        Customer windows in days (must match the model's features).
    terminal_windows : tuple of int, default=TERMINAL_WINDOWS
        Terminal windows in days.

    Examples
    --------
    >>> store = OnlineFeatureStore()
    >>> store.add_history(past_transactions)  # doctest: +SKIP
    >>> features = store.lookup(transaction)  # doctest: +SKIP
    >>> store.record(transaction)  # doctest: +SKIP
    """

    def __init__(self, customer_windows=CUSTOMER_WINDOWS, terminal_windows=TERMINAL_WINDOWS):
        self.customer_windows = tuple(int(w) for w in customer_windows)
        self.terminal_windows = tuple(int(w) for w in terminal_windows)
        self._customer_ns = [w * _DAY_NS for w in self.customer_windows]
        self._terminal_ns = [w * _DAY_NS for w in self.terminal_windows]
        self._horizon_ns = (max(self.customer_windows + self.terminal_windows) + 1) * _DAY_NS
        # customer_id -> ([times], [amounts]); terminal_id -> ([times], [(label_at, fraud)])
        self._customers: dict[int, tuple[list, list]] = {}
        self._terminals: dict[int, tuple[list, list]] = {}
        self._seen: dict[int, int] = {}  # transaction_id -> time, to ignore repeats
        self._latest_ns = None
        self._n_since_prune = 0
        self._lock = threading.Lock()

    @property
    def n_rows(self) -> int:
        """Number of transactions held."""
        return sum(len(times) for times, _ in self._customers.values())

    @classmethod
    def from_database(cls, *, table: str = "transactions", engine=None, **kwargs):
        """Build a store holding the last ``max(windows) + 1`` days of ``table``.

        Parameters
        ----------
        table : str, default="transactions"
            Table with the transaction columns and ``is_fraud``/``label_available_at``.
        engine : sqlalchemy.engine.Engine, optional
            Defaults to :func:`production.db.get_engine`.
        **kwargs
            Passed to the constructor (windows).

        Returns
        -------
        OnlineFeatureStore
            The store; empty if the table does not exist or is empty.

        Raises
        ------
        ValueError
            If ``table`` is not a plain table name.
        production.db.DatabaseUnavailableError
            If the database cannot be reached.
        """
        _check_table_name(table, "table", "OnlineFeatureStore.from_database")
        store = cls(**kwargs)
        engine = engine or get_engine()
        if not table_exists(table, engine=engine):
            return store
        latest = read_sql(f"select max(tx_datetime) as latest from {table}", engine=engine)
        value = latest["latest"].iloc[0]
        if value is None or pd.isna(value):
            return store
        end = pd.Timestamp(value) + pd.Timedelta(seconds=1)
        start = end - pd.Timedelta(store._horizon_ns, unit="ns")
        store.add_history(read_transactions(start, end, table=table, engine=engine))
        return store

    def add_history(self, transactions: pd.DataFrame) -> int:
        """Add past transactions, with their labels, to the history.

        Parameters
        ----------
        transactions : pandas.DataFrame
            Columns ``tx_datetime``, ``customer_id``, ``terminal_id``, ``amount``, and
            optionally ``transaction_id``, ``is_fraud`` and ``label_available_at``
            (missing: label unknown).

        Returns
        -------
        int
            Rows added (repeated ``transaction_id`` values are skipped).

        Raises
        ------
        ValueError
            If a required column is missing (named).
        """
        required = ("tx_datetime", "customer_id", "terminal_id", "amount")
        missing = [c for c in required if c not in transactions.columns]
        if missing:
            raise ValueError(
                f"OnlineFeatureStore.add_history: column(s) {missing} not found in "
                f"transactions; available: {[str(c) for c in transactions.columns]}"
            )
        n = len(transactions)
        times = pd.to_datetime(transactions["tx_datetime"]).to_numpy("datetime64[ns]")
        times = times.astype("int64").tolist()
        ids = (
            transactions["transaction_id"].tolist()
            if "transaction_id" in transactions
            else [None] * n
        )
        if "label_available_at" in transactions and "is_fraud" in transactions:
            label_at = pd.to_datetime(transactions["label_available_at"]).to_numpy("datetime64[ns]")
            known = ~np.isnat(label_at) & transactions["is_fraud"].notna().to_numpy()
            label_ns = np.where(known, label_at.astype("int64"), -1).tolist()
            fraud = transactions["is_fraud"].fillna(0).to_numpy().astype(int).tolist()
        else:
            label_ns, fraud = [-1] * n, [0] * n
        added = 0
        with self._lock:
            for i, (t, customer, terminal, amount) in enumerate(
                zip(
                    times,
                    transactions["customer_id"].tolist(),
                    transactions["terminal_id"].tolist(),
                    transactions["amount"].astype(float).tolist(),
                    strict=True,
                )
            ):
                label = label_ns[i] * 2 + (fraud[i] == 1) if label_ns[i] >= 0 else -1
                added += self._insert(ids[i], t, int(customer), int(terminal), amount, label)
            self._prune()
        return added

    def _insert(self, transaction_id, t, customer, terminal, amount, label: int) -> int:
        """Insert one transaction in time order; 0 if its id was seen already.

        ``label`` packs the label in one int, ``label_time_ns * 2 + is_fraud``, or -1
        when unknown: plain ints are invisible to the garbage collector, tuples are not.
        """
        if transaction_id is not None:
            transaction_id = int(transaction_id)
            if transaction_id in self._seen:
                return 0
            self._seen[transaction_id] = t
        c_times, c_amounts = self._customers.setdefault(customer, ([], []))
        if not c_times or t >= c_times[-1]:
            c_times.append(t)
            c_amounts.append(amount)
        else:
            at = bisect.bisect_right(c_times, t)
            c_times.insert(at, t)
            c_amounts.insert(at, amount)
        t_times, t_labels = self._terminals.setdefault(terminal, ([], []))
        if not t_times or t >= t_times[-1]:
            t_times.append(t)
            t_labels.append(label)
        else:
            at = bisect.bisect_right(t_times, t)
            t_times.insert(at, t)
            t_labels.insert(at, label)
        if self._latest_ns is None or t > self._latest_ns:
            self._latest_ns = t
        self._n_since_prune += 1
        return 1

    def _prune(self) -> None:
        """Drop history older than the longest window before the latest time seen."""
        self._n_since_prune = 0
        if self._latest_ns is None:
            return
        cutoff = self._latest_ns - self._horizon_ns
        for index in (self._customers, self._terminals):
            for key in list(index):
                times, values = index[key]
                cut = bisect.bisect_left(times, cutoff)
                if cut:
                    del times[:cut], values[:cut]
                if not times:
                    del index[key]
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    def lookup(self, transaction: Mapping) -> dict:
        """Return the model's input columns for one transaction (not yet recorded).

        Parameters
        ----------
        transaction : mapping
            ``tx_datetime`` (datetime, naive UTC), ``customer_id``, ``terminal_id``,
            ``amount``, ``merchant_category``, ``channel``.

        Returns
        -------
        dict
            One value per column of :data:`FEATURE_COLUMNS` (NaN for an empty window's
            mean or rate), equal to :func:`compute_model_features` on the same history.

        Raises
        ------
        KeyError
            If a required field is missing.
        """
        when = transaction["tx_datetime"]
        t = _ns(when)
        features = {
            "amount": float(transaction["amount"]),
            "tx_hour": float(when.hour),
            "tx_weekday": float(when.weekday()),
        }
        with self._lock:
            history = self._customers.get(int(transaction["customer_id"]))
            for w, span in zip(self.customer_windows, self._customer_ns, strict=True):
                count, mean = 0, math.nan
                if history is not None:
                    times, amounts = history
                    hi = bisect.bisect_left(times, t)
                    lo = bisect.bisect_left(times, t - span, 0, hi)
                    count = hi - lo
                    if count:
                        mean = math.fsum(amounts[lo:hi]) / count
                features[f"customer_tx_count_{w}d"] = count
                features[f"customer_amount_mean_{w}d"] = mean
            history = self._terminals.get(int(transaction["terminal_id"]))
            for w, span in zip(self.terminal_windows, self._terminal_ns, strict=True):
                count = frauds = known = 0
                if history is not None:
                    times, labels = history
                    hi = bisect.bisect_left(times, t)
                    lo = bisect.bisect_left(times, t - span, 0, hi)
                    count = hi - lo
                    for label in labels[lo:hi]:
                        if 0 <= label >> 1 <= t:
                            known += 1
                            frauds += label & 1
                features[f"terminal_tx_count_{w}d"] = count
                features[f"terminal_fraud_count_{w}d"] = int(frauds)
                features[f"terminal_fraud_rate_{w}d"] = frauds / known if known else math.nan
        features["merchant_category"] = transaction["merchant_category"]
        features["channel"] = transaction["channel"]
        return features

    def record(self, transaction: Mapping) -> bool:
        """Add a scored transaction to the history (label unknown until :meth:`add_labels`).

        Parameters
        ----------
        transaction : mapping
            As for :meth:`lookup`, optionally with ``transaction_id`` (a repeated id is
            ignored, so retried requests are not counted twice).

        Returns
        -------
        bool
            Whether it was added.
        """
        with self._lock:
            added = self._insert(
                transaction.get("transaction_id"),
                _ns(transaction["tx_datetime"]),
                int(transaction["customer_id"]),
                int(transaction["terminal_id"]),
                float(transaction["amount"]),
                -1,
            )
            if self._n_since_prune >= 10_000:
                self._prune()
        return bool(added)

    def add_labels(self, labels: pd.DataFrame) -> int:
        """Attach labels (chargebacks, confirmations) to transactions already held.

        Parameters
        ----------
        labels : pandas.DataFrame
            Columns ``terminal_id``, ``tx_datetime``, ``is_fraud`` and
            ``label_available_at``: the transaction is found by terminal and time.

        Returns
        -------
        int
            Labels attached (transactions no longer held are skipped).

        Raises
        ------
        ValueError
            If a column is missing (named).
        """
        required = ("terminal_id", "tx_datetime", "is_fraud", "label_available_at")
        missing = [c for c in required if c not in labels.columns]
        if missing:
            raise ValueError(
                f"OnlineFeatureStore.add_labels: column(s) {missing} not found in labels; "
                f"available: {[str(c) for c in labels.columns]}"
            )
        attached = 0
        with self._lock:
            for terminal, when, fraud, label_at in labels[list(required)].itertuples(index=False):
                history = self._terminals.get(int(terminal))
                if history is None or pd.isna(label_at) or pd.isna(fraud):
                    continue
                times, values = history
                t = _ns(when)
                at = bisect.bisect_left(times, t)
                if at < len(times) and times[at] == t:
                    values[at] = _ns(label_at) * 2 + (int(fraud) == 1)
                    attached += 1
        return attached


# ---------------------------------------------------------------------- the model


class _Unsupported(Exception):
    """A pipeline step the fast one-row path cannot reproduce (the pandas path is used)."""


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _numeric_ops(step, where: str) -> list[tuple]:
    """Compile a numeric transformer into element-wise operations on a float vector."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return []
    if isinstance(step, Pipeline):
        return [op for _, sub in step.steps for op in _numeric_ops(sub, where)]
    if isinstance(step, SimpleImputer):
        if step.add_indicator or not (
            isinstance(step.missing_values, float) and math.isnan(step.missing_values)
        ):
            raise _Unsupported(f"{where}: SimpleImputer with indicator or non-NaN missing values")
        try:
            fill = np.asarray(step.statistics_, dtype=float)
        except (TypeError, ValueError):
            raise _Unsupported(f"{where}: SimpleImputer with non-numeric fill values") from None
        return [("impute", fill)]
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        return [("affine", np.asarray(mean, dtype=float), 1.0 / np.asarray(scale, dtype=float))]
    if isinstance(step, RobustScaler):
        center = step.center_ if step.with_centering else 0.0
        scale = step.scale_ if step.with_scaling else 1.0
        return [("affine", np.asarray(center, dtype=float), 1.0 / np.asarray(scale, dtype=float))]
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise _Unsupported(f"{where}: MinMaxScaler(clip=True)")
        # x * scale_ + min_ == (x - (-min_ / scale_)) * scale_
        return [("affine", -step.min_ / step.scale_, np.asarray(step.scale_, dtype=float))]
    raise _Unsupported(f"{where}: {type(step).__name__}")


def _encoder_lookup(encoder, j: int, where: str) -> tuple[dict, Any, int]:
    """For input column ``j`` of a fitted encoder: {category: code}, unknown code, width.

    One-hot codes are output offsets within the encoder's block for that column;
    ordinal codes are the encoded values. The unknown code is ``None`` for "all zeros",
    ``_ERROR`` when the encoder refuses unknown categories.
    """
    categories = list(encoder.categories_[j])
    if isinstance(encoder, OrdinalEncoder):
        lookup = {(_MISSING if _is_missing(c) else c): float(k) for k, c in enumerate(categories)}
        if any(_is_missing(c) for c in categories):
            lookup[_MISSING] = float(encoder.encoded_missing_value)
        unknown = (
            float(encoder.unknown_value)
            if encoder.handle_unknown == "use_encoded_value"
            else _ERROR
        )
        return lookup, unknown, 1
    infrequent = None
    if getattr(encoder, "_infrequent_enabled", False):
        infrequent = encoder.infrequent_categories_[j]
    drop = None if encoder.drop_idx_ is None else encoder.drop_idx_[j]
    if drop is not None and infrequent is not None:
        raise _Unsupported(f"{where}: OneHotEncoder with both drop and infrequent categories")
    rare = set() if infrequent is None else {c for c in infrequent if not _is_missing(c)}
    lookup, position = {}, 0
    for k, category in enumerate(categories):
        if (drop is not None and k == drop) or category in rare:
            continue
        lookup[_MISSING if _is_missing(category) else category] = position
        position += 1
    unknown = None
    if infrequent is not None:
        for category in rare:
            lookup[category] = position
        unknown = position if encoder.handle_unknown == "infrequent_if_exist" else None
        position += 1
    if encoder.handle_unknown == "error":
        unknown = _ERROR
    return lookup, unknown, position


def _categorical_block(step, where: str) -> tuple[list | None, Any]:
    """Split ``[SimpleImputer(...),] OneHotEncoder | OrdinalEncoder`` into fills and encoder."""
    steps = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
    fills = None
    if len(steps) == 2 and isinstance(steps[0], SimpleImputer):
        imputer = steps[0]
        if imputer.add_indicator:
            raise _Unsupported(f"{where}: SimpleImputer with indicator")
        fills = list(imputer.statistics_)
        steps = steps[1:]
    if len(steps) != 1 or not isinstance(steps[0], OneHotEncoder | OrdinalEncoder):
        raise _Unsupported(f"{where}: {[type(s).__name__ for s in steps]}")
    return fills, steps[0]


class _FastPreprocessor:
    """A fitted ColumnTransformer of imputers, scalers and encoders, in plain Python.

    ``transform(records)`` returns the same dense matrix as ``preprocessor.transform(frame)``
    for a handful of records without building a DataFrame (a one-row DataFrame through a
    ColumnTransformer costs milliseconds; this costs microseconds).
    """

    def __init__(self, preprocessor):
        if not isinstance(preprocessor, ColumnTransformer):
            raise _Unsupported(f"preprocessor is a {type(preprocessor).__name__}")
        names_in = [str(c) for c in preprocessor.feature_names_in_]
        self.n_out = sum(s.stop - s.start for s in preprocessor.output_indices_.values())
        self.numeric: list[tuple] = []  # (columns, output positions, ops)
        # (column, fill, {category: code}, unknown code, output position, one-hot?)
        self.categorical: list[tuple] = []
        for name, trans, columns in preprocessor.transformers_:
            out = preprocessor.output_indices_.get(name, slice(0, 0))
            if (isinstance(trans, str) and trans == "drop") or out.stop == out.start:
                continue
            cols = [names_in[i] for i in _column_positions(columns, names_in)]
            where = f"transformer {name!r}"
            try:
                ops = _numeric_ops(trans, where)
            except _Unsupported:
                ops = None
            if ops is not None:
                if out.stop - out.start != len(cols):
                    raise _Unsupported(f"{where}: outputs do not match inputs one to one")
                self.numeric.append((cols, np.arange(out.start, out.stop), ops))
                continue
            fills, encoder = _categorical_block(trans, where)
            one_hot = isinstance(encoder, OneHotEncoder)
            position = out.start
            for j, column in enumerate(cols):
                lookup, unknown, width = _encoder_lookup(encoder, j, where)
                fill = None if fills is None else fills[j]
                self.categorical.append((column, fill, lookup, unknown, position, one_hot))
                position += width
            if position != out.stop:
                raise _Unsupported(f"{where}: could not account for every encoded column")

    def transform(self, records: list) -> np.ndarray:
        """Return the preprocessed matrix of ``records`` (dicts keyed by input column)."""
        matrix = np.zeros((len(records), self.n_out))
        for i, record in enumerate(records):
            row = matrix[i]
            for cols, positions, ops in self.numeric:
                values = np.array(
                    [math.nan if _is_missing(v := record[c]) else v for c in cols], dtype=float
                )
                for op in ops:
                    if op[0] == "impute":
                        values = np.where(np.isnan(values), op[1], values)
                    else:
                        values = (values - op[1]) * op[2]
                row[positions] = values
            for column, fill, lookup, unknown, position, one_hot in self.categorical:
                value = record[column]
                if _is_missing(value):
                    value = _MISSING if fill is None else fill
                code = lookup.get(value, unknown)
                if code is _ERROR:
                    raise ValueError(
                        f"column {column!r} has category {value!r}, which the model never "
                        "saw in training and its encoder refuses (handle_unknown='error')."
                    )
                if one_hot:
                    if code is not None:
                        row[position + code] = 1.0
                else:
                    row[position] = code
        return matrix


_MISSING = object()
_ERROR = object()


def _column_positions(columns, names_in: list[str]) -> list[int]:
    """Positions in ``names_in`` of a fitted ColumnTransformer's column selection."""
    positions = np.arange(len(names_in))
    if isinstance(columns, slice):
        return positions[columns].tolist()
    if isinstance(columns, str | int | np.integer):
        columns = [columns]
    columns = list(columns)
    if columns and all(isinstance(c, bool | np.bool_) for c in columns):
        return positions[np.asarray(columns, dtype=bool)].tolist()
    return [int(c) if isinstance(c, int | np.integer) else names_in.index(str(c)) for c in columns]


def _probe_records(fast: _FastPreprocessor, names: list[str], n_rows: int = 12) -> list[dict]:
    """Build records exercising every compiled branch: typical, missing and unknown values."""
    candidates: dict[str, list] = {}
    for cols, _, ops in fast.numeric:
        for j, column in enumerate(cols):
            values = [0.0, 1.0, -2.5, 1e3]
            for op in ops:
                if op[0] == "affine":
                    center = float(np.broadcast_to(op[1], (len(cols),))[j])
                    values += [center, center + 1.0]
                else:
                    values.append(math.nan)
            candidates[column] = values
    for column, fill, lookup, unknown, _position, _one_hot in fast.categorical:
        values = [k for k in lookup if k is not _MISSING][:8]
        if unknown is not _ERROR:
            values.append("__unseen_category__")
        if fill is not None or _MISSING in lookup or unknown is not _ERROR:
            values.append(math.nan)
        candidates[column] = values or [math.nan]
    n_rows = max([n_rows, *(len(v) for v in candidates.values())])
    return [
        {c: candidates.get(c, [0.0])[i % len(candidates.get(c, [0.0]))] for c in names}
        for i in range(n_rows)
    ]


def _compile_tree_model(model):
    """Compile a binary HistGradientBoostingClassifier into a pure-Python one-row scorer.

    ``predict_proba`` on one row pays ~15 us of set-up per tree (input validation, an
    OpenMP region per tree); walking the same trees in Python costs ~0.5 us per tree.
    Returns ``None`` for any other model (the caller then uses ``predict_proba``).
    """
    if type(model) is not HistGradientBoostingClassifier:
        return None
    if (
        getattr(model, "n_trees_per_iteration_", 0) != 1
        or type(model._loss).__name__ != "HalfBinomialLoss"
        or getattr(model, "is_categorical_", None) is not None
    ):
        return None
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            return None
        trees.append(
            (
                nodes["feature_idx"].tolist(),
                nodes["num_threshold"].tolist(),
                nodes["missing_go_to_left"].astype(bool).tolist(),
                nodes["left"].tolist(),
                nodes["right"].tolist(),
                nodes["is_leaf"].astype(bool).tolist(),
                nodes["value"].tolist(),
            )
        )
    baseline = float(np.ravel(model._baseline_prediction)[0])

    def predict(row: list) -> float:
        raw = baseline
        for feature, threshold, missing_left, left, right, leaf, value in trees:
            node = 0
            while not leaf[node]:
                x = row[feature[node]]
                if x != x:  # NaN
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            raw += value[node]
        return 1.0 / (1.0 + math.exp(-raw))

    return predict


def _compile_fast_path(pipeline, check: pd.DataFrame | None = None):
    """Return ``(preprocessor, tree scorer or None, None)`` if checked equal, else ``(None, None, why)``."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None, None, "the model is not a Pipeline([preprocess, model])"
    names = [str(c) for c in pipeline.feature_names_in_]
    try:
        fast = _FastPreprocessor(pipeline[0])
    except _Unsupported as err:
        return None, None, f"unsupported step: {err}"
    records = _probe_records(fast, names)
    if check is not None and len(check):
        records += check[names].head(200).to_dict(orient="records")
    frame = pd.DataFrame.from_records(records, columns=names)
    for column, *_ in fast.categorical:
        frame[column] = frame[column].astype(object)
    model = pipeline[-1]
    try:
        expected = pipeline.predict_proba(frame)[:, 1]
        matrix = fast.transform(records)
        got = model.predict_proba(matrix)[:, 1]
    except (ValueError, TypeError) as err:
        return None, None, f"probe failed: {err}"
    if not np.allclose(expected, got, rtol=1e-9, atol=1e-12):
        return None, None, f"probe mismatch (max difference {np.max(np.abs(expected - got)):.2g})"
    trees = _compile_tree_model(model)
    if trees is not None:
        walked = np.array([trees(row) for row in matrix.tolist()])
        if not np.allclose(expected, walked, rtol=1e-9, atol=1e-12):
            trees = None
    return fast, trees, None


def _known_categories(pipeline) -> dict:
    """{column: categories seen in training} for every encoded input column of a pipeline."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return {}
    preprocessor = pipeline[0]
    if not isinstance(preprocessor, ColumnTransformer):
        return {}
    names_in = [str(c) for c in preprocessor.feature_names_in_]
    known = {}
    for name, trans, columns in preprocessor.transformers_:
        if isinstance(trans, str):
            continue
        try:
            _, encoder = _categorical_block(trans, name)
        except _Unsupported:
            continue
        for j, position in enumerate(_column_positions(columns, names_in)):
            known[names_in[position]] = frozenset(
                c for c in encoder.categories_[j] if not _is_missing(c)
            )
    return known


@dataclass(frozen=True, eq=False)
class ServingModel:
    """A loaded model version, ready to score: the pipeline, its identity and its threshold.

    Build it with :func:`load_serving_model` (from the registry) or :meth:`from_pipeline`.

    Attributes
    ----------
    pipeline : Pipeline
        The fitted scikit-learn pipeline (preprocessing + classifier).
    name : str
        Registered model name.
    version : str
        Model version the alias pointed at when the model was loaded.
    alias : str or None
        The alias it was loaded by, e.g. ``"champion"``.
    threshold : float
        Scores at or above it are decided ``"block"``, others ``"approve"``.
    feature_names : tuple of str
        The input columns the pipeline was fitted on, in order.
    fast_path : bool
        Whether one-row scoring bypasses pandas: the preprocessor is compiled to plain
        Python and, for a HistGradientBoostingClassifier, the trees are walked in Python
        too (see :meth:`score_records`); both checked equal to the pipeline at load.
    fast_path_reason : str or None
        Why the fast path is off, when it is.
    loaded_at : datetime.datetime
        When the model was loaded (UTC).
    known_categories : dict
        ``{column: frozenset of categories}`` the model's encoders were fitted with.
    """

    pipeline: Any
    name: str
    version: str
    alias: str | None
    threshold: float
    feature_names: tuple
    fast_path: bool
    fast_path_reason: str | None
    loaded_at: dt.datetime
    known_categories: dict = field(default_factory=dict, repr=False)
    _fast: Any = field(default=None, repr=False)
    _trees: Any = field(default=None, repr=False)

    @classmethod
    def from_pipeline(
        cls,
        pipeline,
        *,
        name: str = "unregistered",
        version: str = "0",
        alias: str | None = None,
        threshold: float | None = None,
        check: pd.DataFrame | None = None,
    ) -> ServingModel:
        """Wrap a fitted pipeline for serving, compiling and checking its fast path.

        Parameters
        ----------
        pipeline : Pipeline
            Fitted binary classifier pipeline with ``predict_proba`` and ``feature_names_in_``.
        name, version, alias : str
            Identity reported with every score.
        threshold : float, optional
            Decision threshold; see :func:`resolve_threshold` for the default.
        check : pandas.DataFrame, optional
            Extra rows on which the fast path must reproduce ``pipeline.predict_proba``.

        Returns
        -------
        ServingModel
            The model; ``fast_path`` says whether one-row scoring bypasses pandas.

        Raises
        ------
        TypeError
            If ``pipeline`` has no ``predict_proba`` or was not fitted on a DataFrame.
        ValueError
            If ``threshold`` is not in [0, 1].
        """
        if not hasattr(pipeline, "predict_proba"):
            raise TypeError(
                f"ServingModel: the model must have predict_proba (a fitted classifier "
                f"pipeline). Got {type(pipeline).__name__} instead."
            )
        names = getattr(pipeline, "feature_names_in_", None)
        if names is None:
            raise TypeError(
                "ServingModel: the model must have been fitted on a DataFrame "
                "(feature_names_in_ is missing), so that inputs can be matched by column name."
            )
        fast, trees, reason = _compile_fast_path(pipeline, check)
        return cls(
            pipeline=pipeline,
            name=str(name),
            version=str(version),
            alias=alias,
            threshold=resolve_threshold(threshold, pipeline),
            feature_names=tuple(str(c) for c in names),
            fast_path=fast is not None,
            fast_path_reason=reason,
            loaded_at=dt.datetime.now(dt.UTC),
            known_categories=_known_categories(pipeline),
            _fast=fast,
            _trees=trees,
        )

    @property
    def compiled_trees(self) -> bool:
        """Whether the classifier's trees are walked in Python on the fast path."""
        return self._trees is not None

    def _check_columns(self, columns, where: str) -> None:
        missing = [c for c in self.feature_names if c not in columns]
        if missing:
            raise ValueError(
                f"{where}: feature column(s) {missing} missing; model {self.name!r} "
                f"v{self.version} needs {list(self.feature_names)}"
            )

    def score_frame(self, X: pd.DataFrame) -> np.ndarray:
        """Return the fraud score (probability of the positive class) of every row of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows with (at least) the model's feature columns.

        Returns
        -------
        numpy.ndarray
            One score in [0, 1] per row.

        Raises
        ------
        ValueError
            If a feature column is missing (named in the message).
        """
        self._check_columns(X.columns, "score_frame")
        if len(X) == 0:
            return np.empty(0)
        return self.pipeline.predict_proba(X[list(self.feature_names)])[:, 1]

    def score_records(self, records: list[Mapping]) -> np.ndarray:
        """Score a few records (dicts keyed by feature name): the online hot path.

        Uses the compiled fast path when :attr:`fast_path` is true (checked equal to the
        pipeline when the model was wrapped): ~0.1 ms for a one-row HistGradientBoosting
        pipeline instead of ~5 ms through pandas. Otherwise a DataFrame goes through the
        pipeline.

        Parameters
        ----------
        records : list of dict
            One dict per transaction with every feature column.

        Returns
        -------
        numpy.ndarray
            One score per record.

        Raises
        ------
        ValueError
            If a record lacks a feature column (named in the message).
        """
        for record in records:
            self._check_columns(record, "score_records")
        if self._fast is not None:
            matrix = self._fast.transform(records)
            if self._trees is not None:
                return np.array([self._trees(row) for row in matrix.tolist()])
            return self.pipeline[-1].predict_proba(matrix)[:, 1]
        frame = pd.DataFrame.from_records(records, columns=list(self.feature_names))
        return self.pipeline.predict_proba(frame)[:, 1]

    def unknown_categories(self, record: Mapping) -> list[str]:
        """Name the columns of ``record`` holding a category the model never saw.

        Parameters
        ----------
        record : mapping
            One transaction's features.

        Returns
        -------
        list of str
            Encoded columns whose value is not among the training categories (the
            encoder's ``handle_unknown`` decides what the model does with it).
        """
        return [
            column
            for column, categories in self.known_categories.items()
            if column in record
            and not _is_missing(record[column])
            and record[column] not in categories
        ]

    def decide(self, scores) -> np.ndarray:
        """Return ``"block"`` where a score reaches the threshold, else ``"approve"``.

        Parameters
        ----------
        scores : array-like of float
            Scores from :meth:`score_frame` or :meth:`score_records`.

        Returns
        -------
        numpy.ndarray of str
            One decision per score.
        """
        return np.where(np.asarray(scores) >= self.threshold, DECISIONS[1], DECISIONS[0])


def resolve_threshold(threshold: float | None = None, pipeline=None) -> float:
    """Return the decision threshold to serve with, checked to lie in [0, 1].

    In order: ``threshold`` if given; else the ``DECISION_THRESHOLD`` environment variable;
    else a threshold the model carries (``TunedThresholdClassifierCV.best_threshold_`` or
    ``FixedThresholdClassifier.threshold``); else :data:`DEFAULT_THRESHOLD`.

    Parameters
    ----------
    threshold : float, optional
        An explicit threshold.
    pipeline : estimator, optional
        The model, inspected for a threshold of its own.

    Returns
    -------
    float
        The threshold.

    Raises
    ------
    ValueError
        If the chosen value is not a number in [0, 1] (the message says where it came from).
    """
    source = "the 'threshold' parameter"
    if threshold is None and os.environ.get("DECISION_THRESHOLD", "").strip():
        threshold, source = os.environ["DECISION_THRESHOLD"].strip(), "DECISION_THRESHOLD"
    if threshold is None and pipeline is not None:
        for attribute in ("best_threshold_", "threshold"):
            value = getattr(pipeline, attribute, None)
            if isinstance(value, numbers.Real):
                threshold, source = value, f"the model's {attribute}"
                break
    if threshold is None:
        return DEFAULT_THRESHOLD
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"The decision threshold from {source} must be a number in [0, 1]. "
            f"Got {threshold!r} instead."
        )
    return value


def load_serving_model(
    name: str = MODEL_NAME,
    alias: str = "champion",
    *,
    threshold: float | None = None,
    check: pd.DataFrame | None = None,
) -> ServingModel:
    """Load the version that ``alias`` of registered model ``name`` points at, for serving.

    The version is read before and after loading; if the alias moved in between, the
    load is repeated, so the reported version is the one loaded.

    Parameters
    ----------
    name : str, default=MODEL_NAME
        Registered model name.
    alias : str, default="champion"
        Alias to load.
    threshold : float, optional
        Decision threshold; see :func:`resolve_threshold`.
    check : pandas.DataFrame, optional
        Rows on which the fast path must reproduce the pipeline.

    Returns
    -------
    ServingModel
        The loaded model.

    Raises
    ------
    LookupError
        If the model or the alias does not exist.
    production.tracking.TrackingServerUnavailableError
        If a configured MLflow server does not answer.
    """
    from production.tracking import configure_tracking, get_model_version, load_model

    configure_tracking()
    for _ in range(3):
        version = get_model_version(name, alias)
        pipeline = load_model(name, alias)
        if get_model_version(name, alias) == version:
            break
    return ServingModel.from_pipeline(
        pipeline, name=name, version=version, alias=alias, threshold=threshold, check=check
    )


# ------------------------------------------------------------------------ batch scoring


def _check_table_name(name, parameter: str, caller: str) -> str:
    """Table names go into SQL text: letters, digits and underscores only."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise ValueError(
            f"The {parameter!r} parameter of {caller} must be a table name of letters, "
            f"digits and underscores. Got {name!r} instead."
        )
    return name


def _as_day(value, parameter: str, caller: str) -> pd.Timestamp:
    """Parse a day ('YYYY-MM-DD', date or Timestamp) to midnight, naming the parameter."""
    try:
        day = pd.Timestamp(value)
    except (TypeError, ValueError):
        day = pd.NaT
    if pd.isna(day):
        raise ValueError(
            f"The {parameter!r} parameter of {caller} must be a date such as '2026-01-21'. "
            f"Got {value!r} instead."
        )
    if day.tzinfo is not None:
        day = day.tz_convert("UTC").tz_localize(None)
    return day.normalize()


def _sql_time(value: pd.Timestamp) -> str:
    """Format a timestamp as SQL text that SQLite (text comparison) and PostgreSQL accept."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def read_transactions(start, end, *, table: str = "transactions", engine=None) -> pd.DataFrame:
    """Read the transactions with ``start <= tx_datetime < end`` from the database.

    Parameters
    ----------
    start, end : str or datetime-like
        Time range, naive UTC; ``end`` is excluded.
    table : str, default="transactions"
        Table with the columns of :data:`production.simulate.TRANSACTION_COLUMNS`.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`production.db.get_engine`.

    Returns
    -------
    pandas.DataFrame
        The rows ordered by ``tx_datetime`` then ``transaction_id``, index ``0..n-1``,
        ``tx_datetime`` and ``label_available_at`` as datetime64.

    Raises
    ------
    ValueError
        If ``table`` is not a plain table name or does not exist.
    production.db.DatabaseUnavailableError
        If the database cannot be reached.
    """
    caller = "read_transactions"
    _check_table_name(table, "table", caller)
    engine = engine or get_engine()
    if not table_exists(table, engine=engine):
        raise ValueError(
            f"{caller}: table {table!r} not found; load transactions first "
            "(e.g. `production demo` or production.db.write_table)."
        )
    frame = read_sql(
        f"select * from {table} where tx_datetime >= :start and tx_datetime < :end "
        "order by tx_datetime, transaction_id",
        params={"start": _sql_time(pd.Timestamp(start)), "end": _sql_time(pd.Timestamp(end))},
        engine=engine,
    )
    for column in ("tx_datetime", "label_available_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], format="mixed").astype("datetime64[ns]")
    return frame.reset_index(drop=True)


def load_features(
    start, end, *, table: str = "transactions", engine=None, backend: str = "pandas"
) -> pd.DataFrame:
    """Model features of the transactions with ``start <= tx_datetime < end``, point in time.

    Reads those transactions and the history their windows need (the longest window
    before ``start``), then :func:`compute_model_features`.

    Parameters
    ----------
    start, end : str or datetime-like
        Time range, naive UTC; ``end`` is excluded.
    table : str, default="transactions"
        Source table.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`production.db.get_engine`.
    backend : {"pandas", "dask"}, default="pandas"
        How to compute the windowed features.

    Returns
    -------
    pandas.DataFrame
        ``transaction_id``, ``tx_datetime``, ``is_fraud``, ``label_available_at`` and
        :data:`FEATURE_COLUMNS`, one row per transaction of the range, in time order.

    Raises
    ------
    ValueError
        If the table does not exist.
    production.db.DatabaseUnavailableError
        If the database cannot be reached.
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    history_days = max(CUSTOMER_WINDOWS + TERMINAL_WINDOWS)
    rows = read_transactions(
        start - pd.Timedelta(days=history_days), end, table=table, engine=engine
    )
    features = compute_model_features(rows, backend=backend)
    keep = (rows["tx_datetime"] >= start).to_numpy()
    ids = rows.loc[keep, ["transaction_id", "tx_datetime", "is_fraud", "label_available_at"]]
    return pd.concat([ids, features.loc[keep]], axis=1).reset_index(drop=True)


@dataclass(frozen=True)
class BatchScoringResult:
    """What one :func:`score_day` run did.

    Attributes
    ----------
    day : pandas.Timestamp
        The day scored.
    model_name, model_version : str
        The model that scored it.
    n_transactions : int
        Transactions of the day.
    n_already_scored : int
        Of those, scored by this model version before the run (skipped).
    n_scored : int
        Scored by this run.
    n_chunks : int
        Chunks written, one database transaction each.
    n_removed : int
        Predictions removed because their transaction is no longer in the table.
    seconds : float
        Wall time.
    """

    day: pd.Timestamp
    model_name: str
    model_version: str
    n_transactions: int
    n_already_scored: int
    n_scored: int
    n_chunks: int
    n_removed: int
    seconds: float


def _existing_predictions(table: str, day: pd.Timestamp, engine) -> pd.DataFrame:
    """Read the predictions stored for ``day`` (empty when the table does not exist)."""
    if not table_exists(table, engine=engine):
        return pd.DataFrame(columns=["transaction_id", "model_name", "model_version"])
    return read_sql(
        f"select transaction_id, model_name, model_version from {table} "
        "where tx_date >= :start and tx_date < :end",
        params={
            "start": _sql_time(day),
            "end": _sql_time(day + pd.Timedelta(days=1)),
        },
        engine=engine,
    )


def _scored_chunks(model: ServingModel, chunks: list[pd.DataFrame], backend: str):
    """Yield ``(chunk, scores)`` in order; with Dask, a wave of chunks at a time."""
    if backend == "pandas":
        for chunk in chunks:
            yield chunk, model.score_frame(chunk)
        return
    import dask

    wave = max(os.cpu_count() or 1, 1)
    for first in range(0, len(chunks), wave):
        batch = chunks[first : first + wave]
        scores = dask.compute(*[dask.delayed(model.score_frame)(c) for c in batch])
        yield from zip(batch, scores, strict=True)


def score_day(
    day,
    *,
    model: ServingModel | None = None,
    model_name: str = MODEL_NAME,
    alias: str = "champion",
    chunk_size: int = 5_000,
    backend: str = "pandas",
    force: bool = False,
    table: str = "transactions",
    predictions_table: str = PREDICTIONS_TABLE,
    engine=None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> BatchScoringResult:
    """Score one day of transactions into the ``predictions`` table, resumably.

    Each chunk of ``chunk_size`` transactions is scored, then written in ONE database
    transaction (upsert on ``transaction_id``): a crash loses at most the chunk in
    flight. A run first reads which transactions of the day this model version has
    already scored and scores only the others, so re-running after a crash finishes
    the day and every transaction ends up with exactly one prediction. Re-running a
    finished day changes nothing; after the alias moves, a run replaces the day's
    predictions with the new version's, chunk by chunk (the day is never empty).

    Parameters
    ----------
    day : str or datetime-like
        The day, e.g. ``"2026-01-21"`` (naive UTC).
    model : ServingModel, optional
        The model to score with; by default :func:`load_serving_model` of
        ``model_name`` at ``alias``.
    model_name : str, default=MODEL_NAME
        Registered model to load when ``model`` is not given.
    alias : str, default="champion"
        Alias to load when ``model`` is not given.
    chunk_size : int, default=5000
        Transactions per chunk (and per database transaction).
    backend : {"pandas", "dask"}, default="pandas"
        ``"dask"`` computes the windowed features with Dask and scores chunks in
        parallel waves (one chunk per CPU), still writing them one by one.
    force : bool, default=False
        Re-score transactions this version has scored already.
    table : str, default="transactions"
        Source table (needs the 30 days before ``day`` for the windowed features).
    predictions_table : str, default="predictions"
        Target table, columns :data:`PREDICTION_COLUMNS`.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`production.db.get_engine`.
    on_chunk : callable, optional
        Called as ``on_chunk(chunk_index, n_rows)`` after each chunk is committed.

    Returns
    -------
    BatchScoringResult
        Counts of transactions, skipped and scored rows, chunks and wall time.

    Raises
    ------
    ValueError
        For a bad ``day``, ``chunk_size``, ``backend`` or table name (named in the
        message), or a source table that does not exist.
    LookupError
        If the model or alias does not exist (when ``model`` is not given).
    production.db.DatabaseUnavailableError
        If the database cannot be reached.

    Examples
    --------
    >>> result = score_day("2026-01-21")  # doctest: +SKIP
    >>> result.n_scored, result.model_version  # doctest: +SKIP
    (2103, '3')
    """
    caller = "score_day"
    started = time.perf_counter()
    day = _as_day(day, "day", caller)
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise ValueError(
            f"The 'chunk_size' parameter of {caller} must be an int >= 1. "
            f"Got {chunk_size!r} instead."
        )
    if backend not in ("pandas", "dask"):
        raise ValueError(
            f"The 'backend' parameter of {caller} must be one of ['pandas', 'dask']. "
            f"Got {backend!r} instead."
        )
    _check_table_name(table, "table", caller)
    _check_table_name(predictions_table, "predictions_table", caller)
    engine = engine or get_engine()
    if model is None:
        model = load_serving_model(model_name, alias)

    features = load_features(
        day, day + pd.Timedelta(days=1), table=table, engine=engine, backend=backend
    )
    existing = _existing_predictions(predictions_table, day, engine)
    current = (existing["model_name"] == model.name) & (
        existing["model_version"].astype(str) == model.version
    )
    done = set() if force else set(existing.loc[current, "transaction_id"].tolist())
    todo = features[~features["transaction_id"].isin(done)].sort_values("transaction_id")
    chunks = [todo.iloc[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]

    n_chunks = 0
    for index, (chunk, scores) in enumerate(_scored_chunks(model, chunks, backend)):
        frame = pd.DataFrame(
            {
                "transaction_id": chunk["transaction_id"].to_numpy(dtype="int64"),
                "tx_date": day,
                "score": scores.astype("float64"),
                "decision": model.decide(scores),
                "threshold": model.threshold,
                "model_name": model.name,
                "model_version": model.version,
                "scored_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        )
        write_table(
            frame, predictions_table, mode="upsert", key_cols="transaction_id", engine=engine
        )
        n_chunks += 1
        if on_chunk is not None:
            on_chunk(index, len(frame))

    orphans = sorted(set(existing["transaction_id"]) - set(features["transaction_id"]))
    if orphans:
        statement = sa.text(
            f"delete from {predictions_table} where transaction_id in :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with engine.begin() as conn:
            conn.execute(statement, {"ids": [int(i) for i in orphans]})
    return BatchScoringResult(
        day=day,
        model_name=model.name,
        model_version=model.version,
        n_transactions=len(features),
        n_already_scored=len(features) - len(todo),
        n_scored=len(todo),
        n_chunks=n_chunks,
        n_removed=len(orphans),
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class DriftCheck:
    """Result of :func:`run_drift_check`.

    Attributes
    ----------
    report : pandas.DataFrame
        :func:`production.monitoring.drift_report` of the window against the reference.
    flagged : bool
        Whether any feature (or the score) drifted: a trigger to investigate or retrain.
    drifted_features : list of str
        The drifted columns, highest PSI first.
    window_start, window_end : pandas.Timestamp
        The window checked, ``window_end`` excluded.
    model_name, model_version : str
        The model whose predictions were checked.
    n_reference, n_current : int
        Rows compared.
    skipped : list of str
        Columns left out because one sample had no value (e.g. a rate with no label yet).
    run_id : str or None
        The MLflow run holding the report, table and plot (``None`` when not logged).
    """

    report: pd.DataFrame
    flagged: bool
    drifted_features: list
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    model_name: str
    model_version: str
    n_reference: int
    n_current: int
    skipped: list
    run_id: str | None


def run_drift_check(
    reference: pd.DataFrame,
    *,
    model_name: str = MODEL_NAME,
    window_end=None,
    window_days: int = 1,
    columns=None,
    psi_threshold: float = 0.2,
    p_value_threshold: float = 0.01,
    experiment: str = "monitoring",
    log_to_mlflow: bool = True,
    table: str = "transactions",
    predictions_table: str = PREDICTIONS_TABLE,
    reports_table: str = DRIFT_TABLE,
    engine=None,
) -> DriftCheck:
    """Run the monitoring job: drift of the latest scored window against the training data.

    Reads the predictions of ``model_name`` for the window, recomputes the features of
    those transactions (:func:`load_features`), compares features and scores with
    ``reference`` (:func:`production.monitoring.drift_report`), writes the report to
    ``reports_table`` (replacing this window's earlier report: idempotent) and, unless
    ``log_to_mlflow=False``, logs an MLflow run with the report as a table and a plot.

    Parameters
    ----------
    reference : pandas.DataFrame
        The training reference: feature columns (:data:`FEATURE_COLUMNS`, e.g. from
        :func:`load_features`) and optionally ``score`` (the model's scores on it).
    model_name : str, default=MODEL_NAME
        Whose predictions to check.
    window_end : str or datetime-like, optional
        End of the window (excluded). Default: the day after the latest scored day.
    window_days : int, default=1
        Window length in days.
    columns : list of str, optional
        Columns to compare. Default: the feature columns and ``score`` present in
        ``reference``, without ``tx_weekday`` for windows shorter than a week (a single
        day always "drifts" in weekday).
    psi_threshold, p_value_threshold : float, default=0.2, 0.01
        Passed to :func:`production.monitoring.drift_report`.
    experiment : str, default="monitoring"
        MLflow experiment of the run.
    log_to_mlflow : bool, default=True
        Log the run.
    table, predictions_table, reports_table : str
        Source transactions, predictions and the report table.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`production.db.get_engine`.

    Returns
    -------
    DriftCheck
        The report, whether it is flagged, and where it was recorded.

    Raises
    ------
    TypeError
        If ``reference`` is not a DataFrame.
    ValueError
        If no prediction falls in the window, a column is missing from ``reference``,
        ``window_days`` is not an int >= 1, or a table name is invalid.

    Examples
    --------
    >>> check = run_drift_check(load_features("2026-01-01", "2026-01-22"))  # doctest: +SKIP
    >>> check.flagged, check.drifted_features  # doctest: +SKIP
    (True, ['amount', 'channel'])
    """
    from production.monitoring import drift_report

    caller = "run_drift_check"
    if not isinstance(reference, pd.DataFrame):
        raise TypeError(
            f"{caller}: reference must be a pandas DataFrame of features. "
            f"Got {type(reference).__name__} instead."
        )
    if (
        isinstance(window_days, bool)
        or not isinstance(window_days, numbers.Integral)
        or window_days < 1
    ):
        raise ValueError(
            f"The 'window_days' parameter of {caller} must be an int >= 1. "
            f"Got {window_days!r} instead."
        )
    for name, value in (
        ("table", table),
        ("predictions_table", predictions_table),
        ("reports_table", reports_table),
    ):
        _check_table_name(value, name, caller)
    engine = engine or get_engine()
    if not table_exists(predictions_table, engine=engine):
        raise ValueError(
            f"{caller}: table {predictions_table!r} not found; score a day first (score_day)."
        )
    if window_end is None:
        latest = read_sql(
            f"select max(tx_date) as latest from {predictions_table} where model_name = :name",
            params={"name": model_name},
            engine=engine,
        )["latest"].iloc[0]
        if latest is None or pd.isna(latest):
            raise ValueError(
                f"{caller}: no predictions of model {model_name!r} in {predictions_table!r}; "
                "score a day first (score_day)."
            )
        window_end = pd.Timestamp(latest).normalize() + pd.Timedelta(days=1)
    else:
        window_end = _as_day(window_end, "window_end", caller)
    window_start = window_end - pd.Timedelta(days=int(window_days))

    predictions = read_sql(
        f"select transaction_id, score, model_version from {predictions_table} "
        "where model_name = :name and tx_date >= :start and tx_date < :end",
        params={
            "name": model_name,
            "start": _sql_time(window_start),
            "end": _sql_time(window_end),
        },
        engine=engine,
    )
    if predictions.empty:
        raise ValueError(
            f"{caller}: no predictions of model {model_name!r} between {window_start:%Y-%m-%d} "
            f"and {window_end:%Y-%m-%d} (excluded) in {predictions_table!r}."
        )
    features = load_features(window_start, window_end, table=table, engine=engine)
    current = features.merge(
        predictions[["transaction_id", "score"]], on="transaction_id", how="inner"
    )
    if columns is None:
        columns = [c for c in (*FEATURE_COLUMNS, "score") if c in reference.columns]
        if window_days < 7:
            columns = [c for c in columns if c != "tx_weekday"]
    columns = list(columns)
    missing = [c for c in columns if c not in reference.columns]
    if missing or not columns:
        raise ValueError(
            f"{caller}: column(s) {missing or columns} not found in reference; "
            f"available: {[str(c) for c in reference.columns]}"
        )
    skipped = [
        c for c in columns if reference[c].notna().sum() == 0 or current[c].notna().sum() == 0
    ]
    checked = [c for c in columns if c not in skipped]
    categorical = [c for c in checked if c in CATEGORICAL_FEATURES]
    numeric = [c for c in checked if c not in categorical]
    report = drift_report(
        reference[checked].astype({c: object for c in categorical}),
        current[checked].astype({c: object for c in categorical}),
        numeric_cols=numeric,
        categorical_cols=categorical,
        psi_threshold=psi_threshold,
        p_value_threshold=p_value_threshold,
    )
    drifted = report.loc[report["drifted"]].sort_values("psi", ascending=False)
    versions = predictions["model_version"].astype(str).value_counts()
    version = versions.index[0] if len(versions) == 1 else ",".join(sorted(versions.index))

    record = report.copy()
    record.insert(0, "window_end", window_end)
    record.insert(0, "window_start", window_start)
    record.insert(0, "model_name", model_name)
    record["model_version"] = version
    record["n_reference"] = len(reference)
    record["n_current"] = len(current)
    record["created_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    write_table(
        record,
        reports_table,
        mode="replace_partitions",
        partition_cols=["model_name", "window_start", "window_end"],
        engine=engine,
    )

    run_id = None
    if log_to_mlflow:
        from production.monitoring import plot_drift_report
        from production.tracking import log_run

        run_id = log_run(
            experiment,
            run_name=f"drift {window_start:%Y-%m-%d}..{window_end:%Y-%m-%d}",
            params={
                "model_name": model_name,
                "model_version": version,
                "window_start": f"{window_start:%Y-%m-%d}",
                "window_end": f"{window_end:%Y-%m-%d}",
                "psi_threshold": psi_threshold,
                "p_value_threshold": p_value_threshold,
            },
            metrics={
                "n_drifted": int(report["drifted"].sum()),
                "max_psi": float(report["psi"].max()),
                "n_current": len(current),
                "n_reference": len(reference),
                **(
                    {"score_psi": float(report.loc[report["feature"] == "score", "psi"].iloc[0])}
                    if "score" in checked
                    else {}
                ),
            },
            tags={"drift.flagged": str(bool(len(drifted))).lower()},
            figures={"drift/drift_report.png": plot_drift_report(report)},
            tables={"drift/drift_report.json": report},
        )
    return DriftCheck(
        report=report,
        flagged=bool(len(drifted)),
        drifted_features=drifted["feature"].tolist(),
        window_start=window_start,
        window_end=window_end,
        model_name=model_name,
        model_version=version,
        n_reference=len(reference),
        n_current=len(current),
        skipped=skipped,
        run_id=run_id,
    )

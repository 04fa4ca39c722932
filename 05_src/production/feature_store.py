"""The online feature store: a customer's and a terminal's recent history, in memory.

:class:`OnlineFeatureStore` gives one new transaction, in microseconds, the features
:func:`production.features.compute_model_features` gives it offline on the same history.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from production._validation import TableName, as_timestamp, check_frame, validate_params
from production.db import get_engine, read_sql, table_exists
from production.features import CATEGORICAL_FEATURES, CUSTOMER_WINDOWS, TERMINAL_WINDOWS

__all__ = ["LONGEST_WINDOW", "OnlineFeatureStore", "read_transactions"]

#: The longest feature window: the history a transaction's features need.
LONGEST_WINDOW = pd.Timedelta(days=max(CUSTOMER_WINDOWS + TERMINAL_WINDOWS))
_DAY_NS, _MICROSECOND = 86_400 * 10**9, dt.timedelta(microseconds=1)
_HORIZON_NS = LONGEST_WINDOW.value + _DAY_NS  # history kept
_SQL_TIME = "%Y-%m-%d %H:%M:%S"  # text that SQLite (text order) and PostgreSQL both compare
_EPOCH, _FIRST, _LAST = dt.datetime(1970, 1, 1), dt.datetime(1677, 9, 22), dt.datetime(2262, 4, 11)


@validate_params(table=TableName())
def read_transactions(start, end, *, table="transactions", engine=None) -> pd.DataFrame:
    """Read the transactions with ``start <= tx_datetime < end`` (naive UTC), in time order."""
    start = as_timestamp(start, "start", "read_transactions")
    end = as_timestamp(end, "end", "read_transactions")
    engine = engine or get_engine()
    if not table_exists(table, engine=engine):
        raise ValueError(f"read_transactions: table {table!r} not found; load transactions first")
    frame = read_sql(
        f"select * from {table} where tx_datetime >= :start and tx_datetime < :end "
        "order by tx_datetime, transaction_id",
        params={"start": f"{start:{_SQL_TIME}}", "end": f"{end:{_SQL_TIME}}"},
        engine=engine,
    )
    for column in ("tx_datetime", "label_available_at"):
        frame[column] = pd.to_datetime(frame[column], format="mixed").astype("datetime64[ns]")
    return frame


def _mean(values: list) -> float:
    """Return the mean of a window (NaN if empty), overflow-safe: mean(1e308, 1e308) = 1e308."""
    if not values:
        return math.nan
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        return math.fsum(v / len(values) for v in values)


def _ns(value, where: str) -> tuple[dt.datetime, int]:
    """Return ``tx_datetime`` as a naive datetime and nanoseconds since 1970, else raise."""
    plain = type(value) is dt.datetime and value.tzinfo is None  # the API's: no parsing
    when = value if plain else as_timestamp(value, "tx_datetime", where)
    if not _FIRST <= when <= _LAST:
        raise ValueError(f"{where}: tx_datetime must be between 1677 and 2262. Got {value!r}.")
    return when, (when - _EPOCH) // _MICROSECOND * 1000 + getattr(when, "nanosecond", 0)


class OnlineFeatureStore:
    """Recent history per customer and terminal, in memory: online features in microseconds.

    :meth:`lookup` gives a transaction the values ``compute_model_features`` gives it offline,
    by binary search in each customer's and terminal's sorted history. A transaction dated
    over ``max_ahead_days`` (1) after the wall clock is not recorded: it cannot move the clock
    past which older history is dropped.
    """

    max_ahead_days = 1.0  # a class attribute: set it on the instance to change it

    def __init__(self):
        # customer_id -> ([times], [amounts]); terminal_id -> ([times], [label_ns * 2 + fraud]);
        # transaction_id -> time, to ignore retries
        self._customers, self._terminals, self._seen = {}, {}, {}
        self._clock_ns, self._n_since_prune, self._lock = None, 0, threading.Lock()

    @property
    def n_rows(self) -> int:
        """Number of transactions held."""
        return sum(len(times) for times, _ in self._customers.values())

    @property
    def latest_allowed_ns(self) -> int:
        """Latest time (ns since 1970) a transaction may have to be recorded: now + max ahead."""
        return time.time_ns() + int(self.max_ahead_days * _DAY_NS)

    @classmethod
    @validate_params(table=TableName())
    def from_database(cls, *, table="transactions", engine=None):
        """Build a store holding the last ``max(windows) + 1`` days of ``table`` (may be empty)."""
        store, engine = cls(), engine or get_engine()
        if not table_exists(table, engine=engine):
            return store
        limit = f"{pd.Timestamp(store.latest_allowed_ns, unit='ns'):{_SQL_TIME}}"
        query = f"select max(tx_datetime) as latest from {table} where tx_datetime <= :limit"
        latest = read_sql(query, params={"limit": limit}, engine=engine)["latest"].iloc[0]
        if not pd.isna(latest):
            end = pd.Timestamp(latest) + pd.Timedelta(seconds=1)
            start = end - pd.Timedelta(_HORIZON_NS)
            store.add_history(read_transactions(start, end, table=table, engine=engine))
        return store

    def add_history(self, transactions: pd.DataFrame) -> int:
        """Add past transactions, labelled or not; count them (retries, far future: skipped)."""
        frame, columns = transactions, ["customer_id", "terminal_id", "amount"]
        check_frame(frame, "OnlineFeatureStore.add_history", columns=["tx_datetime", *columns])
        times = pd.to_datetime(frame["tx_datetime"]).to_numpy("datetime64[ns]").astype("int64")
        labels = np.full(len(frame), -1)
        if {"is_fraud", "label_available_at"} <= set(frame.columns):
            label_at = pd.to_datetime(frame["label_available_at"]).to_numpy("datetime64[ns]")
            known = ~np.isnat(label_at) & frame["is_fraud"].notna().to_numpy()
            packed = label_at.astype("int64") * 2 + (frame["is_fraud"].fillna(0).to_numpy() == 1)
            labels = np.where(known, packed, -1)
        ids = frame["transaction_id"] if "transaction_id" in frame else [None] * len(frame)
        rows = zip(ids, times.tolist(), *(frame[c] for c in columns), labels.tolist(), strict=True)
        with self._lock:
            added = sum(self._insert(*row) for row in rows)
            self._prune()
        return added

    def _insert(self, transaction_id, t, customer, terminal, amount, label: int) -> int:
        """Insert one transaction in time order; 0 if its id was seen or it is far ahead."""
        repeated = transaction_id is not None and int(transaction_id) in self._seen
        if repeated or t > self.latest_allowed_ns:
            return 0
        if transaction_id is not None:
            self._seen[int(transaction_id)] = t
        pairs = ((self._customers, customer, float(amount)), (self._terminals, terminal, label))
        for index, key, value in pairs:
            times, values = index.setdefault(int(key), ([], []))
            at = bisect.bisect_right(times, t)
            times.insert(at, t)
            values.insert(at, value)
        self._clock_ns = t if self._clock_ns is None else max(self._clock_ns, t)
        self._n_since_prune += 1
        return 1

    def _prune(self) -> None:
        """Drop history older than the longest window before the clock."""
        self._n_since_prune, cutoff = 0, (self._clock_ns or 0) - _HORIZON_NS
        for index in (self._customers, self._terminals):
            for key in list(index):
                times, values = index[key]
                cut = bisect.bisect_left(times, cutoff)
                del times[:cut], values[:cut]
                if not times:
                    del index[key]
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    def lookup(self, transaction: Mapping) -> dict:
        """Return the model's input columns for one transaction (not recorded: :meth:`record`)."""
        when, t = _ns(transaction["tx_datetime"], "OnlineFeatureStore.lookup")
        amount, hour, weekday = float(transaction["amount"]), float(when.hour), when.weekday()
        features = {"amount": amount, "tx_hour": hour, "tx_weekday": float(weekday)}
        with self._lock:
            times, amounts = self._customers.get(int(transaction["customer_id"]), ([], []))
            hi = bisect.bisect_left(times, t)
            for w in CUSTOMER_WINDOWS:
                lo = bisect.bisect_left(times, t - w * _DAY_NS, 0, hi)
                features[f"customer_tx_count_{w}d"] = hi - lo
                features[f"customer_amount_mean_{w}d"] = _mean(amounts[lo:hi])
            times, labels = self._terminals.get(int(transaction["terminal_id"]), ([], []))
            hi, known_by = bisect.bisect_left(times, t), 2 * t + 1  # label_ns <= t: known
            for w in TERMINAL_WINDOWS:
                lo = bisect.bisect_left(times, t - w * _DAY_NS, 0, hi)
                known = [label & 1 for label in labels[lo:hi] if 0 <= label <= known_by]
                features[f"terminal_tx_count_{w}d"] = hi - lo
                features[f"terminal_fraud_count_{w}d"] = sum(known)
                features[f"terminal_fraud_rate_{w}d"] = _mean(known)
        return {**features, **{c: transaction[c] for c in CATEGORICAL_FEATURES}}

    def record(self, transaction: Mapping) -> bool:
        """Add a scored transaction, label unknown; False for a retried id or a far-future date."""
        tx, t = transaction, _ns(transaction["tx_datetime"], "OnlineFeatureStore.record")[1]
        row = (tx.get("transaction_id"), t, tx["customer_id"], tx["terminal_id"], tx["amount"], -1)
        with self._lock:
            added = self._insert(*row)
            if self._n_since_prune >= 10_000:
                self._prune()
        return bool(added)

    def add_labels(self, labels: pd.DataFrame) -> int:
        """Attach labels to the transactions held (found by terminal and time); count them."""
        required = ["terminal_id", "tx_datetime", "is_fraud", "label_available_at"]
        check_frame(labels, "OnlineFeatureStore.add_labels", name="labels", columns=required)
        attached = 0
        with self._lock:
            for terminal, when, fraud, label_at in labels[required].itertuples(index=False):
                times, values = self._terminals.get(int(terminal), ([], []))
                t = pd.Timestamp(when).value
                at = bisect.bisect_left(times, t)
                if not (pd.isna(label_at) or pd.isna(fraud)) and at < len(times) and times[at] == t:
                    values[at] = pd.Timestamp(label_at).value * 2 + (int(fraud) == 1)
                    attached += 1
        return attached

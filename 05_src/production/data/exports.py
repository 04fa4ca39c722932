"""The source system: simulated days landed as raw CSV files, dirty records included."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pandas as pd

from production._validation import Interval, as_day, validate_params
from production.config import RANDOM_STATE
from production.data.lake import data_root, raw_path, write_frame
from production.data.steps import RAW_DATETIME_FORMAT, STR
from production.simulate import iter_days, simulate_profiles

#: Kinds of dirty records :func:`export_raw_days` injects.
DIRTY_KINDS = ("duplicate", "missing_value", "malformed_amount", "negative_amount")
DIRTY_KINDS += ("bad_timestamp", "unknown_category", "late")
_MISSING_COLUMNS = ("customer_id", "terminal_id", "amount", "merchant_category", "channel")


#: What :func:`export_raw_days` wrote: the files, and one ``injected`` row per dirty record
#: (``source_file``, ``source_row``, ``kind``, ``column``, ``value``).
RawExport = namedtuple(
    "RawExport", ["transaction_files", "customers_file", "terminals_file", "injected"]
)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Return every value of ``frame`` as the text a source writes (see RAW_DATETIME_FORMAT)."""
    text = frame.astype(STR)
    for name in frame.select_dtypes("datetime").columns:
        text[name] = frame[name].dt.strftime(RAW_DATETIME_FORMAT)
    return text


def _count(n_rows: int, rate: float, n_kinds: int) -> int:
    """Return how many records of each kind to inject into ``n_rows`` rows."""
    enough = rate > 0 and n_rows >= n_kinds
    return min(max(1, round(rate * n_rows)), n_rows // n_kinds) if enough else 0


def _inject(text: pd.DataFrame, n_on_time: int, rng, rate: float):
    """Return ``text`` made dirty in its first ``n_on_time`` rows, and ``(row, kind, column)``s."""
    kinds = DIRTY_KINDS[:-1]
    k = _count(n_on_time, rate, len(kinds))
    if k == 0:
        return text, []
    picks = dict(zip(kinds, rng.choice(n_on_time, (len(kinds), k), replace=False), strict=True))
    missing = [_MISSING_COLUMNS[j] for j in rng.integers(len(_MISSING_COLUMNS), size=k)]
    changes = {
        "missing_value": (lambda i: missing[i], lambda i, v: np.nan),
        "malformed_amount": ("amount", lambda i, v: "N/A" if i % 2 else v.replace(".", ",")),
        "negative_amount": ("amount", lambda i, v: "-" + v),
        "bad_timestamp": (
            "tx_datetime",
            lambda i, v: (
                f"{v[8:10]}/{v[5:7]}/{v[:4]} {v[11:16]}" if i % 2 else f"{v[:4]}-02-30{v[10:]}"
            ),
        ),
        "unknown_category": ("merchant_category", lambda i, v: "other" if i % 2 else v.upper()),
    }
    text, records = text.copy(), []
    for kind, (column, change) in changes.items():
        for i, row in enumerate(picks[kind]):
            name = column(i) if callable(column) else column
            j = text.columns.get_loc(name)
            text.iat[row, j] = change(i, text.iat[row, j])
            records.append((row, kind, name))
    order = np.sort(np.concatenate([np.arange(len(text)), picks["duplicate"]]), kind="stable")
    moved = np.searchsorted(order, np.arange(len(text)))  # where each original row lands
    records = [(int(moved[row]), kind, column) for row, kind, column in records]
    records += [(int(moved[row]) + 1, "duplicate", "transaction_id") for row in picks["duplicate"]]
    return text.take(order).reset_index(drop=True), records


@validate_params(dirty_rate=Interval(float, 0, 0.1))
def export_raw_days(
    *,
    n_customers: int = 1000,
    n_terminals: int = 300,
    n_days: int = 60,
    start_date="2026-01-01",
    drift_start=None,
    label_delay_days: int = 7,
    random_state: int = RANDOM_STATE,
    start_day: int = 0,
    end_day: int | None = None,
    dirty_rate: float = 0.005,
    data_dir=None,
) -> RawExport:
    """Land simulated days as raw CSV files, the way a source system would, dirt included.

    Writes ``raw/customers.csv``, ``raw/terminals.csv`` and ``raw/transactions/date=*.csv``.
    In each file ``dirty_rate`` of the rows (at least one) per kind of :data:`DIRTY_KINDS`
    are made dirty, deterministically: a row written twice, a missing value, ``12,50`` or
    ``N/A``, a negative amount, ``2026-02-30 ...`` or ``05/01/2026 14:03``, ``GROCERY`` or
    ``other``, and *late*: a transaction of day ``d`` at the end of the file of ``d + 1``.

    Parameters
    ----------
    n_customers, n_terminals, n_days, start_date, drift_start, label_delay_days, random_state
        As in :func:`production.simulate.simulate`.
    start_day, end_day : int, optional
        First day to write, and the day to stop before (default ``n_days``); days
        ``[a, b)`` then ``[b, c)`` write the same files as ``[a, c)``.
    dirty_rate : float, default=0.005
        Share of each day's rows made dirty per kind, in ``[0, 0.1]``.
    data_dir : path-like, optional
        Root folder; defaults to ``get_settings().data_dir``.

    Returns
    -------
    RawExport
    """
    root = data_root(data_dir)
    params = dict(n_customers=n_customers, n_terminals=n_terminals, n_days=n_days)
    params |= dict(start_date=start_date, drift_start=drift_start, random_state=random_state)
    params["label_delay_days"] = label_delay_days
    first = max(start_day - 1, 0) if isinstance(start_day, int) else start_day
    days = iter_days(**params, start_day=first, end_day=end_day)  # validates the parameters
    start = as_day(start_date, "start_date", "export_raw_days")
    customers, terminals = simulate_profiles(n_customers, n_terminals, random_state)
    files = [write_frame(as_text(customers), raw_path(table="customers", data_dir=root))]
    files += [write_frame(as_text(terminals), raw_path(table="terminals", data_dir=root))]
    written, injected, carried = [], [], None
    for day, transactions in enumerate(days, start=first):
        n_late = _count(len(transactions), dirty_rate, 1) if day < n_days - 1 else 0
        rng = np.random.default_rng([random_state, 100, day])  # which rows arrive late
        late = np.sort(rng.choice(len(transactions), n_late, replace=False))
        text = as_text(transactions).reset_index(drop=True)
        on_time = text.drop(index=late).reset_index(drop=True)
        if day >= start_day:
            arrived = carried if carried is not None else on_time.head(0)
            rows = pd.concat([on_time, arrived], ignore_index=True)
            rng = np.random.default_rng([random_state, 101, day])  # the dirty records
            rows, records = _inject(rows, len(on_time), rng, dirty_rate)
            records += [
                (len(rows) - len(arrived) + j, "late", "tx_datetime") for j in range(len(arrived))
            ]
            path = raw_path(start + pd.Timedelta(days=day), data_dir=root)
            injected += [(path.name, row + 1, kind, c, rows.at[row, c]) for row, kind, c in records]
            written.append(write_frame(rows, path))
        carried = text.iloc[late].reset_index(drop=True)
    columns = ["source_file", "source_row", "kind", "column", "value"]
    manifest = pd.DataFrame(injected, columns=columns).fillna({"value": ""})
    manifest = manifest.astype({"source_row": "int64", "value": STR})
    return RawExport(written, *files, manifest)

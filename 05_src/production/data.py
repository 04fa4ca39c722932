"""Course data engineering: a raw landing zone, a bronze -> silver -> gold lake, the database.

Everything lives under one folder, ``data_dir`` (``get_settings().data_dir`` unless
given), in the *medallion* layout::

    raw/customers.csv, raw/terminals.csv               dimension files, as the source sends them
    raw/transactions/date=YYYY-MM-DD.csv               one file per day, dirty records included
    lake/bronze/transactions/date=.../part-0.parquet   a raw file as text + lineage columns
    lake/silver/transactions/date=.../part-0.parquet   validated, typed, deduplicated, by true date
    lake/silver/{customers,terminals}/part-0.parquet   validated dimensions
    lake/gold/transactions/date=.../part-0.parquet     silver facts joined with the dimensions
    rejected/transactions/date=YYYY-MM-DD.csv          the rejected-records report

The steps, each a function of DataFrames in and out (only the ``read_*``, ``export_*``
and ``run_*`` functions touch files or the database):

1. :func:`export_raw_days` plays the source system: simulated days written as CSV with
   dirty records injected deterministically (duplicates, missing values, malformed or
   negative amounts, bad timestamps, unknown categories, rows landing a day late).
2. :func:`read_raw_transactions` -- **bronze**: a raw file exactly as text, plus
   ``source_file``, ``source_row`` (1-based data row, header excluded), ``file_date``
   and ``ingested_at``.
3. :func:`validate_transactions` -- pandera schemas check every row (types, ranges,
   allowed categories, known customers and terminals, timestamp on the file's day or the
   day before); each row gets its typed values and, if rejected, the column(s) and reason.
4. :func:`deduplicate_transactions` and :func:`build_silver` -- **silver**: exact
   duplicates and reused ``transaction_id`` rejected, late rows routed to their true date.
5. :func:`build_gold` -- **gold**: silver facts joined with customers and terminals.
6. :func:`run_pipeline` -- all of it for a date range with pandas or Dask, then the
   database load through :func:`production.db.write_table`.

Partitions and idempotency
--------------------------
Bronze and the rejected report are partitioned by the date of the *file*; silver and
gold by the *true* date of the transaction (``tx_date``). A transaction of day ``d``
may land in the file of day ``d + 1``: a run for ``start_date .. end_date`` therefore
also reads the file of ``end_date + 1`` when it has landed, keeps only its late rows,
and writes exactly the partitions ``start_date .. end_date`` of every layer. Duplicates
are identified by ``(tx_date, transaction_id)``; as rows of day ``d`` can only come from
the files of ``d`` and ``d + 1``, processing day by day (Dask) and all at once (pandas)
give the same result.

A run writes every file to a staging folder first, loads the database (each table in
one transaction), and only then moves the files into place: a failure leaves the lake
and the database as they were. Running the same dates again rewrites the same files
(silver and gold byte for byte; bronze differs only in ``ingested_at``) and rows.
"""

from __future__ import annotations

import datetime as dt
import numbers
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from pandera.errors import SchemaErrors
from pandera.pandas import Check, Column, DataFrameSchema

from production.config import RANDOM_STATE, get_settings
from production.db import get_engine, write_table
from production.simulate import (
    CHANNELS,
    CUSTOMER_COLUMNS,
    FRAUD_SCENARIOS,
    MERCHANT_CATEGORIES,
    TERMINAL_COLUMNS,
    TRANSACTION_COLUMNS,
    iter_days,
    simulate_profiles,
)

__all__ = [
    "BACKENDS",
    "BRONZE_COLUMNS",
    "CHECKED_COLUMNS",
    "DIMENSION_SCHEMAS",
    "DIRTY_KINDS",
    "GOLD_COLUMNS",
    "GOLD_TRANSACTIONS_SCHEMA",
    "LAYERS",
    "REJECTED_COLUMNS",
    "SILVER_COLUMNS",
    "SILVER_TRANSACTIONS_SCHEMA",
    "PipelineReport",
    "RawExport",
    "build_gold",
    "build_silver",
    "deduplicate_transactions",
    "export_raw_days",
    "lake_path",
    "raw_path",
    "read_lake",
    "read_raw_dimension",
    "read_raw_transactions",
    "run_pipeline",
    "validate_transactions",
]

#: Layers of the lake, in order.
LAYERS = ("bronze", "silver", "gold")
#: Engines :func:`run_pipeline` can use.
BACKENDS = ("pandas", "dask")
#: Kinds of dirty records :func:`export_raw_days` injects.
DIRTY_KINDS = (
    "duplicate",
    "missing_value",
    "malformed_amount",
    "negative_amount",
    "bad_timestamp",
    "unknown_category",
    "late",
)
#: Columns of a bronze frame: the raw text of :data:`TRANSACTION_COLUMNS` plus lineage.
BRONZE_COLUMNS = (*TRANSACTION_COLUMNS, "source_file", "source_row", "file_date", "ingested_at")
#: Columns of :func:`validate_transactions`' result.
CHECKED_COLUMNS = (
    *TRANSACTION_COLUMNS,
    "tx_date",
    "file_date",
    "arrived_late",
    "source_file",
    "source_row",
    "reject_date",
    "reject_column",
    "reject_reason",
    "reject_value",
)
#: Columns of silver transactions: typed transactions, true date, lineage.
SILVER_COLUMNS = (*TRANSACTION_COLUMNS, "tx_date", "arrived_late", "source_file", "source_row")
#: Columns of gold transactions: silver facts joined with the dimensions, ready for features.
GOLD_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "tx_date",
    "tx_hour",
    "tx_weekday",
    "customer_id",
    "terminal_id",
    "amount",
    "merchant_category",
    "channel",
    "home_region",
    "terminal_region",
    "distance_to_terminal",
    "is_fraud",
    "fraud_scenario",
    "label_available_at",
)
#: Columns of the rejected-records report.
REJECTED_COLUMNS = ("date", "source_file", "source_row", "column", "reason", "value")

RAW_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
MAX_AMOUNT = 1_000_000.0
_REGIONS = ("north_west", "north_east", "south_west", "south_east")
_GRID = (0.0, 100.0)
_PART = "part-0.parquet"
# parquet dictionary-encodes these (few distinct values); elsewhere it only costs time
_DICTIONARY_COLUMNS = (
    "merchant_category",
    "channel",
    "is_fraud",
    "fraud_scenario",
    "source_file",
    "tx_date",
    "file_date",
    "ingested_at",
    "home_region",
    "terminal_region",
    "region",
)
_DIMENSIONS = {"customers": CUSTOMER_COLUMNS, "terminals": TERMINAL_COLUMNS}
_DIMENSION_KEYS = {"customers": "customer_id", "terminals": "terminal_id"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE_NAME = re.compile(r"^date=(\d{4}-\d{2}-\d{2})\.csv$")
_DAY = pd.Timedelta(days=1)

_INT_COLUMNS = ("transaction_id", "customer_id", "terminal_id", "is_fraud", "fraud_scenario")
_TIME_COLUMNS = ("tx_datetime", "label_available_at")
_MALFORMED = {
    **dict.fromkeys(_INT_COLUMNS, "not an integer"),
    **dict.fromkeys(_TIME_COLUMNS, "not a valid date-time 'YYYY-MM-DD HH:MM:SS'"),
    "amount": "not a number with '.' as the decimal point",
}
_WINDOW_REASON = "not on the file's date or the day before"
_LABEL_REASON = "label_available_at before tx_datetime"
_WIDE_CHECK_COLUMNS = {_WINDOW_REASON: "tx_datetime", _LABEL_REASON: "label_available_at"}

_STR = "str"
_NS = "datetime64[ns]"
_CHECKED_DTYPES = {
    "transaction_id": "Int64",
    "tx_datetime": _NS,
    "customer_id": "Int64",
    "terminal_id": "Int64",
    "amount": "float64",
    "merchant_category": _STR,
    "channel": _STR,
    "is_fraud": "Int64",
    "fraud_scenario": "Int64",
    "label_available_at": _NS,
    "tx_date": _NS,
    "file_date": _NS,
    "arrived_late": "bool",
    "source_file": _STR,
    "source_row": "int64",
    "reject_date": _NS,
    "reject_column": _STR,
    "reject_reason": _STR,
    "reject_value": _STR,
}
_SILVER_DTYPES = {
    **{c: _CHECKED_DTYPES[c] for c in SILVER_COLUMNS},
    "transaction_id": "int64",
    "customer_id": "int64",
    "terminal_id": "int64",
    "is_fraud": "int8",
    "fraud_scenario": "int8",
}
_GOLD_EXTRA_DTYPES = {
    "tx_hour": "int8",
    "tx_weekday": "int8",
    "home_region": _STR,
    "terminal_region": _STR,
    "distance_to_terminal": "float64",
}
_GOLD_DTYPES = {c: _GOLD_EXTRA_DTYPES.get(c) or _SILVER_DTYPES[c] for c in GOLD_COLUMNS}
_BRONZE_DTYPES = {
    **dict.fromkeys(TRANSACTION_COLUMNS, _STR),
    "source_file": _STR,
    "source_row": "int64",
    "file_date": _NS,
    "ingested_at": _NS,
}
_REJECTED_DTYPES = {
    "date": _NS,
    "source_file": _STR,
    "source_row": "int64",
    "column": _STR,
    "reason": _STR,
    "value": _STR,
}
_DIMENSION_DTYPES = {
    "customers": {
        "customer_id": "int64",
        "x_location": "float64",
        "y_location": "float64",
        "mean_amount": "float64",
        "std_amount": "float64",
        "mean_tx_per_day": "float64",
        "home_region": _STR,
    },
    "terminals": {
        "terminal_id": "int64",
        "x_location": "float64",
        "y_location": "float64",
        "merchant_category": _STR,
        "region": _STR,
    },
}


def _empty(dtypes: dict) -> pd.DataFrame:
    """Return an empty frame with the given column dtypes (Dask's ``meta``)."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in dtypes.items()})


# --------------------------------------------------------------------------- schemas


def _on_file_day(frame: pd.DataFrame) -> pd.Series:
    """Return whether each row's tx_date is its file's date or the day before (NaT passes)."""
    day = frame["tx_date"]
    ok = (day == frame["file_date"]) | (day == frame["file_date"] - _DAY)
    return ok | day.isna()


def _label_after_tx(frame: pd.DataFrame) -> pd.Series:
    """Return whether each row's label arrives after the transaction (NaT passes)."""
    ok = frame["label_available_at"] >= frame["tx_datetime"]
    return ok | frame["label_available_at"].isna() | frame["tx_datetime"].isna()


def _known(ids, error: str) -> Check:
    """Return a check that values are among ``ids`` (a closure: pandera copies sets deeply)."""
    allowed = pd.Index(np.unique(np.asarray(ids)))

    def known(series: pd.Series) -> pd.Series:
        return series.isin(allowed)

    return Check(known, error=error)


def _transaction_schema(
    dtypes: dict, customer_ids=None, terminal_ids=None, *, checked: bool = False
) -> DataFrameSchema:
    """Return the transaction rules on columns typed as in ``dtypes`` (checked or silver)."""
    customer_checks = [Check.ge(0, error="must be >= 0")]
    terminal_checks = [Check.ge(0, error="must be >= 0")]
    if customer_ids is not None:
        customer_checks.append(_known(customer_ids, "unknown customer_id"))
    if terminal_ids is not None:
        terminal_checks.append(_known(terminal_ids, "unknown terminal_id"))
    columns = {
        "transaction_id": Column(dtypes["transaction_id"], Check.ge(0, error="must be >= 0")),
        "tx_datetime": Column(dtypes["tx_datetime"]),
        "customer_id": Column(dtypes["customer_id"], customer_checks),
        "terminal_id": Column(dtypes["terminal_id"], terminal_checks),
        "amount": Column(
            dtypes["amount"],
            [
                Check.gt(0, error="must be > 0"),
                Check.le(MAX_AMOUNT, error=f"must be <= {MAX_AMOUNT:,.0f}"),
            ],
        ),
        "merchant_category": Column(
            dtypes["merchant_category"],
            Check.isin(MERCHANT_CATEGORIES, error=f"not one of {list(MERCHANT_CATEGORIES)}"),
        ),
        "channel": Column(
            dtypes["channel"], Check.isin(CHANNELS, error=f"not one of {list(CHANNELS)}")
        ),
        "is_fraud": Column(dtypes["is_fraud"], Check.isin([0, 1], error="not one of [0, 1]")),
        "fraud_scenario": Column(
            dtypes["fraud_scenario"],
            Check.isin(list(FRAUD_SCENARIOS), error=f"not one of {list(FRAUD_SCENARIOS)}"),
        ),
        "label_available_at": Column(dtypes["label_available_at"]),
        "tx_date": Column(_NS, nullable=checked),
    }
    checks = [Check(_label_after_tx, error=_LABEL_REASON)]
    if checked:
        columns["file_date"] = Column(_NS)
        checks.append(Check(_on_file_day, error=_WINDOW_REASON))
        return DataFrameSchema(columns, checks=checks)
    columns.update(
        {
            "arrived_late": Column("bool"),
            "source_file": Column(_STR),
            "source_row": Column("int64", Check.ge(1)),
        }
    )
    return DataFrameSchema(
        columns, checks=checks, unique=["tx_date", "transaction_id"], strict=True, ordered=True
    )


#: The contract of silver transactions, checked on every silver frame built.
SILVER_TRANSACTIONS_SCHEMA = _transaction_schema(_SILVER_DTYPES)
#: The contract of gold transactions, checked on every gold frame built.
_GOLD_EXTRA = {
    "tx_hour": Column("int8", Check.in_range(0, 23)),
    "tx_weekday": Column("int8", Check.in_range(0, 6)),
    "home_region": Column(_STR, Check.isin(_REGIONS)),
    "terminal_region": Column(_STR, Check.isin(_REGIONS)),
    "distance_to_terminal": Column("float64", Check.ge(0)),
}
GOLD_TRANSACTIONS_SCHEMA = DataFrameSchema(
    {c: _GOLD_EXTRA.get(c) or SILVER_TRANSACTIONS_SCHEMA.columns[c] for c in GOLD_COLUMNS},
    strict=True,
    ordered=True,
)
#: Rules for the dimension files.
DIMENSION_SCHEMAS = {
    "customers": DataFrameSchema(
        {
            "customer_id": Column("int64", Check.ge(0), unique=True),
            "x_location": Column("float64", Check.in_range(*_GRID)),
            "y_location": Column("float64", Check.in_range(*_GRID)),
            "mean_amount": Column("float64", Check.gt(0)),
            "std_amount": Column("float64", Check.ge(0)),
            "mean_tx_per_day": Column("float64", Check.ge(0)),
            "home_region": Column(_STR, Check.isin(_REGIONS)),
        },
        strict=True,
        ordered=True,
    ),
    "terminals": DataFrameSchema(
        {
            "terminal_id": Column("int64", Check.ge(0), unique=True),
            "x_location": Column("float64", Check.in_range(*_GRID)),
            "y_location": Column("float64", Check.in_range(*_GRID)),
            "merchant_category": Column(_STR, Check.isin(MERCHANT_CATEGORIES)),
            "region": Column(_STR, Check.isin(_REGIONS)),
        },
        strict=True,
        ordered=True,
    ),
}


# --------------------------------------------------------------------------- small helpers


def _as_day(value, name: str, caller: str) -> pd.Timestamp:
    """Return ``value`` as a naive midnight Timestamp, or raise naming the parameter."""
    expected = "a date: a 'YYYY-MM-DD' string, datetime.date or midnight pandas.Timestamp"
    if not isinstance(value, str | dt.date | np.datetime64):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be {expected}. Got {value!r} instead."
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or pd.isna(stamp) or stamp.tzinfo is not None or stamp != stamp.normalize():
        raise ValueError(
            f"The '{name}' parameter of {caller} must be {expected} (naive, no time of day). "
            f"Got {value!r} instead."
        )
    return stamp


def _data_dir(data_dir) -> Path:
    """Return ``data_dir`` as a Path, defaulting to the configured data folder."""
    if data_dir is None:
        return get_settings().data_dir
    if not isinstance(data_dir, str | os.PathLike):
        raise TypeError(
            f"data_dir must be a path (str or os.PathLike) or None. Got {data_dir!r} instead."
        )
    return Path(data_dir).expanduser().resolve()


def _day_name(day: pd.Timestamp) -> str:
    return f"date={day:%Y-%m-%d}"


def raw_path(date=None, *, table: str = "transactions", data_dir=None) -> Path:
    """Return where the source lands a raw file.

    Parameters
    ----------
    date : str or datetime.date, optional
        The day of a transactions file; required for ``table="transactions"``.
    table : {"transactions", "customers", "terminals"}, default="transactions"
        Which raw file.
    data_dir : path-like, optional
        Root folder; defaults to ``get_settings().data_dir``.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/raw/transactions/date=YYYY-MM-DD.csv`` or ``<data_dir>/raw/<table>.csv``.

    Examples
    --------
    >>> raw_path("2026-01-05", data_dir="/lake").as_posix()
    '/lake/raw/transactions/date=2026-01-05.csv'
    """
    root = _data_dir(data_dir) / "raw"
    if table in _DIMENSIONS:
        return root / f"{table}.csv"
    if table != "transactions":
        raise ValueError(
            f"The 'table' parameter of raw_path must be one of "
            f"{['transactions', *_DIMENSIONS]}. Got {table!r} instead."
        )
    day = _as_day(date, "date", "raw_path")
    return root / "transactions" / f"{_day_name(day)}.csv"


def lake_path(layer: str, table: str = "transactions", date=None, *, data_dir=None) -> Path:
    """Return the parquet file of one partition of the lake.

    Parameters
    ----------
    layer : {"bronze", "silver", "gold"}
        The layer.
    table : {"transactions", "customers", "terminals"}, default="transactions"
        Dimensions exist only in silver and are not partitioned.
    date : str or datetime.date, optional
        The partition of a transactions table; ``None`` returns the table's folder.
    data_dir : path-like, optional
        Root folder; defaults to ``get_settings().data_dir``.

    Returns
    -------
    pathlib.Path
        E.g. ``<data_dir>/lake/silver/transactions/date=2026-01-05/part-0.parquet``.

    Examples
    --------
    >>> lake_path("gold", date="2026-01-05", data_dir="/lake").as_posix()
    '/lake/lake/gold/transactions/date=2026-01-05/part-0.parquet'
    """
    if layer not in LAYERS:
        raise ValueError(
            f"The 'layer' parameter of lake_path must be one of {list(LAYERS)}. "
            f"Got {layer!r} instead."
        )
    if table in _DIMENSIONS and layer == "silver":
        return _data_dir(data_dir) / "lake" / "silver" / table / _PART
    if table != "transactions":
        raise ValueError(
            f"lake_path: table {table!r} does not exist in layer {layer!r}; expected "
            f"'transactions'{' or a dimension (customers, terminals)' if layer == 'silver' else ''}."
        )
    folder = _data_dir(data_dir) / "lake" / layer / "transactions"
    if date is None:
        return folder
    return folder / _day_name(_as_day(date, "date", "lake_path")) / _PART


def _rejected_path(root: Path, day: pd.Timestamp) -> Path:
    return root / "rejected" / "transactions" / f"{_day_name(day)}.csv"


def _atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (index dropped) to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        dictionary = [c for c in _DICTIONARY_COLUMNS if c in frame.columns]
        frame.reset_index(drop=True).to_parquet(tmp, index=False, use_dictionary=dictionary)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _arrow(series: pd.Series):
    """Return the values of ``series`` as a pyarrow array (zero-copy for pyarrow-backed str)."""
    return pa.array(series, from_pandas=True)


_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.string(): pd.StringDtype("pyarrow", np.nan)}
_PANDAS_TYPES[pa.large_string()] = _PANDAS_TYPES[pa.string()]


def _to_pandas(values, index) -> pd.Series:
    """Return arrow ``values`` as a pandas Series on ``index`` (int64 -> Int64, strings -> str)."""
    series = values.to_pandas(types_mapper=_PANDAS_TYPES.get)
    return pd.Series(series.to_numpy() if series.dtype == _NS else series.array, index=index)


def _parse_int(series: pd.Series) -> pd.Series:
    """Parse digit strings (at most 18) into Int64; anything else becomes <NA>."""
    values = _arrow(series)
    ok = pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.utf8_length(values), 18))
    parsed = pc.cast(pc.if_else(ok, values, pa.scalar(None, values.type)), pa.int64())
    return _to_pandas(parsed, series.index)  # Int64 through _PANDAS_TYPES


def _parse_float(series: pd.Series) -> pd.Series:
    """Parse decimal strings such as ``-12.50`` into float64; anything else becomes NaN."""
    values = _arrow(series)
    ok = pc.match_substring_regex(values, r"^-?[0-9]{1,15}(\.[0-9]+)?$")
    parsed = pc.cast(pc.if_else(ok, values, pa.scalar(None, values.type)), pa.float64())
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=series.index, dtype="float64")


def _parse_datetime(series: pd.Series) -> pd.Series:
    """Parse exact ``YYYY-MM-DD HH:MM:SS`` strings of real dates; anything else becomes NaT."""
    values = _arrow(series)
    shape = pc.match_substring_regex(values, _DATETIME_PATTERN)
    parsed = pc.strptime(values, format=RAW_DATETIME_FORMAT, unit="s", error_is_null=True)
    # strptime rolls impossible days over (2026-02-30 -> 2026-03-02): the day must survive
    digits = pc.if_else(shape, pc.utf8_slice_codeunits(values, 8, 10), pa.scalar("0", values.type))
    ok = pc.and_(shape, pc.equal(pc.day(parsed), pc.cast(digits, pa.int64())))
    parsed = pc.if_else(ok, parsed, pa.scalar(None, parsed.type))
    stamps = pc.cast(parsed, pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    return pd.Series(stamps.astype(_NS), index=series.index)


def _format_strings(frame: pd.DataFrame) -> dict:
    """Return each column of ``frame`` as arrow strings the way the source writes them."""
    columns = {}
    for name in frame.columns:
        values = pa.array(frame[name], from_pandas=True)
        if pa.types.is_timestamp(values.type):
            values = pc.strftime(pc.cast(values, pa.timestamp("s")), format=RAW_DATETIME_FORMAT)
        columns[name] = pc.cast(values, pa.large_string())
    return columns


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """Return ``frame`` of strings as CSV text: header, quotes only where needed, '' for NA."""
    quote, sep = pa.scalar('"', pa.large_string()), pa.scalar(",", pa.large_string())
    empty = pa.scalar("", pa.large_string())
    fields = []
    for name in frame.columns:
        values = pc.cast(_arrow(frame[name]), pa.large_string())
        needs = pc.fill_null(pc.match_substring_regex(values, '[,"\\r\\n]'), False)
        quoted = pc.binary_join_element_wise(
            quote, pc.replace_substring(values, '"', '""'), quote, empty
        )
        fields.append(pc.fill_null(pc.if_else(needs, quoted, values), ""))
    header = ",".join(frame.columns) + "\n"
    if len(frame) == 0:
        return header.encode()
    lines = pc.binary_join_element_wise(*fields, sep)
    return (header + "\n".join(lines.to_pylist()) + "\n").encode()


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True, repr=False)
class RawExport:
    """What :func:`export_raw_days` wrote.

    Attributes
    ----------
    transaction_files : list of pathlib.Path
        One CSV per exported day, in date order.
    customers_file, terminals_file : pathlib.Path
        The dimension files.
    injected : pandas.DataFrame
        One row per injected dirty record: ``source_file``, ``source_row`` (1-based data
        row in that file), ``kind`` (one of :data:`DIRTY_KINDS`), ``column`` and
        ``value`` (the text written; empty for a missing value).
    params : dict
        The simulation parameters, ``dirty_rate`` and ``random_state``.
    """

    transaction_files: list
    customers_file: Path
    terminals_file: Path
    injected: pd.DataFrame
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        kinds = self.injected["kind"].value_counts().to_dict() if len(self.injected) else {}
        return (
            f"RawExport({len(self.transaction_files)} transaction files in "
            f"{self.customers_file.parent}, injected={kinds})"
        )


def _dirty_count(n_rows: int, rate: float, n_kinds: int) -> int:
    """Return how many records of each kind to inject into ``n_rows`` rows."""
    if rate == 0 or n_rows < n_kinds:
        return 0
    return min(max(1, round(rate * n_rows)), n_rows // n_kinds)


def _dirty_rng(random_state: int, stream: int, day: int) -> np.random.Generator:
    """Return the generator of dirty-record stream ``stream`` for simulated ``day``."""
    seq = np.random.SeedSequence(random_state, spawn_key=(100 + stream, day))
    return np.random.Generator(np.random.PCG64(seq))


_MUTATED = ("missing_value", "malformed_amount", "negative_amount", "bad_timestamp")
_MUTATED += ("unknown_category", "duplicate")
_MISSING_COLUMNS = ("customer_id", "terminal_id", "amount", "merchant_category", "channel")


def _bad_timestamp(text: str, variant: int) -> str:
    """Return a broken version of a ``YYYY-MM-DD HH:MM:SS`` string."""
    if variant == 0:
        return f"{text[:4]}-02-30{text[10:]}"  # no such day
    return f"{text[8:10]}/{text[5:7]}/{text[:4]} {text[11:16]}"  # another format


def _inject(frame: pd.DataFrame, n_on_time: int, rng, rate: float):
    """Return ``frame`` (strings) with dirty records and the list of (position, kind, column)."""
    k = _dirty_count(n_on_time, rate, len(_MUTATED))
    if k == 0:
        return frame, [], np.arange(len(frame))
    chosen = rng.choice(n_on_time, size=k * len(_MUTATED), replace=False).reshape(len(_MUTATED), k)
    picks = dict(zip(_MUTATED, chosen, strict=True))
    frame = frame.copy()
    records = []
    col = {name: frame.columns.get_loc(name) for name in frame.columns}
    for pos in picks["missing_value"]:
        column = _MISSING_COLUMNS[rng.integers(len(_MISSING_COLUMNS))]
        frame.iat[pos, col[column]] = np.nan
        records.append((pos, "missing_value", column))
    for i, pos in enumerate(picks["malformed_amount"]):
        amount = frame.iat[pos, col["amount"]]
        bad = "N/A" if i % 2 else (amount.replace(".", ",") if "." in amount else amount + ",00")
        frame.iat[pos, col["amount"]] = bad
        records.append((pos, "malformed_amount", "amount"))
    for pos in picks["negative_amount"]:
        frame.iat[pos, col["amount"]] = "-" + frame.iat[pos, col["amount"]]
        records.append((pos, "negative_amount", "amount"))
    for i, pos in enumerate(picks["bad_timestamp"]):
        frame.iat[pos, col["tx_datetime"]] = _bad_timestamp(
            frame.iat[pos, col["tx_datetime"]], i % 2
        )
        records.append((pos, "bad_timestamp", "tx_datetime"))
    for i, pos in enumerate(picks["unknown_category"]):
        category = frame.iat[pos, col["merchant_category"]]
        frame.iat[pos, col["merchant_category"]] = "other" if i % 2 else category.upper()
        records.append((pos, "unknown_category", "merchant_category"))
    # exact duplicates: the copy follows its original
    order = np.sort(np.concatenate([np.arange(len(frame)), picks["duplicate"]]), kind="stable")
    records += [(pos, "duplicate", "transaction_id") for pos in picks["duplicate"]]
    return frame, records, order


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
    """Land simulated days as raw files, the way a source system would, dirt included.

    Writes ``<data_dir>/raw/customers.csv``, ``raw/terminals.csv`` and one
    ``raw/transactions/date=YYYY-MM-DD.csv`` per day of
    :func:`production.simulate.iter_days` (same parameters). In each day's file, for
    each of the kinds below, ``dirty_rate`` of the rows (at least one) are made dirty,
    deterministically under ``random_state``:

    * ``duplicate`` -- a row written twice in a row;
    * ``missing_value`` -- an empty customer_id, terminal_id, amount, merchant_category or channel;
    * ``malformed_amount`` -- ``12,50`` (decimal comma) or ``N/A``;
    * ``negative_amount`` -- ``-12.50``;
    * ``bad_timestamp`` -- ``2026-02-30 ...`` (no such day) or ``05/01/2026 14:03``;
    * ``unknown_category`` -- ``GROCERY`` (wrong case) or ``other``;
    * ``late`` -- a transaction of day ``d`` written at the end of the file of day ``d + 1``
      (not for the last simulated day).

    Exporting days ``[a, b)`` and then ``[b, c)`` writes the same files as ``[a, c)``.
    Existing files are replaced (each through a temporary file and a rename).

    Parameters
    ----------
    n_customers, n_terminals, n_days, start_date, drift_start, label_delay_days, random_state
        As in :func:`production.simulate.simulate`.
    start_day : int, default=0
        First day to write, counted from ``start_date``.
    end_day : int or None, default=None
        Day to stop before (exclusive); ``None`` means ``n_days``.
    dirty_rate : float, default=0.005
        Share of each day's rows made dirty per kind, in ``[0, 0.1]``; 0 writes clean files.
    data_dir : path-like, optional
        Root folder; defaults to ``get_settings().data_dir``.

    Returns
    -------
    RawExport
        The files written and a manifest of every injected dirty record.

    Raises
    ------
    TypeError, ValueError
        If a parameter has the wrong type or value; the message names it.

    Examples
    --------
    >>> export = export_raw_days(n_customers=50, n_days=3, data_dir=tmp)  # doctest: +SKIP
    >>> [p.name for p in export.transaction_files]  # doctest: +SKIP
    ['date=2026-01-01.csv', 'date=2026-01-02.csv', 'date=2026-01-03.csv']
    """
    if isinstance(dirty_rate, bool) or not isinstance(dirty_rate, numbers.Real):
        raise TypeError(
            "The 'dirty_rate' parameter of export_raw_days must be a float in [0, 0.1]. "
            f"Got {dirty_rate!r} instead."
        )
    if not 0 <= dirty_rate <= 0.1:
        raise ValueError(
            "The 'dirty_rate' parameter of export_raw_days must be a float in [0, 0.1]. "
            f"Got {dirty_rate!r} instead."
        )
    root = _data_dir(data_dir)
    params = {
        "n_customers": n_customers,
        "n_terminals": n_terminals,
        "n_days": n_days,
        "start_date": start_date,
        "drift_start": drift_start,
        "label_delay_days": label_delay_days,
        "random_state": random_state,
    }
    first = max(start_day - 1, 0) if isinstance(start_day, int) else start_day
    days = iter_days(**params, start_day=first, end_day=end_day)  # validates the parameters
    start = _as_day(start_date, "start_date", "export_raw_days")

    customers, terminals = simulate_profiles(n_customers, n_terminals, random_state)
    customers_file, terminals_file = (
        raw_path(table="customers", data_dir=root),
        raw_path(table="terminals", data_dir=root),
    )
    for frame, path in ((customers, customers_file), (terminals, terminals_file)):
        strings = pd.DataFrame(
            {c: _to_pandas(v, frame.index) for c, v in _format_strings(frame).items()}
        )
        _atomic_write_bytes(_csv_bytes(strings), path)

    files, injected = [], []
    carried = None  # late rows of the previous day, as strings
    for day, transactions in enumerate(days, start=first):
        late_k = _dirty_count(len(transactions), dirty_rate, 1) if day < n_days - 1 else 0
        late = np.sort(_dirty_rng(random_state, 0, day).choice(len(transactions), late_k, False))
        strings = pd.DataFrame(
            {c: _to_pandas(v, transactions.index) for c, v in _format_strings(transactions).items()}
        ).reset_index(drop=True)
        on_time = strings.drop(index=late).reset_index(drop=True)
        if day >= start_day:
            arrived = carried if carried is not None else on_time.head(0)
            frame = pd.concat([on_time, arrived], ignore_index=True)
            frame, records, order = _inject(
                frame, len(on_time), _dirty_rng(random_state, 1, day), dirty_rate
            )
            frame = frame.take(order).reset_index(drop=True)
            path = raw_path(start + pd.Timedelta(days=day), data_dir=root)
            rows = {  # final 1-based row of each original position; copies sit right after
                "first": np.searchsorted(order, np.arange(len(order)), side="left") + 1,
                "last": np.searchsorted(order, np.arange(len(order)), side="right"),
            }
            for pos, kind, column in records:
                row = rows["last" if kind == "duplicate" else "first"][pos]
                injected.append((path.name, int(row), kind, column, frame.at[row - 1, column]))
            for j in range(len(arrived)):
                row = rows["first"][len(on_time) + j]
                value = frame.at[row - 1, "tx_datetime"]
                injected.append((path.name, int(row), "late", "tx_datetime", value))
            _atomic_write_bytes(_csv_bytes(frame), path)
            files.append(path)
        carried = strings.iloc[late].reset_index(drop=True)

    manifest = pd.DataFrame(
        injected, columns=["source_file", "source_row", "kind", "column", "value"]
    ).astype({"source_file": _STR, "source_row": "int64", "kind": _STR, "column": _STR})
    manifest["value"] = manifest["value"].astype(_STR)
    return RawExport(
        transaction_files=files,
        customers_file=customers_file,
        terminals_file=terminals_file,
        injected=manifest,
        params={**params, "dirty_rate": dirty_rate},
    )


# --------------------------------------------------------------------------- bronze


def _read_csv_strings(path: Path, expected: tuple, caller: str) -> pa.Table:
    """Read a CSV as text (``''`` -> null), checking it exists, parses and has ``expected``."""
    if not path.is_file():
        folder = path.parent
        found = sorted(p.name for p in folder.glob("*.csv")) if folder.is_dir() else []
        raise FileNotFoundError(
            f"{caller}: raw file {str(path)!r} does not exist; found in {str(folder)!r}: "
            f"{found[:10]}{' ...' if len(found) > 10 else ''}"
        )
    if path.stat().st_size == 0:
        raise ValueError(
            f"{caller}: raw file {str(path)!r} is empty (0 bytes); expected a CSV header "
            f"with columns {list(expected)} and at least one row."
        )
    options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(expected, pa.string()),
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        table = pa_csv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(
            f"{caller}: cannot read raw file {str(path)!r}: {err}. Expected a UTF-8 CSV file "
            f"with a header and columns {list(expected)}."
        ) from None
    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{caller}: raw file {str(path)!r} has no column(s) {missing}; expected columns "
            f"{list(expected)}, got {table.column_names}."
        )
    return table.select(list(expected))


def _file_date(path: Path, caller: str) -> pd.Timestamp:
    """Return the date in a raw file's name ``date=YYYY-MM-DD.csv``."""
    match = _FILE_NAME.match(path.name)
    try:
        day = pd.Timestamp(match.group(1)) if match else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(
            f"{caller}: raw file {str(path)!r} must be named 'date=YYYY-MM-DD.csv' (the day "
            f"it holds); got {path.name!r}."
        )
    return day


def read_raw_transactions(path, *, ingested_at=None) -> pd.DataFrame:
    """Ingest one raw transactions file into bronze: every value as text, plus lineage.

    Nothing is parsed or dropped: ``N/A`` stays the text ``"N/A"``; only empty fields
    become missing. Columns beyond :data:`~production.simulate.TRANSACTION_COLUMNS` are
    ignored.

    Parameters
    ----------
    path : path-like
        A file ``.../date=YYYY-MM-DD.csv`` (the name gives the file's date).
    ingested_at : datetime-like, optional
        Ingestion time to record; defaults to now (UTC, naive).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BRONZE_COLUMNS`: the transaction columns as ``str``,
        ``source_file`` (the file name), ``source_row`` (1-based data row, header
        excluded), ``file_date`` and ``ingested_at``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist (the message lists the files that do).
    ValueError
        If the name has no date, the file is empty, has a header but no rows, cannot be
        parsed as UTF-8 CSV, or lacks a column; the message names the file and columns.
    """
    caller = "read_raw_transactions"
    path = Path(path)
    file_date = _file_date(path, caller)
    table = _read_csv_strings(path, TRANSACTION_COLUMNS, caller)
    if table.num_rows == 0:
        raise ValueError(
            f"{caller}: raw file {str(path)!r} has a header but no rows; expected at least one "
            f"transaction for {file_date:%Y-%m-%d}."
        )
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get)
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None) if ingested_at is None else ingested_at
    frame["source_file"] = pd.Series(path.name, index=frame.index, dtype=_STR)
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    frame["file_date"] = np.full(len(frame), file_date.to_datetime64(), dtype=_NS)
    frame["ingested_at"] = np.full(len(frame), pd.Timestamp(stamp).to_datetime64(), dtype=_NS)
    return frame


def _problem(path, column, row, expected, got) -> str:
    return f"file {str(path)!r}, column {column!r}, row {row}: expected {expected}; got {got!r}"


def read_raw_dimension(path, table: str) -> pd.DataFrame:
    """Read and validate a raw dimension file (customers or terminals).

    Dimensions are reference data: a bad value stops the pipeline instead of being
    rejected row by row.

    Parameters
    ----------
    path : path-like
        ``raw/customers.csv`` or ``raw/terminals.csv``.
    table : {"customers", "terminals"}
        Which dimension the file holds.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~production.simulate.CUSTOMER_COLUMNS` or
        :data:`~production.simulate.TERMINAL_COLUMNS`, typed as the simulator types them.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If ``table`` is unknown, or the file is empty, unreadable, lacks a column or holds
        a value of the wrong type or out of range; the message names file, column and row.
    """
    if table not in _DIMENSIONS:
        raise ValueError(
            f"The 'table' parameter of read_raw_dimension must be one of {list(_DIMENSIONS)}. "
            f"Got {table!r} instead."
        )
    caller, path = "read_raw_dimension", Path(path)
    dtypes = _DIMENSION_DTYPES[table]
    strings = _read_csv_strings(path, tuple(dtypes), caller).to_pandas(
        types_mapper=_PANDAS_TYPES.get
    )
    if strings.empty:
        raise ValueError(f"{caller}: raw file {str(path)!r} has a header but no rows.")
    frame = pd.DataFrame(index=strings.index)
    for column, dtype in dtypes.items():
        raw = strings[column]
        if dtype == "int64":
            values = _parse_int(raw)
        elif dtype == "float64":
            values = _parse_float(raw)
        else:
            values = raw
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{caller}: "
                + _problem(path, column, row + 1, f"{dtype} values, none missing", raw.iloc[row])
            )
        frame[column] = values.astype(dtype)
    try:
        DIMENSION_SCHEMAS[table].validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        first = cases.iloc[0]
        row = int(first["index"]) + 1 if pd.notna(first["index"]) else "?"
        raise ValueError(
            f"{caller}: "
            + _problem(path, first["column"], row, first["check"], first["failure_case"])
            + f" ({len(cases)} problem(s) in all)"
        ) from None
    return frame


# --------------------------------------------------------------------------- silver


def _require(frame, columns, dtypes, caller: str, argument: str) -> None:
    """Raise if ``frame`` is not a DataFrame with ``columns`` of the given dtypes."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"The '{argument}' parameter of {caller} must be a pandas DataFrame. "
            f"Got {type(frame).__name__} instead."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{caller}: column(s) {missing} not found in {argument}; "
            f"available: {list(frame.columns)}"
        )
    for column, expected in dtypes.items():
        got = frame[column].dtype
        if expected == _STR:
            ok = pd.api.types.is_string_dtype(got)
        else:
            ok = got == pd.api.types.pandas_dtype(expected)
        if not ok:
            raise TypeError(
                f"{caller}: column {column!r} of {argument} must have dtype {expected}; got {got}."
            )


def _failures(schema: DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Return pandera's failure cases for ``frame`` as rows (index, column, check)."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
    else:
        return pd.DataFrame({"index": [], "column": [], "check": []})
    whole = cases[cases["index"].isna()]
    if len(whole):  # a dtype or a column is wrong: a bug upstream, not a dirty row
        raise TypeError(f"schema violated by the whole frame:\n{whole.to_string()}")
    cases = cases.astype({"index": "int64"})
    wide = cases["schema_context"] == "DataFrameSchema"
    cases.loc[wide, "column"] = cases.loc[wide, "check"].map(_WIDE_CHECK_COLUMNS)
    return cases[["index", "column", "check"]].drop_duplicates()


def _reasons(cases: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Return one row per failing row index: joined columns, reasons and raw values."""
    if cases.empty:
        return pd.DataFrame({"reject_column": [], "reject_reason": [], "reject_value": []})
    order = {c: i for i, c in enumerate(TRANSACTION_COLUMNS)}
    cases = cases.assign(order=cases["column"].map(order)).sort_values(["index", "order"])
    values = pd.Series("", index=cases.index, dtype=object)
    for column in cases["column"].unique():
        at = cases["column"] == column
        rows = raw[column].iloc[cases.loc[at, "index"].to_numpy()]
        values[at] = rows.to_numpy(dtype=object, na_value="")
    missing = (cases["check"] == "not_nullable") & (values == "")
    malformed = (cases["check"] == "not_nullable") & ~missing
    reason = cases["check"].astype(object)
    reason[missing] = "missing value"
    reason[malformed] = cases.loc[malformed, "column"].map(_MALFORMED)
    long = pd.DataFrame(
        {"index": cases["index"], "column": cases["column"], "reason": reason, "value": values}
    )
    several = long["index"].duplicated(keep=False)  # rare: join those rows' problems with "; "
    joined = pd.concat(
        [
            long[~several].set_index("index"),
            long[several].groupby("index", sort=True).agg("; ".join),
        ]
    ).sort_index()
    return joined.rename(
        columns={"column": "reject_column", "reason": "reject_reason", "value": "reject_value"}
    )


def validate_transactions(bronze: pd.DataFrame, *, customers=None, terminals=None) -> pd.DataFrame:
    """Check every bronze row against the silver rules and type its values.

    Rules (pandera schemas): each value present and of its type (integers; amounts with
    ``.`` as decimal point; date-times ``YYYY-MM-DD HH:MM:SS`` of real dates);
    ``amount`` in ``(0, 1,000,000]``; ``merchant_category``, ``channel``, ``is_fraud``
    and ``fraud_scenario`` among the allowed values; ``customer_id`` and
    ``terminal_id`` known to the dimensions (when given); ``tx_datetime`` on the file's
    date or the day before (a late arrival); ``label_available_at`` not before
    ``tx_datetime``. Works on one file or many (pandas), or per partition (Dask).

    Parameters
    ----------
    bronze : pandas.DataFrame
        Rows from :func:`read_raw_transactions` (columns :data:`BRONZE_COLUMNS`).
    customers, terminals : pandas.DataFrame, optional
        Dimensions whose ``customer_id`` / ``terminal_id`` a row must reference.

    Returns
    -------
    pandas.DataFrame
        One row per bronze row, index ``0..n-1``, columns :data:`CHECKED_COLUMNS`: typed
        values (missing where unparsable; integers as nullable ``Int64``), ``tx_date``
        (the true date), ``arrived_late``, lineage, and for rejected rows
        ``reject_date`` (the file's date), ``reject_column``, ``reject_reason`` and
        ``reject_value`` (the raw text), ``"; "``-joined when a row breaks several rules.

    Raises
    ------
    TypeError
        If ``bronze`` is not a DataFrame or a transaction column does not hold text.
    ValueError
        If a column is missing (the message lists what is there).
    """
    caller = "validate_transactions"
    _require(
        bronze,
        (*TRANSACTION_COLUMNS, "source_file", "source_row", "file_date"),
        {**dict.fromkeys(TRANSACTION_COLUMNS, _STR), "file_date": _NS, "source_row": "int64"},
        caller,
        "bronze",
    )
    ids = {}
    for argument, frame in (("customers", customers), ("terminals", terminals)):
        if frame is not None:
            key = _DIMENSION_KEYS[argument]
            _require(frame, [key], {key: "int64"}, caller, argument)
            ids[argument] = frame[key].to_numpy()
    raw = bronze.reset_index(drop=True)
    checked = pd.DataFrame(index=raw.index)
    for column in TRANSACTION_COLUMNS:
        if column in _INT_COLUMNS:
            checked[column] = _parse_int(raw[column])
        elif column in _TIME_COLUMNS:
            checked[column] = _parse_datetime(raw[column])
        elif column == "amount":
            checked[column] = _parse_float(raw[column])
        else:
            checked[column] = raw[column].astype(_STR)
    checked["tx_date"] = checked["tx_datetime"].dt.normalize()
    checked["file_date"] = raw["file_date"]
    checked["arrived_late"] = (checked["tx_date"] < checked["file_date"]).to_numpy(dtype=bool)
    checked["source_file"] = raw["source_file"].astype(_STR)
    checked["source_row"] = raw["source_row"]

    schema = _transaction_schema(
        _CHECKED_DTYPES, ids.get("customers"), ids.get("terminals"), checked=True
    )
    reasons = _reasons(_failures(schema, checked), raw)
    rejected = checked.index.isin(reasons.index)
    checked["reject_date"] = checked["file_date"].where(rejected)
    for column in ("reject_column", "reject_reason", "reject_value"):
        checked[column] = reasons[column].reindex(checked.index).astype(_STR)
    return checked


def deduplicate_transactions(checked: pd.DataFrame) -> pd.DataFrame:
    """Reject repeated transactions among the accepted rows of :func:`validate_transactions`.

    Rows are the same transaction when they share ``(tx_date, transaction_id)``. The
    first one (by file date, then row) is kept; a later one is rejected as an *exact
    duplicate* when all its values are equal to an earlier row's, otherwise as a
    *conflicting* reuse of the ``transaction_id``.

    Parameters
    ----------
    checked : pandas.DataFrame
        Output of :func:`validate_transactions` (several files may be concatenated).

    Returns
    -------
    pandas.DataFrame
        ``checked`` with the repeats rejected: ``reject_column`` ``"transaction_id"``,
        a reason naming the file and row kept, and ``reject_date`` = ``tx_date``.

    Raises
    ------
    TypeError, ValueError
        If ``checked`` is not a DataFrame with :data:`CHECKED_COLUMNS`.
    """
    _require(checked, CHECKED_COLUMNS, {}, "deduplicate_transactions", "checked")
    accepted = checked["reject_reason"].isna()
    keys = ["tx_date", "transaction_id"]
    repeated = checked.loc[accepted, keys].duplicated(keep=False)
    if not repeated.any():
        return checked
    group = checked.loc[repeated[repeated].index].sort_values(
        ["tx_date", "transaction_id", "file_date", "source_row"], kind="stable"
    )
    key_first = group.groupby(keys, sort=False)[["source_file", "source_row"]].transform("first")
    content = list(TRANSACTION_COLUMNS)
    same_first = group.groupby(content, sort=False)[["source_file", "source_row"]].transform(
        "first"
    )
    exact = group.duplicated(content, keep="first")
    later = group.duplicated(keys, keep="first")
    ref_file = same_first["source_file"].where(exact, key_first["source_file"])
    ref_row = same_first["source_row"].where(exact, key_first["source_row"])
    where = ref_file.astype(object) + " row " + ref_row.astype(str)
    reason = np.where(
        exact,
        "exact duplicate of " + where,
        "transaction_id already used by " + where + " with different values",
    )
    index = group.index[later.to_numpy()]
    result = checked.copy()
    result.loc[index, "reject_column"] = "transaction_id"
    result.loc[index, "reject_reason"] = reason[later.to_numpy()]
    result.loc[index, "reject_value"] = group.loc[index, "transaction_id"].astype(str)
    result.loc[index, "reject_date"] = group.loc[index, "tx_date"]
    return result


def _dates_mask(values: pd.Series, dates) -> pd.Series:
    """Return whether each value is one of ``dates`` (all True when ``dates`` is None)."""
    if dates is None:
        return values.notna()
    return values.isin(pd.DatetimeIndex(dates).astype(_NS))


def _select_silver(checked: pd.DataFrame, dates=None) -> pd.DataFrame:
    """Return the accepted rows whose true date is in ``dates``, typed and sorted as silver."""
    keep = np.flatnonzero(
        (checked["reject_reason"].isna() & _dates_mask(checked["tx_date"], dates)).to_numpy()
    )
    times = checked["tx_datetime"].to_numpy()[keep]
    ids = checked["transaction_id"].to_numpy(dtype="int64", na_value=-1)[keep]
    rows = keep[np.lexsort((ids, times))]  # one take of every column: filter and sort at once
    silver = checked[list(SILVER_COLUMNS)].take(rows).astype(_SILVER_DTYPES)
    return SILVER_TRANSACTIONS_SCHEMA.validate(silver.reset_index(drop=True))


def _select_rejected(checked: pd.DataFrame, dates=None) -> pd.DataFrame:
    """Return the rejected-records report of the rows rejected for ``dates``."""
    keep = checked["reject_reason"].notna() & _dates_mask(checked["reject_date"], dates)
    report = checked.loc[
        keep,
        ["reject_date", "source_file", "source_row", "reject_column", "reject_reason"]
        + ["reject_value"],
    ]
    report.columns = list(REJECTED_COLUMNS)
    report = report.astype(_REJECTED_DTYPES).sort_values(
        ["date", "source_file", "source_row"], kind="stable"
    )
    return report.reset_index(drop=True)


def build_silver(checked: pd.DataFrame, dates=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deduplicate checked rows and split them into silver rows and the rejected report.

    Parameters
    ----------
    checked : pandas.DataFrame
        Output of :func:`validate_transactions`.
    dates : sequence of dates, optional
        Partitions to build: silver keeps rows whose ``tx_date`` is one of them; the
        report keeps rows rejected for them (by file date, or by true date for
        duplicates). ``None`` keeps everything.

    Returns
    -------
    silver : pandas.DataFrame
        Columns :data:`SILVER_COLUMNS`, numpy dtypes as
        :func:`production.simulate.simulate` returns them, sorted by ``tx_datetime``
        then ``transaction_id``, index ``0..n-1``; late rows carry ``arrived_late=True``.
    rejected : pandas.DataFrame
        Columns :data:`REJECTED_COLUMNS`: ``date``, ``source_file``, ``source_row``,
        ``column``, ``reason`` and the raw ``value``, one row per rejected record.

    Raises
    ------
    TypeError, ValueError
        If ``checked`` is not a DataFrame with :data:`CHECKED_COLUMNS`.
    """
    checked = deduplicate_transactions(checked)
    return _select_silver(checked, dates), _select_rejected(checked, dates)


# --------------------------------------------------------------------------- gold


def build_gold(silver: pd.DataFrame, customers: pd.DataFrame, terminals: pd.DataFrame):
    """Join silver transactions with the dimensions: the table features are built from.

    Adds ``tx_hour``, ``tx_weekday`` (Monday = 0), the customer's ``home_region``, the
    terminal's ``terminal_region`` and ``distance_to_terminal`` (grid units between the
    customer's home and the terminal). Lineage columns are dropped.

    Parameters
    ----------
    silver : pandas.DataFrame
        Silver transactions (:data:`SILVER_COLUMNS`).
    customers, terminals : pandas.DataFrame
        Silver dimensions, as :func:`read_raw_dimension` returns them.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GOLD_COLUMNS`, rows in silver's order, index ``0..n-1``.

    Raises
    ------
    TypeError
        If an argument is not a DataFrame or a column has the wrong dtype (named).
    ValueError
        If a column is missing, or a transaction references an unknown customer or
        terminal (the message lists the ids).
    """
    caller = "build_gold"
    _require(silver, SILVER_COLUMNS, _SILVER_DTYPES, caller, "silver")
    for name, frame in (("customers", customers), ("terminals", terminals)):
        _require(frame, tuple(_DIMENSION_DTYPES[name]), _DIMENSION_DTYPES[name], caller, name)
    looked_up = {}
    wanted = {"customer_id": ["x_location", "y_location", "home_region"]}
    wanted["terminal_id"] = ["x_location", "y_location", "region"]
    for key, dimension in (("customer_id", customers), ("terminal_id", terminals)):
        rows = pd.Index(dimension[key]).get_indexer(silver[key])
        unknown = silver.loc[rows < 0, key].unique()
        if len(unknown):
            raise ValueError(
                f"build_gold: silver references {len(unknown)} {key}(s) missing from the "
                f"dimension: {sorted(unknown.tolist())[:10]}"
            )
        looked_up[key] = dimension[wanted[key]].take(rows)
    people, places = looked_up["customer_id"], looked_up["terminal_id"]
    gold = silver.drop(columns=["arrived_late", "source_file", "source_row"])
    gold["home_region"] = people["home_region"].to_numpy()
    gold["terminal_region"] = places["region"].to_numpy()
    gold["distance_to_terminal"] = np.hypot(
        people["x_location"].to_numpy() - places["x_location"].to_numpy(),
        people["y_location"].to_numpy() - places["y_location"].to_numpy(),
    )
    gold["tx_hour"] = gold["tx_datetime"].dt.hour.astype("int8")
    gold["tx_weekday"] = gold["tx_datetime"].dt.day_of_week.astype("int8")
    gold = gold[list(GOLD_COLUMNS)].astype(_GOLD_DTYPES).reset_index(drop=True)
    return GOLD_TRANSACTIONS_SCHEMA.validate(gold)


# --------------------------------------------------------------------------- pipeline


@dataclass(frozen=True, repr=False)
class PipelineReport:
    """What :func:`run_pipeline` did.

    Attributes
    ----------
    start_date, end_date : pandas.Timestamp
        The partitions written.
    backend : str
        ``"pandas"`` or ``"dask"``.
    counts : pandas.DataFrame
        One row per date: ``raw_rows`` (rows in that day's file), ``rejected_rows``,
        ``late_rows`` (silver rows that arrived in the next day's file), ``silver_rows``
        and ``gold_rows``.
    rejected : pandas.DataFrame
        The rejected-records report (:data:`REJECTED_COLUMNS`), also written to
        ``<data_dir>/rejected/transactions/date=YYYY-MM-DD.csv``.
    files : dict
        ``{"bronze"|"silver"|"gold"|"rejected": [paths written]}``.
    tables : dict
        ``{table name: rows written}``; empty when ``load=False``.
    seconds : float
        Wall time of the run.
    """

    start_date: pd.Timestamp
    end_date: pd.Timestamp
    backend: str
    counts: pd.DataFrame
    rejected: pd.DataFrame
    files: dict
    tables: dict
    seconds: float

    def total(self, column: str) -> int:
        """Return the sum of one column of :attr:`counts`, e.g. ``total("silver_rows")``."""
        return int(self.counts[column].sum())

    def __repr__(self) -> str:
        return (
            f"PipelineReport({self.start_date:%Y-%m-%d}..{self.end_date:%Y-%m-%d}, "
            f"{self.backend}: {self.total('raw_rows'):,} raw rows -> "
            f"{self.total('silver_rows'):,} silver ({self.total('late_rows'):,} late), "
            f"{self.total('gold_rows'):,} gold; {self.total('rejected_rows'):,} rejected; "
            f"{self.seconds:.1f} s)"
        )


_SUMMARY_DTYPES = {"layer": _STR, "date": _NS, "rows": "int64", "late": "int64"}


def _summary(layer: str, day, rows: int, late: int = 0) -> pd.DataFrame:
    """Return one row saying how many rows a layer wrote for a day."""
    frame = pd.DataFrame(
        {"layer": [layer], "date": [pd.Timestamp(day)], "rows": [rows], "late": [late]}
    )
    return frame.astype(_SUMMARY_DTYPES)


def _ingest(path, bronze_file, *, ingested_at) -> pd.DataFrame:
    """Read a raw file into bronze and, if ``bronze_file`` is given, write it there."""
    bronze = read_raw_transactions(path, ingested_at=ingested_at)
    if bronze_file is not None:
        _write_parquet(bronze, Path(bronze_file))
    return bronze


def _write_layer(frame: pd.DataFrame, layer: str, root: Path, day) -> pd.DataFrame:
    """Write one day of a layer under ``root`` and return its summary row."""
    _write_parquet(frame, lake_path(layer, date=day, data_dir=root))
    late = int(frame["arrived_late"].sum()) if "arrived_late" in frame else 0
    return _summary(layer, day, len(frame), late)


def _by_date(frame: pd.DataFrame, dates) -> list:
    """Return ``[(day, rows of that tx_date)]`` for each of ``dates`` (frame sorted by time)."""
    days = frame["tx_date"].to_numpy()
    parts = []
    for day in dates:
        lo, hi = (
            np.searchsorted(days, np.datetime64(day, "ns"), side="left"),
            np.searchsorted(days, np.datetime64(day, "ns"), side="right"),
        )
        parts.append((day, frame.iloc[lo:hi]))
    return parts


def _run_pandas(files, following, dates, customers, terminals, staging, ingested_at):
    """Build every layer in memory with pandas; return (silver, rejected, summaries)."""
    bronze = [
        _ingest(path, lake_path("bronze", date=day, data_dir=staging), ingested_at=ingested_at)
        for day, path in zip(dates, files, strict=True)
    ]
    summaries = [_summary("bronze", day, len(b)) for day, b in zip(dates, bronze, strict=True)]
    if following is not None:
        bronze.append(read_raw_transactions(following, ingested_at=ingested_at))
    checked = validate_transactions(
        pd.concat(bronze, ignore_index=True), customers=customers, terminals=terminals
    )
    del bronze
    silver, rejected = build_silver(checked, dates)
    del checked
    gold = build_gold(silver, customers, terminals)
    for layer, frame in (("silver", silver), ("gold", gold)):
        summaries += [
            _write_layer(part, layer, staging, day) for day, part in _by_date(frame, dates)
        ]
    return silver, rejected, pd.concat(summaries, ignore_index=True)


def _counts(dates, summaries: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    """Return the per-date counts of a run."""
    index = pd.DatetimeIndex(dates, name="date")
    rows = summaries.pivot_table(index="date", columns="layer", values="rows", aggfunc="sum")
    late = summaries[summaries["layer"] == "silver"].set_index("date")["late"]
    counts = pd.DataFrame(
        {
            "raw_rows": rows["bronze"].reindex(index),
            "rejected_rows": rejected.groupby("date").size().reindex(index),
            "late_rows": late.reindex(index),
            "silver_rows": rows["silver"].reindex(index),
            "gold_rows": rows["gold"].reindex(index),
        },
        index=index,
    )
    return counts.fillna(0).astype("int64")


def _load_database(silver, customers, terminals, engine, prefix: str) -> dict:
    """Upsert the dimensions and replace the fact partitions; return rows per table."""
    engine = engine or get_engine()
    loaded = {}
    for name, frame in (("customers", customers), ("terminals", terminals)):
        loaded[prefix + name] = write_table(
            frame, prefix + name, mode="upsert", key_cols=_DIMENSION_KEYS[name], engine=engine
        )
    loaded[prefix + "transactions"] = write_table(
        silver,
        prefix + "transactions",
        mode="replace_partitions",
        partition_cols=["tx_date"],
        engine=engine,
    )
    return loaded


def _publish(staging: Path, root: Path) -> dict:
    """Move every staged file to its place under ``root`` (each move atomic)."""
    written = {"bronze": [], "silver": [], "gold": [], "rejected": []}
    for staged in sorted(p for p in staging.rglob("*") if p.is_file()):
        relative = staged.relative_to(staging)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".parquet":  # a partition holds exactly one file
            for stale in target.parent.glob("*.parquet"):
                if stale.name != target.name:
                    stale.unlink()
        os.replace(staged, target)
        written["rejected" if relative.parts[0] == "rejected" else relative.parts[1]].append(target)
    return written


def run_pipeline(
    start_date,
    end_date,
    *,
    data_dir=None,
    backend: str = "pandas",
    load: bool = True,
    engine=None,
    table_prefix: str = "",
    show_progress: bool = True,
) -> PipelineReport:
    """Run bronze -> silver -> gold for a range of days and load the course database.

    Reads the raw files of ``start_date .. end_date`` (and the file of the day after,
    if it has landed, for its late rows), writes the partitions ``start_date ..
    end_date`` of bronze, silver, gold and the rejected report, and loads the database:
    ``customers`` and ``terminals`` upserted by key, ``transactions`` (silver) by
    ``mode="replace_partitions"`` on ``tx_date``. Idempotent: running the same dates
    again gives the same files and rows. All or nothing: files are written to
    ``<data_dir>/.staging`` and moved into place only after the database load succeeded.

    Parameters
    ----------
    start_date, end_date : str or datetime.date
        First and last day to process, inclusive.
    data_dir : path-like, optional
        Root folder holding ``raw/``; defaults to ``get_settings().data_dir``.
    backend : {"pandas", "dask"}, default="pandas"
        ``"pandas"`` builds each layer in memory at once; ``"dask"`` streams the days
        through :mod:`dask.dataframe` (same functions per partition, same output), on
        the local threaded scheduler or, when ``DASK_SCHEDULER_ADDRESS`` is set, on that
        cluster (whose workers must see ``data_dir``).
    load : bool, default=True
        Whether to load the database (the Dask backend then gathers the silver rows of
        the range in memory: keep it ``False`` for larger-than-memory ranges).
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`production.db.get_engine`.
    table_prefix : str, default=""
        Prefix of the table names, e.g. ``"lab02_"``.
    show_progress : bool, default=True
        Dask only: a progress bar for runs longer than a second.

    Returns
    -------
    PipelineReport
        Counts per day, the rejected-records report, files written and rows loaded.

    Raises
    ------
    TypeError, ValueError
        For a bad parameter (named), or bad input data: a raw file that is empty, has no
        rows, cannot be parsed or lacks a column; a bad dimension file. The message
        names the file and column.
    FileNotFoundError
        If the raw file of a day in the range (or a dimension file) is missing.
    production.db.DatabaseUnavailableError
        If the database cannot be reached (nothing is written then).

    Examples
    --------
    >>> export_raw_days(n_customers=100, n_days=7, data_dir=tmp)  # doctest: +SKIP
    >>> run_pipeline("2026-01-01", "2026-01-06", data_dir=tmp)  # doctest: +SKIP
    PipelineReport(2026-01-01..2026-01-06, pandas: 1,190 raw rows -> ...)
    """
    started = time.perf_counter()
    caller = "run_pipeline"
    start = _as_day(start_date, "start_date", caller)
    end = _as_day(end_date, "end_date", caller)
    if end < start:
        raise ValueError(
            f"run_pipeline: end_date ({end:%Y-%m-%d}) is before start_date ({start:%Y-%m-%d})."
        )
    if backend not in BACKENDS:
        raise ValueError(
            f"The 'backend' parameter of run_pipeline must be one of {list(BACKENDS)}. "
            f"Got {backend!r} instead."
        )
    if not isinstance(table_prefix, str) or (table_prefix and not _NAME.match(table_prefix)):
        raise ValueError(
            "The 'table_prefix' parameter of run_pipeline must be '' or letters, digits and "
            f"underscores starting with a letter or underscore. Got {table_prefix!r} instead."
        )
    root = _data_dir(data_dir)
    dates = list(pd.date_range(start, end, freq="D"))
    files = [raw_path(day, data_dir=root) for day in dates]
    missing = [path for path in files if not path.is_file()]
    if missing:
        folder = missing[0].parent
        landed = sorted(p.name for p in folder.glob("date=*.csv")) if folder.is_dir() else []
        raise FileNotFoundError(
            f"run_pipeline: no raw file for {len(missing)} day(s) of {start:%Y-%m-%d}.."
            f"{end:%Y-%m-%d}: expected {[str(p) for p in missing[:5]]}; landed in "
            f"{str(folder)!r}: {landed[:3]}{' ...' if len(landed) > 3 else ''}"
            f"{landed[-3:] if len(landed) > 3 else ''}. Land them with export_raw_days."
        )
    following = raw_path(end + _DAY, data_dir=root)
    following = following if following.is_file() else None
    customers = read_raw_dimension(raw_path(table="customers", data_dir=root), "customers")
    terminals = read_raw_dimension(raw_path(table="terminals", data_dir=root), "terminals")
    ingested_at = pd.Timestamp.now(tz="UTC").tz_localize(None)

    staging = root / ".staging" / f"run-{uuid.uuid4().hex[:12]}"
    try:
        for name, frame in (("customers", customers), ("terminals", terminals)):
            _write_parquet(frame, lake_path("silver", name, data_dir=staging))
        if backend == "pandas":
            silver, rejected, summaries = _run_pandas(
                files, following, dates, customers, terminals, staging, ingested_at
            )
        else:
            from production.data_dask import run_layers_dask

            rejected, summaries = run_layers_dask(
                files,
                following,
                dates,
                customers,
                terminals,
                staging,
                ingested_at,
                show_progress=show_progress,
            )
            silver = None
        for day in dates:
            day_rejected = rejected[rejected["date"] == day]
            _atomic_write_bytes(
                day_rejected.to_csv(index=False, date_format="%Y-%m-%d").encode(),
                _rejected_path(staging, day),
            )
        tables = {}
        if load:
            if silver is None:
                silver = read_lake("silver", start_date=start, end_date=end, data_dir=staging)
            tables = _load_database(silver, customers, terminals, engine, table_prefix)
        files_written = _publish(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staging.parent.is_dir() and not any(staging.parent.iterdir()):
            staging.parent.rmdir()
    return PipelineReport(
        start_date=start,
        end_date=end,
        backend=backend,
        counts=_counts(dates, summaries, rejected),
        rejected=rejected,
        files=files_written,
        tables=tables,
        seconds=time.perf_counter() - started,
    )


def read_lake(
    layer: str = "silver",
    table: str = "transactions",
    *,
    start_date=None,
    end_date=None,
    data_dir=None,
) -> pd.DataFrame:
    """Read a table of the lake back, optionally only some date partitions.

    Parameters
    ----------
    layer : {"bronze", "silver", "gold"}, default="silver"
        The layer.
    table : {"transactions", "customers", "terminals"}, default="transactions"
        Dimensions exist in silver only.
    start_date, end_date : str or datetime.date, optional
        Partitions to read (inclusive); all by default.
    data_dir : path-like, optional
        Root folder; defaults to ``get_settings().data_dir``.

    Returns
    -------
    pandas.DataFrame
        The partitions concatenated in date order, index ``0..n-1``.

    Raises
    ------
    FileNotFoundError
        If the table has no partition in the range (the message says where it looked).
    ValueError
        For an unknown layer or table.
    """
    caller = "read_lake"
    if table in _DIMENSIONS:
        path = lake_path(layer, table, data_dir=data_dir)
        if not path.is_file():
            raise FileNotFoundError(
                f"{caller}: {str(path)!r} does not exist; run run_pipeline first."
            )
        return pd.read_parquet(path)
    folder = lake_path(layer, table, data_dir=data_dir)
    start = None if start_date is None else _as_day(start_date, "start_date", caller)
    end = None if end_date is None else _as_day(end_date, "end_date", caller)
    parts = []
    for path in sorted(folder.glob(f"date=*/{_PART}")):
        day = pd.Timestamp(path.parent.name.removeprefix("date="))
        if (start is None or day >= start) and (end is None or day <= end):
            parts.append(path)
    if not parts:
        raise FileNotFoundError(
            f"{caller}: no {layer} {table} partition in {str(folder)!r} for "
            f"{start_date or 'any date'}..{end_date or 'any date'}; run run_pipeline first."
        )
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

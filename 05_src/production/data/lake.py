"""Where the data live and how they are read and written, under one folder ``data_dir``.

::

    raw/customers.csv, raw/terminals.csv               dimension files, as the source sends them
    raw/transactions/date=YYYY-MM-DD.csv               one file per day, dirty records included
    lake/bronze/transactions/date=.../part-0.parquet   a raw file as text + lineage
    lake/silver/transactions/date=.../part-0.parquet   validated, typed, deduplicated, by true date
    lake/silver/{customers,terminals}/part-0.parquet   validated dimensions
    lake/gold/transactions/date=.../part-0.parquet     silver joined with the dimensions
    rejected/transactions/date=YYYY-MM-DD.csv          the rejected-records report, by file date
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from production._validation import OneOf, as_day, check_param
from production.config import get_settings
from production.data.steps import BRONZE_COLUMNS, DIMENSION_DTYPES, NS, STR, validate_dimension
from production.simulate import TRANSACTION_COLUMNS

TABLES = ("transactions", "customers", "terminals")
PART = "part-0.parquet"
_FEW = {"merchant_category", "channel", "is_fraud", "fraud_scenario", "source_file"}
_FEW |= {"tx_date", "file_date", "ingested_at", "home_region", "terminal_region", "region"}
BRONZE_DTYPES = dict.fromkeys(BRONZE_COLUMNS[:-2], STR) | {"source_row": "int64", "file_date": NS}


def data_root(data_dir=None) -> Path:
    """Return ``data_dir`` as an absolute Path (default: the configured data folder)."""
    return get_settings().data_dir if data_dir is None else Path(data_dir).expanduser().resolve()


def raw_path(date=None, *, table: str = "transactions", data_dir=None) -> Path:
    """Return ``raw/transactions/date=YYYY-MM-DD.csv`` or ``raw/<table>.csv`` in ``data_dir``."""
    check_param(table, OneOf(*TABLES), "table", "raw_path")
    if table != "transactions":
        return data_root(data_dir) / "raw" / f"{table}.csv"
    day = as_day(date, "date", "raw_path")
    return data_root(data_dir) / "raw" / "transactions" / f"date={day:%Y-%m-%d}.csv"


def lake_path(layer: str, table: str = "transactions", date=None, *, data_dir=None) -> Path:
    """Return ``lake/<layer>/<table>/date=YYYY-MM-DD/part-0.parquet`` under ``data_dir``.

    Without ``date``, the table's folder; dimensions exist in silver only, unpartitioned.
    """
    check_param(layer, OneOf("bronze", "silver", "gold"), "layer", "lake_path")
    tables = TABLES if layer == "silver" else TABLES[:1]
    check_param(table, OneOf(*tables), "table", f"lake_path (layer {layer!r})")
    folder = data_root(data_dir) / "lake" / layer / table
    if table != "transactions":
        return folder / PART
    if date is None:
        return folder
    return folder / f"date={as_day(date, 'date', 'lake_path'):%Y-%m-%d}" / PART


def rejected_path(day, *, data_dir=None) -> Path:
    """Return the rejected-records report file of a file date."""
    return data_root(data_dir) / "rejected" / "transactions" / f"date={day:%Y-%m-%d}.csv"


def write_frame(frame: pd.DataFrame, path: Path, **options) -> Path:
    """Write ``frame`` (index dropped) to a ``.csv`` or ``.parquet`` file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False, **options)
        else:  # dictionary encoding only pays on columns of few values
            frame.to_parquet(tmp, index=False, use_dictionary=[c for c in frame if c in _FEW])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_header(data: bytes, path: Path, columns, where: str) -> None:
    """Raise naming the file and a repeated or missing column of a CSV's header."""
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    header = next(csv.reader([first]), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    missing = [c for c in columns if c not in header]
    if repeated or missing:
        problem = f"repeats column(s) {repeated}" if repeated else f"has no column(s) {missing}"
        raise ValueError(f"{where}: raw file {str(path)!r} {problem}; header: {header}.")


def read_csv_text(path, columns, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(rows, ragged)``: ``columns`` of a CSV as text, and lines of a wrong length.

    ``source_row`` numbers the lines after the header, blank ones counted.
    """
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
        raise FileNotFoundError(
            f"{where}: raw file {str(path)!r} does not exist; found {found[:5]}"
        )
    data, bad = path.read_bytes(), []
    _check_header(data, path, columns, where)
    data += b"" if data.endswith(b"\n") else b"\n"  # a header without its "\n" is a CSV too
    one_thread = pa_csv.ReadOptions(use_threads=False)  # else no line numbers
    skip = pa_csv.ParseOptions(invalid_row_handler=lambda row: bad.append(row) or "skip")
    as_text = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=list(columns),
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        table = pa_csv.read_csv(io.BytesIO(data), one_thread, skip, as_text)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{where}: cannot read {str(path)!r} as a UTF-8 CSV: {err}") from None
    rows = table.to_pandas().astype(STR)
    lines = np.arange(1, len(rows) + len(bad) + 1)  # pyarrow counts non-blank lines, header = 1
    if data.count(b"\n") != len(lines) + 1:  # blank lines, or lines not ended by "\n"
        lines = np.flatnonzero([bool(line) for line in data.splitlines()[1:]]) + 1
    at = [r.number - 2 for r in bad]
    rows["source_row"] = np.delete(lines, at)
    errors = [f"expected {r.expected_columns} fields, got {r.actual_columns}" for r in bad]
    return rows, pd.DataFrame({"source_row": lines[at], "parse_error": pd.array(errors, STR)})


def read_raw_transactions(path, *, ingested_at=None) -> pd.DataFrame:
    """Ingest one raw file ``date=YYYY-MM-DD.csv`` into bronze: every value as text + lineage.

    Nothing is parsed or dropped (empty fields become missing); a line of a wrong length
    gets ``parse_error``. Raises FileNotFoundError, or ValueError naming the file and column.
    """
    path, where = Path(path), "read_raw_transactions"
    day = path.name.removeprefix("date=").removesuffix(".csv")
    file_date = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    if pd.isna(file_date) or path.name != f"date={day}.csv":
        raise ValueError(f"{where}: raw file {str(path)!r} must be named 'date=YYYY-MM-DD.csv'.")
    rows, ragged = read_csv_text(path, TRANSACTION_COLUMNS, where)
    if rows.empty and ragged.empty:
        raise ValueError(f"{where}: raw file {str(path)!r} has no data rows.")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None) if ingested_at is None else ingested_at
    bronze = pd.concat([rows, ragged], ignore_index=True).sort_values("source_row")
    bronze = bronze.assign(source_file=path.name, file_date=file_date)
    bronze = bronze[list(BRONZE_COLUMNS)].astype(BRONZE_DTYPES)
    return bronze.assign(ingested_at=pd.Timestamp(now)).reset_index(drop=True)


def read_raw_dimension(path, table: str) -> pd.DataFrame:
    """Read and type a raw ``customers``/``terminals`` file; raise ValueError on a bad line."""
    check_param(table, OneOf(*DIMENSION_DTYPES), "table", "read_raw_dimension")
    where = f"read_raw_dimension: raw file {str(path)!r}"
    rows, ragged = read_csv_text(path, tuple(DIMENSION_DTYPES[table]), "read_raw_dimension")
    if len(ragged):
        raise ValueError(f"{where}, row {ragged.iat[0, 0]}: {ragged.iat[0, 1]}")
    if rows.empty:
        raise ValueError(f"{where} has no data rows.")
    return validate_dimension(rows.drop(columns="source_row"), table, where)


def read_lake(
    layer="silver", table="transactions", *, start_date=None, end_date=None, data_dir=None
) -> pd.DataFrame:
    """Read a ``layer`` table of the lake back, all partitions or ``start_date .. end_date``.

    Tables: ``"transactions"`` or, in silver, ``"customers"``/``"terminals"``. Raises
    FileNotFoundError if nothing is there.
    """
    path, where = lake_path(layer, table, data_dir=data_dir), "read_lake"
    start = pd.Timestamp.min if start_date is None else as_day(start_date, "start_date", where)
    end = pd.Timestamp.max if end_date is None else as_day(end_date, "end_date", where)
    parts = [path] if path.is_file() else sorted(path.glob(f"date=*/{PART}"))
    parts = [p for p in parts if p == path or start <= pd.Timestamp(p.parent.name[5:]) <= end]
    if not parts:
        raise FileNotFoundError(
            f"read_lake: no {layer} {table} in {str(path)!r} for {start_date or 'any date'}.."
            f"{end_date or 'any date'}; run run_pipeline first."
        )
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

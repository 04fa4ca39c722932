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
from production.data.steps import DIMENSION_DTYPES, STR, validate_dimension
from production.simulate import TRANSACTION_COLUMNS

LAYERS = ("bronze", "silver", "gold")
TABLES = ("transactions", "customers", "terminals")
PART = "part-0.parquet"
_FEW_VALUES = {"merchant_category", "channel", "is_fraud", "fraud_scenario", "source_file"}
_FEW_VALUES |= {"tx_date", "file_date", "ingested_at", "home_region", "terminal_region", "region"}


def data_root(data_dir=None) -> Path:
    """Return ``data_dir`` as an absolute Path (default: the configured data folder)."""
    return get_settings().data_dir if data_dir is None else Path(data_dir).expanduser().resolve()


def raw_path(date=None, *, table: str = "transactions", data_dir=None) -> Path:
    """Return ``raw/transactions/date=YYYY-MM-DD.csv`` (or ``raw/<table>.csv``) under ``data_dir``.

    ``date`` is required for transactions; ``data_dir`` defaults to the configured data folder.
    """
    check_param(table, OneOf(*TABLES), "table", "raw_path")
    if table != "transactions":
        return data_root(data_dir) / "raw" / f"{table}.csv"
    day = as_day(date, "date", "raw_path")
    return data_root(data_dir) / "raw" / "transactions" / f"date={day:%Y-%m-%d}.csv"


def lake_path(layer: str, table: str = "transactions", date=None, *, data_dir=None) -> Path:
    """Return ``lake/<layer>/<table>/date=YYYY-MM-DD/part-0.parquet`` under ``data_dir``.

    Without ``date``, the table's folder. Dimensions (``customers``, ``terminals``) exist in
    silver only, unpartitioned; ``data_dir`` defaults to the configured data folder.
    """
    check_param(layer, OneOf(*LAYERS), "layer", "lake_path")
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


def write_atomic(write, path: Path) -> Path:
    """Call ``write(temporary path)`` next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (index dropped) to ``path`` atomically."""
    dictionary = [c for c in frame.columns if c in _FEW_VALUES]  # elsewhere it only costs time
    return write_atomic(
        lambda tmp: frame.to_parquet(tmp, index=False, use_dictionary=dictionary), Path(path)
    )


def _header(data: bytes, path: Path, columns, where: str) -> list:
    """Return a CSV's header; raise naming the file and a repeated or missing column."""
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    header = next(csv.reader([first]), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    missing = [c for c in columns if c not in header]
    if repeated or missing:
        problem = f"repeats column(s) {repeated}" if repeated else f"has no column(s) {missing}"
        raise ValueError(f"{where}: raw file {str(path)!r} {problem}; header: {header}.")
    return header


def read_csv_text(path, columns, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``columns`` of a CSV as text, setting apart lines with a wrong field count.

    Returns ``(rows, ragged)``: both have ``source_row`` (the line's number after the
    header, blank lines counted); ``ragged`` has ``parse_error`` instead of the columns.
    """
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
        raise FileNotFoundError(
            f"{where}: raw file {str(path)!r} does not exist; found {found[:5]}"
        )
    data = path.read_bytes()
    header, bad = _header(data, path, columns, where), []
    blank = b"\n\n" in data or b"\n\r\n" in data

    def read(threads: bool) -> pa.Table:
        bad.clear()
        return pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(use_threads=threads),
            parse_options=pa_csv.ParseOptions(
                invalid_row_handler=lambda r: bad.append(r) or "skip"
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                include_columns=list(columns),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )

    if data.partition(b"\n")[2].isspace() or b"\n" not in data.rstrip():  # a header only
        empty = pd.DataFrame({c: pd.Series(dtype=STR) for c in columns})
        return empty.assign(source_row=0).head(0), pd.DataFrame(
            columns=["source_row", "parse_error"]
        )
    try:
        table = read(threads=True)
        if bad or blank:  # line numbers are known single-threaded only, blank lines uncounted
            table = read(threads=False)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{where}: cannot read {str(path)!r} as a UTF-8 CSV: {err}") from None
    rows = pd.DataFrame({c: table[c].to_pandas().astype(STR) for c in columns})
    lines = np.arange(1, len(rows) + len(bad) + 1)
    if blank:
        lines = np.flatnonzero([bool(line) for line in data.splitlines()[1:]]) + 1
    at = [r.number - 2 for r in bad]  # pyarrow counts non-blank lines, header = 1
    rows["source_row"] = np.delete(lines, at)
    errors = [f"expected {r.expected_columns} fields, got {r.actual_columns}" for r in bad]
    return rows, pd.DataFrame({"source_row": lines[at], "parse_error": errors})


def read_raw_transactions(path, *, ingested_at=None) -> pd.DataFrame:
    """Ingest one raw file ``date=YYYY-MM-DD.csv`` into bronze: every value as text + lineage.

    Nothing is parsed or dropped (``N/A`` stays ``"N/A"``; empty fields become missing); a
    line with a wrong number of fields is kept with ``parse_error`` set. ``source_row`` is
    the line's number after the header, blank lines counted. Raises FileNotFoundError, or
    ValueError naming the file and column (no data row, unreadable, repeated/missing column).
    """
    path, where = Path(path), "read_raw_transactions"
    day = path.name.removeprefix("date=").removesuffix(".csv")
    file_date = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    if pd.isna(file_date) or path.name != f"date={day}.csv":
        raise ValueError(f"{where}: raw file {str(path)!r} must be named 'date=YYYY-MM-DD.csv'.")
    rows, ragged = read_csv_text(path, TRANSACTION_COLUMNS, where)
    if rows.empty and ragged.empty:
        raise ValueError(f"{where}: raw file {str(path)!r} has no data rows.")
    bronze = pd.concat([rows, ragged], ignore_index=True).sort_values("source_row")
    bronze = bronze.astype({c: STR for c in [*TRANSACTION_COLUMNS, "parse_error"]})
    bronze["source_file"] = pd.Series(path.name, index=bronze.index, dtype=STR)
    bronze["file_date"] = file_date
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    bronze["ingested_at"] = pd.Timestamp(now if ingested_at is None else ingested_at)
    bronze = bronze.astype({"source_row": "int64", "file_date": "datetime64[ns]"})
    columns = [*TRANSACTION_COLUMNS, "parse_error", "source_file", "source_row"]
    return bronze[[*columns, "file_date", "ingested_at"]].reset_index(drop=True)


def read_raw_dimension(path, table: str) -> pd.DataFrame:
    """Read and type a raw ``customers``/``terminals`` file; a bad line or value raises ValueError."""
    check_param(table, OneOf(*DIMENSION_DTYPES), "table", "read_raw_dimension")
    where = f"read_raw_dimension: raw file {str(path)!r}"
    rows, ragged = read_csv_text(path, tuple(DIMENSION_DTYPES[table]), "read_raw_dimension")
    if len(ragged):
        raise ValueError(f"{where}, row {ragged.iat[0, 0]}: {ragged.iat[0, 1]}")
    if rows.empty:
        raise ValueError(f"{where} has no data rows.")
    return validate_dimension(rows.drop(columns="source_row"), table, where)


def read_lake(
    layer: str = "silver",
    table: str = "transactions",
    *,
    start_date=None,
    end_date=None,
    data_dir=None,
) -> pd.DataFrame:
    """Read a ``layer`` table of the lake back, all partitions or ``start_date .. end_date``.

    Tables: ``"transactions"`` or, in silver, ``"customers"``/``"terminals"``; ``data_dir``
    defaults to the configured data folder. Raises FileNotFoundError if nothing is there.
    """
    path = lake_path(layer, table, data_dir=data_dir)
    start = (
        pd.Timestamp.min if start_date is None else as_day(start_date, "start_date", "read_lake")
    )
    end = pd.Timestamp.max if end_date is None else as_day(end_date, "end_date", "read_lake")
    parts = [path] if path.is_file() else []
    for part in sorted(path.glob(f"date=*/{PART}")) if table == "transactions" else []:
        parts += [part] if start <= pd.Timestamp(part.parent.name[5:]) <= end else []
    if not parts:
        raise FileNotFoundError(
            f"read_lake: no {layer} {table} in {str(path)!r} for {start_date or 'any date'}.."
            f"{end_date or 'any date'}; run run_pipeline first."
        )
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

"""The course database: SQLite by default, PostgreSQL when ``DATABASE_URL`` says so.

Every write is one transaction holding the table's write lock (``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). ``mode``: ``"replace"`` (the table becomes the
frame), ``"upsert"`` (rows matching on ``key_cols`` replaced), ``"replace_partitions"`` (the
frame's partitions of ``partition_cols`` replaced) or ``"append"``. PostgreSQL uses ``COPY``.
"""

import io
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from production._validation import (
    Instance,
    InvalidParameterError,
    OneOf,
    TableName,
    check_frame,
    column_list,
    validate_params,
)
from production.config import get_settings, mask_url

__all__ = [
    "MODES",
    "DatabaseUnavailableError",
    "get_engine",
    "check_connection",
    "table_exists",
    "write_table",
    "read_table",
    "read_sql",
]

#: Seconds to wait for PostgreSQL to answer, and for another SQLite writer to finish.
CONNECT_TIMEOUT_S, SQLITE_BUSY_TIMEOUT_S = 5, 60
MODES = ("replace", "upsert", "replace_partitions", "append")
_ENGINE = Instance(Engine, none=True)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('production.db'), hashtext(:name))")


class DatabaseUnavailableError(ConnectionError):
    """The database could not be reached or refused the connection."""


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    """One engine per URL; SQLite transactions begin explicitly (SQLAlchemy's recipe)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        args = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "production"}
        return sa.create_engine(url, pool_pre_ping=True, connect_args=args)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _no_pysqlite_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # so DROP/CREATE roll back too

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        write = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def get_engine(url: str | None = None) -> Engine:
    """Return a cached engine for ``url`` (default: ``get_settings().database_url``)."""
    url = url or get_settings().database_url
    if "@" in (make_url(url).host or ""):
        raise InvalidParameterError(f"get_engine: write '@' in a password as %40: {mask_url(url)}")
    return _engine_for(url)


def _describe(engine: Engine) -> str:
    """Name the database without its password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database!r}"
    return f"PostgreSQL at {url.host}:{url.port or 5432} (database {url.database!r}, user {url.username!r})"


@contextmanager
def _begin(engine: Engine, *, write: bool = False):
    """Open a transaction; connection failures become DatabaseUnavailableError."""
    try:
        conn = engine.connect()
    except sa.exc.OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
        hint = "Check that its folder exists and is writable."
        if engine.dialect.name == "postgresql":
            hint = "Start it with 'docker compose up -d postgres' (or 'bash scripts/services.sh start'), or unset DATABASE_URL to use the embedded SQLite database."
        raise DatabaseUnavailableError(
            f"Cannot reach the database: {_describe(engine)}: {reason}. {hint}"
        ) from None
    with conn.execution_options(write=write) as conn, conn.begin():
        yield conn


def check_connection(engine: Engine | None = None) -> str:
    """Connect once and return the server's version, failing fast with a clear message.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`get_engine`.

    Returns
    -------
    str
        E.g. ``"PostgreSQL 15.18"`` or ``"SQLite 3.45.1"``.

    Raises
    ------
    DatabaseUnavailableError
        Within ~5 s if the server cannot be reached, naming host:port (never the password).
    """
    engine = engine or get_engine()
    with _begin(engine) as conn:
        if engine.dialect.name == "postgresql":
            return "PostgreSQL " + conn.exec_driver_sql("SHOW server_version").scalar().split()[0]
        return "SQLite " + conn.exec_driver_sql("select sqlite_version()").scalar()


def table_exists(name: str, engine: Engine | None = None) -> bool:
    """Return whether table ``name`` exists in the course database (``engine``: see above)."""
    with _begin(engine or get_engine()) as conn:
        return sa.inspect(conn).has_table(name)


def _quote(conn: Connection, name: str) -> str:
    """Quote an identifier for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)


def _columns(conn: Connection, name: str) -> list[str] | None:
    """Return the columns of table ``name``, or None if it does not exist."""
    inspector = sa.inspect(conn)
    return [c["name"] for c in inspector.get_columns(name)] if inspector.has_table(name) else None


def _copy_rows(frame: pd.DataFrame, name: str, conn: Connection) -> None:
    """Insert ``frame`` into ``name``: COPY on PostgreSQL, executemany on SQLite."""
    if frame.empty:
        return
    if conn.dialect.name != "postgresql":
        frame.to_sql(name, conn, index=False, if_exists="append", chunksize=50_000)
        return
    buffer = io.BytesIO()
    # every value quoted, nulls left bare: PostgreSQL's CSV reads bare empties as NULL
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer, options)
    buffer.seek(0)
    columns = ", ".join(_quote(conn, c) for c in frame.columns)
    copy = f"COPY {_quote(conn, name)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.copy_expert(copy, buffer)


def _match_columns(frame: pd.DataFrame, mode: str, key_cols, partition_cols) -> list[str]:
    """Return the columns that identify the rows to replace, checked against ``frame``."""
    if mode in ("replace", "append"):
        return []
    param = "key_cols" if mode == "upsert" else "partition_cols"
    value = key_cols if mode == "upsert" else partition_cols
    cols = column_list(value, param, "write_table")
    if not cols:
        raise InvalidParameterError(f"write_table: {param} must name at least one column of frame.")
    check_frame(frame, f"write_table ({param})", columns=cols)
    dupes = frame.duplicated(subset=cols)
    if mode == "upsert" and dupes.any():
        raise InvalidParameterError(
            f"write_table: key_cols {cols} must be unique in frame for mode='upsert'; "
            f"{int(dupes.sum())} duplicate row(s), first: {frame.loc[dupes, cols].iloc[0].to_dict()}"
        )
    return cols


@validate_params(frame=Instance(pd.DataFrame), name=TableName(), mode=OneOf(*MODES), engine=_ENGINE)
def write_table(
    frame: pd.DataFrame,
    name: str,
    *,
    mode: str = "replace",
    key_cols=None,
    partition_cols=None,
    engine: Engine | None = None,
) -> int:
    """Write ``frame`` (not its index) to table ``name`` in one locked transaction.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to write; a new table gets the column types pandas picks.
    name : str
        Table name: letters, digits and underscores, like the column names.
    mode : {"replace", "upsert", "replace_partitions", "append"}, default="replace"
        How the rows meet what the table holds (see the module docstring).
    key_cols : str or list of str, optional
        Columns identifying a row, unique within ``frame``; required for ``mode="upsert"``.
    partition_cols : str or list of str, optional
        Columns identifying a partition; required for ``mode="replace_partitions"``.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`get_engine`.

    Returns
    -------
    int
        Number of rows written.

    Raises
    ------
    InvalidParameterError
        For a bad frame, name, mode, key or partition columns, or a changed set of columns.
    DatabaseUnavailableError
        If the database cannot be reached.
    """
    bad = [c for c in frame.columns if not TableName().is_satisfied_by(c)]
    if bad:
        raise InvalidParameterError(f"write_table: frame column(s) {bad} must be {TableName()}")
    match = _match_columns(frame, mode, key_cols, partition_cols)
    with _begin(engine or get_engine(), write=True) as conn:
        if conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE holds the lock
            conn.execute(_LOCK, {"name": name})
        existing = _columns(conn, name)
        if existing is not None and mode != "replace" and set(existing) != set(frame.columns):
            raise InvalidParameterError(
                f"write_table: frame columns differ from table {name!r}: missing from frame "
                f"{sorted(set(existing) - set(frame.columns))}, not in table "
                f"{sorted(set(frame.columns) - set(existing))}. Use mode='replace' to redefine it."
            )
        if mode == "replace" or existing is None:
            if existing is not None:
                conn.exec_driver_sql(f"DROP TABLE {_quote(conn, name)}")
            frame.head(0).to_sql(name, conn, index=False)
            _copy_rows(frame, name, conn)
        elif mode == "append":
            _copy_rows(frame[existing], name, conn)
        else:
            _replace_matching(conn, frame[existing], name, match)
    return len(frame)


def _replace_matching(conn: Connection, frame: pd.DataFrame, name: str, match: list[str]) -> None:
    """Delete the rows of ``name`` whose ``match`` columns occur in ``frame``, then insert it."""
    staging = f"_staging_{name[:30]}_{uuid.uuid4().hex[:8]}"
    target, stage = _quote(conn, name), _quote(conn, staging)
    frame.head(0).to_sql(staging, conn, index=False)
    _copy_rows(frame, staging, conn)
    cols, index = [_quote(conn, c) for c in match], _quote(conn, "ix" + staging)
    conn.exec_driver_sql(f"CREATE INDEX {index} ON {stage} ({', '.join(cols)})")
    condition = " AND ".join(f"s.{c} = {target}.{c}" for c in cols)
    conn.exec_driver_sql(
        f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {stage} s WHERE {condition})"
    )
    columns = ", ".join(_quote(conn, c) for c in frame.columns)
    conn.exec_driver_sql(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage}")
    conn.exec_driver_sql(f"DROP TABLE {stage}")


@validate_params(name=TableName(), engine=_ENGINE)
def read_table(name: str, *, columns=None, engine: Engine | None = None) -> pd.DataFrame:
    """Read table ``name`` into a DataFrame.

    Parameters
    ----------
    name : str
        Table name.
    columns : str or list of str, optional
        Columns to read; all by default.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`get_engine`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InvalidParameterError
        If the table or a requested column does not exist.
    DatabaseUnavailableError
        If the database cannot be reached.
    """
    columns = None if columns is None else column_list(columns, "columns", "read_table")
    engine = engine or get_engine()
    with _begin(engine) as conn:
        existing = _columns(conn, name)
        if existing is None:
            tables = sorted(sa.inspect(conn).get_table_names())
            raise InvalidParameterError(
                f"read_table: table {name!r} not found in {_describe(engine)}; available: {tables}"
            )
        missing = [c for c in columns or [] if c not in existing]
        if missing:
            raise InvalidParameterError(
                f"read_table: column(s) {missing} not found in table {name!r}; available: {existing}"
            )
        return pd.read_sql_table(name, conn, columns=columns)


def read_sql(query: str, *, params: dict | None = None, engine: Engine | None = None):
    """Run a SQL query and return its rows as a DataFrame.

    Parameters
    ----------
    query : str
        SQL text; use ``:name`` placeholders for values, never string formatting.
    params : dict, optional
        Values for the placeholders.
    engine : sqlalchemy.engine.Engine, optional
        Defaults to :func:`get_engine`.

    Returns
    -------
    pandas.DataFrame
    """
    with _begin(engine or get_engine()) as conn:
        return pd.read_sql(sa.text(query), conn, params=params)

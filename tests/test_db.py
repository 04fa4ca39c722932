import multiprocessing
import socket
import time
import uuid

import numpy as np
import pandas as pd
import pytest

import production.db as db
from production.db import (
    DatabaseUnavailableError,
    check_connection,
    get_engine,
    read_sql,
    read_table,
    table_exists,
    write_table,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        yield get_engine(f"sqlite:///{(tmp_path / 'test.db').as_posix()}")
        return
    engine = get_engine(request.getfixturevalue("postgres_url"))
    yield engine
    with engine.begin() as conn:
        for (name,) in conn.exec_driver_sql(
            "select tablename from pg_tables where tablename like 't\\_%%' and schemaname='public'"
        ):
            conn.exec_driver_sql(f'drop table if exists "{name}"')


@pytest.fixture
def table():
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "day": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02"]),
            "at": pd.to_datetime(
                ["2026-01-01 10:00:00.123456", "2026-01-01 23:59:59", "2026-01-02 00:00:00"],
                format="ISO8601",
            ),
            "text": ['has,comma and "quote"', "", None],
            "flag": [True, False, True],
            "amount": [1.5, np.nan, 3.25],
        }
    )


def _sorted(frame):
    return frame.sort_values("id").reset_index(drop=True)


def test_round_trip_keeps_values_and_nulls(engine, table, frame):
    assert write_table(frame, table, engine=engine) == 3
    back = _sorted(read_table(table, engine=engine))
    assert list(back.columns) == list(frame.columns)
    assert back["id"].tolist() == [1, 2, 3]
    assert back["at"].tolist() == frame["at"].tolist()
    assert back["text"].iloc[0] == 'has,comma and "quote"'
    assert back["text"].iloc[1] == ""  # empty string stays empty, not NULL
    assert pd.isna(back["text"].iloc[2])
    assert back["flag"].tolist() == [True, False, True]
    assert back["amount"].iloc[0] == 1.5 and np.isnan(back["amount"].iloc[1])


def test_replace_is_idempotent(engine, table, frame):
    write_table(frame, table, engine=engine)
    write_table(frame, table, engine=engine)
    assert len(read_table(table, engine=engine)) == 3


def test_upsert_updates_and_inserts_without_duplicates(engine, table, frame):
    write_table(frame, table, mode="upsert", key_cols="id", engine=engine)
    change = frame.iloc[[2]].assign(amount=99.0)
    new = frame.iloc[[0]].assign(id=4)
    for _ in range(2):
        write_table(pd.concat([change, new]), table, mode="upsert", key_cols=["id"], engine=engine)
    back = _sorted(read_table(table, engine=engine))
    assert back["id"].tolist() == [1, 2, 3, 4]
    assert back.set_index("id")["amount"].loc[3] == 99.0


def test_replace_partitions_replaces_only_those_days(engine, table, frame):
    write_table(frame, table, engine=engine)
    rerun = frame.iloc[[0]].assign(amount=7.0)  # day 2026-01-01 now has one row
    for _ in range(2):
        write_table(rerun, table, mode="replace_partitions", partition_cols="day", engine=engine)
    back = _sorted(read_table(table, engine=engine))
    assert back["id"].tolist() == [1, 3]
    assert back["amount"].tolist() == [7.0, 3.25]


def test_append_adds_rows(engine, table, frame):
    write_table(frame, table, engine=engine)
    write_table(frame, table, mode="append", engine=engine)
    assert len(read_table(table, engine=engine)) == 6


def test_failed_replace_leaves_table_as_before(engine, table, frame, monkeypatch):
    write_table(frame, table, engine=engine)

    def broken_copy(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(db, "_copy_rows", broken_copy)
    with pytest.raises(RuntimeError, match="disk full"):
        write_table(frame.iloc[:1], table, engine=engine)
    monkeypatch.undo()
    assert len(read_table(table, engine=engine)) == 3
    assert [t for t in _tables(engine) if t.startswith("_staging")] == []


def _tables(engine):
    import sqlalchemy as sa

    return sa.inspect(engine).get_table_names()


def test_failed_upsert_leaves_table_as_before(engine, table, frame, monkeypatch):
    write_table(frame, table, engine=engine)
    real_exec = None

    def failing_insert(self, statement, *args, **kwargs):
        if statement.startswith("INSERT INTO"):
            raise RuntimeError("connection lost during insert")
        return real_exec(self, statement, *args, **kwargs)

    import sqlalchemy.engine

    real_exec = sqlalchemy.engine.Connection.exec_driver_sql
    monkeypatch.setattr(sqlalchemy.engine.Connection, "exec_driver_sql", failing_insert)
    with pytest.raises(RuntimeError, match="connection lost"):
        write_table(frame.assign(amount=0.0), table, mode="upsert", key_cols="id", engine=engine)
    monkeypatch.undo()
    back = _sorted(read_table(table, engine=engine))
    assert back["amount"].iloc[0] == 1.5
    assert len(back) == 3
    assert [t for t in _tables(engine) if t.startswith("_staging")] == []


@pytest.mark.integration
def test_postgres_rejects_bad_types_and_keeps_rows(postgres_url, table, frame):
    engine = get_engine(postgres_url)
    write_table(frame, table, engine=engine)
    bad = frame.assign(amount=["a", "b", "c"])
    with pytest.raises(Exception, match="double precision"):
        write_table(bad, table, mode="upsert", key_cols="id", engine=engine)
    assert read_table(table, engine=engine)["amount"].iloc[0] == 1.5


@pytest.mark.integration
def test_tables_really_live_in_postgres(postgres_url, table, frame):
    engine = get_engine(postgres_url)
    assert check_connection(engine).startswith("PostgreSQL ")
    write_table(frame, table, engine=engine)
    found = read_sql(
        "select count(*) as n from pg_tables where tablename = :t",
        params={"t": table},
        engine=engine,
    )
    assert found["n"].iloc[0] == 1
    assert table_exists(table, engine=engine)


def test_default_engine_is_the_embedded_sqlite_file(embedded_defaults, frame):
    write_table(frame, "payments")
    assert (embedded_defaults / "data" / "production.db").is_file()
    assert check_connection().startswith("SQLite ")
    assert table_exists("payments") and not table_exists("nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frame": [1, 2]}, "'frame' parameter of write_table must be an instance of DataFrame"),
        ({"name": "drop table;"}, "'name' parameter of write_table must be a table name"),
        ({"mode": "merge"}, "'mode' parameter of write_table must be one of"),
        ({"engine": "sqlite://"}, "'engine' parameter of write_table"),
        ({"mode": "upsert"}, "'key_cols' parameter of write_table must be a column name"),
        ({"mode": "upsert", "key_cols": []}, "key_cols must name at least one column"),
        ({"mode": "upsert", "key_cols": "txn_id"}, r"key_cols\): column\(s\) \['txn_id'\]"),
        (
            {"mode": "replace_partitions", "partition_cols": ["date"]},
            r"partition_cols\): column\(s\) \['date'\] not found",
        ),
        ({"mode": "upsert", "key_cols": "day"}, "must be unique in frame"),
    ],
)
def test_write_table_rejects_bad_input(engine, frame, kwargs, match):
    arguments = {"frame": frame, "name": "payments", "engine": engine, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_table(arguments.pop("frame"), arguments.pop("name"), **arguments)
    assert not table_exists("payments", engine=engine)


def test_bad_column_names_are_named(engine):
    with pytest.raises(ValueError, match=r"\['amount \(EUR\)'\]"):
        write_table(pd.DataFrame({"amount (EUR)": [1]}), "t_x", engine=engine)


def test_changed_columns_need_replace(engine, table, frame):
    write_table(frame, table, engine=engine)
    with pytest.raises(ValueError, match=r"missing from frame \['flag'\]"):
        write_table(frame.drop(columns="flag"), table, mode="append", engine=engine)


def test_read_table_errors_name_what_exists(engine, table, frame):
    write_table(frame, table, engine=engine)
    with pytest.raises(ValueError, match=f"table 'missing' not found.*{table}"):
        read_table("missing", engine=engine)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not found in table"):
        read_table(table, columns=["id", "nope"], engine=engine)
    with pytest.raises(ValueError, match="'name' parameter of read_table"):
        read_table("x; drop table y", engine=engine)
    with pytest.raises(ValueError, match="'columns' parameter of read_table"):
        read_table(table, columns=[1], engine=engine)
    assert list(read_table(table, columns="id", engine=engine).columns) == ["id"]


def test_unreachable_postgres_fails_fast_without_password():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    engine = get_engine(f"postgresql+psycopg2://course:topsecret@127.0.0.1:{port}/course")
    started = time.perf_counter()
    with pytest.raises(DatabaseUnavailableError) as info:
        check_connection(engine)
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "docker compose up -d postgres" in message
    assert "topsecret" not in message


def test_silent_postgres_times_out_within_10_s():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts TCP but never answers the PostgreSQL handshake
    try:
        port = server.getsockname()[1]
        engine = get_engine(f"postgresql+psycopg2://course:topsecret@127.0.0.1:{port}/course")
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailableError, match=f"127.0.0.1:{port}"):
            read_table("transactions", engine=engine)
        assert time.perf_counter() - started < 10
    finally:
        server.close()


def test_unopenable_sqlite_file_is_named(tmp_path):
    (tmp_path / "folder.db").mkdir()  # a folder where the database file should be
    engine = get_engine(f"sqlite:///{(tmp_path / 'folder.db').as_posix()}")
    with pytest.raises(DatabaseUnavailableError, match="SQLite file .*folder.db.*writable"):
        check_connection(engine)


# ------------------------------------------------------------------ concurrent writers

TRIALS = 4


def _concurrent_writer(url, table, mode, n_keys, barrier, result):
    """One of two processes writing the same keys at the same moment, TRIALS times."""
    frame = pd.DataFrame(
        {
            "id": np.arange(n_keys, dtype="int64"),
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n_keys) % 3, unit="D"),
            "amount": np.arange(n_keys) / 100,
        }
    )
    options = {"key_cols": "id"} if mode == "upsert" else {"partition_cols": "day"}
    engine = get_engine(url)
    try:
        for trial in range(TRIALS):
            barrier.wait(timeout=60)
            write_table(frame, f"{table}_{trial}", mode=mode, engine=engine, **options)
    except Exception as err:  # reported to the parent, which fails the test
        result.put(repr(err))
        barrier.abort()
    else:
        result.put("ok")


def _write_concurrently(url, table, mode, n_keys):
    """Run two writers; return the (rows, distinct ids) of each trial's table."""
    context = multiprocessing.get_context("spawn")
    barrier, result = context.Barrier(2), context.Queue()
    engine = get_engine(url)
    # trials 0 and 1 start from no table (both writers create it), the others from a full one
    for trial in range(2, TRIALS):
        write_table(
            pd.DataFrame({"id": [0], "day": [pd.Timestamp("2026-01-01")], "amount": [0.0]}),
            f"{table}_{trial}",
            engine=engine,
        )
    workers = [
        context.Process(target=_concurrent_writer, args=(url, table, mode, n_keys, barrier, result))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [result.get(timeout=5) for _ in workers] == ["ok", "ok"]
    counts = [
        read_sql(
            f"select count(*) as n, count(distinct id) as k from {table}_{trial}", engine=engine
        )
        for trial in range(TRIALS)
    ]
    return [(int(c["n"].iloc[0]), int(c["k"].iloc[0])) for c in counts]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["upsert", "replace_partitions"])
def test_concurrent_writes_on_postgres_leave_one_row_per_key(postgres_url, table, mode):
    assert _write_concurrently(postgres_url, table, mode, 20_000) == [(20_000, 20_000)] * TRIALS


@pytest.mark.parametrize("mode", ["upsert", "replace_partitions"])
def test_concurrent_writes_on_sqlite_leave_one_row_per_key(tmp_path, table, mode):
    url = f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
    assert _write_concurrently(url, table, mode, 2_000) == [(2_000, 2_000)] * TRIALS


def test_unencoded_at_in_a_password_is_refused_without_echo():
    with pytest.raises(ValueError, match="write '@' in a password as %40") as info:
        get_engine("postgresql+psycopg2://course:top@secret@127.0.0.1:5432/course")
    assert "secret" not in str(info.value)

import hashlib
import shutil
import uuid

import numpy as np
import pandas as pd
import pytest

import production.data as data
from production.data import (
    BRONZE_COLUMNS,
    DIRTY_KINDS,
    GOLD_COLUMNS,
    REJECTED_COLUMNS,
    SILVER_COLUMNS,
    build_gold,
    build_silver,
    deduplicate_transactions,
    export_raw_days,
    lake_path,
    raw_path,
    read_lake,
    read_raw_dimension,
    read_raw_transactions,
    run_pipeline,
    validate_transactions,
)
from production.db import get_engine, read_sql, read_table
from production.simulate import simulate_profiles

SOURCE = {"n_customers": 60, "n_terminals": 20, "n_days": 4, "random_state": 7}
DIRTY_RATE = 0.02
DATES = [f"2026-01-0{d}" for d in range(1, 5)]  # runs cover the first 3 days
EXPECTED_REASON = {
    "duplicate": r"^exact duplicate of date=\d{4}-\d{2}-\d{2}\.csv row \d+$",
    "missing_value": r"^missing value$",
    "malformed_amount": r"^not a number with '\.' as the decimal point$",
    "negative_amount": r"^must be > 0$",
    "bad_timestamp": r"^not a valid date-time 'YYYY-MM-DD HH:MM:SS'$",
    "unknown_category": r"^not one of \['grocery', ",
}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """Raw files of 4 tiny days, landed once; tests copy them."""
    root = tmp_path_factory.mktemp("landed")
    export = export_raw_days(**SOURCE, dirty_rate=DIRTY_RATE, data_dir=root)
    return root, export


@pytest.fixture
def lake(landed, tmp_path):
    """A fresh data_dir holding only the landed raw files."""
    root = tmp_path / "data"
    shutil.copytree(landed[0] / "raw", root / "raw")
    return root


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{(tmp_path / 'test.db').as_posix()}")


def _snapshot(root, layers=("silver", "gold")):
    """Return {relative path: md5} of the lake files of ``layers`` and the rejected report."""
    paths = [p for layer in layers for p in (root / "lake" / layer).rglob("*.parquet")]
    paths += list((root / "rejected").rglob("*.csv"))
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def _run(root, engine=None, **kwargs):
    return run_pipeline(DATES[0], DATES[-2], data_dir=root, engine=engine, **kwargs)


# --------------------------------------------------------------------------- the source


def test_export_is_deterministic_and_chunkable(landed, tmp_path):
    root, export = landed
    again = export_raw_days(**SOURCE, dirty_rate=DIRTY_RATE, data_dir=tmp_path / "again")
    chunked = tmp_path / "chunked"
    export_raw_days(**SOURCE, dirty_rate=DIRTY_RATE, end_day=2, data_dir=chunked)
    export_raw_days(**SOURCE, dirty_rate=DIRTY_RATE, start_day=2, data_dir=chunked)
    for path in [*export.transaction_files, export.customers_file, export.terminals_file]:
        relative = path.relative_to(root)
        assert (tmp_path / "again" / relative).read_bytes() == path.read_bytes()
        assert (chunked / relative).read_bytes() == path.read_bytes()
    pd.testing.assert_frame_equal(again.injected, export.injected)
    assert [p.name for p in export.transaction_files] == [f"date={d}.csv" for d in DATES]
    assert set(export.injected["kind"]) == set(DIRTY_KINDS)
    other = export_raw_days(**{**SOURCE, "random_state": 8, "n_days": 1}, data_dir=tmp_path / "x")
    assert other.transaction_files[0].read_bytes() != export.transaction_files[0].read_bytes()


def test_export_writes_the_dirt_it_reports(landed):
    _, export = landed
    for record in export.injected.itertuples():
        raw = pd.read_csv(
            raw_path(record.source_file[5:15], data_dir=landed[0]),
            dtype=str,
            keep_default_na=False,
        )
        written = raw.iloc[record.source_row - 1][record.column]
        assert written == ("" if pd.isna(record.value) else record.value)
        if record.kind == "duplicate":
            assert raw.iloc[record.source_row - 1].equals(raw.iloc[record.source_row - 2])


def test_dimension_files_round_trip_exactly(landed):
    customers, terminals = simulate_profiles(
        SOURCE["n_customers"], SOURCE["n_terminals"], SOURCE["random_state"]
    )
    export = landed[1]
    pd.testing.assert_frame_equal(read_raw_dimension(export.customers_file, "customers"), customers)
    pd.testing.assert_frame_equal(read_raw_dimension(export.terminals_file, "terminals"), terminals)


def test_bronze_keeps_the_raw_text_and_lineage(landed):
    path = landed[1].transaction_files[0]
    stamp = pd.Timestamp("2026-02-01 12:00:00")
    bronze = read_raw_transactions(path, ingested_at=stamp)
    assert list(bronze.columns) == list(BRONZE_COLUMNS)
    assert bronze["source_row"].tolist() == list(range(1, len(bronze) + 1))
    assert (bronze["source_file"] == path.name).all()
    assert (bronze["file_date"] == pd.Timestamp("2026-01-01")).all()
    assert (bronze["ingested_at"] == stamp).all()
    lines = path.read_text().splitlines()
    assert len(lines) == len(bronze) + 1
    assert lines[5].split(",")[0] == bronze["transaction_id"].iloc[4]
    assert "N/A" in set(bronze["amount"])  # not turned into a missing value


# --------------------------------------------------------------------------- silver rules


def _bronze(**changes):
    """Return a 4-row bronze frame of valid text, then apply ``{column: [values]}``."""
    frame = pd.DataFrame(
        {
            "transaction_id": ["1", "2", "3", "4"],
            "tx_datetime": ["2026-01-02 10:00:00"] * 3 + ["2026-01-01 23:59:59"],
            "customer_id": ["0", "1", "1", "0"],
            "terminal_id": ["0", "1", "0", "1"],
            "amount": ["12.5", "3", "100.25", "7.10"],
            "merchant_category": ["grocery", "fuel", "travel", "grocery"],
            "channel": ["chip", "online", "swipe", "contactless"],
            "is_fraud": ["0", "0", "1", "0"],
            "fraud_scenario": ["0", "0", "2", "0"],
            "label_available_at": ["2026-01-09 10:00:00"] * 4,
        },
        dtype="str",
    )
    for column, values in changes.items():
        frame[column] = pd.Series(values, dtype="str")
    frame["source_file"] = pd.Series(["date=2026-01-02.csv"] * 4, dtype="str")
    frame["source_row"] = np.arange(1, 5, dtype="int64")
    frame["file_date"] = pd.Timestamp("2026-01-02").as_unit("ns")
    frame["ingested_at"] = pd.Timestamp("2026-01-03").as_unit("ns")
    return frame


def _dimensions():
    return simulate_profiles(2, 2, random_state=0)


def test_valid_rows_pass_and_a_late_row_keeps_its_true_date():
    customers, terminals = _dimensions()
    checked = validate_transactions(_bronze(), customers=customers, terminals=terminals)
    assert checked["reject_reason"].isna().all()
    silver, rejected = build_silver(checked)
    assert list(silver.columns) == list(SILVER_COLUMNS) and rejected.empty
    assert silver["amount"].tolist() == [7.10, 12.5, 3.0, 100.25]  # sorted by time
    late = silver.iloc[0]
    assert late["arrived_late"] and late["tx_date"] == pd.Timestamp("2026-01-01")
    assert silver["is_fraud"].dtype == "int8" and silver["customer_id"].dtype == "int64"


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"tx_datetime": ["2026-01-05 10:00:00"]}, "tx_datetime", "not on the file's date"),
        ({"tx_datetime": ["2026-1-2 10:00:00"]}, "tx_datetime", "not a valid date-time"),
        ({"label_available_at": ["2026-01-01 00:00:00"]}, "label_available_at", "before"),
        ({"customer_id": ["5"]}, "customer_id", "unknown customer_id"),
        ({"terminal_id": ["-1"]}, "terminal_id", "not an integer"),
        ({"amount": ["2000000"]}, "amount", "must be <= 1,000,000"),
        ({"channel": ["atm"]}, "channel", r"not one of \['chip'"),
        ({"is_fraud": ["2"]}, "is_fraud", r"not one of \[0, 1\]"),
        ({"amount": ["0"], "channel": [None]}, "amount; channel", "must be > 0; missing value"),
    ],
)
def test_each_rule_rejects_with_column_and_reason(changes, column, reason):
    customers, terminals = _dimensions()
    bronze = _bronze(**{c: v + list(_bronze()[c][1:]) for c, v in changes.items()})
    checked = validate_transactions(bronze, customers=customers, terminals=terminals)
    silver, rejected = build_silver(checked)
    assert len(silver) == 3 and len(rejected) == 1
    row = rejected.iloc[0]
    assert list(rejected.columns) == list(REJECTED_COLUMNS)
    assert (row["source_file"], row["source_row"], row["column"]) == (
        "date=2026-01-02.csv",
        1,
        column,
    )
    assert pd.Series([row["reason"]]).str.contains(reason).all()
    assert row["date"] == pd.Timestamp("2026-01-02")


def test_exact_duplicates_and_reused_ids_are_rejected_once():
    bronze = _bronze(transaction_id=["1", "2", "2", "3"])  # row 3 reuses id 2
    dup = bronze.iloc[[0]].assign(source_row=np.int64(5))  # exact copy of row 1
    checked = validate_transactions(pd.concat([bronze, dup], ignore_index=True))
    deduplicated = deduplicate_transactions(checked)
    silver, rejected = build_silver(checked)
    assert sorted(silver["transaction_id"]) == [1, 2, 3]
    assert rejected["reason"].tolist() == [
        "transaction_id already used by date=2026-01-02.csv row 2 with different values",
        "exact duplicate of date=2026-01-02.csv row 1",
    ]
    assert deduplicated["reject_reason"].notna().sum() == 2


# --------------------------------------------------------------------------- the pipeline


def test_every_dirty_record_is_reported_with_its_reason(lake, landed, engine):
    report = _run(lake, engine)
    injected = landed[1].injected
    expected = injected[
        (injected["kind"] != "late")
        & injected["source_file"].isin([f"date={d}.csv" for d in DATES[:-1]])
    ]
    merged = expected.merge(report.rejected, on=["source_file", "source_row"], how="outer")
    assert merged["kind"].notna().all(), "a row was rejected that was not injected"
    assert merged["reason"].notna().all(), "an injected record was not rejected"
    for kind, pattern in EXPECTED_REASON.items():
        of_kind = merged[merged["kind"] == kind]
        assert len(of_kind) > 0
        assert of_kind["reason"].str.contains(pattern).all(), kind
        assert (of_kind["column_x"] == of_kind["column_y"]).all() or kind == "duplicate"
    written = pd.concat(
        [pd.read_csv(p, dtype={"value": "str"}) for p in sorted((lake / "rejected").rglob("*.csv"))]
    )
    assert len(written) == len(report.rejected) == report.total("rejected_rows")


def test_duplicates_are_kept_once_and_late_rows_move_to_their_day(lake, landed, engine):
    report = _run(lake, engine)
    silver = read_lake("silver", data_dir=lake)
    assert silver["transaction_id"].is_unique
    injected = landed[1].injected
    late = injected[injected["kind"] == "late"]
    assert len(late) > 0
    moved = silver[silver["arrived_late"]]
    for record in late.itertuples():
        file_day = pd.Timestamp(record.source_file[5:15])
        if file_day - pd.Timedelta(days=1) > pd.Timestamp(DATES[-2]) or file_day == pd.Timestamp(
            DATES[0]
        ):
            continue  # belongs to a day outside the run
        row = moved[
            (moved["source_file"] == record.source_file)
            & (moved["source_row"] == record.source_row)
        ]
        assert len(row) == 1, record
        assert row["tx_date"].iloc[0] == file_day - pd.Timedelta(days=1)
        assert row["tx_datetime"].iloc[0] == pd.Timestamp(record.value)
    # the last day's late rows came from the file of the day after the range
    assert (moved["source_file"] == f"date={DATES[-1]}.csv").any()
    assert report.total("late_rows") == len(moved)
    dirty_dupes = injected[injected["kind"] == "duplicate"]
    kept = silver.merge(dirty_dupes, on=["source_file", "source_row"])
    assert kept.empty  # the copies are gone, their originals stayed


def test_partition_layout(lake, engine):
    report = _run(lake, engine)
    written = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())
    days = DATES[:-1]
    expected = sorted(
        [f"raw/transactions/date={d}.csv" for d in DATES]
        + ["raw/customers.csv", "raw/terminals.csv"]
        + [
            f"lake/{layer}/transactions/date={d}/part-0.parquet"
            for layer in data.LAYERS
            for d in days
        ]
        + ["lake/silver/customers/part-0.parquet", "lake/silver/terminals/part-0.parquet"]
        + [f"rejected/transactions/date={d}.csv" for d in days]
    )
    assert written == expected
    assert not (lake / ".staging").exists()
    assert report.files["gold"][0] == lake_path("gold", date=days[0], data_dir=lake)
    gold = read_lake("gold", data_dir=lake, start_date=days[1], end_date=days[1])
    assert list(gold.columns) == list(GOLD_COLUMNS)
    assert (gold["tx_date"] == pd.Timestamp(days[1])).all()
    assert len(gold) == report.counts.loc[days[1], "gold_rows"]


def test_rerunning_days_gives_identical_files_and_rows(lake, engine):
    first = _run(lake, engine)
    files, bronze = _snapshot(lake), read_lake("bronze", data_dir=lake)
    rows = read_sql(
        "select count(*) as n, count(distinct transaction_id) as ids from transactions",
        engine=engine,
    )
    second = _run(lake, engine)
    assert _snapshot(lake) == files
    pd.testing.assert_frame_equal(first.counts, second.counts)
    rerun_bronze = read_lake("bronze", data_dir=lake)
    pd.testing.assert_frame_equal(
        rerun_bronze.drop(columns="ingested_at"), bronze.drop(columns="ingested_at")
    )
    pd.testing.assert_frame_equal(
        read_sql(
            "select count(*) as n, count(distinct transaction_id) as ids from transactions",
            engine=engine,
        ),
        rows,
    )
    # one day on its own rewrites exactly that day, same bytes (late rows included)
    one = run_pipeline(DATES[1], DATES[1], data_dir=lake, engine=engine)
    assert _snapshot(lake) == files
    assert one.counts.loc[DATES[1]].equals(first.counts.loc[DATES[1]])
    assert int(rows["n"].iloc[0]) == first.total("silver_rows") == int(rows["ids"].iloc[0])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_engine(request, tmp_path):
    prefix = f"t_{uuid.uuid4().hex[:8]}_"
    if request.param == "sqlite":
        yield get_engine(f"sqlite:///{(tmp_path / 'test.db').as_posix()}"), prefix
        return
    engine = get_engine(request.getfixturevalue("postgres_url"))
    yield engine, prefix
    with engine.begin() as conn:
        for name in ("customers", "terminals", "transactions"):
            conn.exec_driver_sql(f'drop table if exists "{prefix}{name}"')


def test_database_load_on_both_backends(lake, any_engine):
    engine, prefix = any_engine
    report = _run(lake, engine, table_prefix=prefix)
    again = _run(lake, engine, table_prefix=prefix)
    assert (
        again.tables
        == report.tables
        == {
            f"{prefix}customers": SOURCE["n_customers"],
            f"{prefix}terminals": SOURCE["n_terminals"],
            f"{prefix}transactions": report.total("silver_rows"),
        }
    )
    per_day = read_sql(
        f"select tx_date, count(*) as n from {prefix}transactions group by tx_date order by tx_date",
        engine=engine,
    )
    assert per_day["n"].tolist() == report.counts["silver_rows"].tolist()
    table = read_table(f"{prefix}transactions", engine=engine)
    silver = read_lake("silver", data_dir=lake)
    assert sorted(table["transaction_id"]) == sorted(silver["transaction_id"])
    assert len(read_table(f"{prefix}customers", engine=engine)) == SOURCE["n_customers"]


def test_failed_load_leaves_lake_and_database_as_before(lake, engine, monkeypatch):
    _run(lake, engine)
    files, bronze_files = _snapshot(lake), _snapshot(lake, ("bronze",))
    before = read_sql("select count(*) as n from transactions", engine=engine)
    (lake / "lake" / "silver" / "transactions" / "date=2026-01-02" / "part-0.parquet").unlink()

    real_write = data.write_table

    def failing_write(frame, name, **kwargs):
        if name == "transactions":
            raise RuntimeError("connection lost")
        return real_write(frame, name, **kwargs)

    monkeypatch.setattr(data, "write_table", failing_write)
    with pytest.raises(RuntimeError, match="connection lost"):
        _run(lake, engine)
    monkeypatch.undo()
    assert _snapshot(lake, ("bronze",)) == bronze_files  # same ingested_at: not rewritten
    assert _snapshot(lake) == {
        k: v for k, v in files.items() if "2026-01-02/" not in k or "gold" in k
    }
    assert read_sql("select count(*) as n from transactions", engine=engine).equals(before)
    assert not (lake / ".staging").exists()


def test_failed_transform_writes_nothing(lake, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("out of memory in build_gold")

    monkeypatch.setattr(data, "build_gold", broken)
    with pytest.raises(MemoryError, match="build_gold"):
        _run(lake, load=False)
    assert sorted(p.name for p in lake.iterdir()) == ["raw"]


# --------------------------------------------------------------------------- Dask


def test_pandas_and_dask_write_identical_layers(lake):
    pandas_report = _run(lake, load=False)
    files = _snapshot(lake)
    dask_report = _run(lake, load=False, backend="dask", show_progress=False)
    assert _snapshot(lake) == files  # byte for byte
    pd.testing.assert_frame_equal(pandas_report.counts, dask_report.counts)
    pd.testing.assert_frame_equal(pandas_report.rejected, dask_report.rejected)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local_cluster:
        yield local_cluster


def test_dask_runs_on_a_distributed_cluster(lake, cluster, monkeypatch):
    expected = _run(lake, load=False)
    files = _snapshot(lake)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    report = _run(lake, load=False, backend="dask")
    assert _snapshot(lake) == files
    pd.testing.assert_frame_equal(report.rejected, expected.rejected)
    assert {"ingest", "assemble_day", "build_gold", "write_part"} <= set(
        cluster.scheduler.task_prefixes
    )
    # errors raised on a worker reach the caller with the file and column named
    broken = raw_path(DATES[2], data_dir=lake)
    broken.write_text(broken.read_text().replace("amount", "amt", 1))
    with pytest.raises(ValueError, match=r"date=2026-01-03\.csv.*no column\(s\) \['amount'\]"):
        _run(lake, load=False, backend="dask")


# --------------------------------------------------------------------------- bad input


def _header_only(path):
    path.write_text(path.read_text().splitlines()[0] + "\n")


def _drop_column(path, column="amount"):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=column).to_csv(path, index=False)


BAD_FILES = {
    "missing file": (lambda p: p.unlink(), FileNotFoundError, r"date=2026-01-02\.csv"),
    "missing column": (
        _drop_column,
        ValueError,
        r"date=2026-01-02\.csv' has no column\(s\) \['amount'\]; expected columns",
    ),
    "empty day": (_header_only, ValueError, r"date=2026-01-02\.csv' has a header but no rows"),
    "zero bytes": (lambda p: p.write_bytes(b""), ValueError, r"date=2026-01-02\.csv' is empty"),
    "not utf-8": (
        lambda p: p.write_bytes(p.read_bytes().replace(b"grocery", b"groc\xffry")),
        ValueError,
        r"cannot read raw file '.*date=2026-01-02\.csv': .*invalid UTF8",
    ),
    "ragged rows": (
        lambda p: p.write_text(p.read_text() + "1,2,3\n"),
        ValueError,
        r"cannot read raw file '.*date=2026-01-02\.csv': .*Expected 10 columns, got 3",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_raw_file_names_file_and_column(lake, case):
    damage, error, match = BAD_FILES[case]
    damage(raw_path(DATES[1], data_dir=lake))
    with pytest.raises(error, match=match):
        _run(lake, load=False)
    assert not (lake / "lake").exists()


def test_bad_dimension_file_names_file_column_and_row(lake):
    path = raw_path(table="customers", data_dir=lake)
    lines = path.read_text().splitlines()
    lines[3] = "abc" + lines[3][lines[3].index(",") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"customers\.csv', column 'customer_id', row 3: expected int64"
    ):
        _run(lake, load=False)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"customers\.csv' does not exist"):
        _run(lake, load=False)


def test_out_of_range_dimension_value_is_named(lake):
    path = raw_path(table="terminals", data_dir=lake)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[1, "x_location"] = "140.5"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"terminals\.csv', column 'x_location', row 2"):
        read_raw_dimension(path, "terminals")


def test_wrong_dtypes_are_named():
    customers, terminals = _dimensions()
    with pytest.raises(
        TypeError, match="column 'amount' of bronze must have dtype str; got float64"
    ):
        validate_transactions(_bronze().astype({"amount": "float64"}))
    silver, _ = build_silver(validate_transactions(_bronze()))
    with pytest.raises(
        TypeError, match="column 'amount' of silver must have dtype float64; got str"
    ):
        build_gold(silver.astype({"amount": "str"}), customers, terminals)
    with pytest.raises(ValueError, match=r"column\(s\) \['channel'\] not found in silver"):
        build_gold(silver.drop(columns="channel"), customers, terminals)
    with pytest.raises(ValueError, match=r"customer_id\(s\) missing from the dimension: \[1\]"):
        build_gold(silver, customers.iloc[:1], terminals)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"start_date": "2026-01-03", "end_date": "2026-01-01"},
            ValueError,
            "is before start_date",
        ),
        ({"start_date": "2026-13-01"}, ValueError, "'start_date' parameter of run_pipeline"),
        ({"end_date": 20260101}, TypeError, "'end_date' parameter of run_pipeline"),
        ({"backend": "spark"}, ValueError, r"'backend' parameter .* \['pandas', 'dask'\]"),
        ({"table_prefix": "drop table;"}, ValueError, "'table_prefix' parameter"),
    ],
)
def test_bad_parameters_are_named(lake, kwargs, error, match):
    arguments = {"start_date": DATES[0], "end_date": DATES[1], "data_dir": lake, **kwargs}
    with pytest.raises(error, match=match):
        run_pipeline(arguments.pop("start_date"), arguments.pop("end_date"), **arguments)


def test_bad_export_and_file_names_are_named(tmp_path):
    with pytest.raises(ValueError, match="'dirty_rate' parameter of export_raw_days"):
        export_raw_days(n_days=2, dirty_rate=0.5, data_dir=tmp_path)
    with pytest.raises(TypeError, match="'dirty_rate' parameter of export_raw_days"):
        export_raw_days(n_days=2, dirty_rate="high", data_dir=tmp_path)
    with pytest.raises(ValueError, match="'n_days' parameter of iter_days"):
        export_raw_days(n_days=0, data_dir=tmp_path)
    named = tmp_path / "transactions.csv"
    named.write_text("a\n1\n")
    with pytest.raises(
        ValueError, match=r"must be named 'date=YYYY-MM-DD\.csv'.*'transactions\.csv'"
    ):
        read_raw_transactions(named)
    with pytest.raises(FileNotFoundError, match=r"no silver transactions partition"):
        read_lake("silver", data_dir=tmp_path)
    with pytest.raises(ValueError, match="'layer' parameter of lake_path"):
        lake_path("platinum")


def test_default_data_dir_is_the_configured_one(embedded_defaults, landed):
    shutil.copytree(landed[0] / "raw", embedded_defaults / "data" / "raw")
    report = run_pipeline(DATES[0], DATES[0])
    assert report.files["silver"][0].is_relative_to(embedded_defaults / "data" / "lake")
    assert (embedded_defaults / "data" / "production.db").is_file()

import hashlib
import json
import shutil

import pandas as pd
import pytest

from production.data import (
    DIRTY_KINDS,
    build_gold,
    deduplicate_transactions,
    export_raw_days,
    lake_path,
    pipeline,
    raw_path,
    read_lake,
    read_raw_transactions,
    run_pipeline,
    split_checked,
    validate_transactions,
)
from production.data.lake import read_raw_dimension
from production.data.steps import BRONZE_COLUMNS, CHECKED_COLUMNS, GOLD_COLUMNS, SILVER_COLUMNS
from production.db import get_engine, read_table
from production.simulate import simulate_profiles

SOURCE = {"n_customers": 60, "n_terminals": 20, "n_days": 5, "random_state": 7}
DATES = [f"2026-01-0{d}" for d in range(1, 6)]
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
    root = tmp_path_factory.mktemp("landed")
    return root, export_raw_days(**SOURCE, dirty_rate=0.02, data_dir=root)


@pytest.fixture
def lake(landed, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(landed[0] / "raw", root / "raw")
    return root


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{(tmp_path / 'test.db').as_posix()}")


def _snapshot(root, rejected=True):
    paths = [p for layer in ("silver", "gold") for p in (root / "lake" / layer).rglob("*.parquet")]
    paths += list((root / "rejected").rglob("*.csv")) if rejected else []
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def _run(root, start=DATES[0], end=DATES[2], **kwargs):
    kwargs.setdefault("load", False)
    return run_pipeline(start, end, data_dir=root, show_progress=False, **kwargs)


def _accounted(report):
    counts = report.counts
    return (
        counts["raw_rows"] == counts[["silver_rows", "rejected_rows", "late_rows"]].sum(axis=1)
    ).all()


# --------------------------------------------------------------------------- the source


def test_export_is_deterministic_and_chunkable(landed, tmp_path):
    root, export = landed
    again = export_raw_days(**SOURCE, dirty_rate=0.02, data_dir=tmp_path / "a")
    export_raw_days(**SOURCE, dirty_rate=0.02, end_day=2, data_dir=tmp_path / "b")
    export_raw_days(**SOURCE, dirty_rate=0.02, start_day=2, data_dir=tmp_path / "b")
    for path in export.transaction_files:
        for other in ("a", "b"):
            assert (
                tmp_path / other / "raw" / "transactions" / path.name
            ).read_bytes() == path.read_bytes()
    pd.testing.assert_frame_equal(again.injected, export.injected)
    assert set(export.injected["kind"]) == set(DIRTY_KINDS)


def test_export_writes_the_dirt_it_reports(landed):
    _, export = landed
    files = {
        p.name: read_raw_transactions(p).set_index("source_row") for p in export.transaction_files
    }
    for record in export.injected.itertuples():
        value = files[record.source_file].at[record.source_row, record.column]
        assert ("" if pd.isna(value) else value) == record.value


def test_dimension_files_round_trip(landed):
    customers, terminals = simulate_profiles(60, 20, 7)
    path = raw_path(table="customers", data_dir=landed[0])
    pd.testing.assert_frame_equal(
        read_raw_dimension(path, "customers"), customers, check_exact=True
    )
    path = raw_path(table="terminals", data_dir=landed[0])
    pd.testing.assert_frame_equal(read_raw_dimension(path, "terminals"), terminals)


# --------------------------------------------------------------------------- raw files (issue 11, item 11)

HEADER = "transaction_id,tx_datetime,customer_id,terminal_id,amount,merchant_category,channel,is_fraud,fraud_scenario,label_available_at"
ROW = "{},2026-01-02 10:00:00,1,2,12.50,grocery,chip,0,0,2026-01-09 10:00:00"


def _write(tmp_path, *lines, name="date=2026-01-02.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bronze_keeps_text_and_lineage(tmp_path):
    bronze = read_raw_transactions(_write(tmp_path, HEADER, ROW.format(1).replace("12.50", "N/A")))
    assert list(bronze.columns) == [*BRONZE_COLUMNS, "ingested_at"]
    assert bronze.at[0, "amount"] == "N/A" and bronze.at[0, "source_row"] == 1
    assert bronze.at[0, "file_date"] == pd.Timestamp("2026-01-02")


def test_duplicate_header_column_is_named(tmp_path):
    path = _write(tmp_path, HEADER + ",amount", ROW.format(1) + ",3")
    with pytest.raises(ValueError, match=r"date=2026-01-02\.csv.*repeats column\(s\) \['amount'\]"):
        read_raw_transactions(path)


@pytest.mark.parametrize(("newline", "last"), [("\n", "\n"), ("\n", ""), ("\r\n", "\r\n")])
def test_blank_lines_do_not_shift_source_row(tmp_path, newline, last):
    lines = [HEADER, ROW.format(1), "", "", ROW.format(2), "", ROW.format(3)]
    path = tmp_path / "date=2026-01-02.csv"
    path.write_bytes((newline.join(lines) + last).encode())
    bronze = read_raw_transactions(path)
    assert bronze["source_row"].tolist() == [1, 4, 6]
    assert bronze["transaction_id"].tolist() == ["1", "2", "3"]


def test_a_ragged_line_is_rejected_with_its_row(tmp_path):
    lines = [ROW.format(i) for i in range(1, 6)]
    lines[2] = "3,2026-01-02 10:00:00,1"
    path = _write(tmp_path, HEADER, lines[0], "", *lines[1:])
    checked = validate_transactions(read_raw_transactions(path))
    rejected = checked[checked["reject_reason"].notna()]
    assert rejected["source_row"].tolist() == [4]
    assert rejected["reject_reason"].iloc[0] == "expected 10 fields, got 3"
    assert checked["reject_reason"].isna().sum() == 4


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("date=2026-01-02.csv", "", ValueError, "has no column"),
        ("date=2026-01-02.csv", HEADER, ValueError, "no data rows"),
        (
            "date=2026-01-02.csv",
            HEADER.replace("amount", "amt"),
            ValueError,
            r"no column\(s\) \['amount'\]",
        ),
        ("2026-01-02.csv", HEADER, ValueError, "must be named"),
        ("date=2026-02-30.csv", HEADER, ValueError, "must be named"),
    ],
)
def test_bad_raw_files_are_named(tmp_path, name, content, error, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(error, match=match):
        read_raw_transactions(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_raw_transactions(tmp_path / "date=2026-03-01.csv")


def test_bad_dimension_value_names_file_column_and_row(lake):
    path = raw_path(table="customers", data_dir=lake)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "1e9", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"customers\.csv.*column 'x_location', row 3"):
        read_raw_dimension(path, "customers")


# --------------------------------------------------------------------------- pure steps


def _bronze(**changes):
    row = dict(zip(HEADER.split(","), ROW.format(7).split(","), strict=True))
    frame = pd.DataFrame([row, {**row, "transaction_id": "8", **changes}], dtype="str")
    frame["parse_error"] = pd.Series([None, None], dtype="str")
    frame["source_file"] = "date=2026-01-02.csv"
    frame["source_row"] = [1, 2]
    frame["file_date"] = pd.Timestamp("2026-01-02")
    return frame


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"amount": "12,50"}, "amount", "not a number"),
        ({"amount": "-1.0"}, "amount", "must be > 0"),
        ({"amount": "2000000"}, "amount", "must be <= 1e6"),
        ({"channel": None}, "channel", "missing value"),
        ({"merchant_category": "GROCERY"}, "merchant_category", "not one of"),
        ({"tx_datetime": "2026-02-30 10:00:00"}, "tx_datetime", "not a valid date-time"),
        ({"tx_datetime": "2025-12-30 10:00:00"}, "tx_datetime", "not on the file's date"),
        (
            {"label_available_at": "2026-01-01 00:00:00"},
            "label_available_at",
            "label_available_at before",
        ),
        ({"customer_id": "99"}, "customer_id", "unknown customer_id"),
    ],
)
def test_each_rule_rejects_with_column_and_reason(changes, column, reason):
    customers = pd.DataFrame({"customer_id": [1, 3]})
    checked = validate_transactions(_bronze(**changes), customers=customers)
    assert list(checked.columns) == list(CHECKED_COLUMNS)
    assert checked["reject_reason"].isna().tolist() == [True, False]
    assert checked.at[1, "reject_column"] == column
    assert checked.at[1, "reject_reason"].startswith(reason)


def test_a_late_row_keeps_its_true_date():
    checked = validate_transactions(_bronze(tx_datetime="2026-01-01 23:00:00"))
    assert checked["reject_reason"].isna().all()
    assert checked["tx_date"].tolist() == [pd.Timestamp("2026-01-02"), pd.Timestamp("2026-01-01")]
    assert checked["arrived_late"].tolist() == [False, True]


def test_duplicates_are_rejected_once_exact_or_conflicting():
    bronze = pd.concat([_bronze(), _bronze(amount="99.0")], ignore_index=True)
    bronze["source_row"] = [1, 2, 3, 4]
    checked = deduplicate_transactions(validate_transactions(bronze))
    reasons = checked["reject_reason"].tolist()
    assert checked["reject_reason"].isna().tolist() == [True, True, False, False]
    assert reasons[2] == "exact duplicate of date=2026-01-02.csv row 1"
    assert reasons[3] == "transaction_id already used by date=2026-01-02.csv row 2"


def test_split_sends_every_row_somewhere():
    bronze = _bronze(tx_datetime="2026-01-01 23:00:00", amount="oops")
    bronze = pd.concat([bronze, _bronze(tx_datetime="2026-01-01 22:00:00")], ignore_index=True)
    bronze["transaction_id"] = ["1", "2", "3", "4"]
    silver, rejected, late = split_checked(
        validate_transactions(bronze), [pd.Timestamp("2026-01-02")]
    )
    assert list(silver.columns) == list(SILVER_COLUMNS)
    assert (len(silver), len(rejected), len(late)) == (2, 1, 1)
    assert late.at[0, "date"] == pd.Timestamp("2026-01-01") and late.at[0, "transaction_id"] == 4


def test_gold_names_unknown_ids():
    silver, _, _ = split_checked(validate_transactions(_bronze()), [pd.Timestamp("2026-01-02")])
    customers, terminals = simulate_profiles(60, 20, 7)
    assert list(build_gold(silver, customers, terminals).columns) == list(GOLD_COLUMNS)
    with pytest.raises(ValueError, match=r"customer_id\(s\) \[1\] not found in customers"):
        build_gold(silver, customers[customers["customer_id"] != 1], terminals)


# --------------------------------------------------------------------------- the pipeline


def test_every_dirty_record_is_reported_with_its_reason(lake, landed):
    report = _run(lake, end=DATES[3])
    injected = landed[1].injected
    injected = injected[injected["kind"] != "late"].merge(
        report.rejected, on=["source_file", "source_row"], how="left"
    )
    injected = injected[injected["source_file"] != "date=2026-01-05.csv"]
    assert injected["reason"].notna().all()
    for kind, pattern in EXPECTED_REASON.items():
        assert injected.loc[injected["kind"] == kind, "reason"].str.match(pattern).all(), kind


def test_rows_are_accounted_for_day_by_day_and_at_once(lake, tmp_path):
    """Issue 11, item 7: raw = silver + rejected + late, and late rows are named."""
    at_once = _run(lake, end=DATES[3])
    assert _accounted(at_once) and at_once.late.empty  # the first simulated day has no late rows
    one_by_one = tmp_path / "daily"
    shutil.copytree(lake / "raw", one_by_one / "raw")
    for day in DATES[:4]:
        report = _run(one_by_one, start=day, end=day)
        assert _accounted(report)
        assert report.total("late_rows") == len(report.late)
        if day != DATES[0]:
            assert set(report.late["date"]) == {pd.Timestamp(day) - pd.Timedelta(days=1)}
            assert f"late (of ['{pd.Timestamp(day) - pd.Timedelta(days=1):%Y-%m-%d}']" in repr(
                report
            )
        assert report.total("late_rows") > 0 or day == DATES[0]
    assert _snapshot(one_by_one, rejected=False) == _snapshot(lake, rejected=False)


def test_late_rows_move_to_their_day(lake):
    report = _run(lake)
    silver = read_lake("silver", data_dir=lake)
    late = silver[silver["arrived_late"]]
    assert len(late) and (late["tx_date"] < pd.to_datetime(late["source_file"].str[5:15])).all()
    assert report.total("gold_rows") == len(silver)
    assert not silver.duplicated(["tx_date", "transaction_id"]).any()


def test_rerun_is_idempotent_and_loads_the_database(lake, engine):
    first = _run(lake, load=True, engine=engine, table_prefix="t_")
    files = _snapshot(lake)
    rows = read_table("t_transactions", engine=engine)
    again = _run(lake, load=True, engine=engine, table_prefix="t_")
    assert _snapshot(lake) == files
    pd.testing.assert_frame_equal(again.counts, first.counts)
    pd.testing.assert_frame_equal(read_table("t_transactions", engine=engine), rows)
    assert len(rows) == first.total("gold_rows")
    assert again.tables == {"t_customers": 60, "t_terminals": 20, "t_transactions": len(rows)}


def test_pandas_and_dask_write_identical_layers(lake):
    pandas_report = _run(lake, end=DATES[3])
    files = _snapshot(lake)
    dask_report = _run(lake, end=DATES[3], backend="dask")
    assert _snapshot(lake) == files
    for name in ("counts", "rejected", "late"):
        pd.testing.assert_frame_equal(getattr(pandas_report, name), getattr(dask_report, name))


def test_dask_honours_the_scheduler_address(lake, monkeypatch):
    distributed = pytest.importorskip("distributed")
    expected = _run(lake)
    with distributed.LocalCluster(
        n_workers=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        report = _run(lake, backend="dask")
        assert "build_day" in cluster.scheduler.task_prefixes
    pd.testing.assert_frame_equal(report.rejected, expected.rejected)


# --------------------------------------------------------------------------- crashes (issue 11, item 9)


def test_a_crash_while_publishing_leaves_a_marker_until_repaired(lake, monkeypatch):
    def crash(staging, root):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(pipeline, "_publish", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(lake)
    marker = lake / ".staging" / "unfinished.json"
    assert json.loads(marker.read_text()) == {"start": DATES[0], "end": DATES[2]}
    assert not list((lake / ".staging").glob("run-*"))
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match=r"2026-01-01\.\.2026-01-03 did not finish"):
        _run(lake, start=DATES[1], end=DATES[1])
    _run(lake, end=DATES[3])  # covers the unfinished dates: repairs
    assert not marker.exists()
    assert lake_path("gold", date=DATES[0], data_dir=lake).is_file()


def test_stale_staging_is_removed_and_the_lock_is_exclusive(lake):
    stale = lake / ".staging" / "run-deadbeef"
    (stale / "lake").mkdir(parents=True)
    _run(lake, end=DATES[0])
    assert not stale.exists()
    lock = pipeline.locket.lock_file(str(lake / ".staging" / "lock"))
    with lock, pytest.raises(RuntimeError, match="another run holds"):
        _run(lake, end=DATES[0])


def test_a_failed_load_publishes_nothing(lake, engine, monkeypatch):
    def fail(*args, **kwargs):
        raise ConnectionError("database down")

    monkeypatch.setattr(pipeline, "write_table", fail)
    with pytest.raises(ConnectionError):
        _run(lake, load=True, engine=engine)
    assert not (lake / "lake").exists()


# --------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "spark"}, "backend"),
        ({"table_prefix": "1bad"}, "table_prefix"),
        ({"load": "yes"}, "load"),
        ({"start": "2026-01-03", "end": "2026-01-01"}, "before start_date"),
        ({"start": "not a date"}, "start_date"),
    ],
)
def test_bad_parameters_are_named(lake, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(lake, **kwargs)


def test_missing_days_and_bad_exports_are_named(lake, tmp_path):
    with pytest.raises(FileNotFoundError, match="export_raw_days"):
        _run(lake, end="2026-01-09")
    with pytest.raises(ValueError, match="dirty_rate"):
        export_raw_days(dirty_rate=0.5, data_dir=tmp_path)
    with pytest.raises(ValueError, match="layer"):
        lake_path("platinum")
    with pytest.raises(FileNotFoundError, match="run run_pipeline first"):
        read_lake("gold", data_dir=tmp_path)


def test_default_data_dir_is_the_configured_one(embedded_defaults, monkeypatch, landed):
    monkeypatch.setenv("PRODUCTION_DATA_DIR", str(landed[0]))
    assert raw_path("2026-01-01") == landed[0] / "raw" / "transactions" / "date=2026-01-01.csv"

"""The pipeline's pure steps: DataFrames in, DataFrames out, no files, no database.

bronze -> :func:`validate_transactions` -> :func:`deduplicate_transactions` ->
:func:`split_checked` (silver, rejected, late) -> :func:`build_gold`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandera.errors import SchemaErrors
from pandera.pandas import Check, Column, DataFrameSchema

from production._validation import InvalidParameterError, check_frame
from production.simulate import (
    CHANNELS,
    CUSTOMER_COLUMNS,
    FRAUD_SCENARIOS,
    MERCHANT_CATEGORIES,
    TERMINAL_COLUMNS,
    TRANSACTION_COLUMNS,
)

STR, NS = "str", "datetime64[ns]"
MAX_AMOUNT = 1_000_000.0
RAW_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
REGIONS = ("south_west", "south_east", "north_west", "north_east")
ONE_DAY = pd.Timedelta(days=1)
#: Columns of a bronze frame: every raw value as text, then lineage.
BRONZE_COLUMNS = (*TRANSACTION_COLUMNS, "parse_error", "source_file", "source_row", "file_date")
_TYPES = "int64 datetime64[ns] int64 int64 float64 str str int8 int8 datetime64[ns]".split()
#: Silver transactions: typed as :func:`production.simulate.simulate` types them, plus lineage.
SILVER_DTYPES = dict(zip(TRANSACTION_COLUMNS, _TYPES, strict=True))
SILVER_DTYPES |= {"tx_date": NS, "arrived_late": "bool", "source_file": STR, "source_row": "int64"}
SILVER_COLUMNS = tuple(SILVER_DTYPES)
GOLD_DTYPES = dict(zip(TRANSACTION_COLUMNS, _TYPES, strict=True)) | {"tx_date": NS}
GOLD_DTYPES |= {"tx_hour": "int8", "tx_weekday": "int8", "home_region": STR}
GOLD_DTYPES |= {"terminal_region": STR, "distance_to_terminal": "float64"}
GOLD_COLUMNS = tuple(GOLD_DTYPES)
#: Columns of :func:`validate_transactions`' result.
CHECKED_COLUMNS = (*SILVER_COLUMNS, "file_date", "reject_column", "reject_reason", "reject_value")
#: The rejected-records report: one row per rejected raw row, dated by its file.
REJECTED_COLUMNS = ("date", "source_file", "source_row", "column", "reason", "value")
#: Late rows a run does not load: ``date`` is their day, before the run's range.
LATE_COLUMNS = ("date", "source_file", "source_row", "transaction_id")
_FLOATS = ["float64"] * 5
DIMENSION_DTYPES = {
    "customers": dict(zip(CUSTOMER_COLUMNS, ["int64", *_FLOATS, STR], strict=True)),
    "terminals": dict(zip(TERMINAL_COLUMNS, ["int64", *_FLOATS[:2], STR, STR], strict=True)),
}
DIMENSION_KEYS = {"customers": "customer_id", "terminals": "terminal_id"}

_PATTERNS = {"int64": r"[0-9]{1,18}", "float64": r"-?[0-9]{1,15}(\.[0-9]+)?(e[-+]?[0-9]{1,3})?"}
_PATTERNS[NS] = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
_MALFORMED = {"int64": "not an integer", "float64": "not a number with '.' as the decimal point"}
_MALFORMED[NS] = "not a valid date-time 'YYYY-MM-DD HH:MM:SS'"
_WINDOW = "not on the file's date or the day before"
_LABEL = "label_available_at before tx_datetime"


def _parse(raw: pd.Series, dtype: str) -> pd.Series:
    """Parse raw text as ``dtype`` (ints as nullable Int64); malformed values become NA."""
    text = raw.astype(STR)
    if dtype == STR:
        return text
    text = text.where(text.str.fullmatch(_PATTERNS.get(dtype, _PATTERNS["int64"])).fillna(False))
    if dtype == "float64":
        return text.astype("double[pyarrow]").astype("float64")  # faster than direct
    if dtype == NS:
        return pd.to_datetime(text, format="ISO8601", errors="coerce").astype(NS)  # shape checked
    return text.astype("Int64")


def _on_file_day(frame: pd.DataFrame) -> pd.Series:
    """Whether each row's true date is missing, its file's date or the day before."""
    day, file_day = frame["tx_date"], frame["file_date"]
    return day.isna() | day.between(file_day - ONE_DAY, file_day)


def transaction_schema(customer_ids=None, terminal_ids=None, *, silver=False) -> DataFrameSchema:
    """Return the pandera rules of a transaction (ids checked against the given ones).

    ``silver=False``: on nullable ints, plus "on the file's date or the day before".
    """
    ge0 = Check.ge(0, error="must be >= 0")
    amount = [Check.gt(0, error="must be > 0"), Check.le(MAX_AMOUNT, error="must be <= 1e6")]
    checks = {"transaction_id": [ge0], "customer_id": [ge0], "terminal_id": [ge0], "amount": amount}
    for column, known in (("customer_id", customer_ids), ("terminal_id", terminal_ids)):
        if known is not None:
            ids = pd.Index(np.unique(np.asarray(known)))
            checks[column].append(Check(lambda s, a=ids: s.isin(a), error=f"unknown {column}"))
    allowed = dict(merchant_category=MERCHANT_CATEGORIES, channel=CHANNELS, is_fraud=[0, 1])
    allowed["fraud_scenario"] = FRAUD_SCENARIOS
    checks |= {c: [Check.isin(list(v), error=f"not one of {list(v)}")] for c, v in allowed.items()}
    wide = [Check(lambda f: ~(f["label_available_at"] < f["tx_datetime"]), error=_LABEL)]
    wide += [] if silver else [Check(_on_file_day, error=_WINDOW)]
    dtypes = {c: SILVER_DTYPES[c] for c in TRANSACTION_COLUMNS}
    if not silver:  # before the checks, ints are nullable
        dtypes |= {c: "Int64" for c, dtype in dtypes.items() if dtype.startswith("int")}
    columns = {c: Column(dtype, checks.get(c, [])) for c, dtype in dtypes.items()}
    return DataFrameSchema(columns, checks=wide)


#: The rules of silver transactions, on their typed columns.
SILVER_TRANSACTIONS_SCHEMA = transaction_schema(silver=True)


def _reasons(schema: DataFrameSchema, typed: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Return, per failing row, its ``"; "``-joined columns, reasons and raw values."""
    names = ["reject_column", "reject_reason", "reject_value"]
    try:
        schema.validate(typed, lazy=True)
        return pd.DataFrame(columns=names)
    except SchemaErrors as err:
        cases = err.failure_cases
    if cases["index"].isna().any():  # a dtype or a column is wrong: a bug, not a dirty row
        raise TypeError(f"schema violated by the whole frame:\n{cases.to_string()}")
    wide = cases["schema_context"] == "DataFrameSchema"
    where = {_WINDOW: "tx_datetime", _LABEL: "label_available_at"}
    cases.loc[wide, "column"] = cases.loc[wide, "check"].map(where)
    cases = cases[["index", "column", "check"]].drop_duplicates().astype({"index": "int64"})
    order = cases["column"].map(TRANSACTION_COLUMNS.index)
    cases = cases.assign(order=order).sort_values(["index", "order"])
    rows = cases.groupby("column")["index"]
    cases["value"] = pd.concat([raw[c].take(r).set_axis(r.index) for c, r in rows]).fillna("")
    malformed = cases["column"].map(lambda c: _MALFORMED.get(SILVER_DTYPES[c], ""))
    nulls = cases["check"] == "not_nullable"
    cases.loc[nulls, "check"] = malformed.where(cases["value"] != "", "missing value")[nulls]
    cases = cases.rename(columns=dict(zip(["column", "check", "value"], names, strict=True)))
    several = cases["index"].duplicated(keep=False)  # rare: join a row's problems with "; "
    joined = cases[several].groupby("index")[names].agg("; ".join)
    return pd.concat([cases[~several].set_index("index")[names], joined])


def validate_transactions(bronze: pd.DataFrame, *, customers=None, terminals=None) -> pd.DataFrame:
    """Type every bronze row and check it against :func:`transaction_schema`.

    Parameters
    ----------
    bronze : pandas.DataFrame
        Columns :data:`BRONZE_COLUMNS`, values as text; rows with ``parse_error`` are rejected.
    customers, terminals : pandas.DataFrame, optional
        Dimensions whose ``customer_id`` / ``terminal_id`` a row must reference.

    Returns
    -------
    pandas.DataFrame
        :data:`CHECKED_COLUMNS`: typed values (NA if unparsable), lineage and, if rejected,
        ``reject_column``, ``reject_reason`` and the raw ``reject_value``.
    """
    where = "validate_transactions"
    check_frame(
        bronze, where, name="bronze", columns=BRONZE_COLUMNS, datetime_columns=["file_date"]
    )
    ids = {}
    for name, frame in (("customers", customers), ("terminals", terminals)):
        if frame is not None:
            check_frame(frame, where, name=name, columns=[DIMENSION_KEYS[name]])
            ids[name] = frame[DIMENSION_KEYS[name]].to_numpy()
    raw = bronze.reset_index(drop=True)
    checked = pd.DataFrame({c: _parse(raw[c], SILVER_DTYPES[c]) for c in TRANSACTION_COLUMNS})
    checked["tx_date"] = checked["tx_datetime"].dt.normalize()
    checked["arrived_late"] = (checked["tx_date"] < raw["file_date"]).to_numpy(dtype=bool)
    lineage = raw[["source_file", "source_row", "file_date"]]
    checked = checked.join(lineage.astype({"source_file": STR, "source_row": "int64"}))
    schema = transaction_schema(ids.get("customers"), ids.get("terminals"))
    reasons = _reasons(schema, checked, raw).reindex(checked.index)
    ragged = raw["parse_error"].notna()
    reasons.loc[ragged, ["reject_column", "reject_value"]] = ["(row)", ""]
    reasons.loc[ragged, "reject_reason"] = raw.loc[ragged, "parse_error"]
    return checked.join(reasons.astype(STR))


def deduplicate_transactions(checked: pd.DataFrame) -> pd.DataFrame:
    """Reject repeats of ``(tx_date, transaction_id)`` among the accepted checked rows.

    The first (by file date, row) is kept; a later one is an *exact duplicate* or a reuse.
    """
    check_frame(checked, "deduplicate_transactions", name="checked", columns=CHECKED_COLUMNS)
    keys = ["tx_date", "transaction_id"]
    accepted = checked.loc[checked["reject_reason"].isna(), [*keys, "file_date", "source_row"]]
    accepted = accepted.sort_values(["file_date", "source_row"], kind="stable")
    group = checked.loc[accepted.index[accepted.duplicated(keys, keep=False)]]  # few rows
    later = group.duplicated(keys, keep="first")
    repeats = group[later].merge(group[~later], on=keys, how="left", suffixes=("", "_kept"))
    repeats.index = group.index[later]
    same = [repeats[c].eq(repeats[c + "_kept"]).fillna(False) for c in TRANSACTION_COLUMNS[1:]]
    kept = repeats["source_file_kept"] + " row " + repeats["source_row_kept"].astype(STR)
    exact = np.logical_and.reduce(same)
    result = checked.copy(deep=False)  # copy-on-write: only the changed columns are copied
    result.loc[repeats.index, "reject_column"] = "transaction_id"
    reason = np.where(exact, "exact duplicate of ", "transaction_id already used by ") + kept
    result.loc[repeats.index, "reject_reason"] = reason
    result.loc[repeats.index, "reject_value"] = repeats["transaction_id"].astype(STR)
    return result


def assemble_day(current: pd.DataFrame, following, day, *, first: bool = False) -> pd.DataFrame:
    """Return the Dask runner's partition of ``day``: checked rows of its file and the next.

    Accepted rows of ``current`` from the day before go to that day (or, if ``first``, are
    late); of ``following`` (None: not landed) only the accepted rows of ``day`` are taken.
    """
    since = day - ONE_DAY if first else day
    parts = [current[current["reject_reason"].notna() | (current["tx_date"] >= since)]]
    if following is not None:
        accepted = following["reject_reason"].isna()
        parts.append(following[accepted & (following["tx_date"] == day)])
    return pd.concat(parts, ignore_index=True)


def split_checked(checked: pd.DataFrame, dates):
    """Split deduplicated checked rows of a run over ``dates``: silver, rejected, late.

    ``silver``: accepted rows of ``dates`` (by ``tx_date``); ``rejected``: rejected rows of
    the files of ``dates``; ``late``: accepted rows of those files from other days.
    """
    days = pd.DatetimeIndex(dates).astype(NS)
    accepted, ours = checked["reject_reason"].isna(), checked["file_date"].isin(days)
    in_days = checked["tx_date"].isin(days)
    silver = checked.loc[accepted & in_days, list(SILVER_COLUMNS)].astype(SILVER_DTYPES)
    silver = silver.sort_values(["tx_datetime", "transaction_id"], ignore_index=True)
    columns = ["file_date", "source_file", "source_row", *CHECKED_COLUMNS[-3:]]
    rejected = checked.loc[~accepted & ours, columns].set_axis(list(REJECTED_COLUMNS), axis=1)
    late = checked.loc[accepted & ours & ~in_days, ["tx_date", *LATE_COLUMNS[1:]]]
    late = late.set_axis(list(LATE_COLUMNS), axis=1).astype({"transaction_id": "int64"})
    order = ["date", "source_file", "source_row"]
    rejected, late = (f.sort_values(order, ignore_index=True) for f in (rejected, late))
    return silver, rejected, late


def build_gold(silver: pd.DataFrame, customers: pd.DataFrame, terminals: pd.DataFrame):
    """Join silver with the dimensions: the table features are built from.

    Adds ``tx_hour``, ``tx_weekday`` (Monday = 0), ``home_region``, ``terminal_region``,
    ``distance_to_terminal``. Raises InvalidParameterError naming a missing column or id.
    """
    check_frame(silver, "build_gold", name="silver", columns=SILVER_COLUMNS)
    found = {}
    for name, frame in (("customers", customers), ("terminals", terminals)):
        check_frame(frame, "build_gold", name=name, columns=DIMENSION_DTYPES[name])
        key = DIMENSION_KEYS[name]
        rows = pd.Index(frame[key]).get_indexer(silver[key])
        if (rows < 0).any():
            unknown = sorted(silver.loc[rows < 0, key].unique().tolist())[:10]
            raise InvalidParameterError(f"build_gold: {key}(s) {unknown} not found in {name}")
        found[name] = frame.take(rows).reset_index(drop=True)
    people, places = found["customers"], found["terminals"]
    gold = silver.reset_index(drop=True)
    gold["tx_hour"] = gold["tx_datetime"].dt.hour
    gold["tx_weekday"] = gold["tx_datetime"].dt.day_of_week
    gold["home_region"] = people["home_region"]
    gold["terminal_region"] = places["region"]
    dx, dy = (people[c] - places[c] for c in ("x_location", "y_location"))
    gold["distance_to_terminal"] = np.hypot(dx, dy)
    return gold[list(GOLD_COLUMNS)].astype(GOLD_DTYPES)


def validate_dimension(text: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Type a dimension given as text; raise ValueError naming ``source``, column and row."""
    dtypes = DIMENSION_DTYPES[table]
    frame = pd.DataFrame({c: _parse(text[c], d) for c, d in dtypes.items()})
    checks = {c: Check.ge(0) for c in ("customer_id", "terminal_id", "std_amount")}
    checks |= {c: Check.in_range(0, 100) for c in ("x_location", "y_location")}
    checks |= {"mean_amount": Check.gt(0), "mean_tx_per_day": Check.ge(0)}
    checks |= {c: Check.isin(REGIONS) for c in ("home_region", "region")}
    checks["merchant_category"] = Check.isin(MERCHANT_CATEGORIES)
    key = DIMENSION_KEYS[table]
    schema = DataFrameSchema({c: Column(None, checks[c], unique=c == key) for c in dtypes})
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        first, n = err.failure_cases.iloc[0], len(err.failure_cases)
        column, row = first["column"], int(first["index"])
        raise ValueError(
            f"{source}: column {column!r}, row {row + 1}: expected {dtypes[column]} meeting "
            f"{first['check']}; got {text[column].iloc[row]!r} ({n} problem(s) in all)"
        ) from None
    return frame.astype(dtypes)

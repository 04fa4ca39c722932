"""Features of the fraud model: point-in-time windowed features and the model pipeline. Pure.

Point-in-time rules: the window of a transaction at ``t`` holds the other transactions with
``t - w <= tx_datetime < t`` (strictly before), and a label counts only once known,
``label_available_at <= t``. :func:`check_point_in_time` checks features against them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from production._validation import InvalidParameterError, check_frame, check_param, column_list

# isort: split
from production._validation import Instance, Interval, OneOf, as_timestamp, validate_params

__all__ = [
    "CUSTOMER_WINDOWS",
    "TERMINAL_WINDOWS",
    "NUMERIC_FEATURES",
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "LeakageError",
    "LeakageWarning",
    "report_leaks",
    "compute_windowed_features",
    "compute_model_features",
    "as_known_at",
    "check_point_in_time",
    "build_preprocessor",
    "build_pipeline",
]

#: Customer windows, in days.
CUSTOMER_WINDOWS = (1, 7, 30)
#: Terminal windows, in days (a compromised terminal stays so for 28 days).
TERMINAL_WINDOWS = (28,)
#: Numeric model inputs: row values, then the windowed features.
NUMERIC_FEATURES = (
    ("amount", "tx_hour", "tx_weekday")
    + tuple(f"customer_{k}_{w}d" for w in CUSTOMER_WINDOWS for k in ("tx_count", "amount_mean"))
    + tuple(
        f"terminal_{k}_{w}d"
        for w in TERMINAL_WINDOWS
        for k in ("tx_count", "fraud_count", "fraud_rate")
    )
)
#: Categorical model inputs.
CATEGORICAL_FEATURES = ("merchant_category", "channel")
#: Every column :func:`compute_model_features` returns, in order.
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES

_CUSTOMER_COLUMNS = ["customer_id", "tx_datetime", "amount"]
_TERMINAL_COLUMNS = ["terminal_id", "tx_datetime", "is_fraud", "label_available_at"]
_INPUTS = list(dict.fromkeys(_CUSTOMER_COLUMNS + _TERMINAL_COLUMNS))
_TIMES = ["tx_datetime", "label_available_at"]
_ON_LEAK = OneOf("raise", "warn", "ignore")


class LeakageError(ValueError):
    """A split or a feature uses information that was not available at prediction time."""


class LeakageWarning(UserWarning):
    """Warned instead of raising :class:`LeakageError` when ``on_leak="warn"``."""


def report_leaks(problems: Sequence[str], on_leak: str, what: str) -> None:
    """Raise :class:`LeakageError` (or warn, or not) listing ``problems``, if any.

    Parameters
    ----------
    problems : sequence of str
        One sentence per leak.
    on_leak : {"raise", "warn", "ignore"}
        What to do about them.
    what : str
        Start of the message, ``"<function>: <what leaked>"``.
    """
    check_param(on_leak, _ON_LEAK, "on_leak", what.split(":")[0])
    if not problems or on_leak == "ignore":
        return
    message = f"{what}: " + "; ".join(problems)
    if on_leak == "raise":
        raise LeakageError(message)
    warnings.warn(message, LeakageWarning, stacklevel=3)


def _as_windows(value, name: str, where: str) -> tuple[int, ...]:
    """Return an int or a non-empty sequence of ints >= 1 (days) as a tuple of distinct ints."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    for v in values or [None]:  # an empty sequence is reported as a missing window
        check_param(v, Interval(int, 1, None), name, where)
    return tuple(dict.fromkeys(int(v) for v in values))


def _customer_block(frame: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    """Count and mean amount of each customer's earlier transactions (whole customers)."""
    ordered = frame.sort_values(["customer_id", "tx_datetime"], kind="stable")
    ordered = ordered.assign(amount=ordered["amount"].astype("float64"))
    grouped = ordered.groupby("customer_id", sort=False)  # groups in ``ordered`` order
    out = pd.DataFrame(index=ordered.index)
    for w in windows:
        rolling = grouped.rolling(f"{w}D", on="tx_datetime", closed="left")["amount"]
        out[f"customer_tx_count_{w}d"] = rolling.count().fillna(0).to_numpy().astype("int64")
        out[f"customer_amount_mean_{w}d"] = rolling.mean().to_numpy()
    return out.loc[frame.index]


def _terminal_block(frame: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    """Count transactions, known frauds and the known fraud rate at each terminal, per window."""
    # transaction j enters at tx_j + 1 ns, its label at label_j, both leave at tx_j + w + 1 ns
    t = frame["tx_datetime"].to_numpy("datetime64[ns]")
    label_at = frame["label_available_at"].to_numpy("datetime64[ns]")
    fraud = frame["is_fraud"].to_numpy("float64")
    terminal = frame["terminal_id"].to_numpy()
    queries = pd.DataFrame({"terminal_id": terminal, "at": t, "row": np.arange(len(t))})
    queries = queries.sort_values("at", kind="stable")
    tick, zero = np.timedelta64(1, "ns"), np.zeros(len(t), dtype="int64")
    out = pd.DataFrame(index=frame.index)
    for w in windows:
        end = t + np.timedelta64(w, "D") + tick
        known = (label_at < end) & ~np.isnan(fraud)  # False for a missing label (NaT)
        k, f = known.astype("int64"), (known & (fraud == 1)).astype("int64")
        events = pd.DataFrame(
            {
                "terminal_id": np.tile(terminal, 3),
                "at": np.concatenate([t + tick, label_at, end]),
                "tx": np.concatenate([zero + 1, zero, zero - 1]),
                "fraud": np.concatenate([zero, f, -f]),
                "known": np.concatenate([zero, k, -k]),
            }
        )
        events = events.dropna(subset="at").sort_values("at", kind="stable")
        sums = events.groupby("terminal_id", sort=False)[["tx", "fraud", "known"]].cumsum()
        events = pd.concat([events[["terminal_id", "at"]], sums], axis=1)
        merged = pd.merge_asof(queries, events, on="at", by="terminal_id").sort_values("row")
        counts = merged[["tx", "fraud", "known"]].fillna(0).to_numpy("int64")
        rate = np.full(len(t), np.nan)
        np.divide(counts[:, 1], counts[:, 2], out=rate, where=counts[:, 2] > 0)
        out[f"terminal_tx_count_{w}d"] = counts[:, 0]
        out[f"terminal_fraud_count_{w}d"] = counts[:, 1]
        out[f"terminal_fraud_rate_{w}d"] = rate
    return out


def _check_transactions(transactions: pd.DataFrame, where: str) -> None:
    """Raise unless ``transactions`` has the columns, a unique index and labels after times."""
    check_frame(transactions, where, name="transactions", columns=_INPUTS, datetime_columns=_TIMES)
    early = transactions["label_available_at"] <= transactions["tx_datetime"]
    if not transactions.index.is_unique or early.any():
        raise InvalidParameterError(
            f"{where}: transactions must have a unique index (call reset_index(drop=True)) and "
            f"every label_available_at after its tx_datetime; {int(early.sum())} row(s) are not."
        )


@validate_params(backend=OneOf("pandas", "dask"), npartitions=Interval(int, 1, None))
def compute_windowed_features(
    transactions: pd.DataFrame,
    *,
    customer_windows: int | Sequence[int] = CUSTOMER_WINDOWS,
    terminal_windows: int | Sequence[int] = TERMINAL_WINDOWS,
    backend: str = "pandas",
    npartitions: int = 4,
) -> pd.DataFrame:
    """Compute the point-in-time customer and terminal windowed features.

    Over the other transactions with ``t - w <= tx_datetime < t``: the customer's count and
    mean amount; the terminal's count, frauds known at ``t`` and known fraud rate. Dask runs
    the same pandas code on whole customers (terminals) per partition: identical values.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Columns ``customer_id``, ``terminal_id``, ``tx_datetime``, ``amount``,
        ``is_fraud`` (NaN when unknown) and ``label_available_at`` (NaT when unknown,
        else after ``tx_datetime``); a unique index. Row order does not matter.
    customer_windows, terminal_windows : int or sequence of int, default=(1, 7, 30), (28,)
        Window lengths in days.
    backend : {"pandas", "dask"}, default="pandas"
        How to compute.
    npartitions : int, default=4
        Dask partitions (ignored by pandas).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``transactions``: customer columns, then terminal columns.

    Raises
    ------
    InvalidParameterError
        For a missing column, a duplicated index, a label known before its transaction.
    """
    where = "compute_windowed_features"
    customer_windows = _as_windows(customer_windows, "customer_windows", where)
    terminal_windows = _as_windows(terminal_windows, "terminal_windows", where)
    _check_transactions(transactions, where)
    if backend == "pandas":
        customer = _customer_block(transactions[_CUSTOMER_COLUMNS], customer_windows)
        terminal = _terminal_block(transactions[_TERMINAL_COLUMNS], terminal_windows)
        return pd.concat([customer, terminal], axis=1)
    import dask  # optional heavy dependency: only the Dask backend needs it
    import dask.dataframe as dd

    ddf = dd.from_pandas(transactions[_INPUTS], npartitions=npartitions, sort=False)
    parts = []
    for block, key, windows in (
        (_customer_block, "customer_id", customer_windows),
        (_terminal_block, "terminal_id", terminal_windows),
    ):
        meta = block(transactions[_INPUTS].iloc[:0], windows)
        parts.append(ddf.shuffle(on=key).map_partitions(block, windows, meta=meta))
    customer, terminal = dask.compute(*parts)
    return pd.concat([customer.loc[transactions.index], terminal.loc[transactions.index]], axis=1)


def compute_model_features(transactions: pd.DataFrame, *, backend: str = "pandas") -> pd.DataFrame:
    """Compute the model's input columns (:data:`FEATURE_COLUMNS`), point in time.

    Row columns (``tx_weekday``: Monday = 0) plus :func:`compute_windowed_features`. To score
    a day, pass that day and the 30 days before it (complete windows).

    Parameters
    ----------
    transactions : pandas.DataFrame
        Columns ``tx_datetime``, ``customer_id``, ``terminal_id``, ``amount``,
        ``merchant_category``, ``channel``, ``is_fraud`` and ``label_available_at``.
    backend : {"pandas", "dask"}, default="pandas"
        How to compute the windowed features (identical results).

    Returns
    -------
    pandas.DataFrame
        :data:`FEATURE_COLUMNS`, indexed like ``transactions``.

    Raises
    ------
    InvalidParameterError
        As :func:`compute_windowed_features`, naming a missing column.
    """
    needed = _INPUTS + list(CATEGORICAL_FEATURES)
    check_frame(transactions, "compute_model_features", name="transactions", columns=needed)
    windowed = compute_windowed_features(transactions[needed], backend=backend)
    when = transactions["tx_datetime"]
    rows = pd.DataFrame(
        {
            "amount": transactions["amount"].astype("float64"),
            "tx_hour": when.dt.hour.astype("float64"),
            "tx_weekday": when.dt.day_of_week.astype("float64"),
            "merchant_category": transactions["merchant_category"].astype(object),
            "channel": transactions["channel"].astype(object),
        },
        index=transactions.index,
    )
    return pd.concat([rows, windowed], axis=1)[list(FEATURE_COLUMNS)]


def as_known_at(transactions: pd.DataFrame, at) -> pd.DataFrame:
    """Return the data as known at a moment: past rows only, labels not yet known blanked.

    Parameters
    ----------
    transactions : pandas.DataFrame
        With ``tx_datetime`` and ``label_available_at``; labels unknown at ``at`` become NaN
        (``is_fraud``, ``fraud_scenario``) and NaT.
    at : str or datetime-like
        The moment, e.g. ``"2026-02-12 09:30"``.

    Returns
    -------
    pandas.DataFrame
        A copy of the rows with ``tx_datetime <= at``, index and order kept.

    Raises
    ------
    InvalidParameterError
        If a column is missing (named) or not datetime64, or ``at`` is not a time.
    """
    check_frame(transactions, "as_known_at", name="transactions", datetime_columns=_TIMES)
    at = as_timestamp(at, "at", "as_known_at")
    view = transactions.loc[transactions["tx_datetime"] <= at].copy()
    unknown = ~(view["label_available_at"] <= at)
    for col in [c for c in ("is_fraud", "fraud_scenario") if c in view.columns]:
        view[col] = view[col].astype("float64").mask(unknown)
    view["label_available_at"] = view["label_available_at"].mask(unknown)
    return view


@validate_params(compute_features=Instance(Callable), on_leak=_ON_LEAK)
def check_point_in_time(
    compute_features: Callable[[pd.DataFrame], pd.DataFrame],
    transactions: pd.DataFrame,
    cutoffs,
    *,
    on_leak: str = "raise",
) -> pd.DataFrame:
    """Check that features only use what was known when each transaction happened.

    For every cutoff ``T``, ``compute_features`` runs again on ``as_known_at(transactions, T)``:
    a point-in-time correct feature keeps every value.

    Parameters
    ----------
    compute_features : callable
        ``compute_features(frame) -> DataFrame`` of numeric features indexed like ``frame``.
    transactions : pandas.DataFrame
        All the data, with ``tx_datetime`` and ``label_available_at``.
    cutoffs : sequence of datetime-like
        Times ``T`` to check, e.g. ``["2026-01-20", "2026-02-12"]``.
    on_leak : {"raise", "warn", "ignore"}, default="raise"
        What to do when a feature changed.

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``n_checked``, ``n_changed`` and ``passed``.

    Raises
    ------
    InvalidParameterError
        If a parameter is invalid, ``cutoffs`` is empty, or ``compute_features`` does not
        return a DataFrame indexed like its input.
    LeakageError
        If a feature changed and ``on_leak="raise"``.
    """
    where = "check_point_in_time"
    cutoffs = [as_timestamp(c, "cutoffs", where) for c in np.atleast_1d(cutoffs)]
    if not cutoffs:
        raise InvalidParameterError(f"{where}: cutoffs is empty; give at least one time.")
    full = _features_of(compute_features, transactions)
    report = pd.DataFrame({"n_checked": 0, "n_changed": 0}, index=full.columns.astype(str))
    for cutoff in cutoffs:
        view = as_known_at(transactions, cutoff)
        then = _features_of(compute_features, view)[full.columns].to_numpy("float64")
        now = full.loc[view.index].to_numpy("float64")
        changed = ~np.isclose(then, now, rtol=1e-9, atol=0.0, equal_nan=True)
        report["n_checked"] += len(view)
        report["n_changed"] += changed.sum(axis=0)
    report = report.rename_axis("feature").assign(passed=report["n_changed"] == 0)
    problems = [
        f"{name} changed for {r.n_changed} of {r.n_checked} values"
        for name, r in report[~report["passed"]].iterrows()
    ]
    report_leaks(problems, on_leak, f"{where}: features use information from the future")
    return report


def _features_of(compute_features: Callable, frame: pd.DataFrame) -> pd.DataFrame:
    """Call ``compute_features(frame)``; raise unless it returns a DataFrame indexed like frame."""
    features = compute_features(frame)
    if not isinstance(features, pd.DataFrame) or not features.index.equals(frame.index):
        raise InvalidParameterError(
            "check_point_in_time: compute_features must return a DataFrame indexed like its "
            f"input. Got {type(features).__name__} instead."
        )
    return features


def build_preprocessor(numeric_cols, categorical_cols=()) -> ColumnTransformer:
    """Build the course's preprocessing step: impute and scale numbers, encode categories.

    Step names are API (grid keys such as ``"preprocess__num__impute__strategy"``). The
    output is dense: ``HistGradientBoostingClassifier`` refuses sparse input.

    Parameters
    ----------
    numeric_cols : str or sequence of str
        Columns imputed with their median, then standardised (``"num"``).
    categorical_cols : str or sequence of str, default=()
        Columns filled with ``"missing"``, then one-hot encoded (``"cat"``).

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted, with steps ``num`` (``impute``, ``scale``) and ``cat`` (``impute``, ``encode``).

    Raises
    ------
    InvalidParameterError
        If a column list is not a column name or a list of them.
    """
    numeric = column_list(numeric_cols, "numeric_cols", "build_preprocessor")
    categorical = column_list(categorical_cols, "categorical_cols", "build_preprocessor")
    # a column with no value yet (a fraud rate before any label) is kept, as 0: fixed width
    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    num = Pipeline([("impute", impute), ("scale", StandardScaler())])
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)])


def build_pipeline(preprocessor, model) -> Pipeline:
    """Chain a preprocessor and a model: ``Pipeline([("preprocess", ...), ("model", ...)])``.

    Parameters
    ----------
    preprocessor : transformer
        Typically :func:`build_preprocessor`'s ColumnTransformer.
    model : estimator
        E.g. ``HistGradientBoostingClassifier()``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; grid keys read ``"model__max_depth"``, ``"preprocess__num__impute__strategy"``.
    """
    return Pipeline([("preprocess", preprocessor), ("model", model)])

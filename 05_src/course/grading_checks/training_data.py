"""Checks of assignment 1, training data (``01_training_data_rubric.yml``).

The assignment works on a variant of the course data, :data:`DATA_PARAMS` (45 days,
a 10-day label delay, its own seed), with the cutoff :data:`CUTOFF`. Each check
regenerates what it needs from the simulator, looks at the names the notebook
defined (see :class:`course.grading.Answers`) and returns ``(passed, message)``,
the message written for the learner.

Names the notebook must define:

* ``sample_df`` -- a 10 % sample of ``transactions`` stratified by ``is_fraud`` and
  ``channel``;
* ``n_labels_known`` -- how many transactions before the cutoff have a label known at
  the cutoff;
* ``train_df``, ``test_df`` -- a leakage-free time split at the cutoff: train on the
  transactions older than the cutoff minus the label delay whose label is known at
  the cutoff; test on every transaction of the 14 days from the cutoff;
* ``nightly_terminal_frauds(transactions)`` -- for each transaction, the known frauds
  of its terminal over the 14 days before the midnight that starts its day, counting
  only labels known at that midnight (features computed by a nightly batch job).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from course.grading import CheckFailed
from production.simulate import simulate

__all__ = [
    "CUTOFF",
    "DATA_PARAMS",
    "FEATURE_WINDOW_DAYS",
    "LABEL_DELAY_DAYS",
    "SAMPLE_FRACTION",
    "SAMPLE_STRATA",
    "TEST_DAYS",
    "labels_known_is_right",
    "nightly_feature_is_point_in_time",
    "reference_nightly_terminal_frauds",
    "sample_is_stratified",
    "split_test_is_complete",
    "split_train_is_leak_free",
]

#: The assignment's data: ``simulate(**DATA_PARAMS)``.
DATA_PARAMS = {
    "n_customers": 600,
    "n_terminals": 200,
    "n_days": 45,
    "label_delay_days": 10,
    "random_state": 2026,
}
#: When the model is trained; the test period starts here.
CUTOFF = pd.Timestamp("2026-02-01")
#: A legitimate label is final after this many days (frauds: 1 to 20 days).
LABEL_DELAY_DAYS = 10
#: Length of the test period, from the cutoff.
TEST_DAYS = 14
#: The stratified sample.
SAMPLE_FRACTION = 0.1
SAMPLE_STRATA = ("is_fraud", "channel")
#: Window of the nightly terminal feature.
FEATURE_WINDOW_DAYS = 14

_DAY = pd.Timedelta(days=1)


@lru_cache(maxsize=1)
def _transactions() -> pd.DataFrame:
    """Return the assignment's transactions (cached: every check uses them)."""
    return simulate(**DATA_PARAMS).transactions


def _frame(answers, name: str) -> pd.DataFrame:
    """Return the notebook's DataFrame ``name`` with the columns a check needs."""
    frame = answers.require(name, pd.DataFrame)
    missing = [c for c in ("transaction_id", "tx_datetime") if c not in frame.columns]
    if missing:
        raise CheckFailed(
            f"`{name}` has no column(s) {missing}: keep the columns of `transactions` "
            "(select rows, not columns)."
        )
    if frame["transaction_id"].duplicated().any():
        raise CheckFailed(
            f"`{name}` holds {int(frame['transaction_id'].duplicated().sum())} duplicated "
            "transaction(s): sample and split without replacement."
        )
    return frame


def _ids(frame: pd.DataFrame) -> set:
    return set(frame["transaction_id"].tolist())


def _dates(ids: set, transactions: pd.DataFrame) -> str:
    """Describe the time range of some transactions, for messages."""
    rows = transactions.loc[transactions["transaction_id"].isin(ids), "tx_datetime"]
    return f"{rows.min():%Y-%m-%d %H:%M} to {rows.max():%Y-%m-%d %H:%M}"


# --------------------------------------------------------------------------- task 1


def sample_is_stratified(answers) -> tuple[bool, str]:
    """``sample_df`` holds 10 % of every (is_fraud, channel) stratum, within one row."""
    sample = _frame(answers, "sample_df")
    transactions = _transactions()
    unknown = _ids(sample) - _ids(transactions)
    if unknown:
        raise CheckFailed(
            f"`sample_df` has {len(unknown)} transaction_id(s) that are not in `transactions`, "
            f"e.g. {sorted(unknown)[:3]}: sample rows of `transactions`, unchanged."
        )
    strata = list(SAMPLE_STRATA)
    missing = [c for c in strata if c not in sample.columns]
    if missing:
        raise CheckFailed(f"`sample_df` has no column(s) {missing}: keep every column.")
    source = transactions.set_index("transaction_id").loc[sample["transaction_id"], strata]
    if not source.reset_index(drop=True).equals(sample[strata].reset_index(drop=True)):
        raise CheckFailed("`sample_df` changed the is_fraud or channel of some rows: copy rows.")
    sizes = transactions.groupby(strata).size()
    counts = sample.groupby(strata).size().reindex(sizes.index, fill_value=0)
    expected = sizes * SAMPLE_FRACTION
    wrong = (counts - expected).abs() >= 1
    if wrong.any():
        key = wrong[wrong].index[0]
        label = ", ".join(f"{c}={v!r}" for c, v in zip(strata, key, strict=True))
        return False, (
            f"Stratum ({label}) has {counts[key]} rows in `sample_df`; 10 % of its "
            f"{sizes[key]} rows is {expected[key]:.1f}, so it needs {int(np.floor(expected[key]))} "
            f"or {int(np.ceil(expected[key]))}. {int(wrong.sum())} of {len(sizes)} strata are off: "
            "sample each (is_fraud, channel) group separately."
        )
    return True, (
        f"{len(sample):,} rows; each of the {len(sizes)} (is_fraud, channel) strata holds 10 % "
        f"of its rows (frauds: {int(sample['is_fraud'].sum())} of {int(sizes.xs(1).sum())})."
    )


# --------------------------------------------------------------------------- task 2


def labels_known_is_right(answers) -> tuple[bool, str]:
    """``n_labels_known``: transactions before the cutoff whose label is known at it."""
    value = answers.require("n_labels_known", (int, np.integer))
    tx = _transactions()
    before = tx["tx_datetime"] < CUTOFF
    known = before & (tx["label_available_at"] <= CUTOFF)
    expected = int(known.sum())
    if int(value) == expected:
        return True, (
            f"{expected:,} of the {int(before.sum()):,} transactions before the cutoff have a "
            f"known label ({expected / before.sum():.0%})."
        )
    if int(value) == int(before.sum()):
        hint = "that is every transaction before the cutoff; count only the labelled ones"
    elif int(value) == int((tx["tx_datetime"] < CUTOFF - LABEL_DELAY_DAYS * _DAY).sum()):
        hint = "frauds are often reported faster than the label delay: use label_available_at"
    else:
        hint = "count rows with tx_datetime < cutoff and label_available_at <= cutoff"
    return False, f"`n_labels_known` is {int(value):,}; expected {expected:,}: {hint}."


# --------------------------------------------------------------------------- task 3


def split_test_is_complete(answers) -> tuple[bool, str]:
    """``test_df``: every transaction of the 14 days from the cutoff, labelled or not."""
    test = _frame(answers, "test_df")
    tx = _transactions()
    end = CUTOFF + TEST_DAYS * _DAY
    window = (tx["tx_datetime"] >= CUTOFF) & (tx["tx_datetime"] < end)
    expected, got = _ids(tx[window]), _ids(test)
    extra, missing = got - expected, expected - got
    if extra:
        return False, (
            f"`test_df` has {len(extra):,} transaction(s) outside [{CUTOFF:%Y-%m-%d}, "
            f"{end:%Y-%m-%d}) ({_dates(extra, tx)}): the test period starts at the cutoff."
        )
    if missing:
        unlabelled = tx[window & (tx["label_available_at"] > CUTOFF)]
        hint = (
            " Keep unlabelled rows: test transactions are scored when they happen and "
            "evaluated once their labels arrive."
            if missing <= _ids(unlabelled)
            else ""
        )
        return False, (
            f"`test_df` misses {len(missing):,} of the {len(expected):,} transactions of the "
            f"test period ({_dates(missing, tx)}).{hint}"
        )
    return True, f"`test_df`: all {len(expected):,} transactions from {CUTOFF:%Y-%m-%d} on."


def split_train_is_leak_free(answers) -> tuple[bool, str]:
    """``train_df``: labels known at the cutoff, a gap of the label delay, nothing missing."""
    train = _frame(answers, "train_df")
    tx = _transactions()
    train_end = CUTOFF - LABEL_DELAY_DAYS * _DAY
    rows = tx[tx["transaction_id"].isin(_ids(train))]
    if len(rows) < len(train):
        raise CheckFailed(
            "`train_df` has transaction_id(s) that are not in `transactions`: select rows."
        )
    late = rows[rows["tx_datetime"] >= train_end]
    unknown = rows[~(rows["label_available_at"] <= CUTOFF)]
    if len(late):
        return False, (
            f"`train_df` has {len(late):,} transaction(s) from {late['tx_datetime'].min():%Y-%m-%d} "
            f"on: leave a gap of the label delay ({LABEL_DELAY_DAYS} days) before the cutoff, "
            f"so training ends before {train_end:%Y-%m-%d}."
        )
    if len(unknown):
        return False, (
            f"{len(unknown):,} row(s) of `train_df` have labels that arrive after the cutoff "
            f"(latest {unknown['label_available_at'].max():%Y-%m-%d}): a model trained at "
            "the cutoff cannot know them. Keep label_available_at <= cutoff."
        )
    expected = tx[(tx["tx_datetime"] < train_end) & (tx["label_available_at"] <= CUTOFF)]
    missing = _ids(expected) - _ids(train)
    if missing:
        return False, (
            f"`train_df` misses {len(missing):,} usable row(s) ({_dates(missing, tx)}): keep "
            f"every transaction before {train_end:%Y-%m-%d} whose label is known at the cutoff."
        )
    return True, (
        f"`train_df`: {len(expected):,} rows up to {train_end:%Y-%m-%d}, every label known at "
        f"the cutoff ({int(expected['is_fraud'].sum())} frauds)."
    )


# --------------------------------------------------------------------------- task 4


def reference_nightly_terminal_frauds(
    transactions: pd.DataFrame, window_days: int = FEATURE_WINDOW_DAYS
) -> pd.Series:
    """Compute the nightly feature the slow and obvious way (the checks' oracle).

    Parameters
    ----------
    transactions : pandas.DataFrame
        With ``terminal_id``, ``tx_datetime``, ``is_fraud`` and ``label_available_at``.
    window_days : int, default=14
        Window length in days.

    Returns
    -------
    pandas.Series
        int64, indexed like ``transactions``: for each transaction, with ``d`` the
        midnight that starts its day, the frauds of its terminal with
        ``d - window_days <= tx_datetime < d`` and ``label_available_at <= d``.
    """
    midnight = transactions["tx_datetime"].dt.normalize()
    frauds = transactions[transactions["is_fraud"] == 1]
    by_terminal = {key: rows for key, rows in frauds.groupby("terminal_id")}
    out = pd.Series(0, index=transactions.index, dtype="int64")
    for (terminal, day), index in transactions.groupby(
        [transactions["terminal_id"], midnight]
    ).groups.items():
        rows = by_terminal.get(terminal)
        if rows is None:
            continue
        known = (
            (rows["tx_datetime"] >= day - window_days * _DAY)
            & (rows["tx_datetime"] < day)
            & (rows["label_available_at"] <= day)
        )
        out[index] = int(known.sum())
    return out.rename(f"terminal_known_frauds_{window_days}d_nightly")


_SCORED_AT = "2026-01-20 15:00:00"  # day D = 2026-01-20; window [2026-01-06, 2026-01-20)
#: (terminal, what its history holds, [(tx_datetime, is_fraud, label_available_at)], count)
_EDGE_CASES = [
    (1, "a fraud at exactly D - 14 days 00:00", [("2026-01-06 00:00", 1, "2026-01-08")], 1),
    (2, "a fraud one second before D - 14 days", [("2026-01-05 23:59:59", 1, "2026-01-07")], 0),
    (3, "a fraud reported exactly at D 00:00", [("2026-01-19 12:00", 1, "2026-01-20 00:00")], 1),
    (
        4,
        "a fraud reported at 09:00 on day D, after the nightly batch",
        [("2026-01-18 10:00", 1, "2026-01-20 09:00")],
        0,
    ),
    (5, "a fraud earlier on day D", [("2026-01-20 08:00", 1, "2026-01-20 10:00")], 0),
    (6, "a legitimate transaction", [("2026-01-10 12:00", 0, "2026-01-20")], 0),
    (
        7,
        "two frauds reported before D",
        [("2026-01-15 09:00", 1, "2026-01-16"), ("2026-01-19 10:00", 1, "2026-01-19 20:00")],
        2,
    ),
    (8, "no fraud of its own (a fraud at terminal 80)", [], 0),
    (80, "a fraud reported long ago", [("2026-01-12 09:00", 1, "2026-01-13")], 1),
]


def _edge_cases() -> tuple[pd.DataFrame, dict]:
    """Return a tiny frame of edge cases and, per row, what it tests.

    Each terminal has a short history and one transaction to score on
    ``_SCORED_AT``, whose expected count is the case's last element.
    """
    rows, why = [], []
    for terminal, story, history, _ in _EDGE_CASES:
        for tx_datetime, is_fraud, label_at in history:
            rows.append((terminal, tx_datetime, is_fraud, label_at))
            why.append(f"a transaction of the history of terminal {terminal} ({story})")
        rows.append((terminal, _SCORED_AT, 0, "2026-02-05"))
        why.append(f"the transaction to score at a terminal with {story}")
    frame = pd.DataFrame(
        rows, columns=["terminal_id", "tx_datetime", "is_fraud", "label_available_at"]
    )
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], format="ISO8601")
    frame["label_available_at"] = pd.to_datetime(frame["label_available_at"], format="ISO8601")
    frame["is_fraud"] = frame["is_fraud"].astype("int8")
    frame = frame.sort_values("tx_datetime", kind="stable")
    stories = [why[i] for i in frame.index]
    frame.index = pd.RangeIndex(100, 100 + len(frame))
    return frame, dict(zip(frame.index, stories, strict=True))


def _as_series(result, frame: pd.DataFrame, what: str) -> pd.Series:
    """Check the learner's result is one number per row of ``frame``, indexed like it."""
    if isinstance(result, pd.DataFrame) and result.shape[1] == 1:
        result = result.iloc[:, 0]
    if not isinstance(result, pd.Series):
        raise CheckFailed(
            f"`nightly_terminal_frauds` should return a pandas Series; got "
            f"{type(result).__name__} ({what})."
        )
    if len(result) != len(frame) or not result.index.sort_values().equals(
        frame.index.sort_values()
    ):
        raise CheckFailed(
            f"`nightly_terminal_frauds` should return one value per transaction, indexed like "
            f"its input ({len(frame)} rows); got {len(result)} values ({what})."
        )
    return result.loc[frame.index]


def nightly_feature_is_point_in_time(answers) -> tuple[bool, str]:
    """``nightly_terminal_frauds`` matches the definition on edge cases and simulated data."""
    frame, why = _edge_cases()
    got = _as_series(answers.call("nightly_terminal_frauds", frame.copy()), frame, "edge cases")
    expected = reference_nightly_terminal_frauds(frame)
    wrong = ~np.isclose(got.to_numpy(dtype="float64"), expected.to_numpy(dtype="float64"))
    if wrong.any():
        scored = [i for i in frame.index[wrong] if why[i].startswith("the transaction to score")]
        cases = "; ".join(
            f"{why[i]}: {got[i]} instead of {expected[i]}" for i in (scored or frame.index[wrong])
        )
        return False, (
            f"On a small test frame ({int(wrong.sum())} of {len(frame)} values wrong), {cases}. "
            f"For a transaction on day D count the terminal's frauds from "
            f"D-{FEATURE_WINDOW_DAYS} 00:00 (included) to D 00:00 (excluded) whose "
            "label_available_at <= D 00:00."
        )
    sample = simulate(
        n_customers=150, n_terminals=40, n_days=30, label_delay_days=10, random_state=7
    ).transactions
    got = _as_series(answers.call("nightly_terminal_frauds", sample.copy()), sample, "simulated")
    expected = reference_nightly_terminal_frauds(sample)
    wrong = ~np.isclose(got.to_numpy(dtype="float64"), expected.to_numpy(dtype="float64"))
    if wrong.any():
        index = sample.index[wrong][0]
        return False, (
            f"The edge cases pass, but on simulated data {int(wrong.sum()):,} of {len(sample):,} "
            f"values differ, e.g. transaction {sample.loc[index, 'transaction_id']} (terminal "
            f"{sample.loc[index, 'terminal_id']}, {sample.loc[index, 'tx_datetime']}): "
            f"{got[index]} instead of {expected[index]}."
        )
    return True, (
        f"Correct on the edge cases and on {len(sample):,} simulated transactions "
        f"({int((expected > 0).sum()):,} with known frauds at their terminal)."
    )

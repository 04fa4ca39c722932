"""Checks of assignment 1, training data (``01_training_data_rubric.yml``).

The judge rebuilds the assignment's data itself (:func:`assignment_data`: the simulator,
plus :data:`BOUNDARY_ROWS` on the edges of every period, exactly as the notebook's setup
cell builds it) and compares what the notebook saved with what it computes here. The
notebook defines ``sample_df``, ``n_labels_known``, ``train_df``, ``test_df`` and
``nightly_terminal_frauds(transactions)``; the function is called by the kernel on
inputs from :func:`make_inputs` (edge cases and freshly simulated data).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from course.grading.artifact import CheckFailed
from production.simulate import simulate

NAMES = ("sample_df", "n_labels_known", "train_df", "test_df")
TRUSTED = ("05_src/production/simulate.py", "05_src/production/config.py")

DATA_PARAMS = {
    "n_customers": 600,
    "n_terminals": 200,
    "n_days": 45,
    "label_delay_days": 10,
    "random_state": 2026,
}
CUTOFF = pd.Timestamp("2026-02-01")
TEST_END = CUTOFF + pd.Timedelta(days=14)
#: Days between the newest training transaction and the cutoff, per channel.
GAP_DAYS = {"chip": 7, "contactless": 7, "swipe": 10, "online": 14}
SAMPLE_STRATA = ["is_fraud", "channel"]
WINDOW_DAYS = 14
#: Rows on the edges, as in the notebook: (id, tx_datetime, channel, is_fraud, label_available_at).
BOUNDARY_ROWS = [
    (9_000_000_001, "2026-02-01 00:00:00", "chip", 0, "2026-02-11 00:00:00"),
    (9_000_000_002, "2026-02-15 00:00:00", "chip", 0, "2026-02-25 00:00:00"),
    (9_000_000_003, "2026-02-15 02:00:00", "online", 1, "2026-02-20 00:00:00"),
    (9_000_000_004, "2026-01-25 00:00:00", "chip", 0, "2026-01-28 00:00:00"),
    (9_000_000_005, "2026-01-24 23:59:59", "chip", 1, "2026-02-01 00:00:00"),
    (9_000_000_006, "2026-01-20 12:00:00", "online", 0, "2026-01-30 12:00:00"),
    (9_000_000_007, "2026-01-17 23:00:00", "online", 1, "2026-02-01 00:00:00"),
    (9_000_000_008, "2026-01-30 09:00:00", "swipe", 0, "2026-02-01 00:00:00"),
]
_DAY = pd.Timedelta(days=1)


@lru_cache(maxsize=1)
def assignment_data() -> pd.DataFrame:
    """Return the assignment's transactions: simulated, plus the boundary rows."""
    transactions = simulate(**DATA_PARAMS).transactions
    edges = pd.DataFrame(
        BOUNDARY_ROWS,
        columns=["transaction_id", "tx_datetime", "channel", "is_fraud", "label_available_at"],
    )
    edges = edges.assign(
        tx_datetime=pd.to_datetime(edges["tx_datetime"]),
        label_available_at=pd.to_datetime(edges["label_available_at"]),
        customer_id=0,
        terminal_id=0,
        amount=50.0,
        merchant_category="grocery",
        fraud_scenario=0,
    )
    return pd.concat([transactions, edges[transactions.columns]], ignore_index=True)


def _frame(answers, name: str) -> pd.DataFrame:
    """Return a saved DataFrame with unique ``transaction_id``s, or fail saying why."""
    frame = answers.require(name, "frame")
    if "transaction_id" not in frame.columns:
        raise CheckFailed(
            f"`{name}` has no column `transaction_id`; expected the rows of `transactions` "
            "with all their columns (select rows, not columns)."
        )
    duplicated = int(frame["transaction_id"].duplicated().sum())
    if duplicated:
        raise CheckFailed(
            f"`{name}` holds {duplicated} duplicated transaction(s); expected each row at "
            "most once (sample and split without replacement)."
        )
    unknown = set(frame["transaction_id"]) - set(assignment_data()["transaction_id"])
    if unknown:
        raise CheckFailed(
            f"`{name}` has {len(unknown)} transaction_id(s) that are not in `transactions`, "
            f"e.g. {sorted(unknown)[:3]}; expected rows of `transactions`, unchanged."
        )
    return frame


def _compare(name: str, got: set, expected: set, hint_rows: dict) -> tuple[bool, str]:
    """Compare id sets; name the first boundary row that tells what went wrong."""
    extra, missing = got - expected, expected - got
    if not extra and not missing:
        return True, ""
    for row_id, hint in hint_rows.items():
        if row_id in extra or row_id in missing:
            where = "has" if row_id in extra else "misses"
            return False, f"`{name}` {where} transaction {row_id}: {hint}"
    tx = assignment_data().set_index("transaction_id")["tx_datetime"]
    parts = []
    if extra:
        rows = tx.loc[sorted(extra)]
        parts.append(f"{len(extra):,} row(s) too many ({rows.min()} to {rows.max()})")
    if missing:
        rows = tx.loc[sorted(missing)]
        parts.append(f"{len(missing):,} row(s) missing ({rows.min()} to {rows.max()})")
    return False, f"`{name}` has {' and '.join(parts)}; expected {len(expected):,} rows."


def sample_is_stratified(answers, **context) -> tuple[bool, str]:
    """``sample_df`` holds 10 % of every (is_fraud, channel) stratum, within one row."""
    sample = _frame(answers, "sample_df")
    tx = assignment_data()
    missing = [c for c in SAMPLE_STRATA if c not in sample.columns]
    if missing:
        raise CheckFailed(f"`sample_df` has no column(s) {missing}; expected every column.")
    source = tx.set_index("transaction_id").loc[sample["transaction_id"], SAMPLE_STRATA]
    changed = source.astype(str).to_numpy() != sample[SAMPLE_STRATA].astype(str).to_numpy()
    if changed.any():
        raise CheckFailed(
            "`sample_df` changed the is_fraud or channel of some rows; expected rows copied "
            "from `transactions` (a dtype such as category is fine)."
        )
    sizes = tx.groupby(SAMPLE_STRATA).size()
    keys = source.reset_index(drop=True)
    counts = keys.groupby(SAMPLE_STRATA).size().reindex(sizes.index, fill_value=0)
    expected = sizes * 0.1
    wrong = (counts - expected).abs() >= 1
    if wrong.any():
        key = wrong[wrong].index[0]
        return False, (
            f"Stratum (is_fraud={key[0]}, channel={key[1]!r}) has {counts[key]} rows in "
            f"`sample_df`; expected 10 % of its {sizes[key]} rows, {int(np.floor(expected[key]))}"
            f" or {int(np.ceil(expected[key]))}. {int(wrong.sum())} of {len(sizes)} strata "
            "are off: sample each (is_fraud, channel) group separately."
        )
    return True, f"{len(sample):,} rows; each of the {len(sizes)} strata keeps 10 % of its rows."


def labels_known_is_right(answers, **context) -> tuple[bool, str]:
    """``n_labels_known``: transactions before the cutoff whose label is known at it."""
    value = answers.require("n_labels_known", "int")
    tx = assignment_data()
    before = tx["tx_datetime"] < CUTOFF
    expected = int((before & (tx["label_available_at"] <= CUTOFF)).sum())
    if value == expected:
        return True, f"{expected:,} of the {int(before.sum()):,} labels are known at the cutoff."
    hints = {
        int(before.sum()): "that counts every transaction before the cutoff",
        int((before & (tx["label_available_at"] < CUTOFF)).sum()): (
            "a label that arrives exactly at the cutoff is known at it (<=, not <)"
        ),
        int(((tx["tx_datetime"] <= CUTOFF) & (tx["label_available_at"] <= CUTOFF)).sum()): (
            "a transaction exactly at the cutoff is not before it (<, not <=)"
        ),
    }
    hint = hints.get(value, "count tx_datetime < CUTOFF and label_available_at <= CUTOFF")
    return False, f"`n_labels_known` is {value:,}; expected {expected:,}: {hint}."


def split_test_is_complete(answers, **context) -> tuple[bool, str]:
    """``test_df``: every transaction of ``[CUTOFF, CUTOFF + 14 days)``, labelled or not."""
    test = _frame(answers, "test_df")
    tx = assignment_data()
    window = (tx["tx_datetime"] >= CUTOFF) & (tx["tx_datetime"] < TEST_END)
    hints = {
        9_000_000_001: "it happens exactly at the cutoff, the first instant of the test "
        "period; expected tx_datetime >= CUTOFF.",
        9_000_000_002: "it happens exactly at CUTOFF + 14 days, after the test period; "
        "expected tx_datetime < CUTOFF + 14 days.",
        9_000_000_003: "it happens after the test period; expected the 14 days from the "
        "cutoff, [CUTOFF, CUTOFF + 14 days), not everything after the cutoff.",
    }
    passed, message = _compare(
        "test_df", set(test["transaction_id"]), set(tx.loc[window, "transaction_id"]), hints
    )
    if passed:
        return True, f"`test_df`: all {int(window.sum()):,} transactions of the 14 test days."
    return False, message


def expected_train_ids(tx: pd.DataFrame) -> set:
    """Return the ids of the leakage-free training rows (per-channel gap, known labels)."""
    gap = pd.to_timedelta(tx["channel"].astype(str).map(GAP_DAYS), unit="D")
    usable = (tx["tx_datetime"] < CUTOFF - gap) & (tx["label_available_at"] <= CUTOFF)
    return set(tx.loc[usable, "transaction_id"])


def split_train_is_leak_free(answers, **context) -> tuple[bool, str]:
    """``train_df``: before the channel's gap, labels known at the cutoff, nothing missing."""
    train = _frame(answers, "train_df")
    tx = assignment_data()
    expected = expected_train_ids(tx)
    hints = {
        9_000_000_004: "a chip transaction exactly at CUTOFF - 7 days; expected "
        "tx_datetime < CUTOFF - GAP_DAYS[channel] (strictly before).",
        9_000_000_005: "a chip fraud just before CUTOFF - 7 days whose label arrives exactly "
        "at the cutoff; expected label_available_at <= CUTOFF (known at the cutoff).",
        9_000_000_006: "an online transaction 11.5 days before the cutoff; online labels "
        "need a 14-day gap: expected the gap of each row's own channel.",
        9_000_000_007: "an online fraud 14 days and 1 hour before the cutoff, labelled "
        "exactly at the cutoff; expected it in the training rows.",
    }
    passed, message = _compare("train_df", set(train["transaction_id"]), expected, hints)
    if passed:
        return True, (
            f"`train_df`: {len(expected):,} rows, each older than its channel's gap, every "
            "label known at the cutoff."
        )
    rows = tx[tx["transaction_id"].isin(set(train["transaction_id"]) - expected)]
    if len(rows) and (rows["label_available_at"] > CUTOFF).any():
        message += " Some labels arrive after the cutoff: keep label_available_at <= CUTOFF."
    return False, message


def reference_nightly_terminal_frauds(transactions: pd.DataFrame) -> pd.Series:
    """Count, the slow and obvious way, each terminal's known frauds of the last 14 nights."""
    midnight = transactions["tx_datetime"].dt.normalize()
    frauds = transactions[transactions["is_fraud"].astype(int) == 1]
    out = pd.Series(0, index=transactions.index, dtype="int64")
    for (terminal, day), index in transactions.groupby(
        [transactions["terminal_id"], midnight]
    ).groups.items():
        rows = frauds[frauds["terminal_id"] == terminal]
        known = (
            (rows["tx_datetime"] >= day - WINDOW_DAYS * _DAY)
            & (rows["tx_datetime"] < day)
            & (rows["label_available_at"] <= day)
        )
        out[index] = int(known.sum())
    return out


_SCORED_AT = "2026-01-20 15:00:00"  # day D = 2026-01-20; window [2026-01-06, 2026-01-20)
_EDGE_CASES = [
    (1, "a fraud at exactly D - 14 days 00:00", [("2026-01-06 00:00", 1, "2026-01-08")]),
    (2, "a fraud one second before D - 14 days", [("2026-01-05 23:59:59", 1, "2026-01-07")]),
    (3, "a fraud reported exactly at D 00:00", [("2026-01-19 12:00", 1, "2026-01-20 00:00")]),
    (4, "a fraud reported at 09:00 on day D", [("2026-01-18 10:00", 1, "2026-01-20 09:00")]),
    (5, "a fraud earlier on day D", [("2026-01-20 08:00", 1, "2026-01-20 10:00")]),
    (6, "a legitimate transaction", [("2026-01-10 12:00", 0, "2026-01-20")]),
    (
        7,
        "two frauds reported before D",
        [("2026-01-15 09:00", 1, "2026-01-16"), ("2026-01-19 10:00", 1, "2026-01-19 20:00")],
    ),
    (8, "no fraud of its own (a fraud at terminal 80)", []),
    (80, "a fraud reported long ago", [("2026-01-12 09:00", 1, "2026-01-13")]),
]


def _edge_frame() -> tuple[pd.DataFrame, dict]:
    rows, why = [], {}
    for terminal, story, history in _EDGE_CASES:
        rows += [(terminal, t, f, label) for t, f, label in history]
        rows.append((terminal, _SCORED_AT, 0, "2026-02-05"))
        why[len(rows) - 1] = f"the transaction at a terminal with {story}"
    frame = pd.DataFrame(
        rows, columns=["terminal_id", "tx_datetime", "is_fraud", "label_available_at"]
    )
    for column in ("tx_datetime", "label_available_at"):
        frame[column] = pd.to_datetime(frame[column], format="ISO8601")
    frame["is_fraud"] = frame["is_fraud"].astype("int8")
    frame.index = pd.RangeIndex(100, 100 + len(frame))
    return frame, {100 + i: story for i, story in why.items()}


def make_inputs(seed: int) -> dict:
    """Return the frames ``nightly_terminal_frauds`` is called on: edge cases, simulated."""
    simulated = simulate(
        n_customers=120, n_terminals=30, n_days=30, label_delay_days=10, random_state=seed % 10_000
    ).transactions
    simulated = simulated.sample(frac=1.0, random_state=seed % 10_000)  # any row order
    return {"nightly_terminal_frauds": {"edges": _edge_frame()[0], "simulated": simulated}}


def nightly_feature_is_point_in_time(answers, seed, **context) -> tuple[bool, str]:
    """``nightly_terminal_frauds`` matches the definition on edge cases and simulated data."""
    inputs = make_inputs(seed)["nightly_terminal_frauds"]
    stories = _edge_frame()[1]
    for case, frame in inputs.items():
        got = answers.output("nightly_terminal_frauds", case, "series")
        if len(got) != len(frame) or set(got.index) != set(frame.index):
            raise CheckFailed(
                f"`nightly_terminal_frauds` returned {len(got)} values on the grader's "
                f"{case!r} frame of {len(frame)} rows; expected one value per row, indexed "
                "like its input."
            )
        got = pd.to_numeric(got.loc[frame.index], errors="coerce").to_numpy(dtype="float64")
        expected = reference_nightly_terminal_frauds(frame).to_numpy(dtype="float64")
        wrong = ~np.isclose(got, expected)
        if wrong.any():
            index = frame.index[wrong]
            told = [i for i in index if i in stories] if case == "edges" else []
            first = told[0] if told else index[0]
            what = stories.get(first, f"row {first} (terminal {frame.loc[first, 'terminal_id']})")
            return False, (
                f"On the grader's {case!r} frame, {int(wrong.sum())} of {len(frame)} values "
                f"are wrong, e.g. {what}: got {got[frame.index.get_loc(first)]:g}, expected "
                f"{expected[frame.index.get_loc(first)]:g}. For a transaction on day D, count "
                "the terminal's frauds with D - 14 days <= tx_datetime < D (midnights) whose "
                "label_available_at <= D."
            )
    return True, "Correct on the edge cases and on freshly simulated transactions."

"""Tests for course.grading_checks: reference answers pass, template blanks and mistakes fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assignment_helpers import run, template_setup
from production.features import compute_terminal_features
from course.grading import load_rubric
from course.grading_checks import training_data as checks
from production.sampling import simple_random_sample, stratified_sample, time_split

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "02_activities/assignments/01_training_data_activity.ipynb"
RUBRIC = ROOT / "02_activities/assignments/01_training_data_rubric.yml"


@pytest.fixture(scope="module")
def tx():
    return checks._transactions()


def nightly(transactions):
    """A learner's vectorised answer: merge frauds onto (terminal, day) pairs."""
    day = transactions["tx_datetime"].dt.normalize()
    frauds = transactions.loc[transactions["is_fraud"] == 1]
    pairs = (
        pd.DataFrame({"terminal_id": transactions["terminal_id"], "day": day})
        .drop_duplicates()
        .merge(frauds[["terminal_id", "tx_datetime", "label_available_at"]], on="terminal_id")
    )
    known = (
        (pairs["tx_datetime"] >= pairs["day"] - pd.Timedelta(days=14))
        & (pairs["tx_datetime"] < pairs["day"])
        & (pairs["label_available_at"] <= pairs["day"])
    )
    counts = pairs[known].groupby(["terminal_id", "day"]).size()
    keys = pd.MultiIndex.from_arrays([transactions["terminal_id"], day])
    return pd.Series(counts.reindex(keys, fill_value=0).to_numpy(), index=transactions.index)


@pytest.fixture(scope="module")
def solution(tx):
    split = time_split(tx, cutoff=checks.CUTOFF, gap_days=10, test_days=14)
    known = (tx["tx_datetime"] < checks.CUTOFF) & (tx["label_available_at"] <= checks.CUTOFF)
    return {
        "sample_df": stratified_sample(tx, ["is_fraud", "channel"], frac=0.1, random_state=2026),
        "n_labels_known": int(known.sum()),
        "train_df": split.train,
        "test_df": split.test,
        "nightly_terminal_frauds": nightly,
    }


CHECKS = [
    checks.sample_is_stratified,
    checks.labels_known_is_right,
    checks.split_test_is_complete,
    checks.split_train_is_leak_free,
    checks.nightly_feature_is_point_in_time,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_reference_solution_passes(check, solution):
    passed, message = run(check, **solution)
    assert passed, message


def _template_blank(transactions):
    raise NotImplementedError("TODO: one int per transaction")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_template_blanks_fail_with_a_message(check):
    blanks = dict.fromkeys(["sample_df", "n_labels_known", "train_df", "test_df"])
    passed, message = run(check, **blanks, nightly_terminal_frauds=_template_blank)
    assert not passed
    assert "still None" in message or "not written yet" in message


def test_rubric_points_and_checks():
    rubric = load_rubric(RUBRIC)
    assert rubric.max_score == 10
    assert [c.check.rpartition(".")[2] for c in rubric.criteria] == [c.__name__ for c in CHECKS]


def test_template_uses_the_checks_parameters():
    first, values = template_setup(ASSIGNMENT)
    assert values["DATA_PARAMS"] == checks.DATA_PARAMS
    assert values["LABEL_DELAY_DAYS"] == checks.LABEL_DELAY_DAYS
    assert values["TEST_DAYS"] == checks.TEST_DAYS
    assert f'pd.Timestamp("{checks.CUTOFF:%Y-%m-%d}")' in first


# --------------------------------------------------------------------------- common mistakes


def test_simple_random_sample_is_not_stratified(tx):
    sample = simple_random_sample(tx, frac=0.1, random_state=2026)
    passed, message = run(checks.sample_is_stratified, sample_df=sample)
    assert not passed and "sample each (is_fraud, channel) group separately" in message


def test_sample_with_changed_or_foreign_rows_fails(solution):
    changed = solution["sample_df"].assign(is_fraud=0)
    assert "changed the is_fraud" in run(checks.sample_is_stratified, sample_df=changed)[1]
    foreign = solution["sample_df"].assign(transaction_id=-1 - np.arange(len(changed)))
    assert "not in `transactions`" in run(checks.sample_is_stratified, sample_df=foreign)[1]
    doubled = pd.concat([solution["sample_df"], solution["sample_df"].head(2)])
    assert "duplicated" in run(checks.sample_is_stratified, sample_df=doubled)[1]
    columns = solution["sample_df"][["amount"]]
    assert "transaction_id" in run(checks.sample_is_stratified, sample_df=columns)[1]


@pytest.mark.parametrize(
    ("mask", "hint"),
    [
        (lambda tx: tx["tx_datetime"] < checks.CUTOFF, "count only the labelled ones"),
        (
            lambda tx: tx["tx_datetime"] < checks.CUTOFF - pd.Timedelta(days=10),
            "use label_available_at",
        ),
        (lambda tx: tx["tx_datetime"] < "2026-01-10", "tx_datetime < cutoff"),
    ],
)
def test_wrong_label_counts_get_a_hint(tx, mask, hint):
    passed, message = run(checks.labels_known_is_right, n_labels_known=int(mask(tx).sum()))
    assert not passed and hint in message


def test_label_count_must_be_an_int():
    passed, message = run(checks.labels_known_is_right, n_labels_known="25501")
    assert not passed and "should be a int" in message


def test_test_set_must_keep_unlabelled_rows(solution):
    test = solution["test_df"]
    labelled = test[test["label_available_at"] <= checks.CUTOFF]
    passed, message = run(checks.split_test_is_complete, test_df=labelled)
    assert not passed and "Keep unlabelled rows" in message


def test_test_set_must_start_at_the_cutoff(tx, solution):
    early = pd.concat([tx[tx["tx_datetime"] < checks.CUTOFF].tail(5), solution["test_df"]])
    passed, message = run(checks.split_test_is_complete, test_df=early)
    assert not passed and "5 transaction(s) outside [2026-02-01, 2026-02-15)" in message


def test_train_without_gap_fails(tx):
    no_gap = time_split(tx, cutoff=checks.CUTOFF).train
    passed, message = run(checks.split_train_is_leak_free, train_df=no_gap)
    assert not passed and "leave a gap of the label delay (10 days)" in message


def test_train_with_future_labels_fails(tx):
    hindsight = tx[tx["tx_datetime"] < checks.CUTOFF - pd.Timedelta(days=10)]
    passed, message = run(checks.split_train_is_leak_free, train_df=hindsight)
    assert not passed and "labels that arrive after the cutoff" in message


def test_train_missing_rows_fails(solution):
    legit_only = solution["train_df"].query("is_fraud == 0")
    passed, message = run(checks.split_train_is_leak_free, train_df=legit_only)
    assert not passed and "misses 179 usable row(s)" in message


def test_reference_feature_on_the_edge_cases():
    frame, why = checks._edge_cases()
    expected = checks.reference_nightly_terminal_frauds(frame)
    scored = frame["tx_datetime"] == pd.Timestamp(checks._SCORED_AT)
    by_terminal = expected[scored].set_axis(frame.loc[scored, "terminal_id"]).to_dict()
    assert by_terminal == {case[0]: case[3] for case in checks._EDGE_CASES}
    assert nightly(frame).equals(expected.rename(None))
    assert all(why[i].startswith("the transaction to score") for i in frame.index[scored])


def _late_by(delay):
    return lambda tx: nightly(tx.assign(label_available_at=tx["label_available_at"] + delay))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (
            lambda tx: compute_terminal_features(tx, windows=14)["terminal_fraud_count_14d"],
            "a fraud reported at 09:00 on day D",
        ),
        (_late_by(pd.Timedelta("1s")), "a fraud reported exactly at D 00:00"),
        (lambda tx: nightly(tx) * 0, "a fraud at exactly D - 14 days 00:00"),
        (lambda tx: nightly(tx).to_numpy(), "should return a pandas Series"),
        (lambda tx: nightly(tx).iloc[:-1], "one value per transaction"),
    ],
)
def test_wrong_features_fail_with_the_case(answer, hint):
    passed, message = run(checks.nightly_feature_is_point_in_time, nightly_terminal_frauds=answer)
    assert not passed and hint in message, message


def test_feature_right_on_edges_but_wrong_on_data():
    def edge_only(tx):
        result = nightly(tx)
        return result + (len(tx) > 100)  # off by one on large frames

    passed, message = run(
        checks.nightly_feature_is_point_in_time, nightly_terminal_frauds=edge_only
    )
    assert not passed and "The edge cases pass, but on simulated data" in message

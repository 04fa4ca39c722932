"""Tests for production.sampling: samples, reservoir, time split, leakage, imbalance."""

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.utils.estimator_checks import parametrize_with_checks

from production.features import LeakageError, LeakageWarning
from production.sampling import (
    ResampledClassifier,
    TimeSplit,
    check_leakage,
    recall_at_precision,
    reservoir_sample,
    simple_random_sample,
    stratified_sample,
    summarize_label_availability,
    time_split,
)
from production.simulate import iter_days, simulate

SMALL = {"n_customers": 200, "n_terminals": 60, "n_days": 30}


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    return simulate(**SMALL).transactions


@pytest.fixture
def labelled():
    """Ten transactions over ten days, labels two days later, ids 100..109."""
    times = pd.date_range("2026-01-01", periods=10, freq="D")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(100, 110),
            "tx_datetime": times,
            "is_fraud": [0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
            "label_available_at": times + pd.Timedelta(days=2),
        }
    )


# --------------------------------------------------------------------------- samples


def test_simple_random_sample_size_order_and_determinism(labelled):
    one = simple_random_sample(labelled, 4, random_state=3)

    assert len(one) == 4 and one.index.is_monotonic_increasing
    assert_frame_equal(one, simple_random_sample(labelled, 4, random_state=3))
    assert len(simple_random_sample(labelled, frac=0.35)) == 4  # round(3.5) = 4 (to even)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of n"),
        ({"n": 2, "frac": 0.5}, "exactly one of n"),
        ({"n": 11}, "exactly one of n"),
        ({"n": -1}, "'n' parameter"),
        ({"n": 1.5}, "'n' parameter"),
        ({"frac": 1.5}, "'frac' parameter"),
        ({"n": 2, "random_state": None}, "'random_state' parameter"),
    ],
)
@pytest.mark.parametrize("sample", [simple_random_sample, stratified_sample])
def test_samples_reject_bad_sizes(labelled, sample, kwargs, match):
    args = (labelled,) if sample is simple_random_sample else (labelled, "is_fraud")
    with pytest.raises(ValueError, match=match):
        sample(*args, **kwargs)


def test_samples_need_a_frame_and_existing_columns(labelled):
    with pytest.raises(TypeError, match="'frame' parameter"):
        simple_random_sample(labelled.to_dict(), 2)
    with pytest.raises(ValueError, match=r"\['segment'\] not found"):
        stratified_sample(labelled, "segment", n=2)
    with pytest.raises(ValueError, match="'by' parameter"):
        stratified_sample(labelled, 3, n=2)


def test_stratified_sample_keeps_every_share_to_the_row(tx):
    sample = stratified_sample(tx, "is_fraud", frac=0.1, random_state=5)

    frauds = tx["is_fraud"].sum()
    assert len(sample) == round(0.1 * len(tx))
    assert sample["is_fraud"].sum() in (np.floor(frauds / 10), np.ceil(frauds / 10))
    assert sample.index.is_monotonic_increasing
    assert_frame_equal(sample, stratified_sample(tx, "is_fraud", frac=0.1, random_state=5))


def test_stratified_sample_by_two_columns_and_missing_values():
    frame = pd.DataFrame({"a": ["x"] * 6 + ["y"] * 4, "b": [np.nan] * 5 + [1.0] * 5})
    sample = stratified_sample(frame, ["a", "b"], n=5)

    # strata (x, nan)=5, (x, 1)=1, (y, 1)=4: quotas 2.5, 0.5, 2 -> 3, 0, 2 by largest remainder
    assert len(sample) == 5
    assert (sample["a"].eq("x") & sample["b"].isna()).sum() == 3
    assert sample["a"].eq("y").sum() == 2


# --------------------------------------------------------------------------- reservoir


def test_reservoir_sample_is_uniform():
    frame = pd.DataFrame({"x": np.arange(20)})
    counts = np.zeros(20)
    for random_state in range(400):
        sample = reservoir_sample([frame.iloc[:7], frame.iloc[7:]], 5, random_state=random_state)
        counts[sample["x"].to_numpy()] += 1

    assert counts.sum() == 2_000  # each row kept with probability 5/20: 100 times in 400
    assert stats.chisquare(counts).pvalue > 0.01, counts


def test_reservoir_sample_does_not_depend_on_the_batches():
    frame = pd.DataFrame({"x": np.arange(300)}, index=np.arange(300) * 2)
    one = reservoir_sample([frame], 10, random_state=7)
    uneven = [frame.iloc[a:b] for a, b in [(0, 3), (3, 3), (3, 40), (40, 41), (41, 300)]]

    assert len(one) == 10 and one.index.is_monotonic_increasing
    assert_frame_equal(one, reservoir_sample(uneven, 10, random_state=7))
    assert not one.equals(reservoir_sample([frame], 10, random_state=8))


def test_reservoir_sample_over_simulated_days():
    params = {"n_customers": 60, "n_terminals": 20, "n_days": 20}
    streamed = reservoir_sample(iter_days(**params), 30, random_state=1)

    assert_frame_equal(
        streamed, reservoir_sample([simulate(**params).transactions], 30, random_state=1)
    )
    assert streamed["tx_datetime"].dt.day.nunique() > 5  # spread over the stream


def test_reservoir_keeps_a_short_stream_whole_and_rejects_bad_input():
    frame = pd.DataFrame({"x": [1, 2, 3]})

    assert_frame_equal(reservoir_sample([frame.iloc[:0], frame], 5), frame)
    assert reservoir_sample([], 2).empty
    with pytest.raises(ValueError, match="'k' parameter"):
        reservoir_sample([frame], 0)
    with pytest.raises(TypeError, match="a batch must be a pandas DataFrame"):
        reservoir_sample([[1, 2]], 2)


# --------------------------------------------------------------------------- time split


def test_time_split_respects_cutoff_gap_and_label_delay(tx):
    split = time_split(tx, cutoff="2026-01-22", gap_days=7, test_days=5)
    cutoff = pd.Timestamp("2026-01-22")

    assert isinstance(split, TimeSplit) and split.cutoff == cutoff
    assert split.train["tx_datetime"].max() < pd.Timestamp("2026-01-15")
    assert (split.train["label_available_at"] <= cutoff).all()
    in_test = tx["tx_datetime"].between(cutoff, "2026-01-27", inclusive="left")
    assert split.test.index.equals(tx.index[in_test])  # labelled or not
    summary = split.summary
    assert summary["n_rows"].tolist() == [len(split.train), 0, len(split.test)]
    gap = tx["tx_datetime"].between("2026-01-15", cutoff, inclusive="left").sum()
    assert summary.loc["gap", "n_dropped"] == gap
    assert summary.loc["test", "positive_rate"] == pytest.approx(split.test["is_fraud"].mean())


def test_time_split_without_gap_keeps_only_fast_fraud_labels(tx):
    split = time_split(tx, cutoff="2026-01-22")
    last_days = split.train[split.train["tx_datetime"] >= pd.Timestamp("2026-01-15")]

    # legitimate labels take 7 days: in the last week before the cutoff only frauds are known
    assert len(last_days) > 0 and last_days["is_fraud"].eq(1).all()
    assert split.summary.loc["train", "n_dropped"] > len(last_days)


def test_time_split_train_window_and_missing_label_times(labelled):
    labelled.loc[3, "label_available_at"] = pd.NaT
    split = time_split(labelled, cutoff="2026-01-09", train_days=5)

    # train window [2026-01-04, 2026-01-09), labels known by 01-09: days 4..7 minus NaT day 4
    assert split.train["transaction_id"].tolist() == [104, 105, 106]
    assert split.summary.loc["train", "n_dropped"] == 2  # 103 (NaT) and 107 (label 01-10)
    assert split.test["transaction_id"].tolist() == [108, 109]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cutoff": "not a date"}, "'cutoff' parameter"),
        ({"cutoff": None}, "'cutoff' parameter"),
        ({"cutoff": "2026-01-05", "gap_days": -1}, "'gap_days' parameter"),
        ({"cutoff": "2026-01-05", "gap_days": "7"}, "'gap_days' parameter"),
        ({"cutoff": "2026-01-05", "train_days": 0}, "'train_days' parameter"),
        ({"cutoff": "2026-01-05", "test_days": True}, "'test_days' parameter"),
        ({"cutoff": "2026-01-01"}, "no row before"),
    ],
)
def test_time_split_rejects_bad_parameters(labelled, kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_split(labelled, **kwargs)


def test_time_split_needs_datetime_columns(labelled):
    with pytest.raises(ValueError, match="label_available_at"):
        time_split(labelled.drop(columns="label_available_at"), cutoff="2026-01-05")
    with pytest.raises(ValueError, match="'tx_datetime' of frame must be datetime64"):
        time_split(labelled.assign(tx_datetime="x"), cutoff="2026-01-05")


def test_summarize_label_availability(labelled):
    known = summarize_label_availability(labelled, "2026-01-06")

    # rows of Jan 1..5; labels two days later: known at Jan 6 for Jan 1..4
    assert known["n_rows"].tolist() == [1] * 5
    assert known["n_labelled"].tolist() == [1, 1, 1, 1, 0]
    assert known["known_positive_rate"].tolist()[:4] == [0.0, 1.0, 0.0, 0.0]
    assert np.isnan(known["known_positive_rate"].iloc[4])
    assert known["true_positive_rate"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert known.index.name == "period"
    weekly = summarize_label_availability(labelled, "2026-01-06", freq="W")
    assert weekly["n_rows"].sum() == 5
    with pytest.raises(ValueError, match="'cutoff' parameter"):
        summarize_label_availability(labelled, "someday")
    with pytest.raises(ValueError, match=r"\['is_fraud'\] not found"):
        summarize_label_availability(labelled.drop(columns="is_fraud"), "2026-01-06")


# --------------------------------------------------------------------------- leakage


def test_clean_time_split_passes(tx):
    report = check_leakage(time_split(tx, cutoff="2026-01-22", gap_days=7))

    assert report["passed"].all()
    assert report["check"].tolist() == ["shared_ids", "time_overlap", "label_not_available"]


def test_random_split_leaks_on_time_and_labels(labelled):
    train, test = labelled.iloc[[0, 2, 4, 6, 8]], labelled.iloc[[1, 3, 5, 7, 9]]

    report = check_leakage({"train": train, "test": test}, on_leak="ignore").set_index("check")

    assert report.loc["shared_ids", "passed"]
    assert report.loc["time_overlap", "n_rows"] == 4  # train rows from Jan 3 on
    # cutoff = start of test (Jan 2): no train label is known yet
    assert report.loc["label_not_available", "n_rows"] == 5
    with pytest.raises(LeakageError, match="4 train row"):
        check_leakage({"train": train, "test": test})
    with pytest.warns(LeakageWarning, match="leakage"):
        check_leakage({"train": train, "test": test}, on_leak="warn")


def test_shared_ids_and_the_given_cutoff(labelled):
    parts = {"train": labelled.iloc[:5], "test": labelled.iloc[4:]}

    report = check_leakage(parts, cutoff="2026-01-20", on_leak="ignore").set_index("check")

    assert report.loc["shared_ids", "n_rows"] == 1 and "104" in report.loc["shared_ids", "detail"]
    assert report.loc["label_not_available", "passed"]


@pytest.mark.parametrize(
    ("splits", "kwargs", "match"),
    [
        (lambda f: f, {}, "splits must be a TimeSplit"),
        (lambda f: {"train": f}, {}, "splits must be a TimeSplit"),
        (lambda f: {"train": f, "test": f.drop(columns="transaction_id")}, {}, "transaction_id"),
        (lambda f: {"train": f, "test": f}, {"on_leak": "shout"}, "'on_leak' parameter"),
        (lambda f: {"train": f, "test": f}, {"cutoff": "soon"}, "'cutoff' parameter"),
    ],
)
def test_check_leakage_rejects_bad_input(labelled, splits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_leakage(splits(labelled), **kwargs)


# --------------------------------------------------------------------------- imbalance


@pytest.fixture
def imbalanced():
    X = np.arange(40.0).reshape(-1, 1)
    return X, (X[:, 0] % 5 == 0).astype(int)  # 8 positives, 32 negatives


@pytest.mark.parametrize(
    ("method", "ratio", "sizes"),
    [("under", 1.0, 16), ("under", 0.5, 24), ("over", 1.0, 64), ("over", 0.5, 48)],
)
def test_resampled_classifier_reaches_the_ratio(imbalanced, method, ratio, sizes):
    X, y = imbalanced

    model = ResampledClassifier(LogisticRegression(), method=method, ratio=ratio).fit(X, y)

    assert model.n_resampled_ == sizes
    assert model.predict_proba(X).shape == (40, 2)
    assert model.predict(X).shape == (40,)


def test_resampled_classifier_is_deterministic_and_passes_sample_weight(imbalanced):
    X, y = imbalanced
    weights = np.linspace(1, 2, 40)

    a = ResampledClassifier(LogisticRegression(), random_state=3).fit(X, y, sample_weight=weights)
    b = ResampledClassifier(LogisticRegression(), random_state=3).fit(X, y, sample_weight=weights)

    np.testing.assert_array_equal(a.estimator_.coef_, b.estimator_.coef_)


def test_resampled_classifier_resamples_training_folds_only(tx):
    X, y = tx[["amount"]], tx["is_fraud"]
    model = ResampledClassifier(LogisticRegression(), ratio=1.0, random_state=0)

    cv = cross_validate(
        model, X, y, cv=StratifiedKFold(3), return_estimator=True, return_indices=True
    )

    for estimator, test in zip(cv["estimator"], cv["indices"]["test"], strict=True):
        assert estimator.n_resampled_ == 2 * int(y.drop(index=test).sum())  # balanced
        assert len(test) > estimator.n_resampled_  # test folds untouched


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "sideways"}, "'method' parameter"),
        ({"ratio": 0}, "'ratio' parameter"),
        ({"ratio": 2.0}, "'ratio' parameter"),
    ],
)
def test_resampled_classifier_validates_in_fit(imbalanced, kwargs, match):
    model = ResampledClassifier(LogisticRegression(), **kwargs)  # no error at creation
    with pytest.raises(ValueError, match=match):
        model.fit(*imbalanced)


@parametrize_with_checks([ResampledClassifier(LogisticRegression(), random_state=0)])
def test_resampled_classifier_is_a_scikit_learn_estimator(estimator, check):
    check(estimator)


def test_recall_at_precision():
    assert recall_at_precision([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], min_precision=1.0) == 0.5
    assert recall_at_precision([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], min_precision=0.6) == 1.0
    assert recall_at_precision([1, 0], [0.1, 0.9], min_precision=1.0) == 0.0
    with pytest.raises(ValueError, match="'min_precision' parameter"):
        recall_at_precision([0, 1], [0.1, 0.9], min_precision=0)
    with pytest.raises(ValueError, match="no positive"):
        recall_at_precision([0, 0], [0.1, 0.9])

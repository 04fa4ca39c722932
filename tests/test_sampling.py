"""Tests for production.sampling: samples, reservoir, time splits, leakage, imbalance."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.utils.estimator_checks import parametrize_with_checks

from production.config import RANDOM_STATE
from production.sampling import (
    LeakageError,
    LeakageWarning,
    ResampledClassifier,
    ReservoirSampler,
    TimeSplit,
    check_leakage,
    compute_class_weights,
    recall_at_precision,
    resample_indices,
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


# --------------------------------------------------------------------------- simple and stratified


def test_simple_random_sample_size_order_and_determinism(tx):
    a = simple_random_sample(tx, 500, random_state=1)
    b = simple_random_sample(tx, 500, random_state=1)
    c = simple_random_sample(tx, 500, random_state=2)

    assert len(a) == 500 and a.index.is_monotonic_increasing and a.index.is_unique
    assert_frame_equal(a, b)
    assert not a.index.equals(c.index)
    assert len(simple_random_sample(tx, frac=0.1)) == round(0.1 * len(tx))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of n or frac"),
        ({"n": 5, "frac": 0.1}, ValueError, "exactly one of n or frac"),
        ({"n": 11}, ValueError, "'n' parameter.*at most the number of rows \\(10\\)"),
        ({"n": 2.5}, TypeError, "'n' parameter"),
        ({"frac": 1.5}, ValueError, "'frac' parameter"),
        ({"n": 2, "random_state": -1}, ValueError, "'random_state' parameter"),
        ({"n": 2, "random_state": "a"}, TypeError, "'random_state' parameter"),
    ],
)
def test_simple_random_sample_rejects_bad_parameters(labelled, kwargs, error, match):
    with pytest.raises(error, match=match):
        simple_random_sample(labelled, **kwargs)


def test_simple_random_sample_needs_a_frame():
    with pytest.raises(TypeError, match="frame must be a pandas DataFrame"):
        simple_random_sample([1, 2, 3], 1)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=5),
    frac=st.floats(0, 1),
    random_state=st.integers(0, 1000),
)
def test_stratified_sample_keeps_every_share_to_the_row(sizes, frac, random_state):
    frame = pd.DataFrame({"stratum": np.repeat(np.arange(len(sizes)), sizes)})
    frame = frame.sample(frac=1.0, random_state=0)  # strata interleaved

    sample = stratified_sample(frame, "stratum", frac=frac, random_state=random_state)

    total = round(frac * len(frame))
    assert len(sample) == total
    counts = sample["stratum"].value_counts().reindex(range(len(sizes)), fill_value=0)
    exact = np.array(sizes) * total / len(frame)
    assert (np.abs(counts.to_numpy() - exact) < 1).all()


def test_stratified_sample_keeps_the_fraud_rate(tx):
    sample = stratified_sample(tx, "is_fraud", n=2_000, random_state=RANDOM_STATE)

    expected = tx["is_fraud"].mean() * 2_000
    assert abs(sample["is_fraud"].sum() - expected) < 1
    assert sample.index.is_monotonic_increasing
    assert_frame_equal(sample, stratified_sample(tx, "is_fraud", n=2_000))


def test_stratified_sample_by_two_columns_and_missing_values():
    frame = pd.DataFrame(
        {
            "channel": ["chip", "online", None, "chip"] * 25,
            "is_fraud": [0, 0, 1, 1] * 25,
        }
    )
    sample = stratified_sample(frame, ["channel", "is_fraud"], frac=0.2, random_state=0)

    assert sample.groupby(["channel", "is_fraud"], dropna=False).size().tolist() == [5] * 4


def test_stratified_sample_equal_allocation(tx):
    sample = stratified_sample(tx, "is_fraud", n_per_stratum=50, random_state=3)

    assert sample["is_fraud"].value_counts().to_dict() == {0: 50, 1: 50}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"by": "country", "n": 2}, ValueError, r"\['country'\] not found"),
        ({"by": [], "n": 2}, ValueError, "by must name at least one column"),
        ({"by": "is_fraud", "n": 2, "n_per_stratum": 1}, ValueError, "exactly one of n, frac"),
        ({"by": "is_fraud", "n_per_stratum": 4}, ValueError, "fewer than n_per_stratum=4"),
        ({"by": "is_fraud", "n_per_stratum": -1}, ValueError, "'n_per_stratum' parameter"),
        ({"by": "is_fraud"}, ValueError, "exactly one of n or frac"),
    ],
)
def test_stratified_sample_rejects_bad_parameters(labelled, kwargs, error, match):
    with pytest.raises(error, match=match):
        stratified_sample(labelled, **kwargs)


# --------------------------------------------------------------------------- reservoir


@pytest.mark.parametrize("method", ["R", "L"])
def test_reservoir_sample_is_uniform(method):
    frame = pd.DataFrame({"x": np.arange(20)})
    batches = [frame.iloc[:7], frame.iloc[7:]]
    counts = np.zeros(20)
    for random_state in range(1_000):
        sample = reservoir_sample(batches, 5, method=method, random_state=random_state)
        counts[sample["x"].to_numpy()] += 1

    # each row is kept with probability 5/20: 250 times in 1000 draws
    assert counts.sum() == 5_000
    assert stats.chisquare(counts).pvalue > 0.01, counts


@pytest.mark.parametrize("method", ["R", "L"])
def test_reservoir_sample_is_deterministic_whatever_the_batches(method):
    frame = pd.DataFrame({"x": np.arange(300), "y": np.arange(300) * 0.5}, index=np.arange(300) * 2)
    one = reservoir_sample([frame], 10, method=method, random_state=7)
    uneven = [frame.iloc[a:b] for a, b in [(0, 3), (3, 3), (3, 40), (40, 41), (41, 300)]]
    many = [frame.iloc[i : i + 1] for i in range(300)]  # compacts its pieces

    assert len(one) == 10 and one.index.is_monotonic_increasing
    assert_frame_equal(one, reservoir_sample(uneven, 10, method=method, random_state=7))
    assert_frame_equal(one, reservoir_sample(many, 10, method=method, random_state=7))
    assert not one.equals(reservoir_sample([frame], 10, method=method, random_state=8))


def test_reservoir_sample_over_simulated_days_equals_one_batch():
    params = {"n_customers": 100, "n_terminals": 40, "n_days": 40}
    streamed = reservoir_sample(iter_days(**params), 50, random_state=1)
    whole = reservoir_sample([simulate(**params).transactions], 50, random_state=1)

    assert_frame_equal(streamed, whole)
    assert streamed["tx_datetime"].dt.day.nunique() > 10  # spread over the stream


def test_reservoir_keeps_everything_from_a_short_stream():
    frame = pd.DataFrame({"x": [1, 2, 3]})
    sampler = ReservoirSampler(5).update(frame.iloc[:0]).update(frame)

    assert sampler.n_seen_ == 3
    assert_frame_equal(sampler.sample_, frame)
    assert ReservoirSampler(2).sample_.empty


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "'k' parameter"),
        ({"k": 1.5}, TypeError, "'k' parameter"),
        ({"k": 2, "method": "Z"}, ValueError, "'method' parameter"),
        ({"k": 2, "random_state": None}, TypeError, "'random_state' parameter"),
    ],
)
def test_reservoir_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReservoirSampler(**kwargs)


def test_reservoir_rejects_bad_batches():
    sampler = ReservoirSampler(2).update(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match=r"batch columns \['y'\] differ"):
        sampler.update(pd.DataFrame({"y": [1]}))
    with pytest.raises(TypeError, match="batch must be a pandas DataFrame"):
        sampler.update([1, 2])


# --------------------------------------------------------------------------- time splits


def test_time_split_respects_cutoff_gap_and_label_delay(tx):
    split = time_split(tx, cutoff="2026-01-22", validation_days=3, gap_days=7, test_days=5)
    cutoff = pd.Timestamp("2026-01-22")

    assert isinstance(split, TimeSplit) and split.cutoff == cutoff
    assert split.train["tx_datetime"].max() < pd.Timestamp("2026-01-12")
    assert split.validation["tx_datetime"].between("2026-01-12", "2026-01-15").all()
    assert split.validation["tx_datetime"].max() < pd.Timestamp("2026-01-15")
    assert split.test["tx_datetime"].between(cutoff, "2026-01-27", inclusive="left").all()
    for part in (split.train, split.validation):
        assert (part["label_available_at"] <= cutoff).all()
    # every test row of the window is kept, labelled or not
    in_test = (tx["tx_datetime"] >= cutoff) & (tx["tx_datetime"] < "2026-01-27")
    assert len(split.test) == in_test.sum()
    summary = split.summary
    assert summary.loc["gap", "n_rows"] == 0
    assert (
        summary.loc["gap", "n_dropped"]
        == tx["tx_datetime"].between("2026-01-15", cutoff, inclusive="left").sum()
    )
    assert summary["n_rows"].drop("gap").tolist() == [
        len(split.train),
        len(split.validation),
        len(split.test),
    ]
    assert "TimeSplit(cutoff=2026-01-22" in repr(split)


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


def test_time_split_without_label_times(labelled):
    split = time_split(labelled, cutoff="2026-01-05", label_time_col=None, label_col=None)

    assert split.train["transaction_id"].tolist() == [100, 101, 102, 103]
    assert "positive_rate" not in split.summary.columns


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cutoff": "not a date"}, ValueError, "'cutoff' parameter"),
        ({"cutoff": None}, ValueError, "'cutoff' parameter"),
        ({"cutoff": "2026-01-05", "gap_days": -1}, ValueError, "'gap_days' parameter"),
        ({"cutoff": "2026-01-05", "gap_days": "7"}, TypeError, "'gap_days' parameter"),
        ({"cutoff": "2026-01-05", "train_days": 0}, ValueError, "'train_days' parameter"),
        ({"cutoff": "2026-01-05", "test_days": True}, TypeError, "'test_days' parameter"),
        ({"cutoff": "2026-01-05", "time_col": "when"}, ValueError, r"\['when'\] not found"),
        ({"cutoff": "2026-01-05", "time_col": "is_fraud"}, TypeError, "'is_fraud' must be"),
        ({"cutoff": "2026-01-01"}, ValueError, "no training row"),
    ],
)
def test_time_split_rejects_bad_parameters(labelled, kwargs, error, match):
    with pytest.raises(error, match=match):
        time_split(labelled, **kwargs)


def test_summarize_label_availability(tx):
    known = summarize_label_availability(tx, "2026-01-22")

    assert known.index[-1] == pd.Timestamp("2026-01-21") and len(known) == 21
    # fraud labels take 1..14 days, legitimate ones 7: older than 14 days, all known;
    # 8..14 days, all but slow frauds; last week, only some frauds
    assert (known["share_labelled"].iloc[:7] == 1).all()
    assert (known["share_labelled"].iloc[7:14] > 0.98).all()
    assert (known["share_labelled"].iloc[-7:] < 0.05).all()
    assert (known["known_positive_rate"].iloc[-7:].dropna() == 1).all()
    assert known["n_labelled"].sum() == (tx["label_available_at"] <= "2026-01-22").sum()
    assert np.allclose(known["true_positive_rate"].iloc[:7], known["known_positive_rate"].iloc[:7])
    with pytest.raises(ValueError, match=r"\['label'\] not found"):
        summarize_label_availability(tx, "2026-01-22", label_col="label")


# --------------------------------------------------------------------------- leakage


def test_clean_time_split_passes(tx):
    report = check_leakage(time_split(tx, cutoff="2026-01-22", validation_days=3, gap_days=7))

    assert report["passed"].all()
    assert set(report["check"]) == {"shared_ids", "time_overlap", "label_not_available"}
    # pairs train->validation, train->test, validation->test; labels of train and validation
    assert len(report) == 3 * 2 + 2


def test_random_split_leaks_on_time_and_labels(tx):
    shuffled = tx.sample(frac=1.0, random_state=0)
    train, test = shuffled.iloc[: len(tx) // 2], shuffled.iloc[len(tx) // 2 :]

    report = check_leakage({"train": train, "test": test}, on_leak="ignore")

    failed = report.loc[~report["passed"]].set_index("check")
    assert set(failed.index) == {"time_overlap", "label_not_available"}
    assert failed.loc["time_overlap", "n_rows"] > 0.4 * len(train)
    assert "labelled after the cutoff" in failed.loc["label_not_available", "detail"]


def test_shared_ids_are_caught(labelled):
    splits = {"train": labelled.iloc[:6], "test": labelled.iloc[4:]}

    with pytest.raises(LeakageError, match=r"2 transaction_id\(s\) in both train and test"):
        check_leakage(splits, label_time_col=None)
    with pytest.warns(LeakageWarning, match="train ends 2026-01-06"):
        report = check_leakage(splits, label_time_col=None, on_leak="warn")
    assert report.set_index("check")["n_rows"].to_dict() == {"shared_ids": 2, "time_overlap": 2}


def test_label_check_uses_the_given_cutoff(labelled):
    splits = {"train": labelled.iloc[:5], "test": labelled.iloc[7:]}

    assert check_leakage(splits)["passed"].all()  # cutoff = test start 01-08
    with pytest.raises(LeakageError, match="2 train row\\(s\\) labelled after the cutoff"):
        check_leakage(splits, cutoff="2026-01-05")


def test_check_leakage_ignore_never_warns(labelled):
    splits = {"train": labelled, "test": labelled}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_leakage(splits, on_leak="ignore")
    assert not report["passed"].any()


@pytest.mark.parametrize(
    ("splits", "kwargs", "error", "match"),
    [
        ("train", {}, TypeError, "splits must be a TimeSplit or a dict"),
        ({"train": None}, {}, TypeError, "splits must be a TimeSplit or a dict"),
        ({"train": "x", "test": "y"}, {}, TypeError, r"splits\['train'\] must be a pandas"),
        (None, {"on_leak": "shout"}, ValueError, "'on_leak' parameter"),
        (None, {"id_col": "tx_id"}, ValueError, r"\['tx_id'\] not found in splits\['train'\]"),
    ],
)
def test_check_leakage_rejects_bad_input(labelled, splits, kwargs, error, match):
    splits = {"train": labelled, "test": labelled} if splits is None else splits
    with pytest.raises(error, match=match):
        check_leakage(splits, **kwargs)


# --------------------------------------------------------------------------- imbalance


def test_class_weights_balance_the_classes():
    y = np.array([0] * 90 + [1] * 10)
    weights = compute_class_weights(y)

    assert weights == pytest.approx({0: 100 / 180, 1: 100 / 20})
    total = pd.Series(y).map(weights).groupby(y).sum()
    assert total[0] == pytest.approx(total[1])
    assert compute_class_weights(["a", "b", "b"]) == pytest.approx({"a": 1.5, "b": 0.75})
    with pytest.raises(ValueError, match="y is empty"):
        compute_class_weights([])
    with pytest.raises(ValueError, match="Unknown label type"):
        compute_class_weights([0.5, 1.5])


def test_under_and_over_sampling_reach_the_ratio():
    y = np.array([0] * 90 + [1] * 10)

    under = resample_indices(y, method="under", ratio=0.5, random_state=0)
    over = resample_indices(y, method="over", ratio=0.5, random_state=0)

    assert np.bincount(y[under]).tolist() == [20, 10]
    assert np.bincount(y[over]).tolist() == [90, 45]
    assert set(np.flatnonzero(y == 1)) <= set(over)  # minority kept whole, plus copies
    assert np.array_equal(under, resample_indices(y, method="under", ratio=0.5, random_state=0))
    assert not np.array_equal(under, resample_indices(y, method="under", ratio=0.5))


def test_resampling_touches_only_the_given_training_indices():
    y = np.array([0, 1] * 50 + [0] * 100)
    train = np.arange(100, 200)  # only majority rows and the tail

    positions = resample_indices(y, train[::2], method="under", random_state=1)

    assert set(positions) <= set(train[::2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "smote"}, "'method' parameter"),
        ({"ratio": 0}, "'ratio' parameter"),
        ({"ratio": 1.5}, "'ratio' parameter"),
        ({"indices": []}, "no rows to resample"),
        ({"indices": [0, 9]}, r"integer positions in \[0, 4\)"),
        ({"indices": [0.5]}, "integer positions"),
    ],
)
def test_resample_indices_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resample_indices([0, 0, 0, 1], **kwargs)


def test_resampled_classifier_resamples_training_folds_only(tx):
    X = tx[["amount"]].assign(hour=tx["tx_datetime"].dt.hour)
    y = tx["is_fraud"]
    clf = ResampledClassifier(LogisticRegression(), method="under", ratio=0.5)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=RANDOM_STATE)

    result = cross_validate(
        clf, X, y, cv=cv, scoring="average_precision", return_estimator=True, return_indices=True
    )

    for fitted, train in zip(result["estimator"], result["indices"]["train"], strict=True):
        n_fraud = int(y.iloc[train].sum())
        assert fitted.n_resampled_ == 3 * n_fraud  # 2 legitimate rows per fraud
        assert list(fitted.feature_names_in_) == ["amount", "hour"]
    assert (result["test_score"] > y.mean()).all()  # scored on the full, imbalanced folds


def test_resampled_classifier_passes_sample_weight_along():
    X, y = np.arange(12.0).reshape(-1, 1), np.array([0] * 9 + [1] * 3)
    clf = ResampledClassifier(LogisticRegression(), method="over").fit(
        X, y, sample_weight=np.ones(12)
    )
    assert clf.n_resampled_ == 18
    assert clf.predict_proba(X).shape == (12, 2)
    assert clf.decision_function(X).shape == (12,)


def test_resampled_classifier_errors():
    with pytest.raises(TypeError, match="estimator must be a classifier with fit"):
        ResampledClassifier("tree").fit([[0], [1]], [0, 1])
    with pytest.raises(ValueError, match="'ratio' parameter"):
        ResampledClassifier(LogisticRegression(), ratio=2).fit([[0], [1]], [0, 1])
    with pytest.raises(ValueError, match="requires y to be passed"):
        ResampledClassifier(LogisticRegression()).fit([[0], [1]], None)
    with pytest.raises(ValueError, match="cannot fit on 0 samples"):
        ResampledClassifier(LogisticRegression()).fit(np.zeros((0, 1)), np.zeros(0, dtype=int))


def test_resampled_classifier_is_deterministic():
    X, y = np.arange(40.0).reshape(-1, 1), np.array([0] * 32 + [1] * 8)
    first = ResampledClassifier(LogisticRegression(), random_state=3).fit(X, y)
    second = ResampledClassifier(LogisticRegression(), random_state=3).fit(X, y)
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))


@parametrize_with_checks([ResampledClassifier(LogisticRegression(), random_state=0)])
def test_resampled_classifier_is_a_scikit_learn_estimator(estimator, check):
    check(estimator)


def test_recall_at_precision():
    y = [0, 0, 0, 1, 1, 1, 0, 1]
    score = [0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9]

    # precision of the top 1..5 scores: 1, 1/2, 2/3, 3/4, 4/5 (recall 1/4 .. 4/4)
    assert recall_at_precision(y, score, min_precision=1.0) == 0.25
    assert recall_at_precision(y, score, min_precision=0.85) == 0.25
    assert recall_at_precision(y, score, min_precision=0.78) == 1.0
    assert recall_at_precision([0, 1], [0.9, 0.1], min_precision=1.0) == 0.0
    with pytest.raises(ValueError, match="'min_precision' parameter"):
        recall_at_precision(y, score, min_precision=0)
    with pytest.raises(ValueError, match="no positive"):
        recall_at_precision([0, 0], [0.1, 0.2])

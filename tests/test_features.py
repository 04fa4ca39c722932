"""Tests for production.features: point-in-time windowed features, model features, pipelines."""

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from production.config import RANDOM_STATE
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    LeakageError,
    LeakageWarning,
    as_known_at,
    build_pipeline,
    build_preprocessor,
    check_point_in_time,
    compute_model_features,
    compute_windowed_features,
    report_leaks,
)
from production.simulate import simulate


@pytest.fixture
def tiny():
    """Three transactions: customer 1 twice, all at terminal 7, labels two days later."""
    times = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-05"])
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "terminal_id": [7, 7, 7],
            "tx_datetime": times,
            "amount": [10.0, 30.0, 50.0],
            "is_fraud": [1, 0, 0],
            "label_available_at": times + pd.Timedelta(days=2),
            "merchant_category": ["grocery", "fuel", "grocery"],
            "channel": ["chip", "online", "chip"],
        }
    )


@pytest.fixture(scope="module")
def simulated():
    return simulate(n_customers=120, n_terminals=40, n_days=20).transactions


# --------------------------------------------------------------------------- windowed features


def test_tiny_example_by_hand(tiny):
    got = compute_windowed_features(tiny, customer_windows=(1, 7), terminal_windows=7)

    assert got["customer_tx_count_7d"].tolist() == [0, 1, 0]
    assert got["customer_amount_mean_7d"].iloc[1] == 10.0
    assert got["customer_tx_count_1d"].tolist() == [0, 1, 0]  # [t - 1 day, t) includes t - 1 day
    assert got["terminal_tx_count_7d"].tolist() == [0, 1, 2]
    # on Jan 5 the fraud of Jan 1 is known (label on Jan 3), the label of Jan 2 too (Jan 4)
    assert got["terminal_fraud_count_7d"].tolist() == [0, 0, 1]
    assert got["terminal_fraud_rate_7d"].iloc[2] == 0.5
    # on Jan 2 the fraud of Jan 1 is not known yet
    assert np.isnan(got["terminal_fraud_rate_7d"].iloc[1])


def _brute_force(tx: pd.DataFrame, customer_windows, terminal_windows) -> pd.DataFrame:
    """The definitions, row by row: windows [t - w, t), labels known at t."""
    t_all = tx["tx_datetime"].to_numpy()
    label_at = tx["label_available_at"].to_numpy()
    fraud = tx["is_fraud"].to_numpy(dtype=float)
    amount = tx["amount"].to_numpy()
    customer, terminal = tx["customer_id"].to_numpy(), tx["terminal_id"].to_numpy()
    rows = []
    for i in range(len(tx)):
        t, row = t_all[i], {}
        for w in customer_windows:
            mine = (customer == customer[i]) & (t_all >= t - np.timedelta64(w, "D")) & (t_all < t)
            row[f"customer_tx_count_{w}d"] = int(mine.sum())
            row[f"customer_amount_mean_{w}d"] = amount[mine].mean() if mine.any() else np.nan
        for w in terminal_windows:
            here = (terminal == terminal[i]) & (t_all >= t - np.timedelta64(w, "D")) & (t_all < t)
            known = here & (label_at <= t) & ~np.isnan(fraud)  # NaT <= t is False
            frauds = known & (fraud == 1)
            row[f"terminal_tx_count_{w}d"] = int(here.sum())
            row[f"terminal_fraud_count_{w}d"] = int(frauds.sum())
            row[f"terminal_fraud_rate_{w}d"] = frauds.sum() / known.sum() if known.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=tx.index)


@st.composite
def small_transactions(draw):
    """Up to 20 transactions of 3 customers at 3 terminals over 8 days, on an hourly grid
    (so ties and window edges happen), labels 1 h to 6 days later or unknown."""
    n = draw(st.integers(1, 20))
    hours = draw(st.lists(st.integers(0, 8 * 24), min_size=n, max_size=n))
    delays = draw(st.lists(st.integers(1, 6 * 24) | st.none(), min_size=n, max_size=n))
    times = pd.Timestamp("2026-01-01") + pd.to_timedelta(hours, unit="h")
    label_at = [
        t + pd.Timedelta(hours=d) if d else pd.NaT for t, d in zip(times, delays, strict=True)
    ]
    ids = st.lists(st.integers(0, 2), min_size=n, max_size=n)
    frame = pd.DataFrame(
        {
            "customer_id": draw(ids),
            "terminal_id": draw(ids),
            "tx_datetime": times,
            "amount": draw(st.lists(st.integers(1, 9_999), min_size=n, max_size=n)),
            "is_fraud": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
            "label_available_at": pd.to_datetime(pd.Series(label_at, dtype="datetime64[ns]")),
        }
    )
    frame["amount"] = frame["amount"] / 100
    frame.index = draw(st.permutations(range(n))) if draw(st.booleans()) else frame.index
    return frame


@settings(max_examples=25, deadline=None)
@given(tx=small_transactions(), windows=st.sampled_from([(1,), (2, 3)]))
def test_windowed_features_match_the_brute_force_definition(tx, windows):
    got = compute_windowed_features(tx, customer_windows=windows, terminal_windows=windows)

    assert_frame_equal(got, _brute_force(tx, windows, windows)[got.columns], check_dtype=False)
    assert (got[[c for c in got.columns if "count" in c]].dtypes == "int64").all()


@settings(max_examples=10, deadline=None)
@given(tx=small_transactions(), cut=st.integers(0, 8 * 24))
def test_features_never_see_later_rows_or_labels(tx, cut):
    """Point in time: the features of rows up to T are the same on the data as known at T."""
    compute = functools.partial(compute_windowed_features, customer_windows=2, terminal_windows=3)
    cutoff = pd.Timestamp("2026-01-01") + pd.Timedelta(hours=cut)

    assert check_point_in_time(compute, tx, [cutoff])["passed"].all()


def test_pandas_and_dask_give_identical_features(simulated):
    shuffled = simulated.sample(frac=1.0, random_state=RANDOM_STATE)

    with_pandas = compute_windowed_features(shuffled)
    with_dask = compute_windowed_features(shuffled, backend="dask", npartitions=3)

    assert with_pandas.index.equals(shuffled.index)
    assert_frame_equal(with_dask, with_pandas, check_exact=True)
    assert_frame_equal(with_pandas.sort_index(), compute_windowed_features(simulated))


def test_repeated_windows_give_one_set_of_columns(tiny):
    got = compute_windowed_features(tiny, customer_windows=[7, 7], terminal_windows=(7,))

    assert list(got.columns[:2]) == ["customer_tx_count_7d", "customer_amount_mean_7d"]
    assert got.shape[1] == 5


def test_empty_transactions_give_empty_typed_features(tiny):
    got = compute_windowed_features(tiny.iloc[:0])

    assert got.empty and got["terminal_tx_count_28d"].dtype == "int64"


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda f: f.drop(columns="amount"), {}, r"\['amount'\] not found"),
        (lambda f: f.assign(tx_datetime="x"), {}, "tx_datetime"),
        (lambda f: f.set_axis([0, 0, 1]), {}, "unique index"),
        (lambda f: f.assign(label_available_at=f["tx_datetime"]), {}, "label_available_at"),
        (lambda f: f, {"customer_windows": 0}, "customer_windows"),
        (lambda f: f, {"terminal_windows": []}, "terminal_windows"),
        (lambda f: f, {"terminal_windows": "7"}, "terminal_windows"),
        (lambda f: f, {"backend": "spark"}, "backend"),
        (lambda f: f, {"npartitions": 0}, "npartitions"),
        (lambda f: f.to_dict(), {}, "transactions"),
    ],
)
def test_windowed_features_reject_bad_input(tiny, change, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_windowed_features(change(tiny), **kwargs)


# --------------------------------------------------------------------------- model features


def test_model_features_are_the_feature_columns(tiny):
    got = compute_model_features(tiny)

    assert list(got.columns) == list(FEATURE_COLUMNS) == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert got["tx_weekday"].tolist() == [3.0, 4.0, 0.0]  # Thu 1 Jan 2026, Fri, Mon
    assert got["tx_hour"].tolist() == [0.0, 0.0, 0.0]
    assert got["merchant_category"].dtype == object
    assert_frame_equal(compute_model_features(tiny, backend="dask"), got)


def test_model_features_name_a_missing_column(tiny):
    with pytest.raises(ValueError, match=r"\['channel'\] not found"):
        compute_model_features(tiny.drop(columns="channel"))


# --------------------------------------------------------------------------- point in time


def test_as_known_at_drops_later_rows_and_blanks_later_labels(tiny):
    known = as_known_at(tiny, "2026-01-03 12:00")

    assert list(known.index) == [0, 1]
    assert known["is_fraud"].tolist()[0] == 1.0 and np.isnan(known["is_fraud"].iloc[1])
    assert pd.isna(known["label_available_at"].iloc[1])
    assert tiny["is_fraud"].tolist() == [1, 0, 0]  # input untouched


@pytest.mark.parametrize(
    ("frame", "at", "match"),
    [
        (lambda f: f, "not a date", "'at'"),
        (lambda f: f, None, "'at'"),
        (lambda f: f.drop(columns="label_available_at"), "2026-01-02", "label_available_at"),
    ],
)
def test_as_known_at_rejects_bad_input(tiny, frame, at, match):
    with pytest.raises(ValueError, match=match):
        as_known_at(frame(tiny), at)


def _leaky_terminal_rate(frame: pd.DataFrame) -> pd.DataFrame:
    """Terminal fraud rate over 28 days, the tempting way: own label included, labels from the future."""
    ordered = frame.sort_values(["terminal_id", "tx_datetime"])
    rate = ordered.groupby("terminal_id").rolling("28D", on="tx_datetime")["is_fraud"].mean()
    return pd.DataFrame({"rate": rate.to_numpy()}, index=ordered.index).loc[frame.index]


def test_point_in_time_check_passes_the_package_and_catches_a_leak(simulated):
    cutoffs = ["2026-01-08", "2026-01-15"]

    honest = check_point_in_time(compute_windowed_features, simulated, cutoffs)
    leaky = check_point_in_time(_leaky_terminal_rate, simulated, cutoffs, on_leak="ignore")

    assert honest["passed"].all() and (honest["n_changed"] == 0).all()
    assert not leaky.loc["rate", "passed"] and leaky.loc["rate", "n_changed"] > 0
    with pytest.raises(LeakageError, match="rate changed"):
        check_point_in_time(_leaky_terminal_rate, simulated, cutoffs)
    with pytest.warns(LeakageWarning, match="rate changed"):
        check_point_in_time(_leaky_terminal_rate, simulated, cutoffs, on_leak="warn")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("not callable", "T", ["2026-01-02"]), {}, "compute_features"),
        ((compute_windowed_features, "T", []), {}, "cutoffs"),
        ((compute_windowed_features, "T", ["soon"]), {}, "cutoffs"),
        ((compute_windowed_features, "T", ["2026-01-02"]), {"on_leak": "shout"}, "on_leak"),
        ((lambda f: f["amount"], "T", ["2026-01-02"]), {}, "compute_features"),
        ((lambda f: f.head(1), "T", ["2026-01-02"]), {}, "indexed like"),
    ],
)
def test_point_in_time_check_rejects_bad_input(tiny, args, kwargs, match):
    args = [tiny if a == "T" else a for a in args]
    with pytest.raises(ValueError, match=match):
        check_point_in_time(*args, **kwargs)


def test_report_leaks():
    report_leaks([], "raise", "f: nothing")
    report_leaks(["x"], "ignore", "f: ignored")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report_leaks(["x"], "ignore", "f: ignored")
    with pytest.raises(LeakageError, match="f: leak: a; b"):
        report_leaks(["a", "b"], "raise", "f: leak")
    with pytest.raises(ValueError, match="on_leak"):
        report_leaks(["a"], "loud", "f: leak")


# --------------------------------------------------------------------------- pipelines


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "amount": [12.5, 80.0, np.nan, 5.2, 300.0, 42.0, 18.0, 7.5],
            "hour": [1, 13, 22, 9, 3, 15, 11, 20],
            "channel": ["web", "pos", "web", np.nan, "web", "atm", "pos", "web"],
            "is_fraud": [0, 1, 0, 0, 1, 0, 1, 0],
        }
    )


def test_preprocessor_is_the_standard_column_transformer(frame):
    by_hand = ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                ["amount", "hour"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                ["channel"],
            ),
        ]
    )
    built = build_preprocessor(["amount", "hour"], ["channel"])

    assert repr(built) == repr(by_hand)
    assert built.get_params(deep=False).keys() == by_hand.get_params(deep=False).keys()
    np.testing.assert_array_equal(built.fit_transform(frame), by_hand.fit_transform(frame))
    assert list(built.get_feature_names_out()) == [
        "num__amount",
        "num__hour",
        "cat__channel_atm",
        "cat__channel_missing",
        "cat__channel_pos",
        "cat__channel_web",
    ]


def test_preprocessor_imputes_and_ignores_unseen_categories(frame):
    pre = build_preprocessor("amount", "channel").fit(frame)
    new = pd.DataFrame({"amount": [np.nan], "channel": ["crypto"]})

    out = pre.transform(new)

    imputed = frame["amount"].fillna(frame["amount"].median())
    scaled = (imputed.median() - imputed.mean()) / imputed.std(ddof=0)
    assert (
        out.toarray().tolist()
        if hasattr(out, "toarray")
        else out.tolist() == [[scaled] + [0.0] * 4]
    )


def test_output_is_dense_for_gradient_boosting(frame):
    wide = frame.assign(shop=list("abcdefgh"))  # 1 number + 8 one-hot columns: mostly zeros
    pipe = build_pipeline(
        build_preprocessor(["amount"], ["shop"]), HistGradientBoostingClassifier(max_iter=3)
    )

    assert isinstance(pipe[:-1].fit_transform(wide), np.ndarray)
    assert pipe.fit(wide, wide["is_fraud"]).predict_proba(wide).shape == (8, 2)


def test_pipeline_step_names_are_grid_keys(frame):
    pipe = build_pipeline(build_preprocessor(["amount", "hour"], ["channel"]), LogisticRegression())
    grid = {"preprocess__num__impute__strategy": ["mean", "median"], "model__C": [0.1, 1.0]}

    search = GridSearchCV(pipe, grid, cv=2).fit(frame, frame["is_fraud"])

    assert [name for name, _ in pipe.steps] == ["preprocess", "model"]
    assert set(search.best_params_) == set(grid)


def test_missing_column_is_named_at_fit_and_transform(frame):
    pipe = build_pipeline(build_preprocessor(["amount_eur"], ["channel"]), LogisticRegression())
    with pytest.raises(ValueError, match="amount_eur"):
        pipe.fit(frame, frame["is_fraud"])

    pipe = build_pipeline(build_preprocessor(["amount"], ["channel"]), LogisticRegression())
    pipe.fit(frame, frame["is_fraud"])
    with pytest.raises(ValueError, match="channel"):
        pipe.predict(frame.drop(columns="channel"))


@pytest.mark.parametrize(
    ("args", "match"),
    [((["amount", 3],), "numeric_cols"), ((["amount"], {"channel": 1}), "categorical_cols")],
)
def test_build_preprocessor_rejects_bad_column_lists(args, match):
    with pytest.raises(ValueError, match=match):
        build_preprocessor(*args)


def test_preprocessor_keeps_a_column_with_no_value_yet():
    # a terminal's fraud rate before any label arrived: all missing in training
    train = pd.DataFrame({"amount": [1.0, 2.0, 3.0], "rate": [np.nan] * 3, "channel": list("abc")})
    out = build_preprocessor(["amount", "rate"], ["channel"]).fit(train)
    assert out.transform(train).shape == (3, 5)  # the width never depends on the data
    later = train.assign(rate=[0.5, 0.1, 0.2])
    assert list(out.get_feature_names_out()[:2]) == ["num__amount", "num__rate"]
    assert np.isfinite(out.transform(later)).all()

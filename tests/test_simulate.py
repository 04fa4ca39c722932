"""Tests for production.simulate: determinism, structure, fraud, labels, drift, errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.simulate import (
    CHANNELS,
    CUSTOMER_COLUMNS,
    FRAUD_SCENARIOS,
    MERCHANT_CATEGORIES,
    TERMINAL_COLUMNS,
    TRANSACTION_COLUMNS,
    SimulatedData,
    iter_days,
    simulate,
    simulate_profiles,
)

SMALL = {"n_customers": 200, "n_terminals": 60, "n_days": 20}
DRIFT_START = "2026-02-12"  # day 42 of the default 60


@pytest.fixture(scope="module")
def default_data() -> SimulatedData:
    return simulate()


@pytest.fixture(scope="module")
def drift_data() -> SimulatedData:
    return simulate(drift_start=DRIFT_START)


def _assert_data_equal(a: SimulatedData, b: SimulatedData) -> None:
    assert_frame_equal(a.customers, b.customers)
    assert_frame_equal(a.terminals, b.terminals)
    assert_frame_equal(a.transactions, b.transactions)
    assert a.params == b.params


# --------------------------------------------------------------------------- determinism


def test_same_parameters_give_identical_data():
    _assert_data_equal(simulate(**SMALL), simulate(**SMALL))


def test_same_parameters_with_drift_give_identical_data():
    params = SMALL | {"drift_start": "2026-01-10"}
    _assert_data_equal(simulate(**params), simulate(**params))


def test_different_random_state_gives_different_data():
    a, b = simulate(**SMALL, random_state=0), simulate(**SMALL, random_state=1)
    assert not a.customers["mean_amount"].equals(b.customers["mean_amount"])
    assert not a.terminals["x_location"].equals(b.terminals["x_location"])
    assert len(a.transactions) != len(b.transactions) or not a.transactions.equals(b.transactions)


def test_default_random_state_is_the_course_seed():
    assert simulate(**SMALL).params["random_state"] == RANDOM_STATE


def test_iter_days_equals_simulate(drift_data):
    days = list(iter_days(drift_start=DRIFT_START))
    assert len(days) == 60
    assert all(day["tx_datetime"].dt.normalize().nunique() == 1 for day in days)
    assert_frame_equal(pd.concat(days), drift_data.transactions)


def test_iter_days_slice_equals_the_same_days_of_simulate(drift_data):
    # days 40..49 straddle drift_start; compromises from days 13..49 must carry over
    days = pd.concat(list(iter_days(drift_start=DRIFT_START, start_day=40, end_day=50)))
    tx = drift_data.transactions
    window = (tx["tx_datetime"] >= "2026-02-10") & (tx["tx_datetime"] < "2026-02-20")
    assert_frame_equal(days, tx[window])
    assert (days["fraud_scenario"] == 2).any()


def test_simulate_profiles_equals_simulate(default_data):
    customers, terminals = simulate_profiles()
    assert_frame_equal(customers, default_data.customers)
    assert_frame_equal(terminals, default_data.terminals)


# --------------------------------------------------------------------------- structure


def test_columns_and_dtypes(default_data):
    c, t, tx = default_data.customers, default_data.terminals, default_data.transactions
    assert tuple(c.columns) == CUSTOMER_COLUMNS
    assert tuple(t.columns) == TERMINAL_COLUMNS
    assert tuple(tx.columns) == TRANSACTION_COLUMNS
    expected = {
        "transaction_id": "int64",
        "tx_datetime": "datetime64[ns]",
        "customer_id": "int64",
        "terminal_id": "int64",
        "amount": "float64",
        "merchant_category": "str",
        "channel": "str",
        "is_fraud": "int8",
        "fraud_scenario": "int8",
        "label_available_at": "datetime64[ns]",
    }
    assert {k: str(v) for k, v in tx.dtypes.items()} == expected
    assert str(c["customer_id"].dtype) == "int64" and str(c["home_region"].dtype) == "str"
    for col in ("x_location", "y_location", "mean_amount", "std_amount", "mean_tx_per_day"):
        assert c[col].dtype == "float64"
    assert str(t["terminal_id"].dtype) == "int64" and str(t["region"].dtype) == "str"
    assert set(tx["merchant_category"]) <= set(MERCHANT_CATEGORIES)
    assert set(tx["channel"]) == set(CHANNELS)
    assert set(tx["fraud_scenario"]) == {0, 1, 2, 3}  # no scenario 4 without drift


def test_empty_days_keep_the_dtypes():
    days = list(iter_days(n_customers=1, n_terminals=1, n_days=3))
    assert any(len(day) == 0 for day in days)
    assert all(tuple(day.columns) == TRANSACTION_COLUMNS for day in days)
    assert all(str(day["channel"].dtype) == "str" for day in days)


def test_requested_size(default_data):
    c, t, tx = default_data.customers, default_data.terminals, default_data.transactions
    assert c["customer_id"].tolist() == list(range(1000))
    assert t["terminal_id"].tolist() == list(range(300))
    dates = tx["tx_datetime"].dt.normalize()
    assert dates.min() == pd.Timestamp("2026-01-01")
    assert dates.max() == pd.Timestamp("2026-03-01")
    assert dates.nunique() == 60
    expected = c["mean_tx_per_day"].sum() * 60
    assert 100_000 < len(tx) < 150_000
    assert abs(len(tx) / expected - 1) < 0.05
    assert tx["customer_id"].isin(c["customer_id"]).all()
    assert tx["terminal_id"].isin(t["terminal_id"]).all()


def test_rows_sorted_and_ids_unique_increasing(drift_data):
    tx = drift_data.transactions
    assert isinstance(tx.index, pd.RangeIndex) and tx.index.equals(pd.RangeIndex(len(tx)))
    assert tx["tx_datetime"].is_monotonic_increasing
    assert tx["transaction_id"].is_unique
    assert tx["transaction_id"].is_monotonic_increasing
    day = (tx["tx_datetime"] - pd.Timestamp("2026-01-01")).dt.days
    assert (tx["transaction_id"] // 10**8 == day).all()


def test_amounts_positive_in_cents(default_data):
    amount = default_data.transactions["amount"]
    assert (amount > 0).all()
    assert np.allclose(amount, amount.round(2), rtol=0, atol=1e-9)


def test_customers_use_terminals_near_home(default_data):
    tx = default_data.transactions.merge(
        default_data.customers[["customer_id", "x_location", "y_location"]], on="customer_id"
    ).merge(
        default_data.terminals[["terminal_id", "x_location", "y_location"]],
        on="terminal_id",
        suffixes=("_c", "_t"),
    )
    physical = tx[tx["channel"] != "online"]
    dist = np.hypot(
        physical["x_location_c"] - physical["x_location_t"],
        physical["y_location_c"] - physical["y_location_t"],
    )
    assert dist.quantile(0.95) <= 10.0
    assert (tx.loc[tx["channel"] == "online", "merchant_category"] == "online_retail").all()
    assert (physical["merchant_category"] != "online_retail").all()


def test_daily_weekly_and_category_rhythms(default_data):
    tx = default_data.transactions
    legit = tx[tx["is_fraud"] == 0]
    hours = legit["tx_datetime"].dt.hour
    assert (hours < 6).mean() < 0.05
    per_weekday = legit.groupby(legit["tx_datetime"].dt.day_of_week).size() / legit.groupby(
        legit["tx_datetime"].dt.day_of_week
    )["tx_datetime"].apply(lambda s: s.dt.normalize().nunique())
    assert per_weekday.idxmax() in (4, 5)  # Friday or Saturday
    by_category = legit.groupby("merchant_category")["amount"].mean()
    assert by_category["travel"] > 2 * by_category["grocery"]
    assert by_category["electronics"] > 2 * by_category["grocery"]
    contactless = legit[legit["channel"] == "contactless"]
    assert (contactless["amount"] <= 100).all()


# --------------------------------------------------------------------------- fraud


@pytest.mark.parametrize(
    "params",
    [{}, {"n_customers": 2000, "n_terminals": 1000, "n_days": 30, "random_state": 7}],
    ids=["defaults", "2000x1000x30"],
)
def test_fraud_rate_in_band(params, default_data):
    tx = default_data.transactions if not params else simulate(**params).transactions
    assert 0.005 <= tx["is_fraud"].mean() <= 0.02
    assert (tx["is_fraud"] == (tx["fraud_scenario"] > 0)).all()
    assert set(tx["fraud_scenario"].unique()) <= set(FRAUD_SCENARIOS)


def test_each_scenario_is_a_real_share(default_data):
    share = default_data.transactions["fraud_scenario"].value_counts(normalize=True)
    assert 0.0003 < share[1] < 0.005
    assert 0.001 < share[2] < 0.01
    assert 0.001 < share[3] < 0.01


def test_high_amount_rule_catches_only_scenario_1(default_data):
    tx = default_data.transactions
    s1 = tx[tx["fraud_scenario"] == 1]
    assert (s1["amount"] > 450).all()
    assert (tx.loc[tx["is_fraud"] == 0, "amount"] <= 450).all()
    assert (tx.loc[tx["is_fraud"] == 1, "amount"] <= 450).mean() > 0.5  # the rule misses most


def test_compromised_terminals_stay_fraudulent(default_data):
    tx = default_data.transactions
    s2 = tx[tx["fraud_scenario"] == 2]
    spans = s2.groupby("terminal_id")["tx_datetime"].agg(["min", "max"])
    assert (spans["max"] - spans["min"]).max() >= pd.Timedelta(days=20)
    for terminal, row in spans.iterrows():
        during = tx[
            (tx["terminal_id"] == terminal) & tx["tx_datetime"].between(row["min"], row["max"])
        ]
        assert (during["is_fraud"] == 1).all()


def test_compromised_customers_spend_five_times_more(default_data):
    tx = default_data.transactions
    s3 = tx[tx["fraud_scenario"] == 3]
    legit = tx[(tx["is_fraud"] == 0) & tx["customer_id"].isin(s3["customer_id"])]
    ratio = s3.groupby("customer_id")["amount"].median() / legit.groupby("customer_id")[
        "amount"
    ].median().reindex(s3["customer_id"].unique())
    assert ratio.median() > 3


# --------------------------------------------------------------------------- labels


def test_label_delay(default_data):
    tx = default_data.transactions
    delay = tx["label_available_at"] - tx["tx_datetime"]
    assert (delay > pd.Timedelta(0)).all()
    assert (delay[tx["is_fraud"] == 0] == pd.Timedelta(days=7)).all()
    fraud_delay = delay[tx["is_fraud"] == 1]
    assert fraud_delay.min() >= pd.Timedelta(days=1)
    assert fraud_delay.max() <= pd.Timedelta(days=14)
    assert fraud_delay.nunique() > 100
    assert fraud_delay.std() > pd.Timedelta(days=2)


def test_label_delay_follows_parameter():
    tx = simulate(**SMALL, label_delay_days=2).transactions
    delay = tx["label_available_at"] - tx["tx_datetime"]
    assert (delay[tx["is_fraud"] == 0] == pd.Timedelta(days=2)).all()
    assert delay[tx["is_fraud"] == 1].between(pd.Timedelta(days=1), pd.Timedelta(days=4)).all()


# --------------------------------------------------------------------------- drift


def test_days_before_drift_equal_no_drift_run(default_data, drift_data):
    cut = pd.Timestamp(DRIFT_START)
    before, base = drift_data.transactions, default_data.transactions
    assert_frame_equal(before[before["tx_datetime"] < cut], base[base["tx_datetime"] < cut])


def test_drift_adds_scenario_4_only_after_drift_start(drift_data):
    tx = drift_data.transactions
    s4 = tx[tx["fraud_scenario"] == 4]
    assert len(s4) > 50
    assert s4["tx_datetime"].min() >= pd.Timestamp(DRIFT_START)
    assert (s4["channel"] == "online").all() and (s4["amount"] <= 10).all()
    assert 0.005 <= tx["is_fraud"].mean() <= 0.02


def test_drift_shifts_amounts_and_channels(default_data, drift_data):
    cut = pd.Timestamp(DRIFT_START)
    after = drift_data.transactions[drift_data.transactions["tx_datetime"] >= cut]
    base = default_data.transactions[default_data.transactions["tx_datetime"] >= cut]
    legit_after, legit_base = after[after["is_fraud"] == 0], base[base["is_fraud"] == 0]
    assert legit_after["amount"].mean() > 1.15 * legit_base["amount"].mean()
    online_after = (legit_after["channel"] == "online").mean()
    assert online_after > (legit_base["channel"] == "online").mean() + 0.05


def test_drift_start_accepts_dates():
    a = simulate(**SMALL, drift_start="2026-01-10")
    b = simulate(**SMALL, drift_start=dt.date(2026, 1, 10), start_date=dt.date(2026, 1, 1))
    _assert_data_equal(a, b)


def test_a_time_of_day_is_dropped_from_dates():
    a = simulate(**SMALL, start_date="2026-01-01", drift_start="2026-01-10")
    b = simulate(
        **SMALL,
        start_date=pd.Timestamp("2026-01-01 12:00", tz="UTC"),
        drift_start=np.datetime64("2026-01-10T23:59"),
    )
    _assert_data_equal(a, b)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"n_days": 0},
            ValueError,
            r"The 'n_days' parameter of simulate must be an int >= 1\. Got 0 instead\.",
        ),
        ({"n_days": 2.5}, TypeError, r"'n_days' .* an int >= 1\. Got 2\.5 instead"),
        ({"n_customers": 0}, ValueError, r"'n_customers' .* \[1, 10000000\]\. Got 0 instead"),
        ({"n_customers": 10**7 + 1}, ValueError, r"'n_customers' .* Got 10000001 instead"),
        ({"n_customers": True}, TypeError, r"'n_customers' .* Got True instead"),
        ({"n_terminals": 0}, ValueError, r"'n_terminals' .* an int >= 1\. Got 0 instead"),
        ({"n_terminals": "300"}, TypeError, r"'n_terminals' .* Got '300' instead"),
        ({"label_delay_days": 0}, ValueError, r"'label_delay_days' .* >= 1\. Got 0 instead"),
        ({"label_delay_days": 7.0}, TypeError, r"'label_delay_days' .* Got 7\.0 instead"),
        ({"random_state": -1}, ValueError, r"'random_state' .* an int >= 0\. Got -1 instead"),
        ({"random_state": None}, TypeError, r"'random_state' .* Got None instead"),
        ({"random_state": np.random.default_rng(0)}, TypeError, r"'random_state' .* Got Gen"),
        ({"start_date": 20260101}, TypeError, r"'start_date' .* a date.*Got 20260101 instead"),
        ({"start_date": "yesterday"}, ValueError, r"'start_date' .* Got 'yesterday' instead"),
        ({"start_date": None}, TypeError, r"'start_date' .* Got None instead"),
        ({"drift_start": 5}, TypeError, r"'drift_start' .* Got 5 instead"),
        ({"drift_start": "2026-13-01"}, ValueError, r"'drift_start' .* Got '2026-13-01'"),
        (
            {"drift_start": "2025-12-31"},
            ValueError,
            r"'drift_start' .* a date in \[2026-01-01, 2026-03-01\].*"
            r"Got '2025-12-31' instead",
        ),
        ({"drift_start": "2026-03-02"}, ValueError, r"'drift_start' .* Got '2026-03-02'"),
    ],
)
def test_simulate_rejects_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        simulate(**params)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"n_days": 0}, ValueError, r"'n_days' parameter of iter_days .* Got 0 instead"),
        ({"start_day": -1}, ValueError, r"'start_day' .* \[0, 59\]\. Got -1 instead"),
        ({"start_day": 60}, ValueError, r"'start_day' .* \[0, 59\]\. Got 60 instead"),
        ({"start_day": 1.0}, TypeError, r"'start_day' .* Got 1\.0 instead"),
        ({"start_day": 5, "end_day": 5}, ValueError, r"'end_day' .* \[6, 60\]\. Got 5 instead"),
        ({"end_day": 61}, ValueError, r"'end_day' .* \[1, 60\]\. Got 61 instead"),
        ({"end_day": "10"}, TypeError, r"'end_day' .* Got '10' instead"),
        ({"n_clients": 5}, TypeError, r"unexpected keyword argument 'n_clients'"),
    ],
)
def test_iter_days_rejects_bad_parameters_at_call(params, error, match):
    with pytest.raises(error, match=match):
        iter_days(**params)  # raises before the first day is generated


def test_simulate_profiles_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"'n_terminals' parameter of simulate_profiles"):
        simulate_profiles(n_terminals=0)


def test_repr_is_short(default_data):
    text = repr(default_data)
    assert text.startswith("SimulatedData(customers=1000, terminals=300, transactions=")
    assert "\n" not in text


# --------------------------------------------------------------------------- features matter


def _raw_features(tx: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": tx["amount"],
            "hour": tx["tx_datetime"].dt.hour,
            "channel": tx["channel"].map({c: i for i, c in enumerate(CHANNELS)}).astype(int),
        },
        index=tx.index,
    )


def _windowed_features(tx: pd.DataFrame) -> pd.DataFrame:
    features = _raw_features(tx)
    # customer's mean amount over the last 7 days (this transaction included)
    by_customer = tx.sort_values(["customer_id", "tx_datetime"], kind="stable")
    mean_7d = by_customer.groupby("customer_id").rolling("7D", on="tx_datetime")["amount"].mean()
    features.loc[by_customer.index, "customer_mean_7d"] = mean_7d.to_numpy()
    features["amount_ratio_7d"] = features["amount"] / features["customer_mean_7d"]
    # terminal's known frauds of the last 28 days: labels available before this transaction
    frauds = tx.loc[tx["is_fraud"] == 1, ["terminal_id", "tx_datetime", "label_available_at"]]
    pairs = (
        tx[["terminal_id", "tx_datetime"]]
        .reset_index()
        .merge(frauds, on="terminal_id", suffixes=("", "_fraud"))
    )
    known = (pairs["label_available_at"] <= pairs["tx_datetime"]) & (
        pairs["tx_datetime_fraud"] >= pairs["tx_datetime"] - pd.Timedelta(days=28)
    )
    counts = pairs[known].groupby("index").size()
    features["terminal_frauds_28d"] = counts.reindex(tx.index, fill_value=0)
    return features


def test_windowed_features_beat_raw_features(default_data):
    tx = default_data.transactions
    day = (tx["tx_datetime"] - tx["tx_datetime"].min()).dt.days
    train, test = day < 42, day >= 42  # first 70 % of the 60 days / last 30 %
    y = tx["is_fraud"]
    scores = {}
    for name, features in {"raw": _raw_features(tx), "windowed": _windowed_features(tx)}.items():
        model = HistGradientBoostingClassifier(random_state=RANDOM_STATE)
        with threadpool_limits(1):  # OpenMP threads on a busy 2-core machine: 10x slower
            model.fit(features[train], y[train])
        scores[name] = average_precision_score(y[test], model.predict_proba(features[test])[:, 1])
    # measured on the defaults: raw 0.18, windowed 0.46 (gaps 0.20-0.30 for random_state 0..3)
    assert scores["windowed"] > scores["raw"] + 0.12, scores

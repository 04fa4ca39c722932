"""Tests for production.features: windowed point-in-time features, pipelines, feature origins."""

import functools
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.features import (
    CheckedColumnTransformer,
    LeakageError,
    LeakageWarning,
    as_known_at,
    build_pipeline,
    build_preprocessor,
    check_point_in_time,
    compute_customer_features,
    compute_terminal_features,
    compute_windowed_features,
    get_feature_origins,
)
from production.simulate import simulate


@pytest.fixture
def transactions():
    """Ten card transactions with numeric, categorical and missing values."""
    return pd.DataFrame(
        {
            "amount": [12.5, 80.0, np.nan, 5.2, 300.0, 42.0, 18.0, 7.5, 64.0, 150.0],
            "hour": [1, 13, 22, 9, 3, 15, 11, 20, 8, 23],
            "channel": ["web", "pos", "web", "pos", "web", "atm", "pos", "web", "pos", "web"],
            "country": ["CA", "CA", "US", "CA", "FR", "CA", "US", "CA", np.nan, "CA"],
            "card_type": ["visa", "mc", "visa", "visa", "mc", "visa", "amex", "visa", "mc", "visa"],
        }
    )


def make_preprocessor(onehot=None, **kwargs):
    """Course-style preprocessor: "num" impute->scale, "cat" impute->one-hot."""
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", onehot or OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer(
        [("num", num, ["amount", "hour"]), ("cat", cat, ["channel", "country"])], **kwargs
    )


def test_course_preprocessor_maps_dummies_to_their_column(transactions):
    ct = make_preprocessor().fit(transactions)

    origins = get_feature_origins(ct)

    # channel: atm, pos, web; country: CA, FR, US
    assert origins == ["amount", "hour"] + ["channel"] * 3 + ["country"] * 3
    assert len(origins) == ct.transform(transactions).shape[1]


def test_pipeline_ending_in_column_transformer_gives_same_origins(transactions):
    ct = make_preprocessor()
    pipeline = Pipeline([("preprocess", ct), ("model", LogisticRegression())])
    pipeline.fit(transactions, [0, 1] * 5)

    assert get_feature_origins(pipeline[:-1]) == get_feature_origins(ct)


@pytest.mark.parametrize(
    ("onehot", "expected_channel", "expected_country"),
    [
        (OneHotEncoder(drop="first"), 2, 2),
        (OneHotEncoder(drop="if_binary"), 3, 3),
        # min_frequency=2: atm (1) and FR (1) join the infrequent group, US (2) stays
        (OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2), 3, 3),
        (OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=3), 3, 2),
        (OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=2), 2, 2),
        (OneHotEncoder(drop="first", min_frequency=3), 2, 1),
        (OneHotEncoder(sparse_output=False, handle_unknown="ignore"), 3, 3),
    ],
)
def test_one_hot_variants(transactions, onehot, expected_channel, expected_country):
    ct = make_preprocessor(onehot=onehot).fit(transactions)

    origins = get_feature_origins(ct)

    assert origins == (
        ["amount", "hour"] + ["channel"] * expected_channel + ["country"] * expected_country
    )
    assert len(origins) == ct.transform(transactions).shape[1]


@pytest.mark.parametrize("verbose", [True, False])
@pytest.mark.parametrize("remainder", ["passthrough", "drop"])
def test_passthrough_remainder_and_verbose_names(transactions, verbose, remainder):
    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(), ["channel"]),
            ("keep", "passthrough", ["hour"]),
            ("ordinal", OrdinalEncoder(), ["card_type"]),
            ("gone", "drop", ["country"]),
        ],
        remainder=remainder,
        verbose_feature_names_out=verbose,
    ).fit(transactions)

    origins = get_feature_origins(ct)

    expected = ["channel"] * 3 + ["hour", "card_type"]
    if remainder == "passthrough":
        expected.append("amount")
    assert origins == expected
    assert len(origins) == ct.transform(transactions).shape[1]


@pytest.mark.parametrize(
    "columns",
    [
        ["amount", "hour"],
        [0, 1],
        slice(0, 2),
        slice("amount", "hour"),
        [True, True, False, False, False],
        make_column_selector(dtype_include="number"),
    ],
    ids=["names", "positions", "slice", "label-slice", "mask", "selector"],
)
def test_column_selections(transactions, columns):
    ct = ColumnTransformer(
        [("num", StandardScaler(), columns), ("cat", OneHotEncoder(), ["card_type"])]
    ).fit(transactions.fillna({"amount": 0.0}))

    assert get_feature_origins(ct) == ["amount", "hour"] + ["card_type"] * 3


def test_missing_indicator_and_binned_columns_map_back(transactions):
    ct = ColumnTransformer(
        [
            ("num", SimpleImputer(add_indicator=True), ["amount", "hour"]),
            (
                "bins",
                KBinsDiscretizer(
                    n_bins=3, encode="onehot", quantile_method="averaged_inverted_cdf"
                ),
                ["hour"],
            ),
        ]
    ).fit(transactions)

    # amount, hour, missingindicator_amount, then 3 one-hot bins of hour
    assert get_feature_origins(ct) == ["amount", "hour", "amount"] + ["hour"] * 3


def test_nested_column_transformer_in_pipeline(transactions):
    inner = ColumnTransformer(
        [("onehot", OneHotEncoder(), ["channel"]), ("scale", StandardScaler(), ["hour"])]
    )
    ct = ColumnTransformer(
        [("nested", Pipeline([("inner", inner), ("scale", StandardScaler())]), ["channel", "hour"])]
    ).fit(transactions)

    assert get_feature_origins(ct) == ["channel"] * 3 + ["hour"]


def test_fitted_on_numpy_uses_sklearn_default_names():
    X = np.array([[1.0, 0], [2.0, 1], [3.0, 2], [4.0, 1]])
    ct = ColumnTransformer([("num", StandardScaler(), [0]), ("cat", OneHotEncoder(), [1])]).fit(X)

    assert get_feature_origins(ct) == ["x0", "x1", "x1", "x1"]


def test_unfitted_column_transformer_raises(transactions):
    with pytest.raises(NotFittedError, match="ColumnTransformer is not fitted"):
        get_feature_origins(make_preprocessor())


def test_unfitted_pipeline_raises():
    with pytest.raises(NotFittedError, match="Pipeline is not fitted"):
        get_feature_origins(Pipeline([("preprocess", make_preprocessor())]))


def test_wrong_type_raises():
    with pytest.raises(TypeError, match="preprocessor must be a fitted ColumnTransformer"):
        get_feature_origins(OneHotEncoder())


def test_column_mixing_transformer_raises(transactions):
    ct = ColumnTransformer([("pca", PCA(n_components=1), ["amount", "hour"])])
    ct.fit(transactions.fillna({"amount": 0.0}))

    with pytest.raises(ValueError, match="'pca0' of preprocessor transformer 'pca'"):
        get_feature_origins(ct)


def test_whole_model_pipeline_raises(transactions):
    pipeline = Pipeline([("preprocess", make_preprocessor()), ("model", LogisticRegression())])
    pipeline.fit(transactions, [0, 1] * 5)

    with pytest.raises(ValueError, match=r"step 'model' \(LogisticRegression\).*pipeline\[:-1\]"):
        get_feature_origins(pipeline)


class _MisnamedEncoder(OneHotEncoder):
    """One-hot encoder that announces one output name too many."""

    def get_feature_names_out(self, input_features=None):
        return np.append(super().get_feature_names_out(input_features), "extra")


class _ShortNames(TransformerMixin, BaseEstimator):
    """Outputs two columns per input but names only one."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=float)
        return np.hstack([X, X])

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object)


def test_inconsistent_one_hot_names_raise(transactions):
    ct = ColumnTransformer([("cat", _MisnamedEncoder(), ["channel"])]).fit(transactions)

    with pytest.raises(ValueError, match="could not trace the 4 one-hot columns"):
        get_feature_origins(ct)


def test_transformer_naming_fewer_outputs_than_it_makes_raises(transactions):
    ct = ColumnTransformer([("odd", _ShortNames(), ["amount", "hour"])]).fit(transactions)

    with pytest.raises(ValueError, match="transformer 'odd' outputs 4 column"):
        get_feature_origins(ct)


# --------------------------------------------------------------------------- windowed features

DAY = pd.Timedelta(days=1)


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
    """Up to 25 transactions of 3 customers at 3 terminals over 8 days, on an hourly grid
    (so ties and window edges happen), labels 1 h to 6 days later or unknown."""
    n = draw(st.integers(1, 25))
    hours = draw(st.lists(st.integers(0, 8 * 24), min_size=n, max_size=n))
    delays = draw(st.lists(st.integers(1, 6 * 24) | st.none(), min_size=n, max_size=n))
    start = pd.Timestamp("2026-01-01")
    times = start + pd.to_timedelta(hours, unit="h")
    label_at = [
        t + pd.Timedelta(hours=d) if d else pd.NaT for t, d in zip(times, delays, strict=True)
    ]
    ids = st.lists(st.integers(0, 2), min_size=n, max_size=n)
    frame = pd.DataFrame(
        {
            "customer_id": draw(ids),
            "terminal_id": draw(ids),
            "tx_datetime": times,
            "amount": draw(st.lists(st.integers(1, 99_999), min_size=n, max_size=n)),
            "is_fraud": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
            "label_available_at": pd.to_datetime(pd.Series(label_at, dtype="datetime64[ns]")),
        }
    )
    frame["amount"] = frame["amount"] / 100
    frame.index = draw(st.permutations(range(n))).copy() if draw(st.booleans()) else frame.index
    return frame


@settings(max_examples=80, deadline=None)
@given(tx=small_transactions(), windows=st.sampled_from([(1,), (2, 3), (1, 7)]))
def test_windowed_features_match_the_brute_force_definition(tx, windows):
    got = compute_windowed_features(tx, customer_windows=windows, terminal_windows=windows)

    expected = _brute_force(tx, windows, windows)[got.columns]
    assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    counts = [c for c in got.columns if "count" in c]
    assert (got[counts].dtypes == "int64").all()


@settings(max_examples=25, deadline=None)
@given(tx=small_transactions(), cut=st.integers(0, 8 * 24))
def test_features_never_see_later_rows_or_labels(tx, cut):
    """Point in time: features of rows up to T are the same on the data as known at T."""
    cutoff = pd.Timestamp("2026-01-01") + pd.Timedelta(hours=cut)

    report = check_point_in_time(
        functools.partial(compute_windowed_features, customer_windows=2, terminal_windows=3),
        tx,
        [cutoff],
    )

    assert report["passed"].all()


def test_features_do_not_depend_on_row_order():
    tx = simulate(n_customers=100, n_terminals=30, n_days=15).transactions
    shuffled = tx.sample(frac=1.0, random_state=RANDOM_STATE)

    features = compute_windowed_features(shuffled)

    assert features.index.equals(shuffled.index)
    assert_frame_equal(features.sort_index(), compute_windowed_features(tx), check_exact=True)


@pytest.fixture(scope="module")
def simulated():
    return simulate(n_customers=300, n_terminals=80, n_days=40).transactions


def test_pandas_and_dask_give_identical_features(simulated):
    import dask.dataframe as dd

    pandas = compute_windowed_features(simulated, terminal_windows=(7, 28))
    dask = compute_windowed_features(
        simulated, terminal_windows=(7, 28), backend="dask", npartitions=3
    )
    lazy = compute_windowed_features(
        dd.from_pandas(simulated, npartitions=4), terminal_windows=(7, 28)
    )

    assert_frame_equal(pandas, dask, check_exact=True)
    assert isinstance(lazy, dd.DataFrame)
    assert_frame_equal(lazy.compute().sort_index(), pandas, check_exact=True)


def test_simulated_features_make_sense(simulated):
    features = compute_windowed_features(simulated)
    compromised = simulated["fraud_scenario"] == 2

    # U(0, 4) transactions a day per customer; seen from a transaction, busy customers
    # weigh more: E[r^2] / E[r] = 8/3 a day, ~80 in 30 days once 30 days have passed
    late = simulated["tx_datetime"] >= "2026-02-01"
    assert 65 < features.loc[late, "customer_tx_count_30d"].mean() < 95
    # known frauds pile up at compromised terminals, only after their labels arrive
    assert features.loc[compromised, "terminal_fraud_rate_28d"].mean() > 0.2  # measured 0.30
    assert features.loc[~compromised, "terminal_fraud_rate_28d"].mean() < 0.02
    first_days = simulated["tx_datetime"] < "2026-01-02"
    assert (features.loc[first_days, "terminal_fraud_count_28d"] == 0).all()


def test_windowed_features_lift_average_precision(simulated):
    from sklearn.metrics import average_precision_score

    features = compute_windowed_features(simulated)
    raw = pd.DataFrame(
        {"amount": simulated["amount"], "hour": simulated["tx_datetime"].dt.hour},
        index=simulated.index,
    )
    train = simulated["tx_datetime"] < "2026-01-28"
    test = simulated["tx_datetime"] >= "2026-02-04"  # a week's gap for the labels
    y = simulated["is_fraud"]
    scores = {}
    for name, X in {"raw": raw, "windowed": raw.join(features)}.items():
        model = HistGradientBoostingClassifier(random_state=RANDOM_STATE)
        with threadpool_limits(limits=1):  # OpenMP threads crawl on a busy 2-core machine
            model.fit(X[train], y[train])
        scores[name] = average_precision_score(y[test], model.predict_proba(X[test])[:, 1])
    # measured: raw 0.23, windowed 0.53
    assert scores["windowed"] > scores["raw"] + 0.15, scores


def test_empty_frames_give_empty_typed_features():
    tx = simulate(n_customers=10, n_terminals=5, n_days=1).transactions.iloc[:0]

    features = compute_windowed_features(tx, customer_windows=1, terminal_windows=1)

    assert features.empty and features.index.equals(tx.index)
    assert features.dtypes.to_dict() == {
        "customer_tx_count_1d": "int64",
        "customer_amount_mean_1d": "float64",
        "terminal_tx_count_1d": "int64",
        "terminal_fraud_count_1d": "int64",
        "terminal_fraud_rate_1d": "float64",
    }


@pytest.fixture
def tiny():
    times = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-05"])
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "terminal_id": [7, 7, 7],
            "tx_datetime": times,
            "amount": [10.0, 30.0, 50.0],
            "is_fraud": [1, 0, 0],
            "label_available_at": times + pd.Timedelta(days=2),
        }
    )


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (lambda f: f.drop(columns="amount"), {}, ValueError, r"\['amount'\] not found"),
        (lambda f: f.drop(columns="is_fraud"), {}, ValueError, r"\['is_fraud'\] not found"),
        (
            lambda f: f.assign(tx_datetime=f["tx_datetime"].astype(str)),
            {},
            TypeError,
            "column 'tx_datetime' must be datetime64",
        ),
        (lambda f: f.set_index(pd.Index([0, 0, 1])), {}, ValueError, "index.*must be unique"),
        (
            lambda f: f.assign(tx_datetime=f["tx_datetime"].where(f.index != 1)),
            {},
            ValueError,
            "'tx_datetime' has missing values",
        ),
        (
            lambda f: f.assign(label_available_at=f["tx_datetime"]),
            {},
            ValueError,
            "3 row\\(s\\) have label_available_at <= tx_datetime",
        ),
        (lambda f: f, {"customer_windows": 0}, ValueError, "'customer_windows' parameter"),
        (lambda f: f, {"terminal_windows": [7, 7]}, ValueError, "'terminal_windows' parameter"),
        (lambda f: f, {"terminal_windows": "7D"}, TypeError, "'terminal_windows' parameter"),
        (lambda f: f, {"customer_windows": [1.5]}, TypeError, "'customer_windows' parameter"),
        (lambda f: f, {"backend": "spark"}, ValueError, "'backend' parameter"),
        (lambda f: f, {"npartitions": 0}, ValueError, "'npartitions' parameter"),
        (lambda f: f.to_numpy(), {}, TypeError, "transactions must be a pandas DataFrame"),
    ],
)
def test_windowed_features_reject_bad_input(tiny, change, kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_windowed_features(change(tiny), **kwargs)


def test_single_kind_functions_validate_too(tiny):
    with pytest.raises(ValueError, match=r"\['customer_id'\] not found"):
        compute_customer_features(tiny.drop(columns="customer_id"))
    with pytest.raises(ValueError, match="label_available_at <= tx_datetime"):
        compute_terminal_features(tiny.assign(label_available_at=tiny["tx_datetime"]))
    with pytest.raises(ValueError, match="'windows' parameter"):
        compute_terminal_features(tiny, windows=-3)


def test_dask_reports_bad_labels_at_compute_time(tiny):
    import dask.dataframe as dd

    bad = dd.from_pandas(tiny.assign(label_available_at=tiny["tx_datetime"]), npartitions=1)
    lazy = compute_windowed_features(bad)
    with pytest.raises(ValueError, match="label_available_at <= tx_datetime"):
        lazy.compute()


# --------------------------------------------------------------------------- leakage check


def _leaky_terminal_rate(frame: pd.DataFrame) -> pd.DataFrame:
    """The classic mistake: the terminal's fraud rate over ALL its rows, labels included."""
    rate = frame.groupby("terminal_id")["is_fraud"].transform("mean")
    return pd.DataFrame({"terminal_fraud_rate": rate}, index=frame.index)


def test_point_in_time_check_catches_future_labels(simulated):
    cutoffs = ["2026-01-15", "2026-01-25"]
    clean = check_point_in_time(compute_windowed_features, simulated, cutoffs)
    assert clean["passed"].all() and (clean["n_checked"] > 0).all()

    with pytest.raises(LeakageError, match="terminal_fraud_rate changed for"):
        check_point_in_time(_leaky_terminal_rate, simulated, cutoffs)
    with pytest.warns(LeakageWarning, match="information from the future"):
        report = check_point_in_time(_leaky_terminal_rate, simulated, cutoffs, on_leak="warn")
    assert report.loc["terminal_fraud_rate", "n_changed"] > 0
    assert "with all the data" in report.loc["terminal_fraud_rate", "example"]


def test_point_in_time_check_catches_a_centred_window(simulated):
    def centred(frame):
        ordered = frame.sort_values("tx_datetime")
        mean = ordered.rolling("2D", on="tx_datetime", center=True)["amount"].mean()
        return pd.DataFrame({"amount_around": mean}, index=ordered.index).loc[frame.index]

    report = check_point_in_time(centred, simulated, ["2026-01-20"], on_leak="ignore")
    assert not report.loc["amount_around", "passed"]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("not callable", None, ["2026-01-05"]), {}, TypeError, "must be a callable"),
        ((None, None, []), {}, ValueError, "cutoffs is empty"),
        ((None, None, ["tomorrow-ish"]), {}, ValueError, "cutoffs must be datetime-like"),
        ((None, None, ["2026-01-05"]), {"on_leak": "loud"}, ValueError, "'on_leak' parameter"),
        ((None, None, ["2026-01-05"]), {"label_time_col": "known_at"}, ValueError, "known_at"),
        ((lambda f: f[["amount"]].to_numpy(), None, ["2026-01-05"]), {}, TypeError, "return"),
        ((lambda f: f[["amount"]].iloc[:1], None, ["2026-01-05"]), {}, TypeError, "one row per"),
    ],
)
def test_point_in_time_check_rejects_bad_input(tiny, args, kwargs, error, match):
    compute, _, cutoffs = args
    compute = compute_windowed_features if compute is None else compute
    with pytest.raises(error, match=match):
        check_point_in_time(compute, tiny, cutoffs, **kwargs)


def test_as_known_at_drops_later_rows_and_blanks_later_labels(tiny):
    view = as_known_at(tiny, "2026-01-03")

    assert view.index.tolist() == [0, 1]  # the row of 01-05 has not happened yet
    assert view.loc[0, "is_fraud"] == 1.0 and pd.isna(view.loc[1, "is_fraud"])
    assert view.loc[0, "label_available_at"] == pd.Timestamp("2026-01-03")  # known exactly then
    assert pd.isna(view.loc[1, "label_available_at"])
    assert tiny["is_fraud"].dtype == "int64"  # the input is untouched


@pytest.mark.parametrize(
    ("at", "kwargs", "error", "match"),
    [
        ("someday", {}, ValueError, "at must be a date or time"),
        (None, {}, ValueError, "at must be a date or time"),
        ("2026-01-03", {"label_time_col": "known_at"}, ValueError, r"\['known_at'\] not found"),
    ],
)
def test_as_known_at_rejects_bad_input(tiny, at, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_known_at(tiny, at, **kwargs)


# --------------------------------------------------------------------------- build_preprocessor


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "amount": [12.5, 80.0, np.nan, 5.2, 300.0, 42.0],
            "customer_tx_count_7d": [3, 0, 5, 2, 8, 1],
            "channel": pd.array(["chip", "online", None, "chip", "swipe", "online"], dtype="str"),
            "merchant_category": ["grocery", "fuel", "fuel", "travel", "grocery", "fuel"],
            "risk": ["low", "high", "mid", "low", None, "mid"],
        }
    )


Y = [0, 1, 0, 1, 0, 1]


def test_preprocessor_steps_and_grid_keys(frame):
    pre = build_preprocessor(
        ["amount", "customer_tx_count_7d"], ["channel", "merchant_category"], ["risk"]
    )
    pipe = build_pipeline(pre, LogisticRegression())

    assert isinstance(pre, CheckedColumnTransformer) and isinstance(pre, ColumnTransformer)
    assert [name for name, _, _ in pre.transformers] == ["num", "cat", "ordinal"]
    assert [name for name, _ in pipe.steps] == ["preprocess", "model"]
    keys = pipe.get_params()
    for key in (
        "model__C",
        "preprocess__num__impute__strategy",
        "preprocess__num__scale",
        "preprocess__cat__impute__fill_value",
        "preprocess__cat__encode__min_frequency",
        "preprocess__ordinal__encode__categories",
    ):
        assert key in keys
    encoder = keys["preprocess__cat__encode"]
    assert encoder.handle_unknown == "infrequent_if_exist" and encoder.sparse_output is False


def test_preprocessor_imputes_scales_encodes(frame):
    pre = build_preprocessor(["amount"], ["channel"], ["risk"]).fit(frame)
    out = pd.DataFrame(pre.transform(frame), columns=pre.get_feature_names_out())

    assert not out.isna().any().any()
    assert out["num__amount"].mean() == pytest.approx(0.0)
    assert list(out.columns) == [
        "num__amount",
        "cat__channel_chip",
        "cat__channel_missing",
        "cat__channel_online",
        "cat__channel_swipe",
        "ordinal__risk",
    ]
    assert out["cat__channel_missing"].tolist() == [0, 0, 1, 0, 0, 0]
    assert out["ordinal__risk"].iloc[4] == -1  # missing


def test_unseen_categories_become_zeros_or_infrequent(frame):
    pre = build_preprocessor(["amount"], ["merchant_category"], ["risk"]).fit(frame)
    new = frame.head(2).assign(merchant_category=["casino", "fuel"], risk=["extreme", "low"])

    out = pd.DataFrame(pre.transform(new), columns=pre.get_feature_names_out())

    onehot = out.filter(like="cat__")
    assert onehot.iloc[0].sum() == 0 and onehot.iloc[1].sum() == 1
    assert out["ordinal__risk"].tolist()[0] == -1

    grouped = build_preprocessor([], ["merchant_category"], min_frequency=2).fit(frame)
    names = list(grouped.get_feature_names_out())
    assert names[-1] == "cat__merchant_category_infrequent_sklearn"  # travel
    assert grouped.transform(new)[0].tolist() == [0, 0, 1]  # casino -> infrequent


def test_preprocessor_output_feeds_histgradientboosting(frame):
    pipe = build_pipeline(
        build_preprocessor(["amount", "customer_tx_count_7d"], ["channel"], scale=False),
        HistGradientBoostingClassifier(max_iter=5, random_state=RANDOM_STATE),
    ).fit(frame, Y)

    assert pipe.predict_proba(frame).shape == (6, 2)
    assert pipe.named_steps["preprocess"].named_transformers_["num"]["scale"] == "passthrough"


def test_feature_names_map_back_to_original_columns(frame):
    pipe = build_pipeline(
        build_preprocessor(["amount"], ["channel", "merchant_category"], ["risk"]),
        LogisticRegression(),
    ).fit(frame, Y)

    assert get_feature_origins(pipe[:-1]) == (
        ["amount"] + ["channel"] * 4 + ["merchant_category"] * 3 + ["risk"]
    )


def test_preprocessor_works_in_a_grid_search_and_clones(frame):
    pipe = build_pipeline(build_preprocessor(["amount"], ["channel"]), LogisticRegression())
    search = GridSearchCV(
        pipe, {"preprocess__num__impute__strategy": ["mean", "median"], "model__C": [0.1, 1]}, cv=2
    ).fit(frame, Y)

    assert set(search.best_params_) == {"preprocess__num__impute__strategy", "model__C"}
    assert isinstance(clone(pipe)[0], CheckedColumnTransformer)


def test_missing_column_named_at_fit_time(frame):
    pipe = build_pipeline(build_preprocessor(["amount_eur"], ["channel"]), LogisticRegression())

    with pytest.raises(
        ValueError, match=r"fit: column\(s\) \['amount_eur'\] \(transformer 'num'\)"
    ):
        pipe.fit(frame, Y)


def test_missing_column_named_at_transform_time(frame):
    pipe = build_pipeline(build_preprocessor(["amount"], ["channel"]), LogisticRegression())
    pipe.fit(frame, Y)

    with pytest.raises(ValueError, match=r"transform: column\(s\) \['channel'\].*available"):
        pipe.predict(frame.drop(columns="channel"))


def test_missing_column_named_at_build_time_with_x(frame):
    with pytest.raises(
        ValueError, match=r"build_preprocessor: column\(s\) \['hour'\] not found in X"
    ):
        build_preprocessor(["amount", "hour"], ["channel"], X=frame)


def test_sklearn_nameless_error_is_renamed(frame):
    ct = CheckedColumnTransformer([("num", StandardScaler(), ["amount"])])
    ct._check_columns = lambda X, method: None  # let scikit-learn meet the missing column

    with pytest.raises(ValueError, match="a column named in transformers is not in X") as info:
        ct.fit_transform(frame.drop(columns="amount"))
    assert re.search("not (a column|columns) of the dataframe", str(info.value.__cause__))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, ValueError, "at least one column"),
        ((["amount"], ["amount"]), {}, ValueError, r"\['amount'\] are listed under more than one"),
        (([1, 2],), {}, TypeError, "'numeric_cols' parameter"),
        ((["amount"], 5), {}, TypeError, "'categorical_cols' parameter"),
        ((["amount"],), {"numeric_strategy": "mode"}, ValueError, "'numeric_strategy' parameter"),
        ((["amount"],), {"X": [[1]]}, TypeError, "X must be a pandas DataFrame"),
    ],
)
def test_build_preprocessor_rejects_bad_parameters(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_preprocessor(*args, **kwargs)


def test_single_column_names_are_accepted(frame):
    pre = build_preprocessor("amount", "channel").fit(frame)
    assert get_feature_origins(pre) == ["amount"] + ["channel"] * 4


def test_build_pipeline_rejects_non_estimators():
    with pytest.raises(TypeError, match="preprocessor must be a transformer"):
        build_pipeline(LogisticRegression(), LogisticRegression())
    with pytest.raises(TypeError, match="model must be an estimator with fit"):
        build_pipeline(build_preprocessor(["amount"]), "hgb")

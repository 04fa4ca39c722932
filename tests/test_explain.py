import tracemalloc

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import shap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from production.explain import (  # noqa: E402
    compute_explained_output,
    compute_partial_dependence,
    compute_permutation_importance,
    compute_shap_values,
    plot_partial_dependence,
    plot_shap_summary,
    plot_shap_waterfall,
)

FEATURES = ["amount", "hour", "noise", "channel", "country"]


def make_transactions(n_rows, random_state):
    """Fraud-like data: fraud driven by amount and channel (and a rare country), not noise."""
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, n_rows),
            "hour": rng.integers(0, 24, n_rows).astype(float),
            "noise": rng.normal(size=n_rows),
            "channel": rng.choice(["web", "pos", "atm", "phone"], n_rows, p=[0.4, 0.4, 0.15, 0.05]),
            "country": rng.choice(
                ["CA", "US", "MX", "FR", "XX"], n_rows, p=[0.5, 0.3, 0.1, 0.08, 0.02]
            ),
        }
    )
    logit = (
        -7.0
        + 1.2 * np.log1p(X["amount"])
        + 2.0 * (X["channel"] == "web")
        + 1.0 * (X["country"] == "XX")
    )
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    X.loc[rng.random(n_rows) < 0.05, "amount"] = np.nan
    X.loc[rng.random(n_rows) < 0.02, "country"] = np.nan
    return X, y.to_numpy()


def make_pipeline(model):
    """Course-style pipeline: "preprocess" (num impute->scale, cat impute->one-hot) + "model"."""
    preprocess = ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                ["amount", "hour", "noise"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "onehot",
                            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.03),
                        ),
                    ]
                ),
                ["channel", "country"],
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("model", model)])


class MarginOnlyClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression hiding coef_, so compute_shap_values takes the permutation path."""

    def fit(self, X, y):
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def decision_function(self, X):
        return self.model_.decision_function(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


@pytest.fixture(scope="module")
def data():
    return make_transactions(2000, random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    models = {
        "hgb": HistGradientBoostingClassifier(max_iter=30, random_state=0),
        "forest": RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
        "logistic": LogisticRegression(max_iter=1000),
        "knn": KNeighborsClassifier(n_neighbors=15),
        "margin_only": MarginOnlyClassifier(),
    }
    return {name: make_pipeline(model).fit(X, y) for name, model in models.items()}


@pytest.fixture(autouse=True)
def no_open_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- SHAP


@pytest.mark.parametrize(
    ("name", "background_rows"),
    [("hgb", 100), ("forest", 100), ("logistic", 100), ("knn", 20), ("margin_only", 50)],
)
def test_shap_values_add_up_to_the_explained_output(data, fitted, name, background_rows):
    X, _ = data
    rows = X.iloc[:40]

    explanation = compute_shap_values(fitted[name], rows, background_rows=background_rows)

    output = compute_explained_output(fitted[name], rows)
    np.testing.assert_allclose(
        explanation.values.sum(axis=1) + explanation.base_values, output, atol=1e-8
    )


def test_explained_output_is_margin_or_probability(data, fitted):
    X, _ = data
    rows = X.iloc[:20]

    np.testing.assert_allclose(
        compute_explained_output(fitted["hgb"], rows), fitted["hgb"].decision_function(rows)
    )
    np.testing.assert_allclose(
        compute_explained_output(fitted["logistic"], rows),
        fitted["logistic"].decision_function(rows),
    )
    np.testing.assert_allclose(
        compute_explained_output(fitted["forest"], rows), fitted["forest"].predict_proba(rows)[:, 1]
    )


def test_one_hot_values_are_summed_back_per_original_column(data, fitted):
    X, _ = data
    rows = X.iloc[:50]
    pipeline = fitted["hgb"]

    explanation = compute_shap_values(pipeline, rows)

    assert explanation.shape == (50, len(FEATURES))
    assert explanation.feature_names == FEATURES
    raw = shap.TreeExplainer(pipeline[-1])(pipeline[:-1].transform(rows)).values
    names = list(pipeline[:-1].get_feature_names_out())
    for feature in FEATURES:
        prefix = f"cat__{feature}_" if feature in ("channel", "country") else f"num__{feature}"
        columns = [i for i, name in enumerate(names) if name.startswith(prefix)]
        expected = raw[:, columns].sum(axis=1)
        np.testing.assert_allclose(explanation[:, feature].values, expected, atol=1e-12)
    assert len([n for n in names if n.startswith("cat__channel_")]) == 4


def test_linear_values_are_summed_back_per_original_column(data, fitted):
    X, _ = data
    rows = X.iloc[:300]
    pipeline = fitted["logistic"]

    # background_rows >= len(rows): the background is every row
    explanation = compute_shap_values(pipeline, rows, background_rows=300)

    # interventional linear SHAP: coef * (x - mean of background), summed over the dummies
    Xt = pipeline[:-1].transform(rows)
    per_column = pipeline[-1].coef_[0] * (Xt - Xt.mean(axis=0))
    names = list(pipeline[:-1].get_feature_names_out())
    channel = [i for i, name in enumerate(names) if name.startswith("cat__channel_")]
    np.testing.assert_allclose(
        explanation[:, "channel"].values, per_column[:, channel].sum(axis=1), atol=1e-10
    )


def test_permutation_fallback_is_exact_for_a_linear_margin(data, fitted):
    X, _ = data
    rows = X.iloc[:30]

    linear = compute_shap_values(fitted["logistic"], rows, background_rows=50)
    permutation = compute_shap_values(fitted["margin_only"], rows, background_rows=50)

    # for a model linear in the transformed columns every order gives the exact values
    np.testing.assert_allclose(permutation.values, linear.values, atol=1e-10)
    np.testing.assert_allclose(permutation.base_values, linear.base_values, atol=1e-10)


def test_data_holds_original_values_of_sampled_rows(data, fitted):
    X, _ = data

    explanation = compute_shap_values(fitted["hgb"], X, max_rows=300, random_state=7)

    assert explanation.shape == (300, len(FEATURES))
    channel = explanation[:, "channel"].data
    amount = explanation[:, "amount"].data.astype(float)
    assert set(channel) <= set(X["channel"])
    # the sampled rows are rows of X, kept in their original order
    matches = X["amount"].to_numpy()[:, None] == amount[None, :]
    positions = np.flatnonzero(matches.any(axis=1))
    assert len(positions) == np.sum(~np.isnan(amount))
    assert np.all(np.diff(positions) > 0)


@pytest.mark.parametrize(("name", "background_rows"), [("hgb", 100), ("knn", 10)])
def test_shap_values_are_deterministic(data, fitted, name, background_rows):
    X, _ = data
    kwargs = {"max_rows": 30, "background_rows": background_rows, "random_state": 3}

    first = compute_shap_values(fitted[name], X, **kwargs)
    second = compute_shap_values(fitted[name], X, **kwargs)

    np.testing.assert_array_equal(first.values, second.values)
    np.testing.assert_array_equal(first.base_values, second.base_values)
    pd.testing.assert_frame_equal(pd.DataFrame(first.data), pd.DataFrame(second.data))


def test_extra_columns_in_X_are_ignored(data, fitted):
    X, _ = data
    rows = X.iloc[:10].assign(transaction_id=range(10))

    explanation = compute_shap_values(fitted["hgb"], rows)

    assert explanation.feature_names == FEATURES


# --------------------------------------------------------------------------- plots


@pytest.fixture(scope="module")
def explanation(data, fitted):
    X, _ = data
    return compute_shap_values(fitted["hgb"], X, max_rows=200)


@pytest.mark.parametrize("kind", ["beeswarm", "bar"])
def test_summary_plot_returns_a_closed_figure(explanation, kind):
    fig = plot_shap_summary(explanation, kind=kind, max_display=3)

    assert isinstance(fig, Figure)
    assert fig.axes
    assert plt.get_fignums() == []


def test_waterfall_returns_figure_and_restores_interactive_mode(explanation):
    plt.ion()
    try:
        fig = plot_shap_waterfall(explanation, row=-1)
        assert plt.isinteractive()
    finally:
        plt.ioff()

    assert isinstance(fig, Figure)
    assert plt.get_fignums() == []


def test_summary_plot_rejects_non_explanation():
    with pytest.raises(TypeError, match="explanation must be a shap.Explanation"):
        plot_shap_summary(np.zeros((3, 2)))


def test_summary_plot_rejects_single_row(explanation):
    with pytest.raises(ValueError, match=r"must be 2-dimensional.*\(5,\)"):
        plot_shap_summary(explanation[0])


def test_summary_plot_rejects_unknown_kind(explanation):
    with pytest.raises(ValueError, match="'kind' parameter of plot_shap_summary.*'violin'"):
        plot_shap_summary(explanation, kind="violin")


def test_summary_plot_rejects_bad_max_display(explanation):
    with pytest.raises(ValueError, match="'max_display' parameter of plot_shap_summary"):
        plot_shap_summary(explanation, max_display=0)


@pytest.mark.parametrize("row", [200, -201, 1.5])
def test_waterfall_rejects_row_out_of_range(explanation, row):
    with pytest.raises(ValueError, match=r"'row' parameter of plot_shap_waterfall.*\[-200, 199\]"):
        plot_shap_waterfall(explanation, row=row)


# -------------------------------------------------------------------- input errors


ALL_HELPERS = {
    "compute_shap_values": lambda p, X: compute_shap_values(p, X),
    "compute_explained_output": lambda p, X: compute_explained_output(p, X),
    "compute_permutation_importance": lambda p, X: compute_permutation_importance(
        p, X, np.zeros(len(X))
    ),
    "compute_partial_dependence": lambda p, X: compute_partial_dependence(p, X, "amount"),
}


@pytest.mark.parametrize("func", ALL_HELPERS, ids=list(ALL_HELPERS))
def test_missing_columns_are_named(data, fitted, func):
    X, _ = data

    with pytest.raises(ValueError, match=rf"{func}: column\(s\) \['channel'\] not found in X"):
        ALL_HELPERS[func](fitted["hgb"], X.drop(columns="channel"))


@pytest.mark.parametrize("func", ALL_HELPERS, ids=list(ALL_HELPERS))
def test_unfitted_pipeline_raises(data, func):
    X, _ = data

    with pytest.raises(NotFittedError, match=f"{func}: the pipeline is not fitted"):
        ALL_HELPERS[func](make_pipeline(LogisticRegression()), X)


@pytest.mark.parametrize("func", ALL_HELPERS, ids=list(ALL_HELPERS))
def test_non_pipeline_raises(data, fitted, func):
    X, _ = data

    with pytest.raises(TypeError, match=f"{func}: pipeline must be a scikit-learn Pipeline"):
        ALL_HELPERS[func](fitted["hgb"][-1], X)


@pytest.mark.parametrize("func", ALL_HELPERS, ids=list(ALL_HELPERS))
def test_non_dataframe_raises(data, fitted, func):
    X, _ = data

    with pytest.raises(TypeError, match=f"{func}: X must be a pandas DataFrame.*ndarray"):
        ALL_HELPERS[func](fitted["hgb"], X.to_numpy())


def test_empty_X_raises(data, fitted):
    X, _ = data

    with pytest.raises(ValueError, match="compute_shap_values: X has no rows"):
        compute_shap_values(fitted["hgb"], X.iloc[:0])


def test_pipeline_fitted_without_column_names_raises():
    X = np.random.default_rng(0).normal(size=(20, 2))
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    pipeline.fit(X, [0, 1] * 10)

    with pytest.raises(ValueError, match="fitted without column names"):
        compute_shap_values(pipeline, pd.DataFrame(X, columns=["x0", "x1"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rows": 0}, "'max_rows' parameter of compute_shap_values must be an int >= 1"),
        ({"background_rows": "10"}, "'background_rows' parameter .* Got '10'"),
    ],
)
def test_bad_sizes_raise(data, fitted, kwargs, message):
    X, _ = data

    with pytest.raises(ValueError, match=message):
        compute_shap_values(fitted["hgb"], X, **kwargs)


def test_multiclass_model_raises(data):
    X, _ = data
    y = np.arange(len(X)) % 3
    pipeline = make_pipeline(LogisticRegression(max_iter=200)).fit(X, y)

    with pytest.raises(ValueError, match=r"only binary classifiers.*has 3 classes"):
        compute_shap_values(pipeline, X.iloc[:5])


# ---------------------------------------------------------- permutation importance


def test_permutation_importance_ranks_signal_above_noise(data, fitted):
    X, y = data

    importance = compute_permutation_importance(fitted["hgb"], X, y, n_repeats=3)

    assert list(importance.columns) == ["feature", "importance_mean", "importance_std"]
    assert sorted(importance["feature"]) == sorted(FEATURES)
    assert importance["importance_mean"].is_monotonic_decreasing
    rank = dict(zip(importance["feature"], importance.index, strict=True))
    assert rank["amount"] < rank["noise"]
    assert rank["channel"] < rank["noise"]


def test_permutation_importance_is_deterministic_and_stratified(data, fitted):
    X, y = data

    first = compute_permutation_importance(fitted["hgb"], X, y, n_repeats=2, max_rows=500)
    second = compute_permutation_importance(fitted["hgb"], X, y, n_repeats=2, max_rows=500)

    pd.testing.assert_frame_equal(first, second)


def test_permutation_importance_rejects_misaligned_y(data, fitted):
    X, y = data

    with pytest.raises(ValueError, match=r"one label per row of X \(2000\).*\(1999,\)"):
        compute_permutation_importance(fitted["hgb"], X, y[:-1])


def test_permutation_importance_rejects_bad_repeats(data, fitted):
    X, y = data

    with pytest.raises(ValueError, match="'n_repeats' parameter"):
        compute_permutation_importance(fitted["hgb"], X, y, n_repeats=0)


# -------------------------------------------------------------- partial dependence


def test_partial_dependence_numeric_grid(data, fitted):
    X, _ = data

    pdp = compute_partial_dependence(fitted["hgb"], X, "amount", grid_resolution=15)

    assert list(pdp.columns) == ["feature", "value", "average"]
    assert len(pdp) == 15
    assert pdp["value"].is_monotonic_increasing
    low, high = X["amount"].quantile([0.05, 0.95])
    assert pdp["value"].iloc[0] == pytest.approx(low)
    assert pdp["value"].iloc[-1] == pytest.approx(high)
    assert pdp["average"].between(0, 1).all()
    # fraud gets likelier with the amount in this data
    assert pdp["average"].iloc[-1] > pdp["average"].iloc[0]


def test_partial_dependence_individual_and_categorical(data, fitted):
    X, _ = data

    pdp = compute_partial_dependence(
        fitted["hgb"], X, "channel", kind="both", max_rows=100, grid_resolution=3
    )

    assert list(pdp.columns) == ["feature", "row", "value", "individual", "average"]
    assert len(pdp) == 100 * 3
    # the 3 most frequent channels form the grid
    assert set(pdp["value"]) == set(X["channel"].value_counts().index[:3])
    averages = pdp.groupby("value")["individual"].mean()
    np.testing.assert_allclose(averages, pdp.groupby("value")["average"].first())


def test_partial_dependence_is_deterministic(data, fitted):
    X, _ = data

    first = compute_partial_dependence(fitted["hgb"], X, "hour", kind="individual", max_rows=50)
    second = compute_partial_dependence(fitted["hgb"], X, "hour", kind="individual", max_rows=50)

    pd.testing.assert_frame_equal(first, second)


def test_partial_dependence_memory_stays_small_on_50k_rows(fitted):
    X, _ = make_transactions(50_000, random_state=1)

    tracemalloc.start()
    try:
        compute_partial_dependence(fitted["hgb"], X, "amount", kind="both")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # 2,000 sampled rows x 20 grid values: ~2.5 MB measured; all 50k rows: ~57 MB
    assert peak < 10e6


@pytest.mark.parametrize("kind", ["average", "both"])
@pytest.mark.parametrize("feature", ["amount", "country"])
def test_plot_partial_dependence_returns_figure(data, fitted, kind, feature):
    X, _ = data
    pdp = compute_partial_dependence(fitted["hgb"], X, feature, kind=kind, max_rows=50)

    fig = plot_partial_dependence(pdp)

    assert isinstance(fig, Figure)
    assert fig.axes[0].get_xlabel() == feature


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"feature": "merchant"}, ValueError, "feature 'merchant' is not a column"),
        ({"kind": "ice"}, ValueError, "'kind' parameter of compute_partial_dependence"),
        ({"grid_resolution": 1}, ValueError, "'grid_resolution' parameter .* int >= 2"),
        ({"max_rows": -5}, ValueError, "'max_rows' parameter of compute_partial_dependence"),
    ],
)
def test_partial_dependence_rejects_bad_arguments(data, fitted, kwargs, error, message):
    X, _ = data
    kwargs = {"feature": "amount", **kwargs}

    with pytest.raises(error, match=message):
        compute_partial_dependence(fitted["hgb"], X, **kwargs)


def test_partial_dependence_rejects_all_missing_feature(data, fitted):
    X, _ = data

    with pytest.raises(ValueError, match="'amount' has only missing values"):
        compute_partial_dependence(fitted["hgb"], X.assign(amount=np.nan), "amount")


def test_plot_partial_dependence_rejects_other_input():
    with pytest.raises(TypeError, match="partial_dependence_frame must be a DataFrame"):
        plot_partial_dependence([1, 2, 3])
    with pytest.raises(ValueError, match=r"must have columns .*got \['value'\]"):
        plot_partial_dependence(pd.DataFrame({"value": [1.0]}))

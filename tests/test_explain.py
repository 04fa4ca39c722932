"""Tests of production.explain on a tiny fitted pipeline (the course's preprocessor layout)."""

import numpy as np
import pandas as pd
import pytest
import shap
from matplotlib.figure import Figure
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from production.explain import (
    compute_explained_output,
    compute_permutation_importance,
    compute_shap_values,
    plot_shap_summary,
    plot_shap_waterfall,
)

NUMERIC = ["amount", "hour"]
CATEGORICAL = ["channel", "merchant_category"]


def make_preprocessor(numeric=NUMERIC, categorical=CATEGORICAL, add_indicator=False):
    num = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=add_indicator)),
            ("scale", StandardScaler()),
        ]
    )
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 60
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "channel": rng.choice(["online", "pos"], n),
            "merchant_category": rng.choice(["food", "travel", "tech"], n),
            "unused": rng.normal(size=n),
        }
    )
    X.loc[3, "amount"] = np.nan
    y = ((X["amount"] > 30) | (X["channel"] == "online")).astype(int).to_numpy()
    return X, y


def fit(data, model, preprocessor=None):
    X, y = data
    steps = [("preprocess", preprocessor or make_preprocessor()), ("model", model)]
    return Pipeline(steps).fit(X, y)


@pytest.fixture(scope="module")
def hgb(data):
    return fit(data, HistGradientBoostingClassifier(max_iter=10, random_state=0))


def explained_rows(explanation, columns):
    return pd.DataFrame(explanation.data, columns=explanation.feature_names).infer_objects()[
        columns
    ]


@pytest.mark.parametrize(
    "model",
    [
        HistGradientBoostingClassifier(max_iter=10, random_state=0),
        RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0),
        LogisticRegression(),
        KNeighborsClassifier(n_neighbors=3),
    ],
    ids=["tree-margin", "forest-probability", "linear", "kernel"],
)
def test_shap_values_are_per_original_feature_and_add_up(data, model):
    pipeline = fit(data, model)
    explanation = compute_shap_values(pipeline, data[0], max_rows=8, background_rows=10)
    assert explanation.shape == (8, 4)
    assert explanation.feature_names == NUMERIC + CATEGORICAL  # "unused" is dropped
    rows = explained_rows(explanation, NUMERIC + CATEGORICAL).assign(unused=0.0)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, compute_explained_output(pipeline, rows), atol=1e-6)


def test_one_hot_columns_are_summed_back(data, hgb):
    Xt = hgb[:-1].transform(data[0].head(5))
    raw = shap.TreeExplainer(hgb[-1])(np.asarray(Xt.toarray() if hasattr(Xt, "toarray") else Xt))
    explanation = compute_shap_values(hgb, data[0].head(5))
    np.testing.assert_allclose(explanation.values[:, 2], raw.values[:, 2:4].sum(axis=1))
    np.testing.assert_allclose(explanation.values[:, 3], raw.values[:, 4:7].sum(axis=1))


def test_shap_sample_is_seeded_and_in_order(data, hgb):
    X = data[0]
    first = compute_shap_values(hgb, X, max_rows=10, random_state=3)
    second = compute_shap_values(hgb, X, max_rows=10, random_state=3)
    np.testing.assert_array_equal(first.values, second.values)
    amounts = list(X["amount"].dropna())
    positions = [amounts.index(a) for a in first.data[:, 0] if not pd.isna(a)]
    assert positions == sorted(positions)


def test_kernel_explainer_is_seeded(data):
    pipeline = fit(data, KNeighborsClassifier(n_neighbors=3))
    runs = [compute_shap_values(pipeline, data[0], max_rows=4, background_rows=5) for _ in "ab"]
    np.testing.assert_array_equal(runs[0].values, runs[1].values)


def test_explained_output_is_the_margin(data, hgb):
    np.testing.assert_allclose(
        compute_explained_output(hgb, data[0]), hgb.decision_function(data[0])
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_rows": 0}, "max_rows"),
        ({"background_rows": 1.5}, "background_rows"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_shap_rejects_bad_parameters(data, hgb, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_shap_values(hgb, data[0], **kwargs)


def test_shap_rejects_bad_pipelines_and_rows(data, hgb):
    X, y = data
    with pytest.raises(TypeError, match="pipeline"):
        compute_shap_values(hgb[-1], X)
    unfitted = Pipeline([("preprocess", make_preprocessor()), ("model", LogisticRegression())])
    with pytest.raises(NotFittedError):
        compute_shap_values(unfitted, X)
    with pytest.raises(ValueError, match="amount"):
        compute_shap_values(hgb, X.drop(columns="amount"))
    with pytest.raises(ValueError, match="no rows"):
        compute_shap_values(hgb, X.head(0))
    with pytest.raises(ValueError, match="X"):
        compute_shap_values(hgb, X.to_numpy())
    model_only = Pipeline([("model", LogisticRegression())]).fit(X[NUMERIC].fillna(0), y)
    with pytest.raises(ValueError, match="preprocessing step"):
        compute_shap_values(model_only, X)
    with pytest.raises(ValueError, match="binary"):
        compute_shap_values(unfitted.fit(X, np.arange(len(y)) % 3), X)


def test_shap_needs_a_column_transformer_with_traceable_columns(data):
    X, y = data
    scaled = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    with pytest.raises(ValueError, match=r"pipeline\[-2\]"):
        compute_shap_values(scaled.fit(X[NUMERIC].fillna(0), y), X[NUMERIC].fillna(0))
    indicator = fit(data, LogisticRegression(), make_preprocessor(add_indicator=True))
    with pytest.raises(ValueError, match="missingindicator_amount"):
        compute_shap_values(indicator, X)


def test_shap_traces_passthrough_and_index_columns(data):
    X, y = data
    preprocessor = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), [2])], remainder="passthrough"
    )
    pipeline = Pipeline([("preprocess", preprocessor), ("model", LogisticRegression())])
    pipeline.fit(X[["hour", "unused", "channel"]], y)
    explanation = compute_shap_values(pipeline, X[["hour", "unused", "channel"]], max_rows=5)
    assert explanation.feature_names == ["hour", "unused", "channel"]


def test_summary_and_waterfall_figures(data, hgb):
    explanation = compute_shap_values(hgb, data[0], max_rows=10)
    assert isinstance(plot_shap_summary(explanation), Figure)
    assert isinstance(plot_shap_summary(explanation, kind="bar", max_display=2), Figure)
    assert isinstance(plot_shap_waterfall(explanation, row=-1), Figure)


def test_plots_reject_bad_input(data, hgb):
    explanation = compute_shap_values(hgb, data[0], max_rows=10)
    with pytest.raises(ValueError, match="kind"):
        plot_shap_summary(explanation, kind="violin")
    with pytest.raises(ValueError, match="max_display"):
        plot_shap_summary(explanation, max_display=0)
    with pytest.raises(ValueError, match="explanation"):
        plot_shap_summary(explanation[0])
    with pytest.raises(ValueError, match="explanation"):
        plot_shap_waterfall(explanation.values)
    with pytest.raises(ValueError, match="row"):
        plot_shap_waterfall(explanation, row=10)


def test_permutation_importance_per_original_column(data, hgb):
    X, y = data
    first = compute_permutation_importance(hgb, X, y, n_repeats=2)
    second = compute_permutation_importance(hgb, X, y, n_repeats=2)
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == ["feature", "importance_mean", "importance_std"]
    assert sorted(first["feature"]) == sorted(X.columns)
    assert first["importance_mean"].is_monotonic_decreasing
    assert first.loc[first["feature"] == "unused", "importance_mean"].item() == 0


def test_permutation_importance_rejects_bad_parameters(data, hgb):
    X, y = data
    with pytest.raises(ValueError, match="n_repeats"):
        compute_permutation_importance(hgb, X, y, n_repeats=0)
    with pytest.raises(ValueError, match="random_state"):
        compute_permutation_importance(hgb, X, y, random_state="a")
    with pytest.raises(ValueError, match="hour"):
        compute_permutation_importance(hgb, X.drop(columns="hour"), y)

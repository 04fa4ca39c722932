"""Explain fitted pipelines per ORIGINAL column: SHAP values and permutation importance.

SHAP explains ``pipeline[-1]`` on ``pipeline[:-1].transform(X)``, then sums one-hot columns
back to their column (exact, as SHAP values add up).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure
from scipy import sparse
from sklearn import ensemble, tree
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from production._validation import (
    Instance,
    Interval,
    InvalidParameterError,
    OneOf,
    check_frame,
    check_param,
    validate_params,
)
from production.config import RANDOM_STATE

__all__ = [
    "compute_explained_output",
    "compute_permutation_importance",
    "compute_shap_values",
    "plot_shap_summary",
    "plot_shap_waterfall",
]

_POSITIVE = Interval(int, 1, None)
_SEED = Interval(int, 0, None, none=True)
_TREE_MODELS = (
    tree.BaseDecisionTree,
    *(
        getattr(ensemble, f"{kind}{task}")
        for kind in ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting")
        for task in ("Classifier", "Regressor")
    ),
)


def _feature_origins(preprocessor) -> list[str]:
    """Name the original column of every output column of a fitted ColumnTransformer."""
    check_param(preprocessor, Instance(ColumnTransformer), "pipeline[-2]", "compute_shap_values")
    names, origins = preprocessor.feature_names_in_, []
    for _, transformer, columns in preprocessor.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if isinstance(columns, list):
            inputs = [c if isinstance(c, str) else str(names[c]) for c in columns]
        else:
            inputs = [str(c) for c in np.atleast_1d(names[columns])]
        passthrough = isinstance(transformer, str) and transformer == "passthrough"
        for out in inputs if passthrough else transformer.get_feature_names_out(inputs):
            # scaled columns keep their name; one-hot columns are named "<input>_<category>"
            matches = [c for c in inputs if out == c or out.startswith(f"{c}_")]
            if not matches:
                raise InvalidParameterError(f"Output column {out!r} comes from none of {inputs}.")
            origins.append(max(matches, key=len))
    return origins


def _checked_rows(pipeline: Pipeline, X, where: str) -> pd.DataFrame:
    """Check a fitted pipeline and its rows; return X restricted to the fitted columns."""
    check_is_fitted(pipeline)
    fitted = [str(c) for c in getattr(pipeline, "feature_names_in_", [])]
    if len(pipeline.steps) < 2 or not fitted:
        raise InvalidParameterError(
            f"{where}: pipeline must be preprocessing step(s) then a model, fitted on a DataFrame."
        )
    check_frame(X, where, name="X", columns=fitted)
    if len(X) == 0:
        raise InvalidParameterError(f"{where}: X has no rows.")
    classes = getattr(pipeline[-1], "classes_", [0, 1])
    if is_classifier(pipeline[-1]) and len(classes) != 2:
        raise InvalidParameterError(
            f"{where}: the model must be a binary classifier or a regressor; classes {list(classes)}."
        )
    return X[fitted]


def _sample(X: pd.DataFrame, max_rows: int, random_state) -> pd.DataFrame:
    """Return at most ``max_rows`` rows of X, drawn without replacement, in their order."""
    if len(X) <= max_rows:
        return X
    rng = np.random.default_rng(random_state)
    return X.iloc[np.sort(rng.choice(len(X), size=max_rows, replace=False))]


def _transform(pipeline: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Return the model's input for X as a dense float array."""
    Xt = pipeline[:-1].transform(X)
    return np.asarray(Xt.toarray() if sparse.issparse(Xt) else Xt, dtype=float)


def _model_output(model, Xt: np.ndarray) -> np.ndarray:
    """Return the explained output: margin, else P(positive); ``predict`` for regressors."""
    if not is_classifier(model):
        return np.asarray(model.predict(Xt), dtype=float).ravel()
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(Xt), dtype=float).ravel()
    return np.asarray(model.predict_proba(Xt), dtype=float)[:, 1]


def _raw_shap(model, Xt: np.ndarray, background: np.ndarray, random_state) -> shap.Explanation:
    """Return SHAP values per model column: tree, linear, else kernel (not numba-compiled)."""
    if isinstance(model, _TREE_MODELS):
        return shap.TreeExplainer(model)(Xt)
    if hasattr(model, "coef_") and hasattr(model, "intercept_"):  # keep every background row
        masker = shap.maskers.Independent(background, max_samples=len(background))
        return shap.LinearExplainer(model, masker)(Xt)
    explainer = shap.KernelExplainer(
        lambda rows: _model_output(model, rows), background, seed=random_state
    )
    return explainer(Xt, silent=True)


@validate_params(
    pipeline=Instance(Pipeline), max_rows=_POSITIVE, background_rows=_POSITIVE, random_state=_SEED
)
def compute_shap_values(
    pipeline: Pipeline,
    X: pd.DataFrame,
    *,
    max_rows: int = 1000,
    background_rows: int = 100,
    random_state: int | None = RANDOM_STATE,
) -> shap.Explanation:
    """Compute SHAP values of a fitted pipeline, one column per original feature.

    Explainers: ``TreeExplainer`` (trees), ``LinearExplainer``, else ``KernelExplainer`` (slow).

    Parameters
    ----------
    pipeline, X : Pipeline, pandas.DataFrame
        Fitted ColumnTransformer then binary classifier or regressor; rows with its columns.
    max_rows, background_rows : int, default=1000, 100
        Rows explained (a seeded sample, in order) and background rows (non-tree models).
    random_state : int or None, default=RANDOM_STATE
        Seed of both samples.

    Returns
    -------
    shap.Explanation
        ``values`` (rows x features), ``base_values``, ``data`` (original values) and
        ``feature_names`` (the fitted columns that reach the model).

    Raises
    ------
    InvalidParameterError
        For a bad parameter, missing columns, no rows, a multi-class model.
    """
    X = _checked_rows(pipeline, X, "compute_shap_values")
    origins = _feature_origins(pipeline[-2])
    rows = _sample(X, max_rows, random_state)
    background = _transform(pipeline, _sample(X, background_rows, random_state))
    raw = _raw_shap(pipeline[-1], _transform(pipeline, rows), background, random_state)
    values, base = np.asarray(raw.values, dtype=float), np.asarray(raw.base_values, dtype=float)
    if values.ndim == 3:  # one output per class (random forests): keep the positive class
        values, base = values[:, :, -1], base[..., -1]
    features = [c for c in X.columns if c in origins]
    to_feature = np.equal.outer(origins, features).astype(float)  # model column -> feature
    return shap.Explanation(
        values=values @ to_feature,
        base_values=np.broadcast_to(base.ravel() if base.ndim else base, (len(rows),)).copy(),
        data=rows[features].to_numpy(dtype=object),
        feature_names=features,
    )


@validate_params(pipeline=Instance(Pipeline))
def compute_explained_output(pipeline: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Return the model output that :func:`compute_shap_values` explains, one per row.

    Parameters
    ----------
    pipeline, X : Pipeline, pandas.DataFrame
        Fitted pipeline (a binary classifier or a regressor last); rows with its columns.

    Returns
    -------
    numpy.ndarray
        ``decision_function`` or else ``predict_proba[:, 1]``; ``predict`` for a regressor.
    """
    X = _checked_rows(pipeline, X, "compute_explained_output")
    return _model_output(pipeline[-1], _transform(pipeline, X))


def _check_explanation(explanation, where: str) -> None:
    """Raise unless ``explanation`` is a two-dimensional shap.Explanation."""
    if not isinstance(explanation, shap.Explanation) or len(explanation.shape) != 2:
        got = f"{type(explanation).__name__} of shape {getattr(explanation, 'shape', None)}"
        raise InvalidParameterError(
            f"{where}: explanation must be 2-D, from compute_shap_values. Got {got}."
        )


@validate_params(kind=OneOf("beeswarm", "bar"), max_display=_POSITIVE)
def plot_shap_summary(explanation, kind: str = "beeswarm", max_display: int = 10) -> Figure:
    """Plot SHAP values of many rows: a beeswarm, or mean |SHAP| per feature as bars.

    Parameters
    ----------
    explanation : shap.Explanation
        Two-dimensional, from :func:`compute_shap_values`.
    kind : {"beeswarm", "bar"}, default="beeswarm"
        One dot per row and feature coloured by its value, or bars.
    max_display : int, default=10
        Features shown; the others are summed into one line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_explanation(explanation, "plot_shap_summary")
    fig = plt.figure(figsize=(8, 0.4 * min(max_display, explanation.shape[1]) + 1.5))
    ax = fig.add_subplot()
    if kind == "beeswarm":
        shap.plots.beeswarm(explanation, max_display, ax=ax, show=False, plot_size=None)
    else:
        shap.plots.bar(explanation, max_display=max_display, ax=ax, show=False)
    fig.tight_layout()
    plt.close(fig)  # the returned figure still displays, once, in a notebook
    return fig


def plot_shap_waterfall(explanation, row: int = 0) -> Figure:
    """Plot how each feature moves one row's output away from the base value.

    Parameters
    ----------
    explanation : shap.Explanation
        Two-dimensional, from :func:`compute_shap_values`.
    row : int, default=0
        Position of the row (negative counts from the end).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_explanation(explanation, "plot_shap_waterfall")
    n_rows = explanation.shape[0]
    check_param(row, Interval(int, -n_rows, n_rows - 1), "row", "plot_shap_waterfall")
    interactive, fig = plt.isinteractive(), plt.figure()
    shap.plots.waterfall(explanation[row], show=False)  # draws on plt.gcf(), turns ioff
    plt.interactive(interactive)
    fig.tight_layout()
    plt.close(fig)
    return fig


@validate_params(pipeline=Instance(Pipeline), n_repeats=_POSITIVE, random_state=_SEED)
def compute_permutation_importance(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y,
    *,
    scoring: str = "average_precision",
    n_repeats: int = 5,
    random_state: int | None = RANDOM_STATE,
) -> pd.DataFrame:
    """Measure how much the score drops when one original column is shuffled.

    :func:`sklearn.inspection.permutation_importance` on the whole pipeline, so a
    categorical column is shuffled before its one-hot encoding.

    Parameters
    ----------
    pipeline, X, y : Pipeline, pandas.DataFrame, array-like
        Fitted pipeline, held-out rows with its fitted columns, their labels.
    scoring : str or callable, default="average_precision"
        Any scikit-learn scorer.
    n_repeats : int, default=5
        Shuffles per column.
    random_state : int or None, default=RANDOM_STATE
        Seed of the shuffles.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``importance_mean``, ``importance_std``; most important first.
    """
    X = _checked_rows(pipeline, X, "compute_permutation_importance")
    result = permutation_importance(
        pipeline, X, y, scoring=scoring, n_repeats=n_repeats, random_state=random_state
    )
    means, stds = result.importances_mean, result.importances_std
    table = pd.DataFrame({"feature": X.columns, "importance_mean": means, "importance_std": stds})
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)

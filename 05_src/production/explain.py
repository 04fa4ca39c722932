"""Explain fitted model pipelines: SHAP values, permutation importance, partial dependence.

The only module of the package that imports :mod:`shap`. Every helper takes a
fitted ``Pipeline([("preprocess", ColumnTransformer(...)), ("model", estimator)])``
and a DataFrame with the columns the pipeline was fitted on, and reports its
results per ORIGINAL column: one-hot columns are summed back to the column they
came from (see :func:`production.features.get_feature_origins`).

What is explained, for a binary classifier, is the positive class
(``classes_[1]``, fraud) on the model's own score:

* SHAP values (:func:`compute_shap_values`) explain the margin
  ``decision_function`` (log-odds for gradient boosting and logistic
  regression) when the model has one, and ``predict_proba[:, 1]`` otherwise
  (random forests, single trees, k-NN, MLP). :func:`compute_explained_output`
  returns exactly that quantity, so ``values.sum(axis=1) + base_values`` equals
  it row by row. Regressors are explained on ``predict``.
* Partial dependence (:func:`compute_partial_dependence`) is on the
  probability ``predict_proba[:, 1]`` (``decision_function`` for classifiers
  without probabilities, ``predict`` for regressors).
* Permutation importance (:func:`compute_permutation_importance`) is the drop
  in ``scoring`` (average precision by default) when one original column is
  shuffled.

Figures are returned, never shown: a notebook displays the returned
:class:`~matplotlib.figure.Figure`, and ``production.tracking`` can log it.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure
from scipy import sparse
from sklearn.base import is_classifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.inspection import partial_dependence, permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.tree import BaseDecisionTree
from sklearn.utils.validation import check_is_fitted

from production.features import get_feature_origins

__all__ = [
    "compute_explained_output",
    "compute_partial_dependence",
    "compute_permutation_importance",
    "compute_shap_values",
    "plot_partial_dependence",
    "plot_shap_summary",
    "plot_shap_waterfall",
]

_TREE_MODELS = (
    BaseDecisionTree,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
_PDP_KINDS = ("average", "individual", "both")
#: Random feature orders per row in the permutation fallback (each run forward and back).
_N_PERMUTATIONS = 3
#: Rows per model call in the permutation fallback (bounds its memory).
_MAX_PREDICTION_ROWS = 50_000
_SUMMARY_KINDS = ("beeswarm", "bar")


# --------------------------------------------------------------------------- SHAP


def compute_shap_values(
    pipeline: Pipeline,
    X: pd.DataFrame,
    *,
    max_rows: int = 1000,
    background_rows: int = 100,
    random_state: int | None = 42,
) -> shap.Explanation:
    """Compute SHAP values of a fitted pipeline, one column per original feature.

    The model (``pipeline[-1]``) is explained on the preprocessed rows
    (``pipeline[:-1].transform(X)``); the values of the columns one input
    column expands into (one-hot dummies, missing indicators) are then summed
    back to that column. SHAP values are additive, so the sum is the exact
    contribution of the original column.

    Explainers, by model:

    * tree models (decision trees, random forests, extra trees, gradient
      boosting, histogram gradient boosting): :class:`shap.TreeExplainer`,
      exact, with the trees' own path-dependent background (no sample needed);
    * linear models (anything with ``coef_`` and ``intercept_``, e.g.
      logistic regression): :class:`shap.LinearExplainer` against a background
      sample of ``background_rows`` rows of ``X``;
    * anything else (k-NN, MLP, SVC, ...): permutation sampling against the same
      background sample, with each ORIGINAL feature as one player (its one-hot
      columns switched together), three random orders per row, each run
      forward and back. Exactly additive, approximate attributions; costs
      about rows x 6 x (features + 1) x background_rows predictions. (Plain
      NumPy: ``shap.PermutationExplainer`` spends ~15 s compiling with numba on
      its first call in a process and reseeds NumPy's global RNG.)

    Parameters
    ----------
    pipeline : Pipeline
        Fitted pipeline whose last step is a binary classifier or a regressor
        and whose other steps transform the DataFrame it was fitted on.
    X : pandas.DataFrame
        Rows to explain, with (at least) the columns the pipeline was fitted on.
    max_rows : int, default=1000
        When ``X`` has more rows, explain a random sample of ``max_rows`` rows
        (kept in their original order).
    background_rows : int, default=100
        Size of the background sample drawn from all rows of ``X`` for the
        linear and permutation explainers (unused for tree models); the base
        value is the mean explained output over it.
    random_state : int or None, default=42
        Seed for the row sample, the background sample and the permutations.

    Returns
    -------
    shap.Explanation
        ``values`` of shape (n_rows, n_features) in the explained space (see
        the module docstring: margin or positive-class probability);
        ``base_values`` of shape (n_rows,); ``data`` the original, untransformed
        values of those rows (object array); ``feature_names`` the original
        columns that reach the model, in the order the pipeline was fitted on
        (columns the preprocessor drops are left out).

    Raises
    ------
    TypeError
        If ``pipeline`` is not a Pipeline or ``X`` is not a DataFrame.
    sklearn.exceptions.NotFittedError
        If ``pipeline`` is not fitted.
    ValueError
        If ``X`` lacks columns the pipeline was fitted on, ``X`` is empty,
        ``max_rows`` or ``background_rows`` is not a positive int, or the model
        is a classifier with more than two classes.

    See Also
    --------
    compute_explained_output : The model output the values add up to.
    plot_shap_summary, plot_shap_waterfall : Figures from the result.

    Examples
    --------
    >>> explanation = compute_shap_values(pipeline, X_test, max_rows=500)  # doctest: +SKIP
    >>> plot_shap_summary(explanation)  # doctest: +SKIP
    """
    func = "compute_shap_values"
    X = _check_pipeline_and_X(pipeline, X, func)
    _check_positive_int(max_rows, "max_rows", func)
    _check_positive_int(background_rows, "background_rows", func)
    model = pipeline[-1]
    _check_binary_or_regressor(model, func)

    rng = np.random.default_rng(random_state)
    rows = X.iloc[_sample_positions(len(X), max_rows, rng)]
    preprocess = pipeline[:-1]
    Xt = _dense(preprocess.transform(rows))

    origins = get_feature_origins(preprocess)
    features = [str(c) for c in pipeline.feature_names_in_ if str(c) in set(origins)]
    groups = np.array([features.index(o) for o in origins])
    if isinstance(model, _TREE_MODELS):
        raw = shap.TreeExplainer(model)(Xt)
        values, base_values = _positive_output(raw.values, raw.base_values)
        values = _sum_by_group(values, groups, len(features))
    else:
        background_positions = _sample_positions(len(X), background_rows, rng)
        background = _dense(preprocess.transform(X.iloc[background_positions]))
        if hasattr(model, "coef_") and hasattr(model, "intercept_"):
            # a bare array would be cut to 100 rows by shap's default masker
            masker = shap.maskers.Independent(background, max_samples=len(background))
            raw = shap.LinearExplainer(model, masker)(Xt)
            values, base_values = _positive_output(raw.values, raw.base_values)
            values = _sum_by_group(values, groups, len(features))
        else:
            values, base_values = _permutation_shap(model, Xt, background, groups, rng)

    return shap.Explanation(
        values=values,
        base_values=np.broadcast_to(base_values, (len(rows),)).astype(float),
        data=rows[features].to_numpy(dtype=object),
        feature_names=features,
    )


def compute_explained_output(pipeline: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Return the model output that :func:`compute_shap_values` explains.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted pipeline whose last step is a binary classifier or a regressor.
    X : pandas.DataFrame
        Rows with the columns the pipeline was fitted on.

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        ``decision_function`` (margin, log-odds) for a classifier that has one,
        else ``predict_proba[:, 1]``; ``predict`` for a regressor. For every
        row, SHAP ``values.sum() + base_values`` equals this.

    Raises
    ------
    TypeError
        If ``pipeline`` is not a Pipeline or ``X`` is not a DataFrame.
    sklearn.exceptions.NotFittedError
        If ``pipeline`` is not fitted.
    ValueError
        If ``X`` lacks columns the pipeline was fitted on, or the model is a
        classifier with more than two classes.

    Examples
    --------
    >>> margin = compute_explained_output(pipeline, X_test)  # doctest: +SKIP
    """
    func = "compute_explained_output"
    X = _check_pipeline_and_X(pipeline, X, func)
    _check_binary_or_regressor(pipeline[-1], func)
    return _model_output(pipeline[-1], _dense(pipeline[:-1].transform(X)))


def plot_shap_summary(
    explanation: shap.Explanation, kind: str = "beeswarm", max_display: int = 10
) -> Figure:
    """Plot a SHAP summary (beeswarm or mean-absolute bar chart) of many rows.

    Parameters
    ----------
    explanation : shap.Explanation
        Two-dimensional explanation, e.g. from :func:`compute_shap_values`.
    kind : {"beeswarm", "bar"}, default="beeswarm"
        ``"beeswarm"``: one dot per row and feature, coloured by the feature
        value (grey for categorical columns); ``"bar"``: mean absolute SHAP
        value per feature.
    max_display : int, default=10
        Number of features shown; the others are summed into one line.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (closed in pyplot, so a notebook shows it once when it is the
        cell's last expression; ``fig.savefig`` still works).

    Raises
    ------
    TypeError
        If ``explanation`` is not a :class:`shap.Explanation`.
    ValueError
        If ``kind`` is unknown, ``max_display`` is not a positive int, or the
        explanation is not two-dimensional.

    Examples
    --------
    >>> fig = plot_shap_summary(explanation, kind="bar")  # doctest: +SKIP
    """
    func = "plot_shap_summary"
    _check_explanation(explanation, ndim=2, func=func)
    if kind not in _SUMMARY_KINDS:
        raise ValueError(
            f"The 'kind' parameter of {func} must be one of {list(_SUMMARY_KINDS)}. "
            f"Got {kind!r} instead."
        )
    _check_positive_int(max_display, "max_display", func)
    n_shown = min(max_display, explanation.shape[1])
    fig = plt.figure(figsize=(8, 0.4 * n_shown + 1.5))
    ax = fig.add_subplot()
    with _drawing_on(fig):
        if kind == "beeswarm":
            shap.plots.beeswarm(
                explanation, max_display=max_display, ax=ax, show=False, plot_size=None
            )
        else:
            shap.plots.bar(explanation, max_display=max_display, ax=ax, show=False)
    return fig


def plot_shap_waterfall(explanation: shap.Explanation, row: int = 0) -> Figure:
    """Plot how each feature moves one row's prediction away from the base value.

    Parameters
    ----------
    explanation : shap.Explanation
        Two-dimensional explanation, e.g. from :func:`compute_shap_values`.
    row : int, default=0
        Position of the row in ``explanation`` (negative counts from the end).

    Returns
    -------
    matplotlib.figure.Figure
        The figure (closed in pyplot; see :func:`plot_shap_summary`).

    Raises
    ------
    TypeError
        If ``explanation`` is not a :class:`shap.Explanation`.
    ValueError
        If the explanation is not two-dimensional or ``row`` is out of range.

    Examples
    --------
    >>> fig = plot_shap_waterfall(explanation, row=3)  # doctest: +SKIP
    """
    func = "plot_shap_waterfall"
    _check_explanation(explanation, ndim=2, func=func)
    n_rows = explanation.shape[0]
    if not _is_int(row) or not -n_rows <= row < n_rows:
        raise ValueError(
            f"The 'row' parameter of {func} must be an int in [{-n_rows}, {n_rows - 1}] "
            f"(the explanation has {n_rows} rows). Got {row!r} instead."
        )
    fig = plt.figure()
    with _drawing_on(fig):
        shap.plots.waterfall(explanation[int(row)], show=False)
    return fig


# ----------------------------------------------------------- permutation importance


def compute_permutation_importance(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y,
    *,
    scoring: str = "average_precision",
    n_repeats: int = 5,
    max_rows: int = 5000,
    random_state: int | None = 42,
) -> pd.DataFrame:
    """Measure how much the score drops when each original column is shuffled.

    Columns are shuffled in ``X`` before preprocessing, so a categorical column
    is permuted as a whole (not dummy by dummy).

    Parameters
    ----------
    pipeline : Pipeline
        Fitted model pipeline.
    X : pandas.DataFrame
        Held-out rows with the columns the pipeline was fitted on.
    y : array-like of shape (n_rows,)
        True labels (or targets) for ``X``.
    scoring : str or callable, default="average_precision"
        Any scikit-learn scorer; average precision suits rare fraud.
    n_repeats : int, default=5
        Number of shuffles per column.
    max_rows : int, default=5000
        When ``X`` has more rows, use a random sample of about ``max_rows`` rows,
        stratified by ``y`` for classifiers so rare positives are kept.
    random_state : int or None, default=42
        Seed for the row sample and the shuffles.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature``, ``importance_mean``, ``importance_std``; one row per
        column the pipeline was fitted on, sorted by decreasing mean importance.

    Raises
    ------
    TypeError
        If ``pipeline`` is not a Pipeline or ``X`` is not a DataFrame.
    sklearn.exceptions.NotFittedError
        If ``pipeline`` is not fitted.
    ValueError
        If ``X`` lacks fitted columns or is empty, ``y`` and ``X`` differ in
        length, or ``n_repeats`` or ``max_rows`` is not a positive int.

    Examples
    --------
    >>> compute_permutation_importance(pipeline, X_test, y_test).head()  # doctest: +SKIP
    """
    func = "compute_permutation_importance"
    X = _check_pipeline_and_X(pipeline, X, func)
    _check_positive_int(n_repeats, "n_repeats", func)
    _check_positive_int(max_rows, "max_rows", func)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(
            f"{func}: y must be one-dimensional with one label per row of X ({len(X)}). "
            f"Got shape {y.shape} instead."
        )
    rng = np.random.default_rng(random_state)
    stratify = y if is_classifier(pipeline[-1]) else None
    positions = _sample_positions(len(X), max_rows, rng, stratify=stratify)
    result = permutation_importance(
        pipeline,
        X.iloc[positions],
        y[positions],
        scoring=scoring,
        n_repeats=n_repeats,
        random_state=random_state,
    )
    return (
        pd.DataFrame(
            {
                "feature": list(X.columns),
                "importance_mean": result.importances_mean,
                "importance_std": result.importances_std,
            }
        )
        .sort_values("importance_mean", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


# ------------------------------------------------------------------ partial dependence


def compute_partial_dependence(
    pipeline: Pipeline,
    X: pd.DataFrame,
    feature: str,
    *,
    grid_resolution: int = 20,
    max_rows: int = 2000,
    kind: str = "average",
    random_state: int | None = 42,
) -> pd.DataFrame:
    """Compute the partial dependence of the prediction on one original column.

    Memory stays bounded whatever the size of ``X``: predictions are made on at
    most ``max_rows`` sampled rows for each of at most ``grid_resolution`` grid
    values (scikit-learn's brute method copies the rows once per grid value).
    Categorical (non-numeric) columns use their ``grid_resolution`` most
    frequent categories as the grid.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted model pipeline.
    X : pandas.DataFrame
        Rows with the columns the pipeline was fitted on.
    feature : str
        Original column to vary.
    grid_resolution : int, default=20
        Number of grid values: for numeric columns, equally spaced between the
        5th and 95th percentiles of the sampled rows (or their distinct values
        when there are no more); for categorical columns, the most frequent
        categories.
    max_rows : int, default=2000
        When ``X`` has more rows, use a random sample of ``max_rows`` rows.
    kind : {"average", "individual", "both"}, default="average"
        Average curve, one curve per sampled row (ICE), or both.
    random_state : int or None, default=42
        Seed for the row sample.

    Returns
    -------
    pandas.DataFrame
        ``kind="average"``: columns ``feature``, ``value``, ``average``, one row
        per grid value. ``"individual"``: columns ``feature``, ``row`` (index
        label in ``X``), ``value``, ``individual``, one row per sampled row and
        grid value. ``"both"``: the individual frame plus the ``average``
        column. Predictions are ``predict_proba[:, 1]`` for classifiers
        (``decision_function`` for those without probabilities) and
        ``predict`` for regressors.

    Raises
    ------
    TypeError
        If ``pipeline`` is not a Pipeline or ``X`` is not a DataFrame.
    sklearn.exceptions.NotFittedError
        If ``pipeline`` is not fitted.
    ValueError
        If ``X`` lacks fitted columns or is empty, ``feature`` is not one of
        them, ``kind`` is unknown, ``grid_resolution`` is not an int >= 2, or
        ``max_rows`` is not a positive int.

    See Also
    --------
    plot_partial_dependence : Figure from the result.

    Examples
    --------
    >>> pdp = compute_partial_dependence(pipeline, X_test, "amount")  # doctest: +SKIP
    >>> plot_partial_dependence(pdp)  # doctest: +SKIP
    """
    func = "compute_partial_dependence"
    X = _check_pipeline_and_X(pipeline, X, func)
    if feature not in X.columns:
        raise ValueError(
            f"{func}: feature {feature!r} is not a column the pipeline was fitted on; "
            f"available: {list(X.columns)}."
        )
    if kind not in _PDP_KINDS:
        raise ValueError(
            f"The 'kind' parameter of {func} must be one of {list(_PDP_KINDS)}. "
            f"Got {kind!r} instead."
        )
    if not _is_int(grid_resolution) or grid_resolution < 2:
        raise ValueError(
            f"The 'grid_resolution' parameter of {func} must be an int >= 2. "
            f"Got {grid_resolution!r} instead."
        )
    _check_positive_int(max_rows, "max_rows", func)
    _check_binary_or_regressor(pipeline[-1], func)

    rng = np.random.default_rng(random_state)
    rows = X.iloc[_sample_positions(len(X), max_rows, rng)]
    column = rows[feature].dropna()
    if len(column) == 0:
        raise ValueError(
            f"{func}: feature {feature!r} has only missing values in the sampled rows."
        )
    if _is_categorical(column):
        grid = np.asarray(column.value_counts(sort=True).index[:grid_resolution], dtype=object)
        options: dict = {"categorical_features": [feature]}
    else:
        values = column.to_numpy(dtype=float)
        grid = np.unique(values)
        if len(grid) > grid_resolution:
            low, high = np.quantile(values, [0.05, 0.95])
            grid = np.unique(np.linspace(low, high, grid_resolution))
        options = {}
    result = partial_dependence(
        pipeline,
        rows,
        [feature],
        custom_values={feature: grid},
        kind="both" if kind != "average" else "average",
        response_method="auto",
        method="brute",
        **options,
    )
    grid = np.asarray(result["grid_values"][0])
    average = np.asarray(result["average"])[-1]
    if kind == "average":
        return pd.DataFrame({"feature": feature, "value": grid, "average": average})
    individual = np.asarray(result["individual"])[-1]
    frame = pd.DataFrame(
        {
            "feature": feature,
            "row": np.repeat(rows.index.to_numpy(), len(grid)),
            "value": np.tile(grid, len(rows)),
            "individual": individual.ravel(),
        }
    )
    if kind == "both":
        frame["average"] = np.tile(average, len(rows))
    return frame


def plot_partial_dependence(partial_dependence_frame: pd.DataFrame) -> Figure:
    """Plot a partial dependence frame from :func:`compute_partial_dependence`.

    Numeric grids are drawn as lines (thin grey lines for individual rows),
    categorical grids as bars (average) and points (individual rows).

    Parameters
    ----------
    partial_dependence_frame : pandas.DataFrame
        Result of :func:`compute_partial_dependence`, any ``kind``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (closed in pyplot; see :func:`plot_shap_summary`).

    Raises
    ------
    TypeError
        If ``partial_dependence_frame`` is not a DataFrame.
    ValueError
        If it lacks the ``feature`` and ``value`` columns or both the
        ``average`` and ``individual`` columns.

    Examples
    --------
    >>> pdp = compute_partial_dependence(pipeline, X_test, "amount", kind="both")  # doctest: +SKIP
    >>> fig = plot_partial_dependence(pdp)  # doctest: +SKIP
    """
    func = "plot_partial_dependence"
    frame = partial_dependence_frame
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{func}: partial_dependence_frame must be a DataFrame from "
            f"compute_partial_dependence. Got {type(frame).__name__} instead."
        )
    missing = [c for c in ("feature", "value") if c not in frame.columns]
    if missing or not {"average", "individual"} & set(frame.columns):
        raise ValueError(
            f"{func}: partial_dependence_frame must have columns 'feature', 'value' and "
            f"'average' and/or 'individual' (from compute_partial_dependence); "
            f"got {list(frame.columns)}."
        )
    feature = str(frame["feature"].iloc[0]) if len(frame) else ""
    numeric = not _is_categorical(frame["value"])
    fig = plt.figure(figsize=(6, 4))
    ax = fig.add_subplot()
    if "individual" in frame.columns:
        for _, curve in frame.groupby("row", sort=False):
            if numeric:
                ax.plot(curve["value"], curve["individual"], color="grey", alpha=0.2, lw=0.5)
            else:
                ax.scatter(
                    curve["value"].astype(str), curve["individual"], color="grey", alpha=0.2, s=4
                )
    if "average" in frame.columns:
        average = frame.drop_duplicates("value")[["value", "average"]]
        if numeric:
            ax.plot(average["value"], average["average"], color="C0", lw=2, label="average")
        else:
            ax.bar(average["value"].astype(str), average["average"], color="C0", alpha=0.7)
    ax.set_xlabel(feature)
    ax.set_ylabel("prediction (partial dependence)")
    ax.set_title(f"Partial dependence on {feature}")
    if not numeric:
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    plt.close(fig)
    return fig


# ---------------------------------------------------------------------- helpers


def _check_pipeline_and_X(pipeline, X, func: str) -> pd.DataFrame:
    """Validate a fitted pipeline and a DataFrame; return X restricted to fitted columns."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise TypeError(
            f"{func}: pipeline must be a scikit-learn Pipeline of preprocessing step(s) "
            f"followed by a model. Got {type(pipeline).__name__} instead."
        )
    try:
        check_is_fitted(pipeline)
    except NotFittedError as err:
        raise NotFittedError(
            f"{func}: the pipeline is not fitted yet. Call pipeline.fit(X, y) first."
        ) from err
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{func}: X must be a pandas DataFrame with the columns the pipeline was fitted "
            f"on. Got {type(X).__name__} instead."
        )
    fitted_cols = getattr(pipeline, "feature_names_in_", None)
    if fitted_cols is None:
        raise ValueError(
            f"{func}: the pipeline was fitted without column names; fit it on a DataFrame."
        )
    fitted_cols = [str(c) for c in fitted_cols]
    missing = [c for c in fitted_cols if c not in X.columns]
    if missing:
        raise ValueError(
            f"{func}: column(s) {missing} not found in X; the pipeline was fitted on "
            f"{fitted_cols}; X has {list(X.columns)}."
        )
    if len(X) == 0:
        raise ValueError(f"{func}: X has no rows.")
    return X[fitted_cols]


def _check_binary_or_regressor(model, func: str) -> None:
    """Raise ValueError for classifiers with other than two classes."""
    classes = getattr(model, "classes_", None)
    if is_classifier(model) and classes is not None and len(classes) != 2:
        raise ValueError(
            f"{func}: only binary classifiers and regressors are supported; the model "
            f"({type(model).__name__}) has {len(classes)} classes: {list(classes)}."
        )


def _check_positive_int(value, name: str, func: str) -> None:
    """Raise ValueError unless ``value`` is an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of {func} must be an int >= 1. Got {value!r} instead."
        )


def _check_explanation(explanation, ndim: int, func: str) -> None:
    """Raise unless ``explanation`` is a shap.Explanation with ``ndim`` dimensions."""
    if not isinstance(explanation, shap.Explanation):
        raise TypeError(
            f"{func}: explanation must be a shap.Explanation (from compute_shap_values). "
            f"Got {type(explanation).__name__} instead."
        )
    if len(explanation.shape) != ndim:
        raise ValueError(
            f"{func}: explanation must be {ndim}-dimensional (rows x features). "
            f"Got shape {explanation.shape} instead."
        )


def _is_int(value) -> bool:
    """Return True for ints (not bools)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_categorical(values: pd.Series) -> bool:
    """Return True for non-numeric or boolean Series."""
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _sample_positions(n: int, max_rows: int, rng: np.random.Generator, stratify=None) -> np.ndarray:
    """Return sorted positions of at most about ``max_rows`` rows out of ``n``."""
    if n <= max_rows:
        return np.arange(n)
    if stratify is None:
        return np.sort(rng.choice(n, size=max_rows, replace=False))
    chosen = []
    for label in pd.unique(stratify):
        members = np.flatnonzero(stratify == label)
        k = min(len(members), max(1, int(len(members) * max_rows / n)))
        chosen.append(rng.choice(members, size=k, replace=False))
    chosen = np.concatenate(chosen)
    leftover = max_rows - len(chosen)
    if leftover > 0:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=leftover, replace=False)])
    return np.sort(chosen)


def _dense(matrix) -> np.ndarray:
    """Return a dense float array from a transform's output."""
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


def _model_output(model, Xt: np.ndarray) -> np.ndarray:
    """Return the explained output: margin if available, else positive-class probability."""
    if not is_classifier(model):
        return np.asarray(model.predict(Xt), dtype=float).ravel()
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(Xt), dtype=float).ravel()
    return np.asarray(model.predict_proba(Xt), dtype=float)[:, 1]


def _sum_by_group(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the columns of ``values`` that belong to the same group (original feature)."""
    summed = np.zeros((values.shape[0], n_groups))
    np.add.at(summed.T, groups, values.T)
    return summed


def _positive_output(values, base_values) -> tuple[np.ndarray, np.ndarray]:
    """Keep the positive class of per-class SHAP outputs (e.g. random forests)."""
    values = np.asarray(values, dtype=float)
    base_values = np.asarray(base_values, dtype=float)
    if values.ndim == 3:
        values = values[:, :, -1]
        base_values = base_values[..., -1] if base_values.ndim > 0 else base_values
    return values, base_values.reshape(-1) if base_values.ndim > 0 else base_values


def _permutation_shap(
    model, Xt: np.ndarray, background: np.ndarray, groups: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Estimate SHAP values of feature groups by antithetic permutation sampling.

    Each original feature (the group of transformed columns it expands into) is
    one player, so one-hot columns are switched together and never mixed. For
    every row and each of ``_N_PERMUTATIONS`` random orders, groups are switched
    from background to the row's values one by one (forward) and back
    (reverse); the change in the mean model output over the background rows is
    credited to the switched group. Both passes telescope, so the values add up
    exactly to ``output(row) - mean output(background)``.
    """
    n_rows, n_cols = Xt.shape
    n_groups = int(groups.max()) + 1
    n_bg = len(background)
    base = float(_model_output(model, background).mean())
    values = np.zeros((n_rows, n_groups))
    steps = np.arange(n_groups + 1)
    # forward states: groups ranked < k take the row's values; reverse states are the complements
    n_states = 2 * (n_groups + 1)
    chunk = max(1, _MAX_PREDICTION_ROWS // (n_states * n_bg))
    for _ in range(_N_PERMUTATIONS):
        for start in range(0, n_rows, chunk):
            rows = Xt[start : start + chunk]
            order = np.argsort(rng.random((len(rows), n_groups)), axis=1)
            rank = np.argsort(order, axis=1)
            on = rank[:, None, :] < steps[None, :, None]
            on = np.concatenate([on, ~on], axis=1)[:, :, groups]
            z = np.where(on[:, :, None, :], rows[:, None, None, :], background[None, None, :, :])
            out = _model_output(model, z.reshape(-1, n_cols)).reshape(len(rows), n_states, n_bg)
            out = out.mean(axis=2)
            forward, reverse = out[:, : n_groups + 1], out[:, n_groups + 1 :]
            delta = np.diff(forward, axis=1) - np.diff(reverse, axis=1)
            credited = np.zeros((len(rows), n_groups))
            np.put_along_axis(credited, order, delta / 2, axis=1)
            values[start : start + chunk] += credited
    return values / _N_PERMUTATIONS, base


@contextmanager
def _drawing_on(fig: Figure):
    """Make ``fig`` pyplot's current figure, then restore interactive mode and close it.

    ``shap.plots.waterfall(show=False)`` turns pyplot's interactive mode off and
    draws on ``plt.gcf()``. Closing ``fig`` in pyplot (it stays usable) lets a
    notebook display the returned figure once.
    """
    interactive = plt.isinteractive()
    plt.figure(fig.number)
    try:
        yield fig
        fig.tight_layout()
    finally:
        if interactive:
            plt.ion()
        plt.close(fig)

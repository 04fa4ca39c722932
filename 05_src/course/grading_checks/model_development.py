"""Checks of assignment 2, model development (``02_model_development_rubric.yml``).

The assignment works on a variant of the course data, :data:`DATA_PARAMS` (800 customers,
56 days, a 5-day label delay, its own seed), split at :data:`CUTOFF` with a gap of
:data:`GAP_DAYS` and a test period of :data:`TEST_DAYS` days. Each check looks at the
names the notebook defined (see :class:`course.grading.Answers`) and, for the
registered model, at the MLflow store the notebook logged to (the kernel's
``MLFLOW_TRACKING_URI``, or the local store under ``PRODUCTION_HOME``). It returns
``(passed, message)``, the message written for the learner.

Names the notebook must define:

* ``search`` -- the :class:`production.tuning.SearchResult` of ``run_search`` on the
  training rows: time-aware folds, average precision, at least :data:`MIN_CANDIDATES`
  candidates, logged to :data:`EXPERIMENT`;
* ``model_version`` -- the version of :data:`MODEL_NAME` that the alias ``champion``
  points at, registered from the search and promoted through ``promote_model``;
* ``shap_values`` -- SHAP values (``compute_shap_values``) of the champion on at least
  :data:`MIN_SHAP_ROWS` test rows, one column per original feature; ``top_feature`` -- the
  feature with the largest mean absolute SHAP value;
* ``model_card`` -- a dict with the fields :data:`MODEL_CARD_FIELDS`.
"""

from __future__ import annotations

import numbers
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from production.features import (
    build_pipeline,
    build_preprocessor,
    compute_windowed_features,
    get_feature_origins,
)
from course.grading import CheckFailed
from production.sampling import time_split
from production.simulate import simulate

__all__ = [
    "BASELINE_CATEGORICAL",
    "BASELINE_NUMERIC",
    "CUTOFF",
    "DATA_PARAMS",
    "EXPERIMENT",
    "GAP_DAYS",
    "LEAKY_COLUMNS",
    "METRIC",
    "MIN_CANDIDATES",
    "MIN_SHAP_ROWS",
    "MIN_SPLITS",
    "MODEL_CARD_FIELDS",
    "MODEL_NAME",
    "TEST_DAYS",
    "assignment_data",
    "baseline_average_precision",
    "champion_beats_baseline",
    "model_card_is_complete",
    "search_is_logged",
    "search_is_time_aware",
    "shap_covers_original_features",
]

#: The assignment's data: ``simulate(**DATA_PARAMS)``.
DATA_PARAMS = {
    "n_customers": 800,
    "n_terminals": 240,
    "n_days": 56,
    "label_delay_days": 5,
    "random_state": 7,
}
#: When the model is trained; the test period starts here.
CUTOFF = pd.Timestamp("2026-02-12")
#: Days between the end of the training rows and the cutoff (the label delay).
GAP_DAYS = 5
#: Length of the test period, from the cutoff.
TEST_DAYS = 14
#: MLflow experiment and registered model of the assignment.
EXPERIMENT = "a2-model-development"
MODEL_NAME = "a2-fraud-detector"
#: The metric of the search, as ``run_search`` logs it on the parent run.
METRIC = "cv_average_precision"
#: The smallest search that counts as tuning, and the fewest time-ordered folds.
MIN_CANDIDATES = 4
MIN_SPLITS = 3
#: The smallest SHAP explanation accepted.
MIN_SHAP_ROWS = 200
#: Columns a fraud model must not use: the label, what derives from it, and the clock.
LEAKY_COLUMNS = ("is_fraud", "fraud_scenario", "label_available_at", "tx_datetime")
#: The per-row columns of the baseline the champion must beat.
BASELINE_NUMERIC = ("amount", "hour")
BASELINE_CATEGORICAL = ("channel", "merchant_category")
#: Fields of ``model_card``: text fields need at least ``_MIN_TEXT`` characters.
MODEL_CARD_FIELDS = (
    "model_name",
    "version",
    "intended_use",
    "training_data",
    "metrics",
    "top_features",
    "limitations",
    "monitoring",
)
_TEXT_FIELDS = ("intended_use", "training_data", "limitations", "monitoring")
_MIN_TEXT = 40
_CARD_METRICS = ("cv_average_precision", "test_average_precision")
_TEST_AP_TOLERANCE = 0.01
_ADDITIVITY_ROWS = 200


# --------------------------------------------------------------------------- data


@lru_cache(maxsize=1)
def assignment_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the assignment's training and test rows, with ``hour`` and windowed features.

    The same frames the template builds: ``simulate(**DATA_PARAMS)``, the column
    ``hour``, :func:`production.features.compute_windowed_features`, then
    :func:`production.sampling.time_split` at :data:`CUTOFF` with :data:`GAP_DAYS` and
    :data:`TEST_DAYS`. Cached: several checks use them.

    Returns
    -------
    train, test : pandas.DataFrame
        Rows in time order, every column of ``data`` in the template.
    """
    transactions = simulate(**DATA_PARAMS).transactions
    data = transactions.assign(hour=transactions["tx_datetime"].dt.hour)
    data = data.join(compute_windowed_features(data))
    split = time_split(data, cutoff=CUTOFF, gap_days=GAP_DAYS, test_days=TEST_DAYS)
    return split.train, split.test


@lru_cache(maxsize=1)
def baseline_average_precision() -> float:
    """Return the test average precision of the baseline the champion must beat.

    Gradient boosting with default settings on the per-row columns only
    (:data:`BASELINE_NUMERIC` and :data:`BASELINE_CATEGORICAL`, no history), fitted on
    the training rows of :func:`assignment_data`.

    Returns
    -------
    float
        Average precision on the test rows.
    """
    train, test = assignment_data()
    baseline = build_pipeline(
        build_preprocessor(list(BASELINE_NUMERIC), list(BASELINE_CATEGORICAL), scale=False),
        HistGradientBoostingClassifier(random_state=0),
    ).fit(train, train["is_fraud"])
    return float(average_precision_score(test["is_fraud"], baseline.predict_proba(test)[:, 1]))


# --------------------------------------------------------------------------- helpers


def _search(answers):
    """Return the notebook's ``search`` if it is a SearchResult."""
    from production.tuning import SearchResult

    return answers.require("search", SearchResult)


def _used_columns(pipeline, name: str) -> list[str]:
    """Return the original columns that reach the model of a fitted pipeline."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise CheckFailed(
            f"{name} should be a scikit-learn Pipeline (preprocessing, then the model), as "
            f"build_pipeline returns; got {type(pipeline).__name__}."
        )
    try:
        origins = get_feature_origins(pipeline[:-1])
    except (TypeError, ValueError) as err:
        raise CheckFailed(f"Cannot tell which columns {name} uses: {err}") from err
    return list(dict.fromkeys(origins))


def _check_no_leak(columns: list[str], name: str) -> None:
    """Fail when a model uses the label, its derivatives or the timestamp."""
    leaky = [c for c in columns if c in LEAKY_COLUMNS]
    if leaky:
        raise CheckFailed(
            f"{name} uses {leaky}: the label (and what derives from it) is unknown when a "
            "transaction is scored, and a timestamp teaches the calendar. Keep them out of "
            "the preprocessor's columns."
        )


def _champion():
    """Return ``(version, pipeline)`` of MODEL_NAME@champion, or fail with a message."""
    from production.tracking import configure_tracking, get_model_version, load_model

    configure_tracking()
    try:
        version = get_model_version(MODEL_NAME, "champion")
    except LookupError as err:
        raise CheckFailed(
            f"No version of {MODEL_NAME!r} has the alias 'champion' in the MLflow store: "
            "register the search's best model as 'challenger', then promote it with "
            f"promote_model({MODEL_NAME!r}, metric={METRIC!r}). ({err})"
        ) from None
    return version, load_model(MODEL_NAME, "champion")


def _test_scores(pipeline) -> np.ndarray:
    """Score the assignment's test rows with ``pipeline`` (the columns it was fitted on)."""
    _, test = assignment_data()
    fitted = [str(c) for c in getattr(pipeline, "feature_names_in_", [])]
    missing = [c for c in fitted if c not in test.columns]
    if missing:
        raise CheckFailed(
            f"The champion was fitted on column(s) {missing} that the test rows do not have: "
            "train on the columns of `data` (transactions, `hour`, windowed features) only."
        )
    rows = test[fitted] if fitted else test
    return pipeline.predict_proba(rows)[:, 1]


def _as_version(value) -> str:
    """Return a version number given as int or str as a str, else fail."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | str):
        raise CheckFailed(
            f"`model_version` should be the version as a str or int (what register_best_model "
            f"returns); got {type(value).__name__}."
        )
    return str(value).strip()


# --------------------------------------------------------------------------- task 1


def search_is_time_aware(answers) -> tuple[bool, str]:
    """``search``: time-ordered folds, average precision, enough candidates, no leak."""
    search = _search(answers)
    cv = search.cv
    if not isinstance(cv, TimeSeriesSplit):
        return False, (
            f"The search's folds come from {cv!r}: use time-ordered folds, "
            "cv=TimeSeriesSplit(...) or an int (run_search then uses TimeSeriesSplit)."
        )
    if cv.get_n_splits() < MIN_SPLITS:
        return False, f"The search used {cv.get_n_splits()} folds; use at least {MIN_SPLITS}."
    if search.scoring != "average_precision":
        return False, (
            f"The search optimised {search.scoring!r}: with ~1 % fraud, tune on "
            "scoring='average_precision'."
        )
    if search.n_candidates < MIN_CANDIDATES:
        return False, (
            f"The search tried {search.n_candidates} candidate(s); tune at least "
            f"{MIN_CANDIDATES} (a grid of 2 x 2 values, or n_iter >= {MIN_CANDIDATES})."
        )
    columns = _used_columns(search.best_estimator_, "`search.best_estimator_`")
    _check_no_leak(columns, "`search.best_estimator_`")
    return True, (
        f"{search.strategy} search, {search.n_candidates} candidates on "
        f"{cv.get_n_splits()} time-ordered folds; best CV average precision "
        f"{search.best_score_:.3f} with {len(columns)} features."
    )


def search_is_logged(answers) -> tuple[bool, str]:
    """Check the search is in MLflow: a parent run in EXPERIMENT, a nested run per candidate."""
    search = _search(answers)
    if search.parent_run_id is None:
        return False, (
            "The search was not logged (`search.parent_run_id` is None): run run_search with "
            f"log=True and experiment={EXPERIMENT!r}."
        )
    from production.tracking import compare_runs, configure_tracking

    configure_tracking()
    try:
        children = compare_runs(EXPERIMENT, METRIC, parent_run_id=search.parent_run_id)
    except ValueError as err:
        return False, (
            f"Run {search.parent_run_id} has no nested candidate runs in experiment "
            f"{EXPERIMENT!r}: log the search there (experiment={EXPERIMENT!r}). ({err})"
        )
    if len(children) != search.n_candidates:
        return False, (
            f"Run {search.parent_run_id} has {len(children)} nested run(s) for "
            f"{search.n_candidates} candidates: log the search once, with log=True."
        )
    best = float(children[f"metrics.{METRIC}"].max())
    return True, (
        f"Parent run {search.parent_run_id} in {EXPERIMENT!r} with {len(children)} nested "
        f"candidate runs (best {METRIC} {best:.3f})."
    )


# --------------------------------------------------------------------------- task 2


def champion_beats_baseline(answers) -> tuple[bool, str]:
    """MODEL_NAME@champion loads, is ``model_version``, and beats the per-row baseline."""
    claimed = _as_version(answers.require("model_version"))
    version, champion = _champion()
    if claimed != version:
        return False, (
            f"`model_version` is {claimed!r} but the alias 'champion' points at version "
            f"{version}: set `model_version` to the champion's version (get_model_version)."
        )
    _check_no_leak(_used_columns(champion, "The champion"), "The champion")
    _, test = assignment_data()
    score = average_precision_score(test["is_fraud"], _test_scores(champion))
    baseline = baseline_average_precision()
    verdict = (
        f"{MODEL_NAME}@champion (version {version}): average precision {score:.3f} on the "
        f"{len(test):,} test transactions; the baseline (gradient boosting on "
        f"{', '.join(BASELINE_NUMERIC + BASELINE_CATEGORICAL)}) scores {baseline:.3f}."
    )
    if score <= baseline:
        return False, verdict + " Beat it: use the windowed features and tune the model."
    return True, verdict


# --------------------------------------------------------------------------- task 3


def shap_covers_original_features(answers) -> tuple[bool, str]:
    """``shap_values`` explain the champion per original feature; ``top_feature`` is its top."""
    import shap

    from production.explain import compute_explained_output

    explanation = answers.require("shap_values", shap.Explanation)
    top_feature = answers.require("top_feature", str)
    values = np.asarray(explanation.values, dtype=float)
    if values.ndim != 2 or values.shape[0] < MIN_SHAP_ROWS:
        return False, (
            f"`shap_values` has shape {values.shape}; explain at least {MIN_SHAP_ROWS} test "
            "rows (rows x features, from compute_shap_values)."
        )
    names = [str(n) for n in (explanation.feature_names or [])]
    _, champion = _champion()
    fitted = [str(c) for c in champion.feature_names_in_]
    used = set(_used_columns(champion, "The champion"))
    expected = [c for c in fitted if c in used]
    if names != expected:
        extra = [n for n in names if n not in expected]
        hint = (
            f" {extra[:4]} are not original columns: explain with compute_shap_values, "
            "which sums one-hot columns back to their feature."
            if extra
            else ""
        )
        return False, (
            f"`shap_values` covers {names[:6]}{'...' if len(names) > 6 else ''}; the champion "
            f"uses the original features {expected}.{hint}"
        )
    rows = pd.DataFrame(np.asarray(explanation.data, dtype=object), columns=names)
    rows = rows.infer_objects().head(_ADDITIVITY_ROWS)
    for column in fitted:
        if column not in rows:
            rows[column] = np.nan  # fitted on, but dropped by the preprocessor
    output = compute_explained_output(champion, rows[fitted])
    total = values[: len(rows)].sum(axis=1) + np.asarray(explanation.base_values)[: len(rows)]
    if not np.allclose(total, output, atol=1e-4):
        return False, (
            "`shap_values` do not add up to the champion's output on their rows (largest "
            f"gap {np.abs(total - output).max():.3g}): explain the registered champion, "
            f"load_model({MODEL_NAME!r}, 'champion')."
        )
    mean_abs = np.abs(values).mean(axis=0)
    top = names[int(np.argmax(mean_abs))]
    if top_feature != top:
        return False, (
            f"`top_feature` is {top_feature!r}, but the largest mean |SHAP| of `shap_values` "
            f"is {top!r} ({mean_abs.max():.3f})."
        )
    return True, (
        f"{values.shape[0]} rows x {len(names)} original features, adding up to the "
        f"champion's output; top feature {top!r} (mean |SHAP| {mean_abs.max():.3f})."
    )


# --------------------------------------------------------------------------- task 4


def model_card_is_complete(answers) -> tuple[bool, str]:
    """``model_card`` has every field, and its facts match the champion."""
    card = answers.require("model_card", dict)
    missing = [f for f in MODEL_CARD_FIELDS if f not in card or card[f] in (None, "", [], {})]
    if missing:
        return False, f"`model_card` lacks the field(s) {missing}; fill every one of them."
    short = [
        f
        for f in _TEXT_FIELDS
        if not isinstance(card[f], str) or len(card[f].strip()) < _MIN_TEXT or "TODO" in card[f]
    ]
    if short:
        return False, (
            f"`model_card` field(s) {short} should be sentences (at least {_MIN_TEXT} "
            "characters, no TODO): say what, for whom, and why."
        )
    if card["model_name"] != MODEL_NAME:
        return False, f"`model_card['model_name']` is {card['model_name']!r}; use {MODEL_NAME!r}."
    version, champion = _champion()
    if str(card["version"]).strip() != version:
        return False, (
            f"`model_card['version']` is {card['version']!r}; the champion is version {version}."
        )
    metrics = card["metrics"]
    if not isinstance(metrics, dict) or any(
        not isinstance(metrics.get(k), numbers.Real) for k in _CARD_METRICS
    ):
        return False, (
            f"`model_card['metrics']` should be a dict with the numbers {list(_CARD_METRICS)}."
        )
    _, test = assignment_data()
    test_ap = float(average_precision_score(test["is_fraud"], _test_scores(champion)))
    if abs(float(metrics["test_average_precision"]) - test_ap) > _TEST_AP_TOLERANCE:
        return False, (
            f"`model_card['metrics']['test_average_precision']` is "
            f"{metrics['test_average_precision']:.3f}; the champion scores {test_ap:.3f} on "
            "the test rows: report what you measured."
        )
    features = card["top_features"]
    used = _used_columns(champion, "The champion")
    if (
        not isinstance(features, list | tuple)
        or len(features) < 3
        or any(f not in used for f in features)
    ):
        return False, (
            "`model_card['top_features']` should list at least 3 original features the "
            f"champion uses (from the SHAP values), e.g. {used[:3]}; got {features!r}."
        )
    return True, (
        f"Model card of {MODEL_NAME} v{version}: every field filled; test average precision "
        f"{test_ap:.3f} as reported; top features {list(features)[:3]}."
    )

"""Tests for course.grading_checks.model_development on tiny objects.

The checks' data (``assignment_data``) and baseline are replaced by a tiny synthetic
split, so a logged search, a registered champion and its SHAP values take a few seconds
in a throwaway MLflow store.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold

from assignment_helpers import run, template_setup
from production.explain import compute_shap_values
from production.features import build_pipeline, build_preprocessor
from course.grading import load_rubric
from course.grading_checks import model_development as checks
from production.tracking import (
    configure_tracking,
    get_model_version,
    load_model,
    promote_model,
    register_best_model,
)
from production.tuning import run_search

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "02_activities/assignments/02_model_development_activity.ipynb"
RUBRIC = ROOT / "02_activities/assignments/02_model_development_rubric.yml"
NUMERIC, CATEGORICAL = ["amount", "hour"], ["channel"]
GRID = {"model__C": [0.01, 0.1, 1.0, 10.0]}
# the real (cached) data and baseline, before the autouse fixture replaces them
REAL_ASSIGNMENT_DATA = checks.assignment_data
REAL_BASELINE = checks.baseline_average_precision


@pytest.fixture(scope="module")
def split():
    """1,000 time-ordered transactions, ~10 % fraud (large online amounts): 700 train, 300 test."""
    rng = np.random.default_rng(0)
    n = 1000
    days = np.sort(rng.uniform(0, 40, n))
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n),
            "tx_datetime": pd.Timestamp("2026-01-01") + pd.to_timedelta(days, unit="D"),
            "amount": rng.lognormal(3, 1, n),
            "hour": rng.integers(0, 24, n),
            "channel": rng.choice(["chip", "online", "contactless"], n),
        }
    )
    fraud = (frame["amount"] > 40) & (frame["channel"] == "online") | (rng.random(n) < 0.02)
    frame["is_fraud"] = fraud.astype("int8")
    frame["fraud_scenario"] = frame["is_fraud"]
    frame["label_available_at"] = frame["tx_datetime"] + pd.Timedelta(days=3)
    return frame.iloc[:700], frame.iloc[700:]


@pytest.fixture(autouse=True)
def tiny_assignment(monkeypatch, split):
    """Every check sees the tiny split and a baseline of 0.2 average precision."""
    monkeypatch.setattr(checks, "assignment_data", lambda: split)
    monkeypatch.setattr(checks, "baseline_average_precision", lambda: 0.2)


def _search(train, cv=3, **options):
    pipeline = build_pipeline(build_preprocessor(NUMERIC, CATEGORICAL), LogisticRegression())
    X = train[["tx_datetime", *NUMERIC, *CATEGORICAL]]
    return run_search(
        pipeline, GRID, X, train["is_fraud"], cv=cv, time_col="tx_datetime", **options
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{(tmp_path_factory.mktemp('mlruns') / 'mlflow.db').as_posix()}"


@pytest.fixture
def tracking(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    return configure_tracking()


@pytest.fixture(scope="module")
def solution(split, store):
    """A learner's answers: a logged search, its best model as champion, SHAP, a card."""
    train, test = split
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        configure_tracking()
        search = _search(train, experiment=checks.EXPERIMENT, random_state=0)
        register_best_model(search.parent_run_id, checks.MODEL_NAME)
        assert promote_model(checks.MODEL_NAME, metric=checks.METRIC)
        version = get_model_version(checks.MODEL_NAME, "champion")
        champion = load_model(checks.MODEL_NAME, "champion")
    explanation = compute_shap_values(champion, test, max_rows=250, random_state=0)
    mean_abs = np.abs(explanation.values).mean(axis=0)
    score = champion.predict_proba(test[champion.feature_names_in_])[:, 1]
    return {
        "search": search,
        "model_version": version,
        "shap_values": explanation,
        "top_feature": explanation.feature_names[int(np.argmax(mean_abs))],
        "model_card": {
            "model_name": checks.MODEL_NAME,
            "version": version,
            "intended_use": "Rank transactions by fraud risk for the analysts' review queue.",
            "training_data": "The 700 oldest transactions, labels known at the cutoff.",
            "metrics": {
                "cv_average_precision": search.best_score_,
                "test_average_precision": average_precision_score(test["is_fraud"], score),
            },
            "top_features": ["amount", "channel", "hour"],
            "limitations": "A linear model: it cannot see interactions it was not given.",
            "monitoring": "Weekly PSI of amount and score; average precision once labelled.",
        },
    }


CHECKS = [
    checks.search_is_time_aware,
    checks.search_is_logged,
    checks.champion_beats_baseline,
    checks.shap_covers_original_features,
    checks.model_card_is_complete,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_reference_solution_passes(check, solution, tracking):
    passed, message = run(check, **solution)
    assert passed, message


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_template_blanks_fail_with_a_message(check):
    names = ["search", "model_version", "shap_values", "top_feature", "model_card"]
    passed, message = run(check, **dict.fromkeys(names))
    assert not passed
    assert "still None" in message


def test_rubric_points_and_checks():
    rubric = load_rubric(RUBRIC)
    assert rubric.max_score == 10
    assert [c.check.rpartition(".")[2] for c in rubric.criteria] == [c.__name__ for c in CHECKS]


def test_template_uses_the_checks_parameters():
    first, values = template_setup(ASSIGNMENT)
    assert values["DATA_PARAMS"] == checks.DATA_PARAMS
    for name in ("GAP_DAYS", "TEST_DAYS", "EXPERIMENT", "MODEL_NAME"):
        assert values[name] == getattr(checks, name), name
    assert f'pd.Timestamp("{checks.CUTOFF:%Y-%m-%d}")' in first


def test_template_blanks_are_the_graded_names():
    cells = json.loads(ASSIGNMENT.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for name in ("search", "model_version", "shap_values", "top_feature", "model_card"):
        assert f"{name} = None  # TODO" in source


# --------------------------------------------------------------------------- common mistakes


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"scoring": "roc_auc"}, "scoring='average_precision'"),
        ({"n_candidates": 2}, "tune at least 4"),
        ({"cv": KFold(n_splits=3)}, "time-ordered folds"),
    ],
)
def test_search_settings_fail_with_a_hint(solution, change, hint):
    search = dataclasses.replace(solution["search"], **change)
    passed, message = run(checks.search_is_time_aware, search=search)
    assert not passed and hint in message, message


def test_search_with_two_folds_fails(split):
    search = _search(split[0], cv=2, log=False)
    passed, message = run(checks.search_is_time_aware, search=search)
    assert not passed and "at least 3" in message


def test_leaky_model_fails(solution, split):
    train = split[0]
    leaky = build_pipeline(
        build_preprocessor([*NUMERIC, "is_fraud"], CATEGORICAL), LogisticRegression()
    ).fit(train, train["is_fraud"])
    search = dataclasses.replace(solution["search"], best_estimator_=leaky)
    passed, message = run(checks.search_is_time_aware, search=search)
    assert not passed and "uses ['is_fraud']" in message


def test_unlogged_search_fails(solution):
    search = dataclasses.replace(solution["search"], parent_run_id=None)
    passed, message = run(checks.search_is_logged, search=search)
    assert not passed and "log=True" in message


def test_search_logged_elsewhere_fails(solution, tracking):
    search = dataclasses.replace(solution["search"], parent_run_id="0" * 32)
    passed, message = run(checks.search_is_logged, search=search)
    assert not passed and "a2-model-development" in message


def test_wrong_model_version_fails(solution, tracking):
    passed, message = run(checks.champion_beats_baseline, model_version="7")
    assert not passed and "points at version 1" in message


def test_champion_below_the_baseline_fails(solution, tracking, monkeypatch):
    monkeypatch.setattr(checks, "baseline_average_precision", lambda: 0.999)
    passed, message = run(checks.champion_beats_baseline, model_version=1)
    assert not passed and "Beat it" in message and "0.999" in message


def test_missing_champion_fails(solution, tracking, monkeypatch):
    monkeypatch.setattr(checks, "MODEL_NAME", "a2-never-registered")
    passed, message = run(checks.champion_beats_baseline, model_version="1")
    assert not passed and "has the alias 'champion'" in message and "promote_model" in message


def test_shap_on_one_hot_columns_fails(solution, split, tracking):
    champion = solution["search"].best_estimator_
    Xt = champion[:-1].transform(split[1])
    names = list(champion[:-1].get_feature_names_out())
    explanation = shap.Explanation(
        values=np.zeros((len(Xt), len(names))),
        base_values=np.zeros(len(Xt)),
        data=Xt,
        feature_names=names,
    )
    passed, message = run(
        checks.shap_covers_original_features, shap_values=explanation, top_feature=names[0]
    )
    assert not passed and "not original columns" in message


def test_shap_on_too_few_rows_fails(solution, tracking):
    few = solution["shap_values"][:50]
    passed, message = run(checks.shap_covers_original_features, shap_values=few, top_feature="x")
    assert not passed and "at least 200" in message


def test_shap_of_another_model_fails(solution, split, tracking):
    train, test = split
    other = build_pipeline(
        build_preprocessor(NUMERIC, CATEGORICAL), LogisticRegression(C=1e-4)
    ).fit(train[NUMERIC + CATEGORICAL], train["is_fraud"])
    explanation = compute_shap_values(other, test, max_rows=250, random_state=0)
    passed, message = run(
        checks.shap_covers_original_features,
        shap_values=explanation,
        top_feature=solution["top_feature"],
    )
    assert not passed and "do not add up" in message


def test_wrong_top_feature_fails(solution, tracking):
    wrong = next(n for n in solution["shap_values"].feature_names if n != solution["top_feature"])
    passed, message = run(
        checks.shap_covers_original_features,
        shap_values=solution["shap_values"],
        top_feature=wrong,
    )
    assert not passed and f"is {solution['top_feature']!r}" in message


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"monitoring": None}, "lacks the field(s) ['monitoring']"),
        ({"limitations": "TODO: write this"}, "['limitations'] should be sentences"),
        ({"model_name": "fraud"}, "use 'a2-fraud-detector'"),
        ({"version": "9"}, "the champion is version 1"),
        ({"metrics": {"test_average_precision": 0.5}}, "cv_average_precision"),
        ({"top_features": ["amount", "merchant_category", "hour"]}, "at least 3 original"),
    ],
)
def test_incomplete_model_card_fails(solution, tracking, change, hint):
    card = solution["model_card"] | change
    passed, message = run(checks.model_card_is_complete, model_card=card)
    assert not passed and hint in message, message


def test_model_card_with_wrong_test_score_fails(solution, tracking):
    metrics = solution["model_card"]["metrics"]
    card = solution["model_card"] | {
        "metrics": metrics | {"test_average_precision": metrics["test_average_precision"] + 0.05}
    }
    passed, message = run(checks.model_card_is_complete, model_card=card)
    assert not passed and "report what you measured" in message


def test_assignment_data_and_baseline_are_what_the_template_builds(monkeypatch):
    """The real split and baseline (~5 s): test period, no leakage, a beatable baseline."""
    monkeypatch.setattr(checks, "assignment_data", REAL_ASSIGNMENT_DATA)
    train, test = REAL_ASSIGNMENT_DATA()
    assert test["tx_datetime"].min() >= checks.CUTOFF
    assert test["tx_datetime"].max() < checks.CUTOFF + pd.Timedelta(days=checks.TEST_DAYS)
    assert train["tx_datetime"].max() < checks.CUTOFF - pd.Timedelta(days=checks.GAP_DAYS)
    assert (train["label_available_at"] <= checks.CUTOFF).all()
    assert {"hour", "customer_amount_mean_30d", "terminal_fraud_rate_28d"} <= set(test.columns)
    assert 0.05 < REAL_BASELINE() < 0.3  # 0.188; the reference solution's champion: 0.51

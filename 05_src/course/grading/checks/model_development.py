"""Checks of assignment 2, model development (``02_model_development_rubric.yml``).

The judge rebuilds the assignment's data (:func:`assignment_data`, the notebook's setup
in plain pandas), reads the notebook's MLflow store (``mlflow.db`` in its folder) as data
with :mod:`sqlite3`, and has the contained scorer (:mod:`course.grading.scorer`)
cross-validate the search's best candidate again on the training rows and score the
registered champion on the test rows. The notebook defines ``search`` (a fitted
``GridSearchCV`` or ``RandomizedSearchCV``), ``parent_run_id``, ``model_version`` and
``model_card``.
"""

from __future__ import annotations

import sqlite3
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from course.grading.artifact import CheckFailed
from production.simulate import simulate

NAMES = ("parent_run_id", "model_version", "model_card")
SEARCHES = ("search",)
TRUSTED = ("05_src/production/simulate.py", "05_src/production/config.py")
USES_SCORER = True

DATA_PARAMS = {
    "n_customers": 400,
    "n_terminals": 120,
    "n_days": 42,
    "label_delay_days": 5,
    "random_state": 7,
}
CUTOFF = pd.Timestamp("2026-01-29")
GAP_DAYS = 5
TEST_DAYS = 14
EXPERIMENT = "a2-model-development"
MODEL_NAME = "a2-fraud-detector"
METRIC = "cv_average_precision"
LEAKY = ("is_fraud", "fraud_scenario", "label_available_at", "tx_datetime", "transaction_id")
BASELINE = (["amount", "hour"], ["channel", "merchant_category"])
CARD_TEXT = ("intended_use", "training_data", "limitations", "monitoring")
CARD_FIELDS = ("model_name", "version", *CARD_TEXT, "metrics", "top_features")


def _recent_count(times: pd.Series, days: int) -> pd.Series:
    """Count each row's earlier rows of the group within ``days`` (times sorted)."""
    t = times.to_numpy()
    earlier = np.searchsorted(t, t - np.timedelta64(days, "D"))
    return pd.Series(np.arange(len(t)) - earlier, index=times.index)


@lru_cache(maxsize=1)
def assignment_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(train, test)`` as the notebook's setup cell builds them."""
    tx = simulate(**DATA_PARAMS).transactions
    data = tx.assign(hour=tx["tx_datetime"].dt.hour)
    mean = data.groupby("customer_id")["amount"].transform(lambda s: s.shift().expanding().mean())
    data["amount_ratio"] = data["amount"] / mean.fillna(data["amount"])
    data["customer_tx_1d"] = data.groupby("customer_id")["tx_datetime"].transform(
        _recent_count, days=1
    )
    data["terminal_tx_7d"] = data.groupby("terminal_id")["tx_datetime"].transform(
        _recent_count, days=7
    )
    gap, end = pd.Timedelta(days=GAP_DAYS), CUTOFF + pd.Timedelta(days=TEST_DAYS)
    train = data[(data["tx_datetime"] < CUTOFF - gap) & (data["label_available_at"] <= CUTOFF)]
    test = data[(data["tx_datetime"] >= CUTOFF) & (data["tx_datetime"] < end)]
    return train, test


@lru_cache(maxsize=1)
def baseline_average_precision() -> float:
    """Return the test average precision of gradient boosting on the per-row columns."""
    train, test = assignment_data()
    numeric, categorical = BASELINE
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    model = Pipeline(
        [
            ("pre", ColumnTransformer([("cat", encode, categorical)], remainder="passthrough")),
            ("model", HistGradientBoostingClassifier(random_state=0)),
        ]
    ).fit(train[numeric + categorical], train["is_fraud"])
    scores = model.predict_proba(test[numeric + categorical])[:, 1]
    return float(average_precision_score(test["is_fraud"], scores))


def make_inputs(seed: int) -> dict:
    """No function to call: the answers are objects and the MLflow store."""
    return {}


# ------------------------------------------------------------------ the learner's store


def _query(workdir: Path, sql: str, *args) -> list[tuple]:
    """Read the notebook's MLflow store (SQLite) read-only."""
    path = Path(workdir) / "mlflow.db"
    if not path.is_file():
        raise CheckFailed(
            "No MLflow store `mlflow.db` in the notebook's folder; expected the setup's "
            "mlflow.set_tracking_uri('sqlite:///mlflow.db') and runs logged there."
        )
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute(sql, args).fetchall()


def _children(workdir: Path, parent: str) -> list[str]:
    rows = _query(
        workdir,
        "SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = ?",
        parent,
    )
    return [r[0] for r in rows]


def _parent_run(answers, workdir: Path) -> str:
    """Return ``parent_run_id`` once it names a run of the assignment's experiment."""
    parent = answers.require("parent_run_id", "str")
    rows = _query(
        workdir,
        "SELECT e.name FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
        "WHERE r.run_uuid = ?",
        parent,
    )
    if not rows:
        raise CheckFailed(
            f"`parent_run_id` is {parent!r:.60}, which is no run of the notebook's store; "
            "expected the id of the search's parent run (parent.info.run_id)."
        )
    if rows[0][0] != EXPERIMENT:
        raise CheckFailed(
            f"The parent run is in experiment {rows[0][0]!r}; expected {EXPERIMENT!r}."
        )
    return parent


def _scored(answers, scorer, workdir: Path) -> dict:
    """Ask the contained scorer once for the CV score and the champion's test scores."""
    cache = _scored.__dict__.setdefault("cache", {})
    if "answer" not in cache:
        train, test = assignment_data()
        info = answers.searches.get("search") or {}
        tasks = ["champion"] + (["cv"] if info.get("pickle") else [])
        with tempfile.TemporaryDirectory(prefix="grade-rows-") as tmp:
            train_path, test_path = Path(tmp, "train.parquet"), Path(tmp, "test.parquet")
            train.drop(columns=["fraud_scenario"]).to_parquet(train_path)
            test.drop(columns=list(LEAKY)[:3]).to_parquet(test_path)
            request = {
                "tasks": tasks,
                "search_pickle": str(answers.folder / str(info.get("pickle", "none"))),
                "train": str(train_path),
                "test": str(test_path),
                "tracking_uri": f"sqlite:///{Path(workdir) / 'mlflow.db'}",
                "model_uri": f"models:/{MODEL_NAME}@champion",
            }
            cache["answer"] = scorer(request, timeout=240)
    return cache["answer"]


# ------------------------------------------------------------------ the criteria


def search_is_time_aware(answers, **context) -> tuple[bool, str]:
    """``search``: TimeSeriesSplit (>= 3 folds), average precision, >= 4 candidates, no leak."""
    info = answers.search("search")
    if not str(info.get("cv")).endswith("TimeSeriesSplit"):
        return False, (
            f"The search's folds come from {str(info.get('cv')).rsplit('.', 1)[-1]}; expected "
            "time-ordered folds: cv=TimeSeriesSplit(n_splits=3) or more."
        )
    if not isinstance(info.get("n_splits"), int) or info["n_splits"] < 3:
        return False, f"The search used {info.get('n_splits')} folds; expected at least 3."
    if info.get("scoring") != "average_precision":
        return False, (
            f"The search optimised {info.get('scoring')!r:.60}; expected "
            "scoring='average_precision' (about 1 % of transactions are frauds)."
        )
    if not isinstance(info.get("n_candidates"), int) or info["n_candidates"] < 4:
        return (
            False,
            f"The search tried {info.get('n_candidates')} candidate(s); expected 4 or more.",
        )
    features = info.get("features") or []
    leaky = [c for c in features if c in LEAKY]
    if leaky:
        return False, (
            f"The search's model is fitted on {leaky}; expected only features known when a "
            "transaction is scored (fit on train[FEATURES])."
        )
    return True, (
        f"{info['n_candidates']} candidates on {info['n_splits']} time-ordered folds, average "
        f"precision; best CV score {info.get('best_score', float('nan')):.3f}."
    )


def search_saw_training_rows(answers, scorer, workdir, **context) -> tuple[bool, str]:
    """Check the best candidate's CV score is reproduced on the training rows only."""
    info = answers.search("search")
    if not info.get("pickle"):
        raise CheckFailed(
            f"The search could not be saved for checking ({info.get('pickle_error')}); "
            "expected a scikit-learn search object."
        )
    answer = _scored(answers, scorer, workdir).get("cv") or {"error": "no answer"}
    if "error" in answer:
        return False, f"The search's best candidate could not be cross-validated: {answer['error']}"
    best = info.get("best_score")
    if not isinstance(best, int | float) or abs(answer["cv_score"] - best) > 1e-6:
        return False, (
            f"The search reports a best CV score of {best}, but its best candidate scores "
            f"{answer['cv_score']:.4f} with the same folds on `train` (transactions before "
            f"CUTOFF - {GAP_DAYS} days with labels known at the cutoff): expected the search "
            "fitted on train[FEATURES] only, in time order, with a seeded model."
        )
    return True, f"Its best CV score ({best:.4f}) is reproduced on the training rows only."


def search_is_logged(answers, workdir, **context) -> tuple[bool, str]:
    """Check for a parent run in EXPERIMENT with a nested run per candidate logging METRIC."""
    info = answers.search("search")
    parent = _parent_run(answers, workdir)
    children = _children(workdir, parent)
    if len(children) != info.get("n_candidates"):
        return False, (
            f"The parent run has {len(children)} nested run(s); expected one per candidate "
            f"({info.get('n_candidates')}), each started with mlflow.start_run(nested=True)."
        )
    marks = ",".join("?" * len(children))
    logged = _query(
        workdir,
        f"SELECT run_uuid, MAX(value) FROM metrics WHERE key = ? AND run_uuid IN ({marks}) "
        "GROUP BY run_uuid",
        METRIC,
        *children,
    )
    if len(logged) != len(children):
        return False, (
            f"{len(children) - len(logged)} nested run(s) have no metric {METRIC!r}; expected "
            "each candidate's mean CV score logged as it."
        )
    best = max(value for _, value in logged)
    if abs(best - float(info.get("best_score") or 0)) > 1e-6:
        return False, (
            f"The best {METRIC} of the nested runs is {best:.4f}; expected the search's "
            f"best_score_ ({info.get('best_score')}): log cv_results_['mean_test_score']."
        )
    return True, f"Parent run with {len(children)} nested candidate runs in {EXPERIMENT!r}."


def _champion_version(answers, workdir: Path) -> tuple[str, str]:
    rows = _query(
        workdir,
        "SELECT a.version, v.run_id FROM registered_model_aliases a JOIN model_versions v "
        "ON a.name = v.name AND a.version = v.version WHERE a.name = ? AND a.alias = 'champion'",
        MODEL_NAME,
    )
    if not rows:
        raise CheckFailed(
            f"No version of {MODEL_NAME!r} has the alias 'champion'; expected the search's "
            "best model registered and the alias set (set_registered_model_alias)."
        )
    return str(rows[0][0]), str(rows[0][1] or "")


def champion_beats_baseline(answers, scorer, workdir, **context) -> tuple[bool, str]:
    """Check the champion is ``model_version``, from the search's runs, and beats the baseline."""
    claimed = answers.require("model_version", "int", "str")
    parent = _parent_run(answers, workdir)
    version, run_id = _champion_version(answers, workdir)
    if str(claimed).strip() != version:
        return False, f"`model_version` is {claimed!r}; expected the champion's version, {version}."
    if run_id != parent and run_id not in _children(workdir, parent):
        return False, (
            f"The champion was logged by run {run_id}; expected the search's parent run "
            f"{parent} (or one of its nested runs): log and register the search's model."
        )
    answer = _scored(answers, scorer, workdir).get("champion") or {"error": "no answer"}
    if "error" in answer:
        return False, f"The champion could not be loaded and scored: {answer['error']}"
    _, test = assignment_data()
    if len(answer["scores"]) != len(test):
        return False, f"The champion returned {len(answer['scores'])} scores for {len(test)} rows."
    score = float(average_precision_score(test["is_fraud"], answer["scores"]))
    baseline = baseline_average_precision()
    verdict = (
        f"The champion (version {version}) has average precision {score:.3f} on the "
        f"{len(test):,} test rows; the baseline (gradient boosting on amount, hour, channel, "
        f"merchant_category) {baseline:.3f}"
    )
    if score <= baseline:
        return False, verdict + ": expected better, with the history features and tuning."
    return True, verdict + "."


def model_card_is_complete(answers, scorer, workdir, **context) -> tuple[bool, str]:
    """``model_card`` has every field, and its facts match the champion."""
    card = answers.require("model_card", "dict")
    missing = [f for f in CARD_FIELDS if card.get(f) in (None, "", [], {})]
    if missing:
        return False, f"`model_card` lacks {missing}; expected every field of the task filled."
    short = [f for f in CARD_TEXT if not isinstance(card[f], str) or len(card[f].strip()) < 40]
    if short:
        return False, f"`model_card` fields {short} should be sentences of 40 characters or more."
    version, _ = _champion_version(answers, workdir)
    if card["model_name"] != MODEL_NAME or str(card["version"]).strip() != version:
        return False, (
            f"`model_card` names {card['model_name']!r} version {card['version']!r}; expected "
            f"{MODEL_NAME!r} version {version}."
        )
    reported = (
        card["metrics"].get("test_average_precision") if isinstance(card["metrics"], dict) else None
    )
    answer = _scored(answers, scorer, workdir).get("champion") or {}
    if "scores" not in answer:
        return False, "The champion could not be scored, so its metrics cannot be checked."
    _, test = assignment_data()
    measured = float(average_precision_score(test["is_fraud"], answer["scores"]))
    if not isinstance(reported, int | float) or abs(reported - measured) > 0.01:
        return False, (
            f"`model_card['metrics']['test_average_precision']` is {reported!r:.20}; expected "
            f"the champion's average precision on the test rows, {measured:.3f} (within 0.01)."
        )
    features = card["top_features"]
    used = answer.get("features", [])
    if not isinstance(features, list) or len(features) < 3 or any(f not in used for f in features):
        return False, (
            f"`model_card['top_features']` is {features!r:.100}; expected at least 3 features "
            f"the champion uses, among {used}."
        )
    return True, f"Model card of {MODEL_NAME} v{version}: every field filled, metrics as measured."

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 05 · Model development
#
# Lab 04 built the features; this lab builds the model, and the evidence that it is worth
# shipping (Huyen, *Designing Machine Learning Systems*, chapter 6).
#
# **You will:** set baselines a model must beat and pick a metric that a 1 % positive class
# cannot fool; track a run in MLflow by hand; cross-validate in time; write the searches
# yourself with scikit-learn (`GridSearchCV`, `RandomizedSearchCV`) and Optuna; log every candidate as a nested run; and move a model through the registry,
# from `challenger` to `champion`, only if it passes a metric gate. Three "Your turn"
# exercises check your work. About 60 minutes.
#
# Everything is seeded with `RANDOM_STATE`: rerun the notebook and you get the same scores
# (timings vary with the machine).

# %% [markdown]
# ## 0. Setup
#
# The package gives the data, the features and the plumbing (where the tracking store is);
# the modelling is written here, with scikit-learn, MLflow and Optuna themselves.

# %%
import dataclasses
import time

import mlflow
import numpy as np
import optuna
import pandas as pd
import sklearn
from mlflow import MlflowClient
from scipy import stats
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the next
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
)
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_preprocessor,
    compute_model_features,
)
from production.simulate import simulate
from production.tracking import (
    compare_runs,
    get_model_version,
    get_or_create_experiment,
    list_runs,
    load_model,
    log_run,
    promote_model,
    register_best_model,
)
from production.tuning import (
    check_time_ordered_cv,
    log_search,
    plot_search_results,
    time_ordered_cv,
)

# one OpenMP thread per fit: on a small busy machine, more threads wait on each other
threadpool_limits(limits=1, user_api="openmp")
optuna.logging.set_verbosity(optuna.logging.WARNING)
EXPERIMENT = "lab05-model-development"
MODEL = "lab05-fraud-detector"
get_or_create_experiment(EXPERIMENT)  # the configured store; now the active experiment
print(f"experiment {EXPERIMENT!r}, registered model {MODEL!r}, random_state={RANDOM_STATE}")

# %% [markdown]
# Sixty simulated days (~120k transactions, ~0.9 % fraud) and the model's point-in-time
# features of lab 04. The split of lab 03, at the cutoff of 12 February: the test period is
# what comes after; training keeps the rows at least 7 days older whose label is known at
# the cutoff. To keep every fit cheap, the model trains on a random 10,000 of those rows,
# kept in time order.

# %%
transactions = simulate(random_state=RANDOM_STATE).transactions
data = compute_model_features(transactions).join(
    transactions[["tx_datetime", "label_available_at", "is_fraud"]]
)
FEATURES = list(NUMERIC_FEATURES + CATEGORICAL_FEATURES)
CUTOFF = pd.Timestamp("2026-02-12")
known = (data["tx_datetime"] < CUTOFF - pd.Timedelta(days=7)) & (
    data["label_available_at"] <= CUTOFF
)
train = data[known].sample(n=10_000, random_state=RANDOM_STATE).sort_values("tx_datetime")
test = data[data["tx_datetime"] >= CUTOFF]
y_train, y_test = train["is_fraud"], test["is_fraud"]
print(
    f"train {len(train):,} rows ({y_train.sum()} frauds), "
    f"test {len(test):,} rows ({y_test.sum()} frauds, {y_test.mean():.2%})"
)

# %% [markdown]
# ## 1. Baselines
#
# A model is worth its complexity only if it beats something simpler. Four candidates, from
# nothing to the course's model, all scored on the same test period:
#
# * **majority class**: always "legitimate" (`DummyClassifier`); its score is constant;
# * **amount rule**: flag every amount above 450, the rule a bank would start with;
# * **logistic regression** on the scaled features;
# * **gradient boosting** (`HistGradientBoostingClassifier`).
#
# Each model is a `Pipeline` of lab 04's preprocessor (`"preprocess"`) and an estimator
# (`"model"`): the step names become the parameter names searched in section 4.


# %%
def make_pipeline(estimator):
    """Lab 04's preprocessor, then the estimator."""
    preprocessor = build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES))
    return Pipeline([("preprocess", preprocessor), ("model", estimator)])


baselines = {
    "majority class": make_pipeline(DummyClassifier(strategy="prior")),
    "logistic regression": make_pipeline(LogisticRegression(max_iter=1000)),
    "gradient boosting": make_pipeline(
        HistGradientBoostingClassifier(max_iter=50, random_state=RANDOM_STATE)
    ),
}
test_scores = {"amount rule": (test["amount"] > 450).astype(float).to_numpy()}
for name, pipeline in baselines.items():
    test_scores[name] = pipeline.fit(train[FEATURES], y_train).predict_proba(test[FEATURES])[:, 1]
baseline_table = pd.DataFrame(
    {
        name: {
            "accuracy": accuracy_score(y_test, score >= 0.5),
            "ROC AUC": roc_auc_score(y_test, score),
            "average precision": average_precision_score(y_test, score),
        }
        for name, score in test_scores.items()
    }
).T
baseline_table.round(3)

# %% [markdown]
# * **Accuracy cannot tell them apart**: always answering "legitimate" is right for more
#   than 99 % of the test transactions. On a rare positive class, accuracy counts the easy
#   negatives.
# * **ROC AUC** is better, but it also weighs the ~36,000 negatives, most of which any model
#   ranks low.
# * **Average precision** (the area under the precision-recall curve) equals the fraud rate
#   for a constant score and separates the candidates: it is this lab's metric.

# %%
assert baseline_table.loc["majority class", "accuracy"] > 0.99
assert baseline_table.loc["majority class", "average precision"] < 0.02
assert (
    baseline_table.loc["gradient boosting", "average precision"]
    > baseline_table.loc["amount rule", "average precision"]
)

# %% [markdown]
# ## 2. Tracking a run by hand
#
# Every model goes into the tracking store: its parameters, its scores and the fitted
# pipeline itself, so that anyone can compare runs and reload the model later. This is what
# an MLflow run is, written out once with MLflow's own calls:
#
# * `mlflow.start_run` opens a run in the active experiment (closed at the end of `with`);
# * `log_params` / `log_metrics` record settings and numbers;
# * `mlflow.sklearn.log_model` stores the pipeline. `serialization_format="cloudpickle"`
#   because MLflow's default (skops) refuses tree models; pinned `pip_requirements` skip
#   ~5 s of guessing the environment; `pyfunc_predict_fn="predict_proba"` makes a served
#   model answer with probabilities, not 0/1 labels.

# %%
gbm = baselines["gradient boosting"]
with mlflow.start_run(run_name="baseline: gradient boosting (by hand)") as run:
    mlflow.log_params({"model": "HistGradientBoostingClassifier", "max_iter": 50})
    mlflow.log_params({"train_rows": len(train), "random_state": RANDOM_STATE})
    mlflow.log_metrics(
        {
            f"test_{k.replace(' ', '_')}": v
            for k, v in baseline_table.loc["gradient boosting"].items()
        }
    )
    mlflow.sklearn.log_model(
        gbm,
        name="model",
        input_example=train[FEATURES].head(3),
        serialization_format="cloudpickle",
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"],
        pyfunc_predict_fn="predict_proba",
    )
logged = MlflowClient().get_run(run.info.run_id)
print(f"run {run.info.run_id[:8]}: {logged.data.params}")
pd.Series(logged.data.metrics).round(3)

# %% [markdown]
# The package's `log_run` is the same block in one call (one request for all parameters and
# metrics, the model logged as above). The other baselines, without their models:

# %%
for name in ["majority class", "amount rule", "logistic regression"]:
    log_run(
        EXPERIMENT,
        run_name=f"baseline: {name}",
        params={"model": name, "train_rows": len(train)},
        metrics={f"test_{k.replace(' ', '_')}": v for k, v in baseline_table.loc[name].items()},
    )
list_runs(EXPERIMENT, max_results=4)[
    ["run_name", "metrics.test_average_precision", "metrics.test_accuracy"]
].round(3)

# %% [markdown]
# ### Your turn 1 · Log a run by hand
# Write a `with mlflow.start_run(run_name="my logistic regression") as my_run:` block that
# logs the parameter `model` = `"LogisticRegression"` and the metric
# `test_average_precision` of the logistic regression baseline (it is in `baseline_table`).
# The check reads your run back from the store with `MlflowClient`.

# %% tags=["solution"]
with mlflow.start_run(run_name="my logistic regression") as my_run:
    mlflow.log_param("model", "LogisticRegression")
    mlflow.log_metric(
        "test_average_precision",
        baseline_table.loc["logistic regression", "average precision"],
    )

# %% tags=["self-check"]
my_logged = MlflowClient().get_run(my_run.info.run_id)
assert my_logged.data.params.get("model") == "LogisticRegression", (
    "❌ log the parameter 'model' with mlflow.log_param"
)
assert (
    my_logged.data.metrics.get("test_average_precision")
    == baseline_table.loc["logistic regression", "average precision"]
), "❌ log the logistic regression's average precision as 'test_average_precision'"
print(f"✅ run {my_run.info.run_id[:8]} is in the store, with its parameter and metric")

# %% [markdown]
# ## 3. Cross-validation in time
#
# Hyperparameters are chosen on the training period only; the test period stays untouched
# until the end. Inside the training period, each fold must train on the past and validate
# on what follows, as the model will in production. `time_ordered_cv` cuts the rows, in
# time order, into four blocks: fold *k* validates on block *k + 1* and trains on what
# comes at least `gap_days` before it (labels of the last day are not all known yet).

# %%
folds = time_ordered_cv(train, time_col="tx_datetime", n_splits=3, gap_days=1)
when = train["tx_datetime"]
pd.DataFrame(
    [
        {
            "train from": when.iloc[fit].min(),
            "train to": when.iloc[fit].max(),
            "validate from": when.iloc[val].min(),
            "validate to": when.iloc[val].max(),
            "train frauds": int(y_train.iloc[fit].sum()),
            "validation frauds": int(y_train.iloc[val].sum()),
        }
        for fit, val in folds
    ]
).rename_axis("fold")

# %% [markdown]
# The folds are plain lists of row positions: any scikit-learn search accepts them as
# `cv=`. A shuffled `KFold` would train on the future of the rows it validates (the
# random-split leak of lab 03); `check_time_ordered_cv` refuses it and says why:

# %%
try:
    check_time_ordered_cv(KFold(n_splits=3, shuffle=True, random_state=RANDOM_STATE), train)
except ValueError as err:
    print(err)
folds = check_time_ordered_cv(folds, train)  # ours pass

# %% [markdown]
# ## 4. Searching hyperparameters
#
# The pipeline to tune: gradient boosting with 30 boosting rounds (cheap fits). Parameter
# names follow the step names: `model__learning_rate` is the `learning_rate` of the `model`
# step. Every search below scores each candidate by its mean average precision over the
# same three time-ordered folds, then refits the best one on all training rows.
#
# ### 4.1 Grid search: every combination of listed values

# %%
X_train = train[FEATURES]
pipeline = make_pipeline(
    HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=RANDOM_STATE)
)
GRID = {"model__learning_rate": [0.05, 0.2], "model__max_leaf_nodes": [7, 31]}
grid_search = GridSearchCV(pipeline, GRID, cv=folds, scoring="average_precision", n_jobs=1)
started = time.perf_counter()
grid_search.fit(X_train, y_train)
seconds = {"grid": time.perf_counter() - started}
print(f"best {grid_search.best_params_}, CV average precision {grid_search.best_score_:.3f}")
plot_search_results(grid_search)

# %% [markdown]
# Four candidates × three folds, plus the refit. The bars are the spread over the folds:
# with about 20 frauds per validation fold, average precision is noisy, and the spread is
# often as large as the differences between candidates.
#
# ### Your turn 2 · Add a hyperparameter to the grid
# A grid grows multiplicatively: adding `model__l2_regularization` with two values to `GRID`
# would double it to 8 candidates. Keep it at 4: build `my_grid_search`, a `GridSearchCV`
# (same pipeline, folds and scoring) whose grid holds the learning rate fixed at the best
# one found above (a one-value list), `model__max_leaf_nodes` as in `GRID`, and
# `model__l2_regularization` in `[0.0, 1.0]`; then fit it.

# %% tags=["solution"]
best_learning_rate = grid_search.best_params_["model__learning_rate"]
my_grid = {
    "model__learning_rate": [best_learning_rate],
    "model__max_leaf_nodes": GRID["model__max_leaf_nodes"],
    "model__l2_regularization": [0.0, 1.0],
}
my_grid_search = GridSearchCV(pipeline, my_grid, cv=folds, scoring="average_precision")
my_grid_search.fit(X_train, y_train)

# %% tags=["self-check"]
my_results = pd.DataFrame(my_grid_search.cv_results_)
assert "param_model__l2_regularization" in my_results, (
    "❌ add 'model__l2_regularization': [0.0, 1.0] to the grid"
)
assert len(my_results) == 4, f"❌ 1 × 2 × 2 = 4 candidates expected, got {len(my_results)}"
assert set(my_results["param_model__learning_rate"]) == {
    grid_search.best_params_["model__learning_rate"]
}, "❌ fix the learning rate at grid_search.best_params_['model__learning_rate']"
print(f"✅ 4 candidates, best {my_grid_search.best_params_}")

# %% [markdown]
# ### 4.2 Random search: draws from distributions
#
# A grid grows multiplicatively with each parameter. `RandomizedSearchCV` draws `n_iter`
# candidates from `scipy.stats` distributions instead: `loguniform` for rates and penalties
# (0.02 and 0.2 are as far apart as 0.2 and 2), `randint` for integers. For the price of four
# candidates it searches three parameters over ranges.

# %%
DISTRIBUTIONS = {
    "model__learning_rate": stats.loguniform(0.02, 0.3),
    "model__max_leaf_nodes": stats.randint(4, 64),
    "model__l2_regularization": stats.loguniform(1e-3, 10),
}
random_search = RandomizedSearchCV(
    pipeline,
    DISTRIBUTIONS,
    n_iter=4,
    cv=folds,
    scoring="average_precision",
    random_state=RANDOM_STATE,
)
started = time.perf_counter()
random_search.fit(X_train, y_train)
seconds["random"] = time.perf_counter() - started
pd.DataFrame(random_search.cv_results_)[
    [*(f"param_{k}" for k in DISTRIBUTIONS), "mean_test_score", "rank_test_score"]
].round(3)

# %% [markdown]
# ### 4.3 Optuna: a study that learns from its trials
#
# Optuna asks for an *objective*: a function of a `trial` that proposes parameters
# (`suggest_float`, `suggest_int`) and returns the score. Here it is the same cross-validated
# average precision on the same folds. Its TPE sampler models past trials to propose the next
# (after 10 random start-up trials: with four, it is still sampling at random).


# %%
def objective(trial):
    """Mean CV average precision of one proposed candidate."""
    params = {
        "model__learning_rate": trial.suggest_float("model__learning_rate", 0.02, 0.3, log=True),
        "model__max_leaf_nodes": trial.suggest_int("model__max_leaf_nodes", 4, 64, log=True),
    }
    candidate = clone(pipeline).set_params(**params)
    return cross_val_score(
        candidate, X_train, y_train, cv=folds, scoring="average_precision"
    ).mean()


study = optuna.create_study(
    direction="maximize", sampler=optuna.samplers.TPESampler(seed=RANDOM_STATE)
)
started = time.perf_counter()
study.optimize(objective, n_trials=4)
seconds["optuna"] = time.perf_counter() - started
print(f"best {study.best_params}, CV average precision {study.best_value:.3f}")

# %% [markdown]
# ### 4.4 Successive halving: many candidates cheaply, the best at full price
#
# `HalvingRandomSearchCV` draws candidates from the same distributions, scores them all on a
# small budget, keeps the best third (`factor=3`) and gives the survivors three times the
# budget, until a last round at full price. The budget here is the number of boosting rounds
# (`resource="model__max_iter"`): 9 candidates with 10 rounds, then the best 3 with 30. Its
# default budget, a subsample of the rows, is a poor one with 1 % fraud: a small subsample
# can leave a fold without a single fraud. The class is still *experimental* in
# scikit-learn: the import of `enable_halving_search_cv` in the first cell turns it on.

# %%
halving_search = HalvingRandomSearchCV(
    pipeline,
    DISTRIBUTIONS,
    n_candidates=9,
    resource="model__max_iter",
    min_resources=10,
    max_resources=30,
    factor=3,
    cv=folds,
    scoring="average_precision",
    random_state=RANDOM_STATE,
)
started = time.perf_counter()
halving_search.fit(X_train, y_train)
seconds["halving"] = time.perf_counter() - started
pd.DataFrame(halving_search.cv_results_).groupby("iter").agg(
    candidates=("params", "size"),
    boosting_rounds=("n_resources", "first"),
    best_cv_score=("mean_test_score", "max"),
).round(3)

# %% [markdown]
# ### 4.5 Cost against quality
#
# For each search: candidates scored, wall time, the best mean CV average precision, and
# (for information only, never to choose) the test average precision of the refitted best.

# %%
optuna_best = clone(pipeline).set_params(**study.best_params).fit(X_train, y_train)
searches = {  # name: (candidates scored, best mean CV score, the refitted best pipeline)
    "grid": (4, grid_search.best_score_, grid_search.best_estimator_),
    "random": (4, random_search.best_score_, random_search.best_estimator_),
    "optuna": (len(study.trials), study.best_value, optuna_best),
    "halving": (
        len(halving_search.cv_results_["params"]),  # 9 cheap + 3 at full price
        halving_search.best_score_,
        halving_search.best_estimator_,
    ),
}
test_scores = {
    name: average_precision_score(y_test, model.predict_proba(test[FEATURES])[:, 1])
    for name, (_, _, model) in searches.items()
}
pd.DataFrame(
    {
        name: {
            "candidates": n,
            "seconds": seconds[name],
            "best CV average precision": cv,
            "test average precision": test_scores[name],
        }
        for name, (n, cv, _) in searches.items()
    }
).T.round(3)

# %% [markdown]
# With a handful of candidates, the strategies differ by less than the fold-to-fold spread
# of one candidate: none is reliably better. *What* is searched (the right parameters, over
# ranges) matters more than *how*. Optuna pays off with tens of trials; successive halving
# with many candidates, when a cheap round ranks them about as a full one would.

# %% [markdown]
# ## 5. Logging a search: nested runs
#
# Section 2 logged one run by hand. A search has many candidates: `log_search` logs it as
# one **parent run** (the search's settings, the best parameters and score, the refitted
# best pipeline) with one **nested run per candidate** (its parameters and scores, sent in
# one `log_batch` request each, so that logging stays cheap). `compare_runs` reads them
# back, best first: the same table the MLflow UI shows.

# %%
grid_run = log_search(
    grid_search, experiment=EXPERIMENT, run_name="grid", input_example=X_train.head(3)
)
random_run = log_search(
    random_search, experiment=EXPERIMENT, run_name="random", input_example=X_train.head(3)
)
compare_runs(EXPERIMENT, "cv_average_precision", parent_run_id=grid_run)[
    ["run_name", "metrics.cv_average_precision", "metrics.cv_average_precision_std"]
    + [f"params.{k}" for k in GRID]
].round(3)

# %% [markdown]
# ## 6. The model registry: challenger, gate, champion
#
# Registry *stages* are deprecated in MLflow; the course uses **aliases**, movable names
# that point at a version. The better search's pipeline is registered as a new version with
# the alias `challenger`. It becomes `champion` only if its CV average precision beats the
# current champion's by more than a margin, here 0.005: the **gate**. Written out:

# %%
MARGIN = 0.005
METRIC = "cv_average_precision"
client = MlflowClient()
cv_score = {
    run_id: client.get_run(run_id).data.metrics[METRIC] for run_id in (grid_run, random_run)
}
weaker, better = sorted(cv_score, key=cv_score.get)
register_best_model(better, MODEL, alias="challenger")

challenger = get_model_version(MODEL, "challenger")  # a version, with the run that logged it
challenger_score = client.get_run(challenger.run_id).data.metrics[METRIC]
try:
    champion = get_model_version(MODEL, "champion")
    champion_score = client.get_run(champion.run_id).data.metrics[METRIC]
except LookupError:  # the very first run: no champion yet
    champion, champion_score = None, None
promote = champion is None or challenger_score - champion_score > MARGIN
incumbent = "none yet" if champion is None else f"v{champion} {champion_score:.4f}"
print(f"challenger v{challenger} {challenger_score:.4f}, champion {incumbent}: promote {promote}")

# %% [markdown]
# `promote_model` is that comparison, plus moving the alias when the challenger wins. It
# returns its decision with the reason:

# %%
decision = promote_model(MODEL, metric=METRIC, min_improvement=MARGIN)
assert decision.promoted == promote
pd.Series(dataclasses.asdict(decision))

# %% [markdown]
# On a first run there is no champion, so the challenger is promoted. Run the notebook
# again: the champion is then the previous run's winner, with exactly the same score (same
# data, same seeds): a gain of 0, not more than the margin, so the champion stays.
#
# ### Your turn 3 · The gate, by hand
# The weaker search's pipeline is registered next as the challenger (below). Compute
# `my_decision`, `True` if the gate should promote it: read its score (`weak_score`, given)
# and the champion's score from the store, and compare with `MARGIN`.

# %%
register_best_model(weaker, MODEL, alias="challenger")
weak_score = cv_score[weaker]
print(f"challenger v{get_model_version(MODEL, 'challenger')}: {METRIC} {weak_score:.4f}")

# %% tags=["solution"]
my_champion = get_model_version(MODEL, "champion")
my_champion_score = MlflowClient().get_run(my_champion.run_id).data.metrics[METRIC]
my_decision = weak_score - my_champion_score > MARGIN

# %% tags=["self-check"]
gate = promote_model(MODEL, metric=METRIC, min_improvement=MARGIN)
assert isinstance(my_decision, bool | np.bool_), "❌ my_decision must be True or False"
assert my_decision == gate.promoted, (
    f"❌ the gate says {gate.promoted}: {gate.reason}. Compare weak_score with the champion's "
    "score plus MARGIN"
)
print(f"✅ same decision as the gate: {gate.reason}")

# %% [markdown]
# A gate is only as good as its metric: the two CV scores are comparable because both
# searches ran on the same rows and the same folds.
#
# ### 6.1 Load by alias and score
#
# What a serving process does: load whatever `champion` points at (`models:/name@champion`)
# and score new rows, here the test period, which played no part in any choice above.

# %%
champion_model = load_model(MODEL, "champion")
champion_scores = champion_model.predict_proba(test[FEATURES])[:, 1]
final_ap = average_precision_score(y_test, champion_scores)
print(f"champion v{get_model_version(MODEL, 'champion')}: test average precision {final_ap:.3f}")
assert final_ap > baseline_table.loc["amount rule", "average precision"]

# %% [markdown]
# ## What to remember
#
# * Start with baselines (a constant, a rule, a linear model) and log them like any run.
# * On rare positives report average precision; accuracy and ROC AUC hide what matters.
# * An MLflow run is `start_run` + `log_params` + `log_metrics` + `log_model`; a search is a
#   parent run with one nested run per candidate.
# * Cross-validate in time: folds that train on the past only; a shuffled splitter leaks.
# * Grid, random and Optuna searches are a few lines each; on a small budget they differ less
#   than fold-to-fold noise.
# * Register the winner as `challenger`; a metric gate with a margin moves `champion`. Load
#   models by alias, never by version.
#
# **Next:** lab 06 explains the champion's decisions and watches its data drift.

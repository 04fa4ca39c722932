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
# # Assignment 2 · Model development
#
# You take a fraud model through its development on a **new variant** of the course data
# (400 customers, 120 terminals, 42 days, a 5-day label delay): a time-aware
# hyperparameter search written with scikit-learn, tracked in MLflow with one nested run
# per candidate, a registered champion that must beat a baseline, and a model card. You
# write the code of labs 05 and 06 yourself: about 2 hours.
#
# | Task | What you define | Points |
# |---|---|--:|
# | 1 | `search`: a fitted, time-aware search on the training rows | 2 + 2 |
# | 2 | `parent_run_id`: the search tracked in MLflow | 1 |
# | 3 | `model_version`: the registered champion, which must beat a baseline | 3 |
# | 4 | `model_card`: a short model card | 2 |
#
# **Complete** needs 9 of the 10 points (`02_model_development_rubric.md`). Replace every
# `None  # TODO`; **keep the names**, the experiment and the registered model of the setup
# cell. The grader runs the notebook from top to bottom in a fresh kernel with a fresh
# MLflow store in its folder; a cell may take at most 120 s. Before pushing:
# *Kernel → Restart & Run All*, then
# `bash scripts/grade.sh 02_activities/assignments/02_model_development_activity.ipynb`.
# Cells marked `# NBVAL_RAISES_EXCEPTION` use your answers: they fail until you fill the
# blanks above them.

# %% [markdown]
# ## 1. The data and the split
#
# The setup builds a few history features with plain pandas (the customer's amount
# against their own past average, how many transactions the customer made in the last
# day and the terminal in the last week), then the time split of lab 03: training rows
# before `CUTOFF - 5 days` whose label is known at the cutoff, test rows the 14 days after
# the cutoff. Do not change it: the grader rebuilds the same rows.

# %%
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score

from production.simulate import simulate

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
RANDOM_STATE = 2026


def recent_count(times, days):
    """Count each row's earlier rows of its group within `days` (times sorted)."""
    t = times.to_numpy()
    earlier = np.searchsorted(t, t - np.timedelta64(days, "D"))
    return pd.Series(np.arange(len(t)) - earlier, index=times.index)


tx = simulate(**DATA_PARAMS).transactions
data = tx.assign(hour=tx["tx_datetime"].dt.hour)
mean = data.groupby("customer_id")["amount"].transform(lambda s: s.shift().expanding().mean())
data["amount_ratio"] = data["amount"] / mean.fillna(data["amount"])
data["customer_tx_1d"] = data.groupby("customer_id")["tx_datetime"].transform(recent_count, days=1)
data["terminal_tx_7d"] = data.groupby("terminal_id")["tx_datetime"].transform(recent_count, days=7)
gap, end = pd.Timedelta(days=GAP_DAYS), CUTOFF + pd.Timedelta(days=TEST_DAYS)
train = data[(data["tx_datetime"] < CUTOFF - gap) & (data["label_available_at"] <= CUTOFF)]
test = data[(data["tx_datetime"] >= CUTOFF) & (data["tx_datetime"] < end)]
NUMERIC = ["amount", "hour", "amount_ratio", "customer_tx_1d", "terminal_tx_7d"]
CATEGORICAL = ["channel", "merchant_category"]
FEATURES = NUMERIC + CATEGORICAL

mlflow.set_tracking_uri("sqlite:///mlflow.db")  # a store in the notebook's folder
mlflow.set_experiment(EXPERIMENT)
print(f"train {len(train):,} rows ({train['is_fraud'].mean():.2%} fraud), test {len(test):,}")

# %% [markdown]
# ## 2. A time-aware search (task 1, 2 + 2 points)
#
# Build a `Pipeline`: a `ColumnTransformer` that encodes `CATEGORICAL` (an
# `OrdinalEncoder` with `handle_unknown="use_encoded_value", unknown_value=-1`, or a
# `OneHotEncoder`) and passes `NUMERIC` through, then a seeded
# `HistGradientBoostingClassifier(random_state=RANDOM_STATE)`. Tune it with `GridSearchCV`
# or `RandomizedSearchCV`:
#
# * on `train[FEATURES]` and `train["is_fraud"]` only (rows are in time order) — the test
#   rows are for the very end;
# * with time-ordered folds, `cv=TimeSeriesSplit(n_splits=3)` (or more);
# * on `scoring="average_precision"`, with **at least 4 candidates** (e.g. two values of
#   `model__learning_rate` times two of `model__max_leaf_nodes`).
#
# The grader cross-validates your best candidate again on the training rows: it must
# find your `best_score_`.

# %%
# YOUR CODE HERE
search = None  # TODO: a fitted GridSearchCV / RandomizedSearchCV on train[FEATURES]

# %%
# NBVAL_RAISES_EXCEPTION
results = pd.DataFrame(search.cv_results_)
results[["params", "mean_test_score", "std_test_score"]].sort_values("mean_test_score")

# %% [markdown]
# ## 3. Track the search in MLflow (task 2, 1 point)
#
# Log the search as lab 05 does: one **parent run**, and inside it one **nested run per
# candidate** (`mlflow.start_run(nested=True)`) with the candidate's parameters and its
# mean CV score as the metric `cv_average_precision`. Log the best pipeline on the parent
# run, `mlflow.sklearn.log_model(search.best_estimator_, name="model",
# serialization_format="cloudpickle", pip_requirements=["scikit-learn"])`, and keep what it
# returns (`model_info`) for task 3. `parent_run_id` is the parent's `run.info.run_id`.

# %%
# YOUR CODE HERE
parent_run_id = None  # TODO: the parent run's id, a str
model_info = None  # TODO: what mlflow.sklearn.log_model returned

# %% [markdown]
# ## 4. Register the champion (task 3, 3 points)
#
# Register the logged model under `MODEL_NAME` (`mlflow.register_model`) and point the
# alias `champion` at the new version (`MlflowClient().set_registered_model_alias`).
# `model_version` is that version. The grader loads `models:/a2-fraud-detector@champion`
# and scores the test rows: it must beat gradient boosting on `amount`, `hour`,
# `channel` and `merchant_category` alone.

# %%
# YOUR CODE HERE
model_version = None  # TODO: the registered version the alias 'champion' points at

# %% [markdown]
# The champion, loaded by its alias as a serving process would, on the test period:

# %%
# NBVAL_RAISES_EXCEPTION
champion = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@champion")
test_average_precision = average_precision_score(
    test["is_fraud"], champion.predict_proba(test[FEATURES])[:, 1]
)
print(f"{MODEL_NAME} v{model_version}: average precision {test_average_precision:.3f} on test")

# %% [markdown]
# ## 5. A model card (task 4, 2 points)
#
# A model card tells the next person what the model is for, what it was trained and
# tested on, how well it works and where it fails. Fill the dict `model_card` with:
#
# * `"model_name"`, `"version"`: `MODEL_NAME` and the champion's version;
# * `"intended_use"`: who uses the score, for what decision, and what it is not for;
# * `"training_data"`: which rows (period, labels known at the cutoff, the gap);
# * `"metrics"`: a dict with `"cv_average_precision"` (the search's best) and
#   `"test_average_precision"` (as measured above);
# * `"top_features"`: at least 3 features the champion relies on most (permutation
#   importance of lab 06 on a few hundred test rows, for instance);
# * `"limitations"`, `"monitoring"`: where it is weak; what to watch, and when to retrain.
#
# Text fields: a sentence each (40 characters or more).

# %%
# YOUR CODE HERE
model_card = None  # TODO: a dict with the fields above

# %%
# NBVAL_RAISES_EXCEPTION
pd.Series(model_card, dtype=object)

# %% [markdown]
# ## 6. Going further (not graded)
#
# * Replace the grid by `RandomizedSearchCV` with `scipy.stats` distributions: how many
#   candidates does it take to match the grid?
# * Compare the champion's recall at 80 % precision with the baseline's.

# %%
print(f"MlflowClient ready: {MlflowClient().tracking_uri}")

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
# # Lab 08 · Testing and CI/CD
#
# A fraud model can fail without a single exception: a feature that peeks at tomorrow's
# chargebacks, an upstream change that renames a payment channel, a retrained model that
# suddenly finds large payments safe. Tests for ML systems therefore cover the **data**, the
# **features** and the **model's behaviour**, on top of ordinary code tests, and CI runs them on
# every change.
#
# **You will:** write data tests (a schema of expectations), a point-in-time test by hand and
# with `check_point_in_time`, invariance and directional model tests; see the same tests in
# `tests/` and in this repository's CI; and turn a drift report into a retraining decision.
# Three "Your turn" exercises. About 50 minutes.

# %% [markdown]
# ## 1. Data tests: a schema of expectations
#
# **Expectations** are assertions about a table that hold whatever the model: keys are unique,
# amounts positive, categories known, a label arrives after its transaction, the fraud rate
# stays in a plausible band. Each check counts the rows that break it, so a failure says *where*
# to look. Nine weeks of simulated transactions, with drift in the last week (from 26 February):

# %%
import numpy as np
import pandas as pd
import yaml
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE, repo_root
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    as_known_at,
    build_pipeline,
    build_preprocessor,
    check_point_in_time,
    compute_model_features,
    compute_windowed_features,
)
from production.monitoring import drift_report
from production.simulate import CHANNELS, MERCHANT_CATEGORIES, simulate

threadpool_limits(limits=1, user_api="openmp")  # one thread per model on a small machine
ROOT = repo_root()
print(f"random_state={RANDOM_STATE}; repository {ROOT.name}")

# %%
transactions = simulate(
    n_customers=250, n_terminals=80, n_days=63, drift_start="2026-02-26", random_state=RANDOM_STATE
).transactions
print(f"{len(transactions):,} transactions from {transactions['tx_datetime'].min():%Y-%m-%d}")


# %%
def check_expectations(frame: pd.DataFrame) -> pd.DataFrame:
    """Count the rows breaking each expectation of the transactions table."""
    checks = {
        "transaction_id is unique": frame["transaction_id"].duplicated().sum(),
        "amount > 0": (~(frame["amount"] > 0)).sum(),
        "channel is known": (~frame["channel"].isin(CHANNELS)).sum(),
        "merchant_category is known": (~frame["merchant_category"].isin(MERCHANT_CATEGORIES)).sum(),
        "label arrives after the transaction": (
            frame["label_available_at"] <= frame["tx_datetime"]
        ).sum(),
        "fraud rate in [0.1 %, 5 %]": int(not 0.001 <= frame["is_fraud"].mean() <= 0.05),
    }
    report = pd.DataFrame({"failing rows": pd.Series(checks, dtype="int64")})
    return report.assign(passed=report["failing rows"] == 0)


assert check_expectations(transactions)["passed"].all()
check_expectations(transactions)

# %% [markdown]
# The same checks on a corrupted copy, what an upstream bug or a schema change looks like:

# %%
broken = transactions.head(500).copy()
broken.loc[:9, "amount"] = -broken.loc[:9, "amount"]
broken.loc[10:14, "channel"] = "Online"  # a capitalisation change upstream
broken = pd.concat([broken, broken.head(3)])
check_expectations(broken)

# %% [markdown]
# ## 2. A point-in-time test
#
# **Leakage** is the data bug that inflates offline metrics and collapses in production. A
# feature is *point-in-time correct* when its value for a transaction uses only what was known
# at that moment. The test: recompute the features on the data **as it was known** at a past
# cutoff (later rows removed, labels not yet arrived blanked out, `as_known_at`) and compare
# with the values computed on all the data. A correct feature gives every row the same value.
# By hand, for one cutoff:

# %%
cutoff = pd.Timestamp("2026-02-09 12:00")
full = compute_windowed_features(transactions)
then = compute_windowed_features(as_known_at(transactions, cutoff))
now = full.loc[then.index]
changed = ~np.isclose(then, now, equal_nan=True)
print(f"{len(then):,} rows known at {cutoff}; values changed per feature:")
pd.Series(changed.sum(axis=0), index=full.columns)

# %% [markdown]
# `check_point_in_time` runs the same comparison at several cutoffs, for any feature function.
# A tempting feature, the terminal's fraud rate over the *whole* history, labels included,
# leaks the future, and the check says so:


# %%
def leaky_terminal_rate(frame):
    """The terminal's fraud rate over all its rows: uses labels that arrive later."""
    rate = frame.groupby("terminal_id")["is_fraud"].transform("mean")
    return pd.DataFrame({"terminal_fraud_rate_all": rate}, index=frame.index)


cutoffs = pd.date_range("2026-01-20", periods=3, freq="10D")
assert check_point_in_time(compute_windowed_features, transactions, cutoffs)["passed"].all()
check_point_in_time(leaky_terminal_rate, transactions, cutoffs, on_leak="ignore")

# %% [markdown]
# ## 3. Model behaviour tests
#
# Accuracy on a test set does not say *how* a model behaves. Behavioural tests (after Ribeiro
# et al.'s CheckList) state what must hold for any good fraud model:
#
# * **invariance**: a change that should not matter does not move the score;
# * **directional expectation**: a change that should raise the risk does not lower it;
# * **minimum functionality**: the obvious cases are caught.
#
# A small model, trained on 1–18 February (once the 30-day windows have filled), tested on
# 500 transactions of the following week, before the drift:

# %%
X = compute_model_features(transactions)
when = transactions["tx_datetime"]
train = ((when >= "2026-02-01") & (when < "2026-02-19")).to_numpy()
pipeline = build_pipeline(
    build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
    HistGradientBoostingClassifier(random_state=RANDOM_STATE),
).fit(X[train], transactions.loc[train, "is_fraud"])
held_out = ((when >= "2026-02-19") & (when < "2026-02-26")).to_numpy()
sample = X[held_out].sample(500, random_state=RANDOM_STATE)
scores = pipeline.predict_proba(sample)[:, 1]
print(
    f"trained on {train.sum():,} rows; {len(sample)} held-out rows, mean score {scores.mean():.4f}"
)

# %% [markdown]
# **Invariance**: a one-cent change in the amount should not matter.

# %%
moved = pipeline.predict_proba(sample.assign(amount=sample["amount"] + 0.01))[:, 1]
change = np.abs(moved - scores)
print(f"max change {change.max():.4f}; rows moving more than 0.02: {(change > 0.02).mean():.1%}")
assert (change > 0.02).mean() < 0.02

# %% [markdown]
# **Directional expectation**: the same payments at five times the amount, the pattern of a
# compromised card (the simulator's third scenario), should not look safer.

# %%
delta = pipeline.predict_proba(sample.assign(amount=sample["amount"] * 5))[:, 1] - scores
higher, lower = (delta > 1e-3).mean(), (delta < -1e-3).mean()
print(f"mean change {delta.mean():+.3f}; scored higher: {higher:.1%}, lower: {lower:.1%}")
assert delta.mean() > 0 and (delta < -1e-3).mean() < 0.05

# %% [markdown]
# **Minimum functionality**: in this data every amount above 450 is fraud (the first scenario),
# yet the held-out week holds almost none. CheckList's answer: build the test cases. The same
# payments again, each at 600, must all look riskier than 95 % of ordinary payments:

# %%
top_5_percent = np.quantile(scores, 0.95)
caught = (pipeline.predict_proba(sample.assign(amount=600.0))[:, 1] >= top_5_percent).mean()
print(f"payments of 600 in the top 5 % of scores: {caught:.1%}")
assert caught >= 0.95

# %% [markdown]
# ### Your turn 1 · A directional test of your own
#
# A payment at a terminal where half of the recently labelled transactions were fraud should
# not look safer. Set `terminal_fraud_rate_28d` to 0.5 and `terminal_fraud_count_28d` to half of
# `terminal_tx_count_28d` (rounded) for every row of `sample`, score the result, and store the
# score changes (new minus old, one per row) in `my_delta`. Is the expectation met?

# %% tags=["solution"]
risky = sample.assign(
    terminal_fraud_rate_28d=0.5,
    terminal_fraud_count_28d=(sample["terminal_tx_count_28d"] * 0.5).round(),
)
my_delta = pipeline.predict_proba(risky)[:, 1] - scores
print(f"mean change {my_delta.mean():+.3f}; scored lower: {(my_delta < -1e-3).mean():.1%}")

# %% tags=["self-check"]
_risky = sample.assign(
    terminal_fraud_rate_28d=0.5,
    terminal_fraud_count_28d=(sample["terminal_tx_count_28d"] * 0.5).round(),
)
_expected = pipeline.predict_proba(_risky)[:, 1] - scores
assert np.shape(my_delta) == (len(sample),), "❌ one change per row of sample, please"
assert np.allclose(my_delta, _expected), (
    "❌ not the expected changes: set both terminal columns, then subtract `scores`"
)
assert my_delta.mean() > 0 and (my_delta < -1e-3).mean() < 0.05
print(f"✅ A known-fraud terminal raises the score by {my_delta.mean():+.3f} on average.")

# %% [markdown]
# ## 4. The same tests in `tests/`, run by CI
#
# A notebook shows a test once; CI runs it on every change. `tests/test_model_behaviour.py`
# holds these behavioural tests as pytest functions, with a fixed `random_state`, so a retrained
# model or a feature change that breaks a behaviour fails the build like any other regression:

# %%
behaviour_tests = (ROOT / "tests" / "test_model_behaviour.py").read_text()
print("\n".join(line for line in behaviour_tests.splitlines() if line.startswith("def test_")))

# %% [markdown]
# Infrastructure has its tests too: `tests/test_api.py` checks the scoring service's contract
# (a negative amount is a 422, a new channel is still scored), `tests/test_tracking.py` that a
# model comes back from the registry scoring exactly as it went in, `tests/test_serving.py`
# that the batch job is idempotent. One command runs everything, the README's
# `bash scripts/test.sh`: ruff, every unit and integration test, then every notebook under
# `nbval` (notebooks are tested like code). The GitHub workflow calls that same command:

# %%
workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
print("triggers:", list(triggers))
pd.DataFrame(
    [
        {
            "step": step.get("name", step.get("uses", "").split("@")[0]),
            "kind": "action, pinned to a commit" if "uses" in step else "shell",
        }
        for job in workflow["jobs"].values()
        for step in job["steps"]
    ]
)

# %% [markdown]
# Actions are pinned to a commit SHA (not a movable tag, a supply-chain defence); PostgreSQL and
# the MLflow server start with `docker compose up --wait` for the integration tests. That is
# **CI**. **CD** for a model adds: build the API image (`deploy/Dockerfile`), deploy it, and
# release models by moving a registry alias, a release that needs no new image and whose
# rollback is one call. How far this repository gets on Google's *ML Test Score* rubric, test by
# test, is scored in `01_materials/ml_test_score.md` (lab 01).
#
# ## 5. Continuous training: when to retrain
#
# Retraining on a schedule is simple and wasteful; retraining on a **trigger** reacts to what
# happened. Monitoring gives one trigger: drift of the scored data against the training
# reference (lab 06). The last week, from 26 February, is drifted:

# %%
reference = X[train].assign(score=pipeline.predict_proba(X[train])[:, 1])
last_week = (when >= "2026-02-26").to_numpy()
current = X[last_week].assign(score=pipeline.predict_proba(X[last_week])[:, 1])
report = drift_report(reference, current, psi_threshold=0.1, p_value_threshold=0)
report.sort_values("psi", ascending=False).head(6)

# %% [markdown]
# A trigger policy turns the report into a decision. Drift alone is not an emergency (features
# also move with the seasons); a drifting **score**, several drifted features, or an old model
# are worth a retraining run, which then has to beat the champion before it is promoted
# (lab 05's gate).


# %%
def retraining_decision(report, *, max_drifted=2, score_psi=0.2, age_days=0, max_age_days=30):
    """Whether to retrain, and why, from a drift report and the model's age."""
    drift = report.set_index("feature")
    reasons = []
    if "score" in drift.index and drift.loc["score", "psi"] >= score_psi:
        reasons.append(f"score PSI {drift.loc['score', 'psi']:.2f} >= {score_psi}")
    if drift["drifted"].sum() > max_drifted:
        reasons.append(f"{drift['drifted'].sum()} drifted features > {max_drifted}")
    if age_days > max_age_days:
        reasons.append(f"model is {age_days} days old > {max_age_days}")
    return {"retrain": bool(reasons), "reasons": reasons}


retraining_decision(report, age_days=2)

# %% [markdown]
# ### Your turn 2 · Retrain on performance, too
#
# Drift is a proxy; the damage is a drop in performance, once labels arrive. Write
# `my_decision(report, ap_now, ap_at_training, max_drop=0.1)` that returns the same dictionary as
# `retraining_decision(report)` (default thresholds), plus a reason, and `"retrain": True`, when
# average precision fell by more than `max_drop` (absolute) from training.


# %% tags=["solution"]
def my_decision(report, ap_now, ap_at_training, max_drop=0.1):
    """Retrain on drift (retraining_decision) or on a drop of average precision."""
    decision = retraining_decision(report)
    if ap_at_training - ap_now > max_drop:
        drop = f"average precision fell from {ap_at_training:.2f} to {ap_now:.2f}"
        decision["reasons"].append(drop)
        decision["retrain"] = True
    return decision


my_example = my_decision(report, ap_now=0.4, ap_at_training=0.7)
print(my_example)

# %% tags=["self-check"]
_quiet = drift_report(reference, reference)  # no drift at all
assert my_decision(_quiet, 0.70, 0.72)["retrain"] is False, "❌ a drop of 0.02 is not a reason"
assert my_decision(_quiet, 0.50, 0.72)["retrain"] is True, "❌ a drop of 0.22 > 0.1 should retrain"
assert len(my_decision(_quiet, 0.50, 0.72)["reasons"]) == 1, "❌ give one reason per trigger"
assert my_decision(_quiet, 0.65, 0.72, max_drop=0.05)["retrain"] is True, "❌ use max_drop"
assert my_decision(report, 0.7, 0.7) == retraining_decision(report), "❌ keep the drift triggers"
assert my_example["retrain"] is True, "❌ my_example: a drop from 0.7 to 0.4 should retrain"
print("✅ Your policy retrains on drift and on a measured drop in performance.")

# %% [markdown]
# ### Your turn 3 · A slice test
#
# An average can hide a fraud pattern the model never catches (lab 06). With the model above,
# compute the **share of frauds caught** (score >= `top_5_percent`) in the last, drifted week,
# per `fraud_scenario`, as a Series indexed by scenario, in `my_caught`. Which scenario is
# missed? That is the slice a CI test would pin.

# %% tags=["solution"]
last = transactions[last_week].assign(score=pipeline.predict_proba(X[last_week])[:, 1])
frauds = last[last["is_fraud"] == 1]
my_caught = (frauds["score"] >= top_5_percent).groupby(frauds["fraud_scenario"]).mean()
print(my_caught.round(2))

# %% tags=["self-check"]
_last = transactions[last_week].assign(score=pipeline.predict_proba(X[last_week])[:, 1])
_frauds = _last[_last["is_fraud"] == 1]
_expected = (_frauds["score"] >= top_5_percent).groupby(_frauds["fraud_scenario"]).mean()
assert isinstance(my_caught, pd.Series), "❌ a Series indexed by fraud_scenario, please"
pd.testing.assert_series_equal(my_caught.sort_index(), _expected.sort_index(), check_names=False)
print(f"✅ Caught per scenario: {my_caught.round(2).to_dict()}; weakest: {my_caught.idxmin()}.")

# %% [markdown]
# ## What to remember
#
# * Test the data (expectations, point-in-time correctness), the model's behaviour
#   (invariance, directional expectations, minimum functionality, slices) and the code around
#   it; write each test once by hand, then keep it in `tests/` where CI runs it.
# * One command is the contract between a developer's laptop and CI.
# * Retrain on triggers (drift of the score or of several features, a measured drop in
#   performance, age), and promote only through the gate.

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
# # Lab 01 · Machine learning system design
#
# A model is a small part of a machine learning *system*. This course builds one system end to
# end: **card-transaction fraud detection** for a card issuer. Before any model, a designer
# frames the problem, sets objectives, prices the errors and fixes the budgets the system must
# meet (Huyen, *Designing Machine Learning Systems*, chapters 1–2).
#
# **You will:** frame fraud detection as an ML task, compute the business cost of false
# positives and false negatives from the simulator's data, choose a decision rule by cost rather
# than accuracy, size the latency and throughput budgets, and follow the data flow of the whole
# course. Three "Your turn" exercises check your work. About 45 minutes.
#
# The worked design document of this system is `01_materials/design_doc.md`; its readiness,
# scored with the ML Test Score, is `01_materials/ml_test_score.md`.

# %% [markdown]
# ## 1. Framing: from a business goal to an ML task
#
# | question | answer for our issuer |
# | --- | --- |
# | business goal | lose less money to fraud without annoying honest customers |
# | who acts on a prediction | the authorization system (block or let through) and fraud analysts (review) |
# | ML task | binary classification: P(fraud \| transaction, history) for each card payment |
# | when is a prediction needed | online, while the card payment waits (a budget of tens of milliseconds) |
# | when do we learn the truth | days later: chargebacks arrive with a **label delay** |
# | what "good" means | the money lost to missed fraud plus the cost of false alarms, not accuracy |
#
# The first code cell imports the installed course package. If it fails, run
# `bash scripts/setup.sh` from the repository root and pick the `.venv` kernel.

# %%
import time

import numpy as np
import pandas as pd

from production.config import RANDOM_STATE
from production.simulate import FRAUD_SCENARIOS, simulate

print(f"random_state={RANDOM_STATE}; fraud scenarios: {FRAUD_SCENARIOS}")

# %% [markdown]
# ## 2. The data the system sees
#
# The course data come from a deterministic simulator: the same `random_state` always gives the
# same transactions, offline, at any size. A month for 500 customers is enough to reason about
# the design.

# %%
data = simulate(n_customers=500, n_terminals=150, n_days=30, random_state=RANDOM_STATE)
tx = data.transactions
print(f"{len(tx):,} transactions, {tx['is_fraud'].sum()} frauds ({tx['is_fraud'].mean():.2%})")
tx.head()

# %% [markdown]
# Fraud is rare (about 1 %) and comes in kinds (scenarios) with very different amounts. The
# amount at stake, not the number of frauds, is what the issuer loses:

# %%
by_scenario = tx.groupby("fraud_scenario")["amount"].agg(["count", "mean", "sum"])
by_scenario.index = by_scenario.index.map(FRAUD_SCENARIOS)
by_scenario.round(1)

# %% [markdown]
# Labels are not known at prediction time. A fraud is confirmed when the customer disputes it
# (a chargeback); a legitimate payment is considered final after a fixed delay. This delay
# limits how fast the system can learn from its mistakes (session 3):

# %%
delay_days = (tx["label_available_at"] - tx["tx_datetime"]).dt.total_seconds() / 86_400
delay_days.groupby(tx["is_fraud"]).describe()[["mean", "min", "max"]].round(1)

# %% [markdown]
# ## 3. The business cost of errors
#
# A detector makes two kinds of errors, with very different prices:
#
# - a **false negative** (a missed fraud) costs the issuer the transaction's amount: it refunds
#   the customer;
# - a **false positive** (an honest payment flagged) costs an analyst's review and an annoyed
#   customer. We price it at a flat `FP_COST` = 5 per false alarm, an assumption a real design
#   doc would take from the business.
#
# Accuracy counts both errors as equal and ignores the amounts. Here is the cost of a rule
# that flags every payment above a threshold, computed by hand:

# %%
FP_COST = 5.0


def business_cost(flagged, transactions=tx, fp_cost=FP_COST):
    """Money lost to missed fraud plus fp_cost per false alarm, for boolean flags."""
    fraud = transactions["is_fraud"].to_numpy() == 1
    flagged = np.asarray(flagged, dtype=bool)
    missed_amount = transactions["amount"].to_numpy()[fraud & ~flagged].sum()
    false_alarms = int((flagged & ~fraud).sum())
    return missed_amount + fp_cost * false_alarms


rule_450 = tx["amount"] > 450
accuracy_450 = (rule_450 == (tx["is_fraud"] == 1)).mean()
print(f"amount > 450: accuracy {accuracy_450:.2%}, cost {business_cost(rule_450):,.0f}")
assert 25_000 < business_cost(rule_450) < 30_000  # quoted in slides 01 and the design doc

# %% [markdown]
# ### Your turn 1 · The cost of the two trivial systems
#
# Compute the business cost of a system that flags **no** payment (`cost_nothing`) and of one
# that flags **every** payment (`cost_everything`), with `business_cost`. Also compute the
# accuracy of flagging nothing (`accuracy_nothing`, a fraction between 0 and 1). Which number
# would mislead a manager?

# %% tags=["solution"]
nothing = np.zeros(len(tx), dtype=bool)
cost_nothing = business_cost(nothing)
cost_everything = business_cost(~nothing)
accuracy_nothing = (tx["is_fraud"] == 0).mean()
print(f"flag nothing: accuracy {accuracy_nothing:.2%}, cost {cost_nothing:,.0f}")
print(f"flag everything: cost {cost_everything:,.0f}")

# %% tags=["self-check"]
fraud_amount = tx.loc[tx["is_fraud"] == 1, "amount"].sum()
assert np.isclose(cost_nothing, fraud_amount), (
    "❌ flagging nothing misses every fraud: its cost is the total fraud amount"
)
assert np.isclose(cost_everything, FP_COST * (tx["is_fraud"] == 0).sum()), (
    "❌ flagging everything catches every fraud but raises a false alarm on each honest payment"
)
assert 0.98 < accuracy_nothing < 1, "❌ accuracy is a fraction: correct predictions / all"
print("✅ Right: doing nothing is about 99 % accurate and still pays for every fraud.")

# %% [markdown]
# ### Your turn 2 · Choose the threshold by cost
#
# For every threshold in `thresholds` below, compute the cost of the rule `amount > threshold`.
# Store the cheapest threshold in `best_threshold` and its cost in `best_cost`. Is it the
# 450 of the "high amount" fraud scenario?

# %%
thresholds = list(range(25, 801, 25))

# %% tags=["solution"]
costs = pd.Series({t: business_cost(tx["amount"] > t) for t in thresholds})
best_threshold = int(costs.idxmin())
best_cost = costs.min()
print(f"best threshold {best_threshold}: cost {best_cost:,.0f}")
costs.plot(xlabel="threshold", ylabel="business cost", title="amount > threshold")
# %% tags=["self-check"]
assert best_threshold in thresholds, "❌ best_threshold must be one of `thresholds`"
reference = min(business_cost(tx["amount"] > t) for t in thresholds)
assert np.isclose(best_cost, reference), f"❌ the cheapest rule costs {reference:,.0f}"
assert np.isclose(business_cost(tx["amount"] > best_threshold), reference), (
    "❌ best_threshold is not the threshold of the cheapest rule"
)
assert best_threshold < 450
print(f"✅ Right: flagging above {best_threshold} beats the obvious 450 rule.")

# %% [markdown]
# The lesson for the design: the objective is a **cost**, so the model's output is a score and
# the decision threshold is chosen on business cost, and re-chosen when the costs change. The
# models of sessions 5–6 rank transactions far better than the amount alone.

# %% [markdown]
# ## 4. Latency and throughput budgets
#
# A card payment waits for the issuer's answer. Payment networks give the issuer a few hundred
# milliseconds in total; the fraud check gets a slice of it. A plausible budget:
#
# | step | budget (ms) |
# | --- | --- |
# | read the card's recent history (online features) | 20 |
# | compute features and score the model | 10 |
# | network, logging, margin | 20 |
# | **total for the fraud check** | **50** |
#
# How long does scoring one row take with a small scikit-learn model? (Your machine's figure
# will differ; the point is the order of magnitude.)

# %%
from sklearn.linear_model import LogisticRegression

X = tx[["amount"]]
model = LogisticRegression(random_state=RANDOM_STATE).fit(X, tx["is_fraud"])
one_row = X.iloc[[0]]
timings = []
for _ in range(200):
    started = time.perf_counter()
    model.predict_proba(one_row)
    timings.append(time.perf_counter() - started)
print(f"one-row predict_proba: median {1000 * np.median(timings):.2f} ms")

# %% [markdown]
# Throughput is the other budget: how many payments per second must the system absorb at the
# busiest moment? The simulator reproduces daily rhythms (quiet nights, busy lunch and evening):

# %%
per_hour = tx.set_index("tx_datetime").resample("h").size()
print(f"per hour for 500 customers: mean {per_hour.mean():.0f}, peak {per_hour.max()}")
assert 100 <= per_hour.max() <= 115  # slides 01 and the design doc quote 107
per_hour.groupby(per_hour.index.hour).mean().plot.bar(xlabel="hour", ylabel="payments")
# %% [markdown]
# ### Your turn 3 · The throughput budget of a real issuer
#
# Our simulated issuer has 500 customers. A real one has 1,000,000 with the same habits. From
# `per_hour`, compute `peak_per_second`: the payments per second the system must absorb in the
# busiest hour of the month, for 1,000,000 customers.

# %% tags=["solution"]
peak_per_second = per_hour.max() / 500 * 1_000_000 / 3600
print(f"peak: about {peak_per_second:.0f} payments per second")

# %% tags=["self-check"]
expected = per_hour.max() * 2000 / 3600
assert np.isclose(peak_per_second, expected, rtol=0.01), (
    "❌ scale the busiest hour by 1,000,000 / 500 customers, then divide by 3600 seconds"
)
print(f"✅ Right: about {expected:.0f} payments per second at peak, a few times the average.")

# %% [markdown]
# At this rate a 10 ms scoring step keeps one core busy more than half the time at peak: the online
# path must stay lean (lab 07 serves the model through ONNX Runtime and caches features), while
# heavier work (training, drift reports) runs in batch, off the payment path.

# %% [markdown]
# ## 5. The data flow of the whole course
#
# ```
#  sources ──► ingestion ──► storage ──► features ──► training ──► registry ──► serving
#  (simulator)  (bronze→silver  (parquet,    (windowed,    (tuning,     (MLflow      (batch,
#                 →gold)          database)    point-in-time) tracking)    aliases)     online API)
#                                                                              │
#  feedback (delayed labels) ◄──────────── monitoring (drift, performance) ◄───┘
# ```
#
# | stage | session | lab |
# | --- | --- | --- |
# | framing, objectives, budgets | 1 · ML system design | 01 (this lab) |
# | sources, ingestion, storage | 2 · Data engineering | 02 |
# | sampling, labels, time splits | 3 · Training data | 03 |
# | point-in-time features, preprocessing | 4 · Feature engineering | 04 |
# | tuning, tracking, registry | 5 · Model development | 05 |
# | explanations, drift, performance | 6 · Explanations and monitoring | 06 |
# | serving, testing, CI/CD | work periods after session 6 | 07, 08 |
#
# Each stage is a module of the course package `production`, installed in your environment:

# %%
import pkgutil

import production

print(sorted(m.name for m in pkgutil.iter_modules(production.__path__) if m.name[0] != "_"))

# %% [markdown]
# ## 6. The design document and the ML Test Score
#
# A design doc records these decisions so that others can challenge them before code is
# written. Read `01_materials/design_doc.md`: models in production, pros and cons,
# scalability, usability, costs, evolution, next steps, business metrics.
#
# Breck et al.'s *ML Test Score* (2017) asks 28 questions about tests and monitoring, 7 in each
# of four sections: data, model, ML infrastructure, monitoring. Each test scores 0 (not done),
# 0.5 (done by hand) or 1 (automated); the final score is the **minimum** of the four section
# totals, because a system is only as ready as its weakest part. This repository's
# self-assessment is in `01_materials/ml_test_score.md`; its table, read back:

# %%
from pathlib import Path

lines = Path("../ml_test_score.md").read_text(encoding="utf-8").splitlines()
rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line[:2] == "| "]
table = pd.DataFrame(rows[1:], columns=rows[0])
table = table[table["section"].isin(["data", "model", "infrastructure", "monitoring"])]
sections = table["score"].astype(float).groupby(table["section"]).sum()
print(sections.to_string(), f"\nML Test Score = min of the sections = {sections.min()}")
assert len(table) == 28

# %% [markdown]
# ## What's next
#
# Session 2 (lab 02) generates the course data at scale and builds the bronze → silver → gold
# pipeline that feeds everything else. Slides: `01_materials/slides/01_ml_system_design.md` and
# `02_data_engineering.md`.

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
# # Lab 03 · Training data
#
# A model is only as good as the rows it learns from. This lab builds the training data of the
# course's fraud detector and measures, on simulated card transactions, what goes wrong when
# sampling, splitting or labelling ignores how the data came to be.
#
# **You will:** draw simple, stratified and reservoir samples by hand, then with
# `production.sampling`; split on time with a gap for the label delay, by hand and with
# `time_split`; detect leakage between splits; pick metrics and resampling that survive a 1 %
# positive class; and compare ways of labelling data whose labels arrive days late. Three
# "Your turn" exercises. About 60 minutes.

# %% [markdown]
# ## 1. Setup
#
# Sixty simulated days for 1,000 customers (about 120,000 transactions, about 0.9 % fraud). The
# hour of the day and an online flag serve as raw features. "Today", when we train, is
# **12 February** (day 42).

# %%
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.model_selection import TimeSeriesSplit, cross_validate, train_test_split
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.features import compute_windowed_features
from production.sampling import (
    ResampledClassifier,
    check_leakage,
    recall_at_precision,
    reservoir_sample,
    simple_random_sample,
    stratified_sample,
    summarize_label_availability,
    time_split,
)
from production.simulate import iter_days, simulate

# one OpenMP thread per model fit: on a small busy machine more threads wait on each other
threadpool_limits(limits=1, user_api="openmp")

# %%
SIMULATION = {"n_customers": 1_000, "random_state": RANDOM_STATE}
transactions = simulate(**SIMULATION).transactions
data = transactions.assign(
    hour=transactions["tx_datetime"].dt.hour,
    online=transactions["channel"].eq("online").astype(int),
)
CUTOFF = pd.Timestamp("2026-02-12")
fraud_rate = data["is_fraud"].mean()
print(f"{len(data):,} transactions, fraud rate {fraud_rate:.2%}")
assert 100_000 < len(data) < 140_000 and 0.006 < fraud_rate < 0.012

# %% [markdown]
# ## 2. Sampling and its biases
#
# ### 2.1 A simple random sample, by hand
#
# Every row has the same chance: draw row positions without replacement, keep the rows in their
# order. `simple_random_sample` is exactly this, seeded by `random_state`.

# %%
rng = np.random.default_rng(RANDOM_STATE)
positions = np.sort(rng.choice(len(data), size=1_200, replace=False))
by_hand = data.iloc[positions]
assert by_hand.equals(simple_random_sample(data, 1_200, random_state=RANDOM_STATE))
print(
    f"1,200 random rows: {by_hand['is_fraud'].sum()} frauds, rate {by_hand['is_fraud'].mean():.2%}"
)

# %% [markdown]
# ### 2.2 Stratified samples of a rare class
#
# A 1 % sample holds about 11 frauds, give or take 3: its fraud rate is noisy. A *stratified*
# sample draws 1 % of each class separately. By hand, with pandas:

# %%
stratified_by_hand = data.groupby("is_fraud").sample(frac=0.01, random_state=RANDOM_STATE)
stratified_by_hand["is_fraud"].value_counts()

# %% [markdown]
# Draw each kind 50 times with different seeds (the package's `stratified_sample` also makes the
# total exact, rounding each class's share by largest remainder):

# %%
draws = pd.DataFrame(
    {
        "simple random": [
            simple_random_sample(data, frac=0.01, random_state=seed)["is_fraud"].mean()
            for seed in range(50)
        ],
        "stratified": [
            stratified_sample(data, "is_fraud", frac=0.01, random_state=seed)["is_fraud"].mean()
            for seed in range(50)
        ],
    }
)
spread = draws.describe().loc[["mean", "std", "min", "max"]]
assert spread.loc["std", "stratified"] < spread.loc["std", "simple random"] / 5
assert (
    spread.loc["min", "simple random"]
    < 0.6 * fraud_rate
    < 1.4 * fraud_rate
    < spread.loc["max", "simple random"]
)
spread.round(4)

# %% [markdown]
# Both are unbiased *on average*, but one simple random sample can report a fraud rate from
# about half to about one and a half times the truth; the stratified one reports it to the row,
# every time.
# Stratify on anything rare you will evaluate on.
#
# ### 2.3 Convenience samples
#
# Samples taken "because that is the data we have" are biased in ways no sample size fixes.

# %%
samples = {
    "population": data,
    "stratified 5%": stratified_sample(data, "is_fraud", frac=0.05, random_state=RANDOM_STATE),
    "first week only": data[data["tx_datetime"] < "2026-01-08"],
    "contactless only": data[data["channel"] == "contactless"],
    "amount above 100": data[data["amount"] > 100],
}
convenience = pd.DataFrame(
    {
        name: {"rows": len(rows), "fraud rate %": 100 * rows["is_fraud"].mean()}
        for name, rows in samples.items()
    }
).T
assert (
    convenience.loc["amount above 100", "fraud rate %"]
    > 2 * convenience.loc["population", "fraud rate %"]
)
convenience.round(2)

# %% [markdown]
# "First week only" looks representative today, but it will not see drift or new fraud
# patterns. "Contactless only" (capped at 100 by the card schemes) lowers the fraud rate, and
# "amount above 100" (what a review team looks at) multiplies it: **selecting rows on a variable
# related to the label biases everything learnt from them.**
#
# ### 2.4 Reservoir sampling: a uniform sample of a stream
#
# Transactions arrive day by day and we may not keep them all. *Algorithm R* keeps `k` slots:
# row `i` of the stream (counting from 0) draws a slot `j` uniformly in `0..i` and replaces the
# row in slot `j` if `j < k`. After `n` rows, each row seen is in the reservoir with probability
# `k / n`. Here it is by hand, row by row, on the first two days:


# %%
def reservoir_by_hand(rows, k, random_state):
    """Algorithm R, one row at a time."""
    rng = np.random.default_rng(random_state)
    slots, arrival = [None] * k, [None] * k
    for i, (label, _) in enumerate(rows.iterrows()):
        u = rng.random()  # one draw per row, as the package does
        j = i if i < k else int(u * (i + 1))
        if j < k:
            slots[j], arrival[j] = label, i
    kept = [label for _, label in sorted(zip(arrival[: i + 1], slots[: i + 1], strict=True))]
    return rows.loc[kept]


two_days = data[data["tx_datetime"] < "2026-01-03"]
small = reservoir_by_hand(two_days, k=5, random_state=RANDOM_STATE)
assert small.equals(reservoir_sample([two_days], 5, random_state=RANDOM_STATE))
small[["tx_datetime", "customer_id", "amount"]]

# %% [markdown]
# `reservoir_sample` does the same, vectorised batch by batch, and gives the same sample however
# the stream is cut into batches. On the whole stream, one day at a time (`iter_days`), each
# week's share of the reservoir matches its share of the stream:

# %%
reservoir = reservoir_sample(iter_days(**SIMULATION), k=2_000, random_state=RANDOM_STATE)
week = data["tx_datetime"].dt.to_period("W")
shares = pd.DataFrame(
    {
        "stream": week.value_counts(normalize=True),
        "reservoir": reservoir["tx_datetime"].dt.to_period("W").value_counts(normalize=True),
    }
).sort_index()
assert (shares["stream"] - shares["reservoir"]).abs().max() < 0.03
shares.round(3).T

# %% [markdown]
# ## 3. Splits on time, with a gap for the label delay
#
# ### 3.1 The split by hand
#
# At the cutoff we can only train on **labels known at the cutoff**. A legitimate transaction is
# confirmed after 7 days; a fraud is reported after 1 to 14 days. So the last days before the
# cutoff hold mostly *fraud* labels, the fast ones. A **gap** of at least the label delay drops
# those days. Train: rows before `cutoff - gap` whose label is known at the cutoff; test: rows
# from the cutoff on, all of them (they are scored now, and evaluated once labels arrive).

# %%
GAP = pd.Timedelta(days=7)
known = data["label_available_at"] <= CUTOFF
train_by_hand = data[(data["tx_datetime"] < CUTOFF - GAP) & known]
test_by_hand = data[data["tx_datetime"] >= CUTOFF]
split = time_split(data, cutoff=CUTOFF, gap_days=7)
assert split.train.equals(train_by_hand) and split.test.equals(test_by_hand)
split.summary

# %% [markdown]
# `time_split` is this, plus a summary: rows kept and dropped per part (the gap drops every row)
# and the fraud rate of each part.
#
# ### 3.2 A random split flatters a model that memorises
#
# A compromised terminal produces fraud for 28 days. Give a model the terminal and customer ids
# and split at random: the test set holds the *same* compromised terminals, in the *same* weeks,
# as the training set. Split on time and the model faces next month's compromised terminals, as
# in production.

# %%
ID_FEATURES = ["amount", "hour", "online", "terminal_id", "customer_id"]
random_train, random_test = train_test_split(
    data, test_size=0.3, stratify=data["is_fraud"], random_state=RANDOM_STATE
)
split_scores = {}
for name, (train, test) in {
    "random split": (random_train, random_test),
    "time split": (split.train, split.test),
}.items():
    model = HistGradientBoostingClassifier(random_state=RANDOM_STATE)
    model.fit(train[ID_FEATURES], train["is_fraud"])
    score = model.predict_proba(test[ID_FEATURES])[:, 1]
    split_scores[name] = average_precision_score(test["is_fraud"], score)
assert split_scores["random split"] > 1.5 * split_scores["time split"]
pd.Series(split_scores, name="average precision on test").round(3)

# %% [markdown]
# The random split makes the same model look several times better. Nothing of that extra skill
# survives deployment: it is the memory of which terminals were compromised *during the test
# weeks*.
#
# ### 3.3 Leakage, by hand
#
# Three questions to ask of any pair of splits, in time order: do they share rows? does the
# earlier one hold rows *after* the later one starts? does it use labels not yet known at the
# cutoff (here: the start of the test period)?


# %%
def leaks_by_hand(train, test, cutoff):
    """Shared ids, training rows from the test period on, labels unknown at the cutoff."""
    return {
        "shared_ids": len(set(train["transaction_id"]) & set(test["transaction_id"])),
        "time_overlap": int((train["tx_datetime"] >= test["tx_datetime"].min()).sum()),
        "label_not_available": int((~(train["label_available_at"] <= cutoff)).sum()),
    }


pd.DataFrame(
    {
        "random split": leaks_by_hand(random_train, random_test, random_test["tx_datetime"].min()),
        "time split": leaks_by_hand(split.train, split.test, CUTOFF),
    }
)

# %% [markdown]
# `check_leakage` asks the same three questions and raises `LeakageError` when one fails
# (`on_leak="ignore"` only reports). The time split passes every check:

# %%
check_leakage({"train": random_train, "test": random_test}, on_leak="ignore")

# %%
check_leakage(split)

# %% [markdown]
# ### Your turn 1 · What does a gap of zero let through?
#
# Rerun the split with `gap_days=0` into `split_no_gap`, and its leakage report into
# `report_no_gap`. Then compute `last_week_fraud_rate`: the fraud rate of the training rows of
# the last 7 days before the cutoff. Does `check_leakage` complain? What did the model's
# training data learn about the last week?

# %% tags=["solution"]
split_no_gap = time_split(data, cutoff=CUTOFF, gap_days=0)
report_no_gap = check_leakage(split_no_gap)
last_week = split_no_gap.train[split_no_gap.train["tx_datetime"] >= CUTOFF - GAP]
last_week_fraud_rate = last_week["is_fraud"].mean()
print(f"{len(last_week)} training rows in the last week, fraud rate {last_week_fraud_rate:.0%}")
report_no_gap

# %% tags=["self-check"]
assert report_no_gap["passed"].all(), "❌ report_no_gap should be check_leakage(split_no_gap)"
assert split_no_gap.summary.loc["gap", "n_dropped"] == 0, "❌ use time_split(..., gap_days=0)"
assert last_week_fraud_rate == 1.0, "❌ keep only split_no_gap.train rows from CUTOFF - 7 days on"
print(
    "✅ Every check passes, yet the last week of training data holds only frauds: their labels "
    "arrive first. Nothing *leaks*, but the labels are biased; the gap removes that bias."
)

# %% [markdown]
# ## 4. Labels that arrive late
#
# ### 4.1 What do we know at the cutoff?
#
# Per day before the cutoff: the share of labels already known, and the fraud rate among them,
# by hand and with `summarize_label_availability`:

# %%
before = data[data["tx_datetime"] < CUTOFF]
per_day = (
    before.assign(
        day=before["tx_datetime"].dt.normalize(),
        known=before["label_available_at"] <= CUTOFF,
        known_fraud=before["is_fraud"].where(before["label_available_at"] <= CUTOFF),
    )
    .groupby("day")[["known", "known_fraud"]]
    .mean()
)
availability = summarize_label_availability(data, CUTOFF)
assert np.allclose(per_day["known"], availability["share_labelled"])
assert availability["known_positive_rate"].tail(7).fillna(1.0).eq(1.0).all()
availability.tail(9).round(3)

# %% [markdown]
# In the last 7 days only a handful of labels are known, and they are all frauds. Before that,
# everything but the slowest chargebacks is in.
#
# ### 4.2 Three ways to label the training data
#
# From here on the model also gets the point-in-time windowed features of lab 04 (customer
# spending over 1, 7 and 30 days, known frauds at the terminal over 28 days).
#
# * **No chargeback yet = legitimate**: what a naive query of the labels table returns;
# * **Known labels only, with a 7-day gap**: `time_split(gap_days=7)`.
#
# (A third way, *hindsight*, uses every label, even those that arrive after the cutoff:
# impossible in production, it only flatters an offline experiment.)

# %%
data = data.join(compute_windowed_features(data))
FEATURES = ["amount", "hour", "online", *compute_windowed_features(data.head(1)).columns]
split = time_split(data, cutoff=CUTOFF, gap_days=7)
train, test = split.train, split.test
y_test = test["is_fraud"]
before = data[data["tx_datetime"] < CUTOFF]
naive_label = before["is_fraud"].where(before["label_available_at"] <= CUTOFF, 0)
labelling = {
    "no chargeback yet = legitimate": (before, naive_label),
    "known labels, 7-day gap": (train, train["is_fraud"]),
}
label_scores, scores = {}, {}
for name, (rows, label) in labelling.items():
    model = HistGradientBoostingClassifier(random_state=RANDOM_STATE)
    score = scores[name] = model.fit(rows[FEATURES], label).predict_proba(test[FEATURES])[:, 1]
    label_scores[name] = {
        "training frauds": int(label.sum()),
        "average precision": average_precision_score(y_test, score),
        "recall at 80% precision": recall_at_precision(y_test, score, min_precision=0.8),
    }
label_scores = pd.DataFrame(label_scores).T
mislabelled = int((before["is_fraud"] - naive_label).sum())
print(
    f"frauds labelled legitimate by the naive query: {mislabelled} of {int(before['is_fraud'].sum())}"
)
assert label_scores["average precision"].idxmin() == "no chargeback yet = legitimate"
assert label_scores["recall at 80% precision"].idxmin() == "no chargeback yet = legitimate"
label_scores.round(3)

# %% [markdown]
# Treating "no chargeback yet" as legitimate mislabels the freshest frauds (the compromised
# terminals active right now) and teaches the model they are normal: it catches fewer frauds at
# the same precision. Dropping the unlabelled rows and the last week loses a few rows, not the
# truth.
#
# ### Your turn 2 · Catch the hindsight labels
#
# The hindsight training set is `before`: every row before the cutoff, with its final label.
# Run `check_leakage` on
# `{"train": before, "test": test}` with the cutoff `CUTOFF`, only reporting, into
# `hindsight_report`; store in `n_unknown_labels` how many training labels were not known at the
# cutoff, counted **by hand** from `label_available_at`.

# %% tags=["solution"]
hindsight_report = check_leakage({"train": before, "test": test}, cutoff=CUTOFF, on_leak="ignore")
n_unknown_labels = int((before["label_available_at"] > CUTOFF).sum())
hindsight_report

# %% tags=["self-check"]
flagged = hindsight_report.set_index("check").loc["label_not_available", "n_rows"]
assert flagged == n_unknown_labels, (
    f"❌ the report flags {flagged} rows; count label_available_at > CUTOFF"
)
assert not hindsight_report.set_index("check").loc["label_not_available", "passed"], (
    "❌ use cutoff=CUTOFF"
)
print(
    f"✅ {n_unknown_labels} training labels were still unknown at the cutoff: check_leakage catches them."
)

# %% [markdown]
# ## 5. A rare class: metrics and resampling
#
# ### 5.1 Accuracy lies
#
# Predicting "legitimate" for every transaction is about 99 % accurate. Average precision (the
# area under the precision-recall curve) starts at the fraud rate for a random model, and
# *recall at 80 % precision* answers the operational question: how many frauds do we catch if at
# most one alert in five may be a false alarm?

# %%
score = scores["known labels, 7-day gap"]  # the model of section 4.2
metrics = pd.DataFrame(
    {
        "always legitimate": {
            "accuracy": accuracy_score(y_test, np.zeros(len(y_test))),
            "ROC AUC": 0.5,
            "average precision": y_test.mean(),
            "recall at 80% precision": 0.0,
        },
        "model": {
            "accuracy": accuracy_score(y_test, score > 0.5),
            "ROC AUC": roc_auc_score(y_test, score),
            "average precision": average_precision_score(y_test, score),
            "recall at 80% precision": recall_at_precision(y_test, score, min_precision=0.8),
        },
    }
)
assert metrics.loc["accuracy"].max() - metrics.loc["accuracy"].min() < 0.01
metrics.round(3)

# %% [markdown]
# Accuracy barely separates a useless rule from a useful model (less than one point apart); ROC
# AUC looks excellent because the mass of easy negatives dominates it. Average precision and
# recall at a fixed precision look only at how the frauds rank among the alerts.
#
# ### 5.2 Re-weighting and resampling, training rows only
#
# Make the 1 % class count more while training: weigh each fraud more
# (`class_weight="balanced"`), or change the rows: drop legitimate ones (under-sampling). Under-
# sampling by hand: keep every fraud, draw ten legitimate rows per fraud.

# %%
rng = np.random.default_rng(RANDOM_STATE)
frauds = np.flatnonzero(train["is_fraud"] == 1)
legit = rng.choice(np.flatnonzero(train["is_fraud"] == 0), size=10 * len(frauds), replace=False)
undersampled = train.iloc[np.sort(np.concatenate([frauds, legit]))]
print(
    f"{len(train):,} training rows -> {len(undersampled):,}, fraud share {undersampled['is_fraud'].mean():.1%}"
)

# %% [markdown]
# `ResampledClassifier` does this inside `fit` (`ratio=0.1`: one fraud for ten legitimate rows).
# Only the training rows change; the test set keeps the real fraud rate. We also compare the
# mean score with the real fraud rate: are the scores still probabilities?

# %%
candidates = {
    "class_weight='balanced'": HistGradientBoostingClassifier(
        class_weight="balanced", random_state=RANDOM_STATE
    ),
    "under-sampled to 1:10": ResampledClassifier(
        HistGradientBoostingClassifier(random_state=RANDOM_STATE), ratio=0.1
    ),
}
imbalance = {
    "as is": {
        "average precision": metrics.loc["average precision", "model"],
        "mean score / fraud rate": score.mean() / y_test.mean(),
    }
}
for name, model in candidates.items():
    score = model.fit(train[FEATURES], train["is_fraud"]).predict_proba(test[FEATURES])[:, 1]
    imbalance[name] = {
        "average precision": average_precision_score(y_test, score),
        "mean score / fraud rate": score.mean() / y_test.mean(),
    }
imbalance = pd.DataFrame(imbalance).T
assert imbalance.loc["under-sampled to 1:10", "mean score / fraud rate"] > 2
imbalance.round(3)

# %% [markdown]
# Re-weighting and under-sampling give a different model, sometimes better at ranking frauds,
# sometimes not: measure it each time. Both break calibration (the mean score is several times
# the real fraud rate): if the scores feed a decision that needs probabilities, recalibrate.
#
# ### 5.3 Resampling inside cross-validation
#
# Resample *before* splitting and the test folds are resampled too: their fraud rate, and the
# score, are fake. `ResampledClassifier` resamples inside `fit`, so `cross_validate` resamples
# each training fold and scores each test fold untouched. `TimeSeriesSplit` keeps folds in time
# order.

# %%
cv = cross_validate(
    ResampledClassifier(HistGradientBoostingClassifier(random_state=RANDOM_STATE), ratio=0.1),
    train[FEATURES],
    train["is_fraud"],
    cv=TimeSeriesSplit(n_splits=3),
    scoring="average_precision",
    return_estimator=True,
    return_indices=True,
)
pd.DataFrame(
    {
        "rows fitted on": [est.n_resampled_ for est in cv["estimator"]],
        "test rows": [len(idx) for idx in cv["indices"]["test"]],
        "test fraud rate %": [
            100 * train["is_fraud"].iloc[i].mean() for i in cv["indices"]["test"]
        ],
        "test average precision": cv["test_score"],
    }
).round(3)

# %% [markdown]
# ### Your turn 3 · Over-sample by hand
#
# Over-sampling repeats frauds instead of dropping legitimate rows. Build `oversampled`: every
# training row once, plus frauds drawn **with replacement** (`rng.choice(..., replace=True)`)
# until there is one fraud for ten legitimate rows. Use `rng = np.random.default_rng(RANDOM_STATE)`.

# %% tags=["solution"]
rng = np.random.default_rng(RANDOM_STATE)
n_legit = int((train["is_fraud"] == 0).sum())
extra = rng.choice(frauds, size=round(0.1 * n_legit) - len(frauds), replace=True)
oversampled = train.iloc[np.sort(np.concatenate([np.arange(len(train)), extra]))]
print(f"{len(oversampled):,} rows, fraud share {oversampled['is_fraud'].mean():.3f}")

# %% tags=["self-check"]
counts = oversampled["is_fraud"].value_counts()
assert counts[0] == (train["is_fraud"] == 0).sum(), "❌ keep every legitimate row exactly once"
assert abs(counts[1] / counts[0] - 0.1) < 0.001, "❌ aim for one fraud per ten legitimate rows"
assert set(oversampled.index) == set(train.index), "❌ only training rows, repeated"
print(f"✅ {counts[1]} fraud rows for {counts[0]} legitimate ones; test rows untouched.")

# %% [markdown]
# ## What to remember
#
# * Stratify rare classes; distrust convenience samples; a reservoir samples a stream uniformly.
# * Split on **time** for time-ordered data, train on labels **known at the cutoff**, with a gap
#   of at least the label delay; check the split (`check_leakage`).
# * Never treat "not reported yet" as "legitimate".
# * Report average precision and recall at a fixed precision, not accuracy.
# * Re-weight or resample **training** rows only (inside `fit`); expect broken calibration.
#
# **Next:** lab 04 builds the features: windowed, point-in-time, and a deliberate leak.

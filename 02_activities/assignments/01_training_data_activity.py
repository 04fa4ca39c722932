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
# # Assignment 1 · Training data
#
# You build the training and test sets of a fraud model on a **new variant** of the course
# data: 45 days, 600 customers, 200 terminals. Labels arrive late: a legitimate
# transaction is confirmed after 10 days, a fraud is reported 1 to 20 days after it
# happens. The model is trained at the **cutoff, 2026-02-01 00:00**. You write the
# pandas code of lab 03 (sampling, labels known at a date, time splits) and lab 04
# (point-in-time features) yourself: about 2 hours.
#
# | Task | What you define | Points |
# |---|---|--:|
# | 1 | `sample_df`: a stratified 10 % sample | 2 |
# | 2 | `n_labels_known`: labels known at the cutoff | 1 |
# | 3 | `test_df`, `train_df`: a leakage-free time split with per-channel gaps | 1 + 3 |
# | 4 | `nightly_terminal_frauds(transactions)`: a point-in-time feature | 3 |
#
# **Complete** needs 9 of the 10 points (`01_training_data_rubric.md` says what each check
# expects). Replace every `None  # TODO` and `raise NotImplementedError(...)`; **keep the
# names**. Use pandas (and numpy); do not change the setup cell. Before pushing:
# *Kernel → Restart & Run All*, then
# `bash scripts/grade.sh 02_activities/assignments/01_training_data_activity.ipynb`
# (`02_activities/GRADING.md`). Cells marked `# NBVAL_RAISES_EXCEPTION` use your answers:
# they fail until you fill the blanks above them.

# %% [markdown]
# ## 1. The data
#
# The simulator's transactions, plus eight hand-made rows on the edges of the periods
# (exactly at the cutoff, exactly 14 days later, a label arriving exactly at the
# cutoff...): your comparisons must put each on the right side.

# %%
import numpy as np
import pandas as pd

from production.simulate import simulate

DATA_PARAMS = {
    "n_customers": 600,
    "n_terminals": 200,
    "n_days": 45,
    "label_delay_days": 10,
    "random_state": 2026,
}
CUTOFF = pd.Timestamp("2026-02-01")
TEST_DAYS = 14
GAP_DAYS = {"chip": 7, "contactless": 7, "swipe": 10, "online": 14}
BOUNDARY_ROWS = [  # (transaction_id, tx_datetime, channel, is_fraud, label_available_at)
    (9_000_000_001, "2026-02-01 00:00:00", "chip", 0, "2026-02-11 00:00:00"),
    (9_000_000_002, "2026-02-15 00:00:00", "chip", 0, "2026-02-25 00:00:00"),
    (9_000_000_003, "2026-02-15 02:00:00", "online", 1, "2026-02-20 00:00:00"),
    (9_000_000_004, "2026-01-25 00:00:00", "chip", 0, "2026-01-28 00:00:00"),
    (9_000_000_005, "2026-01-24 23:59:59", "chip", 1, "2026-02-01 00:00:00"),
    (9_000_000_006, "2026-01-20 12:00:00", "online", 0, "2026-01-30 12:00:00"),
    (9_000_000_007, "2026-01-17 23:00:00", "online", 1, "2026-02-01 00:00:00"),
    (9_000_000_008, "2026-01-30 09:00:00", "swipe", 0, "2026-02-01 00:00:00"),
]

simulated = simulate(**DATA_PARAMS).transactions
edges = pd.DataFrame(
    BOUNDARY_ROWS,
    columns=["transaction_id", "tx_datetime", "channel", "is_fraud", "label_available_at"],
)
edges = edges.assign(
    tx_datetime=pd.to_datetime(edges["tx_datetime"]),
    label_available_at=pd.to_datetime(edges["label_available_at"]),
    customer_id=0,
    terminal_id=0,
    amount=50.0,
    merchant_category="grocery",
    fraud_scenario=0,
)
transactions = pd.concat([simulated, edges[simulated.columns]], ignore_index=True)
print(f"{len(transactions):,} transactions, fraud rate {transactions['is_fraud'].mean():.2%}")
transactions.groupby(["is_fraud", "channel"]).size().unstack()

# %% [markdown]
# ## 2. A stratified sample (task 1, 2 points)
#
# Analysts want a 10 % sample to label by hand. Frauds are rare and unevenly spread
# across channels, so the sample must keep **10 % of every `(is_fraud, channel)`
# stratum**, within one row: sample each group on its own (`groupby(...)` then a seeded
# sample per group, `random_state=2026`). Keep the rows unchanged (all columns), no
# duplicates.

# %%
# YOUR CODE HERE
sample_df = None  # TODO: 10 % of every (is_fraud, channel) stratum of `transactions`

# %% [markdown]
# Your sample, stratum by stratum, next to 10 % of the population:

# %%
# NBVAL_RAISES_EXCEPTION
strata = ["is_fraud", "channel"]
pd.DataFrame(
    {
        "sample": sample_df.groupby(strata, observed=True).size(),
        "10 % of the population": transactions.groupby(strata).size() * 0.1,
    }
)

# %% [markdown]
# ## 3. What is known at the cutoff? (task 2, 1 point)
#
# How many transactions **before** the cutoff have their label known **at** the cutoff
# (`label_available_at <= CUTOFF`)? An `int` (`int(...)` of a count).

# %%
# YOUR CODE HERE
n_labels_known = None  # TODO: an int

# %%
# NBVAL_RAISES_EXCEPTION
before = int((transactions["tx_datetime"] < CUTOFF).sum())
print(
    f"{n_labels_known:,} of {before:,} labels known at the cutoff ({n_labels_known / before:.0%})"
)

# %% [markdown]
# ## 4. A leakage-free time split (task 3, 1 + 3 points)
#
# * `test_df`: **every** transaction of the 14 days from the cutoff,
#   `[CUTOFF, CUTOFF + 14 days)`, labelled or not (they are scored when they happen and
#   evaluated once their labels arrive).
# * `train_df`: chargebacks arrive at different speeds per channel, so each channel has
#   its own gap `GAP_DAYS[channel]`: keep the transactions that happened strictly
#   **before `CUTOFF - GAP_DAYS[channel]`** (the gap of the row's own channel) **and**
#   whose label is known at the cutoff. `Series.map` and `pd.to_timedelta` help.
#
# No package helper does this: write the comparisons yourself, and mind `<` vs `<=`.

# %%
# YOUR CODE HERE
test_df = None  # TODO: every transaction of [CUTOFF, CUTOFF + TEST_DAYS days)
train_df = None  # TODO: before CUTOFF - GAP_DAYS[channel], label known at the cutoff

# %% [markdown]
# A quick look: the periods each set covers, per channel.

# %%
# NBVAL_RAISES_EXCEPTION
pd.concat(
    {
        "train": train_df.groupby("channel")["tx_datetime"].agg(["min", "max", "size"]),
        "test": test_df.groupby("channel")["tx_datetime"].agg(["min", "max", "size"]),
    }
)


# %% [markdown]
# ## 5. A nightly, point-in-time terminal feature (task 4, 3 points)
#
# Terminal features are computed by a **batch job every night at 00:00**: a transaction
# during day D is scored with the values computed at D 00:00. Write
# `nightly_terminal_frauds(transactions)`: for each transaction on day D, the number of
# **frauds at the same terminal** with `D - 14 days <= tx_datetime < D`, counting only
# those whose **label is known at D 00:00** (`label_available_at <= D`).
#
# Return a `pd.Series` of counts indexed like `transactions`. It must work on any frame
# with the columns `terminal_id`, `tx_datetime`, `is_fraud`, `label_available_at`, rows in
# any order: the grader calls it on its own frames (edge cases: a fraud at exactly
# D − 14 days 00:00, a label arriving exactly at midnight, one at 09:00 on day D...).
# Hint: `tx_datetime.dt.normalize()` gives D.


# %%
# YOUR CODE HERE
def nightly_terminal_frauds(transactions):
    """Known frauds at the transaction's terminal over the 14 days before its midnight."""
    raise NotImplementedError("TODO: one count per transaction, indexed like `transactions`")


# %% [markdown]
# Your feature on the assignment data: how often is it non-zero, and how much more often
# for frauds?

# %%
# NBVAL_RAISES_EXCEPTION
feature = nightly_terminal_frauds(transactions)
pd.DataFrame({"feature": feature, "is_fraud": transactions["is_fraud"]}).groupby("is_fraud")[
    "feature"
].describe()

# %% [markdown]
# ## 6. Going further (not graded)
#
# * Train a model on `train_df` with and without your feature and compare the average
#   precision on `test_df` (lab 04).
# * Replace the 14-day count by a rate (known frauds / known labels): what changes at the
#   start of a compromise?
# * Why does a single gap for every channel either waste data or leak labels?

# %%
print(f"numpy {np.__version__}, pandas {pd.__version__}")

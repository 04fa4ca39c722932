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
# # Lab 06 · Explanations and monitoring
#
# A model in production must answer two questions nobody asks in a notebook: *why did you flag
# this transaction?* and *are you still right?* This lab explains a fraud model's decisions, one
# transaction at a time and globally, then watches it while the world changes under it.
#
# **You will:** read the SHAP values of one prediction by hand and sum one-hot columns back to
# the original features; compare SHAP with permutation importance and partial dependence; name
# the kinds of distribution shift on a simulated drift; compute the PSI and the KS statistic
# from their formulas and check them against `production.monitoring`; follow drift week by week
# and performance as delayed labels arrive. Three "Your turn" exercises. About 60 minutes.

# %% [markdown]
# ## 1. A model, then a drift
#
# Thirteen simulated weeks from Monday 5 January 2026 for 500 customers. From **Monday
# 16 March** the world drifts (`simulate(drift_start=...)`): amounts of the regular traffic are
# 30 % higher, the online share rises from 20 % to 30 %, and a new fraud appears, *card-testing
# bursts*: 3–8 small online payments a minute apart. Days before the drift are identical to a
# run without it.
#
# The model is trained on three weeks (2–22 February, after the 30-day windows have filled),
# then serves from **2 March**, after a 7-day gap for the label delay: two weeks before the
# drift, three after.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from IPython.display import display
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import PartialDependenceDisplay
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.explain import (
    compute_permutation_importance,
    compute_shap_values,
    plot_shap_summary,
    plot_shap_waterfall,
)
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.monitoring import (
    PSI_EPSILON,
    drift_report,
    ks_test,
    performance_over_time,
    plot_drift_report,
    psi,
)
from production.simulate import simulate

# one OpenMP thread per model: on a small busy machine, more threads wait on each other
threadpool_limits(limits=1, user_api="openmp")
print(f"random_state={RANDOM_STATE}, shap {shap.__version__}")

# %% [markdown]
# The simulated transactions, with the point-in-time features of lab 04 joined to them:

# %%
FEATURES = list(FEATURE_COLUMNS)
DRIFT_START, SERVE_FROM = pd.Timestamp("2026-03-16"), pd.Timestamp("2026-03-02")
transactions = simulate(
    n_customers=500,
    n_terminals=150,
    n_days=91,
    start_date="2026-01-05",
    drift_start=DRIFT_START,
    random_state=RANDOM_STATE,
).transactions
features = compute_model_features(transactions)  # lab 04's point-in-time features
data = transactions.join(features.drop(columns=["amount", "merchant_category", "channel"]))
when = data["tx_datetime"]
train = data[(when >= "2026-02-02") & (when < "2026-02-23")]
serving = data[when >= SERVE_FROM]
print(f"{len(data):,} transactions; train {len(train):,} rows, serving {len(serving):,} rows")

# %% [markdown]
# The model: gradient boosting with balanced class weights (lab 03's best variant) on the
# features of lab 04, in the course's pipeline (`preprocess`: impute and scale numbers, impute
# and one-hot encode categories; then `model`).

# %%
model = build_pipeline(
    build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
    HistGradientBoostingClassifier(class_weight="balanced", random_state=RANDOM_STATE),
)
model.fit(train[FEATURES], train["is_fraud"])
serving = serving.assign(score=model.predict_proba(serving[FEATURES])[:, 1])
before = serving[serving["tx_datetime"] < DRIFT_START]
after = serving[serving["tx_datetime"] >= DRIFT_START]
ap_before = average_precision_score(before["is_fraud"], before["score"])
print(f"average precision on the 2 weeks before the drift: {ap_before:.3f}")

# %% [markdown]
# ## 2. One prediction, explained by hand
#
# A SHAP value is one feature's contribution to one prediction. For a row, the values add up to
# the model's output (here the **log-odds** of fraud, `decision_function`) minus a **base
# value**, the average output. A pipeline is not something SHAP can explain directly: we explain
# the model (`model[-1]`) on what it actually sees, the preprocessed row (`model[:-1]`).
#
# The transaction with the highest score before the drift:

# %%
flagged = before["score"].idxmax()
row = before.loc[[flagged], FEATURES]
Xt = model[:-1].transform(row)
names = model[:-1].get_feature_names_out()  # e.g. "num__amount", "cat__channel_online"
raw = shap.TreeExplainer(model[-1])(Xt)
per_column = pd.Series(raw.values[0], index=names)
print(f"{len(names)} model columns for {len(FEATURES)} original features")
per_column.sort_values(key=abs, ascending=False).head(8).round(3)

# %% [markdown]
# Each SHAP value belongs to a *model* column: `channel` became four one-hot columns, one per
# channel. People think in the original features, so sum the columns of each feature (SHAP
# values are additive, so the sum is that feature's exact contribution). The column's name
# tells its origin: strip the transformer prefix, then match the feature it starts with.


# %%
def origin(name):
    """The original feature a model column comes from."""
    column = name.split("__", 1)[1]
    return max((f for f in FEATURES if column == f or column.startswith(f + "_")), key=len)


by_feature = per_column.groupby(per_column.index.map(origin)).sum()
margin = model.decision_function(row)[0]
print(f"base value {raw.base_values[0]:.3f} + sum of SHAP values {by_feature.sum():.3f}")
print(f"= {raw.base_values[0] + by_feature.sum():.3f}, the model's log-odds {margin:.3f}")
assert np.isclose(raw.base_values[0] + by_feature.sum(), margin)
by_feature.sort_values(key=abs, ascending=False).head(5).round(3)

# %% [markdown]
# `compute_shap_values` does exactly this (for many rows, with the right explainer for the
# model), and its waterfall draws the same sum, from the base value at the bottom to this
# transaction's log-odds at the top:

# %%
local = compute_shap_values(model, row)
assert np.allclose(local.values[0], by_feature[local.feature_names])
case = before.loc[flagged]
print(
    f"score {case['score']:.3f}, fraud scenario {case['fraud_scenario']}, amount {case['amount']}"
)
waterfall = plot_shap_waterfall(local, row=0)
display(waterfall)

# %% [markdown]
# This is the explanation an analyst (or a customer asking why a payment was blocked) needs:
# which facts about *this* transaction drove the decision, with their values.
#
# ### Your turn 1 · The contribution of `merchant_category`, by hand
#
# Take the transaction with the **lowest** score before the drift. With `shap.TreeExplainer` on
# its preprocessed row, compute the total SHAP value of the original feature
# `merchant_category` (the sum over its one-hot columns) and store it in `my_category_shap`.

# %% tags=["solution"]
calm = before.loc[[before["score"].idxmin()], FEATURES]
calm_raw = shap.TreeExplainer(model[-1])(model[:-1].transform(calm))
calm_values = pd.Series(calm_raw.values[0], index=names)
my_category_shap = calm_values[[n.startswith("cat__merchant_category_") for n in names]].sum()
print(f"merchant_category contributes {my_category_shap:+.4f} log-odds")

# %% tags=["self-check"]
_expected = compute_shap_values(model, before.loc[[before["score"].idxmin()], FEATURES])
_expected = _expected.values[0, _expected.feature_names.index("merchant_category")]
assert np.isclose(my_category_shap, _expected), (
    f"❌ got {my_category_shap:.4f}, expected {_expected:.4f}: sum the values of every "
    "'cat__merchant_category_...' column of that one row"
)
print("✅ The sum of the one-hot columns is the feature's SHAP value, as compute_shap_values says.")

# %% [markdown]
# ## 3. Global explanations, and where they mislead
#
# Averaged over many rows, SHAP values describe the model. The **beeswarm** shows one dot per
# row and feature, placed by its SHAP value and coloured by the feature's value (red high, blue
# low; grey for categories). SHAP on 1,000 sampled rows of a tree model takes about a second.

# %%
explanation = compute_shap_values(model, before[FEATURES], max_rows=1000, random_state=RANDOM_STATE)
beeswarm = plot_shap_summary(explanation, kind="beeswarm")
display(beeswarm)

# %% [markdown]
# The model reads the **amount against the customer's habits**: a high amount pushes towards
# fraud, a high 30-day mean amount pushes away from it, the signature of stolen cards spending
# five times the usual (scenario 3). The terminal's known fraud rate flags compromised terminals
# (scenario 2).
#
# **Permutation importance** asks another question: how much does the score (average precision)
# *drop* when one feature's values are shuffled across rows of held-out data? It measures what
# a feature is worth to *performance*. The pipeline is shuffled before preprocessing, so
# `channel` is permuted as a whole.

# %%
held_out = before.sample(2000, random_state=RANDOM_STATE)
permutation = compute_permutation_importance(
    model, held_out[FEATURES], held_out["is_fraud"], n_repeats=3, random_state=RANDOM_STATE
).set_index("feature")["importance_mean"]
mean_abs_shap = pd.Series(np.abs(explanation.values).mean(axis=0), index=explanation.feature_names)
importance = pd.DataFrame({"mean |SHAP|": mean_abs_shap, "AP drop": permutation})
importance["SHAP rank"] = importance["mean |SHAP|"].rank(ascending=False)
importance["permutation rank"] = importance["AP drop"].rank(ascending=False)
importance.sort_values("SHAP rank").round(3)

# %% [markdown]
# They broadly agree on the top and disagree elsewhere. Two traps:
#
# * **Dependent features.** The customer's mean amounts over 1, 7 and 30 days overlap, and the
#   terminal's fraud count and rate come from the same transactions. Shuffle one column alone
#   and the rows become impossible (a terminal with a 40 % fraud rate and no fraud): permutation
#   importance then measures the model's reaction to rows that cannot exist, and SHAP *splits*
#   the credit among correlated features. Read importance per group of related features.
# * **Partial dependence** (the average prediction when one feature is set to each value of a
#   grid, all else unchanged) costs one prediction per row and grid value, so compute it on a
#   **sample**: 300 rows × 20 values is 6,000 predictions, and a few hundred rows give the same
#   average as the whole data set. Thin lines are single transactions (ICE curves):

# %%
pdp_rows = before[FEATURES].sample(300, random_state=RANDOM_STATE)
pdp_figure, ax = plt.subplots(figsize=(6, 4))
PartialDependenceDisplay.from_estimator(
    model, pdp_rows, ["amount"], kind="both", grid_resolution=20, ax=ax, random_state=RANDOM_STATE
)
ax.set_title("Partial dependence of P(fraud) on amount (300 rows)")
plt.close(pdp_figure)
display(pdp_figure)

# %% [markdown]
# The average rises smoothly with the amount; the ICE lines jump, each at its own amount, where
# the amount leaves *that customer's* usual range. The average hides the interaction, and
# setting `amount` to 500 while keeping a 30-day mean of 10 builds a transaction the
# customer's history contradicts: the same trap as one-at-a-time permutation.
#
# ## 4. Kinds of distribution shift
#
# In production the joint distribution P(X, Y) of features and labels changes. Chip Huyen's
# book names three cases; the simulated drift mixes them. Before and after 16 March:


# %%
def small_online(frame):
    """Online payments under 10: the slice card testing lives in."""
    return (frame["channel"] == "online") & (frame["amount"] < 10)


def describe(frame):
    """Summaries of P(X), P(Y), P(X | Y) and P(Y | X) for one period."""
    frauds = frame[frame["is_fraud"] == 1]
    return pd.Series(
        {
            "median amount": frame["amount"].median(),
            "online share": (frame["channel"] == "online").mean(),
            "fraud rate, P(Y)": frame["is_fraud"].mean(),
            "P(small online | fraud)": small_online(frauds).mean(),
            "P(fraud | small online)": frame.loc[small_online(frame), "is_fraud"].mean(),
        }
    )


shifts = pd.DataFrame({"2 weeks before": describe(before), "3 weeks after": describe(after)})
assert (
    shifts.loc["P(small online | fraud)", "2 weeks before"]
    < shifts.loc["P(small online | fraud)", "3 weeks after"]
)
shifts.round(4)

# %% [markdown]
# * **Covariate shift**, P(X) changes while P(Y | X) does not: amounts are about 30 % higher and
#   more payments are online, for the regular traffic.
# * **Label shift**, P(Y) changes while P(X | Y) does not: the fraud rate moves (it also moves
#   before any drift, as compromised terminals come and go). A new kind of fraud is *not* pure
#   label shift: the card-testing frauds look like nothing seen before, so P(X | Y = fraud)
#   changes too (small online payments were no fraud at all, now a good share of frauds).
# * **Concept drift**, P(Y | X) changes: a small online payment was never fraud; now a fair
#   share of them is. The model, trained before, has never seen the pattern.
#
# Only P(X) can be watched without labels; the rest needs labels, which arrive days to weeks
# late. A new kind of fraud changes P(X | Y) and P(Y | X) at once: the hardest drift to catch.
#
# ## 5. Drift without labels: the PSI from its formula
#
# The **Population Stability Index** compares the distribution of a feature in a *reference*
# sample (the training rows) with a *current* one (a week of serving):
#
# $$\mathrm{PSI} = \sum_i (c_i - r_i)\,\ln\frac{c_i}{r_i}$$
#
# where $r_i$ and $c_i$ are the shares of the reference and current rows in bin $i$. The bins
# are the **reference's deciles**; the outer bins are open-ended so that new extremes still
# count, and an empty bin gets a tiny share ($10^{-4}$) so the logarithm stays finite. Rule of
# thumb: below 0.1 stable, 0.1 to 0.2 moderate, above 0.2 a large shift. In numpy and pandas,
# for the amount in the first week after the drift:

# %%
reference = train["amount"]
current = after.loc[after["tx_datetime"] < DRIFT_START + pd.Timedelta(days=7), "amount"]
inner_edges = np.unique(np.quantile(reference, np.linspace(0, 1, 11))[1:-1])
edges = [-np.inf, *inner_edges, np.inf]  # right-closed bins, like pd.cut's default
r = pd.cut(reference, edges).value_counts(normalize=True, sort=False).clip(lower=PSI_EPSILON)
c = pd.cut(current, edges).value_counts(normalize=True, sort=False).clip(lower=PSI_EPSILON)
psi_by_hand = float(((c - r) * np.log(c / r)).sum())
print(f"PSI of amount by hand {psi_by_hand:.4f}; monitoring.psi {psi(reference, current):.4f}")
assert np.isclose(psi_by_hand, psi(reference, current))
pd.DataFrame({"reference share": r, "current share": c}).round(3)

# %% [markdown]
# Every bin of the higher amounts gained share: 30 % higher amounts move many rows up one decile.
#
# ### Your turn 2 · The PSI of a categorical feature
#
# For a category, each category is a bin. Compute the PSI of `channel` between `train` and the
# same first week after the drift from the formula (shares per channel, empty shares raised to
# `PSI_EPSILON`) and store it in `my_channel_psi`. Is the change from 20 % to 30 % online a
# "large shift" by the rule of thumb?

# %% tags=["solution"]
week_after = after[after["tx_datetime"] < DRIFT_START + pd.Timedelta(days=7)]
shares = pd.DataFrame(
    {
        "r": train["channel"].value_counts(normalize=True),
        "c": week_after["channel"].value_counts(normalize=True),
    }
)
shares = shares.fillna(0).clip(lower=PSI_EPSILON)
my_channel_psi = float(((shares["c"] - shares["r"]) * np.log(shares["c"] / shares["r"])).sum())
print(f"PSI of channel: {my_channel_psi:.4f}")

# %% tags=["self-check"]
_week = after[after["tx_datetime"] < DRIFT_START + pd.Timedelta(days=7)]
_expected = psi(train["channel"], _week["channel"])
assert np.isclose(my_channel_psi, _expected), (
    f"❌ got {my_channel_psi:.4f}, expected {_expected:.4f}: one bin per channel, shares "
    "(value_counts(normalize=True)) of train and of the week, then sum (c - r) * ln(c / r)"
)
print(f"✅ PSI of channel = {_expected:.3f}: a 10-point change in one share is a small PSI.")

# %% [markdown]
# The **KS test** is the other classic for numbers: its statistic is the largest vertical gap
# between the two empirical cumulative distribution functions (ECDFs), and its p-value says
# whether such a gap could be chance. On large samples tiny, harmless gaps get tiny p-values:
# alert on the effect size (the PSI), read the test as support.
#
# ### Your turn 3 · The KS statistic by hand
#
# Compute the KS statistic of `amount` between `reference` and `current` (defined above) by
# hand: evaluate both ECDFs at every observed value (`np.searchsorted(np.sort(x), values,
# side="right") / len(x)`) and take the largest absolute gap. Store it in `my_ks`.

# %% tags=["solution"]
values = np.concatenate([reference, current])
ecdf_reference = np.searchsorted(np.sort(reference), values, side="right") / len(reference)
ecdf_current = np.searchsorted(np.sort(current), values, side="right") / len(current)
my_ks = float(np.abs(ecdf_reference - ecdf_current).max())
print(f"KS statistic by hand: {my_ks:.4f}")

# %% tags=["self-check"]
_scipy = stats.ks_2samp(reference, current).statistic
assert np.isclose(my_ks, _scipy), (
    f"❌ got {my_ks:.4f}, scipy says {_scipy:.4f}: evaluate both ECDFs at the pooled values "
    "and take the maximum of the absolute difference"
)
assert np.isclose(my_ks, ks_test(reference, current)[0])
print(f"✅ KS statistic {_scipy:.3f}, as scipy.stats.ks_2samp and production.monitoring.ks_test.")

# %% [markdown]
# ## 6. Drift week by week
#
# `drift_report` does this for every feature: the PSI, and the KS test (numbers) or the χ²
# test (categories). The model's **score** is monitored like a feature: prediction drift needs
# no labels either. With effect-size alerts (PSI ≥ 0.1, tests switched off with
# `p_value_threshold=0`), the PSI of the key features against the training data, week by week:

# %%
MONITORED = [*FEATURES, "score"]
reference_rows = train[FEATURES].assign(score=model.predict_proba(train[FEATURES])[:, 1])
weekly = {
    f"{week.start_time:%m-%d}": drift_report(
        reference_rows, frame[MONITORED], psi_threshold=0.1, p_value_threshold=0
    ).set_index("feature")
    for week, frame in serving.groupby(serving["tx_datetime"].dt.to_period("W"))
}
psi_by_week = pd.DataFrame({week: report["psi"] for week, report in weekly.items()})
n_flagged = pd.Series({week: int(report["drifted"].sum()) for week, report in weekly.items()})
KEY = ["amount", "customer_amount_mean_1d", "customer_amount_mean_7d", "channel", "score"]
for week, report in weekly.items():
    print(f"week of {week}, flagged: {', '.join(report.index[report['drifted']]) or '-'}")
psi_by_week.loc[KEY].T.round(3).assign(n_flagged=n_flagged)

# %%
assert (n_flagged[n_flagged.index < f"{DRIFT_START:%m-%d}"] == 0).all()
assert (n_flagged[n_flagged.index >= f"{DRIFT_START:%m-%d}"] > 0).all()
assert (psi_by_week.loc["score"] < 0.1).all()  # the score hardly moves (see below)

# %% [markdown]
# Quiet for the two weeks before the drift, flagging every week after it: mostly the amount
# (near the threshold) and the customers' mean amounts, which follow it with a lag (the 1-day
# mean at once, the 7-day mean from the second week). The channel mix moved from 20 % to 30 %
# online, yet its PSI stays small: with a handful of categories, a large change in one share is
# a small PSI. And the score hardly moves: higher amounts are judged against the customers'
# means, which follow them. One threshold does not fit every feature. The first drifted week:

# %%
drift_figure = plot_drift_report(weekly[f"{DRIFT_START:%m-%d}"].reset_index())
display(drift_figure)

# %% [markdown]
# ## 7. Performance over time, as labels arrive
#
# Drift in the inputs is a warning; a drop in performance is the damage. Measuring it needs
# labels, and a fraud label arrives 1 to 14 days after the transaction (a legitimate one is final
# after 7). What monitoring sees at the end of the simulation (`as_of`: only labels known by
# then count), week by week:

# %%
END = data["tx_datetime"].max()
seen = performance_over_time(
    serving,
    time_col="tx_datetime",
    label_col="is_fraud",
    score_col="score",
    freq="W",
    label_available_col="label_available_at",
    as_of=END,
)
seen.set_index("period").round(3)

# %% [markdown]
# The last week is unreadable: only its fastest labels have arrived, and those are frauds (a
# legitimate label takes 7 days), so its metrics describe a few frauds, not the week. **Never
# read the freshest period's metrics before its labels are in.**
#
# A slice shows what averages hide. The share of frauds caught (a score in the top 1 % of the
# pre-drift scores), by fraud scenario (the simulator's ground truth; in production it comes
# from analysts' case notes):

# %%
threshold = np.quantile(before["score"], 0.99)
frauds = serving[serving["is_fraud"] == 1]
caught = (
    frauds.assign(period=np.where(frauds["tx_datetime"] < DRIFT_START, "before", "after"))
    .assign(caught=frauds["score"] >= threshold)
    .groupby(["fraud_scenario", "period"])["caught"]
    .agg(["size", "mean"])
    .unstack("period")
)
assert caught.loc[4, ("mean", "after")] < 0.1
caught.round(2)

# %% [markdown]
# The model still catches the frauds it knows and almost none of the card-testing bursts
# (scenario 4). The fix is in the data, not the model's settings: retrain on recent labels (and
# add burst features, such as the number of payments in the last minutes), then promote through
# the gate of lab 05. Lab 08 turns this into a retraining trigger.
#
# ## 8. What to monitor
#
# | what | without labels | here |
# |---|---|---|
# | service health: latency, errors, throughput | yes | lab 07 |
# | input data: schema, missing and unseen values, volumes | yes | lab 02 |
# | feature drift (PSI per feature, per window) | yes | amount, customer means |
# | prediction drift (score distribution, alert rate) | yes | score PSI |
# | performance (AP, precision, recall) | once labels arrive | last week unreadable |
# | performance per slice (channel, amount, scenario) | once labels arrive | card testing missed |
#
# Explanations and drift reports are evidence about a model: keep them with it, in its MLflow
# run (lab 05's `log_run(..., figures={"shap_beeswarm.png": beeswarm}, tables=...)`), so that
# a reviewer can see why it was promoted and when it started to drift.

# %% [markdown]
# ## What to remember
#
# * SHAP explains one prediction exactly: the values of the model columns add up to the output;
#   sum the one-hot columns back to the original features.
# * Permutation importance measures what a feature is worth to performance; with correlated
#   features both methods split or hide importance. Partial dependence needs a sample.
# * Covariate shift shows in the inputs; label shift and concept drift need labels, which come
#   late. A new kind of fraud changes P(X | Y) and P(Y | X) at once.
# * The PSI is a few lines of numpy: reference deciles, shares, $\sum (c-r)\ln(c/r)$. Alert on
#   it per feature and on the score, per window.
# * Read performance only where labels are complete, and per slice.
#
# **Next:** lab 07 deploys the model behind an API.

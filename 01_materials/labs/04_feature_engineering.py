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
# # Lab 04 · Feature engineering
#
# Features are where most of a fraud model's skill comes from, and where most of its production
# bugs hide. This lab computes the course's windowed features by hand, then with
# `production.features`, checks that they are *point in time*, plants a leak on purpose to see
# it fool an offline evaluation, and builds the preprocessing `ColumnTransformer` by hand before
# `build_preprocessor` does it.
#
# **You will:** compute a customer's spending history with a pandas rolling window; count the
# frauds a terminal *knew about* at a given moment; check point-in-time correctness with
# `as_known_at` and `check_point_in_time`; measure what each feature group adds; and assemble
# the impute / scale / encode pipeline whose step names become grid keys. Three "Your turn"
# exercises. About 60 minutes.

# %% [markdown]
# ## 1. Setup
#
# The same 60 simulated days as lab 03 (1,000 customers), the same cutoff (12 February) and the
# same time split: train on the labels known at the cutoff with a 7-day gap, test on the 18 days
# after.

# %%
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.features import (
    as_known_at,
    build_pipeline,
    build_preprocessor,
    check_point_in_time,
    compute_windowed_features,
)
from production.sampling import recall_at_precision, time_split
from production.simulate import simulate

# one OpenMP thread per model fit: on a small busy machine more threads wait on each other
threadpool_limits(limits=1, user_api="openmp")
transactions = simulate(n_customers=1_000, random_state=RANDOM_STATE).transactions
data = transactions.assign(hour=transactions["tx_datetime"].dt.hour)
CUTOFF = pd.Timestamp("2026-02-12")
print(f"{len(data):,} transactions; columns: {list(data.columns)}")

# %% [markdown]
# ## 2. A customer's history, by hand
#
# A stolen card (fraud scenario 3) spends about five times the usual amount. A single row cannot
# tell "usual" from "unusual"; the customer's **history** can. For each transaction at time *t*:
# how many transactions did this customer make in the window `[t − 7 days, t)`, and what was
# their mean amount?
#
# With pandas: index one customer's amounts by time and roll a 7-day window.
# `closed="left"` makes the window **strictly before** *t*: the transaction itself is not part
# of its own history.

# %%
victim = data.loc[data["fraud_scenario"] == 3, "customer_id"].iloc[0]
one = data[data["customer_id"] == victim].set_index("tx_datetime")["amount"]
history = pd.DataFrame(
    {
        "amount": one,
        "count_7d": one.rolling("7D", closed="left").count(),
        "mean_7d": one.rolling("7D", closed="left").mean(),
        "mean_7d_default": one.rolling("7D").mean(),  # closed="right": includes itself
    }
)
history.round(2).head(8)

# %% [markdown]
# The first row has no history (pandas counts an empty window as NaN; the package writes 0).
# The default window (`closed="right"`) includes the transaction itself: look at the second row,
# a large amount that raises its own "usual amount" and so hides itself.
#
# `compute_windowed_features` computes these columns for every customer at once (a `groupby`
# before the same `rolling`), for windows of 1, 7 and 30 days. Same numbers:

# %%
features = compute_windowed_features(data)
package = features.loc[data["customer_id"] == victim]
assert np.allclose(package["customer_tx_count_7d"], history["count_7d"].fillna(0))
assert np.allclose(package["customer_amount_mean_7d"], history["mean_7d"], equal_nan=True)
print(f"{features.shape[1]} windowed features for {len(features):,} rows")
features.describe().T[["mean", "50%", "max"]].round(2)

# %% [markdown]
# ### Your turn 1 · The 30-day mean amount
#
# For the same customer (`one`), compute the mean amount of the transactions in the 30 days
# strictly before each transaction, as a Series indexed like `one`: `my_mean_30d`.

# %% tags=["solution"]
my_mean_30d = one.rolling("30D", closed="left").mean()
my_mean_30d.head()

# %% tags=["self-check"]
expected = features.loc[data["customer_id"] == victim, "customer_amount_mean_30d"].to_numpy()
assert len(my_mean_30d) == len(one), "❌ one value per transaction of `one`"
assert np.isnan(my_mean_30d.iloc[0]), (
    "❌ the first transaction has no history: is the window strictly before t?"
)
assert np.allclose(my_mean_30d, expected, equal_nan=True), (
    "❌ use a 30-day window, closed on the left"
)
print("✅ Your 30-day mean equals customer_amount_mean_30d of compute_windowed_features.")

# %% [markdown]
# ## 3. A terminal's history, and labels that arrive late
#
# A compromised terminal (fraud scenario 2) produces fraud for 28 days. The signal is the
# terminal's recent frauds, but a fraud is only **known** once its chargeback arrives
# (`label_available_at`). At time *t*, the terminal's known frauds are the transactions with
# `t − 28 days ≤ tx_datetime < t` **and** `label_available_at ≤ t`.
#
# Here is the terminal compromised first during the test period, one transaction of six from
# the day before its first fraud: its known fraud rate stays low for days, then climbs as the
# chargebacks arrive. Exactly what a model in production would have seen.

# %%
data = data.join(features)
first_frauds = data[data["fraud_scenario"] == 2].groupby("terminal_id")["tx_datetime"].min()
terminal = first_frauds[first_frauds >= CUTOFF].index[0]
shown = data[
    (data["terminal_id"] == terminal)
    & (data["tx_datetime"] >= first_frauds[terminal] - pd.Timedelta(days=1))
]
TERMINAL_COLUMNS = ["terminal_tx_count_28d", "terminal_fraud_count_28d", "terminal_fraud_rate_28d"]
shown.set_index("tx_datetime")[["is_fraud", *TERMINAL_COLUMNS]].iloc[::6].head(10).round(3)

# %% [markdown]
# By hand, for the 20th transaction shown: which frauds of the terminal were in the window, and
# which of them were known?

# %%
row = shown.iloc[20]
t = row["tx_datetime"]
window = data[
    (data["terminal_id"] == terminal)
    & (data["tx_datetime"] >= t - pd.Timedelta(days=28))
    & (data["tx_datetime"] < t)
]
in_window = int(window["is_fraud"].sum())
known = int(window.loc[window["label_available_at"] <= t, "is_fraud"].sum())
print(f"at {t}: {len(window)} transactions in the window, {in_window} frauds, {known} known")
assert known == row["terminal_fraud_count_28d"] and len(window) == row["terminal_tx_count_28d"]

# %% [markdown]
# ### Your turn 2 · Known frauds, by hand
#
# Take the **last** transaction of `shown`. Compute by hand `my_known_frauds`: the number of
# frauds at its terminal in the 28 days strictly before it whose label was available at its time.

# %% tags=["solution"]
last = shown.iloc[-1]
past = data[
    (data["terminal_id"] == last["terminal_id"])
    & (data["tx_datetime"] >= last["tx_datetime"] - pd.Timedelta(days=28))
    & (data["tx_datetime"] < last["tx_datetime"])
]
my_known_frauds = int(past.loc[past["label_available_at"] <= last["tx_datetime"], "is_fraud"].sum())
my_known_frauds

# %% tags=["self-check"]
target = shown.iloc[-1]
assert my_known_frauds != int(target["terminal_tx_count_28d"]), "❌ count frauds, not transactions"
assert my_known_frauds == target["terminal_fraud_count_28d"], (
    "❌ window [t - 28 days, t), same terminal, is_fraud == 1 and label_available_at <= t"
)
print(
    f"✅ {my_known_frauds} frauds were known at that moment: the package's terminal_fraud_count_28d."
)

# %% [markdown]
# ## 4. Point-in-time correctness
#
# ### 4.1 Offline equals online
#
# A feature is **point in time** if its value for a transaction is what could have been computed
# *at that moment*. Test it: take the data **as it was known** at one transaction's time
# (`as_known_at`: later rows removed, labels not yet arrived blanked out), recompute the
# features, and compare with the training table. This is also the promise of a feature store:
# the value served online equals the value used for training.

# %%
row_id = shown.index[20]
now = data.loc[row_id, "tx_datetime"]
online = compute_windowed_features(as_known_at(transactions, now)).loc[row_id]
assert online.equals(features.loc[row_id])
pd.DataFrame(
    {"offline (training table)": features.loc[row_id], "online (at scoring time)": online}
).round(3)

# %% [markdown]
# `check_point_in_time` does this for every row at several cutoffs and reports, per feature,
# how many values changed:

# %%
cutoffs = ["2026-01-20", "2026-02-12"]
check_point_in_time(compute_windowed_features, transactions, cutoffs)

# %% [markdown]
# ### 4.2 The same features with Dask
#
# On data that do not fit in memory, the same code runs on Dask partitions: rows are shuffled so
# that each partition holds whole customers (then whole terminals), and each partition runs the
# pandas code. The values are identical. On 120,000 rows and 2 cores Dask is slower (shuffles,
# scheduling); it pays off when pandas runs out of memory.

# %%
features_dask = compute_windowed_features(transactions, backend="dask", npartitions=4)
assert features_dask.equals(features)
features_dask.equals(features)

# %% [markdown]
# ### 4.3 A deliberate leak
#
# A colleague writes the terminal fraud rate in one innocent line:
#
# ```python
# data.groupby("terminal_id").rolling("28D", on="tx_datetime")["is_fraud"].mean()
# ```
#
# Two leaks in one line: the default window **includes the transaction itself** (its own
# label!), and it reads `is_fraud` **whether or not the label was known** at the time.


# %%
def leaky_terminal_rate(frame):
    """The terminal's 28-day fraud rate, the tempting (and wrong) way."""
    ordered = frame.sort_values(["terminal_id", "tx_datetime"])
    rate = ordered.groupby("terminal_id").rolling("28D", on="tx_datetime")["is_fraud"].mean()
    return pd.DataFrame({"terminal_fraud_rate_28d": rate.to_numpy()}, index=ordered.index).loc[
        frame.index
    ]


leaky = data.drop(columns="terminal_fraud_rate_28d").join(leaky_terminal_rate(transactions))
pd.DataFrame(
    {
        "is_fraud": shown["is_fraud"],
        "honest rate": shown["terminal_fraud_rate_28d"],
        "leaky rate": leaky.loc[shown.index, "terminal_fraud_rate_28d"],
    }
).set_index(shown["tx_datetime"]).iloc[::6].head(10).round(3)

# %% [markdown]
# The leaky rate climbs from the first fraud on, days ahead of the honest one: knowledge that
# nobody had yet. `check_point_in_time` catches it (`on_leak="ignore"` only reports; the
# default raises `LeakageError`, which is what a CI check wants):

# %%
check_point_in_time(leaky_terminal_rate, transactions, cutoffs, on_leak="ignore")

# %% [markdown]
# ## 5. The preprocessing pipeline, by hand
#
# Each kind of column gets its own treatment, and the whole chain is **one object**, fitted on
# training rows only and applied unchanged to new rows:
#
# * numbers (`"num"`): fill a missing value with the training median, then standardise; a
#   column with no value at all yet (a terminal's fraud rate before any label arrived) is kept
#   and filled with 0 (`keep_empty_features=True`), so the model's input width never changes;
# * categories (`"cat"`): fill a missing value with the category `"missing"`, then one-hot
#   encode; a category never seen in training becomes all zeros (`handle_unknown="ignore"`).
#   Dense output (`sparse_output=False`): gradient-boosted trees refuse sparse input.
#
# A `ColumnTransformer` sends each list of columns to its pipeline and drops the other columns.

# %%
NUMERIC = ["amount", "hour"]
CATEGORICAL = ["channel", "merchant_category"]
impute = SimpleImputer(strategy="median", keep_empty_features=True)
numeric = Pipeline([("impute", impute), ("scale", StandardScaler())])
categorical = Pipeline(
    [
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
)
preprocessor = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
split = time_split(data, cutoff=CUTOFF, gap_days=7)
train, test = split.train, split.test
encoded = pd.DataFrame(
    preprocessor.fit(train).transform(test.head(3)),
    columns=preprocessor.get_feature_names_out(),
    index=test.index[:3],
)
encoded.T.round(3)

# %% [markdown]
# Four columns became 14: two scaled numbers, four channels and eight merchant categories.
# `build_preprocessor` builds exactly this object, and `build_pipeline` puts it before a model
# as `"preprocess"`, next to `"model"`. The step names are API: they are the keys of a
# hyperparameter grid (lab 05).

# %%
built = build_preprocessor(NUMERIC, CATEGORICAL)
assert repr(built) == repr(preprocessor)
assert np.array_equal(built.fit(train).transform(test.head(3)), encoded.to_numpy())
pipeline = build_pipeline(built, LogisticRegression())
[key for key in pipeline.get_params() if key.startswith(("preprocess__num__", "model__C"))]

# %% [markdown]
# Production data are messier than training data: an amount lost upstream, a channel missing, a
# merchant category that did not exist at training time.

# %%
messy = test.head(3).copy()
messy.loc[messy.index[0], "amount"] = None
messy.loc[messy.index[1], "channel"] = None
messy.loc[messy.index[2], "merchant_category"] = "crypto_exchange"
changed = pd.DataFrame(
    preprocessor.transform(messy), columns=preprocessor.get_feature_names_out(), index=messy.index
).T
changed[(changed != encoded.T).any(axis=1)].round(3)

# %% [markdown]
# The lost amount became the training median (scaled); the missing channel and the new category
# are all zeros. No crash, which also means **no alarm**: monitor missing and unseen values
# (lab 06). A column that is not there at all is a bug, not a value, and the error names it:

# %%
try:
    build_pipeline(build_preprocessor(["amount_eur"], CATEGORICAL), LogisticRegression()).fit(
        train, train["is_fraud"]
    )
except ValueError as err:
    print(err)

# %% [markdown]
# ### Your turn 3 · The ColumnTransformer for the full model
#
# Build **by hand** (with `ColumnTransformer`, `Pipeline`, `SimpleImputer`, `StandardScaler`
# and `OneHotEncoder`) the preprocessor of the full model: numeric columns `NUMERIC` plus every
# windowed feature (`list(features.columns)`), categorical columns `CATEGORICAL`, the step names
# above. Store it, **unfitted**, in `my_preprocessor`.

# %% tags=["solution"]
my_preprocessor = ColumnTransformer(
    [
        (
            "num",
            Pipeline(
                [
                    ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
            ),
            NUMERIC + list(features.columns),
        ),
        (
            "cat",
            Pipeline(
                [
                    ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                    ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                ]
            ),
            CATEGORICAL,
        ),
    ]
)
my_preprocessor

# %% tags=["self-check"]
reference = build_preprocessor(NUMERIC + list(features.columns), CATEGORICAL)
sample = train.sample(2_000, random_state=RANDOM_STATE)
assert isinstance(my_preprocessor, ColumnTransformer), (
    "❌ my_preprocessor must be a ColumnTransformer"
)
assert [name for name, _, _ in my_preprocessor.transformers] == ["num", "cat"], (
    "❌ name the steps 'num' and 'cat'"
)
mine, theirs = my_preprocessor.fit_transform(sample), reference.fit_transform(sample)
assert mine.shape == theirs.shape, (
    f"❌ {mine.shape[1]} output columns instead of {theirs.shape[1]}: check the column lists"
)
assert np.allclose(mine, theirs, equal_nan=True), (
    "❌ same shape, different values: check imputers and scaler"
)
print(f"✅ Your ColumnTransformer equals build_preprocessor's: {mine.shape[1]} columns out.")

# %% [markdown]
# ## 6. What each feature group adds
#
# Same model (gradient-boosted trees), same split, three feature sets: raw columns, plus the
# customer history, plus the terminal history.

# %%
CUSTOMER = [c for c in features.columns if c.startswith("customer_")]
TERMINAL = [c for c in features.columns if c.startswith("terminal_")]
feature_sets = {
    "raw": NUMERIC,
    "raw + customer": NUMERIC + CUSTOMER,
    "raw + customer + terminal": NUMERIC + CUSTOMER + TERMINAL,
}
lift, models = {}, {}
for name, columns in feature_sets.items():
    models[name] = build_pipeline(
        build_preprocessor(columns, CATEGORICAL),
        HistGradientBoostingClassifier(random_state=RANDOM_STATE),
    ).fit(train, train["is_fraud"])
    score = models[name].predict_proba(test)[:, 1]
    lift[name] = {
        "average precision": average_precision_score(test["is_fraud"], score),
        "recall at 80% precision": recall_at_precision(test["is_fraud"], score, min_precision=0.8),
    }
lift = pd.DataFrame(lift).T
assert lift["average precision"].is_monotonic_increasing
assert (
    lift.loc["raw + customer + terminal", "average precision"]
    > 2 * lift.loc["raw", "average precision"]
)
lift.round(3)

# %% [markdown]
# Each group helps; together they more than double the average precision of the raw columns:
# the customer history reveals stolen cards, the terminal history compromised terminals.
#
# ### 6.1 What the leak does to the evaluation
#
# Train the same model twice, on raw columns, the customer history and the terminal's fraud rate:
# once with the honest rate, once with the **leaky** one. Offline, each model is evaluated on
# its own test table. In production the leaky model receives what a server can compute at
# scoring time: the honest, point-in-time values.

# %%
WITH_RATE = NUMERIC + CUSTOMER + ["terminal_fraud_rate_28d"]
leaky_split = time_split(leaky, cutoff=CUTOFF, gap_days=7)


def fit_with_rate(rows):
    """The same pipeline, fitted on ``rows``."""
    model = build_pipeline(
        build_preprocessor(WITH_RATE, CATEGORICAL),
        HistGradientBoostingClassifier(random_state=RANDOM_STATE),
    )
    return model.fit(rows, rows["is_fraud"])


honest_model, leaky_model = fit_with_rate(train), fit_with_rate(leaky_split.train)
leak = pd.Series(
    {
        "honest (offline = served)": average_precision_score(
            test["is_fraud"], honest_model.predict_proba(test)[:, 1]
        ),
        "leaky, offline": average_precision_score(
            leaky_split.test["is_fraud"], leaky_model.predict_proba(leaky_split.test)[:, 1]
        ),
        "leaky, served": average_precision_score(
            test["is_fraud"], leaky_model.predict_proba(test)[:, 1]
        ),
    },
    name="average precision on test",
)
assert leak["leaky, offline"] > leak["honest (offline = served)"] > leak["leaky, served"]
leak.round(3)

# %% [markdown]
# Offline, the leaky feature wins: the evaluation would ship it. Served with the values a
# production system can actually compute, the same model falls below the honest one it beat.
# Offline and online features disagreed, and nothing crashed: run `check_point_in_time` in CI on
# every feature definition.
#
# ## What to remember
#
# * Windows are **strictly before** *t* (`closed="left"`), and a label counts only once known
#   (`label_available_at <= t`).
# * One definition of a feature, checked point in time (`as_known_at`, `check_point_in_time`),
#   serves training and production alike: that is the job of a feature store.
# * A leak looks like a win offline.
# * One `Pipeline`: `preprocess` (`num`, `cat`) then `model`, fitted on training rows only; step
#   names are grid keys. Unknown categories and missing values pass silently: monitor them.
#
# **Next:** lab 05 tunes the pipeline on time-aware folds and tracks every run.

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
# # Lab 07 · Deployment
#
# A model creates value only once its predictions reach a decision. This lab deploys the
# course's fraud model twice: as a **batch job** that scores a day of transactions into a
# table, and as an **online handler** that scores one card payment while the customer waits
# (Huyen, *Designing Machine Learning Systems*, chapter 7).
#
# **You will:** register a model and load it by alias; write the restartable batch-scoring
# loop by hand (chunks, idempotent writes) before `score_day` scales it; write the `/predict`
# handler as a small function (features lookup → score → decision); see why one-row
# `predict_proba` costs milliseconds; convert the pipeline to **ONNX**, check it equals the
# pipeline, and time the three ways of scoring one row side by side. About 45 minutes.

# %%
import json
import logging
import time

import numpy as np
import onnxruntime as ort
import pandas as pd
from fastapi.testclient import TestClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from course.api import create_app
from production.config import RANDOM_STATE
from production.db import read_sql, write_table
from production.feature_store import OnlineFeatureStore
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
)
from production.serving import (
    DECISIONS,
    check_onnx,
    convert_to_onnx,
    load_features,
    load_serving_model,
    probe_rows,
    register_for_serving,
    score_day,
)
from production.simulate import simulate
from production.tracking import configure_tracking, log_run, register_model

threadpool_limits(1)  # one-row predictions: a thread team costs more than it saves
print(configure_tracking())

# %% [markdown]
# ## 1. Batch, online, streaming
#
# | | batch prediction | online prediction |
# |---|---|---|
# | when | on a schedule (nightly, hourly) | on request |
# | latency that matters | the job's duration (minutes) | each request's (milliseconds) |
# | features | anything computable in SQL | what can be looked up in milliseconds |
# | failure mode | stale predictions | a timeout at the checkout |
# | here | `score_day` → `predictions` table | the `/predict` handler of `course.api` |
#
# Fraud needs **online** prediction: a payment is approved or blocked while the terminal waits.
# Batch scoring still has a place: a daily risk report, a review queue, a backfill after a
# model change. Both compute features **the same way as training** (one definition,
# `compute_model_features`; the online store is tested to give the same values).
#
# Three weeks for 300 customers; the tables get a `lab07_` prefix so this lab leaves the
# demo's tables alone.

# %%
data = simulate(n_customers=300, n_terminals=100, n_days=21, random_state=RANDOM_STATE)
transactions = data.transactions
write_table(transactions, "lab07_transactions", mode="replace")
features = load_features("2026-01-01", "2026-01-20", table="lab07_transactions")
X, y = features[list(FEATURE_COLUMNS)], features["is_fraud"]
pipeline = build_pipeline(
    build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
    HistGradientBoostingClassifier(random_state=RANDOM_STATE),
).fit(X, y)
print(f"{len(transactions):,} transactions; trained on {len(X):,} rows")

# %% [markdown]
# ## 2. The registry: a version behind an alias
#
# Every logged model gets a **version** in the registry; an **alias** is a movable name for
# one version. Deployments load `models:/lab07-fraud@champion`, never a file: releasing a
# model is one alias move, and rolling back is another.

# %%
MODEL = "lab07-fraud"
run_id = log_run("lab07", run_name="champion", model=pipeline)
version = register_model(run_id, MODEL, alias="champion")
print(f"{MODEL} v{version} @champion (run {run_id[:8]})")

# %% [markdown]
# ## 3. Batch scoring: the restartable loop, by hand
#
# A batch job scores a day in **chunks** and writes each chunk in one database transaction.
# Two rules make it safe to re-run after a crash:
#
# * **skip what is done**: read which transactions this model version already scored that day;
# * **idempotent writes**: upsert on the key `(tx_date, transaction_id)`, so writing a chunk
#   twice leaves one row per transaction (an id may repeat on another day: the day is in the key).
#
# The loop below crashes after its first chunk when asked to.

# %%
PREDICTIONS = "lab07_predictions"
empty = {
    "tx_date": "datetime64[ns]",
    "transaction_id": "int64",
    "score": "float64",
    "model_version": "str",
}
write_table(pd.DataFrame(columns=list(empty)).astype(empty), PREDICTIONS, mode="replace")
read_sql(f"select count(*) as n_rows from {PREDICTIONS}")

# %% [markdown]
# The loop: read the day's features, drop what is already scored, then score and upsert one
# chunk at a time.


# %%
def score_day_by_hand(day, chunk_size=500, crash_after=None):
    day = pd.Timestamp(day)
    next_day = day + pd.Timedelta(days=1)
    today = load_features(day, next_day, table="lab07_transactions")
    done = read_sql(
        f"select transaction_id from {PREDICTIONS} where tx_date >= :day and tx_date < :next",
        params={"day": f"{day:%Y-%m-%d}", "next": f"{next_day:%Y-%m-%d}"},
    )["transaction_id"]
    todo = today[~today["transaction_id"].isin(done)]
    for n, first in enumerate(range(0, len(todo), chunk_size)):
        chunk = todo.iloc[first : first + chunk_size]
        scores = pipeline.predict_proba(chunk[list(FEATURE_COLUMNS)])[:, 1]
        rows = pd.DataFrame(
            {
                "tx_date": day,
                "transaction_id": chunk["transaction_id"],
                "score": scores,
                "model_version": str(version),
            }
        )
        write_table(rows, PREDICTIONS, mode="upsert", key_cols=["tx_date", "transaction_id"])
        if crash_after == n:
            raise RuntimeError(f"crash after chunk {n}: {first + len(chunk)} rows committed")
    return len(today), len(todo)


try:
    score_day_by_hand("2026-01-21", crash_after=0)
except RuntimeError as err:
    print(err)

# %% [markdown]
# Run it again: it reads what is already scored and scores only the rest. A third run has
# nothing left to do.

# %%
runs = [score_day_by_hand("2026-01-21") for _ in range(2)]
stored = read_sql(f"select count(*) as n, count(distinct transaction_id) as ids from {PREDICTIONS}")
print("(transactions of the day, scored by this run):", runs)
assert stored.loc[0, "n"] == stored.loc[0, "ids"] == runs[0][0] and runs[1][1] == 0
print(stored)

# %% [markdown]
# `score_day` is this loop, scaled up: it loads the model by alias, writes the decision, the
# threshold and the model's identity with every score, and skips what **this model version**
# already scored, so after an alias move a re-run replaces the day's predictions. (It warns
# that this version is served by scikit-learn: section 6 adds the ONNX graph.)

# %%
result = score_day(
    "2026-01-21",
    model_name=MODEL,
    table="lab07_transactions",
    predictions_table="lab07_scored",
    chunk_size=500,
)
pd.Series(vars(result)).to_frame("score_day")

# %% [markdown]
# ## 4. The `/predict` handler, by hand
#
# Online, the transaction arrives alone: its windowed features (the customer's spending over
# the last days, the terminal's recent frauds) are looked up in an **online feature store**
# kept in memory, the model scores the row, a threshold turns the score into a decision, and
# the transaction is recorded so that the next request sees it.

# %%
store = OnlineFeatureStore()
store.add_history(transactions[transactions["tx_datetime"] < "2026-01-21"])
API_FIELDS = [
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "merchant_category",
    "channel",
]
payments = transactions.loc[transactions["tx_datetime"] >= "2026-01-21", API_FIELDS].head(200)
payments = payments.to_dict(orient="records")


def predict(transaction, threshold=0.5):
    features = store.lookup(transaction)  # in-memory history: microseconds
    score = pipeline.predict_proba(pd.DataFrame([features]))[0, 1]
    store.record(transaction)
    decision = DECISIONS[1] if score >= threshold else DECISIONS[0]
    return {"transaction_id": transaction["transaction_id"], "score": score, "decision": decision}


predict(payments[0])

# %% [markdown]
# `course.api` wraps this handler in a FastAPI app: request validation (pydantic), the model
# loaded by alias and watched for alias moves, metrics, and a store filled from the database.
#
# ## 5. Why one row through `predict_proba` costs milliseconds
#
# A call pays fixed costs that have nothing to do with the row: scikit-learn **validates its
# input** (a DataFrame is checked, columns selected and converted for each transformer of the
# `ColumnTransformer`, outputs stacked), and the gradient-boosting model **sets up each of its
# trees** (a parallel region per tree, arrays allocated) even for one row. On 10,000 rows these
# costs vanish; on one row they are the whole bill.

# %%
row = pd.DataFrame([store.lookup(payments[1])])
started = time.perf_counter()
for _ in range(20):
    pipeline.predict_proba(row)
one_row_ms = (time.perf_counter() - started) / 20 * 1000
started = time.perf_counter()
pipeline.predict_proba(X.head(10_000))
per_row_batch_ms = (time.perf_counter() - started) / 10_000 * 1000
print(f"one row: {one_row_ms:.2f} ms; per row in a batch of 10,000: {per_row_batch_ms:.4f} ms")

# %% [markdown]
# ## 6. ONNX: the same model as a graph for a fast runtime
#
# **ONNX** (Open Neural Network Exchange) describes a model as a graph of standard operators
# (impute, scale, one-hot encode, tree ensemble). **ONNX Runtime** executes such a graph in
# C++ with no per-call Python validation. `skl2onnx` converts the fitted pipeline; the
# course's `convert_to_onnx` handles its details (text columns, missing categories, the
# preprocessing in float64 as scikit-learn does). The graph takes two matrices: `numbers`
# (float64) and `text` (strings), their column order stored in the model's metadata: one call
# feeds two arrays, not one per column.

# %%
onnx_model = convert_to_onnx(pipeline, X.head())
session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
columns = json.loads(session.get_modelmeta().custom_metadata_map["columns"])
print(f"{len(onnx_model) / 1e3:.0f} kB;", [(i.name, i.type, i.shape) for i in session.get_inputs()])
print(columns)


def onnx_feed(frame):
    return {
        "numbers": frame[columns["numbers"]].to_numpy(np.float64),
        "text": frame[columns["text"]].to_numpy(object),
    }


session.run(None, onnx_feed(row))[1]  # label, then probabilities of [legit, fraud]

# %% [markdown]
# A converted model is only as good as its **equality check**: score the same rows both ways,
# extreme ones included (zero and huge amounts, missing values, categories never seen), and
# measure the largest difference. ONNX Runtime's trees compare in float32, so expect about
# 1e-6, not 0; the registration path refuses a graph above 1e-5 and serves with scikit-learn.

# %%
probes = probe_rows(pipeline, X, n_rows=10_000, random_state=RANDOM_STATE)
difference = check_onnx(onnx_model, pipeline, probes)
print(f"max |onnx - sklearn| on 10,000 rows: {difference:.1e}")
assert difference < 1e-5

# %% [markdown]
# At registration, `register_for_serving` converts, checks and logs the graph beside the
# scikit-learn model of the run; `load_serving_model` then scores through ONNX Runtime, or
# through scikit-learn with the reason when there is no checked graph.

# %%
print(register_for_serving(pipeline, X, run_id=run_id))
served = load_serving_model(MODEL, "champion")
print(f"v{served.version}: backend {served.backend}, fallback reason: {served.fallback_reason}")

# %% [markdown]
# ## 7. The three ways of scoring one row, side by side
#
# `predict_proba` on a one-row DataFrame, the ONNX Runtime session, and the whole API call
# (the FastAPI app in this process: validation, feature lookup, ONNX, decision, metrics).


# %%
def per_call_ms(function, items):
    started = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - started) / len(items) * 1000


records = [store.lookup(p) for p in payments[2:102]]
api_store = OnlineFeatureStore()
api_store.add_history(transactions[transactions["tx_datetime"] < "2026-01-21"])
bodies = [{**p, "tx_datetime": p["tx_datetime"].isoformat()} for p in payments[102:152]]
with TestClient(create_app(model=served, store=api_store, reload_interval=0)) as client:
    logging.getLogger("course.api").setLevel("WARNING")  # no log line per request here
    api_ms = per_call_ms(lambda body: client.post("/predict", json=body), bodies)
    assert client.post("/predict", json=bodies[0]).status_code == 200
latency = pd.Series(
    {
        "predict_proba, 1-row DataFrame": per_call_ms(
            lambda r: pipeline.predict_proba(pd.DataFrame([r])), records[:20]
        ),
        "ONNX Runtime (ServingModel)": per_call_ms(lambda r: served.score_records([r]), records),
        "API call (in process)": api_ms,
    },
    name="ms per row",
)
latency.round(3).to_frame()

# %% [markdown]
# The model is no longer the bill: ONNX Runtime scores a row in tens of microseconds, and most
# of an API call is HTTP and framework. `scripts/bench_serving.py` measures the service under
# load (uvicorn, 2 workers): the API on ONNX Runtime, the API on plain scikit-learn, and
# `mlflow models serve`, side by side.

# %% [markdown]
# ## Your turn
#
# ### Your turn 1 · Score a second day with your loop
# Use `score_day_by_hand` to score `"2026-01-20"`, then run it again. Define `second_day` as
# the list of the two results.

# %% tags=["solution"]
second_day = [score_day_by_hand("2026-01-20") for _ in range(2)]

# %% tags=["self-check"]
n_day = int((transactions["tx_datetime"].dt.normalize() == "2026-01-20").sum())
assert second_day[0][0] == n_day, "❌ the first run should see every transaction of the day"
assert second_day[1][1] == 0, "❌ the second run should find nothing left to score"
print("✅ a re-run of your loop scores nothing twice")

# %% [markdown]
# ### Your turn 2 · A handler with a stricter threshold
# Write `my_predict(transaction)`: the same steps as `predict`, but it **blocks** from a score
# of 0.2, scores through `served.score_records` (ONNX Runtime) and does not record the
# transaction (a dry run).


# %% tags=["solution"]
def my_predict(transaction):
    score = served.score_records([store.lookup(transaction)])[0]
    return {"score": score, "decision": DECISIONS[1] if score >= 0.2 else DECISIONS[0]}


# %% tags=["self-check"]
answers = [my_predict(p) for p in payments[160:200]]
n_before = store.n_rows
assert all((a["decision"] == "block") == (a["score"] >= 0.2) for a in answers), "❌ threshold 0.2"
assert store.n_rows == n_before, "❌ a dry run must not record the transaction"
print("✅ your handler decides at 0.2 and leaves the store unchanged")

# %% [markdown]
# ### Your turn 3 · Convert and check another model
# Fit a `LogisticRegression(max_iter=1000)` on the same preprocessing as `my_linear`, convert
# it with `convert_to_onnx` and define `my_difference` with `check_onnx` on `probes`.

# %% tags=["solution"]
my_linear = build_pipeline(
    build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
    LogisticRegression(max_iter=1000),
).fit(X, y)
my_difference = check_onnx(convert_to_onnx(my_linear, X.head()), my_linear, probes)

# %% tags=["self-check"]
assert my_difference < 1e-5, f"❌ the graph differs by {my_difference:.1e}; convert my_linear"
print(f"✅ ONNX equals your logistic regression within {my_difference:.0e}")

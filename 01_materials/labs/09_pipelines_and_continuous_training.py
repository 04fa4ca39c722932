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
# # Lab 09 · Pipelines, data versions and continuous training
#
# A model in production is never finished: data keep arriving, the world drifts, and the
# model has to be retrained, checked and released again, many times, without anyone
# re-running cells by hand. Huyen calls this **continual learning** (*Designing Machine
# Learning Systems*, chapters 9 and 10): retraining on a **trigger** (a schedule, drift, a
# drop in performance), either from scratch on a recent window (**stateless** retraining,
# what this lab does) or by updating the current model with the new data only
# (**stateful**, fine-tuning). It needs three pieces of infrastructure:
#
# * an **orchestrator** that runs the pipeline as a DAG of tasks, with retries and caching;
# * **data versions**, so that every model says which data it was trained on, and that data
#   can be restored;
# * a **gate** that promotes a retrained model only if it beats the champion, and a rollback.
#
# **You will:** build a small training DAG with Prefect and watch it retry and cache; version a
# data lake with DVC and reproduce a past model from its MLflow run; and retrain on a drifted
# week, gate the candidate, move the alias and roll it back. Three "Your turn" exercises.
# About 50 minutes.

# %%
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from prefect import Task, flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE, get_settings
from production.data import export_raw_days, read_lake, run_pipeline
from production.db import read_table, write_table
from production.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.monitoring import drift_report
from production.serving import load_features
from production.simulate import simulate
from production.tracking import (
    configure_tracking,
    log_model,
    log_training_data,
    register_model,
    set_alias,
    training_data,
)

threadpool_limits(limits=1, user_api="openmp")  # one thread per model on a small machine
lab_dir = get_settings().data_dir / "lab09"  # everything this lab writes goes under lab09/
print(configure_tracking())

# %% [markdown]
# ## 1. A DAG by hand with Prefect
#
# A pipeline is a **DAG** (directed acyclic graph) of steps: each step reads what the steps
# before it produced. An **orchestrator** runs the DAG: in order, on a schedule or a trigger,
# retrying a step that failed for a passing reason (a busy database, a network blip), skipping
# a step whose inputs did not change (**caching**), and recording every run so that you can
# see what happened. Airflow, Dagster, Kubeflow Pipelines and Prefect all do this; this course
# uses **Prefect** because a flow is plain Python (decorated functions) and runs on a laptop
# with nothing to install or start.
#
# > **On a laptop:** the first flow run in a kernel starts a temporary Prefect server in the
# > background (about 15–25 s; the cell below waits up to 3 minutes for it). Run `prefect server start` in a terminal (and
# > `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`) to get the UI, where every
# > flow run, task and retry of this lab appears.
#
# A **cache policy** decides when a task can reuse a stored result: `INPUTS + TASK_SOURCE`
# reuses it when the task is called with the same arguments *and* its code did not change.
# The keys and results go to a folder of the lab (emptied here, so the first run computes):

# %%
cache_dir = lab_dir / "prefect"
shutil.rmtree(cache_dir, ignore_errors=True)
CACHE = (INPUTS + TASK_SOURCE).configure(key_storage=cache_dir / "keys")
RESULTS = cache_dir / "results"
body_runs = {}  # how many times each task's body ran: a cached task does not run
fail_next = {"ingest": 1}  # make `ingest` fail once, as a busy database would
print(f"cache keys in {CACHE.key_storage}")

# %% [markdown]
# Four tasks, the course's own steps on small data: land a few simulated days as raw CSV
# files (dirt included), ingest them into the lake (lab 02's `run_pipeline`, bronze → silver),
# compute the features (lab 04) and train a model (lab 05). `ingest` works on the shared lake,
# where a lock held by another job makes it fail for a passing reason: it gets `retries`.


# %%
@task(cache_policy=CACHE, result_storage=RESULTS)
def land_raw(n_days: int, random_state: int) -> int:
    body_runs["land_raw"] = body_runs.get("land_raw", 0) + 1
    raw = export_raw_days(
        n_customers=200, n_terminals=60, n_days=n_days, random_state=random_state, data_dir=lab_dir
    )
    return len(raw.transaction_files)


@task(retries=2, retry_delay_seconds=0.1, cache_policy=CACHE, result_storage=RESULTS)
def ingest(n_files: int) -> pd.DataFrame:
    body_runs["ingest"] = body_runs.get("ingest", 0) + 1
    if fail_next["ingest"]:
        fail_next["ingest"] -= 1
        raise ConnectionError("the lake is locked by another job; try again")
    last = pd.Timestamp("2026-01-01") + pd.Timedelta(days=n_files - 1)
    run_pipeline("2026-01-01", last, data_dir=lab_dir, load=False, show_progress=False)
    return read_lake("silver", data_dir=lab_dir)


# %% [markdown]
# The other two tasks compute the features of lab 04 and fit lab 05's model on them.


# %%
@task(cache_policy=CACHE, result_storage=RESULTS)
def build_features(silver: pd.DataFrame) -> pd.DataFrame:
    body_runs["build_features"] = body_runs.get("build_features", 0) + 1
    return compute_model_features(silver).assign(is_fraud=silver["is_fraud"].to_numpy())


@task(cache_policy=CACHE, result_storage=RESULTS)
def train(features: pd.DataFrame, random_state: int):
    body_runs["train"] = body_runs.get("train", 0) + 1
    model = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(max_iter=50, random_state=random_state),
    )
    return model.fit(features[list(FEATURE_COLUMNS)], features["is_fraud"])


# %% [markdown]
# The `@flow` wires them: calling a task inside a flow runs it (with its retries and cache)
# and records a **task run**. `return_state=True` returns the task's final *state*
# (`Completed`, `Cached`, `Failed`...) instead of its value; `.result()` gives the value.


# %%
@flow(name="lab09-training")
def training_flow(n_days: int = 7, random_state: int = RANDOM_STATE) -> dict:
    states = {"land_raw": land_raw(n_days, random_state, return_state=True)}
    states["ingest"] = ingest(states["land_raw"].result(), return_state=True)
    states["build_features"] = build_features(states["ingest"].result(), return_state=True)
    states["train"] = train(states["build_features"].result(), random_state, return_state=True)
    return states


def task_table(states: dict, runs_before: dict) -> pd.DataFrame:
    """One row per task: its final state and how many times its body ran in this flow run."""
    rows = [
        {
            "task": name,
            "state": state.name,
            "body runs": body_runs.get(name, 0) - runs_before.get(name, 0),
        }
        for name, state in states.items()
    ]
    return pd.DataFrame(rows).set_index("task")


started, before = time.perf_counter(), dict(body_runs)
with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180}):
    first = training_flow()  # the first run may start a temporary server: wait for it
print(f"first run: {time.perf_counter() - started:.1f} s")
task_table(first, before)

# %% [markdown]
# `ingest` ran twice: its first attempt raised, Prefect retried it, the second attempt
# succeeded, and the flow went on. Run the same flow again: every input and every task's code
# are unchanged, so every task is **Cached** and no body runs.

# %%
started, before = time.perf_counter(), dict(body_runs)
second = training_flow()
print(f"second run: {time.perf_counter() - started:.1f} s")
assert all(state.name == "Cached" for state in second.values())
task_table(second, before)

# %% [markdown]
# One more day of data changes `land_raw`'s input, so every task downstream runs again. Note
# what the cache key is made of: the *arguments*. `ingest` is called with a number of files,
# not with the files: if someone rewrote a raw file in place, the key would not change and a
# stale result would be served. A key should fingerprint the **data** itself.

# %%
before = dict(body_runs)
third = training_flow(n_days=8)
task_table(third, before)

# %% [markdown]
# ### Your turn 1 · A cache key that changes when the data change
#
# Prefect accepts a `cache_key_fn(context, parameters)` instead of a policy: it returns a
# string, and a task with the same key reuses the stored result. Write
# `my_cache_key(context, parameters)` that returns the SHA-256 hex digest of the **content**
# of the DataFrame `parameters["frame"]` (hint: `pd.util.hash_pandas_object(frame,
# index=False).to_numpy().tobytes()`), so that the same rows give the same key and any changed
# value a new one. It would be used as `@task(cache_key_fn=my_cache_key)`.


# %% tags=["solution"]
def my_cache_key(context, parameters):
    """The SHA-256 of the rows of parameters['frame']: changes whenever a value changes."""
    row_hashes = pd.util.hash_pandas_object(parameters["frame"], index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()


# %% tags=["self-check"]
_silver = read_lake("silver", data_dir=lab_dir)
_key = my_cache_key(None, {"frame": _silver})
assert isinstance(_key, str) and len(_key) == 64, "❌ return hashlib.sha256(...).hexdigest()"
assert my_cache_key(None, {"frame": _silver.copy()}) == _key, "❌ same rows, same key"
_changed = _silver.copy()
_changed.loc[0, "amount"] += 0.01
assert my_cache_key(None, {"frame": _changed}) != _key, "❌ a changed amount must change the key"
print(f"✅ Your key follows the data: {_key[:12]}... for {len(_silver):,} rows.")

# %% [markdown]
# The course pipeline is the same idea at full size: `course.flows.course_pipeline` is a
# Prefect flow whose tasks are the demo's stages (ingest → features → train/tune → gate →
# batch score → monitor), with retries on the I/O tasks and caching of unchanged stages.
# `production demo` runs it (a couple of minutes); here we only list its tasks:

# %%
import course.flows

course_tasks = [name for name, obj in vars(course.flows).items() if isinstance(obj, Task)]
print(f"{course.flows.course_pipeline.name!r} (flow) runs the tasks: {', '.join(course_tasks)}")

# %% [markdown]
# ## 2. Data versions with DVC
#
# A model is reproducible only if its **data** are: the code is in git, but a lake of parquet
# files does not belong there. **DVC** (Data Version Control) keeps large files out of git:
# `dvc add lake` moves the files into a content-addressed cache and writes a small pointer,
# `lake.dvc` (an MD5 hash of the folder), that git versions; `dvc push` copies the data to a
# **remote** (here a folder; in a company, S3 or a shared drive); `dvc checkout` puts back the
# files the current `lake.dvc` points at. A git revision then names a version of the data.
#
# Everything happens in a **scratch git repository** in a temporary folder, never in the
# course repository. Commands run through `subprocess` with `sys.executable -m dvc`, which
# works the same on Windows; each prints its first lines of output.

# %%
# deleted at the end of the lab (or when the kernel stops)
scratch_dir = tempfile.TemporaryDirectory(prefix="lab09-dvc-", ignore_cleanup_errors=True)
remote_dir = tempfile.TemporaryDirectory(prefix="lab09-dvc-remote-", ignore_cleanup_errors=True)
scratch, remote = Path(scratch_dir.name), Path(remote_dir.name)
GIT = ["git", "-c", "user.name=Lab 09", "-c", "user.email=lab09@example.com"]
DVC = [sys.executable, "-m", "dvc"]


def run(*command, lines=2):
    """Run a command in the scratch repository; print it and its first output lines."""
    env = os.environ | {"DVC_NO_ANALYTICS": "1"}  # no usage report sent home
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, check=True)
    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    shown = [c for c in command if c not in GIT[1:5] and c != sys.executable]
    print("$", " ".join(shown).replace("-m dvc", "dvc"), *output[:lines], sep="\n  ")
    return done.stdout.strip()


run(*GIT, "init", "--quiet", "--initial-branch=main")
run(*DVC, "init", "--quiet")
run(*DVC, "remote", "add", "--default", "storage", str(remote))
run(*GIT, "commit", "--quiet", "-m", "Initialise DVC")
print(f"scratch repository: {scratch}")

# %% [markdown]
# The lake: simulated transactions, one parquet file per day, like lab 02's silver layer.
# Six weeks are simulated once (with drift from 29 January, for section 3); the lake's first
# version holds the first two weeks.

# %%
transactions = simulate(
    n_customers=300, n_terminals=100, n_days=42, drift_start="2026-01-29", random_state=RANDOM_STATE
).transactions
lake = scratch / "lake"


def write_lake_days(first, last):
    """Write the silver days first..last (inclusive) as lake/date=YYYY-MM-DD/part-0.parquet."""
    days = transactions["tx_datetime"].dt.normalize()
    for day in pd.date_range(first, last):
        folder = lake / f"date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        transactions[days == day].to_parquet(folder / "part-0.parquet", index=False)


def read_scratch_lake():
    """Read every partition of the scratch lake back, in a stable order."""
    frame = pd.concat(pd.read_parquet(p) for p in sorted(lake.glob("date=*/part-0.parquet")))
    return frame.sort_values("transaction_id", ignore_index=True)


# %% [markdown]
# **Lineage: which data trained this model?**
#
# Each training run records its training data in MLflow as a **dataset input**: a name, a
# **digest** (a hash of the content: the same rows give the same digest, whatever the files)
# and a **source** (where the data came from: here the lake at DVC's hash of the folder). The
# git revision that holds `lake.dvc` goes in the input's tags. `mlflow.data.from_pandas`
# builds the dataset, `mlflow.log_input` attaches it to the run. (MLflow keeps one dataset
# per name and digest in an experiment: the same rows logged again share the first source.)


# %%
def frame_digest(frame):
    """SHA-256 of the rows' content (not of the files), shortened."""
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def fit_model(frame):
    """The course pipeline, small and seeded, on a lake's transactions."""
    model = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(max_iter=50, random_state=RANDOM_STATE),
    )
    return model.fit(compute_model_features(frame), frame["is_fraud"])


def train_and_log(rev):
    """Train on the lake as it is on disk; log the model and its data (digest, source)."""
    frame = read_scratch_lake()
    md5 = yaml.safe_load((scratch / "lake.dvc").read_text())["outs"][0]["md5"]
    source = get_dataset_source_from_json(json.dumps({"uri": f"dvc://lake@{md5}"}), "local")
    mlflow.set_experiment("lab09")
    with mlflow.start_run(run_name=f"lake@{rev}") as mlflow_run, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Hint: Inferred schema")  # advice for model inputs
        dataset = mlflow.data.from_pandas(
            frame, source=source, name="scratch_lake", digest=frame_digest(frame)
        )
        mlflow.log_input(dataset, context="training", tags={"git_rev": rev})
        log_model(fit_model(frame))
    return mlflow_run.info.run_id


# %% [markdown]
# Version 1: write the first two weeks, `dvc add`, commit the pointer, push the data, and
# train a model on it.

# %%
write_lake_days("2026-01-01", "2026-01-14")
run(*DVC, "add", "lake")
run(*GIT, "add", "lake.dvc", ".gitignore")
run(*GIT, "commit", "--quiet", "-m", "Lake v1: 1-14 January")
run(*DVC, "push")
rev_v1 = run(*GIT, "rev-parse", "--short", "HEAD")
run_v1 = train_and_log(rev_v1)
print(Path(scratch / "lake.dvc").read_text())

# %% [markdown]
# Git holds only `lake.dvc`: the `md5` of the folder is the data version; the files are in
# `.dvc/cache` and in the remote. A week later, more days have arrived: version 2.

# %%
write_lake_days("2026-01-15", "2026-01-21")
run(*DVC, "add", "lake")
run(*GIT, "commit", "--quiet", "-am", "Lake v2: 1-21 January")
run(*DVC, "push")
rev_v2 = run(*GIT, "rev-parse", "--short", "HEAD")
run(*GIT, "log", "--oneline", lines=3)
run_v2 = train_and_log(rev_v2)

print(pd.DataFrame({"git rev": [rev_v1, rev_v2], "run": [run_v1[:8], run_v2[:8]]}))

# %% [markdown]
# ### Reproduce a past model
#
# Months later, someone asks why the first model scored a payment as it did. Start from its
# MLflow run only: the run's dataset input gives the digest and the source, the git revision
# gives `lake.dvc` as it was, and `dvc checkout` restores the files it points at.

# %%
training_input = MlflowClient().get_run(run_v1).inputs.dataset_inputs[0]
logged = training_input.dataset
rev = {tag.key: tag.value for tag in training_input.tags}["git_rev"]
source = json.loads(logged.source)["uri"]
print(f"dataset {logged.name!r}, digest {logged.digest}, source {source}, git rev {rev}")
run(*GIT, "checkout", rev, "--", "lake.dvc")
run(*DVC, "checkout")
restored = read_scratch_lake()
print(f"restored {len(restored):,} rows, {restored['tx_datetime'].dt.date.nunique()} days")
assert frame_digest(restored) == logged.digest

# %% [markdown]
# The restored data have the logged digest. Retrained with the same code and `random_state`,
# the model is the same: its scores equal those of the model stored in the run.

# %%
first_model = mlflow.sklearn.load_model(f"runs:/{run_v1}/model")
X_restored = compute_model_features(restored)
rescored = fit_model(restored).predict_proba(X_restored)[:, 1]
assert np.array_equal(rescored, first_model.predict_proba(X_restored)[:, 1])
print(f"identical scores on {len(X_restored):,} rows; mean {rescored.mean():.4f}")

# %% [markdown]
# In the package, `production.tracking.log_training_data(frame, source=..., run_id=...)` logs
# a run's training data the same way (a content digest, the source, tags such as the git
# revision), and `training_data(model_name, version)` goes back from a **registered model
# version** to them. Continuous training (`course.retrain`, section 3) calls the first for
# every model it trains.

# %%
lake_version = register_model(run_v1, "lab09-lake")
print(training_data("lab09-lake", lake_version))

# %% [markdown]
# ### Your turn 2 · Which data version trained this model?
#
# From the MLflow run `run_v2` **only** (not from the variables of the cells above), find the
# data its model was trained on: store the git revision of the lake in `my_rev` and the
# dataset's digest in `my_digest`. With them, `git checkout my_rev -- lake.dvc` and
# `dvc checkout` would restore that data.

# %% tags=["solution"]
my_input = MlflowClient().get_run(run_v2).inputs.dataset_inputs[0]
my_rev = {tag.key: tag.value for tag in my_input.tags}["git_rev"]
my_digest = my_input.dataset.digest
print(f"run {run_v2[:8]} trained on lake@{my_rev}, digest {my_digest}")

# %% tags=["self-check"]
assert my_rev == rev_v2, f"❌ run_v2 was trained on the second version, {rev_v2}"
_v2 = transactions[transactions["tx_datetime"] < "2026-01-22"]
assert my_digest == frame_digest(_v2.sort_values("transaction_id", ignore_index=True)), (
    "❌ my_digest: the digest of the dataset input of run_v2 (dataset_inputs[0].dataset.digest)"
)
print(f"✅ Lake version {my_rev} ({my_digest}) trained the model of run {run_v2[:8]}.")

# %% [markdown]
# ## 3. Continuous training: trigger, retrain, gate, roll back
#
# The model of `run_v2`, trained on 1–21 January, becomes the **champion** of
# `lab09-fraud`, the model production loads by alias. The simulated world drifts from
# 29 January on. The transactions reach the database as they happen; each label arrives
# later (`label_available_at`: a chargeback after 1–14 days, a legitimate payment is final
# after 7). Today is 12 February.
#
# This section plays production in a table of its own, `lab09_transactions`, so that the
# course's `transactions` table is left alone (on SQLite or PostgreSQL, as configured).

# %%
MODEL, TABLE = "lab09-fraud", "lab09_transactions"
champion_version = register_model(run_v2, MODEL, alias="champion")
write_table(transactions, TABLE, mode="replace")
as_of = pd.Timestamp("2026-02-12")
known = load_features("2026-01-01", as_of, table=TABLE)  # lab 07: features as then known
champion = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
print(f"{MODEL} v{champion_version} @champion; {len(known):,} transactions before {as_of:%Y-%m-%d}")

# %% [markdown]
# **The trigger.** Drift needs no labels: compare the champion's training period with the
# last week, features and score (lab 06's PSI; above 0.2 is a large shift).

# %%
X_known, when = known[list(FEATURE_COLUMNS)], known["tx_datetime"]
reference = X_known[when < "2026-01-22"]  # what the champion was trained on
current = X_known[when >= as_of - pd.Timedelta(days=7)]  # the last week
reference = reference.assign(score=champion.predict_proba(reference)[:, 1])
current = current.assign(score=champion.predict_proba(current)[:, 1])
report = drift_report(reference, current)
score_psi = report.set_index("feature").loc["score", "psi"]
print(f"score PSI {score_psi:.2f}; drifted features: {int(report['drifted'].sum())}")
report.sort_values("psi", ascending=False).head(5)

# %% [markdown]
# Drift confirms what the dates say: the score moved a lot. A policy (lab 08's
# `retraining_decision`) turns such a report into a **trigger**; schedules (every night) and
# a measured drop in performance are the other usual triggers.
#
# **Retrain** (stateless: from scratch) a clone of the champion on the latest **labelled**
# window. Labels known by now are those with `label_available_at <= as_of`; a legitimate
# payment is confirmed only after 7 days, so the last complete day is a week ago. The three
# most recent complete days are kept apart to **evaluate**, the 21 days before them train.

# %%
complete_until = as_of - pd.Timedelta(days=7)  # before it, every label has had time to arrive
eval_start = complete_until - pd.Timedelta(days=3)
train_start = eval_start - pd.Timedelta(days=21)
labelled = known[known["label_available_at"] <= as_of]
in_train = labelled["tx_datetime"].between(train_start, eval_start, inclusive="left")
in_eval = labelled["tx_datetime"].between(eval_start, complete_until, inclusive="left")
X_eval, y_eval = labelled.loc[in_eval, list(FEATURE_COLUMNS)], labelled.loc[in_eval, "is_fraud"]
candidate = clone(champion).fit(
    labelled.loc[in_train, list(FEATURE_COLUMNS)], labelled.loc[in_train, "is_fraud"]
)
print(
    f"train {train_start:%d %b}-{eval_start:%d %b}: {in_train.sum():,} rows; "
    f"evaluate {eval_start:%d %b}-{complete_until:%d %b}: {in_eval.sum():,} rows, {y_eval.sum()} frauds"
)

# %% [markdown]
# **The gate.** Both models are scored on the *same* recent days; the candidate is promoted
# only if its average precision beats the champion's by more than a margin (a gain smaller
# than the noise of a few days of frauds is not worth a release).

# %%
MIN_IMPROVEMENT = 0.01
scores = {
    "champion": average_precision_score(y_eval, champion.predict_proba(X_eval)[:, 1]),
    "candidate": average_precision_score(y_eval, candidate.predict_proba(X_eval)[:, 1]),
}
gain = scores["candidate"] - scores["champion"]
promote = gain > MIN_IMPROVEMENT
print(
    f"AP champion {scores['champion']:.3f}, candidate {scores['candidate']:.3f}: gain "
    f"{gain:+.3f} {'>' if promote else '<='} margin {MIN_IMPROVEMENT} -> "
    f"{'promote' if promote else 'keep the champion'}"
)

# %% [markdown]
# **Promote.** The candidate is logged and registered like any model, with its training data
# (section 2, here with the package's `log_training_data`: the rows, the table and the
# window); the old champion keeps an alias `previous` for the rollback, and `champion`
# moves. Every decision, promoted or not, is **recorded**: here rows of a DataFrame, in the
# course a database table and tags on the model version.

# %%
with mlflow.start_run(run_name=f"candidate {as_of:%Y-%m-%d}") as candidate_run:
    mlflow.log_metrics({"average_precision": scores["candidate"]})
    log_model(candidate)
window = f"start={train_start:%Y-%m-%d}&end={eval_start:%Y-%m-%d}&labels_as_of={as_of:%Y-%m-%d}"
training = labelled[in_train].reset_index(drop=True)
log_training_data(training, source=f"db://transactions?{window}", run_id=candidate_run.info.run_id)
candidate_version = register_model(candidate_run.info.run_id, MODEL, alias="challenger")
if promote:
    set_alias(MODEL, "previous", champion_version)
    set_alias(MODEL, "champion", candidate_version)
decisions = [
    {
        "as_of": as_of,
        "trigger": "drift",
        "candidate": candidate_version,
        "champion": champion_version,
        "candidate AP": round(scores["candidate"], 3),
        "champion AP": round(scores["champion"], 3),
        "decision": "promoted" if promote else "kept",
    }
]
print(f"@champion -> v{MlflowClient().get_model_version_by_alias(MODEL, 'champion').version}")
pd.DataFrame(decisions)

# %% [markdown]
# **Roll back.** The next morning, the new champion blocks too many good customers in one
# region (something no offline metric showed). Rolling back is one alias move: production
# loads `models:/lab09-fraud@champion` again and gets the previous version. No retraining,
# no new image. The rollback is a decision too, recorded with its reason.

# %%
previous = MlflowClient().get_model_version_by_alias(MODEL, "previous").version
set_alias(MODEL, "champion", previous)
decisions.append(
    {"as_of": pd.Timestamp("2026-02-13"), "trigger": "manual", "candidate": previous,
     "champion": candidate_version, "decision": "rolled_back"}
)  # fmt: skip
assert str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == champion_version
pd.DataFrame(decisions)

# %% [markdown]
# ### Your turn 3 · The gate's decision rule
#
# Write `my_gate(candidate_score, champion_score, min_improvement=0.01)` that returns
# `"promoted"` when the candidate's score beats the champion's by **more** than
# `min_improvement`, else `"kept"`; a champion without a score (`None`: there is no champion
# yet) always loses. Then store in `my_verdict` the decision for this section's scores with a
# margin of 0.3 (a cautious team that wants a large gain).


# %% tags=["solution"]
def my_gate(candidate_score, champion_score, min_improvement=0.01):
    """Promote only on a gain larger than the margin (or when there is no champion)."""
    if champion_score is None or candidate_score - champion_score > min_improvement:
        return "promoted"
    return "kept"


my_verdict = my_gate(scores["candidate"], scores["champion"], min_improvement=0.3)
print(my_verdict)

# %% tags=["self-check"]
assert my_gate(0.80, 0.70) == "promoted", "❌ a gain of 0.10 > 0.01 promotes"
assert my_gate(0.705, 0.70) == "kept", "❌ a gain of 0.005 is inside the margin"
assert my_gate(0.75, 0.5, min_improvement=0.25) == "kept", "❌ the gain must be MORE than it"
assert my_gate(0.40, None) == "promoted", "❌ no champion: the candidate wins"
assert my_verdict == ("promoted" if gain > 0.3 else "kept"), "❌ my_verdict: margin 0.3"
print(f"✅ Your gate: a gain of {gain:+.3f} with a margin of 0.3 -> {my_verdict}.")

# %% [markdown]
# ### The same loop in the course: `course.retrain`
#
# `course.retrain.continuous_training` is this section as a Prefect flow: read the latest
# labelled window, retrain a clone of the champion, score both on the same recent days, gate,
# move the aliases (`previous`, `champion`), and record the decision as tags on the model
# version and a row of the table `training_decisions`; `rollback(model_name, reason=...)` moves
# `champion` back. `course.flows.course_pipeline` calls it when the monitor flags drift, and
# serves it on a daily schedule.

# %%
from course.retrain import continuous_training, rollback

decision = continuous_training(as_of, trigger="drift", model_name=MODEL, table=TABLE)
print(f"{decision.decision}: {decision.reason}")
rollback(MODEL, reason="lab 09: back to the January model")
read_table("training_decisions").tail(2)[
    ["trigger", "candidate_version", "champion_version", "decision", "reason"]
]

# %% [markdown]
# Last, delete the scratch repository of section 2 and its remote (explore them in a terminal
# first if you like: `cd` to the printed folder, then `git log`, `dvc status`).

# %%
scratch_dir.cleanup()
remote_dir.cleanup()
print(f"deleted {scratch} and {remote}: {not scratch.exists() and not remote.exists()}")

# %% [markdown]
# ## What to remember
#
# * An orchestrator runs the pipeline as a DAG of tasks: retries for the I/O that fails for
#   passing reasons, caching keyed on the inputs, the code and, best, a fingerprint of the
#   data; every run recorded. Prefect flows are Python functions; Airflow, Dagster and
#   Kubeflow do the same with more infrastructure.
# * Version data like code: DVC keeps the files in a content-addressed cache and a remote,
#   git keeps a small pointer; every training run logs its dataset (digest, source, revision),
#   so a model leads back to the exact data that made it.
# * Continuous training = a trigger (schedule, drift, performance), stateless retraining on the
#   latest *labelled* window, a gate on the same recent data with a margin, an alias move, a
#   recorded decision, and a rollback that is one alias move back.

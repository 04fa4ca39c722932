"""From a registered model version, the data it was trained on can be identified and restored.

A scratch git repository versions the lake with DVC (a local remote on disk); each training
run logs its dataset (digest, source, git revision) to MLflow; version 1's data come back
with ``git checkout <rev> -- data/lake.dvc`` + ``dvc checkout`` and retrain to the same model.
"""

import os
import subprocess
import sys

import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier

from production.config import RANDOM_STATE
from production.data import export_raw_days, read_lake, run_pipeline
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.tracking import (
    frame_digest,
    log_run,
    log_training_data,
    register_model,
    training_data,
)

MODEL, N_DAYS = "lineage-demo", 12  # the lake holds 8 days (version 1), then 12 (version 2)


def _silver():
    """The silver transactions of the lake, in time order."""
    return read_lake("silver").sort_values(["tx_datetime", "transaction_id"], ignore_index=True)


def _fit(frame, params):
    """Fit the model on every row of ``frame``; return it and its inputs."""
    X = compute_model_features(frame)
    model = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(**params),
    )
    return model.fit(X, frame["is_fraud"]), X


@pytest.fixture
def scratch_repo(tmp_path, monkeypatch):
    """A git repository with DVC and a local remote; the course data folder inside it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.setenv("PRODUCTION_DATA_DIR", str(repo / "data"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(repo)

    def run(*command) -> str:
        tool = ["git", "-c", "user.name=Learner", "-c", "user.email=learner@example.com"]
        tool = tool if command[0] == "git" else [sys.executable, "-m", "dvc"]
        done = subprocess.run(
            [*tool, *map(str, command[1:])], capture_output=True, text=True, env=os.environ
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "remote", "add", "-d", "local", tmp_path / "dvc-remote")
    return run


def _version_lake(run, end_day: int, message: str) -> str:
    """Land and ingest days up to ``end_day``; dvc add, git commit, dvc push; return the rev."""
    export_raw_days(
        n_customers=100, n_terminals=40, n_days=N_DAYS, end_day=end_day, dirty_rate=0.0,
        random_state=RANDOM_STATE,
    )  # fmt: skip
    run_pipeline("2026-01-01", f"2026-01-{end_day:02d}", load=False, show_progress=False)
    run("dvc", "add", "data/lake")
    run("git", "add", "data/lake.dvc", "data/.gitignore", ".dvc/config")
    run("git", "commit", "-q", "-m", message)
    run("dvc", "push")
    return run("git", "rev-parse", "HEAD")


def _train_and_register(rev: str, end_day: int) -> str:
    """Train on the whole lake, log its data with the git revision, register; return version."""
    frame, params = _silver(), {"max_iter": 20, "random_state": RANDOM_STATE}
    model, X = _fit(frame, params)
    run_id = log_run("lineage", params=params, model=model, input_example=X.head(2))
    source = f"lake://silver/transactions?start=2026-01-01&end=2026-01-{end_day:02d}"
    tags = {"git_rev": rev, "dvc_file": "data/lake.dvc"}
    log_training_data(frame, source=source, run_id=run_id, tags=tags)
    return register_model(run_id, MODEL)


def test_a_model_versions_training_data_is_identified_and_restored(scratch_repo, tmp_path):
    run, repo = scratch_repo, tmp_path / "repo"
    rev1 = _version_lake(run, 8, "lake: 8 days")
    assert _train_and_register(rev1, 8) == "1"
    rev2 = _version_lake(run, N_DAYS, f"lake: {N_DAYS} days")
    assert _train_and_register(rev2, N_DAYS) == "2"

    found = training_data(MODEL, 1)  # from version 1 alone: which data, where, which revision
    assert found["source"] == "lake://silver/transactions?start=2026-01-01&end=2026-01-08"
    assert found["tags"] == {"git_rev": rev1, "dvc_file": "data/lake.dvc"}
    assert frame_digest(_silver()) != found["digest"]  # the lake has moved on

    run("git", "checkout", found["tags"]["git_rev"], "--", found["tags"]["dvc_file"])
    run("dvc", "checkout", found["tags"]["dvc_file"])
    restored = _silver()
    assert restored["tx_datetime"].max() < np.datetime64("2026-01-09")
    assert frame_digest(restored) == found["digest"]

    params = MlflowClient().get_run(found["run_id"]).data.params
    retrained, X = _fit(restored, {k: int(v) for k, v in params.items()})
    version_1 = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    np.testing.assert_array_equal(retrained.predict_proba(X), version_1.predict_proba(X))
    pushed = [f for f in (repo.parent / "dvc-remote").rglob("*") if f.is_file()]
    assert len(pushed) > len(list((repo / "data" / "lake").rglob("*.parquet")))  # both versions

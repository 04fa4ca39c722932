import uuid

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow import MlflowClient
from scipy import stats
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    KFold,
    TimeSeriesSplit,
    cross_val_score,
)

from production.tracking import (
    compare_runs,
    configure_tracking,
    get_model_version,
    load_model,
    register_best_model,
)
from production.tuning import (
    check_time_ordered_cv,
    log_search,
    plot_search_results,
    time_ordered_cv,
)

START = pd.Timestamp("2026-01-01")


def _frame(days):
    return pd.DataFrame({"tx_datetime": START + pd.to_timedelta(days, unit="D")})


# ----------------------------------------------------------------------------- time-ordered folds


def test_time_ordered_cv_trains_on_the_past_only():
    frame = _frame([7, 0, 5, 1, 6, 2, 4, 3])  # not sorted: positions follow the frame
    folds = time_ordered_cv(frame, n_splits=3)
    days = frame["tx_datetime"].dt.day.to_numpy() - 1
    assert [(sorted(days[tr]), sorted(days[te])) for tr, te in folds] == [
        ([0, 1], [2, 3]),
        ([0, 1, 2, 3], [4, 5]),
        ([0, 1, 2, 3, 4, 5], [6, 7]),
    ]
    assert check_time_ordered_cv(folds, frame) == folds


def test_gap_days_leaves_out_the_days_before_each_test_block():
    folds = time_ordered_cv(_frame(range(8)), n_splits=3, gap_days=1.5)
    assert [(tr.tolist(), te.tolist()) for tr, te in folds] == [
        ([0], [2, 3]),
        ([0, 1, 2], [4, 5]),
        ([0, 1, 2, 3, 4], [6, 7]),
    ]
    again = time_ordered_cv(_frame(range(8)), n_splits=3, gap_days=1.5)
    assert all(
        (a == c).all() and (b == d).all() for (a, b), (c, d) in zip(folds, again, strict=True)
    )


@pytest.mark.parametrize(
    ("frame", "kwargs", "match"),
    [
        (_frame(range(8)), {"n_splits": 1}, "'n_splits' parameter of time_ordered_cv"),
        (_frame(range(8)), {"gap_days": -1}, "'gap_days' parameter"),
        (_frame(range(8)), {"time_col": "when"}, r"column\(s\) \['when'\] not found"),
        (_frame(range(8)).assign(t=1), {"time_col": "t"}, "column 't' of frame must be datetime64"),
        (_frame([0, 1, np.nan, 3]), {}, "'tx_datetime' has missing times"),
        (_frame(range(8)), {"gap_days": 2}, "fold 0 has no training rows.*gap_days=2"),
        ("not a frame", {}, "frame must be a pandas DataFrame"),
    ],
)
def test_time_ordered_cv_rejects_bad_input(frame, kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_ordered_cv(frame, **kwargs)


def test_check_time_ordered_cv_accepts_splitters_that_keep_time():
    frame = _frame(range(8))
    folds = check_time_ordered_cv(TimeSeriesSplit(n_splits=3), frame)
    assert [te.tolist() for _, te in folds] == [[2, 3], [4, 5], [6, 7]]
    assert len(check_time_ordered_cv([([0, 1], [2]), ([0, 1, 2], [3])])) == 2  # by position


@pytest.mark.parametrize(
    ("cv", "match"),
    [
        (KFold(3, shuffle=True, random_state=0), "shuffles the rows"),
        (KFold(3), "fold 0 tests on rows from 2026-01-01.*precede training rows"),
        (5, "cv=5 means K-fold, which ignores time"),
        ([([2, 3], [0, 1])], "fold 0 tests on rows from 2026-01-01"),
    ],
)
def test_check_time_ordered_cv_refuses_folds_that_learn_from_the_future(cv, match):
    with pytest.raises(ValueError, match=match):
        check_time_ordered_cv(cv, _frame(range(8)))


def test_check_time_ordered_cv_needs_the_frame_for_a_splitter():
    with pytest.raises(ValueError, match="pass frame to compute the folds"):
        check_time_ordered_cv(TimeSeriesSplit(n_splits=2))
    with pytest.raises(ValueError, match="fold 0 tests on rows from 0 but trains on rows up to 3"):
        check_time_ordered_cv([([2, 3], [0, 1])])


# ----------------------------------------------------------------------------- logging searches


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("mlruns") / "mlflow.db"


@pytest.fixture
def local_tracking(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.as_posix()}")
    return configure_tracking()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    frame = _frame(np.sort(rng.uniform(0, 30, 240))).assign(amount=rng.normal(size=240))
    y = (frame["amount"] + rng.normal(size=240) > 1).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def grid(data):
    frame, y = data
    folds = time_ordered_cv(frame, n_splits=3, gap_days=1)
    search = GridSearchCV(
        LogisticRegression(), {"C": [0.01, 1.0, 100.0]}, cv=folds, scoring="average_precision"
    )
    return search.fit(frame[["amount"]], y)


def test_log_search_logs_a_parent_and_one_child_per_candidate(local_tracking, data, grid):
    experiment = f"search-{uuid.uuid4().hex[:8]}"
    parent_id = log_search(
        grid, experiment=experiment, run_name="grid", input_example=data[0][["amount"]].head(2)
    )
    parent = MlflowClient().get_run(parent_id)
    assert parent.data.params == {
        "search": "GridSearchCV",
        "cv": "index folds",
        "n_splits": "3",
        "scoring": "cv_average_precision",
        "n_candidates": "3",
        "best.C": str(grid.best_params_["C"]),
    }
    assert parent.data.metrics["cv_average_precision"] == pytest.approx(grid.best_score_)
    assert parent.data.tags["search.strategy"] == "GridSearchCV"
    runs = compare_runs(experiment, "cv_average_precision", parent_run_id=parent_id)
    scores = sorted(grid.cv_results_["mean_test_score"], reverse=True)
    assert runs["metrics.cv_average_precision"].tolist() == pytest.approx(scores)
    assert sorted(runs["run_name"]) == ["grid-000", "grid-001", "grid-002"]
    assert sorted(runs["params.C"]) == ["0.01", "1.0", "100.0"]
    name = f"best-{uuid.uuid4().hex[:8]}"
    register_best_model(parent_id, name)
    assert get_model_version(name, "challenger").run_id == parent_id
    assert load_model(name, "challenger").get_params()["C"] == grid.best_params_["C"]


def test_log_search_sends_one_batch_per_run(local_tracking, grid, monkeypatch):
    calls = []
    original = MlflowClient.log_batch

    def counting(self, run_id, *args, **kwargs):
        calls.append(run_id)
        return original(self, run_id, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    parent_id = log_search(grid, experiment="batches", log_model=False)
    assert len(calls) == 1 + 3 and len(set(calls)) == 4  # the parent, then each candidate
    assert calls[0] == parent_id


def test_log_search_without_model_logs_no_model(local_tracking, grid):
    parent_id = log_search(grid, experiment="no-model", log_model=False, metric="ap")
    client = MlflowClient()
    run = client.get_run(parent_id)
    assert run.info.run_name == "GridSearchCV" and "ap" in run.data.metrics
    assert not client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{parent_id}'"
    )


def test_log_search_logs_halving_rounds_and_optuna_trials(local_tracking, data):
    frame, y = data
    X, folds = frame[["amount"]], time_ordered_cv(frame, n_splits=2)
    halving = HalvingRandomSearchCV(
        LogisticRegression(),
        {"C": stats.loguniform(0.01, 100)},
        n_candidates=4,
        cv=folds,
        scoring="average_precision",
        resource="max_iter",
        min_resources=10,
        max_resources=30,
        random_state=0,
    ).fit(X, y)
    parent_id = log_search(halving, experiment="halving", log_model=False)
    runs = compare_runs("halving", "cv_average_precision", parent_run_id=parent_id)
    assert len(runs) == len(halving.cv_results_["params"])
    assert set(runs["metrics.iter"]) == set(halving.cv_results_["iter"].astype(float))

    def objective(trial):
        model = LogisticRegression(C=trial.suggest_float("C", 0.01, 100, log=True))
        return cross_val_score(model, X, y, cv=folds, scoring="average_precision").mean()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=3)
    parent_id = log_search(study, experiment="optuna", metric="cv_ap")
    runs = compare_runs("optuna", "cv_ap", parent_run_id=parent_id)
    assert runs["metrics.cv_ap"].iloc[0] == pytest.approx(study.best_value)
    assert MlflowClient().get_run(parent_id).data.params["search"] == "optuna"


def test_log_search_needs_a_fitted_search(local_tracking):
    with pytest.raises(ValueError, match="fitted scikit-learn search"):
        log_search(GridSearchCV(LogisticRegression(), {"C": [1]}), experiment="x")


def test_plot_search_results_marks_the_best(grid):
    figure = plot_search_results(grid)
    assert isinstance(figure, Figure)
    assert figure.axes[0].get_title() == "3 candidates"
    with pytest.raises(ValueError, match="call search.fit"):
        plot_search_results(GridSearchCV(LogisticRegression(), {"C": [1]}))

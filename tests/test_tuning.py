import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow import MlflowClient
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from production.tracking import configure_tracking, get_model_version, load_model, promote_model
from production.tuning import STRATEGIES, SearchResult, plot_search_results, run_search

N_ROWS = 1200
TIME = "tx_datetime"
GRID = {  # 8 candidates
    "model__C": [0.01, 0.1, 1.0, 10.0],
    "preprocess__num__impute__strategy": ["mean", "median"],
}
RANGES = {
    "model__C": ("float", 1e-3, 10.0, "log"),
    "preprocess__num__impute__strategy": ["mean", "median"],
}
SPACES = {"grid": GRID, "random": RANGES, "halving": GRID, "optuna": RANGES}


@pytest.fixture(scope="module")
def data():
    """Time-ordered card transactions, ~8 % fraud, driven by amount and channel."""
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.integers(0, 30 * 86400, N_ROWS))
    X = pd.DataFrame(
        {
            TIME: pd.Timestamp("2026-01-01") + pd.to_timedelta(seconds, unit="s"),
            "amount": rng.lognormal(3, 1, N_ROWS).round(2),
            "channel": rng.choice(["chip", "online", "contactless"], N_ROWS),
        }
    )
    logit = -3.5 + 0.02 * X["amount"] + 1.5 * (X["channel"] == "online")
    y = pd.Series((rng.random(N_ROWS) < 1 / (1 + np.exp(-logit))).astype(int), name="is_fraud")
    X.loc[rng.choice(N_ROWS, 40, replace=False), "amount"] = np.nan
    return X, y


def _pipeline(model=None, spy=False):
    preprocess = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                ["amount"],
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    model = model or LogisticRegression(solver="liblinear")  # the fastest on small data
    steps = [("preprocess", preprocess), ("model", model)]
    return Pipeline([("spy", TimeSpy())] * spy + steps)


def _search(data, strategy="grid", space=None, **kwargs):
    X, y = data
    kwargs = {"cv": 3, "n_iter": 6, "time_col": TIME, "log": False} | kwargs
    pipeline = kwargs.pop("pipeline", None) or _pipeline()
    space = SPACES[strategy] if space is None else space
    return run_search(pipeline, space, X, y, strategy=strategy, **kwargs)


RECORDS = []


class TimeSpy(TransformerMixin, BaseEstimator):
    """Records, for every scored window, the latest training row and the earliest test row."""

    def fit(self, X, y=None):
        self.fit_last_ = X.index.max()
        return self

    def fit_transform(self, X, y=None):
        self.fit(X)
        return X  # unlike transform, records nothing: only scored windows count

    def transform(self, X):
        RECORDS.append((self.fit_last_, X.index.min()))
        return X


# ----------------------------------------------------------------------------- strategies


@pytest.fixture(scope="module")
def searches(data):
    """One search per strategy (through a TimeSpy), with the warnings and spy records of each."""
    out = {}
    for strategy in STRATEGIES:
        pipeline = _pipeline(spy=True)
        RECORDS.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _search(data, strategy, pipeline=pipeline)
        out[strategy] = (result, list(RECORDS), caught, pipeline)
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_returns_a_consistent_result(data, searches, strategy):
    X, y = data
    result, _, _, pipeline = searches[strategy]
    frame = result.cv_results
    assert isinstance(result, SearchResult)
    assert result.strategy == strategy
    assert result.parent_run_id is None and result.log_elapsed_s == 0.0
    assert result.n_candidates == len(frame) == frame["params"].map(repr).nunique()
    assert result.n_candidates == (8 if strategy in ("grid", "halving") else 6)
    assert frame["candidate"].tolist() == list(range(len(frame)))
    best = frame.loc[frame["rank_test_score"] == 1].iloc[0]
    assert best["params"] == result.best_params_
    assert best["mean_test_score"] == pytest.approx(result.best_score_)
    splits = frame[[f"split{k}_test_score" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(splits.mean(axis=1), frame["mean_test_score"])
    np.testing.assert_allclose(splits.std(axis=1), frame["std_test_score"])
    assert (frame["mean_fit_time"] > 0).all()
    if strategy != "halving":  # halving ranks later rounds first, whatever their scores
        assert result.best_score_ == pytest.approx(frame["mean_test_score"].max())
    else:
        assert sorted(frame["iter"].unique()) == [0, 1]
        assert frame["n_resources"].max() > frame["n_resources"].min()
        last = frame.loc[frame["iter"] == frame["iter"].max(), "mean_test_score"].max()
        assert result.best_score_ == pytest.approx(last)
    assert {f"param_{k}" for k in result.best_params_} <= set(frame.columns)
    # the refitted pipeline has the best parameters and predicts without the time column
    fitted = result.best_estimator_.get_params()
    assert all(fitted[k] == v for k, v in result.best_params_.items())
    assert TIME not in result.best_estimator_.named_steps["preprocess"].feature_names_in_
    assert result.best_estimator_.predict_proba(X.drop(columns=TIME)).shape == (N_ROWS, 2)
    assert 0 < result.best_score_ <= 1
    assert result.elapsed_s > 0
    # the pipeline passed in is cloned, never fitted or modified
    assert not hasattr(pipeline, "classes_")
    assert pipeline.get_params()["model__C"] == 1.0


@pytest.mark.parametrize("strategy", ["random", "halving", "optuna"])
def test_same_random_state_same_result(data, searches, strategy):
    first, second = searches[strategy][0], _search(data, strategy, pipeline=_pipeline(spy=True))
    assert first.best_params_ == second.best_params_
    assert first.best_score_ == second.best_score_
    assert first.cv_results["params"].tolist() == second.cv_results["params"].tolist()
    np.testing.assert_array_equal(
        first.cv_results["mean_test_score"], second.cv_results["mean_test_score"]
    )
    if strategy in ("random", "optuna"):  # and the seed drives the sampler
        other = _search(data, strategy, random_state=7, n_iter=2)
        assert other.cv_results["params"].tolist() != first.cv_results["params"].tolist()[:2]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_folds_never_train_on_later_rows_than_they_test(searches, strategy):
    result, records, _, _ = searches[strategy]
    assert isinstance(result.cv, TimeSeriesSplit) and result.cv.n_splits == 3
    assert len(records) >= result.n_candidates * 3  # every candidate scored on 3 windows
    assert [(last, first) for last, first in records if last >= first] == []


def test_halving_keeps_positives_in_every_subsampled_window(searches):
    caught = searches["halving"][2]
    assert not [w for w in caught if "No positive class" in str(w.message)]


def test_a_given_splitter_is_used_as_is(data):
    splitter = TimeSeriesSplit(n_splits=4, gap=10)
    result = _search(data, space={"model__C": [0.1, 1.0]}, cv=splitter)
    assert result.cv is splitter
    assert [c for c in result.cv_results if c.startswith("split")] == [
        f"split{k}_test_score" for k in range(4)
    ]


def test_without_time_col_row_order_is_time(data, searches):
    X, y = data
    params = {"model__C": 1.0, "preprocess__num__impute__strategy": "median"}
    space = {k: [v] for k, v in params.items()}
    result = run_search(_pipeline(), space, X.drop(columns=TIME), y, cv=3, log=False)
    grid = searches["grid"][0].cv_results
    same = grid.loc[grid["params"] == params].iloc[0]
    assert result.best_score_ == same["mean_test_score"]


def test_value_formats(data):
    """Int/float ranges (log or not), scipy distributions and arrays all sample in range."""
    space = {
        "model__max_depth": ("int", 2, 6),
        "model__min_samples_leaf": ("int", 1, 50, "log"),
        "model__min_impurity_decrease": ("float", 0.0, 0.001),
        "model__ccp_alpha": stats.uniform(0, 0.001),
        "model__criterion": np.array(["gini", "entropy"]),
    }
    tree = DecisionTreeClassifier(random_state=0)
    for strategy in ("random", "halving", "optuna"):
        if strategy == "optuna":
            space = {k: v for k, v in space.items() if k != "model__ccp_alpha"}
        result = _search(data, strategy, space, pipeline=_pipeline(tree))
        for params in result.cv_results["params"]:
            assert (
                isinstance(params["model__max_depth"], int) and 2 <= params["model__max_depth"] <= 6
            )
            assert isinstance(params["model__min_samples_leaf"], int)
            assert 1 <= params["model__min_samples_leaf"] <= 50
            assert 0.0 <= params["model__min_impurity_decrease"] <= 0.001
            assert params["model__criterion"] in ("gini", "entropy")


def test_estimators_as_candidates(data):
    """Sub-grids per model (a list of dicts), and whole estimators as Optuna choices."""
    tree = DecisionTreeClassifier(random_state=0)
    space = [
        {"model": [LogisticRegression(solver="liblinear")], "model__C": [0.1, 1.0]},
        {"model": [tree], "model__max_depth": [2, 4]},
    ]
    result = _search(data, "grid", space)
    assert result.n_candidates == 4
    assert {type(p["model"]).__name__ for p in result.cv_results["params"]} == {
        "LogisticRegression",
        "DecisionTreeClassifier",
    }
    assert _search(data, "random", space, n_iter=10).n_candidates == 4  # capped at grid size
    choice = {"model": [LogisticRegression(solver="liblinear"), tree]}
    optuna = _search(data, "optuna", choice, n_iter=4)
    assert optuna.n_candidates == 2  # a candidate proposed again is not scored twice
    assert optuna.best_estimator_.named_steps["model"] is not tree  # cloned, not fitted in place


def test_plot_search_results(searches):
    result = searches["grid"][0]
    figure = plot_search_results(result.cv_results, scoring=result.scoring)
    assert isinstance(figure, Figure)
    assert "average_precision" in figure.axes[0].get_ylabel()
    points = sum(len(bars.lines[0].get_xdata()) for bars in figure.axes[0].containers)
    assert points == result.n_candidates


# ----------------------------------------------------------------------------- logging


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One local MLflow store for the module: creating its tables takes ~1.5 s."""
    return tmp_path_factory.mktemp("mlruns") / "mlflow.db"


@pytest.fixture
def local_tracking(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store.as_posix()}")
    return configure_tracking()


GRID_24 = GRID | {
    "model__class_weight": [None, "balanced"],
    "model__C": [0.01, 0.1, 1.0, 3.0, 10.0, 30.0],
}


def _check_logged(result, X, name):
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["search.strategy"] == result.strategy
    assert parent.data.params["strategy"] == result.strategy
    assert parent.data.params["scoring"] == "average_precision"
    assert parent.data.params["random_state"] == "42"
    assert parent.data.params["n_candidates"] == str(result.n_candidates)
    assert parent.data.params["cv"].startswith("TimeSeriesSplit(")
    assert parent.data.metrics["cv_average_precision"] == pytest.approx(result.best_score_)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
        max_results=1000,
    )
    assert len(children) == result.n_candidates
    by_candidate = {int(child.data.tags["candidate"]): child for child in children}
    for row in result.cv_results.itertuples():
        child = by_candidate[row.candidate]
        assert child.info.status == "FINISHED"
        assert child.data.params == {k: str(v) for k, v in row.params.items()}
        assert child.data.metrics["cv_average_precision"] == pytest.approx(row.mean_test_score)
        assert child.data.metrics["cv_average_precision_std"] == pytest.approx(row.std_test_score)
        assert child.data.metrics["fit_time_s"] == pytest.approx(row.mean_fit_time)
        assert child.data.tags["rank"] == str(row.rank_test_score)
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id, "search")}
    assert artifacts == {"search/cv_results.csv", "search/cv_results.png"}
    # the best pipeline is the parent's model: register it as challenger, load, predict
    version = result.register(name)
    assert get_model_version(name, "challenger") == version
    loaded = load_model(name, "challenger")
    features = X.drop(columns=TIME)
    np.testing.assert_allclose(
        loaded.predict_proba(features), result.best_estimator_.predict_proba(features)
    )
    return version


def test_search_is_logged_as_parent_and_nested_runs(local_tracking, data):
    X, y = data
    result = run_search(
        _pipeline(), GRID_24, X, y, cv=2, time_col=TIME, experiment="tuning-test", run_name="g24"
    )
    assert result.n_candidates == 24
    assert result.log_elapsed_s < 15, f"logging 24 candidates took {result.log_elapsed_s:.1f} s"
    assert result.elapsed_s >= result.log_elapsed_s
    assert MlflowClient().get_run(result.parent_run_id).info.run_name == "g24"
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    version = _check_logged(result, X, name)
    assert promote_model(name, metric="cv_average_precision") is True
    assert get_model_version(name, "champion") == version


def test_optuna_search_is_logged(local_tracking, data):
    result = _search(data, "optuna", log=True, experiment="tuning-test")
    params = MlflowClient().get_run(result.parent_run_id).data.params
    assert params["n_iter"] == "6"
    assert params["best.model__C"] == str(result.best_params_["model__C"])


@pytest.mark.integration
def test_search_is_logged_on_the_server(monkeypatch, capsys, mlflow_server_uri, data):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_uri)
    X, y = data
    result = run_search(
        _pipeline(), GRID_24, X, y, cv=2, time_col=TIME, experiment="tuning-integration"
    )
    assert capsys.readouterr().out.count("View run") == 1  # the parent's link, not 24 more
    assert result.log_elapsed_s < 15, f"logging 24 candidates took {result.log_elapsed_s:.1f} s"
    name = f"server-fraud-{uuid.uuid4().hex[:8]}"
    version = _check_logged(result, X, name)
    assert promote_model(name, metric="cv_average_precision") is True
    assert get_model_version(name, "champion") == version


def test_register_needs_a_logged_search(searches):
    with pytest.raises(ValueError, match="was not logged"):
        searches["grid"][0].register("anything")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"strategy": "bayes"},
            ValueError,
            r"The 'strategy' parameter of run_search must be one of "
            r"\['grid', 'random', 'halving', 'optuna'\]. Got 'bayes' instead.",
        ),
        ({"pipeline": "lr"}, TypeError, "'pipeline' parameter of run_search must be"),
        ({"space": "C"}, TypeError, "'param_space' parameter of run_search must be a dict"),
        ({"space": {}}, ValueError, "param_space is empty"),
        ({"space": [{"model__C": [1]}, {}]}, ValueError, "param_space is empty"),
        (
            {"space": {"model__c": [1.0]}},
            ValueError,
            r"unknown parameter\(s\) \['model__c'\] in param_space \(did you mean "
            r"'model__C' for 'model__c'\?\). Valid keys .*'model__max_iter'.*"
            r"'preprocess__num__impute__strategy'",
        ),
        ({"space": {"model__C": []}}, ValueError, r"param_space\['model__C'\] is an empty list"),
        ({"space": {"model__C": 1.0}}, TypeError, r"param_space\['model__C'\] must be a list"),
        ({"space": {"model__C": "1.0"}}, TypeError, r"param_space\['model__C'\] must be a list"),
        (
            {"space": {"model__C": (0.1, 1.0)}},
            ValueError,
            r"Got the tuple \(0.1, 1.0\).*\[0.1, 1.0\]",
        ),
        (
            {"space": {"model__C": ("float", 0.1, 1, "exp")}},
            ValueError,
            r"range \('int'\|'float', low, high\[, 'log'\]\)",
        ),
        (
            {"space": {"model__max_iter": ("int", 1.5, 9)}},
            ValueError,
            "low and high must be integers",
        ),
        ({"space": {"model__C": ("float", 1.0, 1.0)}}, ValueError, "needs low < high"),
        ({"space": {"model__C": ("float", 0.0, 1.0, "log")}}, ValueError, "low must be > 0"),
        (
            {"strategy": "grid", "space": RANGES},
            ValueError,
            r"strategy='grid' needs a list of values for every parameter; "
            r"param_space\['model__C'\]",
        ),
        (
            {"strategy": "optuna", "space": {"model__C": stats.loguniform(0.01, 1)}},
            ValueError,
            "scipy distribution, which strategy='optuna' cannot sample",
        ),
        (
            {"strategy": "optuna", "space": [GRID, GRID]},
            ValueError,
            "strategy='optuna' needs param_space as a single dict",
        ),
        ({"cv": 1}, ValueError, "The 'cv' parameter of run_search must be an int >= 2. Got 1"),
        ({"cv": "5"}, TypeError, "The 'cv' parameter of run_search must be an int >= 2 or a CV"),
        (
            {"cv": KFold(3, shuffle=True, random_state=0)},
            ValueError,
            "must not shuffle rows",
        ),
        ({"cv": 2000}, ValueError, "cv=TimeSeriesSplit.* cannot split 1200 rows"),
        ({"scoring": "ap"}, ValueError, "The 'scoring' parameter of run_search must be"),
        ({"scoring": "average_precison"}, ValueError, r"such as \['average_precision'"),
        ({"scoring": 3}, TypeError, "The 'scoring' parameter of run_search must be"),
        ({"n_iter": 0}, ValueError, "The 'n_iter' parameter of run_search must be an int >= 1"),
        ({"n_iter": 2.5}, TypeError, "The 'n_iter' parameter of run_search must be an int >= 1"),
        ({"random_state": None}, TypeError, "The 'random_state' parameter of run_search"),
        ({"n_jobs": 0}, ValueError, "The 'n_jobs' parameter of run_search must be None or"),
        ({"n_jobs": "all"}, TypeError, "The 'n_jobs' parameter of run_search must be None or"),
        ({"log": "yes"}, TypeError, "The 'log' parameter of run_search must be a bool"),
        ({"time_col": "when"}, ValueError, r"time_col 'when' not found in X; available: \["),
    ],
)
def test_bad_input_is_named(data, kwargs, error, match):
    kwargs = dict(kwargs)
    space = kwargs.pop("space", GRID)
    with pytest.raises(error, match=match):
        _search(data, kwargs.pop("strategy", "grid"), space, **kwargs)


def test_bad_data_is_named(data):
    X, y = data
    with pytest.raises(TypeError, match="The 'X' parameter of run_search must be a 2-D table"):
        run_search(_pipeline(), GRID, X["amount"], y, log=False)
    with pytest.raises(ValueError, match="X has 1200 rows but y has 1199"):
        run_search(_pipeline(), GRID, X, y[:-1], log=False)
    with pytest.raises(TypeError, match="time_col='t' needs X as a pandas DataFrame"):
        run_search(_pipeline(), GRID, X[["amount"]].to_numpy(), y, time_col="t", log=False)
    shuffled = X.copy()
    shuffled.loc[[10, 11], TIME] = shuffled.loc[[11, 10], TIME].to_numpy()
    with pytest.raises(ValueError, match=r"X is not sorted by time_col 'tx_datetime': row 11 .*"):
        run_search(_pipeline(), GRID, shuffled, y, time_col=TIME, log=False)
    missing = X.copy()
    missing.loc[5, TIME] = pd.NaT
    with pytest.raises(ValueError, match="'tx_datetime' has 1 missing value"):
        run_search(_pipeline(), GRID, missing, y, time_col=TIME, log=False)


def test_folds_without_both_classes_are_refused(data):
    X, y = data
    early_quiet = y.copy()
    early_quiet[:400] = 0
    with pytest.raises(ValueError, match=r"fold 0 trains on rows 0-299, which hold only class 0"):
        run_search(_pipeline(), GRID, X, early_quiet, cv=3, time_col=TIME, log=False)
    late_quiet = y.copy()
    late_quiet[900:] = 0
    with pytest.raises(
        ValueError,
        match=r"fold 2 tests on rows 900-1199, which hold no positive.*'average_precision'",
    ):
        run_search(_pipeline(), GRID, X, late_quiet, cv=3, time_col=TIME, log=False)
    # accuracy is defined without positives
    run_search(
        _pipeline(),
        {"model__C": [1.0]},
        X,
        late_quiet,
        cv=3,
        time_col=TIME,
        scoring="accuracy",
        log=False,
    )


def test_plot_needs_a_results_table():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['candidate'"):
        plot_search_results(pd.DataFrame({"x": [1]}))

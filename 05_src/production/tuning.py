"""Hyperparameter search over model pipelines, with time-aware cross-validation.

One entry point, :func:`run_search`, runs a grid, random, successive-halving or
Optuna (TPE) search over a scikit-learn ``Pipeline`` and returns a
:class:`SearchResult`. Every strategy evaluates candidates on the SAME folds,
by default :class:`~sklearn.model_selection.TimeSeriesSplit`: each fold trains on
earlier rows and tests on the rows that follow, never shuffled, as a fraud model
is trained on the past and used on the future.

Computation only: no file, no print. When ``log=True`` the search is recorded
through :mod:`production.tracking` (imported only then): a parent run, one nested
run per candidate, the refitted best pipeline and a summary table and plot.

The parameter space
-------------------
``param_space`` maps a pipeline parameter name (as listed by
``pipeline.get_params()``, e.g. ``"model__max_depth"`` or
``"preprocess__num__impute__strategy"``) to one of:

* a **list** (or 1-D array, or ``range``) of values: the candidates of a grid, a
  uniform choice for random search, a categorical choice for Optuna;
* an **integer range** ``("int", low, high)`` or ``("int", low, high, "log")``:
  ``low`` and ``high`` both included, optionally sampled on a log scale;
* a **float range** ``("float", low, high)`` or ``("float", low, high, "log")``;
* a **scipy.stats distribution** (anything with ``rvs``), random and halving only.

``strategy="grid"`` needs lists only. A list of such dicts (sklearn's way of
searching several sub-grids) works for grid, random and halving, not Optuna.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    ParameterGrid,
    RandomizedSearchCV,
    TimeSeriesSplit,
    cross_validate,
)
from sklearn.utils.multiclass import type_of_target

__all__ = ["STRATEGIES", "SearchResult", "run_search", "plot_search_results"]

#: The search strategies :func:`run_search` knows.
STRATEGIES = ("grid", "random", "halving", "optuna")

#: Scorers that are undefined (or meaningless) on a test window without positives.
_NEEDS_POSITIVES = {
    "average_precision",
    "roc_auc",
    "f1",
    "precision",
    "recall",
    "jaccard",
    "balanced_accuracy",
    "neg_brier_score",
    "neg_log_loss",
}
_RANGE_KINDS = ("int", "float")
_HALVING_FACTOR = 3
_HALVING_P_NO_POSITIVE = 1e-3
_OPTUNA_CHOICE_TYPES = (type(None), bool, int, float, str)


@dataclass
class SearchResult:
    """What :func:`run_search` found.

    Attributes
    ----------
    best_params_ : dict
        Parameters of the best candidate (highest mean CV score).
    best_score_ : float
        Its mean CV score (``scoring``, higher is better).
    best_estimator_ : estimator
        A clone of the pipeline with ``best_params_``, refitted on all of ``X``
        (without ``time_col``).
    cv_results : pandas.DataFrame
        One row per candidate, in the order evaluated: ``candidate``, ``params``
        (dict), one ``param_<name>`` column per parameter, ``mean_test_score``,
        ``std_test_score``, ``split<k>_test_score``, ``mean_fit_time`` (seconds),
        ``rank_test_score`` (1 = best); ``iter`` and ``n_resources`` for halving,
        where a row is the candidate's last (largest) evaluation.
    parent_run_id : str or None
        The MLflow parent run, ``None`` when ``log=False``.
    strategy : str
        ``"grid"``, ``"random"``, ``"halving"`` or ``"optuna"``.
    n_candidates : int
        Number of distinct candidates evaluated (rows of ``cv_results``).
    elapsed_s : float
        Wall time of the whole call, logging included.
    scoring : str
        The scorer's name (``"score"`` for a callable).
    cv : object
        The splitter whose folds every candidate was evaluated on.
    log_elapsed_s : float
        Part of ``elapsed_s`` spent logging to MLflow (0 when ``log=False``).
    """

    best_params_: dict
    best_score_: float
    best_estimator_: BaseEstimator
    cv_results: pd.DataFrame
    parent_run_id: str | None
    strategy: str
    n_candidates: int
    elapsed_s: float
    scoring: str = "score"
    cv: object = None
    log_elapsed_s: float = 0.0

    def register(self, name: str, *, alias: str = "challenger") -> str:
        """Register the logged best pipeline under ``name`` and point ``alias`` at it.

        Parameters
        ----------
        name : str
            Registered model name, e.g. ``"fraud-detector"``.
        alias : str, default="challenger"
            Alias for the new version; promote it later with
            :func:`production.tracking.promote_model`.

        Returns
        -------
        str
            The new model version.

        Raises
        ------
        ValueError
            If the search was not logged (``log=False``).
        """
        if self.parent_run_id is None:
            raise ValueError(
                "SearchResult.register: this search was not logged (log=False), so there is "
                "no model to register. Run run_search(..., log=True) first."
            )
        from production.tracking import register_best_model

        return register_best_model(self.parent_run_id, name, alias=alias)


# --------------------------------------------------------------------------- parameter space


@dataclass(frozen=True)
class _Range:
    """An ("int"|"float", low, high[, "log"]) range, both ends included."""

    kind: str
    low: float
    high: float
    log: bool

    def to_scipy(self):
        """Return a scipy-like distribution RandomizedSearchCV can sample."""
        if self.kind == "int":
            if self.log:
                return _LogIntDistribution(int(self.low), int(self.high))
            return stats.randint(int(self.low), int(self.high) + 1)
        if self.log:
            return stats.loguniform(self.low, self.high)
        return stats.uniform(self.low, self.high - self.low)


@dataclass(frozen=True)
class _LogIntDistribution:
    """Integers in [low, high] drawn log-uniformly (scipy has no discrete log-uniform)."""

    low: int
    high: int

    def rvs(self, size=None, random_state=None):
        """Draw integers like a frozen scipy distribution."""
        if hasattr(random_state, "uniform"):  # sklearn passes a RandomState
            rng = random_state
        else:
            rng = np.random.default_rng(random_state)
        draws = np.exp(rng.uniform(math.log(self.low), math.log(self.high + 1), size=size))
        values = np.clip(np.floor(draws), self.low, self.high).astype(int)
        return int(values) if size is None else values


def _parse_value(key, value, strategy: str, func: str):
    """Turn one param_space value into a list, a _Range or a scipy distribution."""
    where = f"param_space[{key!r}]"
    if isinstance(value, tuple):
        spec = (
            len(value) in (3, 4)
            and value[0] in _RANGE_KINDS
            and all(_is_real(v) for v in value[1:3])
            and (len(value) == 3 or value[3] == "log")
        )
        if not spec:
            raise ValueError(
                f"{func}: {where} must be a list of values, a scipy.stats distribution or a "
                f"range ('int'|'float', low, high[, 'log']). Got the tuple {value!r}; to list "
                f"candidate values use a list: {list(value)!r}."
            )
        kind, low, high = value[:3]
        log = len(value) == 4
        if kind == "int" and not all(_is_int(v) for v in (low, high)):
            raise ValueError(f"{func}: {where} is an 'int' range; low and high must be integers.")
        if not low < high:
            raise ValueError(f"{func}: {where} needs low < high. Got low={low}, high={high}.")
        if log and low <= 0:
            raise ValueError(f"{func}: {where} is a log range; low must be > 0. Got {low}.")
        return _Range(kind, low, high, log)
    if hasattr(value, "rvs"):
        if strategy == "optuna":
            raise ValueError(
                f"{func}: {where} is a scipy distribution, which strategy='optuna' cannot "
                f"sample. Use a range such as ('float', 0.001, 1.0, 'log') or a list."
            )
        return value
    if (isinstance(value, np.ndarray) and value.ndim == 1) or isinstance(value, range):
        value = list(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) == 0:
            raise ValueError(f"{func}: {where} is an empty list; give at least one value.")
        return list(value)
    raise TypeError(
        f"{func}: {where} must be a list of values, a scipy.stats distribution or a range "
        f"('int'|'float', low, high[, 'log']). Got {type(value).__name__} {value!r} instead."
    )


def _valid_keys(pipeline, space: Mapping) -> set[str]:
    """Parameter names of the pipeline, plus those of estimators offered as candidates."""
    valid = set(pipeline.get_params(deep=True))
    for key, values in space.items():
        if isinstance(values, list):
            for value in values:
                if hasattr(value, "get_params") and not isinstance(value, type):
                    valid |= {f"{key}__{sub}" for sub in value.get_params(deep=True)}
    return valid


def _parse_space(param_space, pipeline, strategy: str, func: str) -> list[dict]:
    """Validate param_space and return it as a list of {name: list | _Range | distribution}."""
    if isinstance(param_space, Mapping):
        spaces = [param_space]
    elif (
        isinstance(param_space, Sequence)
        and not isinstance(param_space, str)
        and all(isinstance(s, Mapping) for s in param_space)
    ):
        spaces = list(param_space)
        if strategy == "optuna":
            raise ValueError(
                f"{func}: strategy='optuna' needs param_space as a single dict; got a list of "
                f"{len(spaces)} dicts. Search each sub-space separately, or use 'grid', "
                "'random' or 'halving'."
            )
    else:
        raise TypeError(
            f"The 'param_space' parameter of {func} must be a dict such as "
            "{'model__max_depth': [3, 5]} (or a list of such dicts). "
            f"Got {type(param_space).__name__} instead."
        )
    if not spaces or any(len(s) == 0 for s in spaces):
        raise ValueError(
            f"{func}: param_space is empty; give at least one parameter to search, e.g. "
            "{'model__max_depth': [3, 5]}."
        )
    parsed = []
    for space in spaces:
        parsed_space = {key: _parse_value(key, v, strategy, func) for key, v in space.items()}
        valid = _valid_keys(pipeline, parsed_space)
        unknown = [k for k in space if k not in valid]
        if unknown:
            hints = {k: difflib.get_close_matches(str(k), sorted(valid), n=1) for k in unknown}
            hint = "; ".join(f"did you mean {m[0]!r} for {k!r}?" for k, m in hints.items() if m)
            raise ValueError(
                f"{func}: unknown parameter(s) {unknown} in param_space"
                + (f" ({hint})" if hint else "")
                + f". Valid keys (pipeline.get_params()): {sorted(valid)}"
            )
        parsed.append(parsed_space)
    if strategy == "grid":
        for space in parsed:
            for key, value in space.items():
                if not isinstance(value, list):
                    raise ValueError(
                        f"{func}: strategy='grid' needs a list of values for every parameter; "
                        f"param_space[{key!r}] is a range or distribution. List the values, "
                        "or use strategy='random', 'halving' or 'optuna'."
                    )
    return parsed


def _is_grid(spaces: list[dict]) -> bool:
    return all(isinstance(v, list) for s in spaces for v in s.values())


def _to_sklearn(spaces: list[dict]) -> list[dict]:
    """Ranges become scipy distributions; lists and distributions pass through."""
    return [{k: v.to_scipy() if isinstance(v, _Range) else v for k, v in s.items()} for s in spaces]


# --------------------------------------------------------------------------- validation


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(value, name: str, func: str, low: int) -> None:
    if not _is_int(value) or value < low:
        raise (TypeError if not _is_int(value) else ValueError)(
            f"The {name!r} parameter of {func} must be an int >= {low}. Got {value!r} instead."
        )


def _check_cv(cv, func: str):
    """Return a splitter: an int becomes TimeSeriesSplit(n_splits=cv); no shuffling allowed."""
    if _is_int(cv):
        if cv < 2:
            raise ValueError(
                f"The 'cv' parameter of {func} must be an int >= 2. Got {cv!r} instead."
            )
        return TimeSeriesSplit(n_splits=int(cv))
    if not (hasattr(cv, "split") and hasattr(cv, "get_n_splits")):
        raise TypeError(
            f"The 'cv' parameter of {func} must be an int >= 2 or a CV splitter such as "
            f"TimeSeriesSplit(n_splits=5). Got {type(cv).__name__} instead."
        )
    if getattr(cv, "shuffle", False):
        raise ValueError(
            f"The 'cv' parameter of {func} must not shuffle rows: {cv!r} would train on "
            "transactions that come after the ones it tests. Use TimeSeriesSplit (the "
            "default) or a splitter with shuffle=False."
        )
    return cv


def _check_scoring(scoring, func: str) -> str:
    """Return the scorer's name; raise for an unknown name or a non-callable."""
    if isinstance(scoring, str):
        names = get_scorer_names()
        if scoring not in names:
            close = difflib.get_close_matches(scoring, names, n=3)
            raise ValueError(
                f"The 'scoring' parameter of {func} must be a scikit-learn scorer name"
                + (f" such as {close}" if close else " (see sklearn.metrics.get_scorer_names())")
                + f" or a callable scorer. Got {scoring!r} instead."
            )
        return scoring
    if callable(scoring):
        return "score"
    raise TypeError(
        f"The 'scoring' parameter of {func} must be a scorer name such as "
        f"'average_precision' or a callable. Got {type(scoring).__name__} instead."
    )


def _check_data(X, y, time_col, func: str):
    """Return X without time_col (after checking X is sorted by it) and y as given."""
    if not hasattr(X, "shape") or len(getattr(X, "shape", ())) != 2:
        raise TypeError(
            f"The 'X' parameter of {func} must be a 2-D table (a pandas DataFrame). "
            f"Got {type(X).__name__} instead."
        )
    if len(y) != X.shape[0]:
        raise ValueError(f"{func}: X has {X.shape[0]} rows but y has {len(y)}; they must match.")
    if time_col is None:
        return X, y
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{func}: time_col={time_col!r} needs X as a pandas DataFrame. "
            f"Got {type(X).__name__} instead."
        )
    if time_col not in X.columns:
        raise ValueError(
            f"{func}: time_col {time_col!r} not found in X; available: {list(X.columns)}"
        )
    times = X[time_col]
    if times.isna().any():
        raise ValueError(
            f"{func}: time_col {time_col!r} has {int(times.isna().sum())} missing value(s); "
            "every row needs a time to be placed in a fold."
        )
    if not times.is_monotonic_increasing:
        values = times.to_numpy()
        position = int(np.flatnonzero(values[1:] < values[:-1])[0])
        raise ValueError(
            f"{func}: X is not sorted by time_col {time_col!r}: row {position + 1} "
            f"({times.iloc[position + 1]}) comes before row {position} "
            f"({times.iloc[position]}). Sort X and y together first, e.g. "
            f"order = X[{time_col!r}].argsort(kind='stable'); X, y = X.iloc[order], "
            "y.iloc[order]."
        )
    return X.drop(columns=[time_col]), y


def _check_folds(splits, y, scoring, func: str) -> None:
    """Each training window needs both classes; scored windows need positives."""
    y = np.asarray(y)
    if type_of_target(y) != "binary":
        return
    positive = _python(np.unique(y)[-1])
    for k, (train, test) in enumerate(splits):
        if len(np.unique(y[train])) < 2:
            raise ValueError(
                f"{func}: fold {k} trains on rows {train.min()}-{train.max()}, which hold "
                f"only class {_python(y[train][0])!r}. Use fewer splits (cv), or more data."
            )
        if scoring in _NEEDS_POSITIVES and not np.any(y[test] == positive):
            raise ValueError(
                f"{func}: fold {k} tests on rows {test.min()}-{test.max()}, which hold no "
                f"positive ({positive!r}), so {scoring!r} is undefined there. Use fewer splits "
                "(cv), or more data."
            )


# --------------------------------------------------------------------------- results


def _python(value):
    """Return a numpy scalar as the Python number it holds; other values unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _params_key(params: dict) -> str:
    return repr(sorted(params.items(), key=lambda item: item[0]))


def _results_frame(rows: list[dict], n_splits: int, halving: bool) -> pd.DataFrame:
    """Build the one-row-per-candidate table and rank it (later halving iterations first)."""
    frame = pd.DataFrame(rows)
    names = sorted({k for row in rows for k in row["params"]})
    for name in names:
        frame[f"param_{name}"] = pd.Series(
            [row["params"].get(name) for row in rows], index=frame.index, dtype=object
        )
    order = frame.assign(_iter=frame["iter"] if halving else 0).sort_values(
        ["_iter", "mean_test_score"], ascending=False, kind="stable"
    )
    ranks = np.empty(len(frame), dtype=int)
    previous, rank = None, 0
    for position, (index, row) in enumerate(order.iterrows(), start=1):
        current = (row["_iter"], row["mean_test_score"])
        if current != previous:
            rank, previous = position, current
        ranks[frame.index.get_loc(index)] = rank
    frame["rank_test_score"] = ranks
    frame.insert(0, "candidate", np.arange(len(frame)))
    splits = [f"split{k}_test_score" for k in range(n_splits)]
    columns = ["candidate", "params", *(f"param_{n}" for n in names)]
    columns += ["mean_test_score", "std_test_score", *splits, "mean_fit_time", "rank_test_score"]
    if halving:
        columns += ["iter", "n_resources"]
    return frame[columns]


def _from_sklearn(search, n_splits: int, halving: bool) -> pd.DataFrame:
    """One row per candidate from sklearn's cv_results_ (halving: its last evaluation)."""
    results = search.cv_results_
    rows: dict[str, dict] = {}
    for i, params in enumerate(results["params"]):
        row = {
            "params": {k: _python(v) for k, v in params.items()},
            "mean_test_score": float(results["mean_test_score"][i]),
            "std_test_score": float(results["std_test_score"][i]),
            "mean_fit_time": float(results["mean_fit_time"][i]),
        }
        row |= {
            f"split{k}_test_score": float(results[f"split{k}_test_score"][i])
            for k in range(n_splits)
        }
        if halving:
            row |= {"iter": int(results["iter"][i]), "n_resources": int(results["n_resources"][i])}
        rows[_params_key(params)] = row  # a later iteration overwrites, keeping first order
    return _results_frame(list(rows.values()), n_splits, halving)


@contextmanager
def _quiet_optuna():
    """Silence Optuna's per-trial INFO lines for the duration of a search."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _suggest(trial, key: str, value):
    if isinstance(value, _Range):
        if value.kind == "int":
            return trial.suggest_int(key, int(value.low), int(value.high), log=value.log)
        return trial.suggest_float(key, float(value.low), float(value.high), log=value.log)
    if all(isinstance(v, _OPTUNA_CHOICE_TYPES) for v in value):
        return trial.suggest_categorical(key, value)
    return value[trial.suggest_categorical(key, list(range(len(value))))]  # e.g. estimators


def _run_optuna(pipeline, space, X, y, splits, scoring, n_iter, random_state, n_jobs):
    """TPE over the space, each trial scored by cross_validate on the shared folds."""
    scorer = check_scoring(pipeline, scoring=scoring)
    rows: dict[str, dict] = {}

    def objective(trial):
        params = {key: _suggest(trial, key, value) for key, value in space.items()}
        key = _params_key(params)
        if key not in rows:  # TPE may propose a candidate again: reuse its score
            scores = cross_validate(
                clone(pipeline).set_params(**params),
                X,
                y,
                cv=splits,
                scoring=scorer,
                n_jobs=n_jobs,
                error_score="raise",
            )
            test = scores["test_score"]
            rows[key] = {
                "params": params,
                "mean_test_score": float(np.mean(test)),
                "std_test_score": float(np.std(test)),
                "mean_fit_time": float(np.mean(scores["fit_time"])),
            } | {f"split{k}_test_score": float(s) for k, s in enumerate(test)}
        return rows[key]["mean_test_score"]

    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=random_state)
        )
        study.optimize(objective, n_trials=n_iter)
    frame = _results_frame(list(rows.values()), len(splits), halving=False)
    best = frame.loc[frame["mean_test_score"].idxmax()]
    best_params = dict(best["params"])
    best_estimator = clone(pipeline).set_params(**best_params).fit(X, y)
    return best_params, float(best["mean_test_score"]), best_estimator, frame


def _run_sklearn(pipeline, spaces, X, y, splits, strategy, scoring, n_iter, random_state, n_jobs):
    """Grid, random or halving search with sklearn's search estimators."""
    common = {
        "scoring": scoring,
        "cv": splits,
        "n_jobs": n_jobs,
        "refit": True,
        "error_score": "raise",
        "return_train_score": False,
    }
    grid = _is_grid(spaces)
    grid_size = len(ParameterGrid(spaces)) if grid else None
    n_random = min(n_iter, grid_size) if grid else n_iter
    space = spaces if len(spaces) > 1 else spaces[0]
    if strategy == "grid":
        search = GridSearchCV(pipeline, space, **common)
    elif strategy == "random":
        search = RandomizedSearchCV(
            pipeline, _to_sklearn(spaces), n_iter=n_random, random_state=random_state, **common
        )
    else:
        n_candidates = grid_size if grid else n_random
        halving = {
            "factor": _HALVING_FACTOR,
            "min_resources": _halving_min_resources(y, splits, n_candidates),
            "random_state": random_state,
        }
        if grid:
            search = HalvingGridSearchCV(pipeline, space, **halving, **common)
        else:
            search = HalvingRandomSearchCV(
                pipeline, _to_sklearn(spaces), n_candidates=n_candidates, **halving, **common
            )
    search.fit(X, y)
    frame = _from_sklearn(search, len(splits), halving=strategy == "halving")
    best_params = {k: _python(v) for k, v in search.best_params_.items()}
    return best_params, float(search.best_score_), search.best_estimator_, frame


def _halving_min_resources(y, splits, n_candidates: int) -> int:
    """Rows of the first halving round: as many rounds as the positives allow.

    Halving subsamples every training AND test window by ``n_resources / n_samples``;
    with ~1 % fraud a small round would score windows without a single positive. The
    first round keeps a fraction ``f`` of the rows such that a window with ``k``
    positives loses them all with probability ``(1 - f) ** k <= _HALVING_P_NO_POSITIVE``,
    and the rounds multiply it by ``factor`` up to (nearly) all rows, so the best
    candidates are scored like a grid search would score them. Too few positives: one
    round, i.e. a plain grid.
    """
    y = np.asarray(y)
    n_samples = len(y)
    smallest = len(splits) * 2 * len(np.unique(y))  # sklearn's own floor
    required = 1 + math.floor(math.log(n_candidates, _HALVING_FACTOR))
    rounds = required
    if type_of_target(y) == "binary":
        positive = np.unique(y)[-1]
        counts = [int(np.sum(y[idx] == positive)) for fold in splits for idx in fold]
        fewest = min((c for c in counts if c > 0), default=0)
        if fewest:
            fraction = 1 - _HALVING_P_NO_POSITIVE ** (1 / fewest)
            possible = 1 + math.floor(math.log(1 / fraction, _HALVING_FACTOR) + 1e-9)
            rounds = max(1, min(required, possible))
    return max(smallest, n_samples // _HALVING_FACTOR ** (rounds - 1))


# --------------------------------------------------------------------------- entry point


def run_search(
    pipeline,
    param_space,
    X,
    y,
    *,
    strategy: str = "grid",
    cv=5,
    scoring="average_precision",
    n_iter: int = 20,
    time_col: str | None = None,
    random_state: int = 42,
    experiment: str | None = None,
    run_name: str | None = None,
    log: bool = True,
    n_jobs: int | None = 1,
) -> SearchResult:
    """Search a pipeline's hyperparameters with time-aware cross-validation.

    Parameters
    ----------
    pipeline : estimator
        An unfitted scikit-learn estimator, typically
        ``Pipeline([("preprocess", ColumnTransformer(...)), ("model", estimator)])``.
        It is cloned, never modified. Give its stochastic steps a ``random_state``
        for reproducible scores.
    param_space : dict or list of dict
        ``{parameter name: values}``; see the module docstring for the format
        (lists, ``("int", low, high[, "log"])``, ``("float", low, high[, "log"])``,
        scipy distributions).
    X : pandas.DataFrame of shape (n_samples, n_features)
        Transactions in time order (oldest first).
    y : array-like of shape (n_samples,)
        Labels, e.g. ``is_fraud``.
    strategy : {"grid", "random", "halving", "optuna"}, default="grid"
        ``"grid"``: :class:`~sklearn.model_selection.GridSearchCV` (every combination;
        ``n_iter`` ignored). ``"random"``: :class:`~sklearn.model_selection.RandomizedSearchCV`
        with ``n_iter`` draws (at most the grid size when every value is a list).
        ``"halving"``: successive halving, :class:`~sklearn.model_selection.HalvingGridSearchCV`
        when every value is a list, else :class:`~sklearn.model_selection.HalvingRandomSearchCV`
        with ``n_iter`` candidates; it scores all candidates on random subsamples of each
        training and test window and keeps the best third for the next round, on three times
        more rows, the last round using (nearly) all rows. The first round is large enough
        that every subsampled window keeps a positive with 99.9 % probability: rare positives
        mean fewer rounds (with ~10 positives per window, one round: a plain grid search).
        ``"optuna"``: ``n_iter`` trials of an Optuna study with
        ``TPESampler(seed=random_state)``; a candidate proposed twice is scored once.
    cv : int or CV splitter, default=5
        An int ``k >= 2`` means ``TimeSeriesSplit(n_splits=k)``: fold ``i`` trains on the
        rows before its test window. A splitter (e.g. ``TimeSeriesSplit(gap=1000)``) is
        used as given, but must not shuffle. The folds are computed once and shared by
        every candidate.
    scoring : str or callable, default="average_precision"
        A scikit-learn scorer name or callable; higher is better.
    n_iter : int, default=20
        Candidates for ``"random"``, halving-random and ``"optuna"`` (trials).
    time_col : str, optional
        A column of ``X`` holding each row's time. ``X`` must already be sorted by it
        (checked, never re-sorted: re-sorting X silently would misalign a y given as an
        array); the column is then DROPPED before fitting, as a timestamp orders the rows
        but is not a feature (a model fitted on it learns the calendar). Pass the
        remaining columns at prediction time. Without ``time_col``, the row order is
        taken as the time order.
    random_state : int, default=42
        Seed of the random, halving and Optuna samplers. Same inputs, same result.
    experiment : str, optional
        MLflow experiment for the runs; defaults to ``"tuning"``.
    run_name : str, optional
        Name of the parent run; defaults to ``"<strategy>-search"``. Candidate runs are
        named ``"<run_name>-<candidate>"``.
    log : bool, default=True
        Log the search with :func:`production.tracking.log_search`: a parent run
        (params ``strategy``, ``cv``, ``n_splits``, ``scoring``, ``random_state``,
        ``n_candidates``, ``best.<param>``; metrics ``cv_<scoring>`` = best score,
        ``cv_<scoring>_std``, ``search_time_s``; the best pipeline as model ``"model"``;
        artifacts ``search/cv_results.csv`` and ``search/cv_results.png``) and one nested
        run per candidate (its params; metrics ``cv_<scoring>``, ``cv_<scoring>_std``,
        ``fit_time_s``; no model).
    n_jobs : int, optional
        Parallel fits (``-1``: all cores). Optuna trials stay sequential (for
        determinism); their folds run in parallel.

    Returns
    -------
    SearchResult
        Best parameters, score and refitted pipeline, the per-candidate table, the parent
        run id and timings.

    Raises
    ------
    TypeError
        If ``pipeline``, ``param_space``, ``X``, ``cv``, ``scoring`` or an integer
        parameter has the wrong type.
    ValueError
        For an unknown ``strategy``, parameter name (the message lists the valid keys) or
        value format; ``cv < 2`` or a shuffling splitter; an unknown scorer; ``X`` not
        sorted by ``time_col``; a fold whose training window holds one class, or (for
        ranking scorers such as average precision) whose test window holds no positive.

    Examples
    --------
    >>> result = run_search(
    ...     pipeline,
    ...     {"model__max_depth": [3, 5], "model__learning_rate": [0.05, 0.1]},
    ...     X,
    ...     y,
    ...     time_col="tx_datetime",
    ...     experiment="fraud-tuning",
    ... )  # doctest: +SKIP
    >>> result.best_params_, round(result.best_score_, 3)  # doctest: +SKIP
    """
    func = "run_search"
    started = time.perf_counter()
    if strategy not in STRATEGIES:
        raise ValueError(
            f"The 'strategy' parameter of {func} must be one of {list(STRATEGIES)}. "
            f"Got {strategy!r} instead."
        )
    if not (hasattr(pipeline, "fit") and hasattr(pipeline, "get_params")):
        raise TypeError(
            f"The 'pipeline' parameter of {func} must be a scikit-learn estimator such as a "
            f"Pipeline. Got {type(pipeline).__name__} instead."
        )
    spaces = _parse_space(param_space, pipeline, strategy, func)
    splitter = _check_cv(cv, func)
    scoring_name = _check_scoring(scoring, func)
    _check_int(n_iter, "n_iter", func, 1)
    _check_int(random_state, "random_state", func, 0)
    if n_jobs is not None and (not _is_int(n_jobs) or n_jobs == 0):
        raise (TypeError if not _is_int(n_jobs) else ValueError)(
            f"The 'n_jobs' parameter of {func} must be None or a non-zero int. "
            f"Got {n_jobs!r} instead."
        )
    if not isinstance(log, bool):
        raise TypeError(f"The 'log' parameter of {func} must be a bool. Got {log!r} instead.")
    X_fit, y = _check_data(X, y, time_col, func)
    try:
        splits = list(splitter.split(X_fit, y))
    except ValueError as err:
        raise ValueError(f"{func}: cv={splitter!r} cannot split {len(y)} rows: {err}") from err
    _check_folds(splits, y, scoring_name, func)

    if strategy == "optuna":
        best_params, best_score, best_estimator, frame = _run_optuna(
            pipeline, spaces[0], X_fit, y, splits, scoring, n_iter, random_state, n_jobs
        )
    else:
        best_params, best_score, best_estimator, frame = _run_sklearn(
            pipeline, spaces, X_fit, y, splits, strategy, scoring, n_iter, random_state, n_jobs
        )
    result = SearchResult(
        best_params_=best_params,
        best_score_=best_score,
        best_estimator_=best_estimator,
        cv_results=frame,
        parent_run_id=None,
        strategy=strategy,
        n_candidates=len(frame),
        elapsed_s=time.perf_counter() - started,
        scoring=scoring_name,
        cv=splitter,
    )
    if log:
        uses_n_iter = strategy in ("random", "optuna") or (
            strategy == "halving" and not _is_grid(spaces)
        )
        logging_started = time.perf_counter()
        result.parent_run_id = _log_search(
            result,
            X_fit,
            experiment=experiment or "tuning",
            run_name=run_name or f"{strategy}-search",
            n_splits=len(splits),
            n_iter=n_iter if uses_n_iter else None,
            random_state=random_state,
            time_col=time_col,
        )
        result.log_elapsed_s = time.perf_counter() - logging_started
    result.elapsed_s = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- logging, plot


def _loggable(value):
    """Return a JSON-friendly parameter value (estimators and the like as text)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _OPTUNA_CHOICE_TYPES):
        return value
    return repr(value)


def _log_search(result: SearchResult, X, *, experiment, run_name, n_splits, n_iter, **extra):
    """Send the search to production.tracking.log_search (imports mlflow only now)."""
    from production.tracking import log_search

    metric = f"cv_{result.scoring}"  # e.g. cv_average_precision
    frame = result.cv_results
    best_row = frame.loc[frame["rank_test_score"].idxmin()]
    params = {
        "strategy": result.strategy,
        "cv": repr(result.cv),
        "n_splits": n_splits,
        "scoring": result.scoring,
        "n_candidates": result.n_candidates,
        "n_rows": len(X),
        **extra,
    }
    if n_iter is not None:
        params["n_iter"] = n_iter
    params |= {f"best.{k}": _loggable(v) for k, v in result.best_params_.items()}
    children = [
        {
            "run_name": f"{run_name}-{int(row.candidate):03d}",
            "params": {k: _loggable(v) for k, v in row.params.items()},
            "metrics": {
                metric: row.mean_test_score,
                f"{metric}_std": row.std_test_score,
                "fit_time_s": row.mean_fit_time,
            },
            "tags": {"candidate": int(row.candidate), "rank": int(row.rank_test_score)},
        }
        for row in frame.itertuples(index=False)
    ]
    table = frame.drop(columns=[c for c in frame.columns if c.startswith("param_")]).assign(
        params=[json.dumps({k: _loggable(v) for k, v in p.items()}) for p in frame["params"]]
    )
    figure = plot_search_results(frame, scoring=result.scoring)
    return log_search(
        experiment,
        run_name=run_name,
        params=params,
        metrics={
            metric: result.best_score_,
            f"{metric}_std": float(best_row["std_test_score"]),
            "search_time_s": result.elapsed_s,
        },
        tags={"search.strategy": result.strategy, "search.metric": metric},
        children=children,
        model=result.best_estimator_,
        input_example=X.head(5) if isinstance(X, pd.DataFrame) else X[:5],
        figures={"search/cv_results.png": figure},
        tables={"search/cv_results.csv": table},
    )


def plot_search_results(cv_results: pd.DataFrame, *, scoring: str = "score") -> Figure:
    """Plot each candidate's mean CV score with its standard deviation across folds.

    Parameters
    ----------
    cv_results : pandas.DataFrame
        ``SearchResult.cv_results``.
    scoring : str, default="score"
        Label of the y axis.

    Returns
    -------
    matplotlib.figure.Figure
        Candidates in evaluation order; the best (rank 1) in red. Closed in pyplot, so a
        notebook shows it once.

    Raises
    ------
    ValueError
        If a needed column is missing.

    Examples
    --------
    >>> fig = plot_search_results(result.cv_results, scoring=result.scoring)  # doctest: +SKIP
    """
    needed = ["candidate", "mean_test_score", "std_test_score", "rank_test_score"]
    missing = [c for c in needed if c not in getattr(cv_results, "columns", [])]
    if missing:
        raise ValueError(
            f"plot_search_results: cv_results lacks column(s) {missing}; pass "
            "SearchResult.cv_results."
        )
    best = cv_results["rank_test_score"].to_numpy() == 1
    fig = plt.figure(figsize=(max(6.0, 0.25 * len(cv_results) + 2), 4))
    ax = fig.add_subplot()
    for mask, color, label in ((~best, "tab:blue", "candidate"), (best, "tab:red", "best")):
        ax.errorbar(
            cv_results["candidate"][mask],
            cv_results["mean_test_score"][mask],
            yerr=cv_results["std_test_score"][mask],
            fmt="o",
            color=color,
            capsize=3,
            label=label,
        )
    ax.set_xlabel("candidate")
    ax.set_ylabel(f"mean CV {scoring} (± std over folds)")
    ax.set_title(f"{len(cv_results)} candidates")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig

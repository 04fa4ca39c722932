"""What hyperparameter searches on transactions need beyond scikit-learn and Optuna.

The searches are the libraries' objects, built in the notebook (``GridSearchCV``,
``RandomizedSearchCV`` with ``scipy.stats`` distributions, ``HalvingRandomSearchCV``, an
Optuna study). This module adds time-ordered folds (:func:`time_ordered_cv`), a check that
no fold learns from the future (:func:`check_time_ordered_cv`), fast logging of a fitted
search as nested MLflow runs (:func:`log_search`) and a plot (:func:`plot_search_results`).
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from production._validation import Interval, InvalidParameterError, check_frame, validate_params
from production.tracking import SEARCH_TAG, log_child_runs, log_run

__all__ = ["time_ordered_cv", "check_time_ordered_cv", "log_search", "plot_search_results"]


@validate_params(n_splits=Interval(int, 2, None), gap_days=Interval(float, 0, None))
def time_ordered_cv(
    frame: pd.DataFrame, time_col: str = "tx_datetime", n_splits: int = 3, gap_days: float = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``(train, test)`` row positions of folds that train on the past only.

    The rows, ordered by the datetime64 ``time_col`` (``frame`` need not be sorted), are
    cut into ``n_splits + 1`` blocks of equal size. Fold ``k`` tests on block ``k + 1`` and
    trains on every row at least ``gap_days`` days older than that block's first row (the
    gap stands for labels not known yet): ``TimeSeriesSplit`` with a gap in days. Pass
    the list as ``cv=`` to a search, ``cross_val_score`` or ``cross_validate``.

    Raises
    ------
    InvalidParameterError
        If ``time_col`` is missing, not datetime64 or has missing times, or the gap
        leaves a fold without training rows.
    """
    where = "time_ordered_cv"
    check_frame(frame, where, datetime_columns=[time_col])
    times = frame[time_col].to_numpy()
    if pd.isna(times).any():
        raise InvalidParameterError(f"{where}: column '{time_col}' has missing times.")
    order = np.argsort(times, kind="stable")
    gap = np.timedelta64(pd.Timedelta(days=gap_days))
    folds = []
    for k, test in enumerate(np.array_split(order, n_splits + 1)[1:]):
        start = times[test[0]]
        train = np.flatnonzero(times < start - gap)
        if len(train) == 0:
            raise InvalidParameterError(
                f"{where}: fold {k} has no training rows: its test rows start at {start} and "
                f"gap_days={gap_days} leaves nothing before. Use fewer splits or a smaller gap."
            )
        folds.append((train, np.sort(test)))
    return folds


def check_time_ordered_cv(cv, frame: pd.DataFrame | None = None, *, time_col: str = "tx_datetime"):
    """Return the folds of ``cv`` after checking that none tests on rows before it trains.

    Parameters
    ----------
    cv : CV splitter or iterable of (train, test)
        What a search would get as ``cv=``, e.g. ``time_ordered_cv(...)``.
    frame : pandas.DataFrame, optional
        The rows the folds index, ordered by ``time_col``; without it, rows are ordered
        by position (and a splitter cannot compute its folds).

    Raises
    ------
    InvalidParameterError
        Naming the problem: an int ``cv`` (scikit-learn's K-fold ignores time), a splitter
        with ``shuffle=True``, or the first fold whose test rows precede training rows.
    """
    where, fix = "check_time_ordered_cv", "Use time_ordered_cv(...) or TimeSeriesSplit."
    if isinstance(cv, numbers.Integral):
        raise InvalidParameterError(f"{where}: cv={cv} means K-fold, which ignores time. {fix}")
    if getattr(cv, "shuffle", False):
        raise InvalidParameterError(
            f"{where}: {cv!r} shuffles the rows, so its folds train on transactions that "
            f"come after the ones they test. {fix}"
        )
    if frame is not None:
        check_frame(frame, where, datetime_columns=[time_col])
    if hasattr(cv, "split"):
        if frame is None:
            raise InvalidParameterError(f"{where}: pass frame to compute the folds of {cv!r}.")
        cv = cv.split(frame)
    folds = [(np.asarray(train), np.asarray(test)) for train, test in cv]
    times = frame[time_col].to_numpy() if frame is not None else None
    for k, (train, test) in enumerate(folds):
        train_times, test_times = (train, test) if times is None else (times[train], times[test])
        if test_times.min() < train_times.max():
            raise InvalidParameterError(
                f"{where}: fold {k} tests on rows from {test_times.min()} but trains on rows "
                f"up to {train_times.max()}: its test rows precede training rows. {fix}"
            )
    return folds


def _candidates(search, metric: str) -> tuple[list[dict], dict, dict]:
    """Return one child per candidate, the parent's params and its metrics."""
    if hasattr(search, "cv_results_"):  # a fitted scikit-learn search
        results, best = search.cv_results_, search.best_index_
        children = [
            {
                "params": params,
                "metrics": {
                    metric: results["mean_test_score"][i],
                    f"{metric}_std": results["std_test_score"][i],
                    "fit_time_s": results["mean_fit_time"][i],
                    **{k: results[k][i] for k in ("iter", "n_resources") if k in results},
                },
                "tags": {"rank": results["rank_test_score"][i]},
            }
            for i, params in enumerate(results["params"])
        ]
        cv = search.cv if not isinstance(search.cv, list | tuple) else "index folds"
        parent = {"search": type(search).__name__, "cv": cv, "n_splits": search.n_splits_}
        return children, parent, children[best]["metrics"]
    trials = [t for t in search.trials if t.value is not None]  # an Optuna study
    children = [{"params": t.params, "metrics": {metric: t.value}} for t in trials]
    parent = {"search": "optuna", "sampler": type(search.sampler).__name__}
    return children, parent, {metric: search.best_value}


def log_search(
    search,
    *,
    experiment: str,
    run_name: str | None = None,
    metric: str | None = None,
    input_example=None,
    log_model: bool = True,
) -> str:
    """Log a fitted search as a parent run with one nested run per candidate; return its id.

    The parent holds the search's settings, the best parameters (``best.<name>``), the
    best mean CV score as ``metric`` (and ``<metric>_std``) and, if ``log_model``, the
    refitted ``best_estimator_`` as model ``"model"`` (for ``register_best_model``). Each
    candidate is a finished child run with its parameters and scores: three requests.

    Parameters
    ----------
    search : fitted search or optuna.Study
        A fitted ``GridSearchCV``, ``RandomizedSearchCV``, ``HalvingRandomSearchCV`` (one
        scorer), or an Optuna study after ``optimize``.
    run_name : str, optional
        Name of the parent run; children are named ``<run_name>-<candidate>``.
    metric : str, optional
        Name of the score; defaults to ``cv_<scoring>`` (e.g. ``cv_average_precision``),
        ``cv_score`` for a callable scorer or a study.
    input_example : pandas.DataFrame, optional
        A few input rows for the model's signature.

    Raises
    ------
    InvalidParameterError
        If ``search`` is neither a fitted search nor a study with finished trials.
    """
    fitted = hasattr(search, "cv_results_") and hasattr(search, "best_index_")
    if not fitted and not (hasattr(search, "trials") and hasattr(search, "best_value")):
        raise InvalidParameterError(
            "log_search: search must be a fitted scikit-learn search (call search.fit(X, y) "
            f"first) or an Optuna study. Got {type(search).__name__} instead."
        )
    scoring = getattr(search, "scoring", None)
    metric = metric or f"cv_{scoring if isinstance(scoring, str) else 'score'}"
    children, params, best = _candidates(search, metric)
    run_name = run_name or params["search"]
    best_params = search.best_params_ if fitted else search.best_params
    params |= {"scoring": metric, "n_candidates": len(children)}
    params |= {f"best.{key}": value for key, value in best_params.items()}
    model = getattr(search, "best_estimator_", None) if log_model else None
    parent_id = log_run(
        experiment,
        run_name=run_name,
        params=params,
        metrics=best,
        tags={SEARCH_TAG: params["search"]},
        model=model,
        input_example=input_example,
    )
    for i, child in enumerate(children):
        child["run_name"] = f"{run_name}-{i:03d}"
    log_child_runs(parent_id, children)
    return parent_id


def plot_search_results(search) -> Figure:
    """Plot each candidate's mean CV score ± its standard deviation over the folds.

    ``search`` is a fitted scikit-learn search (InvalidParameterError otherwise): one
    point per row of ``cv_results_``, the best in red. The figure is closed in pyplot, so
    a notebook shows it once.
    """
    if not hasattr(search, "cv_results_"):
        raise InvalidParameterError(
            "plot_search_results: search has no cv_results_; call search.fit(X, y) first."
        )
    results = pd.DataFrame(search.cv_results_)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(results) + 2), 3.5))
    mean, std = results["mean_test_score"], results["std_test_score"]
    ax.errorbar(results.index, mean, yerr=std, fmt="o", capsize=3, label="candidate")
    best = results["rank_test_score"].idxmin()
    ax.errorbar(best, mean[best], yerr=std[best], fmt="o", capsize=3, color="tab:red", label="best")
    scoring = search.scoring if isinstance(search.scoring, str) else "score"
    ax.set(
        xlabel="candidate", ylabel=f"mean CV {scoring} (± std)", title=f"{len(results)} candidates"
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig

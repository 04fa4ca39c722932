"""Monitor a deployed model: data drift and performance over time. Pure: no I/O.

Drift compares a ``reference`` sample with a ``current`` one, feature by feature: the
:func:`psi` effect size (< 0.1 stable, > 0.2 large) and the tests :func:`ks_test` and
:func:`chi2_test`. :func:`performance_over_time` uses only the labels known at a date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from production._validation import (
    Instance,
    Interval,
    InvalidParameterError,
    as_timestamp,
    check_frame,
    column_list,
    validate_params,
)

__all__ = [
    "PSI_EPSILON",
    "chi2_test",
    "drift_report",
    "ks_test",
    "performance_over_time",
    "plot_drift_report",
    "psi",
]

#: Proportion given to an empty bin (or a category absent from one sample): the PSI stays finite.
PSI_EPSILON = 1e-4

_REPORT_COLUMNS = ["feature", "kind", "psi", "statistic", "p_value", "drifted"]
_METRICS = ["average_precision", "roc_auc", "precision", "recall"]
_PERFORMANCE_COLUMNS = ["period", "n", "n_labelled", "positives", "flagged", *_METRICS]


def _is_categorical(values: pd.Series) -> bool:
    """Return True for non-numeric or boolean data."""
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _clean(reference, current, where: str, kind=None) -> tuple[pd.Series, pd.Series, bool]:
    """Return both samples without missing values, and whether they are categorical."""
    ref, cur = pd.Series(reference).dropna(), pd.Series(current).dropna()
    for name, sample in (("reference", ref), ("current", cur)):
        if len(sample) == 0:
            raise InvalidParameterError(f"{where}: {name} has no non-missing values.")
    categorical = _is_categorical(ref)
    if categorical != _is_categorical(cur) or kind not in (None, categorical):
        expected = {None: "of one kind", False: "numeric", True: "categorical"}[kind]
        raise InvalidParameterError(
            f"{where}: reference (dtype {ref.dtype}) and current (dtype {cur.dtype}) must "
            f"both be {expected}: use ks_test for numbers, chi2_test for categories."
        )
    return (ref.astype(object), cur.astype(object), True) if categorical else (ref, cur, False)


def _counts(ref: pd.Series, cur: pd.Series, categorical: bool, bins: int):
    """Count both samples per category, or in right-closed quantile bins of the reference."""
    if categorical:
        counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0)
        return counts.iloc[:, 0].to_numpy(), counts.iloc[:, 1].to_numpy()
    ref_values, cur_values = ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)
    # inner edges only: values outside the reference range fall in the outer bins
    inner = np.unique(np.quantile(ref_values, np.linspace(0, 1, bins + 1))[1:-1])
    return tuple(
        np.bincount(np.searchsorted(inner, values, side="left"), minlength=len(inner) + 1)
        for values in (ref_values, cur_values)
    )


@validate_params(bins=Interval(int, 2, None))
def psi(reference, current, *, bins: int = 10) -> float:
    """Compute the Population Stability Index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over the shares ``r_i``, ``c_i`` of the
    samples in bin ``i``: quantile bins of the reference for numbers, one bin per category
    otherwise. Empty shares become :data:`PSI_EPSILON`; missing values are ignored.

    Parameters
    ----------
    reference, current : array-like or pandas.Series
        Baseline sample and sample to compare, both numeric or both categorical.
    bins : int, default=10
        Number of quantile bins for numeric data.

    Returns
    -------
    float
        The PSI, >= 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(psi(rng.normal(size=5000), rng.normal(0.5, 1, size=5000)), 2)
    0.27
    """
    ref, cur, categorical = _clean(reference, current, "psi")
    ref_p, cur_p = (
        np.maximum(c / c.sum(), PSI_EPSILON) for c in _counts(ref, cur, categorical, bins)
    )
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def ks_test(reference, current) -> tuple[float, float]:
    """Run the two-sample Kolmogorov-Smirnov test on numeric data (missing values ignored).

    Parameters
    ----------
    reference, current : array-like or pandas.Series
        Numeric samples.

    Returns
    -------
    statistic, p_value : float
        Largest gap between the empirical CDFs; p-value of :func:`scipy.stats.ks_2samp`.
    """
    ref, cur, _ = _clean(reference, current, "ks_test", kind=False)
    result = stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
    return float(result.statistic), float(result.pvalue)


def chi2_test(reference, current) -> tuple[float, float]:
    """Test that two samples share the same category shares (chi-squared, scipy's defaults).

    Parameters
    ----------
    reference, current : array-like or pandas.Series
        Categorical samples (strings, category or bool); missing values are ignored.

    Returns
    -------
    statistic, p_value : float
        (0.0, 1.0) when only one category occurs.
    """
    ref, cur, _ = _clean(reference, current, "chi2_test", kind=True)
    ref_counts, cur_counts = _counts(ref, cur, True, 0)
    if len(ref_counts) < 2:  # a single category
        return 0.0, 1.0
    result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    return float(result.statistic), float(result.pvalue)


def _report_columns(reference, current, numeric_cols, categorical_cols):
    """Resolve the numeric and categorical columns a drift report checks."""
    where = "drift_report"
    numeric, categorical = (
        None if cols is None else column_list(cols, name, where)
        for cols, name in ((numeric_cols, "numeric_cols"), (categorical_cols, "categorical_cols"))
    )
    listed = [*(numeric or []), *(categorical or [])]
    check_frame(reference, where, name="reference", columns=listed)
    both = sorted(set(numeric or []) & set(categorical or []))
    if both:
        raise InvalidParameterError(f"{where}: column(s) {both} are both numeric and categorical.")
    if numeric is None:
        numeric = [c for c in reference if not _is_categorical(reference[c]) and c not in listed]
    if categorical is None:
        categorical = [c for c in reference if _is_categorical(reference[c]) and c not in numeric]
    check_frame(current, where, name="current", columns=[*numeric, *categorical])
    wrong = [c for c in numeric if _is_categorical(reference[c]) or _is_categorical(current[c])]
    if wrong:
        raise InvalidParameterError(
            f"{where}: column(s) {wrong} in numeric_cols are not numeric; list them in categorical_cols."
        )
    return numeric, categorical


@validate_params(psi_threshold=Interval(float, 0, None), p_value_threshold=Interval(float, 0, 1))
def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric_cols: list[str] | None = None,
    categorical_cols: list[str] | None = None,
    psi_threshold: float = 0.2,
    p_value_threshold: float = 0.01,
) -> pd.DataFrame:
    """Compare two samples column by column: the PSI and a two-sample test per feature.

    Numeric columns get the KS test, categorical ones the chi-squared test.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        Baseline sample and sample to compare, with the same columns.
    numeric_cols, categorical_cols : list of str, optional
        Columns to check; ``None``: the numeric (non-bool), resp. other, columns not listed.
    psi_threshold, p_value_threshold : float, default=0.2, 0.01
        A column is ``drifted`` from this PSI on, or below this p-value (0: tests off).

    Returns
    -------
    pandas.DataFrame
        One row per column: ``feature``, ``kind``, ``psi``, ``statistic``, ``p_value``,
        ``drifted``; ``attrs["psi_threshold"]`` keeps the threshold.
    """
    numeric, categorical = _report_columns(reference, current, numeric_cols, categorical_cols)
    rows = []
    for col in [*numeric, *categorical]:
        pair = [reference[col], current[col]]
        if col in categorical:  # a numeric code listed in categorical_cols is a category
            pair = [sample.astype(object) for sample in pair]
        ref, cur, is_categorical = _clean(*pair, f"drift_report: column {col!r}")
        kind = "categorical" if is_categorical else "numeric"
        statistic, p_value = chi2_test(ref, cur) if is_categorical else ks_test(ref, cur)
        value = psi(ref, cur)
        drifted = value >= psi_threshold or p_value < p_value_threshold
        rows.append([col, kind, value, statistic, p_value, drifted])
    report = pd.DataFrame(rows, columns=_REPORT_COLUMNS).astype({"drifted": bool})
    report.attrs["psi_threshold"] = float(psi_threshold)
    return report


def plot_drift_report(report: pd.DataFrame):
    """Draw the PSI of every feature as horizontal bars, drifted ones in red.

    Parameters
    ----------
    report : pandas.DataFrame
        Result of :func:`drift_report`; the line is at ``attrs["psi_threshold"]`` (or 0.2).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt  # optional here: the serving image has no matplotlib

    check_frame(report, "plot_drift_report", name="report", columns=["feature", "psi", "drifted"])
    psi_threshold = report.attrs.get("psi_threshold", 0.2)
    ordered = report.sort_values("psi", kind="stable")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(ordered) + 1.5))
    colors = np.where(ordered["drifted"].to_numpy(dtype=bool), "tab:red", "tab:grey")
    ax.barh(ordered["feature"].astype(str), ordered["psi"], color=colors)
    ax.axvline(psi_threshold, color="black", ls="--", label=f"PSI threshold {psi_threshold:g}")
    ax.set(xlabel="Population Stability Index", title="Feature drift (red: drifted)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)  # the returned figure still displays, once, in a notebook
    return fig


def _period_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> list:
    """Average precision, ROC AUC, precision and recall, NaN where undefined."""
    positives, flagged = int(labels.sum()), scores >= threshold
    return [
        average_precision_score(labels, scores) if positives else np.nan,
        roc_auc_score(labels, scores) if 0 < positives < len(labels) else np.nan,
        labels[flagged].mean() if flagged.any() else np.nan,
        labels[flagged].sum() / positives if positives else np.nan,
    ]


@validate_params(freq=Instance(str), threshold=Interval(float, None, None))
def performance_over_time(
    frame: pd.DataFrame,
    *,
    time_col: str,
    label_col: str,
    score_col: str,
    freq: str = "D",
    label_available_col: str | None = None,
    as_of=None,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Score a model period by period, with only the labels known at ``as_of``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per scored transaction.
    time_col, label_col, score_col : str
        Datetime column that sets the period; label (1/0, missing while unknown); score.
    freq : str, default="D"
        Period length, any pandas frequency ("h", "D", "W", "MS").
    label_available_col : str, optional
        Datetime column: when the label became known (missing: not yet).
    as_of : str or datetime-like, optional
        Only labels available by then count (needs ``label_available_col``).
    threshold : float, default=0.5
        Score from which a transaction is flagged (precision, recall).

    Returns
    -------
    pandas.DataFrame
        One row per period: counts, then metrics of the labelled rows (NaN if undefined).
    """
    where = "performance_over_time"
    times = [time_col, *([label_available_col] if label_available_col else [])]
    check_frame(frame, where, columns=[label_col, score_col], datetime_columns=times)
    if _is_categorical(frame[score_col]):
        raise InvalidParameterError(f"{where}: score column {score_col!r} must be numeric.")
    if as_of is not None and label_available_col is None:
        raise InvalidParameterError(f"{where}: as_of needs label_available_col.")
    labelled = frame[label_col].notna()
    if label_available_col is not None:
        available = frame[label_available_col]
        cutoff = as_timestamp(as_of, "as_of", where) if as_of is not None else available.max()
        labelled &= available.notna() & (available <= cutoff)
    bad = sorted({repr(v) for v in frame.loc[labelled, label_col] if v not in (0, 1)})
    if bad:
        raise InvalidParameterError(
            f"{where}: {label_col!r} must hold 0/1 or missing; found {bad[:5]}."
        )
    work = pd.DataFrame({"time": frame[time_col], "score": frame[score_col].astype(float)})
    work["labelled"], work["label"] = labelled, frame[label_col].where(labelled, 0).astype(int)
    rows = []
    for period, group in work.groupby(pd.Grouper(key="time", freq=freq)):
        known = group[group["labelled"]]
        labels, scores = known["label"].to_numpy(), known["score"].to_numpy()
        flagged = int((group["score"] >= threshold).sum())
        counts = [period, len(group), len(known), int(labels.sum()), flagged]
        rows.append(counts + _period_metrics(labels, scores, threshold))
    return pd.DataFrame(rows, columns=_PERFORMANCE_COLUMNS)

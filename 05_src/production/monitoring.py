"""Monitor a deployed model: data drift and performance over time.

Pure functions: DataFrames (or Series) in, numbers, DataFrames or Figures out;
no files, no printing.

Drift compares a ``reference`` sample (typically the training or validation
data, or last month's scores) with a ``current`` one, feature by feature:

* :func:`psi` -- Population Stability Index, an effect size that does not grow
  with the sample size. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift,
  > 0.2 significant shift.
* :func:`ks_test` (numeric) and :func:`chi2_test` (categorical) -- two-sample
  tests; on large samples they flag even tiny shifts, so read them with the PSI.
* :func:`drift_report` -- both, for every column, with a ``drifted`` flag;
  :func:`plot_drift_report` draws it.

:func:`performance_over_time` scores the model per period once labels (e.g.
chargebacks, which arrive weeks after the transaction) are known.
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "PSI_EPSILON",
    "chi2_test",
    "drift_report",
    "ks_test",
    "performance_over_time",
    "plot_drift_report",
    "psi",
]

#: Proportion given to an empty bin (or a category absent from one sample) so that
#: the PSI stays finite; it is not renormalised. An empty bin then adds at most
#: about ``p * ln(p / 1e-4)`` (0.46 for p = 0.05) instead of infinity.
PSI_EPSILON = 1e-4

_REPORT_COLUMNS = ["feature", "kind", "psi", "statistic", "p_value", "drifted"]


# ----------------------------------------------------------------------- statistics


def psi(reference, current, *, bins: int = 10) -> float:
    """Compute the Population Stability Index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over bins (numeric data) or
    categories (categorical data), where ``r_i`` and ``c_i`` are the
    proportions of the reference and current samples in bin ``i``.

    * Numeric data: ``bins`` quantile bins computed from the reference only,
      right-closed like :func:`pandas.qcut` (repeated quantiles, e.g. many
      zero amounts, merge into one bin). The outer bins are open-ended, so
      current values below (above) the reference range fall in the first
      (last) bin.
    * Categorical data (strings, ``category``, ``bool``): one bin per category
      seen in either sample, so categories unseen in the reference count.

    Proportions of zero are replaced by :data:`PSI_EPSILON` (1e-4) to keep the
    logarithm finite. Missing values are ignored (monitor the missing rate
    separately).

    Parameters
    ----------
    reference : array-like or pandas.Series
        Baseline sample.
    current : array-like or pandas.Series
        Sample to compare; same kind (numeric or categorical) as ``reference``.
    bins : int, default=10
        Number of quantile bins for numeric data (ignored for categorical data).

    Returns
    -------
    float
        The PSI, >= 0; 0 when both samples have the same bin proportions.

    Raises
    ------
    TypeError
        If one sample is numeric and the other categorical.
    ValueError
        If ``bins`` is not an int >= 2, or a sample has no non-missing value.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(psi(rng.normal(size=5000), rng.normal(0.5, 1, size=5000)), 2)
    0.27
    """
    func = "psi"
    if not _is_int(bins) or bins < 2:
        raise ValueError(
            f"The 'bins' parameter of {func} must be an int >= 2. Got {bins!r} instead."
        )
    ref, cur, categorical = _prepare_pair(reference, current, func)
    if categorical:
        ref_counts, cur_counts = _category_counts(ref, cur)
    else:
        ref_counts, cur_counts = _bin_counts(ref, cur, bins)
    return _psi_from_counts(ref_counts, cur_counts)


def ks_test(reference, current) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test for numeric data.

    Parameters
    ----------
    reference : array-like or pandas.Series
        Baseline numeric sample.
    current : array-like or pandas.Series
        Numeric sample to compare. Missing values are ignored in both.

    Returns
    -------
    statistic : float
        Largest distance between the two empirical CDFs.
    p_value : float
        Two-sided p-value of :func:`scipy.stats.ks_2samp`.

    Raises
    ------
    TypeError
        If either sample is not numeric.
    ValueError
        If a sample has no non-missing value.

    Examples
    --------
    >>> statistic, p_value = ks_test([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0])
    >>> statistic
    0.5
    """
    ref, cur, categorical = _prepare_pair(reference, current, "ks_test")
    if categorical:
        raise TypeError(
            "ks_test: reference and current must be numeric; use chi2_test for categorical data."
        )
    result = stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
    return float(result.statistic), float(result.pvalue)


def chi2_test(reference, current) -> tuple[float, float]:
    """Chi-squared test that two samples share the same category proportions.

    The contingency table has two rows (reference, current) and one column per
    category seen in either sample, so categories unseen in the reference
    count. Computed by :func:`scipy.stats.chi2_contingency` with its defaults
    (Yates' continuity correction when there are exactly two categories).

    Parameters
    ----------
    reference : array-like or pandas.Series
        Baseline sample of categories (strings, ``category`` or ``bool``).
    current : array-like or pandas.Series
        Sample to compare. Missing values are ignored in both.

    Returns
    -------
    statistic : float
        Chi-squared statistic (0.0 when only one category occurs).
    p_value : float
        Its p-value (1.0 when only one category occurs).

    Raises
    ------
    TypeError
        If either sample is numeric.
    ValueError
        If a sample has no non-missing value.

    Examples
    --------
    >>> statistic, p_value = chi2_test(["web"] * 50 + ["pos"] * 50, ["web"] * 80 + ["pos"] * 20)
    >>> p_value < 0.01
    True
    """
    ref, cur, categorical = _prepare_pair(reference, current, "chi2_test")
    if not categorical:
        raise TypeError(
            "chi2_test: reference and current must be categorical (strings, category or bool); "
            "use ks_test for numeric data."
        )
    return _chi2_from_counts(*_category_counts(ref, cur))


# ---------------------------------------------------------------------- drift report


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric_cols: list[str] | None = None,
    categorical_cols: list[str] | None = None,
    psi_threshold: float = 0.2,
    p_value_threshold: float = 0.01,
) -> pd.DataFrame:
    """Compare two samples column by column: PSI and a two-sample test per feature.

    Numeric columns get the KS test, categorical columns the chi-squared test;
    both get the PSI. A column is flagged ``drifted`` when its PSI is at least
    ``psi_threshold`` OR its p-value is below ``p_value_threshold``. On very
    large samples the tests flag negligible shifts: lower
    ``p_value_threshold`` (``0`` turns the test off) and rely on the PSI.
    Model scores are just another numeric column (e.g. ``"score"``).

    Parameters
    ----------
    reference : pandas.DataFrame
        Baseline sample (training/validation data or an earlier period).
    current : pandas.DataFrame
        Sample to compare, with the same columns.
    numeric_cols : list of str, optional
        Numeric columns to check. ``None``: every numeric (non-bool) column of
        ``reference`` not listed in ``categorical_cols``.
    categorical_cols : list of str, optional
        Categorical columns to check. ``None``: every non-numeric or bool
        column of ``reference`` not listed in ``numeric_cols``. A given list
        is used as is, so ``categorical_cols=["merchant_code"]`` checks that
        numeric code as a category plus the numeric columns, and two lists
        check exactly those columns.
    psi_threshold : float, default=0.2
        PSI from which a column counts as drifted.
    p_value_threshold : float, default=0.01
        p-value below which a column counts as drifted.

    Returns
    -------
    pandas.DataFrame
        One row per column, numeric columns first, with columns ``feature``,
        ``kind`` (``"numeric"`` or ``"categorical"``), ``psi``, ``statistic``
        (KS or chi-squared), ``p_value`` and ``drifted`` (bool).
        ``report.attrs["psi_threshold"]`` keeps the threshold for
        :func:`plot_drift_report`.

    Raises
    ------
    TypeError
        If ``reference`` or ``current`` is not a DataFrame, or a column listed
        in ``numeric_cols`` is not numeric.
    ValueError
        If listed columns are missing from either frame, a column is listed as
        both numeric and categorical, a threshold is out of range, or a column
        has no non-missing value in one sample.

    Examples
    --------
    >>> report = drift_report(train[features], last_week[features])  # doctest: +SKIP
    >>> report.loc[report["drifted"], "feature"].tolist()  # doctest: +SKIP
    ['amount']
    """
    func = "drift_report"
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"{func}: {name} must be a pandas DataFrame. Got {type(frame).__name__}."
            )
    if not isinstance(psi_threshold, numbers.Real) or psi_threshold < 0:
        raise ValueError(
            f"The 'psi_threshold' parameter of {func} must be a number >= 0. "
            f"Got {psi_threshold!r} instead."
        )
    if not isinstance(p_value_threshold, numbers.Real) or not 0 <= p_value_threshold <= 1:
        raise ValueError(
            f"The 'p_value_threshold' parameter of {func} must be a number in [0, 1]. "
            f"Got {p_value_threshold!r} instead."
        )
    listed = list(numeric_cols or []) + list(categorical_cols or [])
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in listed if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{func}: column(s) {missing} not found in {name}; "
                f"available: {list(frame.columns)}."
            )
    both = sorted(set(numeric_cols or []) & set(categorical_cols or []))
    if both:
        raise ValueError(f"{func}: column(s) {both} are listed as both numeric and categorical.")
    if numeric_cols is None:
        numeric_cols = [
            c
            for c in reference.columns
            if not _is_categorical(reference[c]) and c not in (categorical_cols or [])
        ]
    if categorical_cols is None:
        categorical_cols = [
            c for c in reference.columns if _is_categorical(reference[c]) and c not in numeric_cols
        ]
    missing = [c for c in [*numeric_cols, *categorical_cols] if c not in current.columns]
    if missing:
        raise ValueError(
            f"{func}: column(s) {missing} of reference not found in current; "
            f"available: {list(current.columns)}."
        )
    not_numeric = [
        c for c in numeric_cols if _is_categorical(reference[c]) or _is_categorical(current[c])
    ]
    if not_numeric:
        raise TypeError(
            f"{func}: column(s) {not_numeric} are listed in numeric_cols but are not numeric; "
            "list them in categorical_cols."
        )

    rows = []
    for kind, columns in (("numeric", numeric_cols), ("categorical", categorical_cols)):
        for col in columns:
            ref, cur = _drop_missing(reference[col], current[col], f"{func}: column {col!r}")
            if kind == "numeric":
                ref_counts, cur_counts = _bin_counts(ref, cur, 10)
                result = stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
                statistic, p_value = float(result.statistic), float(result.pvalue)
            else:
                ref_counts, cur_counts = _category_counts(ref.astype(object), cur.astype(object))
                statistic, p_value = _chi2_from_counts(ref_counts, cur_counts)
            value = _psi_from_counts(ref_counts, cur_counts)
            rows.append(
                {
                    "feature": col,
                    "kind": kind,
                    "psi": value,
                    "statistic": statistic,
                    "p_value": p_value,
                    "drifted": bool(value >= psi_threshold or p_value < p_value_threshold),
                }
            )
    report = pd.DataFrame(rows, columns=_REPORT_COLUMNS).astype({"drifted": bool})
    report.attrs["psi_threshold"] = float(psi_threshold)
    return report


def plot_drift_report(report: pd.DataFrame, *, psi_threshold: float | None = None) -> Figure:
    """Draw the PSI of every feature as horizontal bars, with the threshold line.

    Parameters
    ----------
    report : pandas.DataFrame
        Result of :func:`drift_report`.
    psi_threshold : float, optional
        Where to draw the threshold line; defaults to
        ``report.attrs["psi_threshold"]`` (set by :func:`drift_report`), else 0.2.

    Returns
    -------
    matplotlib.figure.Figure
        Drifted features in red, others in grey, highest PSI on top. The figure
        is closed in pyplot, so a notebook shows it once when it is the cell's
        last expression.

    Raises
    ------
    TypeError
        If ``report`` is not a DataFrame.
    ValueError
        If ``report`` lacks the ``feature``, ``psi`` or ``drifted`` column.

    Examples
    --------
    >>> fig = plot_drift_report(drift_report(reference, current))  # doctest: +SKIP
    """
    func = "plot_drift_report"
    if not isinstance(report, pd.DataFrame):
        raise TypeError(
            f"{func}: report must be a DataFrame from drift_report. Got {type(report).__name__}."
        )
    missing = [c for c in ("feature", "psi", "drifted") if c not in report.columns]
    if missing:
        raise ValueError(
            f"{func}: report lacks column(s) {missing} (expected the result of drift_report); "
            f"got {list(report.columns)}."
        )
    if psi_threshold is None:
        psi_threshold = report.attrs.get("psi_threshold", 0.2)
    ordered = report.sort_values("psi", kind="stable")
    fig = plt.figure(figsize=(7, 0.35 * len(ordered) + 1.5))
    ax = fig.add_subplot()
    colors = np.where(ordered["drifted"].to_numpy(dtype=bool), "tab:red", "tab:grey")
    ax.barh(ordered["feature"].astype(str), ordered["psi"], color=colors)
    ax.axvline(
        psi_threshold, color="black", linestyle="--", label=f"PSI threshold {psi_threshold:g}"
    )
    ax.set_xlabel("Population Stability Index")
    ax.set_title("Feature drift (red: drifted)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --------------------------------------------------------------- performance over time


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
    """Score a model period by period, using only the labels known at a given time.

    Fraud labels (chargebacks, investigations) arrive days to weeks after the
    transaction. With ``label_available_col`` (when each label became known)
    and ``as_of``, a row counts as labelled only if its label was available by
    ``as_of``, which shows what monitoring could see at that date. Without
    them, every row with a non-missing label counts.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per scored transaction.
    time_col : str
        Datetime column (transaction or scoring time) that sets the period.
    label_col : str
        True label: 1 (fraud) / 0, or missing while unknown.
    score_col : str
        Model score (higher means more likely fraud).
    freq : str, default="D"
        Period length, any pandas frequency (``"h"``, ``"D"``, ``"W"``, ``"MS"``).
    label_available_col : str, optional
        Datetime column: when the label became known (missing: not yet).
    as_of : str or datetime-like, optional
        Only labels available at or before this time count (needs
        ``label_available_col``). ``None``: every available label counts.
    threshold : float, default=0.5
        Score from which a transaction is flagged (for precision and recall).

    Returns
    -------
    pandas.DataFrame
        One row per period (empty periods included), with columns ``period``
        (pandas' label for the period: its start for ``"h"``, ``"D"``, ``"MS"``,
        its end for ``"W"``, ``"ME"``), ``n`` (rows), ``n_labelled``, ``positives`` (labelled
        frauds), ``flagged`` (rows scored >= ``threshold``, labelled or not),
        ``average_precision``, ``roc_auc``, ``precision`` and ``recall`` (at
        ``threshold``). Metrics use labelled rows only and are NaN when
        undefined: average precision and recall without positives, ROC AUC
        without both classes, precision with nothing flagged. Rows without a
        ``time_col`` value fall in no period.

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame, ``time_col`` or
        ``label_available_col`` is not a datetime column, or ``score_col`` is
        not numeric.
    ValueError
        If a named column is missing, ``as_of`` is given without
        ``label_available_col``, or known labels are not 0/1.

    Examples
    --------
    >>> performance_over_time(
    ...     scored, time_col="ts", label_col="is_fraud", score_col="score",
    ...     label_available_col="label_ts", as_of="2026-03-01",
    ... )  # doctest: +SKIP
    """
    func = "performance_over_time"
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{func}: frame must be a pandas DataFrame. Got {type(frame).__name__}.")
    named = {"time_col": time_col, "label_col": label_col, "score_col": score_col}
    if label_available_col is not None:
        named["label_available_col"] = label_available_col
    missing = [f"{param}={col!r}" for param, col in named.items() if col not in frame.columns]
    if missing:
        raise ValueError(
            f"{func}: column(s) {', '.join(missing)} not found in frame; "
            f"available: {list(frame.columns)}."
        )
    for col in (time_col, label_available_col):
        if col is not None and not pd.api.types.is_datetime64_any_dtype(frame[col]):
            raise TypeError(
                f"{func}: column {col!r} must be a datetime column; got dtype "
                f"{frame[col].dtype}. Convert it with pd.to_datetime."
            )
    if _is_categorical(frame[score_col]):
        raise TypeError(
            f"{func}: score column {score_col!r} must be numeric; got dtype {frame[score_col].dtype}."
        )
    if as_of is not None and label_available_col is None:
        raise ValueError(
            f"{func}: as_of={as_of!r} needs label_available_col (when labels became known)."
        )

    labelled = frame[label_col].notna().to_numpy()
    if label_available_col is not None:
        available = frame[label_available_col]
        known = available.notna()
        if as_of is not None:
            known &= available <= pd.Timestamp(as_of)
        labelled = labelled & known.to_numpy()
    labels = frame[label_col].to_numpy(dtype=object)[labelled]
    bad = sorted({repr(v) for v in labels if v not in (0, 1)})
    if bad:
        raise ValueError(
            f"{func}: label column {label_col!r} must hold 0/1 (or missing); found {bad[:5]}."
        )

    work = pd.DataFrame(
        {
            "time": frame[time_col].reset_index(drop=True),
            "labelled": labelled,
            "label": np.where(labelled, frame[label_col].to_numpy(dtype=object), 0).astype(int),
            "score": frame[score_col].to_numpy(dtype=float),
        }
    )
    rows = []
    for period, group in work.groupby(pd.Grouper(key="time", freq=freq)):
        known = group[group["labelled"]]
        rows.append(
            {
                "period": period,
                "n": len(group),
                "n_labelled": len(known),
                "positives": int(known["label"].sum()),
                "flagged": int((group["score"] >= threshold).sum()),
                **_period_metrics(known["label"].to_numpy(), known["score"].to_numpy(), threshold),
            }
        )
    columns = [
        "period",
        "n",
        "n_labelled",
        "positives",
        "flagged",
        "average_precision",
        "roc_auc",
        "precision",
        "recall",
    ]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------- helpers


def _period_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Average precision, ROC AUC, precision and recall, NaN where undefined."""
    positives = int(labels.sum())
    flagged = scores >= threshold
    both_classes = 0 < positives < len(labels)
    return {
        "average_precision": average_precision_score(labels, scores) if positives else np.nan,
        "roc_auc": roc_auc_score(labels, scores) if both_classes else np.nan,
        "precision": labels[flagged].mean() if flagged.any() else np.nan,
        "recall": labels[flagged].sum() / positives if positives else np.nan,
    }


def _is_int(value) -> bool:
    """Return True for ints (not bools)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_categorical(values: pd.Series) -> bool:
    """Return True for non-numeric or boolean data."""
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _prepare_pair(reference, current, func: str) -> tuple[pd.Series, pd.Series, bool]:
    """Return both samples as Series without missing values, and whether they are categorical."""
    ref, cur = _drop_missing(pd.Series(reference), pd.Series(current), func)
    ref_cat, cur_cat = _is_categorical(ref), _is_categorical(cur)
    if ref_cat != cur_cat:
        kinds = {True: "categorical", False: "numeric"}
        raise TypeError(
            f"{func}: reference is {kinds[ref_cat]} (dtype {ref.dtype}) but current is "
            f"{kinds[cur_cat]} (dtype {cur.dtype}); both must be of the same kind."
        )
    if ref_cat:
        ref, cur = ref.astype(object), cur.astype(object)
    return ref, cur, ref_cat


def _drop_missing(
    reference: pd.Series, current: pd.Series, where: str
) -> tuple[pd.Series, pd.Series]:
    """Drop missing values from both samples; raise if one becomes empty."""
    ref, cur = reference.dropna(), current.dropna()
    for name, sample in (("reference", ref), ("current", cur)):
        if len(sample) == 0:
            raise ValueError(f"{where}: {name} has no non-missing values.")
    return ref, cur


def _bin_counts(ref: pd.Series, cur: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Count both samples in right-closed quantile bins of the reference (open outer bins)."""
    ref_values = ref.to_numpy(dtype=float)
    cur_values = cur.to_numpy(dtype=float)
    inner = np.unique(np.quantile(ref_values, np.linspace(0, 1, bins + 1))[1:-1])
    n_bins = len(inner) + 1
    ref_counts = np.bincount(np.searchsorted(inner, ref_values, side="left"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(inner, cur_values, side="left"), minlength=n_bins)
    return ref_counts, cur_counts


def _category_counts(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Count both samples per category seen in either."""
    ref_counts = ref.value_counts()
    cur_counts = cur.value_counts()
    categories = ref_counts.index.union(cur_counts.index, sort=False)
    return (
        ref_counts.reindex(categories, fill_value=0).to_numpy(),
        cur_counts.reindex(categories, fill_value=0).to_numpy(),
    )


def _chi2_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared test on the 2 x categories table; (0.0, 1.0) for a single category."""
    if len(ref_counts) < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    return float(result.statistic), float(result.pvalue)


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """PSI from bin counts, with empty proportions raised to PSI_EPSILON."""
    ref_p = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    cur_p = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))

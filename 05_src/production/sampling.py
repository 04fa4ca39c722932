"""Training data: samples, a time split with label delay, leakage checks, class imbalance. Pure.

Time layout of :func:`time_split`: a gap of at least the label delay keeps the training labels
unbiased (without it, the last days before the cutoff hold only the fast labels: frauds)::

    |------------ train ------------|--- gap ---| cutoff |------ test ------|
    train rows: label_available_at <= cutoff            ^ model trained here
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import precision_recall_curve
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from production._validation import InvalidParameterError, check_frame, check_param, column_list

# isort: split
from production._validation import Instance, Interval, OneOf, as_timestamp, validate_params
from production.config import RANDOM_STATE
from production.features import report_leaks

__all__ = [
    "ResampledClassifier",
    "TimeSplit",
    "check_leakage",
    "recall_at_precision",
    "reservoir_sample",
    "simple_random_sample",
    "stratified_sample",
    "summarize_label_availability",
    "time_split",
]

_SAMPLE = dict(frame=Instance(pd.DataFrame), random_state=Interval(int, 0, None))
_SAMPLE |= dict(n=Interval(int, 0, None, none=True), frac=Interval(float, 0, 1, none=True))
_TIMES = ["tx_datetime", "label_available_at"]
_UNIT = Interval(float, 0, 1, closed="right")


def _sample_size(n_rows: int, n, frac, where: str) -> int:
    """Return the sample size from exactly one of ``n`` (<= n_rows) or ``frac``."""
    if (n is None) == (frac is None) or (n is not None and n > n_rows):
        raise InvalidParameterError(
            f"{where}: give exactly one of n (<= {n_rows} rows) or frac. Got n={n!r}, frac={frac!r}."
        )
    return n if n is not None else int(round(frac * n_rows))


@validate_params(**_SAMPLE)
def simple_random_sample(frame, n=None, *, frac=None, random_state=RANDOM_STATE) -> pd.DataFrame:
    """Draw ``n`` (or ``frac`` of the) rows uniformly, without replacement, in their order.

    Parameters
    ----------
    frame : pandas.DataFrame
    n, frac : int or float, default=None
        Sample size, as a number of rows or a fraction of them; give one.
    random_state : int, default=RANDOM_STATE
    """
    size = _sample_size(len(frame), n, frac, "simple_random_sample")
    positions = np.random.default_rng(random_state).choice(len(frame), size=size, replace=False)
    return frame.iloc[np.sort(positions)]


@validate_params(**_SAMPLE)
def stratified_sample(frame, by, n=None, *, frac=None, random_state=RANDOM_STATE) -> pd.DataFrame:
    """Draw a sample that keeps the share of every stratum to the row (a 1 % rate stays 1 %).

    Parameters
    ----------
    frame : pandas.DataFrame
    by : str or list of str
        Column(s) of the strata; ``N_s`` rows give ``N_s * size / N``, by largest remainder.
    n, frac, random_state
        As in :func:`simple_random_sample`.
    """
    by = column_list(by, "by", "stratified_sample")
    check_frame(frame, "stratified_sample", columns=by)
    size = _sample_size(len(frame), n, frac, "stratified_sample")
    codes = frame.groupby(by, dropna=False, sort=False).ngroup().to_numpy()
    quotas = np.bincount(codes, minlength=1) * size / max(len(frame), 1)
    counts = np.floor(quotas).astype("int64")
    counts[np.argsort(counts - quotas, kind="stable")[: size - counts.sum()]] += 1
    rng = np.random.default_rng(random_state)
    chosen = [
        rng.choice(np.flatnonzero(codes == s), c, replace=False) for s, c in enumerate(counts)
    ]
    return frame.iloc[np.sort(np.concatenate(chosen))]


@validate_params(k=Interval(int, 1, None), random_state=Interval(int, 0, None))
def reservoir_sample(batches: Iterable[pd.DataFrame], k: int, *, random_state=RANDOM_STATE):
    """Draw ``k`` rows uniformly from a stream of batches, in stream order (Algorithm R).

    Row ``i`` of the stream draws a slot ``j`` in ``0..i`` and replaces slot ``j`` if ``j < k``.

    Parameters
    ----------
    batches : iterable of pandas.DataFrame
        The stream, e.g. ``iter_days(...)``; however it is cut, the sample is the same.
    k, random_state : int
    """
    rng, seen = np.random.default_rng(random_state), 0
    sample, slots, arrival = None, np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    for batch in batches:
        check_frame(batch, "reservoir_sample", name="a batch")
        position = np.arange(seen, seen + len(batch))
        draw = np.floor(rng.random(len(batch)) * (position + 1)).astype("int64")
        slot = np.where(position < k, position, draw)
        taken = slot < k
        stacked = pd.concat([batch.iloc[:0] if sample is None else sample, batch.iloc[taken]])
        slots = np.concatenate([slots, slot[taken]])
        arrival = np.concatenate([arrival, position[taken]])
        last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]  # last write wins
        sample, slots, arrival = stacked.iloc[last], slots[last], arrival[last]
        seen += len(batch)
    return pd.DataFrame() if sample is None else sample.iloc[np.argsort(arrival)]


#: :func:`time_split`'s result: train and test rows, the cutoff, a summary per part.
TimeSplit = namedtuple("TimeSplit", ["train", "test", "cutoff", "summary"])
_DAYS = Interval(float, 0, None, closed="neither", none=True)


@validate_params(
    frame=Instance(pd.DataFrame), train_days=_DAYS, gap_days=Interval(float, 0), test_days=_DAYS
)
def time_split(frame, *, cutoff, train_days=None, gap_days=0, test_days=None) -> TimeSplit:
    """Split train / gap / test on time; train keeps only the labels known at the cutoff.

    Parameters
    ----------
    frame : pandas.DataFrame
        With datetime64 ``tx_datetime`` and ``label_available_at`` (NaT: not known).
    cutoff : str or datetime-like
        When the model is trained and starts serving: the test rows start here, all kept.
    train_days, test_days, gap_days : float
        Window lengths in days (None: every row before the gap, after the cutoff); the gap
        (default 0) should be at least the label delay.

    Returns
    -------
    TimeSplit
        ``summary``: per part ``start``, ``end``, ``n_rows``, ``n_dropped``, ``positive_rate``.
    """
    check_frame(frame, "time_split", datetime_columns=_TIMES)
    cutoff = as_timestamp(cutoff, "cutoff", "time_split")
    end, first, last = cutoff - pd.Timedelta(days=gap_days), pd.Timestamp.min, pd.Timestamp.max
    bounds = {
        "train": (end - pd.Timedelta(days=train_days) if train_days else first, end),
        "gap": (end, cutoff),
        "test": (cutoff, cutoff + pd.Timedelta(days=test_days) if test_days else last),
    }
    at, known = frame["tx_datetime"], (frame["label_available_at"] <= cutoff).to_numpy()
    parts, rows = {}, []
    for name, (start, stop) in bounds.items():
        window = ((at >= start) & (at < stop)).to_numpy()  # NaT: in no window
        keep = window & known if name == "train" else window & (name == "test")
        parts[name] = frame.loc[keep]
        rate = parts[name]["is_fraud"].mean() if "is_fraud" in frame else np.nan
        start = at[window].min() if start is first else start
        stop = at[window].max() if stop is last else stop
        rows.append([name, start, stop, keep.sum(), (window & ~keep).sum(), rate])
    if parts["train"].empty:
        raise InvalidParameterError(
            f"time_split: no row before {end} has a label known at the cutoff {cutoff}; "
            "move the cutoff later or shorten gap_days."
        )
    columns = ["part", "start", "end", "n_rows", "n_dropped", "positive_rate"]
    summary = pd.DataFrame(rows, columns=columns).set_index("part")
    return TimeSplit(parts["train"], parts["test"], cutoff, summary)


@validate_params(frame=Instance(pd.DataFrame), freq=Instance(str))
def summarize_label_availability(frame, cutoff, *, freq="D") -> pd.DataFrame:
    """Count, per period before a cutoff, how many labels are already known at the cutoff.

    Parameters
    ----------
    frame : pandas.DataFrame
        With ``tx_datetime``, ``label_available_at`` and ``is_fraud``.
    cutoff : str or datetime-like
    freq : str, default="D"
        Period length, a pandas frequency.

    Returns
    -------
    pandas.DataFrame
        Per period: ``n_rows``, ``n_labelled``, ``share_labelled``, and the fraud rate of
        all labels (in hindsight) and of the known ones.
    """
    where = "summarize_label_availability"
    check_frame(frame, where, columns=["is_fraud"], datetime_columns=_TIMES)
    cutoff = as_timestamp(cutoff, "cutoff", where)
    before = frame.loc[frame["tx_datetime"] < cutoff]
    known, fraud = before["label_available_at"] <= cutoff, before["is_fraud"].astype("float64")
    table = pd.DataFrame({"n_rows": 1, "n_labelled": known.astype("int64")})
    table = table.assign(true_positive_rate=fraud, known_positive_rate=fraud.where(known))
    period = before["tx_datetime"].dt.to_period(freq).dt.start_time.rename("period")
    out = table.groupby(period).agg(dict(zip(table, ["sum", "sum", "mean", "mean"], strict=True)))
    out.insert(2, "share_labelled", out["n_labelled"] / out["n_rows"])
    return out


@validate_params(id_col=Instance(str), on_leak=OneOf("raise", "warn", "ignore"))
def check_leakage(splits, *, cutoff=None, id_col="transaction_id", on_leak="raise") -> pd.DataFrame:
    """Report what one split knows about another: shared ids, overlapping times, early labels.

    Parameters
    ----------
    splits : TimeSplit or dict of str to pandas.DataFrame
        In time order, e.g. ``time_split(...)`` or ``{"train": train, "test": test}``.
    cutoff : datetime-like, optional
        For the labels; default: the TimeSplit's, else the start of the last split.
    id_col : str, default="transaction_id"
    on_leak : {"raise", "warn", "ignore"}, default="raise"
        On a failed check: raise ``LeakageError``, warn, or only report.

    Returns
    -------
    pandas.DataFrame
        Per check and pair: ``check``, ``splits``, ``n_rows``, ``passed``, ``detail``.
    """
    if isinstance(splits, TimeSplit):
        splits, cutoff = {"train": splits.train, "test": splits.test}, splits.cutoff
    if not isinstance(splits, Mapping) or len(splits) < 2:
        raise InvalidParameterError(
            "check_leakage: splits must be a TimeSplit or a dict of at least two DataFrames. "
            f"Got {type(splits).__name__} instead."
        )
    for name, part in splits.items():
        check_frame(part, "check_leakage", name=name, columns=[id_col], datetime_columns=_TIMES)
    names, rows = list(splits), []
    for earlier, later in combinations(names, 2):
        a, b, pair = splits[earlier], splits[later], f"{earlier} -> {later}"
        shared = np.intersect1d(a[id_col].to_numpy(), b[id_col].to_numpy())
        detail = f"{shared.size} {id_col}(s) in both, e.g. {shared[:3].tolist()}"
        rows.append(["shared_ids", pair, shared.size, detail])
        overlap = int((a["tx_datetime"] >= b["tx_datetime"].min()).sum())
        detail = f"{overlap} {earlier} row(s) at or after the start of {later}"
        rows.append(["time_overlap", pair, overlap, detail])
    at = as_timestamp(cutoff or splits[names[-1]]["tx_datetime"].min(), "cutoff", "check_leakage")
    for name in names[:-1]:
        late = int((~(splits[name]["label_available_at"] <= at)).sum())
        rows.append(["label_not_available", name, late, f"{late} {name} label(s) unknown at {at}"])
    report = pd.DataFrame(rows, columns=["check", "splits", "n_rows", "detail"])
    report.insert(3, "passed", report["n_rows"] == 0)
    problems = report.loc[~report["passed"], "detail"].tolist()
    report_leaks(problems, on_leak, "check_leakage: leakage between splits")
    return report


def _resample(y, method: str, ratio: float, random_state: int) -> np.ndarray:
    """Sorted row positions of ``y`` after random under- or over-sampling of its classes."""
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    counts, rng, chosen = np.bincount(codes), np.random.default_rng(random_state), []
    for c in range(classes.size):
        members = np.flatnonzero(codes == c)
        if method == "under":
            size = min(counts[c], max(1, round(counts.min() / ratio)))
            chosen.append(rng.choice(members, size=size, replace=False))
        else:
            extra = max(0, round(counts.max() * ratio) - counts[c])
            chosen += [members, rng.choice(members, size=extra, replace=True)]
    return np.sort(np.concatenate(chosen))


class ResampledClassifier(ClassifierMixin, BaseEstimator):
    """A classifier fitted on an under- or over-sampled copy of its training data.

    Resampling happens in ``fit`` only: in ``cross_validate`` or a search every training
    fold is resampled and every test fold scored untouched.

    Parameters
    ----------
    estimator : classifier
        Cloned and fitted on the resampled rows (``estimator_``, ``n_resampled_`` rows).
    method : {"under", "over"}, default="under"
        Keep at most ``round(n_min / ratio)`` rows a class, or copy up to ``round(n_max * ratio)``.
    ratio : float, default=1.0
        Smallest class relative to the largest, in ``(0, 1]``.
    random_state : int, default=RANDOM_STATE
    """

    def __init__(self, estimator, *, method="under", ratio=1.0, random_state=RANDOM_STATE):
        self.estimator = estimator
        self.method = method
        self.ratio = ratio
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        """Resample ``(X, y)`` (and per-row ``fit_params``), fit a clone of ``estimator``."""
        y = column_or_1d(y, warn=True)
        X = X.tocsr() if sparse.issparse(X) else X if hasattr(X, "shape") else np.asarray(X)
        check_classification_targets(y)
        check_consistent_length(X, y)
        check_param(self.method, OneOf("under", "over"), "method", "ResampledClassifier")
        check_param(self.ratio, _UNIT, "ratio", "ResampledClassifier")
        rows = _resample(y, self.method, self.ratio, self.random_state)
        per_row = {k: np.asarray(v)[rows] for k, v in fit_params.items() if np.ndim(v) == 1}
        Xr = X.iloc[rows] if hasattr(X, "iloc") else X[rows]
        self.estimator_ = clone(self.estimator).fit(Xr, y[rows], **{**fit_params, **per_row})
        self.classes_, self.n_resampled_ = np.unique(y), int(rows.size)
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, attr):
                setattr(self, attr, getattr(self.estimator_, attr))
        return self

    def predict(self, X):
        """Predict classes with the fitted clone."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X):
        """Predict class probabilities with the fitted clone (resampled class balance)."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        """Take the input tags (sparse, NaN, strings) of the inner estimator."""
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.estimator).input_tags
        return tags


@validate_params(min_precision=_UNIT)
def recall_at_precision(y_true, y_score, *, min_precision=0.8) -> float:
    """Return the best recall reachable at a precision of at least ``min_precision``.

    Parameters
    ----------
    y_true, y_score : array-like of shape (n_samples,)
        Binary labels (at least one 1) and scores, higher for the positive class.
    min_precision : float, default=0.8
    """
    if not (np.asarray(y_true) == 1).any():
        raise InvalidParameterError("recall_at_precision: y_true has no positive (1) label.")
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    return float(recall[precision >= min_precision].max())  # the curve ends at precision 1

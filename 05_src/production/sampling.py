"""Training data: samples, time-based splits with label delay, class imbalance, leakage checks.

Pure functions of DataFrames (no I/O, no print), each deterministic under ``random_state``.

* **Samples**: :func:`simple_random_sample`, :func:`stratified_sample` (exact
  proportional or equal allocation per stratum) and :func:`reservoir_sample` /
  :class:`ReservoirSampler`, a uniform sample of ``k`` rows from a stream of
  batches of unknown total length (e.g. :func:`production.simulate.iter_days`).
* **Splits**: :func:`time_split` cuts train / validation / test on time at a
  *cutoff*, the moment the model is trained, and keeps for training only rows
  whose label is known at the cutoff. :func:`summarize_label_availability` shows
  how many labels are known at a cutoff.
* **Class imbalance**: :func:`compute_class_weights`, :func:`resample_indices`
  (random under- or over-sampling of training indices) and
  :class:`ResampledClassifier`, which resamples inside ``fit`` only, so that in
  cross-validation the training folds are resampled and the test folds are not.
  :func:`recall_at_precision` is a metric that survives imbalance.
* **Leakage**: :func:`check_leakage` reports ids shared by two splits, time ranges
  that overlap, and training rows whose label was not yet known at the cutoff.

Time layout of :func:`time_split`::

    |------ train ------|-- validation --|--- gap ---| cutoff |------ test ------|
                                                        ^ model trained here
    train and validation rows: label_available_at <= cutoff (others dropped, counted)

The **gap** (``gap_days``) is the time between the end of the labelled history
and the cutoff. Without it, the last days before the cutoff keep only the labels
that arrive fastest: with the simulator's delays (a legitimate label is final
after ``label_delay_days``, a fraud is reported within 1..2 x ``label_delay_days``)
the last ``label_delay_days`` hold *only* frauds, and a model learns a fraud
rate of 100 % there. A gap of at least ``label_delay_days`` makes every
legitimate label of the training window known; a few slow fraud labels are still
missing (reported in :attr:`TimeSplit.summary`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import precision_recall_curve
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from production.config import RANDOM_STATE
from production.features import LeakageError, LeakageWarning, _check_on_leak, _report_leak

__all__ = [
    "LeakageError",
    "LeakageWarning",
    "ReservoirSampler",
    "ResampledClassifier",
    "TimeSplit",
    "check_leakage",
    "compute_class_weights",
    "recall_at_precision",
    "resample_indices",
    "reservoir_sample",
    "simple_random_sample",
    "stratified_sample",
    "summarize_label_availability",
    "time_split",
]

_METHODS = ("R", "L")
_RESAMPLING = ("under", "over")


# --------------------------------------------------------------------------- validation


def _check_frame(frame, caller: str, argument: str = "frame") -> None:
    """Raise TypeError unless ``frame`` is a pandas DataFrame."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{caller}: {argument} must be a pandas DataFrame. Got {type(frame).__name__} instead."
        )


def _check_columns(frame: pd.DataFrame, columns, caller: str, argument: str = "frame") -> None:
    """Raise ValueError naming the columns missing from ``frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{caller}: column(s) {missing} not found in {argument}; "
            f"available: {[str(c) for c in frame.columns]}"
        )


def _check_datetime(frame: pd.DataFrame, col: str, caller: str) -> None:
    """Raise TypeError if ``frame[col]`` is not datetime64."""
    if not pd.api.types.is_datetime64_any_dtype(frame[col].dtype):
        raise TypeError(
            f"{caller}: column '{col}' must be datetime64. Got dtype {frame[col].dtype} instead."
        )


def _check_int(value, name: str, caller: str, low: int) -> int:
    """Return ``value`` if it is an int >= ``low``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be an int >= {low}. Got {value!r} instead."
        )
    if value < low:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be an int >= {low}. Got {value!r} instead."
        )
    return int(value)


def _check_days(value, name: str, caller: str, *, allow_none: bool, positive: bool):
    """Return ``value`` days as a Timedelta (or None), else raise."""
    if value is None and allow_none:
        return None
    kind = "> 0" if positive else ">= 0"
    expected = f"a number of days {kind}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"The '{name}' parameter of {caller} must be {expected}. Got {value!r}.")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"The '{name}' parameter of {caller} must be {expected}. Got {value!r}.")
    return pd.Timedelta(days=float(value))


def _check_random_state(random_state, caller: str) -> np.random.Generator:
    """Return a Generator seeded by ``random_state`` (an int >= 0)."""
    _check_int(random_state, "random_state", caller, 0)
    return np.random.default_rng(random_state)


def _check_timestamp(value, name: str, caller: str) -> pd.Timestamp:
    """Return ``value`` as a naive Timestamp, else raise."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be a date or time, e.g. '2026-02-01'. "
            f"Got {value!r} instead."
        ) from err
    if pd.isna(stamp):
        raise ValueError(f"The '{name}' parameter of {caller} must not be missing. Got {value!r}.")
    return stamp


def _sample_size(n_rows: int, n, frac, caller: str) -> int:
    """Return the sample size from exactly one of ``n`` or ``frac``."""
    if (n is None) == (frac is None):
        raise ValueError(f"{caller}: give exactly one of n or frac. Got n={n!r}, frac={frac!r}.")
    if n is not None:
        n = _check_int(n, "n", caller, 0)
        if n > n_rows:
            raise ValueError(
                f"The 'n' parameter of {caller} must be at most the number of rows ({n_rows}). "
                f"Got {n} instead."
            )
        return n
    if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 <= frac <= 1:
        raise ValueError(
            f"The 'frac' parameter of {caller} must be a number in [0, 1]. Got {frac!r} instead."
        )
    return int(round(frac * n_rows))


# --------------------------------------------------------------------------- samples


def simple_random_sample(
    frame: pd.DataFrame,
    n: int | None = None,
    *,
    frac: float | None = None,
    random_state: int = RANDOM_STATE,
) -> pd.DataFrame:
    """Draw rows uniformly at random, without replacement.

    Every subset of the requested size is equally likely, so every row has the
    same chance ``n / len(frame)`` -- but a rare class may be over- or
    under-represented in one draw (compare :func:`stratified_sample`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to sample from.
    n : int or None, default=None
        Sample size, ``<= len(frame)``. Give ``n`` or ``frac``.
    frac : float or None, default=None
        Sample size as a fraction of ``len(frame)``, rounded.
    random_state : int, default=RANDOM_STATE
        Seed; same seed, same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows, in their original order, index kept.

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame or ``n`` / ``random_state`` is not an int.
    ValueError
        If both or neither of ``n`` and ``frac`` are given, or one is out of range.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": range(10)})
    >>> simple_random_sample(frame, 3, random_state=0)["x"].tolist()
    [5, 6, 9]
    """
    caller = "simple_random_sample"
    _check_frame(frame, caller)
    size = _sample_size(len(frame), n, frac, caller)
    rng = _check_random_state(random_state, caller)
    positions = np.sort(rng.choice(len(frame), size=size, replace=False))
    return frame.iloc[positions]


def _allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` proportionally to ``sizes`` by largest remainder (Hamilton)."""
    quotas = sizes * total / sizes.sum()
    counts = np.floor(quotas).astype("int64")
    remainder = quotas - counts
    order = np.lexsort((np.arange(len(sizes)), -remainder))  # largest first, ties by order
    counts[order[: total - counts.sum()]] += 1
    return counts


def stratified_sample(
    frame: pd.DataFrame,
    by: str | Sequence[str],
    n: int | None = None,
    *,
    frac: float | None = None,
    n_per_stratum: int | None = None,
    random_state: int = RANDOM_STATE,
) -> pd.DataFrame:
    """Draw a sample that keeps the share of every stratum (or the same count from each).

    With ``n`` or ``frac`` (**proportional allocation**) the total size is
    ``n`` (or ``round(frac * len(frame))``) and each stratum ``s`` of ``N_s`` rows
    gets ``floor(q_s)`` or ``ceil(q_s)`` rows, where ``q_s = N_s * size / N`` is its
    exact share (largest-remainder rounding): a 1 % fraud rate stays 1 % to the
    row. With ``n_per_stratum`` (**equal allocation**) every stratum gets that
    many rows, e.g. to look at as many frauds as legitimate transactions.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to sample from.
    by : str or list of str
        Column(s) defining the strata (missing values form their own stratum).
    n : int or None, default=None
        Total sample size.
    frac : float or None, default=None
        Total sample size as a fraction of ``len(frame)``.
    n_per_stratum : int or None, default=None
        Rows per stratum; every stratum must have at least that many.
    random_state : int, default=RANDOM_STATE
        Seed; same seed, same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows, in their original order, index kept.

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame or a size is not an int.
    ValueError
        If a ``by`` column is missing (named), not exactly one of ``n``, ``frac``
        and ``n_per_stratum`` is given, a size is out of range, or a stratum is
        smaller than ``n_per_stratum`` (named).

    Examples
    --------
    >>> frame = pd.DataFrame({"is_fraud": [1] * 10 + [0] * 90})
    >>> stratified_sample(frame, "is_fraud", frac=0.2)["is_fraud"].value_counts().to_dict()
    {0: 18, 1: 2}
    """
    caller = "stratified_sample"
    _check_frame(frame, caller)
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError(f"{caller}: by must name at least one column.")
    _check_columns(frame, by, caller)
    rng = _check_random_state(random_state, caller)
    grouped = frame.groupby(by, dropna=False, sort=False)
    codes = grouped.ngroup().to_numpy()
    strata = grouped.size()  # in order of first appearance, like the codes
    n_strata = len(strata)
    sizes = strata.to_numpy().astype("int64")
    if n_per_stratum is not None:
        if n is not None or frac is not None:
            raise ValueError(
                f"{caller}: give exactly one of n, frac or n_per_stratum. Got n={n!r}, "
                f"frac={frac!r}, n_per_stratum={n_per_stratum!r}."
            )
        k = _check_int(n_per_stratum, "n_per_stratum", caller, 0)
        small = [strata.index[i] for i in np.flatnonzero(sizes < k)]
        if small:
            raise ValueError(
                f"{caller}: stratum(s) {small[:5]} of {by} have fewer than n_per_stratum={k} "
                f"rows (smallest: {int(sizes.min())})."
            )
        counts = np.full(n_strata, k, dtype="int64")
    else:
        counts = _allocate(sizes, _sample_size(len(frame), n, frac, caller)) if n_strata else sizes
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chosen = []
    for stratum in range(n_strata):  # strata in order of first appearance
        members = order[starts[stratum] : starts[stratum + 1]]
        chosen.append(rng.choice(members, size=counts[stratum], replace=False))
    positions = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype="int64")
    return frame.iloc[positions]


class ReservoirSampler:
    """Keep a uniform random sample of ``k`` rows from a stream of DataFrame batches.

    After any number of rows, every row seen so far is in :attr:`sample_` with the
    same probability ``k / n_seen_``, without knowing the stream's length in
    advance and holding only ``k`` rows. Two algorithms:

    * ``"R"`` (Vitter's Algorithm R): the ``i``-th row (0-based, ``i >= k``) draws
      ``j`` uniform in ``0..i`` and replaces slot ``j`` if ``j < k``; one random
      number per row.
    * ``"L"`` (Li's Algorithm L): draws how many rows to *skip* before the next
      replacement; about ``k (1 + log(n / k))`` random numbers in all, so it is
      much faster on long streams.

    Both are deterministic under ``random_state`` and do not depend on how the
    stream is cut into batches.

    Parameters
    ----------
    k : int
        Sample size, ``>= 1``.
    method : {"L", "R"}, default="L"
        Algorithm.
    random_state : int, default=RANDOM_STATE
        Seed.

    Attributes
    ----------
    sample_ : pandas.DataFrame
        The current sample, ``min(k, n_seen_)`` rows in stream order, index kept.
    n_seen_ : int
        Rows seen so far.

    Raises
    ------
    TypeError, ValueError
        If ``k``, ``method`` or ``random_state`` is invalid (raised at creation).

    Examples
    --------
    >>> sampler = ReservoirSampler(k=2, random_state=0)
    >>> for start in range(0, 10, 5):
    ...     _ = sampler.update(pd.DataFrame({"x": range(start, start + 5)}))
    >>> sampler.n_seen_, len(sampler.sample_)
    (10, 2)
    """

    def __init__(self, k: int, *, method: str = "L", random_state: int = RANDOM_STATE):
        caller = "ReservoirSampler"
        self.k = _check_int(k, "k", caller, 1)
        if method not in _METHODS:
            raise ValueError(
                f"The 'method' parameter of {caller} must be one of {list(_METHODS)}. "
                f"Got {method!r} instead."
            )
        self.method = method
        self.random_state = random_state
        self._rng = _check_random_state(random_state, caller)
        self.n_seen_ = 0
        # the rows in the slots: slot s holds row _row[s] of _pieces[_piece[s]], taken
        # from the stream at position _arrival[s]; pieces are compacted now and then
        self._template: pd.DataFrame | None = None
        self._pieces: list[pd.DataFrame] = []
        self._piece = np.full(self.k, -1, dtype="int64")
        self._row = np.zeros(self.k, dtype="int64")
        self._arrival = np.zeros(self.k, dtype="int64")
        self._w = 0.0  # Algorithm L state
        self._next = 0  # Algorithm L: stream position of the next row to take

    def _uniform(self) -> float:
        """Return a uniform draw in (0, 1]."""
        return 1.0 - self._rng.random()

    def _skip(self) -> int:
        """Return Algorithm L's number of rows to skip, then update its weight ``W``."""
        log_keep = math.log1p(-self._w) if self._w < 1.0 else -math.inf
        skip = math.floor(math.log(self._uniform()) / log_keep)
        self._w *= math.exp(math.log(self._uniform()) / self.k)
        return skip

    def _replacements(self, first: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (slot, stream position) of the replacements among rows first..first+size-1."""
        if self.method == "R":
            positions = np.arange(first, first + size)
            slots = np.floor(self._rng.random(size) * (positions + 1)).astype("int64")
            taken = slots < self.k
            return slots[taken], positions[taken]
        slots, positions = [], []
        while self._next < first + size:
            slots.append(int(self._rng.integers(self.k)))
            positions.append(self._next)
            self._next += self._skip() + 1
        return np.asarray(slots, dtype="int64"), np.asarray(positions, dtype="int64")

    def update(self, batch: pd.DataFrame) -> ReservoirSampler:
        """Feed the next batch of the stream.

        Parameters
        ----------
        batch : pandas.DataFrame
            The next rows, with the same columns as earlier batches (may be empty).

        Returns
        -------
        self : ReservoirSampler
            The sampler, updated.

        Raises
        ------
        TypeError
            If ``batch`` is not a DataFrame.
        ValueError
            If its columns differ from the first batch's (named).
        """
        caller = "ReservoirSampler.update"
        _check_frame(batch, caller, "batch")
        if self._template is None:
            self._template = batch.iloc[:0]
        elif list(batch.columns) != list(self._template.columns):
            raise ValueError(
                f"{caller}: batch columns {list(batch.columns)} differ from the first batch's "
                f"{list(self._template.columns)}."
            )
        if batch.empty:
            return self
        n_before, size = self.n_seen_, len(batch)
        fill = min(max(self.k - n_before, 0), size)  # rows that go straight into free slots
        slots = np.arange(n_before, n_before + fill)
        positions = np.arange(n_before, n_before + fill)
        if n_before + fill == self.k and fill and self.method == "L":
            # reservoir just filled: draw W and the first skip (Li 1994)
            self._w = math.exp(math.log(self._uniform()) / self.k)
            self._next = self.k + self._skip()
        if size > fill:
            more_slots, more_positions = self._replacements(n_before + fill, size - fill)
            slots = np.concatenate([slots, more_slots])
            positions = np.concatenate([positions, more_positions])
        self.n_seen_ = n_before + size
        if slots.size:
            # the last row written to a slot wins
            new_slots, last = np.unique(slots[::-1], return_index=True)
            new_positions = positions[::-1][last]
            self._pieces.append(batch.iloc[new_positions - n_before])
            self._piece[new_slots] = len(self._pieces) - 1
            self._row[new_slots] = np.arange(new_slots.size)
            self._arrival[new_slots] = new_positions
            if len(self._pieces) > 32:  # keep memory at O(k) rows
                self._pieces = [self._slot_rows()]
                self._piece[self._piece >= 0] = 0
                self._row[: self._filled()] = np.arange(self._filled())
        return self

    def _filled(self) -> int:
        """Return how many slots hold a row."""
        return min(self.k, self.n_seen_)

    def _slot_rows(self) -> pd.DataFrame:
        """Return the rows of the filled slots, in slot order."""
        filled = self._filled()
        if filled == 0:
            return self._template
        sizes = np.array([len(piece) for piece in self._pieces])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = offsets[self._piece[:filled]] + self._row[:filled]
        return pd.concat(self._pieces).iloc[rows]

    @property
    def sample_(self) -> pd.DataFrame:
        """The current sample in stream order (an empty frame before any batch)."""
        if self._template is None:
            return pd.DataFrame()
        order = np.argsort(self._arrival[: self._filled()], kind="stable")
        return self._slot_rows().iloc[order]


def reservoir_sample(
    batches: Iterable[pd.DataFrame],
    k: int,
    *,
    method: str = "L",
    random_state: int = RANDOM_STATE,
) -> pd.DataFrame:
    """Draw ``k`` rows uniformly from a stream of batches, holding only ``k`` rows in memory.

    One pass over ``batches`` with a :class:`ReservoirSampler`; see it for the algorithms.

    Parameters
    ----------
    batches : iterable of pandas.DataFrame
        The stream, e.g. ``iter_days(...)``; consumed once.
    k : int
        Sample size, ``>= 1``; fewer rows if the stream is shorter.
    method : {"L", "R"}, default="L"
        Algorithm L (skips, fast) or R (one draw per row).
    random_state : int, default=RANDOM_STATE
        Seed; same seed and stream, same sample, however the stream is batched.

    Returns
    -------
    pandas.DataFrame
        ``min(k, rows in the stream)`` rows in stream order, index kept.

    Raises
    ------
    TypeError, ValueError
        As :class:`ReservoirSampler` and :meth:`ReservoirSampler.update`.

    Examples
    --------
    >>> from production.simulate import iter_days
    >>> sample = reservoir_sample(iter_days(n_customers=50, n_days=5), k=10)
    >>> len(sample)
    10
    """
    sampler = ReservoirSampler(k, method=method, random_state=random_state)
    for batch in batches:
        sampler.update(batch)
    return sampler.sample_


# --------------------------------------------------------------------------- time splits


@dataclass(frozen=True, repr=False)
class TimeSplit:
    """The result of :func:`time_split`.

    Attributes
    ----------
    train, validation, test : pandas.DataFrame
        The rows of each part, in their original order (``validation`` is empty
        when ``validation_days=0``).
    cutoff : pandas.Timestamp
        When the model is trained: labels known by then are usable; test starts here.
    summary : pandas.DataFrame
        One row per part (``train``, ``validation`` if ``validation_days > 0``,
        ``gap``, ``test``): ``start``,
        ``end`` (exclusive; the first / last row's time for an open end), ``n_rows``
        kept, ``n_dropped`` (rows of the window dropped because their label was not
        known at the cutoff; in the gap, every row) and ``positive_rate`` of the
        label column when present.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp
    summary: pd.DataFrame

    def __repr__(self) -> str:
        return (
            f"TimeSplit(cutoff={self.cutoff}, train={len(self.train)}, "
            f"validation={len(self.validation)}, test={len(self.test)})"
        )


def time_split(
    frame: pd.DataFrame,
    *,
    cutoff,
    train_days: float | None = None,
    validation_days: float = 0,
    gap_days: float = 0,
    test_days: float | None = None,
    time_col: str = "tx_datetime",
    label_time_col: str | None = "label_available_at",
    label_col: str | None = "is_fraud",
) -> TimeSplit:
    """Split on time at a cutoff, keeping for training only labels known at the cutoff.

    Layout (module docstring): test is ``[cutoff, cutoff + test_days)``; the gap is
    the ``gap_days`` before the cutoff (dropped); validation the
    ``validation_days`` before the gap; train the ``train_days`` before that (or
    everything earlier). Train and validation keep a row only if its
    ``label_time_col`` is ``<= cutoff``: a model trained at the cutoff cannot
    learn from labels that arrive later. Test rows are kept whatever their label
    time: they are scored at serving time and evaluated once their labels arrive.

    Choose ``gap_days >= label delay`` so that the kept labels are not biased
    towards the fastest ones (fraud); ``summary`` shows what was dropped.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with a datetime ``time_col`` (and ``label_time_col``).
    cutoff : str or datetime-like
        When the model is trained and starts serving, e.g. ``"2026-02-12"``.
    train_days : float or None, default=None
        Length of the training window in days; ``None`` for all earlier rows.
    validation_days : float, default=0
        Length of the validation window in days (0: no validation part).
    gap_days : float, default=0
        Days between the end of the labelled history and the cutoff.
    test_days : float or None, default=None
        Length of the test window; ``None`` for all rows from the cutoff on.
    time_col : str, default="tx_datetime"
        When each row happened.
    label_time_col : str or None, default="label_available_at"
        When each row's label becomes known (``NaT``: not known); ``None`` if labels
        are immediate.
    label_col : str or None, default="is_fraud"
        Label column for ``summary["positive_rate"]``; ignored when absent.

    Returns
    -------
    TimeSplit
        ``train``, ``validation``, ``test``, ``cutoff`` and ``summary``.

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame, a time column is not datetime64 or a
        number of days is not a number.
    ValueError
        If a column is missing (named), a number of days is negative (or zero for
        ``train_days`` / ``test_days``), ``cutoff`` is not a time, or no training
        row has a label known at the cutoff.

    Examples
    --------
    >>> from production.simulate import simulate
    >>> tx = simulate(n_customers=100, n_days=30).transactions
    >>> split = time_split(tx, cutoff="2026-01-22", gap_days=7, test_days=7)
    >>> split.train["tx_datetime"].max() < pd.Timestamp("2026-01-15")
    True
    >>> bool((split.train["label_available_at"] <= split.cutoff).all())
    True
    """
    caller = "time_split"
    _check_frame(frame, caller)
    columns = [time_col] + ([label_time_col] if label_time_col is not None else [])
    _check_columns(frame, columns, caller)
    for col in columns:
        _check_datetime(frame, col, caller)
    cutoff = _check_timestamp(cutoff, "cutoff", caller)
    train_span = _check_days(train_days, "train_days", caller, allow_none=True, positive=True)
    validation_span = _check_days(
        validation_days, "validation_days", caller, allow_none=False, positive=False
    )
    gap = _check_days(gap_days, "gap_days", caller, allow_none=False, positive=False)
    test_span = _check_days(test_days, "test_days", caller, allow_none=True, positive=True)

    validation_end = cutoff - gap
    train_end = validation_end - validation_span
    bounds = {
        "train": (None if train_span is None else train_end - train_span, train_end),
        "validation": (train_end, validation_end),
        "gap": (validation_end, cutoff),
        "test": (cutoff, None if test_span is None else cutoff + test_span),
    }
    times = frame[time_col]
    if label_time_col is None:
        known = pd.Series(True, index=frame.index)
    else:
        known = (frame[label_time_col] <= cutoff).fillna(False)
    parts, rows = {}, []
    has_label = label_col is not None and label_col in frame.columns
    for name, (start, end) in bounds.items():
        window = pd.Series(True, index=frame.index)
        if start is not None:
            window &= times >= start
        if end is not None:
            window &= times < end
        keep = window if name == "test" else window & known
        if name == "gap":
            keep = window & False
        parts[name] = frame.loc[keep.to_numpy()]
        rows.append(
            {
                "part": name,
                "start": times[window].min() if start is None else start,
                "end": times[window].max() if end is None else end,
                "n_rows": int(keep.sum()),
                "n_dropped": int((window & ~keep).sum()),
                "positive_rate": (
                    float(parts[name][label_col].mean()) if has_label and keep.any() else np.nan
                ),
            }
        )
    if parts["train"].empty:
        raise ValueError(
            f"{caller}: no training row before {train_end} has a label known at the cutoff "
            f"{cutoff}; move the cutoff later or shorten validation_days/gap_days."
        )
    summary = pd.DataFrame(rows).set_index("part")
    if validation_span == pd.Timedelta(0):
        summary = summary.drop(index="validation")
    if not has_label:
        summary = summary.drop(columns="positive_rate")
    return TimeSplit(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        cutoff=cutoff,
        summary=summary,
    )


def summarize_label_availability(
    frame: pd.DataFrame,
    cutoff,
    *,
    freq: str = "D",
    time_col: str = "tx_datetime",
    label_time_col: str = "label_available_at",
    label_col: str = "is_fraud",
) -> pd.DataFrame:
    """Count, per period before a cutoff, how many labels are already known there.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``time_col``, ``label_time_col`` and ``label_col``.
    cutoff : str or datetime-like
        The moment of the question "what do we know now?".
    freq : str, default="D"
        Period length (a pandas frequency: ``"D"``, ``"W"``...).
    time_col, label_time_col, label_col : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per period before the cutoff (index ``period``, the start of the
        period): ``n_rows``, ``n_labelled`` (label known at the cutoff),
        ``share_labelled``, ``true_positive_rate`` (with all labels, in hindsight)
        and ``known_positive_rate`` (among the labels known at the cutoff).

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame or a time column is not datetime64.
    ValueError
        If a column is missing (named) or ``cutoff`` is not a time.

    Examples
    --------
    >>> from production.simulate import simulate
    >>> tx = simulate(n_customers=100, n_days=20).transactions
    >>> known = summarize_label_availability(tx, "2026-01-15")
    >>> float(known["share_labelled"].iloc[-1])  # last day before the cutoff
    0.0
    """
    caller = "summarize_label_availability"
    _check_frame(frame, caller)
    _check_columns(frame, [time_col, label_time_col, label_col], caller)
    _check_datetime(frame, time_col, caller)
    _check_datetime(frame, label_time_col, caller)
    cutoff = _check_timestamp(cutoff, "cutoff", caller)
    before = frame.loc[frame[time_col] < cutoff]
    known = (before[label_time_col] <= cutoff).fillna(False)
    label = before[label_col].astype("float64")
    grouped = pd.DataFrame(
        {
            "period": before[time_col].dt.to_period(freq).dt.start_time,
            "n_rows": 1,
            "n_labelled": known.astype("int64"),
            "positive": label,
            "known_positive": label.where(known, 0.0),
        }
    ).groupby("period")
    out = grouped[["n_rows", "n_labelled"]].sum()
    out["share_labelled"] = out["n_labelled"] / out["n_rows"]
    out["true_positive_rate"] = grouped["positive"].mean()
    out["known_positive_rate"] = grouped["known_positive"].sum() / out["n_labelled"].where(
        out["n_labelled"] > 0
    )
    return out


# --------------------------------------------------------------------------- leakage


def _parts(splits, caller: str) -> tuple[dict[str, pd.DataFrame], pd.Timestamp | None]:
    """Return the named parts of a TimeSplit or mapping, and the TimeSplit's cutoff."""
    if isinstance(splits, TimeSplit):
        parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
        return {k: v for k, v in parts.items() if k != "validation" or len(v)}, splits.cutoff
    if not isinstance(splits, Mapping) or len(splits) < 2:
        raise TypeError(
            f"{caller}: splits must be a TimeSplit or a dict of at least two DataFrames in time "
            f"order, e.g. {{'train': train, 'test': test}}. Got {type(splits).__name__} instead."
        )
    for name, part in splits.items():
        _check_frame(part, caller, f"splits[{name!r}]")
    return dict(splits), None


def check_leakage(
    splits,
    *,
    cutoff=None,
    id_col: str = "transaction_id",
    time_col: str = "tx_datetime",
    label_time_col: str | None = "label_available_at",
    on_leak: str = "raise",
) -> pd.DataFrame:
    """Report what one split knows about another: shared ids, overlapping times, early labels.

    Splits are given in time order, the last one being evaluated. Three checks:

    * ``shared_ids``: for every pair of splits, rows whose ``id_col`` is in both
      (the same transaction trained on and tested on);
    * ``time_overlap``: for every pair (earlier, later), rows of the earlier split
      at or after the first row of the later one (training on the future);
    * ``label_not_available``: rows of every split but the last whose label was not
      known at the cutoff (``label_time_col > cutoff`` or missing). The cutoff is
      the TimeSplit's, else ``cutoff``, else the first time of the last split.

    Parameters
    ----------
    splits : TimeSplit or dict of str to pandas.DataFrame
        E.g. ``time_split(...)`` or ``{"train": train, "test": test}``.
    cutoff : datetime-like or None, default=None
        When the model is trained (see above).
    id_col : str, default="transaction_id"
        Row identifier.
    time_col : str, default="tx_datetime"
        When each row happened.
    label_time_col : str or None, default="label_available_at"
        When each label becomes known; ``None`` skips the label check.
    on_leak : {"raise", "warn", "ignore"}, default="raise"
        On a failed check: raise :class:`LeakageError`, warn :class:`LeakageWarning`,
        or only report.

    Returns
    -------
    pandas.DataFrame
        One row per check and pair: ``check``, ``splits`` (e.g. ``"train -> test"``),
        ``n_rows`` (offending rows), ``passed`` and ``detail``.

    Raises
    ------
    TypeError
        If ``splits`` is not a TimeSplit or a dict of DataFrames, or a time column
        is not datetime64.
    ValueError
        If a column is missing from a split (named), or ``on_leak`` is unknown.
    LeakageError
        If a check fails and ``on_leak="raise"``; the message lists the failures.

    Examples
    --------
    >>> from production.simulate import simulate
    >>> tx = simulate(n_customers=100, n_days=30).transactions
    >>> report = check_leakage(time_split(tx, cutoff="2026-01-22", gap_days=7))
    >>> bool(report["passed"].all())
    True
    """
    caller = "check_leakage"
    _check_on_leak(on_leak, caller)
    parts, split_cutoff = _parts(splits, caller)
    for name, part in parts.items():
        needed = [id_col, time_col] + ([label_time_col] if label_time_col else [])
        _check_columns(part, needed, caller, f"splits[{name!r}]")
        _check_datetime(part, time_col, caller)
        if label_time_col:
            _check_datetime(part, label_time_col, caller)
    names = list(parts)
    rows = []
    for i, earlier in enumerate(names):
        for later in names[i + 1 :]:
            a, b = parts[earlier], parts[later]
            shared = np.intersect1d(a[id_col].to_numpy(), b[id_col].to_numpy())
            example = f", e.g. {shared[:3].tolist()}" if shared.size else ""
            rows.append(
                {
                    "check": "shared_ids",
                    "splits": f"{earlier} -> {later}",
                    "n_rows": int(shared.size),
                    "detail": f"{shared.size} {id_col}(s) in both {earlier} and {later}{example}",
                }
            )
            later_start = b[time_col].min()
            overlap = int((a[time_col] >= later_start).sum()) if len(b) else 0
            detail = (
                f"{overlap} {earlier} row(s) at or after the start of {later} ({later_start}); "
                f"{earlier} ends {a[time_col].max()}"
                if overlap
                else f"{earlier} ends before {later} starts"
            )
            rows.append(
                {
                    "check": "time_overlap",
                    "splits": f"{earlier} -> {later}",
                    "n_rows": overlap,
                    "detail": detail,
                }
            )
    if label_time_col:
        if split_cutoff is not None:
            at = split_cutoff
        elif cutoff is not None:
            at = _check_timestamp(cutoff, "cutoff", caller)
        else:
            at = parts[names[-1]][time_col].min()
        for name in names[:-1]:
            label_at = parts[name][label_time_col]
            late = ~(label_at <= at).fillna(False) if not pd.isna(at) else label_at.isna()
            n_late = int(late.sum())
            rows.append(
                {
                    "check": "label_not_available",
                    "splits": name,
                    "n_rows": n_late,
                    "detail": (
                        f"{n_late} {name} row(s) labelled after the cutoff {at} "
                        f"(latest label {label_at.max()})"
                        if n_late
                        else f"every {name} label known at the cutoff {at}"
                    ),
                }
            )
    report = pd.DataFrame(rows, columns=["check", "splits", "n_rows", "detail"])
    report.insert(3, "passed", report["n_rows"] == 0)
    problems = report.loc[~report["passed"], "detail"].tolist()
    _report_leak(problems, on_leak, f"{caller}: leakage between splits")
    return report


# --------------------------------------------------------------------------- class imbalance


def compute_class_weights(y) -> dict:
    """Weigh classes inversely to their frequency ("balanced"): ``n / (n_classes * n_c)``.

    Pass the result as ``class_weight=`` to a scikit-learn classifier, or
    ``y.map(weights)`` as ``sample_weight``: each class then carries the same
    total weight in the loss.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.

    Returns
    -------
    dict
        ``{class: weight}``, classes sorted, weights as Python floats.

    Raises
    ------
    ValueError
        If ``y`` is empty or not a classification target.

    Examples
    --------
    >>> compute_class_weights([0, 0, 0, 1])
    {0: 0.6666666666666666, 1: 2.0}
    """
    y = np.asarray(y)
    if y.size == 0:
        raise ValueError("compute_class_weights: y is empty.")
    check_classification_targets(y)
    classes, counts = np.unique(y, return_counts=True)
    weights = y.size / (classes.size * counts)
    return {
        c.item() if hasattr(c, "item") else c: float(w)
        for c, w in zip(classes, weights, strict=True)
    }


def resample_indices(
    y,
    indices=None,
    *,
    method: str = "under",
    ratio: float = 1.0,
    random_state: int = RANDOM_STATE,
) -> np.ndarray:
    """Randomly under- or over-sample the training indices of an imbalanced target.

    Apply it to **training indices only** (e.g. each training fold of a
    cross-validation); validation and test rows keep the real class balance, or
    the scores mean nothing.

    * ``"under"``: every class keeps at most ``round(n_min / ratio)`` rows, drawn
      without replacement (``n_min``: the smallest class); the minority is kept whole.
    * ``"over"``: every class is brought up to at least ``round(n_max * ratio)``
      rows by drawing extra copies of its rows with replacement.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels of all rows.
    indices : array-like of int or None, default=None
        Positions in ``y`` to resample (e.g. a training fold); ``None`` for all rows.
    method : {"under", "over"}, default="under"
        Under-sample the large classes or over-sample the small ones.
    ratio : float, default=1.0
        Target size of the smallest class relative to the largest, in ``(0, 1]``.
    random_state : int, default=RANDOM_STATE
        Seed; same seed, same indices.

    Returns
    -------
    numpy.ndarray of int
        Positions in ``y``, sorted (with repeats when over-sampling).

    Raises
    ------
    ValueError
        If ``method`` or ``ratio`` is invalid, ``indices`` is out of range, or
        there are no rows.

    Examples
    --------
    >>> y = [0, 0, 0, 0, 0, 0, 1, 1]
    >>> resample_indices(y, method="under", ratio=0.5, random_state=0).size
    6
    """
    caller = "resample_indices"
    y = np.asarray(y)
    if method not in _RESAMPLING:
        raise ValueError(
            f"The 'method' parameter of {caller} must be one of {list(_RESAMPLING)}. "
            f"Got {method!r} instead."
        )
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 < ratio <= 1:
        raise ValueError(
            f"The 'ratio' parameter of {caller} must be a number in (0, 1]. Got {ratio!r} instead."
        )
    rng = _check_random_state(random_state, caller)
    if indices is None:
        indices = np.arange(y.shape[0])
    indices = np.asarray(indices)
    if indices.size == 0:
        raise ValueError(f"{caller}: no rows to resample (indices is empty).")
    if indices.dtype.kind not in "iu" or indices.min() < 0 or indices.max() >= y.shape[0]:
        raise ValueError(
            f"{caller}: indices must be integer positions in [0, {y.shape[0]}). "
            f"Got values from {indices.min()} to {indices.max()} (dtype {indices.dtype})."
        )
    classes, codes = np.unique(y[indices], return_inverse=True)
    counts = np.bincount(codes)
    chosen = []
    for c in range(classes.size):
        members = indices[codes == c]
        if method == "under":
            target = min(counts[c], max(1, round(counts.min() / ratio)))
            chosen.append(rng.choice(members, size=target, replace=False))
        else:
            extra = max(0, round(counts.max() * ratio) - counts[c])
            chosen.append(members)
            chosen.append(rng.choice(members, size=extra, replace=True))
    return np.sort(np.concatenate(chosen))


def _estimator_has(name: str):
    """Return a check that the (fitted or given) inner estimator has method ``name``."""

    def check(self) -> bool:
        return hasattr(getattr(self, "estimator_", self.estimator), name)

    return check


class ResampledClassifier(ClassifierMixin, BaseEstimator):
    """A classifier fitted on a randomly under- or over-sampled copy of its training data.

    Resampling happens in ``fit`` only: inside ``cross_validate`` or a grid search
    every training fold is resampled and every test fold is scored untouched, as
    it must be. Predictions come from the inner estimator (probabilities are those
    of the resampled class balance: too high for the minority; rank-based metrics
    such as average precision are unaffected).

    Parameters
    ----------
    estimator : classifier
        Cloned and fitted on the resampled rows.
    method : {"under", "over"}, default="under"
        See :func:`resample_indices`.
    ratio : float, default=1.0
        See :func:`resample_indices`.
    random_state : int, default=RANDOM_STATE
        Seed of the resampling.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone.
    classes_ : numpy.ndarray
        Class labels.
    n_resampled_ : int
        Rows the clone was fitted on.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.arange(20.0).reshape(-1, 1), np.r_[np.zeros(16), np.ones(4)]
    >>> clf = ResampledClassifier(LogisticRegression(), ratio=1.0).fit(X, y)
    >>> clf.n_resampled_
    8
    """

    def __init__(self, estimator, *, method="under", ratio=1.0, random_state=RANDOM_STATE):
        self.estimator = estimator
        self.method = method
        self.ratio = ratio
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        """Resample ``(X, y)`` and fit a clone of ``estimator`` on it.

        Parameters
        ----------
        X : array-like or pandas.DataFrame of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        **fit_params : dict
            Passed to the estimator's ``fit``; per-row arrays (``sample_weight``)
            are resampled along.

        Returns
        -------
        self : ResampledClassifier
            Fitted.

        Raises
        ------
        TypeError
            If ``estimator`` has no ``fit``.
        ValueError
            If ``y`` is missing or not a classification target, ``X`` and ``y``
            differ in length, or ``method``, ``ratio`` or ``random_state`` is invalid.
        """
        if not hasattr(self.estimator, "fit"):
            raise TypeError(
                "ResampledClassifier: estimator must be a classifier with fit. "
                f"Got {type(self.estimator).__name__} instead."
            )
        if y is None:
            raise ValueError(
                "ResampledClassifier requires y to be passed, but the target y is None."
            )
        y_array = column_or_1d(y, warn=True)
        check_classification_targets(y_array)
        check_consistent_length(X, y_array)
        n = y_array.shape[0]
        if n == 0:
            raise ValueError("ResampledClassifier: cannot fit on 0 samples.")
        if sparse.issparse(X):
            X = X.tocsr()  # row indexing
        elif not hasattr(X, "iloc") and not hasattr(X, "shape"):
            X = np.asarray(X)  # lists and other array-likes
        positions = resample_indices(
            y_array, method=self.method, ratio=self.ratio, random_state=self.random_state
        )
        params = {
            key: _safe_indexing(value, positions)
            if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n
            else value
            for key, value in fit_params.items()
        }
        self.estimator_ = clone(self.estimator).fit(
            _safe_indexing(X, positions), _safe_indexing(y_array, positions), **params
        )
        self.classes_ = np.unique(y_array)
        self.n_resampled_ = int(positions.size)
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, attr):
                setattr(self, attr, getattr(self.estimator_, attr))
        return self

    def predict(self, X):
        """Predict classes with the fitted clone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        numpy.ndarray
            Predicted classes.
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Predict class probabilities with the fitted clone (resampled class balance).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            Probabilities.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Return the fitted clone's decision function.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        numpy.ndarray
            Scores.
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.estimator).input_tags
        return tags


def recall_at_precision(y_true, y_score, *, min_precision: float = 0.8) -> float:
    """Return the best recall reachable at a precision of at least ``min_precision``.

    "How many frauds do we catch if at most 1 alert in 5 may be a false alarm?"
    (``min_precision=0.8``). Unlike accuracy, it ignores the mass of easy negatives.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels (1 = positive).
    y_score : array-like of shape (n_samples,)
        Scores, higher for the positive class.
    min_precision : float, default=0.8
        Precision floor, in ``(0, 1]``.

    Returns
    -------
    float
        The largest recall over thresholds whose precision is ``>= min_precision``;
        0.0 if none reaches it.

    Raises
    ------
    ValueError
        If ``min_precision`` is not in ``(0, 1]`` or ``y_true`` has no positive.

    Examples
    --------
    >>> recall_at_precision([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], min_precision=1.0)
    0.5
    """
    if (
        isinstance(min_precision, bool)
        or not isinstance(min_precision, numbers.Real)
        or not 0 < min_precision <= 1
    ):
        raise ValueError(
            "The 'min_precision' parameter of recall_at_precision must be a number in (0, 1]. "
            f"Got {min_precision!r} instead."
        )
    y_true = np.asarray(y_true)
    if not (y_true == 1).any():
        raise ValueError("recall_at_precision: y_true has no positive (1) label.")
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    reachable = recall[precision >= min_precision]
    return float(reachable.max()) if reachable.size else 0.0

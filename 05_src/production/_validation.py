"""Input checks shared by the whole package: declared once, one wording for every error.

As scikit-learn's ``validate_params``: a function declares its parameters' constraints once,

    @validate_params(n=Interval(int, 0, None), frac=Interval(float, 0, 1, none=True))
    def simple_random_sample(frame, n=None, *, frac=None, random_state=RANDOM_STATE): ...

and ``simple_random_sample(df, n=-1)`` raises "The 'n' parameter of simple_random_sample must
be an int >= 0. Got -1 instead." Errors are :class:`InvalidParameterError`, a ``ValueError``
*and* a ``TypeError``; :func:`check_frame` names missing columns and the available ones.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
import re
from collections.abc import Callable, Sequence

import pandas as pd


class InvalidParameterError(ValueError, TypeError):
    """A parameter has the wrong type or value (both a ValueError and a TypeError)."""


def _message(name: str, where: str, expected: str, value) -> str:
    """Return the one wording of a bad-parameter error."""
    shown = repr(value)
    shown = shown[:77] + "..." if len(shown) > 80 else shown
    return f"The '{name}' parameter of {where} must be {expected}. Got {shown} instead."


class _Constraint:
    """A constraint on ``values``: ``_accepts(value)``, ``_text()``; ``none=True`` accepts None."""

    def __init__(self, *values, none=False):
        self.values, self.none = values, none

    def is_satisfied_by(self, value) -> bool:
        """Whether ``value`` meets the constraint."""
        return self.none if value is None else self._accepts(value)

    def __str__(self) -> str:
        return self._text() + (" or None" if self.none else "")


class Interval(_Constraint):
    """A real or integer number in ``[low, high]`` (either end may be None, or open).

    Parameters
    ----------
    kind : {int, float}
        ``int`` accepts integers only; ``float`` any finite real number.
    low, high : float or None
        Bounds; None means unbounded on that side.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds are included.
    none : bool, default=False
        Whether None is also accepted.
    """

    def __init__(self, kind, low=None, high=None, *, closed="both", none=False):
        self.kind, self.low, self.high, self.closed, self.none = kind, low, high, closed, none
        self.left, self.right = closed in ("both", "left"), closed in ("both", "right")

    def _accepts(self, value) -> bool:
        number = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            return False
        above = self.low is None or value > self.low or (self.left and value == self.low)
        below = self.high is None or value < self.high or (self.right and value == self.high)
        return bool(above and below)

    def _text(self) -> str:
        noun = "an int" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            lo, hi = "[" if self.left else "(", "]" if self.right else ")"
            return f"{noun} in {lo}{self.low}, {self.high}{hi}"
        if self.low is not None:
            return f"{noun} {'>=' if self.left else '>'} {self.low}"
        if self.high is not None:
            return f"{noun} {'<=' if self.right else '<'} {self.high}"
        return noun


class OneOf(_Constraint):
    """One of a fixed set of values (e.g. ``OneOf("pandas", "dask")``)."""

    def _accepts(self, value) -> bool:
        return any(value == option and type(value) is type(option) for option in self.values)

    def _text(self) -> str:
        return f"one of {list(self.values)}"


class Instance(_Constraint):
    """An instance of one of ``types`` (e.g. ``Instance(pd.DataFrame)``)."""

    def _accepts(self, value) -> bool:
        return isinstance(value, self.values) and (
            bool in self.values or not isinstance(value, bool)
        )

    def _text(self) -> str:
        return "an instance of " + " or ".join(t.__name__ for t in self.values)


class TableName(_Constraint):
    """A SQL table name: letters, digits and underscores, not starting with a digit."""

    def _accepts(self, value) -> bool:
        return isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value))

    def _text(self) -> str:
        return "a table name (letters, digits and '_', not starting with a digit, <= 63 chars)"


def check_param(value, constraint, name: str, where: str):
    """Return ``value`` if it meets ``constraint``, else raise InvalidParameterError."""
    if not constraint.is_satisfied_by(value):
        raise InvalidParameterError(_message(name, where, str(constraint), value))
    return value


def validate_params(**constraints) -> Callable:
    """Decorate a function so its named parameters are checked before it runs.

    Parameters
    ----------
    **constraints
        Parameter name -> constraint (:class:`Interval`, :class:`OneOf`, :class:`Instance`,
        :class:`TableName` or anything with ``is_satisfied_by``).
    """

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        if unknown:
            raise TypeError(
                f"validate_params: {func.__name__} has no parameter(s) {sorted(unknown)}"
            )

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, constraint in constraints.items():
                check_param(bound.arguments[name], constraint, name, func.__qualname__)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def check_frame(frame, where: str, *, name="frame", columns=(), datetime_columns=()) -> None:
    """Raise unless ``frame`` is a DataFrame with ``columns`` (and datetime64 ``datetime_columns``).

    Parameters
    ----------
    frame : object
        The value to check.
    where, name : str
        The public function called and the parameter's name (default "frame"), for the message.
    columns, datetime_columns : iterable of str
        Columns that must be present (and of a datetime64 dtype).

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the missing columns and the available ones.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidParameterError(
            f"{where}: {name} must be a pandas DataFrame. Got {type(frame).__name__} instead."
        )
    datetime_columns = list(datetime_columns)
    missing = [c for c in dict.fromkeys([*columns, *datetime_columns]) if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"{where}: column(s) {missing} not found in {name}; "
            f"available: {[str(c) for c in frame.columns]}"
        )
    for col in datetime_columns:
        if not pd.api.types.is_datetime64_any_dtype(frame[col].dtype):
            raise InvalidParameterError(
                f"{where}: column '{col}' of {name} must be datetime64. "
                f"Got dtype {frame[col].dtype} instead."
            )


def as_timestamp(value, name: str, where: str) -> pd.Timestamp:
    """Return ``value`` (a date, datetime or ISO string) as a naive Timestamp, else raise."""
    stamp = pd.NaT
    if not isinstance(value, numbers.Number):  # pd.Timestamp(1) is 1 ns after 1970
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        expected = "a date or time, e.g. '2026-02-01'"
        raise InvalidParameterError(_message(name, where, expected, value))
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def as_day(value, name: str, where: str) -> pd.Timestamp:
    """Return ``value`` as a midnight Timestamp (a calendar day), else raise."""
    return as_timestamp(value, name, where).normalize()


def column_list(value, name: str, where: str) -> list[str]:
    """Return a str or a sequence of str (list, tuple, pandas Index, ...) as a list of str."""
    if isinstance(value, str):
        return [value]
    value = value.tolist() if isinstance(value, pd.Index | pd.Series) else value
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterError(_message(name, where, "a column name or a list of them", value))
    return list(value)

"""Input checks shared by the whole package: declared once, one wording for every error.

Modelled on scikit-learn's ``validate_params``: a public function declares the constraints
of its parameters once, and the message is generated here::

    @validate_params(n=Interval(int, 0, None), frac=Interval(float, 0, 1, none=True))
    def simple_random_sample(frame, *, n=None, frac=None, random_state=RANDOM_STATE): ...

    >>> simple_random_sample(df, n=-1)
    InvalidParameterError: The 'n' parameter of simple_random_sample must be an int >= 0.
    Got -1 instead.

DataFrame inputs are checked with :func:`check_frame`, which names the missing columns and
the available ones. Errors are :class:`InvalidParameterError`, a ``ValueError`` *and* a
``TypeError`` (as in scikit-learn), so callers may catch either.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "InvalidParameterError",
    "Interval",
    "OneOf",
    "Instance",
    "TableName",
    "validate_params",
    "check_param",
    "check_frame",
    "as_timestamp",
    "as_day",
    "column_list",
]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class InvalidParameterError(ValueError, TypeError):
    """A parameter has the wrong type or value (both a ValueError and a TypeError)."""


def _message(name: str, where: str, expected: str, value: Any) -> str:
    """The one wording of a bad-parameter error."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"The '{name}' parameter of {where} must be {expected}. Got {shown} instead."


class Interval:
    """A real or integer number in ``[low, high]`` (either end may be None, or open).

    Parameters
    ----------
    kind : {int, float}
        ``int`` accepts integers only; ``float`` accepts any finite real number.
    low, high : float or None
        Bounds; None means unbounded on that side.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds are included.
    none : bool, default=False
        Whether None is also accepted.
    """

    def __init__(self, kind, low=None, high=None, *, closed="both", none=False):
        self.kind, self.low, self.high, self.closed, self.none = kind, low, high, closed, none

    def is_satisfied_by(self, value) -> bool:
        """Whether ``value`` meets the constraint."""
        if value is None:
            return self.none
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (not left and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (not right and value == self.high)))

    def __str__(self) -> str:
        noun = "an int" if self.kind is int else "a number"
        left = ">=" if self.closed in ("both", "left") else ">"
        right = "<=" if self.closed in ("both", "right") else "<"
        if self.low is not None and self.high is not None:
            lo = "[" if left == ">=" else "("
            hi = "]" if right == "<=" else ")"
            text = f"{noun} in {lo}{self.low}, {self.high}{hi}"
        elif self.low is not None:
            text = f"{noun} {left} {self.low}"
        elif self.high is not None:
            text = f"{noun} {right} {self.high}"
        else:
            text = noun
        return text + (" or None" if self.none else "")


class OneOf:
    """One of a fixed set of values (e.g. ``OneOf("pandas", "dask")``)."""

    def __init__(self, *options, none=False):
        self.options, self.none = options, none

    def is_satisfied_by(self, value) -> bool:
        """Whether ``value`` meets the constraint."""
        if value is None:
            return self.none
        return any(value == option and type(value) is type(option) for option in self.options)

    def __str__(self) -> str:
        return f"one of {list(self.options)}" + (" or None" if self.none else "")


class Instance:
    """An instance of one of ``types`` (e.g. ``Instance(pd.DataFrame)``)."""

    def __init__(self, *types, none=False):
        self.types, self.none = types, none

    def is_satisfied_by(self, value) -> bool:
        """Whether ``value`` meets the constraint."""
        if value is None:
            return self.none
        return isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types
        )

    def __str__(self) -> str:
        names = " or ".join(t.__name__ for t in self.types)
        return f"an instance of {names}" + (" or None" if self.none else "")


class TableName:
    """A SQL table name: letters, digits and underscores, not starting with a digit."""

    def is_satisfied_by(self, value) -> bool:
        """Whether ``value`` meets the constraint."""
        return isinstance(value, str) and bool(_TABLE_NAME.match(value))

    def __str__(self) -> str:
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
        ``parameter name -> constraint`` (:class:`Interval`, :class:`OneOf`,
        :class:`Instance`, :class:`TableName` or anything with ``is_satisfied_by``).

    Returns
    -------
    callable
        The decorator.
    """

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        if unknown:
            raise TypeError(f"validate_params: {func.__name__} has no parameter(s) {sorted(unknown)}")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, constraint in constraints.items():
                check_param(bound.arguments[name], constraint, name, func.__qualname__)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def check_frame(
    frame,
    where: str,
    *,
    name: str = "frame",
    columns: Iterable[str] = (),
    datetime_columns: Iterable[str] = (),
    allow_dask: bool = False,
) -> None:
    """Raise unless ``frame`` is a DataFrame with ``columns`` (and datetime64 ``datetime_columns``).

    Parameters
    ----------
    frame : object
        The value to check.
    where : str
        The public function being called, named in the message.
    name : str, default="frame"
        The parameter's name, named in the message.
    columns : iterable of str
        Columns that must be present.
    datetime_columns : iterable of str
        Columns that must be present and of a datetime64 dtype.
    allow_dask : bool, default=False
        Also accept a Dask DataFrame.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the missing columns and the available ones.
    """
    is_dask = allow_dask and type(frame).__module__.startswith("dask")
    if not isinstance(frame, pd.DataFrame) and not is_dask:
        expected = "a pandas or Dask DataFrame" if allow_dask else "a pandas DataFrame"
        raise InvalidParameterError(
            f"{where}: {name} must be {expected}. Got {type(frame).__name__} instead."
        )
    datetime_columns = list(datetime_columns)
    needed = list(dict.fromkeys([*columns, *datetime_columns]))
    missing = [c for c in needed if c not in frame.columns]
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
    expected = "a date or time, e.g. '2026-02-01'"
    if isinstance(value, bool) or value is None or isinstance(value, numbers.Number):
        raise InvalidParameterError(_message(name, where, expected, value))
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise InvalidParameterError(_message(name, where, expected, value)) from err
    if pd.isna(stamp):
        raise InvalidParameterError(_message(name, where, expected, value))
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def as_day(value, name: str, where: str) -> pd.Timestamp:
    """Return ``value`` as a midnight Timestamp (a calendar day), else raise."""
    return as_timestamp(value, name, where).normalize()


def column_list(value, name: str, where: str) -> list[str]:
    """Return a str or a sequence of str (list, tuple, pandas Index, ...) as a list of str."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, pd.Index | pd.Series):
        value = value.tolist()
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterError(_message(name, where, "a column name or a list of them", value))
    return list(value)

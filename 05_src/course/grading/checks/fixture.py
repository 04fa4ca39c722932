"""Checks of the fixture assignment ``00_fixture`` (the grader's tests, and an example).

The notebook defines ``fares`` (a list of numbers), ``mean_fare`` (their mean, a float),
``label`` (a str) and ``first_rows(frame)``, which returns the first half of ``frame``'s
rows, in order.
"""

import numpy as np
import pandas as pd

from course.grading.artifact import CheckFailed

NAMES = ("fares", "mean_fare", "label")
FARES = [1.0, 2.0, 3.0, 4.0]


def make_inputs(seed: int) -> dict:
    """Return the frames ``first_rows`` is called on: a fixed one and a random one."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 40))
    return {
        "first_rows": {
            "small": pd.DataFrame({"x": [3, 1, 2, 5]}, index=[10, 11, 12, 13]),
            "random": pd.DataFrame({"x": rng.normal(size=size)}, index=rng.permutation(size)),
        }
    }


def mean_fare_is_right(answers, **context) -> tuple[bool, str]:
    """``mean_fare`` is the mean of the fares, as a number."""
    value = answers.require("mean_fare", "number")
    expected = sum(FARES) / len(FARES)
    if abs(value - expected) > 1e-9:
        return False, f"`mean_fare` is {value}; expected the mean of `fares`, {expected}."
    return True, f"`mean_fare` = {value}."


def first_rows_keeps_order(answers, seed, **context) -> tuple[bool, str]:
    """``first_rows`` returns the first half of the rows, in order, on any frame."""
    for case, frame in make_inputs(seed)["first_rows"].items():
        got = answers.output("first_rows", case, "frame")
        expected = frame.iloc[: len(frame) // 2]
        if list(got.index) != list(expected.index):
            return False, (
                f"On the grader's frame {case!r} of {len(frame)} rows, `first_rows` returned "
                f"the rows {list(got.index)[:6]}; expected the first {len(expected)}, in "
                f"order: {list(expected.index)[:6]}."
            )
    return True, "`first_rows` keeps the first half of the rows, in order."


def label_is_named(answers, **context) -> tuple[bool, str]:
    """``label`` names the label column."""
    label = answers.require("label", "str")
    if label.strip() != "is_fraud":
        raise CheckFailed(f"`label` is {label!r}; expected the label column, 'is_fraud'.")
    return True, f"`label` = {label!r}."

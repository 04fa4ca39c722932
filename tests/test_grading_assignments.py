"""The real assignments, graded end to end as CI grades a pull request.

Each template is graded unsolved (0 points, a message per criterion), then with its
blanks filled by submissions written independently of the checks (``assignment_helpers``):
honest ones get full marks, the boundary mistakes and the leaky search of issue 10 lose
exactly the criteria they break. The setup cells must build the data the judge rebuilds.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from assignment_helpers import (
    A1_ALTERNATIVE,
    A1_BLANKS,
    A1_BOUNDARY_BUGS,
    A2_ALTERNATIVE,
    A2_BLANKS,
    A2_LEAKY_SEARCH,
    ASSIGNMENTS,
    build_course,
    submission,
)
from course.grading import grade_notebook
from course.grading.checks import model_development, training_data

A1 = ASSIGNMENTS / "01_training_data_activity.py"
A2 = ASSIGNMENTS / "02_model_development_activity.py"
SUBMISSIONS = {
    "a1_template": (A1, A1_BLANKS, {}),
    "a1_alternative": (A1, A1_BLANKS, A1_ALTERNATIVE),
    "a1_boundary_bugs": (A1, A1_BLANKS, A1_BOUNDARY_BUGS),
    "a2_template": (A2, A2_BLANKS, {}),
    "a2_alternative": (A2, A2_BLANKS, A2_ALTERNATIVE),
    "a2_leaky_search": (A2, A2_BLANKS, A2_LEAKY_SEARCH),
}
GRADED: dict = {}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    def grade(name):
        if name not in GRADED:
            template, blanks, answers = SUBMISSIONS[name]
            assignment = template.stem.removesuffix("_activity")
            folder = tmp_path_factory.mktemp(name)
            notebook = build_course(folder, assignment, submission(template, blanks, answers))
            GRADED[name] = grade_notebook(notebook, verify_git=False)
        return GRADED[name]

    return grade


def setup_cell(template) -> str:
    cells = template.read_text().split("# %%\n")
    return next(c for c in cells[1:] if "simulate(" in c)


def test_the_templates_build_the_data_the_judge_rebuilds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(setup_cell(A1), namespace)  # noqa: S102 - the committed template's own setup cell
    pd.testing.assert_frame_equal(namespace["transactions"], training_data.assignment_data())
    namespace = {}
    exec(setup_cell(A2), namespace)  # noqa: S102
    train, test = model_development.assignment_data()
    pd.testing.assert_frame_equal(namespace["train"], train)
    pd.testing.assert_frame_equal(namespace["test"], test)


def test_boundary_rows_sit_exactly_on_every_edge():
    tx = training_data.assignment_data().set_index("transaction_id")
    assert tx.loc[9_000_000_001, "tx_datetime"] == training_data.CUTOFF
    assert tx.loc[9_000_000_002, "tx_datetime"] == training_data.TEST_END
    assert tx.loc[9_000_000_005, "label_available_at"] == training_data.CUTOFF
    gap = pd.Timedelta(days=training_data.GAP_DAYS["chip"])
    assert tx.loc[9_000_000_004, "tx_datetime"] == training_data.CUTOFF - gap


@pytest.mark.parametrize("name", ["a1_template", "a2_template"])
def test_unsolved_templates_score_zero_with_a_message_per_criterion(graded, name):
    result = graded(name)
    assert (result.score, result.mark, result.withheld) == (0, "incomplete", ()), result.withheld
    hints = ("expected", "None", "not written yet")
    assert all(any(h in c.message for h in hints) for c in result.criteria)


@pytest.mark.parametrize(
    "name", ["a1_alternative", pytest.param("a2_alternative", marks=pytest.mark.slow)]
)
def test_honest_submissions_get_full_marks(graded, name):
    result = graded(name)
    failed = {c.id: c.message for c in result.criteria if not c.passed}
    assert failed == {} and result.mark == "complete" and result.status == "ok"


def test_boundary_mistakes_lose_exactly_the_criteria_they_break(graded):
    """The plain solution's sample and feature, with the boundary mistakes of issue 10."""
    result = graded("a1_boundary_bugs")
    passed = {c.id: c.passed for c in result.criteria}
    assert passed == {
        "stratified_sample": True,
        "labels_known": False,
        "test_period": False,
        "leak_free_train": False,
        "nightly_feature": True,
    }
    messages = " ".join(c.message for c in result.criteria)
    assert "<=, not <" in messages and "exactly at CUTOFF + 14 days" in messages
    assert "strictly before" in messages and result.mark == "incomplete"


@pytest.mark.slow
def test_a_search_fitted_on_test_rows_fails_the_window_criterion(graded):
    result = graded("a2_leaky_search")
    failed = [c.id for c in result.criteria if not c.passed]
    why = (result.status, result.withheld, result.messages, [c.message for c in result.criteria])
    assert "search_on_training_rows" in failed, why
    assert "time_aware_search" not in failed, why
    assert result.score <= 8


def test_results_are_valid_json_of_the_schema(graded):
    from course.grading import validate_result

    for result in GRADED.values():
        validate_result(json.loads(json.dumps(result.to_dict())))

"""Autograding of assignment notebooks: the learner's code and the judge never share a process.

* :mod:`~course.grading.rubric` -- the YAML rubric next to each assignment and the
  learners' Markdown generated from it.
* :mod:`~course.grading.runner` -- the notebook runs in a contained kernel that only
  produces data (:mod:`~course.grading.kernel_export` saves the answers).
* :mod:`~course.grading.judge` -- a separate process compares the answers with the values
  it computes itself (:mod:`~course.grading.checks`); a learner's model is scored by
  :mod:`~course.grading.scorer`, contained too.
* :mod:`~course.grading.contain` -- allow-listed environments, process trees, file watches.
* :mod:`~course.grading.grader` -- :func:`grade_notebook` puts them together.
* :mod:`~course.grading.artifact` -- results as data: schema, summaries, the validation of
  a pull request's artifact and its comment (standard library only).
* :mod:`~course.grading.gradebook` -- the course's marks into a gradebook CSV.

See ``02_activities/GRADING.md``.
"""

from course.grading.artifact import (
    COMMENT_MARKER,
    MARKS,
    RESULT_SCHEMA,
    ArtifactError,
    CheckFailed,
    CriterionResult,
    GradeResult,
    GradingError,
    RubricError,
    read_pr_number,
    render_comment,
    render_markdown,
    validate_artifact,
    validate_result,
    verify_pull_request,
)
from course.grading.grader import grade_notebook
from course.grading.rubric import (
    Criterion,
    Rubric,
    find_rubric,
    load_rubric,
    render_rubric_markdown,
)

__all__ = [
    "COMMENT_MARKER",
    "MARKS",
    "RESULT_SCHEMA",
    "ArtifactError",
    "CheckFailed",
    "Criterion",
    "CriterionResult",
    "GradeResult",
    "GradingError",
    "Rubric",
    "RubricError",
    "find_rubric",
    "grade_notebook",
    "load_rubric",
    "read_pr_number",
    "render_comment",
    "render_markdown",
    "render_rubric_markdown",
    "validate_artifact",
    "validate_result",
    "verify_pull_request",
]

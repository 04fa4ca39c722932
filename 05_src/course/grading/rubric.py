"""Rubrics: the YAML file next to each assignment, and the learners' Markdown from it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from course.grading.artifact import (
    _ASSIGNMENT,
    _CRITERION_ID,
    _TEXT,
    MAX_CRITERIA,
    MAX_POINTS,
    MAX_TITLE,
    RUBRIC_VERSION,
    RubricError,
    _escape_light,
)

__all__ = ["Criterion", "Rubric", "find_rubric", "load_rubric", "render_rubric_markdown"]

_NAME = r"^[a-z][a-z0-9_]{0,39}$"


# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One line of a rubric.

    Attributes
    ----------
    id : str
        Stable identifier, ``[a-z][a-z0-9_]*`` (at most 40 characters).
    title : str
        Short title shown to learners.
    points : int
        Points awarded when the check passes (1 to 100); none otherwise.
    check : str
        Name of the check function in the rubric's checks module
        (``course.grading.checks.<checks>``), e.g. ``sample_is_stratified``.
    description : str
        What is expected, in Markdown, for the learners' rubric.
    """

    id: str
    title: str
    points: int
    check: str
    description: str


@dataclass(frozen=True)
class Rubric:
    """A parsed rubric file (see :func:`load_rubric`).

    Grading reads the rubrics of the main branch, never those of the pull request graded.

    Attributes
    ----------
    path : pathlib.Path
        The YAML file it was read from.
    assignment : str
        Assignment identifier, the file name without ``_rubric.yml``.
    title : str
        Title of the assignment.
    checks : str
        The module of ``course.grading.checks`` holding the checks, e.g. ``training_data``.
    complete : int
        Points a Complete needs (the rubric's ``complete``; ``all`` is every point).
    criteria : tuple of Criterion
        The criteria, in the order learners see them.
    """

    path: Path
    assignment: str
    title: str
    checks: str
    complete: int
    criteria: tuple[Criterion, ...]

    @property
    def max_score(self) -> int:
        """Total points of the rubric."""
        return sum(criterion.points for criterion in self.criteria)


_RUBRIC_KEYS = {"version", "assignment", "title", "checks", "complete", "criteria"}
_CRITERION_KEYS = {"id", "title", "points", "check", "description"}


def load_rubric(rubric_path: str | os.PathLike) -> Rubric:
    """Read and validate a rubric YAML file.

    Parameters
    ----------
    rubric_path : path-like
        The ``NN_topic_rubric.yml`` file.

    Returns
    -------
    Rubric
        The validated rubric.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    RubricError
        If the YAML is invalid or a field is missing, unknown or out of range; the
        message names the file and the criterion.

    Examples
    --------
    >>> rubric = load_rubric("02_activities/assignments/01_training_data_rubric.yml")  # doctest: +SKIP
    >>> rubric.max_score  # doctest: +SKIP
    10
    """
    import yaml

    path = Path(rubric_path)
    if not path.is_file():
        raise FileNotFoundError(f"load_rubric: rubric {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RubricError(f"{path.name}: not valid YAML: {err}") from err
    where = path.name
    if not isinstance(data, dict):
        raise RubricError(f"{where}: expected a mapping with {sorted(_RUBRIC_KEYS)}")
    _no_unknown_keys(data, _RUBRIC_KEYS, where)
    if data.get("version") != RUBRIC_VERSION:
        raise RubricError(
            f"{where}: 'version' must be {RUBRIC_VERSION}; got {data.get('version')!r}"
        )
    expected = path.name.removesuffix(".yml").removesuffix(".yaml").removesuffix("_rubric")
    assignment = data.get("assignment")
    if assignment != expected or not re.match(_ASSIGNMENT, str(assignment)):
        raise RubricError(
            f"{where}: 'assignment' must be the file name without _rubric.yml "
            f"({expected!r}); got {assignment!r}"
        )
    title = _rubric_text(data, "title", where, MAX_TITLE)
    criteria_data = data.get("criteria")
    if not isinstance(criteria_data, list) or not 1 <= len(criteria_data) <= MAX_CRITERIA:
        raise RubricError(f"{where}: 'criteria' must be a list of 1 to {MAX_CRITERIA} criteria")
    criteria = [_criterion(item, n, where) for n, item in enumerate(criteria_data, start=1)]
    ids = [criterion.id for criterion in criteria]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RubricError(f"{where}: criterion ids must be unique; repeated: {duplicates}")
    checks = _name(
        data.get("checks"),
        f"{where}: 'checks' must name a module of course.grading.checks, such as 'training_data'",
    )
    total = sum(c.points for c in criteria)
    complete = data.get("complete", "all")
    complete = total if complete == "all" else complete
    if isinstance(complete, bool) or not isinstance(complete, int) or not 1 <= complete <= total:
        raise RubricError(
            f"{where}: 'complete' must be 'all' or the points a Complete needs (1 to {total}); "
            f"got {data.get('complete')!r}"
        )
    return Rubric(
        path=path,
        assignment=expected,
        title=title,
        checks=checks,
        complete=complete,
        criteria=tuple(criteria),
    )


def _criterion(item, number: int, where: str) -> Criterion:
    """Validate the ``number``-th criterion of a rubric; errors name it by id when it has one."""
    label = f"{where}: criterion {number}"
    if not isinstance(item, dict):
        raise RubricError(f"{label}: expected a mapping with {sorted(_CRITERION_KEYS)}")
    if isinstance(item.get("id"), str):
        label = f"{where}: criterion {item['id']!r}"
    _no_unknown_keys(item, _CRITERION_KEYS, label)
    criterion_id = item.get("id")
    if not isinstance(criterion_id, str) or not re.match(_CRITERION_ID, criterion_id):
        raise RubricError(f"{label}: 'id' must match {_CRITERION_ID}; got {criterion_id!r}")
    points = item.get("points")
    if isinstance(points, bool) or not isinstance(points, int):
        raise RubricError(f"{label}: 'points' must be an integer; got {points!r}")
    if not 1 <= points <= MAX_POINTS:
        raise RubricError(f"{label}: 'points' must be between 1 and {MAX_POINTS}; got {points}")
    check = _name(
        item.get("check"),
        f"{label}: 'check' must be the name of a function of the checks module, "
        "such as 'sample_is_stratified'",
    )
    return Criterion(
        id=criterion_id,
        title=_rubric_text(item, "title", label, MAX_TITLE),
        points=points,
        check=check,
        description=_rubric_text(item, "description", label, 5000, one_line=False),
    )


def _name(value, message: str) -> str:
    """Return ``value`` if it is a lowercase name (:data:`_NAME`); else raise ``message``."""
    if not isinstance(value, str) or not re.match(_NAME, value):
        raise RubricError(f"{message}; got {value!r}")
    return value


def _no_unknown_keys(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise RubricError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _rubric_text(data: dict, key: str, where: str, limit: int, *, one_line: bool = True) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RubricError(f"{where}: '{key}' must be a non-empty string; got {value!r}")
    value = value.strip()
    if len(value) > limit or (one_line and not re.match(_TEXT, value)):
        raise RubricError(f"{where}: '{key}' must be one line of at most {limit} characters")
    return value


def find_rubric(notebook_path: str | os.PathLike) -> Path:
    """Find the rubric of a notebook by the naming convention.

    ``NN_topic_activity.ipynb`` is graded by ``NN_topic_rubric.yml`` in the same folder;
    failing that, by the only ``NN_*_rubric.yml`` there (for renamed copies).

    Parameters
    ----------
    notebook_path : path-like
        The notebook to grade.

    Returns
    -------
    pathlib.Path
        The rubric file.

    Raises
    ------
    FileNotFoundError
        If no rubric matches.
    RubricError
        If several rubrics match.
    """
    notebook = Path(notebook_path)
    folder = notebook.parent
    exact = folder / f"{notebook.stem.removesuffix('_activity')}_rubric.yml"
    if exact.is_file():
        return exact
    looked_for = [exact.name]
    prefix = re.match(r"^(\d+)_", notebook.stem)
    if prefix:
        pattern = f"{prefix.group(1)}_*_rubric.yml"
        found = sorted(folder.glob(pattern))
        if len(found) > 1:
            raise RubricError(
                f"find_rubric: {len(found)} rubrics match {notebook.name} in {folder}: "
                f"{[p.name for p in found]}; name one with --rubric"
            )
        if found:
            return found[0]
        looked_for.append(pattern)
    raise FileNotFoundError(
        f"find_rubric: no rubric for {notebook.name}: looked for {looked_for} in "
        f"{folder}; name one with --rubric"
    )


def render_rubric_markdown(rubric: Rubric) -> str:
    """Render the learners' Markdown rubric from the YAML rubric.

    The output is committed next to the YAML as ``NN_topic_rubric.md``; a test checks that
    the two agree (``python -m course.grading --render-rubric R.yml`` regenerates it).

    Parameters
    ----------
    rubric : Rubric
        The rubric, from :func:`load_rubric`.

    Returns
    -------
    str
        Markdown text ending with a newline.
    """
    lines = [
        f"<!-- Generated from {rubric.path.name} by `python -m course.grading "
        f"--render-rubric`: edit the YAML, not this file. -->",
        "",
        f"# Rubric: {rubric.title}",
        "",
        f"Points come from automatic checks run on your pull request; "
        f"total **{rubric.max_score}** points. A criterion earns all its points or none. "
        f"**Complete** (100) needs {rubric.complete} points; below that the assignment is "
        "**Incomplete** (50); without a submission it is **Missing** (0).",
        "",
        "| # | Criterion | Points |",
        "| --: | --- | --: |",
    ]
    for number, criterion in enumerate(rubric.criteria, start=1):
        lines.append(f"| {number} | {_escape_light(criterion.title)} | {criterion.points} |")
    lines += [f"| | **Total** | **{rubric.max_score}** |", ""]
    for number, criterion in enumerate(rubric.criteria, start=1):
        plural = "s" if criterion.points != 1 else ""
        lines += [
            f"## {number}. {criterion.title} ({criterion.points} point{plural})",
            "",
            criterion.description,
            "",
            f"Criterion `{criterion.id}`, checked by "
            f"`course.grading.checks.{rubric.checks}.{criterion.check}`.",
            "",
        ]
    data = {
        "assignment": rubric.assignment,
        "complete_points": rubric.complete,
        "criteria": [[c.id, c.title, c.points] for c in rubric.criteria],
    }
    lines.append(f"<!-- rubric-data {json.dumps(data, ensure_ascii=False)} -->")
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# Checks: what runs inside the kernel

"""Autograding of assignment notebooks: rubrics, execution, checks, reports, PR comments.

How a grade is computed
-----------------------
1. The rubric ``NN_topic_rubric.yml`` next to the notebook ``NN_topic_activity.ipynb`` is
   the single source of the points: criteria with an ``id``, a ``title``, ``points``, a
   ``check`` (dotted path of a function) and a ``description``. The learners' rubric
   ``NN_topic_rubric.md`` is generated from it (:func:`render_rubric_markdown`).
2. :func:`grade_notebook` copies the notebook's folder to a temporary directory and runs
   every code cell there with :mod:`nbclient`, in a fresh kernel started with this very
   Python, ``HOME``/``TMPDIR`` inside the temporary directory and the service variables
   unset (embedded defaults). Cells that raise do not stop the run (like ``nbval``); a cell
   that runs longer than ``cell_timeout`` or past the notebook's ``timeout`` is interrupted.
3. Each criterion's check then runs *in the same kernel*, on the notebook's top-level
   names wrapped in :class:`Answers`, and returns ``(passed, message)``. A criterion
   scores all its points or none.
4. The result (:class:`GradeResult`) is written as JSON (:data:`RESULT_SCHEMA`) and as a
   Markdown summary for learners.

The pull-request side (``.github/workflows/grade.yml`` then ``comment.yml``) treats the
JSON as untrusted: :func:`validate_artifact` and :func:`render_comment` check and re-render
it. This module imports only the standard library at import time, so that the comment
workflow can load it by path without installing the project.

This is not a sandbox: the notebook runs with the permissions of whoever runs the grader.
See ``02_activities/GRADING.md`` for what is and is not enforced.
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "COMMENT_MARKER",
    "RESULT_SCHEMA",
    "Answers",
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
    "main",
    "read_pr_number",
    "render_comment",
    "render_markdown",
    "render_rubric_markdown",
    "validate_artifact",
    "validate_artifact_main",
    "validate_result",
    "verify_pull_request",
]

#: Version of the rubric file format and of the result JSON.
RUBRIC_VERSION = 1
RESULT_VERSION = 1
#: Hidden first line of the pull-request comment, used to find and update it.
COMMENT_MARKER = "<!-- production-grade -->"

MAX_CRITERIA = 50
MAX_POINTS = 100
MAX_TITLE = 200
MAX_MESSAGE = 1000
MAX_MESSAGES = 20
MAX_RESULTS = 10
MAX_ELAPSED = 86_400
MAX_RESULT_BYTES = 256 * 1024
MAX_PULL_BYTES = 4 * 1024 * 1024
MAX_COMMENT_CHARS = 60_000
MAX_FOLDER_BYTES = 200 * 1024 * 1024
MAX_CELL_OUTPUT_BYTES = 1024 * 1024

_CRITERION_ID = r"^[a-z][a-z0-9_]{0,39}$"
_ASSIGNMENT = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$"
_NOTEBOOK = r"^(?!.*\.\.)(?!.*//)[0-9A-Za-z_][0-9A-Za-z_./-]{0,199}$"
_COMMIT = r"^[0-9a-f]{7,40}$"
_CHECK_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
# No control characters, no zero-width or bidirectional formatting characters.
_FORBIDDEN_CHARS = "\\x00-\\x1f\\x7f-\\x9f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff"
_TEXT = f"^[^{_FORBIDDEN_CHARS}]*$"
_MIME = "application/vnd.course.grading+json"
_SERVICE_VARIABLES = (
    "DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "DASK_SCHEDULER_ADDRESS",
    "PRODUCTION_DATA_DIR",
    "PYTHONSTARTUP",
    "IPYTHONDIR",
)
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        ".ipynb_checkpoints",
    }
)


def _text_schema(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": _TEXT}


_CRITERION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "points", "max_points", "passed", "message"],
    "properties": {
        "id": {"type": "string", "pattern": _CRITERION_ID},
        "title": {**_text_schema(MAX_TITLE), "minLength": 1},
        "points": {"type": "integer", "minimum": 0, "maximum": MAX_POINTS},
        "max_points": {"type": "integer", "minimum": 1, "maximum": MAX_POINTS},
        "passed": {"type": "boolean"},
        "message": {**_text_schema(MAX_MESSAGE), "minLength": 1},
    },
}

#: JSON Schema (draft 2020-12) of one grade result, as written by ``--json``.
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://production.example/grading/result-v1.json",
    "title": "Grade of one assignment notebook",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "version",
        "assignment",
        "notebook",
        "commit",
        "status",
        "score",
        "max_score",
        "elapsed_seconds",
        "criteria",
        "messages",
    ],
    "properties": {
        "version": {"type": "integer", "enum": [RESULT_VERSION]},
        "assignment": {"type": "string", "pattern": _ASSIGNMENT},
        "notebook": {"type": "string", "pattern": _NOTEBOOK},
        "commit": {"type": ["string", "null"], "pattern": _COMMIT},
        "status": {"type": "string", "enum": ["ok", "error", "timeout"]},
        "score": {"type": "integer", "minimum": 0, "maximum": MAX_CRITERIA * MAX_POINTS},
        "max_score": {"type": "integer", "minimum": 0, "maximum": MAX_CRITERIA * MAX_POINTS},
        "elapsed_seconds": {"type": "number", "minimum": 0, "maximum": MAX_ELAPSED},
        "criteria": {"type": "array", "maxItems": MAX_CRITERIA, "items": _CRITERION_SCHEMA},
        "messages": {
            "type": "array",
            "maxItems": MAX_MESSAGES,
            "items": {**_text_schema(MAX_MESSAGE), "minLength": 1},
        },
    },
}


class RubricError(ValueError):
    """A rubric file is missing a field or has a value the grader cannot use."""


class GradingError(RuntimeError):
    """Grading itself failed (kernel, rubric check imports): not the notebook's fault."""


class ArtifactError(ValueError):
    """A grade artifact (untrusted data from a pull request's run) is not acceptable."""


class CheckFailed(Exception):
    """Raise in a check to fail its criterion with this message for the learner."""


# --------------------------------------------------------------------------------------
# Rubrics
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
        Dotted path of the check function, e.g. ``course.grading_checks.a1.time_split``.
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

    Attributes
    ----------
    path : pathlib.Path
        The YAML file it was read from.
    assignment : str
        Assignment identifier, the file name without ``_rubric.yml``.
    title : str
        Title of the assignment.
    criteria : tuple of Criterion
        The criteria, in the order learners see them.
    """

    path: Path
    assignment: str
    title: str
    criteria: tuple[Criterion, ...]

    @property
    def max_score(self) -> int:
        """Total points of the rubric."""
        return sum(criterion.points for criterion in self.criteria)


_RUBRIC_KEYS = {"version", "assignment", "title", "criteria"}
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
    criteria = []
    for number, item in enumerate(criteria_data, start=1):
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
        check = item.get("check")
        if not isinstance(check, str) or not re.match(_CHECK_PATH, check):
            raise RubricError(
                f"{label}: 'check' must be a dotted path such as "
                f"'course.grading_checks.a1.time_split_is_leak_free'; got {check!r}"
            )
        criteria.append(
            Criterion(
                id=criterion_id,
                title=_rubric_text(item, "title", label, MAX_TITLE),
                points=points,
                check=check,
                description=_rubric_text(item, "description", label, 5000, one_line=False),
            )
        )
    ids = [criterion.id for criterion in criteria]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RubricError(f"{where}: criterion ids must be unique; repeated: {duplicates}")
    return Rubric(path=path, assignment=expected, title=title, criteria=tuple(criteria))


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
        f"total **{rubric.max_score}** points. A criterion earns all its points or none.",
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
            f"Criterion `{criterion.id}`, checked by `{criterion.check}`.",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# Checks: what runs inside the kernel
# --------------------------------------------------------------------------------------


class Answers(Mapping[str, Any]):
    """The notebook's top-level names, as a check sees them.

    Checks receive an ``Answers`` and return ``(passed, message)``. ``answers["x"]``,
    ``"x" in answers`` and iteration work like a read-only dict; names starting with an
    underscore and IPython's own (``In``, ``Out``, ``get_ipython``...) are hidden.

    Parameters
    ----------
    namespace : mapping
        The kernel's global namespace after the notebook ran.

    Examples
    --------
    >>> def mean_is_right(answers):
    ...     value = answers.require("mean_fare", float)
    ...     return abs(value - 2.5) < 1e-9, f"mean_fare = {value}"
    >>> mean_is_right(Answers({"mean_fare": 2.5}))
    (True, 'mean_fare = 2.5')
    """

    _HIDDEN = frozenset({"In", "Out", "get_ipython", "exit", "quit"})

    def __init__(self, namespace: Mapping[str, Any]):
        self._namespace = namespace

    def _visible(self, name: str) -> bool:
        return not name.startswith("_") and name not in self._HIDDEN

    def __getitem__(self, name: str) -> Any:
        if not self._visible(name):
            raise KeyError(name)
        return self._namespace[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._namespace) if self._visible(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def require(self, name: str, kind: type | tuple[type, ...] | None = None) -> Any:
        """Return the value of ``name``, failing the check with a clear message if unusable.

        Parameters
        ----------
        name : str
            A top-level name the notebook must define.
        kind : type or tuple of types, optional
            The type(s) the value must have.

        Returns
        -------
        object
            The value.

        Raises
        ------
        CheckFailed
            If ``name`` is not defined, is still ``None``, or has the wrong type.
        """
        if name not in self:
            raise CheckFailed(
                f"`{name}` is not defined: run the cell that defines it and keep its name."
            )
        value = self[name]
        if value is None:
            raise CheckFailed(f"`{name}` is still None: replace the TODO with your answer.")
        if kind is not None and not isinstance(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(k.__name__ for k in kinds)
            raise CheckFailed(f"`{name}` should be a {expected}; got {type(value).__name__}.")
        return value

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the notebook's function ``name`` and return what it returns.

        Parameters
        ----------
        name : str
            A function the notebook must define.
        *args, **kwargs
            Passed to the function.

        Returns
        -------
        object
            The function's return value (never ``None``).

        Raises
        ------
        CheckFailed
            If ``name`` is missing or not callable, still raises ``NotImplementedError``
            (an open TODO), or returns ``None``.
        """
        function = self.require(name)
        if not callable(function):
            raise CheckFailed(f"`{name}` should be a function; got {type(function).__name__}.")
        try:
            result = function(*args, **kwargs)
        except NotImplementedError as err:
            raise CheckFailed(
                f"`{name}` is not written yet: {err or 'NotImplementedError'}"
            ) from err
        if result is None:
            raise CheckFailed(f"`{name}(...)` returned None: finish it and `return` the result.")
        return result


def _resolve_check(check_path: str) -> Callable[[Answers], tuple[bool, str]]:
    """Import and return the check function named by a dotted path."""
    module_name, _, function_name = check_path.rpartition(".")
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    if not callable(function):
        raise TypeError(f"{check_path} is a {type(function).__name__}, not a function")
    return function


def _run_check(namespace: Mapping[str, Any], check_path: str) -> dict[str, Any]:
    """Run one check on a namespace; always return {passed, message[, grader_bug]}."""
    check = _resolve_check(check_path)
    try:
        outcome = check(Answers(namespace))
    except CheckFailed as err:
        return {"passed": False, "message": str(err) or "The check failed."}
    except NotImplementedError as err:
        return {"passed": False, "message": f"Not done yet: {err or 'NotImplementedError'}"}
    except AssertionError as err:
        return {"passed": False, "message": str(err) or "An assertion of the check failed."}
    except Exception as err:  # any error becomes the criterion's message
        return {"passed": False, "message": f"The check stopped with {type(err).__name__}: {err}"}
    valid = (
        isinstance(outcome, tuple)
        and len(outcome) == 2
        and type(outcome[0]).__name__ in ("bool", "bool_")
        and isinstance(outcome[1], str)
    )
    if not valid:
        return {
            "passed": False,
            "message": f"Grader problem: check {check_path} returned {outcome!r:.80} instead of "
            "(passed, message). Tell your facilitator.",
            "grader_bug": True,
        }
    passed, message = bool(outcome[0]), outcome[1].strip()
    return {"passed": passed, "message": message or ("Passed." if passed else "Not passed.")}


def _publish(payload: dict[str, Any]) -> None:
    from IPython.display import publish_display_data

    publish_display_data({_MIME: payload})


def _kernel_preflight(check_paths: Sequence[str], token: str) -> None:
    """Kernel side: import every check before the notebook runs; publish the errors."""
    errors = {}
    for path in check_paths:
        try:
            _resolve_check(path)
        except Exception as err:  # reported to the grader, which raises
            errors[path] = f"{type(err).__name__}: {err}"
    _publish({"token": token, "errors": errors})


def _kernel_check(namespace: Mapping[str, Any], check_path: str, token: str) -> None:
    """Kernel side: run one check on the notebook's globals; publish the outcome."""
    _publish({"token": token, **_run_check(namespace, check_path)})


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one criterion.

    Attributes
    ----------
    id, title : str
        From the rubric.
    points : int
        Points earned: ``max_points`` if passed, else 0.
    max_points : int
        Points of the criterion in the rubric.
    passed : bool
        Whether the check passed.
    message : str
        Feedback for the learner (one line).
    """

    id: str
    title: str
    points: int
    max_points: int
    passed: bool
    message: str


@dataclass(frozen=True)
class GradeResult:
    """The grade of one notebook; ``to_dict()`` is the JSON of :data:`RESULT_SCHEMA`.

    Attributes
    ----------
    assignment : str
        Assignment identifier (``NN_topic``).
    notebook : str
        Notebook path relative to the repository root (or its file name).
    commit : str or None
        The commit graded, when given.
    status : {"ok", "error", "timeout"}
        ``ok``: every cell ran (expected errors aside) and the checks ran; ``error``: a cell
        raised, the kernel stopped, the notebook was unreadable or wrote outside its
        folder, or grading failed; ``timeout``: a time limit was reached.
    score, max_score : int
        Points earned and available.
    criteria : tuple of CriterionResult
        One per rubric criterion, in rubric order.
    messages : tuple of str
        Notes from the run, in order (cell errors, time limits, writes outside).
    elapsed_seconds : float
        Wall time of the grading.
    """

    assignment: str
    notebook: str
    commit: str | None
    status: str
    score: int
    max_score: int
    criteria: tuple[CriterionResult, ...]
    messages: tuple[str, ...]
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready result (see :data:`RESULT_SCHEMA`).

        Returns
        -------
        dict
            Plain types only.
        """
        return {
            "version": RESULT_VERSION,
            "assignment": self.assignment,
            "notebook": self.notebook,
            "commit": self.commit,
            "status": self.status,
            "score": self.score,
            "max_score": self.max_score,
            "elapsed_seconds": self.elapsed_seconds,
            "criteria": [
                {
                    "id": c.id,
                    "title": c.title,
                    "points": c.points,
                    "max_points": c.max_points,
                    "passed": c.passed,
                    "message": c.message,
                }
                for c in self.criteria
            ],
            "messages": list(self.messages),
        }

    def to_markdown(self) -> str:
        """Return the learners' Markdown summary (see :func:`render_markdown`).

        Returns
        -------
        str
            Markdown text.
        """
        return render_markdown(self.to_dict())


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_FORBIDDEN = re.compile(f"[{_FORBIDDEN_CHARS}]")


def _clean_text(text: object, limit: int = MAX_MESSAGE) -> str:
    """One line of at most ``limit`` characters, without ANSI codes or control characters."""
    text = _ANSI.sub("", str(text))
    text = " ".join(_FORBIDDEN.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or "(no message)"


def _make_result(
    *,
    rubric: Rubric | None,
    assignment: str,
    notebook: str,
    commit: str | None,
    status: str,
    outcomes: Mapping[str, tuple[bool, str]],
    messages: Sequence[str],
    started: float,
) -> GradeResult:
    criteria = []
    for criterion in rubric.criteria if rubric else ():
        passed, message = outcomes.get(criterion.id, (False, "Not checked."))
        criteria.append(
            CriterionResult(
                id=criterion.id,
                title=_clean_text(criterion.title, MAX_TITLE),
                points=criterion.points if passed else 0,
                max_points=criterion.points,
                passed=passed,
                message=_clean_text(message),
            )
        )
    notes = [_clean_text(m) for m in messages]
    if len(notes) > MAX_MESSAGES:
        notes = notes[: MAX_MESSAGES - 1] + [f"... and {len(notes) - MAX_MESSAGES + 1} more notes."]
    return GradeResult(
        assignment=assignment,
        notebook=notebook,
        commit=commit,
        status=status,
        score=sum(c.points for c in criteria),
        max_score=sum(c.max_points for c in criteria),
        criteria=tuple(criteria),
        messages=tuple(notes),
        elapsed_seconds=round(min(time.monotonic() - started, MAX_ELAPSED), 1),
    )


# --------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------


def grade_notebook(
    notebook_path: str | os.PathLike,
    rubric_path: str | os.PathLike | None = None,
    *,
    timeout: float = 600,
    cell_timeout: float = 120,
    check_timeout: float = 30,
    commit: str | None = None,
    executed_path: str | os.PathLike | None = None,
) -> GradeResult:
    """Execute a submitted notebook in a temporary copy of its folder and grade it.

    Parameters
    ----------
    notebook_path : path-like
        The notebook (``NN_topic_activity.ipynb``).
    rubric_path : path-like, optional
        The rubric; found next to the notebook by :func:`find_rubric` if omitted. Its
        folder is put first on the kernel's ``PYTHONPATH`` so that checks may live there.
    timeout : float, default=600
        Seconds for all the notebook's cells together (kernel start not included).
    cell_timeout : float, default=120
        Seconds for any one cell.
    check_timeout : float, default=30
        Seconds for each criterion's check.
    commit : str, optional
        The commit being graded (7 to 40 hexadecimal digits), recorded in the result.
    executed_path : path-like, optional
        Where to save the executed notebook, with its outputs.

    Returns
    -------
    GradeResult
        The grade. A notebook that raises, runs too long, crashes its kernel, cannot be
        read or writes outside its folder is still graded, with ``status`` and messages
        saying what happened.

    Raises
    ------
    FileNotFoundError
        If the notebook or the rubric does not exist.
    RubricError
        If the rubric is invalid.
    ValueError
        If a parameter is out of range, or the notebook's folder is too large to copy.
    GradingError
        If grading itself failed: the kernel did not start, or a check cannot be imported.

    Examples
    --------
    >>> result = grade_notebook(
    ...     "02_activities/assignments/01_training_data_activity.ipynb"
    ... )  # doctest: +SKIP
    >>> result.score, result.max_score  # doctest: +SKIP
    (7, 10)
    """
    started = time.monotonic()
    notebook = Path(notebook_path).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"grade_notebook: notebook {notebook_path} not found")
    for name, value in (
        ("timeout", timeout),
        ("cell_timeout", cell_timeout),
        ("check_timeout", check_timeout),
    ):
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        if not valid or not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"The '{name}' parameter of grade_notebook must be a finite number > 0. "
                f"Got {value!r} instead."
            )
    if commit is not None:
        commit = str(commit).strip().lower()
        if not re.match(_COMMIT, commit):
            raise ValueError(
                "The 'commit' parameter of grade_notebook must be 7 to 40 hexadecimal digits. "
                f"Got {commit!r:.60} instead."
            )
    rubric = load_rubric(rubric_path if rubric_path is not None else find_rubric(notebook))
    repo_root = _find_repo_root(notebook.parent)
    shown = _display_path(notebook, repo_root)
    common = {"rubric": rubric, "assignment": rubric.assignment, "notebook": shown}
    common |= {"commit": commit, "started": started}

    nb, read_error = _read_notebook(notebook)
    if nb is None:
        reason = "Not checked: the notebook file could not be read."
        return _make_result(
            **common,
            status="error",
            outcomes={c.id: (False, reason) for c in rubric.criteria},
            messages=[f"The notebook file could not be read: {read_error}"],
        )

    with tempfile.TemporaryDirectory(prefix="production-grade-") as tmp:
        tmp_root = Path(tmp).resolve()
        home, work = tmp_root / "home", tmp_root / "work"
        (home / "tmp").mkdir(parents=True)
        relative = notebook.parent.relative_to(repo_root) if repo_root else Path()
        copy = work / (relative if relative.parts else Path(notebook.parent.name or "notebook"))
        _copy_folder(notebook.parent, copy)
        before = _snapshot(repo_root, skip=tmp_root) if repo_root else {}
        env = _kernel_env(home=home, copy=copy, rubric_dir=rubric.path.resolve().parent)
        run = _Run(nb=nb, rubric=rubric, timeouts=(timeout, cell_timeout, check_timeout))
        run.execute(workdir=copy, env=env)
        outside = _outside_writes(work, copy)
        if repo_root:
            after = _snapshot(repo_root, skip=tmp_root)
            changed = sorted(p for p, stamp in after.items() if before.get(p) != stamp)
            outside += [f"<repository>/{p}" for p in changed]
            outside += [f"<repository>/{p} (deleted)" for p in sorted(set(before) - set(after))]
    if outside:
        listed = ", ".join(outside[:10]) + (
            f" and {len(outside) - 10} more" if len(outside) > 10 else ""
        )
        run.notes.append(
            f"The notebook wrote outside its folder: {listed}. Write only inside the "
            "notebook's folder, with relative paths such as data/out.csv."
        )
        run.problems = True
    if executed_path is not None:
        import nbformat

        nbformat.write(nb, str(executed_path))
    status = "timeout" if run.timed_out else "error" if run.problems else "ok"
    return _make_result(**common, status=status, outcomes=run.outcomes, messages=run.notes)


def _read_notebook(path: Path) -> tuple[Any, str | None]:
    """Read a notebook as nbformat 4 with outputs cleared, or return (None, reason)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        cells = list(nb.cells)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"{type(err).__name__}: {err}"
    except nbformat.ValidationError as err:
        return None, f"invalid notebook: {err.message}"
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell.outputs, cell.execution_count = [], None
    return nb, None


def _find_repo_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _display_path(notebook: Path, repo_root: Path | None) -> str:
    shown = notebook.relative_to(repo_root).as_posix() if repo_root else notebook.name
    if not re.match(_NOTEBOOK, shown):
        shown = re.sub(r"[^0-9A-Za-z_.-]", "_", notebook.name).lstrip(".") or "notebook.ipynb"
    return shown[:200]


def _copy_folder(source: Path, target: Path) -> None:
    total = 0

    def ignore(directory: str, names: list[str]) -> set[str]:
        nonlocal total
        skipped = {name for name in names if name in _SKIP_DIRS}
        for name in set(names) - skipped:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        if total > MAX_FOLDER_BYTES:
            raise ValueError(
                f"grade_notebook: the folder {source} holds more than "
                f"{MAX_FOLDER_BYTES // 2**20} MB: move the notebook into its own folder"
            )
        return skipped

    shutil.copytree(source, target, symlinks=True, ignore=ignore)


def _snapshot(root: Path, *, skip: Path) -> dict[str, tuple[int, int]]:
    """Map every file under ``root`` (but caches, envs and ``skip``) to (mtime_ns, size)."""
    stamps = {}
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if d not in _SKIP_DIRS and Path(directory, d).resolve() != skip
        ]
        for name in filenames:
            path = Path(directory, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            stamps[path.relative_to(root).as_posix()] = (info.st_mtime_ns, info.st_size)
    return stamps


def _outside_writes(work: Path, copy: Path) -> list[str]:
    """Paths created in the temporary tree but outside the notebook's folder copy."""
    ancestors = set(copy.parents)
    found = []
    for directory, dirnames, filenames in os.walk(work):
        here = Path(directory)
        found += [os.path.relpath(here / name, copy) for name in filenames]
        keep = []
        for name in dirnames:
            path = here / name
            if path in ancestors:
                keep.append(name)
            elif path != copy:
                found.append(os.path.relpath(path, copy) + os.sep)
        dirnames[:] = keep
    return sorted(p.replace(os.sep, "/") for p in found)


def _kernel_env(*, home: Path, copy: Path, rubric_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))  # font cache: seconds to rebuild
    tmp = str(home / "tmp")
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        TMPDIR=tmp,
        TEMP=tmp,
        TMP=tmp,
        PRODUCTION_HOME=str(copy),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(rubric_dir), os.environ.get("PYTHONPATH")])),
    )
    return env


def _markers(cell: Mapping[str, Any]) -> set[str]:
    """Return the nbval comment markers (``# NBVAL_...`` lines) and tags of a cell."""
    found = {
        line.strip().lstrip("#").strip()
        for line in cell.get("source", "").splitlines()
        if line.strip().startswith("#")
    }
    return found | set(cell.get("metadata", {}).get("tags", []))


def _cell_label(number: int, source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")] or lines or [""]
    first = code[0] if len(code[0]) <= 50 else code[0][:49] + "…"
    return f"Code cell {number} (`{first}`)"


class _Run:
    """One kernel: the notebook's cells, then the checks; collects notes and outcomes."""

    def __init__(self, *, nb: Any, rubric: Rubric, timeouts: tuple[float, float, float]):
        self.nb, self.rubric = nb, rubric
        self.timeout, self.cell_timeout, self.check_timeout = timeouts
        self.token = uuid.uuid4().hex
        self.notes: list[str] = []
        self.outcomes: dict[str, tuple[bool, str]] = {}
        self.timed_out = self.problems = False
        self.kernel_lost: str | None = None

    def execute(self, *, workdir: Path, env: dict[str, str]) -> None:
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from nbformat.v4 import new_code_cell

        self.nb.cells.append(new_code_cell(""))  # slot for the grader's own cells
        self.slot = len(self.nb.cells) - 1
        self.client = _client_class()(
            self.nb,
            km=_kernel_manager(),
            timeout=int(math.ceil(self.cell_timeout)),
            allow_errors=True,
            interrupt_on_timeout=False,
            startup_timeout=60,
            shutdown_kernel="immediate",
            record_timing=False,
        )
        started = False
        self.log_path = Path(env["HOME"]) / "kernel.log"  # the kernel's own stdout and stderr
        try:
            with (
                self.log_path.open("wb") as log,
                self.client.setup_kernel(
                    env=env, cwd=str(workdir), cleanup_kc=True, stdout=log, stderr=log
                ),
            ):
                started = True
                self._preflight(CellTimeoutError, DeadKernelError)
                self._run_cells(CellTimeoutError, DeadKernelError)
                self._run_checks(CellTimeoutError, DeadKernelError)
        except GradingError:
            raise
        except Exception as err:
            when = "running the notebook" if started else f"starting the kernel ({sys.executable})"
            raise GradingError(
                f"grade_notebook: failed while {when}: {type(err).__name__}: {err}"
            ) from err
        finally:
            del self.nb.cells[self.slot]

    def _log_tail(self) -> str:
        try:
            tail = self.log_path.read_bytes()[-2000:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line for line in tail.splitlines() if line.strip() and "WARNING" not in line]
        return f" The kernel's last output: {lines[-1][-200:]}" if lines else ""

    def _harness(self, source: str, limit: float) -> dict[str, Any] | None:
        from nbformat.v4 import new_code_cell

        cell = new_code_cell(source)
        self.nb.cells[self.slot] = cell
        self.client.timeout = max(1, int(math.ceil(limit)))
        self.client.execute_cell(cell, self.slot, store_history=False)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return {"error": f"{output.get('ename')}: {output.get('evalue')}"}
            data = output.get("data", {}).get(_MIME)
            if isinstance(data, str):
                data = json.loads(data)
            if isinstance(data, dict) and data.get("token") == self.token:
                return data
        return None

    def _recover(self, timeout_error: type, dead_error: type) -> bool:
        """Interrupt the kernel after a timeout; True if it answers again."""
        from nbclient.util import run_sync

        try:
            run_sync(_cancel_stale_pollers)()
            run_sync(self.client.km.interrupt_kernel)()
            self._harness("pass", 5)
        except (timeout_error, dead_error, RuntimeError):
            return False
        return True

    def _preflight(self, timeout_error: type, dead_error: type) -> None:
        paths = sorted({c.check for c in self.rubric.criteria})
        source = (
            "__import__('course.grading', fromlist=['_kernel_preflight'])"
            f"._kernel_preflight({paths!r}, {self.token!r})"
        )
        try:
            payload = self._harness(source, max(self.cell_timeout, 60))
        except (timeout_error, dead_error) as err:
            raise GradingError(
                f"{self.rubric.path.name}: importing the checks failed: {err}"
            ) from err
        if not payload or "errors" not in payload:
            raise GradingError(
                f"{self.rubric.path.name}: the checks could not be loaded in the kernel "
                f"({(payload or {}).get('error', 'no answer')}); is the production package installed?"
            )
        for criterion in self.rubric.criteria:
            if criterion.check in payload["errors"]:
                raise GradingError(
                    f"{self.rubric.path.name}: criterion {criterion.id!r}: check "
                    f"{criterion.check!r} cannot be imported: {payload['errors'][criterion.check]}"
                )

    def _run_cells(self, timeout_error: type, dead_error: type) -> None:
        deadline = time.monotonic() + self.timeout
        number = 0
        for index, cell in enumerate(self.nb.cells[: self.slot]):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            number += 1
            label, markers = _cell_label(number, cell.source), _markers(cell)
            if markers & {"NBVAL_SKIP", "nbval-skip"}:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                self.notes.append(
                    f"The notebook's time limit ({self.timeout:g} s) was reached before {label}: "
                    "it and the cells after it did not run."
                )
                return
            limit = min(self.cell_timeout, remaining)
            try:
                self.client.timeout = max(1, int(math.ceil(limit)))
                self.client.execute_cell(cell, index, execution_count=number)
            except timeout_error:
                self.timed_out = True
                why = (
                    f"the time limit per cell is {self.cell_timeout:g} s"
                    if limit >= self.cell_timeout
                    else f"the notebook's time limit of {self.timeout:g} s was reached"
                )
                self.notes.append(
                    f"{label} was stopped after {self.client.timeout} s: {why}. Does it loop "
                    "forever, or work on too much data?"
                )
                cell.outputs.append(_stream(f"[grader] stopped after {self.client.timeout} s\n"))
                if not self._recover(timeout_error, dead_error):
                    self.kernel_lost = "stuck"
                    self.notes.append(
                        "The kernel did not respond after being interrupted: the rest of the "
                        "notebook and the checks could not run."
                    )
                    return
                continue
            except dead_error:
                self.kernel_lost, self.problems = "died", True
                self.notes.append(
                    f"The Python kernel stopped while running {label} (a crash, or code such "
                    "as exit() or os._exit()): the rest of the notebook and the checks could not run."
                    + self._log_tail()
                )
                return
            for output in cell.outputs:
                if output.get("output_type") == "error":
                    expected = bool(
                        markers
                        & {"NBVAL_RAISES_EXCEPTION", "raises-exception", "nbval-raises-exception"}
                    )
                    self.problems = self.problems or not expected
                    self.notes.append(
                        f"{label} raised {output.get('ename')}: {output.get('evalue')}"
                    )

    def _run_checks(self, timeout_error: type, dead_error: type) -> None:
        for criterion in self.rubric.criteria:
            if self.kernel_lost:
                why = (
                    "the notebook was still running when it was stopped"
                    if self.kernel_lost == "stuck"
                    else "the Python kernel stopped"
                )
                self.outcomes[criterion.id] = (False, f"Not checked: {why} (see the notes).")
                continue
            source = (
                "__import__('course.grading', fromlist=['_kernel_check'])"
                f"._kernel_check(globals(), {criterion.check!r}, {self.token!r})"
            )
            try:
                payload = self._harness(source, self.check_timeout)
            except timeout_error:
                self.timed_out = True
                self.outcomes[criterion.id] = (
                    False,
                    f"The check did not finish within {self.check_timeout:g} s: does a "
                    "function it calls loop forever?",
                )
                if not self._recover(timeout_error, dead_error):
                    self.kernel_lost = "stuck"
                continue
            except dead_error:
                self.kernel_lost, self.problems = "died", True
                self.outcomes[criterion.id] = (
                    False,
                    "The Python kernel stopped during this check.",
                )
                continue
            if payload is None or "passed" not in payload:
                error = (payload or {}).get("error", "no answer from the kernel")
                self.outcomes[criterion.id] = (
                    False,
                    f"The check could not run ({error}): did the notebook redefine a "
                    "built-in name such as globals or __import__?",
                )
                continue
            self.outcomes[criterion.id] = (bool(payload["passed"]), str(payload["message"]))
            if payload.get("grader_bug"):
                self.notes.append(
                    f"Grader problem with criterion {criterion.id}: tell your facilitator."
                )


async def _cancel_stale_pollers() -> None:
    """Cancel the output poller nbclient leaves running after a cell timeout.

    Left alone, it would read (and drop) the next cells' messages from the same channel.
    """
    import asyncio

    stale = [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and getattr(task.get_coro(), "__qualname__", "").endswith("_async_poll_output_msg")
    ]
    for task in stale:
        task.cancel()
    await asyncio.gather(*stale, return_exceptions=True)


def _stream(text: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("stream", name="stderr", text=text)


_CLIENT_CLASS: list[type] = []


def _client_class() -> type:
    """NotebookClient that keeps at most MAX_CELL_OUTPUT_BYTES of output per cell."""
    if _CLIENT_CLASS:
        return _CLIENT_CLASS[0]
    from nbclient import NotebookClient

    class _CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # noqa: D102
            state = self.__dict__.setdefault("_grader_sizes", {})
            if msg["msg_type"] != "error" and _MIME not in msg["content"].get("data", {}):
                state[cell_index] = state.get(cell_index, 0) + len(str(msg["content"]))
                if state[cell_index] > MAX_CELL_OUTPUT_BYTES:
                    if state.get(("truncated", cell_index)) is None:
                        state[("truncated", cell_index)] = True
                        outs.append(_stream("[grader] output truncated\n"))
                    return None
            return super().output(outs, msg, display_id, cell_index)

    _CLIENT_CLASS.append(_CappedClient)
    return _CappedClient


def _kernel_manager() -> Any:
    """Return a kernel manager starting ipykernel with this interpreter, whatever the kernelspecs."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class _ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):  # noqa: D102
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (grader)",
                language="python",
                name="python3",
            )

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------


def _escape_light(text: str) -> str:
    """For trusted-ish text in our own Markdown: no HTML, no table breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def _escape_untrusted(text: str) -> str:
    """For untrusted text in a PR comment: every ASCII symbol becomes an entity.

    Markdown never treats an entity as syntax, so no link, emphasis, HTML or table cell can
    be opened; a zero-width space after ``@`` and ``#`` stops mentions and issue links.
    Text between a balanced pair of backticks is shown as ``<code>``.
    """
    parts = str(text).split("`")
    if len(parts) % 2 == 0:
        parts = ["&#96;".join(parts)]
    out = []
    for index, part in enumerate(parts):
        chars = []
        for ch in part:
            if ch.isalnum() or ch == " ":
                chars.append(ch)
            elif ch in "@#":
                chars.append(f"&#{ord(ch)};&#8203;")
            elif ord(ch) < 128:
                chars.append(f"&#{ord(ch)};")
            elif unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}:
                continue
            else:
                chars.append(ch)
        escaped = "".join(chars)
        out.append(f"<code>{escaped}</code>" if index % 2 else escaped)
    return "".join(out)


_STATUS_TEXT = {
    "ok": "Your notebook ran from top to bottom.",
    "error": "Your notebook had problems while running (see the notes below); the checks "
    "ran on what it had defined.",
    "timeout": "Your notebook did not finish within the time limit (see the notes below); the "
    "checks ran on what it had defined by then.",
}


def render_markdown(result: Mapping[str, Any], *, untrusted: bool = False, level: int = 2) -> str:
    """Render a grade result as a Markdown summary for learners.

    Parameters
    ----------
    result : mapping
        A result as in :data:`RESULT_SCHEMA` (``GradeResult.to_dict()``).
    untrusted : bool, default=False
        Escape every string as untrusted (for pull-request comments; numbers, ids and
        paths are then expected to have passed :func:`validate_result`).
    level : int, default=2
        Heading level of the title.

    Returns
    -------
    str
        Markdown text ending with a newline.
    """
    escape = _escape_untrusted if untrusted else _escape_light
    criteria = result["criteria"]
    score, max_score = result["score"], result["max_score"]
    full = criteria and score == max_score
    lines = [
        f"{'#' * level} {'✅' if full else '📝'} {result['assignment']}: {score} / {max_score} points",
        "",
    ]
    if not criteria:
        lines.append(
            "Grading failed (see the notes below): this is not a problem with your notebook, "
            "tell your facilitator."
        )
    else:
        lines.append(_STATUS_TEXT[result["status"]])
        lines += ["", "| | Criterion | Points | Feedback |", "| :-: | --- | --: | --- |"]
        for c in criteria:
            mark = "✅" if c["passed"] else "❌"
            lines.append(
                f"| {mark} | {escape(c['title'])} | {c['points']} / {c['max_points']} "
                f"| {escape(c['message'])} |"
            )
        if not full:
            lines += [
                "",
                "Fix the criteria marked ❌ and push again: the grade is updated on every push.",
            ]
    commit = f" · commit `{result['commit'][:12]}`" if result.get("commit") else ""
    lines += [
        "",
        f"<sub>notebook `{result['notebook']}`{commit} · graded in "
        f"{float(result['elapsed_seconds']):.0f} s</sub>",
    ]
    if result["messages"]:
        lines += [
            "",
            "<details><summary>Notes from running the notebook "
            f"({len(result['messages'])})</summary>",
            "",
            *[f"- {escape(message)}" for message in result["messages"]],
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def render_comment(results: Sequence[Mapping[str, Any]]) -> str:
    """Render the pull-request comment for validated results.

    Every string from the results is escaped as untrusted; the body starts with
    :data:`COMMENT_MARKER` so that the comment workflow can find and update it.

    Parameters
    ----------
    results : sequence of mapping
        Results that passed :func:`validate_result`.

    Returns
    -------
    str
        The comment body, at most ``MAX_COMMENT_CHARS`` characters.
    """
    footer = [
        "---",
        "<sub>Computed by the public checks of each assignment's rubric, on this pull "
        "request's own run: a first reading, which your facilitator confirms. How to read "
        "it and re-run it: <code>02_activities/GRADING.md</code>.</sub>",
    ]
    ordered = sorted(results, key=lambda r: r["assignment"])
    sections = [render_markdown(r, untrusted=True, level=3) for r in ordered]
    body = "\n".join([COMMENT_MARKER, "## Automatic grading", "", *sections, *footer]) + "\n"
    if len(body) > MAX_COMMENT_CHARS:
        lines = [
            f"- {r['assignment']}: {r['score']} / {r['max_score']} points ({r['status']})"
            for r in ordered
        ]
        body = "\n".join(
            [
                COMMENT_MARKER,
                "## Automatic grading",
                "",
                *lines,
                "",
                "(details too long to show)",
                *footer,
            ]
        )
    return body + ("" if body.endswith("\n") else "\n")


def render_rejected_comment() -> str:
    """Return the fixed comment posted when a grade artifact fails validation.

    Returns
    -------
    str
        A body with no content from the artifact.
    """
    return (
        f"{COMMENT_MARKER}\n## Automatic grading\n\n"
        "The grading results of this pull request could not be shown: they did not pass "
        "validation. Ask your facilitator to grade it locally with "
        "<code>bash scripts/grade.sh</code>.\n"
    )


# --------------------------------------------------------------------------------------
# Validation of untrusted results and artifacts
# --------------------------------------------------------------------------------------


def _schema_errors(value: Any, schema: Mapping[str, Any], where: str) -> Iterator[str]:
    """Yield violations of the JSON Schema subset used by RESULT_SCHEMA."""
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in types):
            yield f"{where}: expected {' or '.join(types)}, got {type(value).__name__}"
            return
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        yield f"{where}: {value!r:.40} is not one of {schema['enum']}"
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", math.inf):
            yield f"{where}: longer than {schema['maxLength']} characters ({len(value)})"
        if len(value) < schema.get("minLength", 0):
            yield f"{where}: shorter than {schema['minLength']} characters"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield f"{where}: {value!r:.60} does not match {schema['pattern']!r:.60}"
    if _is_type(value, "number"):
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            yield f"{where}: {value!r} is out of range [{schema.get('minimum')}, {schema.get('maximum')}]"
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", math.inf):
            yield f"{where}: more than {schema['maxItems']} items ({len(value)})"
        if "items" in schema:
            for index, item in enumerate(value[: schema.get("maxItems", len(value))]):
                yield from _schema_errors(item, schema["items"], f"{where}[{index}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                yield f"{where}: missing field {key!r}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = sorted(str(k) for k in value if k not in properties)
            if extra:
                yield f"{where}: unexpected field(s) {[k[:40] for k in extra[:5]]}"
        for key, subschema in properties.items():
            if key in value:
                yield from _schema_errors(value[key], subschema, f"{where}.{key}")


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return {
        "string": str,
        "boolean": bool,
        "null": type(None),
        "object": dict,
        "array": list,
    }[name] is type(value)


def validate_result(data: Any, *, where: str = "grade.json") -> dict[str, Any]:
    """Validate one grade result (untrusted) against the schema and its arithmetic.

    Parameters
    ----------
    data : object
        The parsed JSON.
    where : str, default="grade.json"
        Name used in error messages.

    Returns
    -------
    dict
        ``data``, unchanged, once valid.

    Raises
    ------
    ArtifactError
        On the first problems found: wrong types, extra or missing fields, strings too long
        or with control characters, ids or paths with unexpected characters, points that do
        not add up, a score above the maximum.
    """
    errors = list(_schema_errors(data, RESULT_SCHEMA, where))
    if errors:
        raise ArtifactError("; ".join(errors[:5]))
    ids = [c["id"] for c in data["criteria"]]
    if len(set(ids)) != len(ids):
        raise ArtifactError(f"{where}: criterion ids are not unique")
    for index, c in enumerate(data["criteria"]):
        if c["points"] != (c["max_points"] if c["passed"] else 0):
            raise ArtifactError(
                f"{where}.criteria[{index}]: points must be max_points when passed, else 0"
            )
    if data["max_score"] != sum(c["max_points"] for c in data["criteria"]):
        raise ArtifactError(f"{where}: max_score is not the sum of the criteria's max_points")
    if data["score"] != sum(c["points"] for c in data["criteria"]):
        raise ArtifactError(f"{where}: score is not the sum of the criteria's points")
    if data["score"] > data["max_score"]:
        raise ArtifactError(f"{where}: score {data['score']} > max_score {data['max_score']}")
    return data


def _reject_constant(name: str) -> None:
    raise ArtifactError(f"{name} is not a valid JSON number here")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ArtifactError(
            f"duplicate key(s) {sorted({k for k in keys if keys.count(k) > 1})[:3]!r:.80}"
        )
    return dict(pairs)


def _read_untrusted_json(path: Path, limit: int) -> Any:
    if path.is_symlink() or not path.is_file():
        raise ArtifactError(f"{path.name}: not a regular file")
    if path.stat().st_size > limit:
        raise ArtifactError(f"{path.name}: larger than {limit} bytes")
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        if isinstance(err, ArtifactError):
            raise ArtifactError(f"{path.name}: {err}") from None
        raise ArtifactError(f"{path.name}: not valid UTF-8 JSON ({type(err).__name__})") from None


def read_pr_number(artifact_dir: str | os.PathLike) -> int:
    """Read the pull-request number file ``pr_number`` of a grade artifact (untrusted).

    Parameters
    ----------
    artifact_dir : path-like
        The downloaded artifact folder.

    Returns
    -------
    int
        The pull-request number, a positive integer of at most 9 digits.

    Raises
    ------
    ArtifactError
        If the file is missing, not a regular file, or not just digits.
    """
    path = Path(artifact_dir) / "pr_number"
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 16:
        raise ArtifactError("pr_number: missing, not a regular file, or too large")
    text = path.read_bytes().decode("ascii", errors="replace")
    if not re.fullmatch(r"[1-9][0-9]{0,8}\n?", text):
        raise ArtifactError(f"pr_number: expected a positive integer; got {text!r:.30}")
    return int(text)


def verify_pull_request(
    pull: Any, *, number: int, head_sha: str, head_repo: str | None = None
) -> None:
    """Check that the API's pull request is the one the artifact claims and the run built.

    Parameters
    ----------
    pull : mapping
        ``gh api repos/OWNER/REPO/pulls/NUMBER`` (trusted: from GitHub's API).
    number : int
        The number read from the artifact.
    head_sha : str
        ``github.event.workflow_run.head_sha``: the commit the grade workflow ran on.
    head_repo : str, optional
        ``github.event.workflow_run.head_repository.full_name``.

    Raises
    ------
    ArtifactError
        If the number, the head commit or the head repository differ.
    """
    if not re.fullmatch(r"[0-9a-f]{40}", str(head_sha)):
        raise ArtifactError(f"head sha {head_sha!r:.50} is not 40 hexadecimal digits")
    if not isinstance(pull, dict) or not isinstance(pull.get("head"), dict):
        raise ArtifactError("pull request data: expected the JSON of GET /repos/{o}/{r}/pulls/{n}")
    if pull.get("number") != number or isinstance(pull.get("number"), bool):
        raise ArtifactError(
            f"pull request {number}: the API returned number {pull.get('number')!r:.20}"
        )
    if pull["head"].get("sha") != head_sha:
        raise ArtifactError(
            f"pull request {number}: its head is {str(pull['head'].get('sha'))[:40]}, not the "
            f"graded commit {head_sha} (pushed again since? the newer run will comment)"
        )
    if head_repo is not None:
        repo = (pull["head"].get("repo") or {}).get("full_name")
        if repo != head_repo:
            raise ArtifactError(
                f"pull request {number}: head repository {repo!r:.80} != {head_repo!r:.80}"
            )


def validate_artifact(
    artifact_dir: str | os.PathLike, *, head_sha: str | None = None
) -> list[dict[str, Any]]:
    """Validate the results in a grade artifact folder (untrusted data).

    The layout is ``pr_number`` plus one ``<assignment>/grade.json`` per graded notebook
    (other files, such as ``grade.md``, are ignored: the comment is re-rendered).

    Parameters
    ----------
    artifact_dir : path-like
        The downloaded artifact folder.
    head_sha : str, optional
        When given, every result's ``commit`` must be ``None`` or this commit.

    Returns
    -------
    list of dict
        The valid results, sorted by assignment (at least one).

    Raises
    ------
    ArtifactError
        If the layout, a size, a schema rule or the arithmetic is wrong.
    """
    root = Path(artifact_dir)
    if root.is_symlink() or not root.is_dir():
        raise ArtifactError(f"artifact folder {root.name!r:.60} is missing")
    entries = sorted(root.iterdir())
    if len(entries) > MAX_RESULTS + 1:
        raise ArtifactError(f"artifact: more than {MAX_RESULTS + 1} entries")
    results = []
    for entry in entries:
        if entry.name == "pr_number":
            continue
        if entry.is_symlink() or not entry.is_dir() or not re.match(_ASSIGNMENT, entry.name):
            raise ArtifactError(f"artifact: unexpected entry {entry.name!r:.60}")
        data = _read_untrusted_json(entry / "grade.json", MAX_RESULT_BYTES)
        result = validate_result(data, where=f"{entry.name}/grade.json")
        if head_sha is not None and result["commit"] not in (None, head_sha):
            raise ArtifactError(f"{entry.name}/grade.json: commit is not the graded head commit")
        results.append(result)
    if not results:
        raise ArtifactError("artifact: no <assignment>/grade.json")
    return results


def validate_artifact_main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``scripts/validate_grade_artifact.py`` (used by comment.yml).

    ``pr-number DIR`` prints the validated pull-request number. ``comment DIR --pull
    PULL.json --head-sha SHA [--head-repo OWNER/NAME] --output BODY.json`` checks the pull
    request, validates the results and writes ``{"body": ...}`` for ``gh api --input``; a
    rejected artifact gets a fixed comment with none of its content.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 when the artifact or the pull request does not check out.
    """
    parser = argparse.ArgumentParser(
        prog="validate_grade_artifact.py", description="Validate an untrusted grade artifact."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("pr-number", help="print the artifact's validated PR number")
    pr.add_argument("artifact_dir", type=Path)
    comment = sub.add_parser("comment", help="validate everything, write the comment body")
    comment.add_argument("artifact_dir", type=Path)
    comment.add_argument("--pull", type=Path, required=True, help="JSON of the pull request")
    comment.add_argument("--head-sha", required=True)
    comment.add_argument("--head-repo")
    comment.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        number = read_pr_number(args.artifact_dir)
        if args.command == "pr-number":
            print(number)
            return 0
        pull = _read_untrusted_json(args.pull, MAX_PULL_BYTES)
        verify_pull_request(pull, number=number, head_sha=args.head_sha, head_repo=args.head_repo)
    except ArtifactError as err:
        print(f"grade artifact rejected: {err}", file=sys.stderr)
        return 1
    try:
        body = render_comment(validate_artifact(args.artifact_dir, head_sha=args.head_sha))
    except ArtifactError as err:
        print(f"grade artifact rejected, posting a fixed comment: {err}", file=sys.stderr)
        body = render_rejected_comment()
    args.output.write_text(json.dumps({"body": body}), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _error_result(notebook: Path, message: str, commit: str | None, started: float) -> GradeResult:
    stem = notebook.stem.removesuffix("_activity")
    assignment = re.sub(r"[^0-9A-Za-z_-]", "_", stem).lstrip("_-")[:64] or "unknown"
    commit = commit.lower() if commit and re.match(_COMMIT, commit.lower()) else None
    return _make_result(
        rubric=None,
        assignment=assignment,
        notebook=_display_path(notebook.resolve(), _find_repo_root(notebook.resolve().parent)),
        commit=commit,
        status="error",
        outcomes={},
        messages=[
            f"Grading failed: {message}",
            "This is a problem with the grader, not with your notebook: tell your facilitator.",
        ],
        started=started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Grade a notebook, or render a rubric's Markdown: ``python -m course.grading``.

    ``python -m course.grading NOTEBOOK [--rubric R] [--json OUT] [--markdown OUT]
    [--executed OUT] [--commit SHA] [--timeout S] [--cell-timeout S] [--check-timeout S]``
    grades; ``python -m course.grading --render-rubric R.yml [--check]`` writes (or
    checks) the learners' ``R.md``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        0 when the notebook was graded, whatever its score; 1 when ``--check`` finds the
        Markdown rubric out of date; 2 when grading itself failed (the JSON and Markdown
        outputs then describe the failure).
    """
    parser = argparse.ArgumentParser(
        prog="python -m course.grading",
        description="Grade an assignment notebook against its rubric.",
    )
    parser.add_argument("notebook", nargs="?", type=Path, help="the notebook to grade")
    parser.add_argument("--rubric", type=Path, help="default: NN_topic_rubric.yml next to it")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the learners' summary here")
    parser.add_argument("--executed", type=Path, help="save the executed notebook here")
    parser.add_argument("--commit", help="commit being graded, recorded in the result")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for all cells")
    parser.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell")
    parser.add_argument("--check-timeout", type=float, default=30, help="seconds per check")
    parser.add_argument("--render-rubric", type=Path, metavar="RUBRIC", help="write RUBRIC's .md")
    parser.add_argument("--check", action="store_true", help="with --render-rubric: only compare")
    args = parser.parse_args(argv)
    if args.render_rubric is not None:
        return _render_rubric_command(args.render_rubric, check=args.check)
    if args.notebook is None:
        parser.error("give a NOTEBOOK to grade, or --render-rubric RUBRIC")
    started = time.monotonic()
    try:
        result = grade_notebook(
            args.notebook,
            args.rubric,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            check_timeout=args.check_timeout,
            commit=args.commit,
            executed_path=args.executed,
        )
        code = 0
    except (GradingError, FileNotFoundError, ValueError) as err:
        print(f"grading failed: {err}", file=sys.stderr)
        result, code = _error_result(args.notebook, str(err), args.commit, started), 2
    if args.json:
        args.json.write_text(
            json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if args.markdown:
        args.markdown.write_text(result.to_markdown(), encoding="utf-8")
        print(f"{result.assignment}: {result.score} / {result.max_score} points ({result.status})")
    else:
        print(result.to_markdown())
    return code


def _render_rubric_command(rubric_path: Path, *, check: bool) -> int:
    try:
        rubric = load_rubric(rubric_path)
    except (FileNotFoundError, RubricError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = rubric_path.with_suffix(".md")
    text = render_rubric_markdown(rubric)
    if check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            print(
                f"{target} is out of date: run python -m course.grading --render-rubric {rubric_path}",
                file=sys.stderr,
            )
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

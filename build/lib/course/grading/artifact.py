"""Grade results as data: the JSON schema, the learners' summary, the pull-request comment.

Standard library only: the comment workflow loads this file by path
(``scripts/validate_grade_artifact.py``) without installing the project, and validates
the artifact of a pull request's grading run as untrusted data against main's rubrics.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUBRIC_VERSION = 1
RESULT_VERSION = 2
#: Hidden first line of the pull-request comment, used to find and update it.
COMMENT_MARKER = "<!-- production-grade -->"
#: The course's marks: a result is Complete or Incomplete; no result is Missing.
MARKS = {"complete": 100, "incomplete": 50, "missing": 0}
#: Where assignment notebooks live, relative to the repository root.
ASSIGNMENTS_DIR = "02_activities/assignments"

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
MAX_CHANGED_FILES = 3000

_CRITERION_ID = r"^[a-z][a-z0-9_]{0,39}$"
_ASSIGNMENT = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$"
_NOTEBOOK = r"^(?!.*\.\.)(?!.*//)[0-9A-Za-z_][0-9A-Za-z_./-]{0,199}$"
_COMMIT = r"^[0-9a-f]{7,40}$"
# No control characters, no zero-width or bidirectional formatting characters.
_FORBIDDEN_CHARS = "\\x00-\\x1f\\x7f-\\x9f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff"
_TEXT = f"^[^{_FORBIDDEN_CHARS}]*$"
_RUBRIC_DATA = re.compile(r"<!-- rubric-data (\{.*?\}) -->")


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
    "$id": "https://production.example/grading/result-v2.json",
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
        "mark",
        "complete_points",
        "withheld",
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
        "mark": {"type": "string", "enum": ["complete", "incomplete", "withheld"]},
        "complete_points": {"type": "integer", "minimum": 0, "maximum": MAX_CRITERIA * MAX_POINTS},
        "withheld": {
            "type": "array",
            "maxItems": MAX_MESSAGES,
            "items": {**_text_schema(MAX_MESSAGE), "minLength": 1},
        },
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
    complete_points: int = 0
    withheld: tuple[str, ...] = ()

    @property
    def mark(self) -> str:
        """``"withheld"``, ``"complete"`` (score >= complete_points) or ``"incomplete"``."""
        return _mark(self.score, self.complete_points, self.withheld, bool(self.criteria))

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
            "mark": self.mark,
            "complete_points": self.complete_points,
            "withheld": list(self.withheld),
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


def _mark(score: int, complete_points: int, withheld: Sequence[str], graded: bool) -> str:
    if withheld or not graded:
        return "withheld"
    return "complete" if score >= complete_points else "incomplete"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_FORBIDDEN = re.compile(f"[{_FORBIDDEN_CHARS}]")


def clean_text(text: object, limit: int = MAX_MESSAGE) -> str:
    """Return one line of at most ``limit`` characters, without control characters.

    Parameters
    ----------
    text : object
        Any text (its ``str``).
    limit : int, default=MAX_MESSAGE
        Maximum length; longer text ends with an ellipsis.

    Returns
    -------
    str
        The cleaned line, never empty.
    """
    text = _ANSI.sub("", str(text))
    text = " ".join(_FORBIDDEN.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or "(no message)"


def _notes(messages: Sequence[str]) -> tuple[str, ...]:
    notes = [clean_text(m) for m in messages]
    if len(notes) > MAX_MESSAGES:
        notes = notes[: MAX_MESSAGES - 1] + [f"... and {len(notes) - MAX_MESSAGES + 1} more notes."]
    return tuple(notes)


def make_result(
    *,
    criteria: Sequence[tuple[str, str, int]],
    complete_points: int,
    assignment: str,
    notebook: str,
    commit: str | None,
    status: str,
    outcomes: Mapping[str, tuple[bool, str]],
    messages: Sequence[str] = (),
    withheld: Sequence[str] = (),
    started: float,
) -> GradeResult:
    """Build a :class:`GradeResult` from the rubric's criteria and the judge's outcomes.

    Parameters
    ----------
    criteria : sequence of (id, title, points)
        The rubric's criteria, in order.
    complete_points : int
        Points a Complete needs.
    assignment, notebook, commit, status
        As in :class:`GradeResult`.
    outcomes : mapping
        ``{criterion id: (passed, message)}``; a missing id is "Not checked".
    messages, withheld : sequence of str
        Notes from the run; reasons to withhold the score (none: the score stands).
    started : float
        ``time.monotonic()`` when grading started.

    Returns
    -------
    GradeResult
        The result, with texts cleaned and cut to their limits.
    """
    results = []
    for criterion_id, title, points in criteria:
        passed, message = outcomes.get(criterion_id, (False, "Not checked."))
        results.append(
            CriterionResult(
                id=criterion_id,
                title=clean_text(title, MAX_TITLE),
                points=points if passed else 0,
                max_points=points,
                passed=bool(passed),
                message=clean_text(message),
            )
        )
    return GradeResult(
        assignment=assignment,
        notebook=notebook,
        commit=commit,
        status=status,
        score=sum(c.points for c in results),
        max_score=sum(c.max_points for c in results),
        criteria=tuple(results),
        messages=_notes(messages),
        elapsed_seconds=round(min(time.monotonic() - started, MAX_ELAPSED), 1),
        complete_points=complete_points,
        withheld=_notes(withheld),
    )


# --------------------------------------------------------------------------------------
# Markdown


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


def _title(result: Mapping[str, Any]) -> str:
    if result["mark"] == "withheld":
        return f"⚠️ {result['assignment']}: score withheld"
    mark = result["mark"]
    icon = "✅" if mark == "complete" else "📝"
    return (
        f"{icon} {result['assignment']}: {mark.capitalize()} ({MARKS[mark]}) · "
        f"{result['score']} / {result['max_score']} points"
    )


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
    lines = [f"{'#' * level} {_title(result)}", ""]
    if not criteria:
        lines.append(
            "Grading failed (see the notes below): this is not a problem with your notebook, "
            "tell your facilitator."
        )
    elif result["withheld"]:
        lines += [
            "The score is withheld until your facilitator has looked at this submission:",
            "",
            *[f"- {escape(reason)}" for reason in result["withheld"]],
        ]
    else:
        lines.append(_STATUS_TEXT[result["status"]])
        lines += [
            "",
            f"Complete needs {result['complete_points']} of the {result['max_score']} points.",
            "",
            "| | Criterion | Points | Feedback |",
            "| :-: | --- | --: | --- |",
        ]
        for c in criteria:
            icon = "✅" if c["passed"] else "❌"
            lines.append(
                f"| {icon} | {escape(c['title'])} | {c['points']} / {c['max_points']} "
                f"| {escape(c['message'])} |"
            )
        if result["score"] < result["max_score"]:
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


_FOOTER = [
    "---",
    "<sub>Graded by the default branch's grader and rubrics, with only this pull "
    "request's assignment notebooks: a first reading, which your facilitator confirms. "
    "How to read it and re-run it: <code>02_activities/GRADING.md</code>.</sub>",
]


def render_comment(
    results: Sequence[Mapping[str, Any]], *, changed_outside: Sequence[str] = ()
) -> str:
    """Render the pull-request comment for validated results.

    Every string from the results is escaped as untrusted; the body starts with
    :data:`COMMENT_MARKER` so that the comment workflow can find and update it.

    Parameters
    ----------
    results : sequence of mapping
        Results that passed :func:`validate_result`.
    changed_outside : sequence of str, default=()
        Files the pull request changes besides its assignment notebooks (from GitHub's
        API): when there is any, the comment lists them and shows no score at all.

    Returns
    -------
    str
        The comment body, at most ``MAX_COMMENT_CHARS`` characters.
    """
    head = [COMMENT_MARKER, "## Automatic grading", ""]
    if changed_outside:
        shown = [f"- {_escape_untrusted(path)}" for path in list(changed_outside)[:50]]
        if len(changed_outside) > 50:
            shown.append(f"- ... and {len(changed_outside) - 50} more")
        body = [
            "⚠️ **No score**: this pull request changes files besides its assignment "
            "notebooks, and grading-relevant files may be among them. A submission changes "
            "only `02_activities/assignments/NN_topic_activity.ipynb`. Remove these changes "
            "(or open a pull request with the notebook only):",
            "",
            *shown,
            "",
        ]
        text = "\n".join([*head, *body, *_FOOTER]) + "\n"
        return text[:MAX_COMMENT_CHARS]
    ordered = sorted(results, key=lambda r: r["assignment"])
    sections = [render_markdown(r, untrusted=True, level=3) for r in ordered]
    text = "\n".join([*head, *sections, *_FOOTER]) + "\n"
    if len(text) > MAX_COMMENT_CHARS:
        lines = [f"- {_title(r)} ({r['status']})" for r in ordered]
        text = "\n".join([*head, *lines, "", "(details too long to show)", *_FOOTER]) + "\n"
    return text


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
    expected = _mark(data["score"], data["complete_points"], data["withheld"], bool(ids))
    if data["mark"] != expected:
        raise ArtifactError(f"{where}: mark {data['mark']!r} should be {expected!r}")
    return data


def rubric_data(markdown: str) -> dict[str, Any]:
    """Read the criteria embedded in a generated ``NN_topic_rubric.md``.

    Parameters
    ----------
    markdown : str
        The learners' rubric, as :func:`course.grading.render_rubric_markdown` writes it.

    Returns
    -------
    dict
        ``{"assignment": str, "complete_points": int, "criteria": [[id, title, points], ...]}``.

    Raises
    ------
    ArtifactError
        If the file holds no rubric data.
    """
    found = _RUBRIC_DATA.search(markdown)
    if not found:
        raise ArtifactError("rubric: no rubric-data comment (regenerate it with --render-rubric)")
    return json.loads(found.group(1))


def check_against_rubric(result: Mapping[str, Any], rubric: Mapping[str, Any]) -> None:
    """Check that a validated result has exactly the rubric's criteria and threshold.

    Parameters
    ----------
    result : mapping
        A result that passed :func:`validate_result`.
    rubric : mapping
        From :func:`rubric_data` of main's rubric.

    Raises
    ------
    ArtifactError
        If the assignment, notebook path, criteria (ids, titles, points, order) or the
        Complete threshold differ from the rubric's.
    """
    name = rubric["assignment"]
    if result["assignment"] != name:
        raise ArtifactError(f"{name}: the result is for {result['assignment']!r}")
    if result["notebook"] != f"{ASSIGNMENTS_DIR}/{name}_activity.ipynb":
        raise ArtifactError(f"{name}: the result names notebook {result['notebook']!r:.80}")
    got = [[c["id"], c["title"], c["max_points"]] for c in result["criteria"]]
    if got != [list(c) for c in rubric["criteria"]]:
        raise ArtifactError(f"{name}: criteria differ from main's rubric")
    if result["complete_points"] != rubric["complete_points"]:
        raise ArtifactError(f"{name}: complete_points differ from main's rubric")


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


def split_changed_files(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split a pull request's changed files into assignment notebooks and everything else.

    Parameters
    ----------
    files : sequence of str
        Paths the pull request adds, changes, deletes or renames (old and new names).

    Returns
    -------
    notebooks, others : list of str
        ``02_activities/assignments/NN_topic_activity.ipynb`` files, and the rest.
    """
    pattern = re.compile(
        rf"^{re.escape(ASSIGNMENTS_DIR)}/[0-9A-Za-z][0-9A-Za-z_-]*_activity\.ipynb$"
    )
    notebooks = sorted({f for f in files if pattern.match(f)})
    others = sorted({f for f in files if not pattern.match(f)})
    return notebooks, others


def validate_artifact(
    artifact_dir: str | os.PathLike,
    *,
    head_sha: str | None = None,
    rubrics_dir: str | os.PathLike | None = None,
    notebooks: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Validate the results in a grade artifact folder (untrusted data).

    The layout is ``pr_number`` plus one ``<assignment>/grade.json`` per graded notebook
    (other files, such as ``grade.md``, are ignored: the comment is re-rendered).

    Parameters
    ----------
    artifact_dir : path-like
        The downloaded artifact folder.
    head_sha : str, optional
        When given, every result's ``commit`` must be this commit.
    rubrics_dir : path-like, optional
        Main's ``02_activities/assignments``: each result must match its
        ``NN_topic_rubric.md`` (:func:`check_against_rubric`).
    notebooks : sequence of str, optional
        The notebooks the pull request changes: the results must name exactly these.

    Returns
    -------
    list of dict
        The valid results, sorted by assignment (at least one).

    Raises
    ------
    ArtifactError
        If the layout, a size, a schema rule, the arithmetic, the rubric or the set of
        notebooks is wrong.
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
        where = f"{entry.name}/grade.json"
        result = validate_result(
            _read_untrusted_json(entry / "grade.json", MAX_RESULT_BYTES), where=where
        )
        if result["assignment"] != entry.name:
            raise ArtifactError(f"{where}: assignment is not {entry.name!r}")
        if head_sha is not None and result["commit"] != head_sha:
            raise ArtifactError(f"{where}: commit is not the graded head commit")
        if rubrics_dir is not None:
            rubric = Path(rubrics_dir) / f"{entry.name}_rubric.md"
            if not rubric.is_file():
                raise ArtifactError(f"{where}: main has no rubric {rubric.name}")
            check_against_rubric(result, rubric_data(rubric.read_text(encoding="utf-8")))
        results.append(result)
    if not results:
        raise ArtifactError("artifact: no <assignment>/grade.json")
    if notebooks is not None and sorted(r["notebook"] for r in results) != sorted(notebooks):
        raise ArtifactError("artifact: the results do not name exactly the changed notebooks")
    return results


def _read_changed_files(path: Path) -> list[str]:
    """Read the pull request's changed files (one path a line, from GitHub's API)."""
    if path.stat().st_size > MAX_PULL_BYTES:
        raise ArtifactError("changed files: list too large")
    files = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(files) > MAX_CHANGED_FILES:
        raise ArtifactError("changed files: too many")
    return files


def validate_artifact_main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``scripts/validate_grade_artifact.py`` (used by comment.yml).

    ``pr-number DIR`` prints the validated pull-request number. ``comment DIR --pull
    PULL.json --files FILES.txt --rubrics DIR --head-sha SHA [--head-repo OWNER/NAME]
    --output BODY.json`` checks the pull request, validates the results against main's
    rubrics and the changed notebooks, and writes ``{"body": ...}`` for ``gh api
    --input``. A pull request that changes anything besides its assignment notebooks
    gets a comment listing those files and no score; a rejected artifact gets a fixed
    comment with none of its content.

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
    comment.add_argument("--files", type=Path, required=True, help="the PR's changed files")
    comment.add_argument("--rubrics", type=Path, required=True, help="main's assignments folder")
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
        notebooks, others = split_changed_files(_read_changed_files(args.files))
    except (ArtifactError, OSError) as err:
        print(f"grade artifact rejected: {err}", file=sys.stderr)
        return 1
    try:
        results = validate_artifact(
            args.artifact_dir, head_sha=args.head_sha, rubrics_dir=args.rubrics, notebooks=notebooks
        )
        body = render_comment(results, changed_outside=others)
    except ArtifactError as err:
        print(f"grade artifact rejected, posting a fixed comment: {err}", file=sys.stderr)
        body = render_comment([], changed_outside=others) if others else render_rejected_comment()
    args.output.write_text(json.dumps({"body": body}), encoding="utf-8")
    return 0

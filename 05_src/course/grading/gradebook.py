"""The course's marks: graded results to a gradebook CSV.

Each assignment is Complete (100), Incomplete (50) or Missing (0); a withheld score
counts as Incomplete until a facilitator reviews it (the ``review`` column says so). The
final grade is 60 % quizzes and 20 % each assignment; a learner passes at 60.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from course.grading.artifact import MARKS, ArtifactError, validate_result

__all__ = ["ASSIGNMENTS", "PASS_MARK", "QUIZ_WEIGHT", "build_gradebook", "write_gradebook"]

ASSIGNMENTS = ("01_training_data", "02_model_development")
QUIZ_WEIGHT = 0.6
PASS_MARK = 60


def _read_results(folder: Path) -> dict[str, dict]:
    """Return ``{assignment: result}`` of the valid ``*/grade.json`` under ``folder``."""
    found = {}
    for path in sorted(folder.rglob("grade.json")):
        try:
            result = validate_result(json.loads(path.read_text(encoding="utf-8")), where=str(path))
        except (ArtifactError, ValueError, OSError):
            continue
        found[result["assignment"]] = result
    return found


def build_gradebook(
    results_dir: str | os.PathLike,
    *,
    quizzes: Mapping[str, float] | None = None,
    assignments: Sequence[str] = ASSIGNMENTS,
) -> list[dict]:
    """Turn a folder of graded results into one row per learner.

    Parameters
    ----------
    results_dir : path-like
        ``RESULTS_DIR/<learner>/<assignment>/grade.json`` (one folder per learner or per
        pull request head, as ``scripts/grade.sh --out`` writes them).
    quizzes : mapping, optional
        ``{learner: quiz average 0-100}``; missing learners get 0.
    assignments : sequence of str, default=ASSIGNMENTS
        The graded assignments, each worth ``(1 - QUIZ_WEIGHT) / len(assignments)``.

    Returns
    -------
    list of dict
        ``learner``, ``quizzes``, one mark per assignment, ``review``, ``final``, ``passed``.

    Raises
    ------
    FileNotFoundError
        If ``results_dir`` is not a folder.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"build_gradebook: results folder {root} not found")
    quizzes = dict(quizzes or {})
    learners = sorted({p.name for p in root.iterdir() if p.is_dir()} | set(quizzes))
    rows = []
    for learner in learners:
        results = _read_results(root / learner) if (root / learner).is_dir() else {}
        row = {"learner": learner, "quizzes": round(float(quizzes.get(learner, 0)), 1)}
        review = []
        for assignment in assignments:
            result = results.get(assignment)
            mark = "missing" if result is None else result["mark"]
            if mark == "withheld":
                review.append(assignment)
                mark = "incomplete"
            row[assignment] = MARKS[mark]
        weight = (1 - QUIZ_WEIGHT) / max(len(assignments), 1)
        final = QUIZ_WEIGHT * row["quizzes"] + weight * sum(row[a] for a in assignments)
        row |= {"review": " ".join(review), "final": round(final, 1), "passed": final >= PASS_MARK}
        rows.append(row)
    return rows


def write_gradebook(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Write gradebook rows as CSV; return the path."""
    path = Path(path)
    columns = (
        list(rows[0]) if rows else ["learner", "quizzes", *ASSIGNMENTS, "review", "final", "passed"]
    )
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_quizzes(path: str | os.PathLike) -> dict[str, float]:
    """Read ``learner,score`` rows (score 0-100) of a quiz CSV."""
    with Path(path).open(newline="", encoding="utf-8") as stream:
        return {row["learner"]: float(row["score"]) for row in csv.DictReader(stream)}

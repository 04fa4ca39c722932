"""Command line: ``python -m course.grading`` (grade, render a rubric, build a gradebook)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from course.grading.artifact import _COMMIT, GradingError, RubricError, make_result
from course.grading.gradebook import build_gradebook, read_quizzes, write_gradebook
from course.grading.grader import grade_notebook
from course.grading.rubric import load_rubric, render_rubric_markdown


def _gradebook(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course.grading gradebook",
        description="Turn a folder of graded results (RESULTS/<learner>/<assignment>/"
        "grade.json) into a gradebook CSV: quizzes 60 %, each assignment 20 %, pass at 60.",
    )
    parser.add_argument("results", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("gradebook.csv"))
    parser.add_argument("--quizzes", type=Path, help="CSV with columns learner,score (0-100)")
    args = parser.parse_args(argv)
    quizzes = read_quizzes(args.quizzes) if args.quizzes else None
    rows = build_gradebook(args.results, quizzes=quizzes)
    print(f"wrote {write_gradebook(rows, args.output)} ({len(rows)} learners)")
    return 0


def _render_rubric(rubric_path: Path, *, check: bool) -> int:
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
            print(f"{target} is out of date: run --render-rubric {rubric_path}", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _error_result(notebook: Path, message: str, commit: str | None, started: float):
    stem = notebook.stem.removesuffix("_activity")
    assignment = re.sub(r"[^0-9A-Za-z_-]", "_", stem).lstrip("_-")[:64] or "unknown"
    commit = commit.lower() if commit and re.match(_COMMIT, commit.lower()) else None
    return make_result(
        criteria=[],
        complete_points=0,
        assignment=assignment,
        notebook=re.sub(r"[^0-9A-Za-z_.-]", "_", notebook.name).lstrip(".") or "notebook.ipynb",
        commit=commit,
        status="error",
        outcomes={},
        messages=[
            f"Grading failed: {message}",
            "This is a problem with the grader: tell your facilitator.",
        ],
        started=started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Grade a notebook, render a rubric's Markdown, or build a gradebook.

    ``python -m course.grading NOTEBOOK [--rubric R] [--json OUT] [--markdown OUT]
    [--executed OUT] [--commit SHA] [--timeout S] [--cell-timeout S] [--watch DIR]
    [--no-git-check]``; ``python -m course.grading --render-rubric R.yml [--check]``;
    ``python -m course.grading gradebook RESULTS_DIR -o gradebook.csv [--quizzes Q.csv]``.

    Returns
    -------
    int
        0 when done (whatever the score); 1 when ``--check`` finds the Markdown rubric out
        of date; 2 when grading itself failed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gradebook"]:
        return _gradebook(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m course.grading", description="Grade an assignment notebook."
    )
    parser.add_argument("notebook", nargs="?", type=Path, help="the notebook to grade")
    parser.add_argument("--rubric", type=Path, help="default: NN_topic_rubric.yml next to it")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the learners' summary here")
    parser.add_argument("--executed", type=Path, help="save the executed notebook here")
    parser.add_argument("--commit", help="commit being graded, recorded in the result")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for all cells")
    parser.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell")
    parser.add_argument("--watch", type=Path, action="append", default=[], help="no writes here")
    parser.add_argument(
        "--no-git-check", action="store_true", help="developing the grader: skip the git check"
    )
    parser.add_argument("--render-rubric", type=Path, metavar="RUBRIC", help="write RUBRIC's .md")
    parser.add_argument("--check", action="store_true", help="with --render-rubric: only compare")
    args = parser.parse_args(argv)
    if args.render_rubric is not None:
        return _render_rubric(args.render_rubric, check=args.check)
    if args.notebook is None:
        parser.error("give a NOTEBOOK to grade, --render-rubric RUBRIC, or gradebook RESULTS")
    started = time.monotonic()
    try:
        result = grade_notebook(
            args.notebook,
            args.rubric,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            commit=args.commit,
            executed_path=args.executed,
            verify_git=not args.no_git_check,
            watch=args.watch,
        )
        code = 0
    except (GradingError, FileNotFoundError, ValueError) as err:
        print(f"grading failed: {err}", file=sys.stderr)
        result, code = _error_result(args.notebook, str(err), args.commit, started), 2
    text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(result.to_markdown(), encoding="utf-8")
    print(
        f"{result.assignment}: {result.mark} ({result.score} / {result.max_score} points, {result.status})"
    )
    if not args.markdown:
        print(result.to_markdown())
    return code


if __name__ == "__main__":
    sys.exit(main())

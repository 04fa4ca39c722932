"""The quiz bank: validate it, show a session's quiz in a notebook, export it to an LMS.

The bank is ``01_materials/quizzes/bank.yml``: one quiz per session, each question with its
key and a one-line explanation. Learners take the self-check version in the quiz notebooks
(``jupyterquiz``); facilitators export the bank for their LMS:

    uv run python -m course.quizzes --out quizzes/    # quizzes.gift (Moodle) + quizzes.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

__all__ = [
    "TYPES",
    "load_bank",
    "validate_bank",
    "quiz_questions",
    "to_jupyterquiz",
    "to_gift",
    "to_markdown",
    "main",
]

TYPES = ("true_false", "multiple_choice", "multiple_select")
MIN_QUESTIONS = 10
_GIFT_SPECIAL = re.compile(r"([~=#{}:\\])")


def _bank_path() -> Path:
    """Return the bank's path in the checkout this package is installed from (editable)."""
    return Path(__file__).resolve().parents[2] / "01_materials" / "quizzes" / "bank.yml"


def _check_question(question: dict, sessions: dict) -> None:
    """Raise ValueError naming the question when its fields do not follow the bank's format."""
    qid = question.get("id", "<no id>")
    missing = {"id", "session", "type", "question", "answer", "explanation"} - set(question)
    if missing:
        raise ValueError(f"question {qid}: missing field(s) {sorted(missing)}")
    if question["session"] not in sessions:
        raise ValueError(f"question {qid}: session {question['session']!r} is not in sessions")
    kind, answer = question["type"], question["answer"]
    if kind not in TYPES:
        raise ValueError(f"question {qid}: type must be one of {TYPES}; got {kind!r}")
    explanation = question["explanation"]
    if not isinstance(explanation, str) or not explanation.strip() or "\n" in explanation.strip():
        raise ValueError(f"question {qid}: explanation must be one non-empty line")
    if kind == "true_false":
        if not isinstance(answer, bool):
            raise ValueError(f"question {qid}: answer of a true_false must be true or false")
        return
    choices = question.get("choices")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or len(set(map(str, choices))) < len(choices)
    ):
        raise ValueError(f"question {qid}: choices must be a list of two or more distinct texts")
    keys = [answer] if kind == "multiple_choice" else answer
    if kind == "multiple_choice" and (isinstance(answer, bool) or not isinstance(answer, int)):
        raise ValueError(f"question {qid}: answer of a multiple_choice is one index (one key)")
    if not isinstance(keys, list) or len(set(keys)) != len(keys):
        raise ValueError(
            f"question {qid}: answer of a multiple_select is a list of distinct indices"
        )
    if not all(isinstance(k, int) and 0 <= k < len(choices) for k in keys):
        raise ValueError(
            f"question {qid}: answer {answer!r} is not an index of the {len(choices)} choices"
        )
    if kind == "multiple_select" and not 2 <= len(keys) < len(choices):
        raise ValueError(
            f"question {qid}: a multiple_select has two or more right choices, not all"
        )


def validate_bank(bank: dict) -> dict:
    """Check the bank's structure and return it unchanged.

    Parameters
    ----------
    bank : dict
        ``{"sessions": {n: {...}}, "questions": [...]}`` as read from ``bank.yml``.

    Returns
    -------
    dict
        ``bank``.

    Raises
    ------
    ValueError
        Naming the question (or session) at fault: a missing field, an unknown type, no single
        key for a multiple-choice question, an empty explanation, a duplicate id, or a session
        with fewer than 10 questions.
    """
    sessions = bank.get("sessions") or {}
    questions = bank.get("questions") or []
    if not sessions or not questions:
        raise ValueError("the bank needs 'sessions' and 'questions'")
    for question in questions:
        _check_question(question, sessions)
    ids = [q["id"] for q in questions]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate question id(s): {duplicates}")
    for session in sessions:
        count = sum(q["session"] == session for q in questions)
        if count < MIN_QUESTIONS:
            raise ValueError(
                f"session {session} has {count} questions; expected >= {MIN_QUESTIONS}"
            )
    return bank


def load_bank(path: str | Path | None = None) -> dict:
    """Read and validate the quiz bank.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A bank file; default ``01_materials/quizzes/bank.yml`` of the repository.

    Returns
    -------
    dict
        The validated bank.
    """
    path = Path(path) if path is not None else _bank_path()
    return validate_bank(yaml.safe_load(path.read_text(encoding="utf-8")))


def _choices(question: dict) -> list[tuple[str, bool]]:
    """Return the choices as (text, is right) pairs; True/False for a true_false."""
    if question["type"] == "true_false":
        return [("True", question["answer"]), ("False", not question["answer"])]
    keys = question["answer"] if question["type"] == "multiple_select" else [question["answer"]]
    return [(str(text), i in keys) for i, text in enumerate(question["choices"])]


def quiz_questions(session: int, bank: dict | None = None) -> list[dict]:
    """Return a session's questions in ``jupyterquiz``'s format, for ``display_quiz``.

    Parameters
    ----------
    session : int
        The session number, a key of the bank's ``sessions``.
    bank : dict, optional
        A validated bank; default :func:`load_bank`.

    Returns
    -------
    list of dict
        One dict per question (``question``, ``type``, ``answers`` with feedback).

    Raises
    ------
    ValueError
        If ``session`` is not in the bank.
    """
    bank = load_bank() if bank is None else bank
    if session not in bank["sessions"]:
        raise ValueError(f"session must be one of {sorted(bank['sessions'])}; got {session!r}")
    return to_jupyterquiz([q for q in bank["questions"] if q["session"] == session])


def to_jupyterquiz(questions: list[dict]) -> list[dict]:
    """Convert bank questions to ``jupyterquiz`` dicts (explanations as feedback)."""
    converted = []
    for question in questions:
        kind = "many_choice" if question["type"] == "multiple_select" else "multiple_choice"
        text = question["question"]
        if kind == "many_choice":
            text += " (select all that apply)"
        answers = [
            {
                "answer": choice,
                "correct": right,
                "feedback": ("Right. " if right else "Not quite. ") + question["explanation"],
            }
            for choice, right in _choices(question)
        ]
        converted.append({"question": text, "type": kind, "answers": answers})
    return converted


def _gift_escape(text: str) -> str:
    """Escape GIFT's special characters."""
    return _GIFT_SPECIAL.sub(r"\\\1", str(text))


def _gift_answers(question: dict) -> str:
    """Return the answer block of one GIFT question, without braces."""
    if question["type"] == "true_false":
        return "TRUE" if question["answer"] else "FALSE"
    if question["type"] == "multiple_choice":
        return " ".join(
            ("=" if right else "~") + _gift_escape(text) for text, right in _choices(question)
        )
    weight = {2: "50", 3: "33.33333", 4: "25", 5: "20"}[len(question["answer"])]
    return " ".join(
        f"~%{'' if right else '-'}{weight}%{_gift_escape(text)}"
        for text, right in _choices(question)
    )


def to_gift(bank: dict) -> str:
    """Export the bank to Moodle's GIFT format: one category per session.

    Multiple-select questions give each right choice an equal share and take the same share
    off for each wrong one; the explanation is the general feedback.

    Parameters
    ----------
    bank : dict
        A validated bank.

    Returns
    -------
    str
        The GIFT text, ready for Moodle's question import.
    """
    blocks = []
    for session, info in bank["sessions"].items():
        blocks.append(
            f"$CATEGORY: production/session-{session}-{info['title'].lower().replace(' ', '-')}"
        )
        for question in (q for q in bank["questions"] if q["session"] == session):
            title = _gift_escape(question["id"])
            text = _gift_escape(question["question"])
            general = _gift_escape(question["explanation"])
            blocks.append(
                f"::{title}::[markdown]{text} {{{_gift_answers(question)} ####{general}}}"
            )
    return "\n\n".join(blocks) + "\n"


def to_markdown(bank: dict, *, key: bool = True) -> str:
    """Export the bank to Markdown: one section per session, with or without the key.

    Parameters
    ----------
    bank : dict
        A validated bank.
    key : bool, default=True
        Mark the right choices and add each explanation.

    Returns
    -------
    str
        The Markdown text.
    """
    lines = ["# Quizzes", ""]
    for session, info in bank["sessions"].items():
        lines += [f"## Quiz {session} · {info['title']}", ""]
        questions = [q for q in bank["questions"] if q["session"] == session]
        for number, question in enumerate(questions, start=1):
            hint = " *(select all that apply)*" if question["type"] == "multiple_select" else ""
            lines.append(f"{number}. {question['question']}{hint}")
            for text, right in _choices(question):
                lines.append(f"   - [{'x' if key and right else ' '}] {text}")
            if key:
                lines.append(f"\n   *{question['explanation']}*")
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Write ``quizzes.gift`` and ``quizzes.md`` (with the key) into ``--out``."""
    parser = argparse.ArgumentParser(description="Export the quiz bank to GIFT and Markdown.")
    parser.add_argument("--out", type=Path, default=Path("quizzes"), help="output folder")
    parser.add_argument("--bank", type=Path, default=None, help="bank file (default: the course's)")
    args = parser.parse_args(argv)
    bank = load_bank(args.bank)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quizzes.gift").write_text(to_gift(bank), encoding="utf-8")
    (args.out / "quizzes.md").write_text(to_markdown(bank), encoding="utf-8")
    print(f"wrote {len(bank['questions'])} questions to {args.out}/quizzes.gift and quizzes.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

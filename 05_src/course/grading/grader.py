"""Grade one notebook: check the grader, run the notebook contained, then judge apart.

1. The grader's own files (this package, the checks, the rubric, the scripts and what
   the judge imports) are hashed: against git when asked, and before/after the run.
2. The checks write the inputs the learner's functions will be called on (no learner
   code has run yet).
3. The notebook runs in a contained kernel (:mod:`course.grading.runner`) in a temporary
   copy of its folder; its last cell saves the answers as data.
4. The kernel and everything it started are killed; the repository, the environment,
   the real home and temporary folders and the output folders are compared with their
   state before the run. Any write there, or a changed grader file, withholds the score.
5. The judge, a separate process, compares the answers with what it computes itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course.grading import contain
from course.grading.artifact import _COMMIT, _NOTEBOOK, GradeResult, GradingError, make_result
from course.grading.judge import prepare_inputs
from course.grading.rubric import find_rubric, load_rubric
from course.grading.runner import NotebookRun, boot_source, kernel_manager

__all__ = ["GRADER_FILES", "grade_notebook"]

#: The grader's own files, relative to the repository root: a change withholds the score.
GRADER_FILES = (
    "05_src/course/__init__.py",
    "05_src/course/grading",
    "scripts/grade.sh",
    "scripts/validate_grade_artifact.py",
    ".github/workflows/grade.yml",
    ".github/workflows/comment.yml",
)
MAX_FOLDER_BYTES = 200 * 1024 * 1024
_PACKAGE = Path(__file__).resolve().parent
_SRC = _PACKAGE.parents[1]  # 05_src
_GRADER_REPO = _SRC.parent
_KERNEL_SKIP = frozenset({".git", ".venv", "venv", "__pycache__", ".ipynb_checkpoints"})


def _check_parameters(timeout: float, cell_timeout: float, commit: str | None) -> str | None:
    for name, value in (("timeout", timeout), ("cell_timeout", cell_timeout)):
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        if not valid or not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"The '{name}' parameter of grade_notebook must be a finite number > 0. "
                f"Got {value!r} instead."
            )
    if commit is None:
        return None
    commit = str(commit).strip().lower()
    if not re.match(_COMMIT, commit):
        raise ValueError(
            "The 'commit' parameter of grade_notebook must be 7 to 40 hexadecimal digits. "
            f"Got {commit!r:.60} instead."
        )
    return commit


def _repo_root(folder: Path) -> Path | None:
    return next((p for p in (folder, *folder.parents) if (p / ".git").exists()), None)


def _display_path(notebook: Path, repo_root: Path | None) -> str:
    shown = notebook.relative_to(repo_root).as_posix() if repo_root else notebook.name
    if not re.match(_NOTEBOOK, shown):
        shown = re.sub(r"[^0-9A-Za-z_.-]", "_", notebook.name).lstrip(".") or "notebook.ipynb"
    return shown[:200]


def _read_notebook(path: Path) -> tuple[Any, str | None]:
    """Read a notebook as nbformat 4 with outputs cleared, or return (None, reason)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        cells = list(nb.cells)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"{type(err).__name__}: {err}"
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell.outputs, cell.execution_count = [], None
    return nb, None


def _copy_folder(source: Path, target: Path) -> None:
    total = 0

    def ignore(directory: str, names: list[str]) -> set[str]:
        nonlocal total
        skipped = {name for name in names if name in _KERNEL_SKIP}
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


def _fingerprint(specs: Sequence[str]) -> dict[str, str]:
    """Hash every file of the grader's specs, bytecode caches included."""
    files = []
    for spec in specs:
        path = _GRADER_REPO / spec
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return contain.hash_files(files)


def _watches(repo_root: Path | None, extra: Sequence[Path], tmp_root: Path) -> list[tuple]:
    """Folders compared before and after the run: (label, root, depth)."""
    try:  # the real home, whatever HOME says (POSIX only: pwd is missing on Windows)
        import pwd

        real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except ImportError:
        real_home = Path.home()
    roots = [("<environment>", Path(sys.prefix).resolve(), None)]
    if repo_root:
        roots.append(("<repository>", repo_root, None))
    roots += [("<home>", real_home, 1), ("<tmp>", Path(tempfile.gettempdir()).resolve(), 1)]
    roots += [("<output>", Path(p).resolve(), None) for p in extra]
    return [(label, root, depth) for label, root, depth in roots if root.is_dir()]


def _writes(before: dict, after: dict) -> list[str]:
    """Differences between snapshots; in shared folders, only what learner code made."""
    found = []
    for label, stamps in after.items():
        old = before.get(label, {})
        shared = label in ("<home>", "<tmp>")
        for path, stamp in stamps.items():
            if path not in old and (not shared or stamp[2] in contain.LEARNER_MODES):
                found.append(f"{label}/{path}")
            elif path in old and old[path] != stamp and (not shared or label == "<home>"):
                found.append(f"{label}/{path}")
        if not shared:
            found += [f"{label}/{p} (deleted)" for p in old if p not in stamps]
    return sorted(found)


def _outside_copy(work: Path, copy: Path) -> list[str]:
    """Paths created in the temporary work tree but outside the notebook's folder copy."""
    ancestors, found = set(copy.parents), []
    for directory, dirnames, filenames in os.walk(work):
        here = Path(directory)
        found += [os.path.relpath(here / name, copy) for name in filenames]
        keep = [d for d in dirnames if here / d in ancestors]
        found += [
            os.path.relpath(here / d, copy) + "/"
            for d in dirnames
            if here / d not in ancestors and here / d != copy
        ]
        dirnames[:] = keep
    return sorted(p.replace(os.sep, "/") for p in found)


def _drop_bytecode(specs: Sequence[str]) -> None:
    """Delete ``__pycache__`` folders beside the grader's sources (the grader never writes them).

    A ``.pyc`` planted there would be imported by the judge instead of the source: the
    judge runs with ``-B`` and reads bytecode only from the environment, which is watched.
    """
    for spec in specs:
        path = _GRADER_REPO / spec
        for cache in path.rglob("__pycache__") if path.is_dir() else ():
            shutil.rmtree(cache, ignore_errors=True)


def _judge(command: list[str], tmp_root: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run the judge (this package's tree, never the kernel's) in a fresh, allow-listed process."""
    home = tmp_root / f"judge-{secrets.token_hex(4)}"
    (home / "tmp").mkdir(parents=True)
    env = contain.base_env(home=home, tmp=home / "tmp", pycache=home / "pycache")
    boot = (
        f"import sys; sys.path[:0] = [{str(_SRC)!r}]; "
        "from course.grading.judge import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-I", "-B", "-c", boot, *command],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_judge(rubric, seed: int, answers: Path, copy: Path, pkgs: Path, tmp_root: Path) -> dict:
    """Run the judge process on the saved answers; return ``{criterion id: (passed, message)}``."""
    criteria = json.dumps({c.id: c.check for c in rubric.criteria})
    command = ["judge", "--checks", rubric.checks, "--seed", str(seed), "--answers", str(answers)]
    command += ["--criteria", criteria, "--workdir", str(copy), "--pkgs", str(pkgs)]
    judged = _judge(command, tmp_root, 600)
    try:
        line = judged.stdout.strip().splitlines()[-1]
        return {k: tuple(v) for k, v in json.loads(line).items()}
    except (ValueError, IndexError) as err:
        raise GradingError(f"{rubric.path.name}: the judge failed: {judged.stderr[-800:]}") from err


def grade_notebook(
    notebook_path: str | os.PathLike,
    rubric_path: str | os.PathLike | None = None,
    *,
    timeout: float = 600,
    cell_timeout: float = 120,
    commit: str | None = None,
    executed_path: str | os.PathLike | None = None,
    verify_git: bool = True,
    watch: Sequence[str | os.PathLike] = (),
) -> GradeResult:
    """Grade a submitted notebook: run it contained, then judge its answers apart.

    Parameters
    ----------
    notebook_path : path-like
        The notebook (``NN_topic_activity.ipynb``).
    rubric_path : path-like, optional
        The rubric; found next to the notebook by :func:`find_rubric` if omitted.
    timeout : float, default=600
        Seconds for all the notebook's cells together.
    cell_timeout : float, default=120
        Seconds for any one cell.
    commit : str, optional
        The commit being graded (7 to 40 hexadecimal digits), recorded in the result.
    executed_path : path-like, optional
        Where to save the executed notebook, with its outputs.
    verify_git : bool, default=True
        Compare the grader's own files with git's index first (``git hash-object`` vs
        ``git ls-files -s``); a difference withholds the score. Turn off only while
        developing the grader.
    watch : sequence of path-like, default=()
        More folders the notebook must not write to (the output folder).

    Returns
    -------
    GradeResult
        The grade; ``withheld`` lists why the score cannot stand, if anything.

    Raises
    ------
    FileNotFoundError
        If the notebook or the rubric does not exist.
    RubricError
        If the rubric is invalid.
    ValueError
        If a parameter is out of range, or the notebook's folder is too large to copy.
    GradingError
        If grading itself failed: the judge or the kernel did not start.
    """
    started = time.monotonic()
    notebook = Path(notebook_path).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"grade_notebook: notebook {notebook_path} not found")
    commit = _check_parameters(timeout, cell_timeout, commit)
    rubric = load_rubric(rubric_path if rubric_path is not None else find_rubric(notebook))
    repo_root = _repo_root(notebook.parent)
    common = {
        "criteria": [(c.id, c.title, c.points) for c in rubric.criteria],
        "complete_points": rubric.complete,
        "assignment": rubric.assignment,
        "notebook": _display_path(notebook, repo_root),
        "commit": commit,
        "started": started,
    }
    nb, read_error = _read_notebook(notebook)
    if nb is None:
        reason = "Not checked: the notebook file could not be read."
        return make_result(
            **common,
            status="error",
            outcomes={c.id: (False, reason) for c in rubric.criteria},
            messages=[f"The notebook file could not be read (merge conflict?): {read_error}"],
        )
    options = {
        "timeout": timeout,
        "cell_timeout": cell_timeout,
        "verify_git": verify_git,
        "watch": [Path(p) for p in watch],
        "executed_path": executed_path,
    }
    with tempfile.TemporaryDirectory(prefix="production-grade-") as tmp:
        outcomes, status, notes, withheld = _grade_in(
            Path(tmp).resolve(), notebook, nb, rubric, repo_root, options
        )
    return make_result(
        **common, status=status, outcomes=outcomes, messages=notes, withheld=withheld
    )


def _verify(specs: Sequence[str], verify_git: bool) -> list[str]:
    if not verify_git:
        return []
    mismatches = contain.git_mismatches(_GRADER_REPO, specs)
    if not mismatches:
        return []
    return ["The grader's own files differ from git's: " + ", ".join(mismatches[:8])]


def _seed_matplotlib(home: Path) -> None:
    """Copy matplotlib's font list into the kernel's home (rebuilding it takes seconds)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib"
    target = home / ".matplotlib"
    target.mkdir(parents=True, exist_ok=True)
    for font_list in cache.glob("fontlist-*.json") if cache.is_dir() else ():
        shutil.copy(font_list, target / font_list.name)


def _phase(name: str) -> None:
    """Print the time of a grading phase when GRADE_DEBUG is set (for measuring)."""
    if os.environ.get("GRADE_DEBUG"):
        print(f"[grade] {time.strftime('%H:%M:%S')} {name}", file=sys.stderr)


def _grade_in(tmp_root, notebook, nb, rubric, repo_root, options) -> tuple:
    """Run steps 1-5 of the module docstring inside the temporary folder ``tmp_root``."""
    specs = list(GRADER_FILES)
    if rubric.path.resolve().is_relative_to(_GRADER_REPO):
        rubric_file = rubric.path.resolve().relative_to(_GRADER_REPO)
        specs += [rubric_file.as_posix(), rubric_file.with_suffix(".md").as_posix()]
    withheld = _verify(specs, options["verify_git"])
    _drop_bytecode([*specs, "05_src/production"])
    _phase("inputs")
    seed = secrets.randbelow(2**31)
    inputs, answers = tmp_root / "inputs", tmp_root / "answers"
    inputs.mkdir()
    answers.mkdir()
    module = prepare_inputs(rubric.checks, seed, inputs)  # before any learner code runs
    withheld += _verify(module.pop("trusted"), options["verify_git"])
    fingerprint = _fingerprint(specs)
    spec = {"answers": str(answers), "inputs": str(inputs), "call_timeout": 60, **module}
    run, copy, pkgs, outside = _run_notebook(tmp_root, notebook, nb, repo_root, spec, options)
    if outside:
        withheld.append(
            "The notebook wrote outside its folder: "
            + ", ".join(outside[:10])
            + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
            + ". Write only inside the notebook's folder, with relative paths."
        )
    now = _fingerprint(specs)
    changed = sorted(p for p, h in now.items() if fingerprint.get(p) != h)
    changed += sorted(set(fingerprint) - set(now))
    if changed:
        withheld.append("The grader's own files changed during the run: " + ", ".join(changed[:8]))
        reason = "Not judged: the grader's own files changed while the notebook ran."
        outcomes = {c.id: (False, reason) for c in rubric.criteria}
    elif run.kernel_lost:
        why = (
            "the notebook was still running when it was stopped"
            if run.kernel_lost == "stuck"
            else "the Python kernel stopped"
        )
        outcomes = {c.id: (False, f"Not checked: {why} (see the notes).") for c in rubric.criteria}
    else:
        _drop_bytecode([*specs, "05_src/production"])
        _phase("judge")
        outcomes = _run_judge(rubric, seed, answers, copy, pkgs, tmp_root)
    _phase("done")
    if options["executed_path"] is not None:
        import nbformat

        nbformat.write(nb, str(options["executed_path"]))
    status = "timeout" if run.timed_out else "error" if run.problems or outside else "ok"
    return outcomes, status, run.notes, withheld


def _run_notebook(tmp_root, notebook, nb, repo_root, spec, options) -> tuple:
    """Execute a copy of the notebook in a contained kernel; return what the run left.

    Returns ``(run, copy, pkgs, outside)``: the :class:`NotebookRun`, the notebook's copied
    folder, the folder the kernel imports ``production`` from, and the paths written outside
    the copy. No process the notebook started is left running.
    """
    home, work, pkgs = tmp_root / "home", tmp_root / "work", tmp_root / "pkgs"
    for folder in (home / "tmp", pkgs):
        folder.mkdir(parents=True)
    (pkgs / "production").symlink_to(_SRC / "production", target_is_directory=True)
    _seed_matplotlib(home)
    relative = notebook.parent.relative_to(repo_root) if repo_root else Path()
    copy = work / (relative if relative.parts else Path(notebook.parent.name or "notebook"))
    _copy_folder(notebook.parent, copy)
    watches = _watches(repo_root, [Path(p) for p in options["watch"]], tmp_root)
    before = {
        label: contain.snapshot(root, depth=depth, skip=[tmp_root])
        for label, root, depth in watches
    }
    marker = secrets.token_hex(8)
    env = contain.base_env(
        home=home,
        tmp=home / "tmp",
        pycache=tmp_root / "pycache",
        extra={
            "PRODUCTION_HOME": str(copy),
            "GRADE_RUN": marker,
            "IPYTHONDIR": str(home / ".ipython"),
        },
    )
    export = (_PACKAGE / "kernel_export.py").read_text(encoding="utf-8")
    export += f"\n\n_grader_export(__import__('json').loads({json.dumps(spec)!r}), globals())\n"
    run = NotebookRun(nb, export, timeout=options["timeout"], cell_timeout=options["cell_timeout"])
    _phase("kernel")
    contain.become_subreaper()
    existing = contain.descendants()
    try:
        run.execute(
            manager=kernel_manager(sys.executable, boot_source(pkgs)),
            workdir=copy,
            env=env,
            log=tmp_root / "kernel.log",
        )
    finally:
        killed = contain.kill_processes(keep=existing, marker=f"GRADE_RUN={marker}")
    if killed:
        run.notes.append(f"{killed} process(es) the notebook started were still running: stopped.")
    after = {
        label: contain.snapshot(root, depth=depth, skip=[tmp_root])
        for label, root, depth in watches
    }
    outside = [f"<temporary>/{p}" for p in _outside_copy(work, copy)] + _writes(before, after)
    return run, copy, pkgs, outside

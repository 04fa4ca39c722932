"""Notebooks as learners read them: titles, sections, sources, exercises, live versions."""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from repo_files import tracked

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "01_materials" / "labs"
LIVE = ROOT / "01_materials" / "labs_live"


NOTEBOOKS = tracked("*.ipynb")
SOURCED = [p for p in NOTEBOOKS if p.parent != LIVE]
LAB_NOTEBOOKS = sorted(LABS.glob("[0-9][0-9]_*.ipynb"))
TITLE = re.compile(r"^# (Lab \d\d|Assignment \d|Quiz \d) · \S")


def _name(path):
    return str(path.relative_to(ROOT))


def _tags(cell):
    return cell.metadata.get("tags", [])


def _cells(notebook):
    return [(c.cell_type, c.source.strip(), sorted(_tags(c))) for c in notebook.cells]


def test_there_are_labs_and_tracked_notebooks():
    assert len(LAB_NOTEBOOKS) == 9
    assert set(LAB_NOTEBOOKS) <= set(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_has_a_title_sections_and_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and TITLE.match(first.source), (
        f"the first cell is a markdown H1 like '# Lab 02 · Data engineering'; got {first.source[:60]!r}"
    )
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    sections = re.findall(r"^## \S.*$", markdown, re.M)
    assert len(sections) >= 2, f"at least two '## ' section headings; found {sections}"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"code cells {dirty} carry outputs: run nbstripout --keep-id"


@pytest.mark.parametrize("path", SOURCED, ids=_name)
def test_notebook_is_in_sync_with_its_percent_source(path):
    source = path.with_suffix(".py")
    assert source.is_file(), f"{source.name} missing: jupytext --to py:percent {path.name}"
    assert _cells(jupytext.read(path)) == _cells(jupytext.read(source)), (
        f"{path.name} and {source.name} differ: jupytext --sync {source.name}"
    )


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=_name)
def test_lab_has_exercises_each_with_solution_then_self_check(path):
    cells = nbformat.read(path, as_version=4).cells
    turns = [i for i, c in enumerate(cells) if re.search(r"^#+ Your turn", c.source, re.M)]
    assert len(turns) >= 2, "a lab has at least two '### Your turn' exercises"
    for start, end in zip(turns, [*turns[1:], len(cells)], strict=True):
        solutions = [i for i in range(start, end) if "solution" in _tags(cells[i])]
        assert solutions, f"no cell tagged 'solution' after {cells[start].source[:50]!r}"
        after = solutions[-1] + 1
        assert after < end and "self-check" in _tags(cells[after]), (
            f"the solution of {cells[start].source[:50]!r} is followed by a 'self-check' cell"
        )


def _names(node, context):
    """Names used (or bound) in ``context``; a comprehension's own variables do not leak."""
    local = {
        n.id
        for comp in ast.walk(node)
        if isinstance(comp, ast.comprehension)
        for n in ast.walk(comp.target)
        if isinstance(n, ast.Name)
    }
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, context) and n.id not in local
    }


def _mutated(tree):
    """Names whose items or attributes a cell assigns (``df["x"] = ...``)."""
    bases = set()
    for node in ast.walk(tree):
        for target in getattr(node, "targets", [getattr(node, "target", None)]):
            while isinstance(target, ast.Subscript | ast.Attribute):
                target = target.value
                if isinstance(target, ast.Name):
                    bases.add(target.id)
    return bases


def _exercise_problems(cells):
    """Self-checks that would pass on an empty solution; later cells that need an exercise."""
    problems, tainted = [], set()
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or cell.source.lstrip().startswith(("%", "!")):
            continue
        tree = ast.parse(cell.source)
        if "solution" in _tags(cell) or "self-check" in _tags(cell):
            if "self-check" in _tags(cell) and "solution" in _tags(cells[index - 1]):
                solution = ast.parse(cells[index - 1].source)
                defined = _names(solution, ast.Store) | {
                    n.name for n in solution.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                }
                if not defined & _names(tree, ast.Load):
                    problems.append(
                        f"cell {index}: the self-check uses no name its solution defines"
                    )
            tainted |= (
                _names(tree, ast.Store)
                | _mutated(tree)
                | {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
            )
            continue
        for statement in tree.body:
            # a loop or `with` target is bound before its body reads it
            bound = {
                n.id
                for part in ast.walk(statement)
                if isinstance(part, ast.For | ast.withitem)
                for n in ast.walk(part.target if isinstance(part, ast.For) else part)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            }
            needed = (_names(statement, ast.Load) - bound) & tainted
            if needed:
                problems.append(f"cell {index} needs {sorted(needed)}, defined by an exercise")
            tainted -= _names(statement, ast.Store)
    return problems


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=_name)
def test_exercises_are_self_contained(path):
    """Live versions empty the solutions: checks must then fail and later cells still run."""
    assert not _exercise_problems(nbformat.read(path, as_version=4).cells)


def test_exercise_problems_are_found():
    code = nbformat.v4.new_code_cell
    cells = [
        code("x = 1"),
        code("y = x + 1", metadata={"tags": ["solution"]}),
        code("assert x == 1", metadata={"tags": ["self-check"]}),
        code("z = y * 2"),
    ]
    assert _exercise_problems(cells) == [
        "cell 2: the self-check uses no name its solution defines",
        "cell 3 needs ['y'], defined by an exercise",
    ]
    cells[2].source, cells[3].source = "assert y == 2", "y = 5\nz = y * 2"
    assert _exercise_problems(cells) == []
    cells[1].source = "y = x\nframe['col'] = y"
    cells[3].source = "print(frame)"
    assert _exercise_problems(cells) == ["cell 3 needs ['frame'], defined by an exercise"]


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=_name)
def test_lab_has_a_live_coding_version(path):
    assert (LIVE / path.name).is_file(), "run: uv run python scripts/make_live_notebooks.py"


def test_live_notebooks_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_live_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_live_notebooks_empty_every_solution_and_tolerate_the_checks():
    live = sorted(LIVE.glob("*.ipynb"))
    assert live
    for path in live:
        cells = nbformat.read(path, as_version=4).cells
        solutions = [c for c in cells if "solution" in _tags(c)]
        checks = [c for c in cells if "self-check" in _tags(c)]
        assert solutions and all(c.source.startswith("# Your turn") for c in solutions), path.name
        assert all("raises-exception" in _tags(c) for c in checks), path.name


def _load_live_script():
    spec = importlib.util.spec_from_file_location(
        "make_live_notebooks", ROOT / "scripts" / "make_live_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_live_version_empties_solutions_and_names_what_to_define(tmp_path):
    make_live = _load_live_script()
    cells = [
        nbformat.v4.new_markdown_cell("# Lab 99 · Tiny"),
        nbformat.v4.new_code_cell("import math"),
        nbformat.v4.new_code_cell(
            "def area(r):\n    return math.pi * r**2\n\nhelper = 2\nresult = area(helper)",
            metadata={"tags": ["solution"]},
        ),
        nbformat.v4.new_code_cell(
            "assert result == area(2), 'no'", metadata={"tags": ["self-check"]}
        ),
        nbformat.v4.new_code_cell("print(math.pi)"),
    ]
    lab = tmp_path / "99_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), lab)
    live = make_live.live_version(lab).cells
    assert live[2].source.splitlines()[:2] == [
        "# Your turn: write your code here",
        "# define: area, result",
    ]
    assert live[3].source == cells[3].source
    assert live[3].metadata["tags"] == ["self-check", "raises-exception"]
    assert live[4].source == cells[4].source and "Live-coding version" in live[0].source
    assert nbformat.read(lab, as_version=4).cells[2].source == cells[2].source

"""Helpers shared by the tests of the assignments' checks (``course.grading_checks``)."""

import ast
import json
from pathlib import Path

from course.grading import Answers, CheckFailed


def run(check, **names):
    """Run a check as the grader does: CheckFailed becomes a failed criterion."""
    try:
        passed, message = check(Answers(names))
    except CheckFailed as err:
        return False, str(err)
    assert isinstance(message, str) and message
    return bool(passed), message


def template_setup(notebook: Path) -> tuple[str, dict]:
    """Return the template's first code cell and the values of its ``NAME = literal`` lines."""
    cells = json.loads(notebook.read_text())["cells"]
    first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    values = {
        node.targets[0].id: node.value
        for node in ast.parse(first).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    return first, {name: _literal(node) for name, node in values.items()}


def _literal(node):
    """The value of a literal expression, or the node itself when it is not a literal."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return node

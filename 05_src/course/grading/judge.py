"""The judge: a separate process that compares the notebook's saved answers with its own.

It never imports or runs learner code. ``python -I -m course.grading.judge inputs ...``
writes the inputs the learner's functions are called on (before the kernel starts);
``python -I -m course.grading.judge judge ...`` (after the kernel and everything it
started are dead) reads the answers the kernel saved -- parquet and JSON, untrusted data
-- runs each criterion's check of ``course.grading.checks.<module>`` and prints
``{criterion id: [passed, message]}`` as JSON. A learner's model is scored by
:func:`score_model`, in a contained subprocess that returns numbers only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from course.grading.artifact import CheckFailed

__all__ = [
    "Answers",
    "CheckFailed",
    "load_checks",
    "main",
    "prepare_inputs",
    "run_checks",
    "score_model",
]

_KIND_NAMES = {
    "frame": "a pandas DataFrame",
    "series": "a pandas Series",
    "int": "an int",
    "float": "a float",
    "number": "a number (int or float)",
    "str": "a str",
    "dict": "a dict",
    "sequence": "a list (or any sequence)",
    "bool": "a bool",
    "function": "a function",
}


def load_checks(name: str) -> ModuleType:
    """Import ``course.grading.checks.<name>`` (the only place checks come from)."""
    return importlib.import_module(f"course.grading.checks.{name}")


class Answers:
    """The notebook's answers, read from the files the kernel saved (untrusted data).

    Parameters
    ----------
    folder : path-like
        The answers folder, with ``manifest.json``.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        self.saved = isinstance(data, dict)
        data = data if self.saved else {}
        self.names = data.get("names") if isinstance(data.get("names"), dict) else {}
        self.outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
        self.searches = data.get("searches") if isinstance(data.get("searches"), dict) else {}

    def _not_saved(self) -> CheckFailed:
        return CheckFailed(
            "Not checked: the notebook did not run to its end, so no answer was saved "
            "(see the notes)."
        )

    def _load(self, meta: dict, what: str) -> Any:
        kind = meta.get("kind")
        if kind in ("frame", "series"):
            import pandas as pd

            name = str(meta.get("file", ""))
            path = self.folder / name
            if "/" in name or not path.is_file():
                raise CheckFailed(f"{what} could not be read back.")
            frame = pd.read_parquet(path)
            return frame["__value__"] if kind == "series" else frame
        return meta.get("value")

    def require(self, name: str, *kinds: str) -> Any:
        """Return the answer ``name``, after checking its type.

        Parameters
        ----------
        name : str
            A top-level name the notebook must define.
        *kinds : str
            Accepted kinds: ``frame``, ``series``, ``int``, ``float``, ``number``, ``str``,
            ``dict``, ``sequence``, ``bool``.

        Returns
        -------
        object
            DataFrame, Series or plain JSON value.

        Raises
        ------
        CheckFailed
            If it is missing, still ``None``, or of another type; the message says what
            was expected.
        """
        if not self.saved:
            raise self._not_saved()
        meta = self.names.get(name)
        if not isinstance(meta, dict):
            raise CheckFailed(
                f"`{name}` is not defined: run the cell that defines it and keep its name."
            )
        return self._typed(meta, f"`{name}`", kinds, none_hint="replace the TODO with your answer")

    def _typed(self, meta: dict, what: str, kinds: Sequence[str], none_hint: str) -> Any:
        kind = meta.get("kind")
        if kind == "none":
            raise CheckFailed(f"{what} is None: {none_hint}.")
        accepted = set(kinds)
        if "number" in accepted:
            accepted |= {"int", "float"}
        if kinds and kind not in accepted:
            expected = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
            shown = str(meta.get("type", kind)).rsplit(".", 1)[-1]
            raise CheckFailed(f"{what} should be {expected}; got {shown}.")
        return self._load(meta, what)

    def output(self, function: str, case: str, *kinds: str) -> Any:
        """Return what the notebook's ``function`` returned on the grader's input ``case``.

        Raises
        ------
        CheckFailed
            If the function is missing, raised (``NotImplementedError``: not written yet),
            returned ``None`` or a value of another kind.
        """
        if not self.saved:
            raise self._not_saved()
        meta = self.names.get(function)
        if not isinstance(meta, dict) or meta.get("kind") != "function":
            got = "is not defined" if meta is None else "is not a function"
            raise CheckFailed(f"`{function}` {got}: define the function the task asks for.")
        outcome = (self.outputs.get(function) or {}).get(case)
        if not isinstance(outcome, dict):
            raise CheckFailed(f"`{function}` was not called on the grader's input ({case}).")
        if outcome.get("kind") == "error":
            error = str(outcome.get("error", ""))
            if error.startswith("NotImplementedError"):
                raise CheckFailed(f"`{function}` is not written yet ({error}).")
            raise CheckFailed(f"`{function}` raised {error} on the grader's input ({case}).")
        what = f"`{function}(...)` (on the grader's input {case})"
        return self._typed(outcome, what, kinds, none_hint="finish it and `return` the result")

    def search(self, name: str) -> dict:
        """Return what the kernel saved of the fitted search ``name``.

        Raises
        ------
        CheckFailed
            If ``name`` is missing, ``None`` or not a fitted scikit-learn search.
        """
        if not self.saved:
            raise self._not_saved()
        meta = self.names.get(name)
        if not isinstance(meta, dict) or meta.get("kind") == "none":
            raise CheckFailed(f"`{name}` is not defined or still None: fit the search.")
        info = self.searches.get(name)
        if not isinstance(info, dict):
            raise CheckFailed(
                f"`{name}` should be a fitted scikit-learn search (GridSearchCV or "
                "RandomizedSearchCV after .fit); it has no cv_results_."
            )
        return info


def run_checks(module: ModuleType, checks: dict[str, str], answers: Answers, **context) -> dict:
    """Run each criterion's check; return ``{criterion id: [passed, message]}``.

    A ``CheckFailed`` or ``AssertionError`` fails the criterion with its message; any other
    exception fails it with the exception's text (a grader problem, named as such).
    """
    outcomes = {}
    for criterion, name in checks.items():
        try:
            passed, message = getattr(module, name)(answers, **context)
        except (CheckFailed, AssertionError) as err:
            passed, message = False, str(err) or "The check failed."
        except Exception as err:  # any error of the check becomes the criterion's message
            passed, message = False, f"The check stopped with {type(err).__name__}: {err}"
        outcomes[criterion] = [bool(passed), str(message).strip() or "No message."]
    return outcomes


def score_model(request: dict, *, python: str, workdir: Path, pkgs: Path, timeout: float) -> dict:
    """Run :mod:`course.grading.scorer` contained, on ``request``; return its numbers.

    The scorer loads learner objects (a pickled search, an MLflow model), so it runs like
    the kernel: isolated mode without ``course`` on its path, an allow-listed environment,
    its own session, killed with everything it started.

    Returns
    -------
    dict
        The scorer's JSON answer, or ``{"error": ...}``.
    """
    from course.grading.contain import base_env, run_contained
    from course.grading.runner import boot_path

    source = (Path(__file__).parent / "scorer.py").read_text(encoding="utf-8")
    boot = boot_path(pkgs) + source
    with tempfile.TemporaryDirectory(prefix="grade-scorer-") as tmp:
        home = Path(tmp)
        (home / "tmp").mkdir()
        env = base_env(home=home, tmp=home / "tmp", pycache=home / "pycache")
        env["GRADE_RUN"] = os.urandom(8).hex()
        request_path = home / "request.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        done = run_contained(
            [
                python,
                "-I",
                "-X",
                f"pycache_prefix={home / 'pycache'}",
                "-c",
                boot,
                str(request_path),
            ],
            env=env,
            cwd=workdir,
            timeout=timeout,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no answer"])[-1][:300]}
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return {"error": "the scorer's answer is not JSON"}
    return answer if isinstance(answer, dict) else {"error": "unexpected answer"}


def prepare_inputs(checks: str, seed: int, out: Path) -> dict:
    """Write the inputs of the learner's functions; return what the kernel must save.

    Runs before any learner code (in the grader's process or ``judge inputs``).

    Returns
    -------
    dict
        ``names``, ``functions`` (``{function: [case, ...]}``), ``searches`` and
        ``trusted`` (more repository files the checks rely on).
    """
    module = load_checks(checks)
    made = module.make_inputs(seed)
    for function, cases in made.items():
        (out / function).mkdir(parents=True, exist_ok=True)
        for case, frame in cases.items():
            frame.to_parquet(out / function / f"{case}.parquet")
    searches = list(getattr(module, "SEARCHES", ()))
    return {
        "names": [*module.NAMES, *made, *searches],
        "functions": {function: sorted(cases) for function, cases in made.items()},
        "searches": searches,
        "trusted": list(getattr(module, "TRUSTED", ())),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -I -m course.grading.judge {inputs,judge} ...``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m course.grading.judge")
    sub = parser.add_subparsers(dest="command", required=True)
    inputs = sub.add_parser("inputs")
    inputs.add_argument("--checks", required=True)
    inputs.add_argument("--seed", type=int, required=True)
    inputs.add_argument("--out", type=Path, required=True)
    judge = sub.add_parser("judge")
    judge.add_argument("--checks", required=True)
    judge.add_argument("--seed", type=int, required=True)
    judge.add_argument("--answers", type=Path, required=True)
    judge.add_argument("--criteria", required=True, help="JSON {criterion id: check name}")
    judge.add_argument("--workdir", type=Path, required=True, help="the kernel's folder copy")
    judge.add_argument("--pkgs", type=Path, required=True, help="the folder linking production")
    args = parser.parse_args(argv)
    module = load_checks(args.checks)
    if args.command == "inputs":
        print(json.dumps(prepare_inputs(args.checks, args.seed, args.out)))
        return 0
    context = {"seed": args.seed}
    if getattr(module, "USES_SCORER", False):
        context["scorer"] = lambda request, timeout=120: score_model(
            request, python=sys.executable, workdir=args.workdir, pkgs=args.pkgs, timeout=timeout
        )
        context["workdir"] = args.workdir
    outcomes = run_checks(module, json.loads(args.criteria), Answers(args.answers), **context)
    print(json.dumps(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

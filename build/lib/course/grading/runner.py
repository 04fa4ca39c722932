"""Run a learner's notebook in a contained kernel that only produces data.

The kernel runs with this Python in isolated mode (``-I``): the grader's package
``course`` is not on its path, only ``production`` is (through a folder holding a link to
it); its working folder is a temporary copy of the notebook's folder; its environment is
built from an allow-list. After the notebook's cells, one more cell
(:mod:`course.grading.kernel_export`) saves the answers the rubric names as files. Then
the kernel and every process it started are killed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from course.grading.artifact import GradingError

__all__ = ["MAX_CELL_OUTPUT_BYTES", "NotebookRun", "kernel_manager"]

MAX_CELL_OUTPUT_BYTES = 1024 * 1024
_RAISES = {"NBVAL_RAISES_EXCEPTION", "raises-exception", "nbval-raises-exception"}
_BOOT = """\
import os, sys
hidden = ('course', 'production')
sys.path[:] = [p for p in sys.path if p and not any(os.path.isdir(os.path.join(p, h)) for h in hidden)]
sys.path[0:0] = ['', PKGS]
os.umask(0o026)
del os, sys, hidden
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def boot_source(pkgs: Path) -> str:
    """Return the ``python -I -c`` code that starts a kernel seeing ``production`` only.

    Every path entry holding a ``course`` or ``production`` folder (the editable install's
    ``05_src``) is dropped; ``pkgs`` holds a link to ``production`` alone.
    """
    return _BOOT.replace("PKGS", repr(str(pkgs)))


def boot_path(pkgs: Path) -> str:
    """Return code that leaves ``production`` (through ``pkgs``) and no ``course`` on the path."""
    return _BOOT.replace("PKGS", repr(str(pkgs))).split("from ipykernel")[0]


def kernel_manager(python: str, boot: str) -> Any:
    """Return a kernel manager that starts ``python -I -B -c boot -f CONNECTION_FILE``.

    ``-I`` ignores every ``PYTHON*`` variable; ``-B``: the kernel writes no bytecode.
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class _Contained(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):  # noqa: D102
            return KernelSpec(
                argv=[python, "-I", "-B", "-c", boot, "-f", "{connection_file}"],
                display_name="Python 3 (grader)",
                language="python",
                name="python3",
            )

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_Contained())


def _markers(cell: Mapping[str, Any]) -> set[str]:
    """Return the nbval comment markers (``# NBVAL_...`` lines) and tags of a cell."""
    found = {
        line.strip().lstrip("#").strip()
        for line in cell.get("source", "").splitlines()
        if line.strip().startswith("#")
    }
    return found | set(cell.get("metadata", {}).get("tags", []))


def _cell_label(number: int, source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")] or lines or [""]
    first = code[0] if len(code[0]) <= 50 else code[0][:49] + "…"
    return f"Code cell {number} (`{first}`)"


def _stream(text: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("stream", name="stderr", text=text)


class NotebookRun:
    """One contained kernel: the notebook's cells, then the export cell; notes and status.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The notebook, outputs cleared.
    export : str
        Source of the export cell (kernel_export.py plus the call).
    timeout, cell_timeout : float
        Seconds for all cells; for one cell.
    """

    def __init__(self, nb: Any, export: str, *, timeout: float, cell_timeout: float):
        self.nb, self.export = nb, export
        self.timeout, self.cell_timeout = timeout, cell_timeout
        self.notes: list[str] = []
        self.timed_out = self.problems = False
        self.kernel_lost: str | None = None

    def execute(self, *, manager: Any, workdir: Path, env: dict[str, str], log: Path) -> None:
        """Run every cell, then the export cell; never raises for the notebook's faults.

        Raises
        ------
        GradingError
            If the kernel cannot be started.
        """
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from nbformat.v4 import new_code_cell

        client = _client_class()(
            self.nb,
            km=manager,
            timeout=int(math.ceil(self.cell_timeout)),
            allow_errors=True,
            interrupt_on_timeout=False,
            startup_timeout=60,
            shutdown_kernel="immediate",
            record_timing=False,
        )
        started = False
        errors = (CellTimeoutError, DeadKernelError)
        try:
            with (
                log.open("wb") as stream,
                client.setup_kernel(
                    env=env, cwd=str(workdir), cleanup_kc=True, stdout=stream, stderr=stream
                ),
            ):
                started = True
                self._run_cells(client, errors)
                if not self.kernel_lost:
                    cell = new_code_cell(self.export)
                    self.nb.cells.append(cell)
                    client.timeout = max(60, int(self.cell_timeout))
                    try:
                        client.execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
                    except errors:
                        self.notes.append("Saving the answers did not finish: the kernel hung.")
                    finally:
                        self.nb.cells.pop()
                    for output in cell.get("outputs", []):
                        if output.get("output_type") == "error":
                            self.notes.append(
                                f"Saving the answers failed: {output.get('ename')}: "
                                f"{output.get('evalue')} (did the notebook redefine a built-in?)"
                            )
        except Exception as err:
            if started:
                self.problems = True
                self.notes.append(f"The kernel failed: {type(err).__name__}: {err}")
                return
            raise GradingError(f"grade_notebook: the kernel did not start: {err}") from err

    def _run_cells(self, client: Any, errors: tuple[type, type]) -> None:
        deadline = time.monotonic() + self.timeout
        number = 0
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            number += 1
            label, markers = _cell_label(number, cell.source), _markers(cell)
            if markers & {"NBVAL_SKIP", "nbval-skip"}:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                self.notes.append(
                    f"The notebook's time limit ({self.timeout:g} s) was reached before {label}: "
                    "it and the cells after it did not run."
                )
                return
            client.timeout = max(1, int(math.ceil(min(self.cell_timeout, remaining))))
            try:
                client.execute_cell(cell, index, execution_count=number)
            except errors[0]:
                self.timed_out, self.kernel_lost = True, "stuck"
                self.notes.append(
                    f"{label} was stopped after {client.timeout} s (the limit is "
                    f"{self.cell_timeout:g} s per cell, {self.timeout:g} s in all): does it "
                    "loop forever, or work on too much data? The cells after it did not run."
                )
                cell.outputs.append(_stream(f"[grader] stopped after {client.timeout} s\n"))
                return
            except errors[1]:
                self.kernel_lost, self.problems = "died", True
                self.notes.append(
                    f"The Python kernel stopped while running {label} (a crash, or code such "
                    "as exit() or os._exit()): the rest of the notebook did not run."
                )
                return
            for output in cell.outputs:
                if output.get("output_type") == "error":
                    self.problems = self.problems or not (markers & _RAISES)
                    self.notes.append(
                        f"{label} raised {output.get('ename')}: {output.get('evalue')}"
                    )


_CLIENT_CLASS: list[type] = []


def _client_class() -> type:
    """NotebookClient that keeps at most MAX_CELL_OUTPUT_BYTES of output per cell."""
    if _CLIENT_CLASS:
        return _CLIENT_CLASS[0]
    from nbclient import NotebookClient

    class _CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # noqa: D102
            state = self.__dict__.setdefault("_grader_sizes", {})
            if msg["msg_type"] != "error":
                state[cell_index] = state.get(cell_index, 0) + len(json.dumps(msg["content"]))
                if state[cell_index] > MAX_CELL_OUTPUT_BYTES:
                    if state.get(("truncated", cell_index)) is None:
                        state[("truncated", cell_index)] = True
                        outs.append(_stream("[grader] output truncated\n"))
                    return None
            return super().output(outs, msg, display_id, cell_index)

    _CLIENT_CLASS.append(_CappedClient)
    return _CappedClient

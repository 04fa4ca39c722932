"""Containment of learner code: allow-listed environments, process trees, file watches.

Learner code (the notebook's kernel, a learner's model being scored) runs in its own
session; this process becomes a *child subreaper* (Linux) so that children that detach
(double fork, ``setsid``) are re-parented here and can be found and killed. Files that
must not change are hashed before and after, and against git.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "base_env",
    "become_subreaper",
    "descendants",
    "git_mismatches",
    "hash_files",
    "kill_processes",
    "run_contained",
    "snapshot",
    "trusted_files",
]

#: Variables copied from the grader's environment; everything else is dropped.
ALLOWED_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "VIRTUAL_ENV")
#: The umask of learner processes: what they create has modes others' files rarely have
#: (0o640 files, 0o751 folders), so that their files in shared folders can be told apart.
LEARNER_UMASK = 0o026
LEARNER_MODES = frozenset({0o640, 0o751})
#: Directories never listed when looking for writes (the kernel's own caches aside).
SKIP_DIRS = frozenset({".git", "node_modules", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
_PR_SET_CHILD_SUBREAPER = 36


def base_env(*, home: Path, tmp: Path, pycache: Path, extra: Mapping[str, str] = ()) -> dict:
    """Return an environment built from an allow-list, with home and temp inside ``home``.

    Parameters
    ----------
    home, tmp, pycache : pathlib.Path
        ``HOME``, ``TMPDIR`` and ``PYTHONPYCACHEPREFIX`` of the process.
    extra : mapping, optional
        More variables (they win).

    Returns
    -------
    dict
        No token, no service URL, nothing else from the grader's environment.
    """
    env = {k: os.environ[k] for k in ALLOWED_VARIABLES if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        TMPDIR=str(tmp),
        TEMP=str(tmp),
        TMP=str(tmp),
        PYTHONPYCACHEPREFIX=str(pycache),
        PYTHONHASHSEED="0",
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(home / ".matplotlib"),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        JUPYTER_PLATFORM_DIRS="1",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux); return whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _parents() -> dict[int, int]:
    """Map every visible process id to its parent's (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                found[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return found


def _marked(marker: str) -> set[int]:
    """Return the processes whose environment holds ``marker`` (one run's tag)."""
    found = set()
    needle = marker.encode()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
    return found


def descendants(root: int = 0) -> set[int]:
    """Return the ids of every descendant of process ``root`` (default: this process)."""
    root = root or os.getpid()
    parents = _parents()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def kill_processes(*, keep: Iterable[int] = (), marker: str | None = None) -> int:
    """Kill every descendant of this process but ``keep``, and every marked process.

    Processes are stopped first (so that none can fork while others die), then killed,
    until none is left; zombies that are our children are reaped.

    Parameters
    ----------
    keep : iterable of int
        Descendants that existed before the learner code started.
    marker : str, optional
        An environment entry (``NAME=value``) the learner processes inherited.

    Returns
    -------
    int
        How many processes were killed.
    """
    keep, killed = set(keep), set()
    for _ in range(50):
        targets = (descendants() | (_marked(marker) if marker else set())) - keep - {os.getpid()}
        targets -= {pid for pid in targets if _is_zombie(pid)}
        if not targets:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in targets:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        killed |= targets
        time.sleep(0.02)
        _reap(killed)
    _reap(killed)
    return len(killed)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def run_contained(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess:
    """Run learner-facing code in its own session; kill it and everything it started.

    Parameters
    ----------
    command : sequence of str
        The program and its arguments.
    env : mapping
        Its whole environment (see :func:`base_env`).
    cwd : pathlib.Path
        Its working directory.
    timeout : float
        Seconds before it is killed.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` and ``stderr`` as text; ``returncode`` -9 after a timeout.
    """
    become_subreaper()
    before = descendants()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:  # the process may be done while its children still run: kill them all now
            with contextlib.suppress(OSError, AttributeError):  # no killpg on Windows
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.kill()
            marker = env.get("GRADE_RUN")
            kill_processes(keep=before, marker=marker and f"GRADE_RUN={marker}")
            process.wait()
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read(4 * 2**20).decode("utf-8", errors="replace"))
    return subprocess.CompletedProcess(command, process.returncode, *texts)


def hash_files(paths: Iterable[Path]) -> dict[str, str]:
    """Return ``{path: sha256}`` of files (missing files hash to ``"missing"``)."""
    hashes = {}
    for path in paths:
        try:
            hashes[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            hashes[str(path)] = "missing"
    return hashes


def snapshot(root: Path, *, depth: int | None = None, skip: Iterable[Path] = ()) -> dict:
    """Map files under ``root`` to ``(mtime_ns, size, mode)``; folders to ``(0, -1, mode)``.

    Parameters
    ----------
    root : pathlib.Path
        The folder to list.
    depth : int, optional
        How many levels to descend (``1``: the folder's own entries); all by default.
    skip : iterable of pathlib.Path
        Folders not to list (the grader's own temporary folder).

    Returns
    -------
    dict
        Comparing two snapshots shows what was created, changed or deleted.
    """
    skipped = {str(Path(p).resolve()) for p in skip}
    stamps: dict[str, tuple[int, int]] = {}
    pending = [(str(root), "", 1)]
    while pending:
        folder, prefix, level = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if entry.path in skipped:
                continue
            name = prefix + entry.name
            mode = info.st_mode & 0o777
            stamps[name] = (0, -1, mode) if is_dir else (info.st_mtime_ns, info.st_size, mode)
            descend = depth is None or level < depth
            if is_dir and descend and entry.name not in SKIP_DIRS:
                pending.append((entry.path, name + "/", level + 1))
    return stamps


def trusted_files(repo: Path, specs: Iterable[str]) -> list[Path]:
    """Return the files under ``specs`` (repository-relative files or folders), caches aside."""
    files = []
    for spec in specs:
        path = repo / spec
        if path.is_file():
            files.append(path)
        for directory, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files += [Path(directory, name) for name in filenames]
    return sorted(files)


def git_mismatches(repo: Path, specs: Sequence[str]) -> list[str]:
    """Return the files under ``specs`` that differ from git's index, or are not in it.

    Compares ``git hash-object`` of each file with ``git ls-files -s`` (``__pycache__``
    folders aside: the grader never reads them, its bytecode goes to a temporary folder).

    Parameters
    ----------
    repo : pathlib.Path
        The repository root (holding ``.git``).
    specs : sequence of str
        Repository-relative files or folders: the grader's own files.

    Returns
    -------
    list of str
        Repository-relative paths, with why (``modified``, ``untracked``, ``deleted``).
    """
    if not specs:
        return []
    env = {"PATH": os.environ.get("PATH", os.defpath), "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/"}
    git = ["git", "-c", "safe.directory=*"]
    listed = subprocess.run(
        [*git, "ls-files", "-s", "-z", "--", *specs], cwd=repo, capture_output=True, env=env
    )
    if listed.returncode != 0:
        return [f"git ls-files failed: {listed.stderr.decode(errors='replace').strip()[:200]}"]
    indexed = {}
    for entry in filter(None, listed.stdout.decode().split("\0")):
        meta, _, name = entry.partition("\t")
        indexed[name] = meta.split()[1]
    present = [p.relative_to(repo).as_posix() for p in trusted_files(repo, specs)]
    hashed = subprocess.run(
        [*git, "hash-object", "--no-filters", "--stdin-paths"],
        cwd=repo,
        input="\n".join(present).encode(),
        capture_output=True,
        env=env,
        check=True,
    ).stdout.decode()
    actual = dict(zip(present, hashed.split(), strict=True))
    problems = [f"{p} (untracked)" for p in present if p not in indexed]
    problems += [f"{p} (modified)" for p in present if p in indexed and indexed[p] != actual[p]]
    problems += [f"{p} (deleted)" for p in indexed if p not in actual]
    return sorted(problems)

"""Command line: ``production check`` and ``production demo``.

``production demo`` runs the course pipeline end to end on whatever the configuration
points at (the embedded SQLite database and local MLflow store by default) and prints
where everything was written.
"""

from __future__ import annotations

import argparse
import sys
import time

from course.demo import run_demo
from production.config import RANDOM_STATE, get_settings, mask_url
from production.db import check_connection
from production.tracking import configure_tracking

__all__ = ["main"]


def _check() -> int:
    settings = get_settings()
    print("Configuration (value, from where):")
    for name, (value, source) in settings.describe().items():
        print(f"  {name:<24} {value}  [{source}]")
    print(f"Database:  {check_connection()}")
    print(f"Tracking:  {mask_url(configure_tracking())} answers")
    return 0


def _demo(args) -> int:
    started = time.perf_counter()
    summary = run_demo(random_state=args.random_state, n_days=args.days)
    print()
    print("Summary")
    for key, value in summary.items():
        print(f"  {key:<22} {value}")
    print(f"  {'wall time':<22} {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``production`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="production", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="show the configuration and check the database and MLflow")
    demo = sub.add_parser("demo", help="run the end-to-end demo pipeline")
    demo.add_argument("--random-state", type=int, default=RANDOM_STATE)
    demo.add_argument("--days", type=int, default=30, help="days of transactions to simulate")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check()
        return _demo(args)
    except (ConnectionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

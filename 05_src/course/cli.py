"""Command line: ``production check``, ``production demo`` and ``production flows serve``.

``production demo`` runs the course pipeline end to end, as a Prefect flow, on whatever
the configuration points at (the embedded SQLite database and local MLflow store by
default) and prints where everything was written. ``production flows serve`` serves the
pipeline nightly and continuous training daily (needs ``prefect server start``).
"""

from __future__ import annotations

import argparse
import sys
import time

from course.demo import run_demo
from course.flows import PIPELINE_CRON, RETRAIN_CRON, serve_flows
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
    summary = run_demo(
        random_state=args.random_state,
        n_days=args.days,
        refresh=args.refresh,
        verbose=args.verbose,
    )
    print()
    print("Summary")
    for key, value in summary.items():
        print(f"  {key:<22} {value}")
    print(f"  {'wall time':<22} {time.perf_counter() - started:.1f} s")
    return 0


def _serve(args) -> int:
    print(
        f"Serving course-pipeline/nightly ({args.pipeline_cron}) and "
        f"continuous-training/daily ({args.retrain_cron}); Ctrl+C to stop"
    )
    serve_flows(args.pipeline_cron, args.retrain_cron)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``production`` command on ``argv`` (default: ``sys.argv[1:]``); return its code."""
    parser = argparse.ArgumentParser(prog="production", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="show the configuration and check the database and MLflow")
    demo = sub.add_parser("demo", help="run the end-to-end demo pipeline")
    demo.add_argument("--random-state", type=int, default=RANDOM_STATE)
    demo.add_argument("--days", type=int, default=30, help="days of transactions to simulate")
    demo.add_argument("--refresh", action="store_true", help="run every stage, cached or not")
    demo.add_argument("--verbose", action="store_true", help="show Prefect's INFO log lines")
    flows = sub.add_parser("flows", help="Prefect deployments of the pipeline")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    serve = flows_sub.add_parser("serve", help="serve the pipeline and retraining on schedules")
    serve.add_argument("--pipeline-cron", default=PIPELINE_CRON, help="course pipeline (nightly)")
    serve.add_argument("--retrain-cron", default=RETRAIN_CRON, help="continuous training")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check()
        if args.command == "flows":
            return _serve(args)
        return _demo(args)
    except (ConnectionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The pipeline job: raw files -> bronze, silver, gold, rejected report, database.

A run for ``start_date .. end_date`` reads those days' raw files and, if it has landed, the
next day's file for its late rows (a transaction of day ``d`` may land in the file of
``d + 1``). Every row of the range's files ends up in one place, checked by every run::

    raw rows = silver rows + rejected rows + late rows     (per file)

*Late rows* belong to the day before the range: not loaded, listed with their day in
``PipelineReport.late``. One run at a time holds ``.staging/lock`` (killed runs' staging
folders are removed under it). Loading the database and moving the staged files into place
is not atomic: re-run after a crash. The marker ``.staging/unfinished.json`` says a run did
not finish; :func:`run_pipeline` then refuses dates that do not cover it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dask
import locket
import pandas as pd
from dask.diagnostics import ProgressBar

import production.data.lake as lake
import production.data.steps as steps
from production._validation import Instance, OneOf, TableName, as_day, check_param, validate_params
from production.config import get_settings
from production.db import write_table

BACKENDS = ("pandas", "dask")


@dataclass(frozen=True, repr=False)
class PipelineReport:
    """What :func:`run_pipeline` did.

    ``counts`` has, per day, ``raw_rows`` (in its file) = ``silver_rows`` + ``rejected_rows``
    + ``late_rows`` (of that file), and ``gold_rows`` (the day's partition, late arrivals
    from the next file included). ``rejected`` is the rejected-records report, ``late`` the
    late rows not loaded (``date``: their day), ``tables`` the rows loaded per table.
    """

    start_date: pd.Timestamp
    end_date: pd.Timestamp
    backend: str
    counts: pd.DataFrame
    rejected: pd.DataFrame
    late: pd.DataFrame
    tables: dict
    seconds: float

    def total(self, column: str) -> int:
        """Return the sum of one column of :attr:`counts`, e.g. ``total("silver_rows")``."""
        return int(self.counts[column].sum())

    def __repr__(self) -> str:
        n = {c: f"{self.total(c):,}" for c in self.counts.columns}
        days = sorted({f"{d:%Y-%m-%d}" for d in self.late["date"]})
        late = f" (of {days}, not loaded)" if days else ""
        return (
            f"PipelineReport({self.start_date:%Y-%m-%d}..{self.end_date:%Y-%m-%d}, {self.backend}: "
            f"{n['raw_rows']} raw rows = {n['silver_rows']} silver + {n['rejected_rows']} rejected"
            f" + {n['late_rows']} late{late}; {n['gold_rows']} gold; {self.seconds:.1f} s)"
        )


def _ingest(path, bronze_file, ingested_at, customers=None, terminals=None):
    """Read a raw file into bronze (written to ``bronze_file`` if given); validate if asked."""
    bronze = lake.read_raw_transactions(path, ingested_at=ingested_at)
    if bronze_file is not None:
        lake.write_parquet(bronze, bronze_file)
    if customers is None:
        return bronze
    return steps.validate_transactions(bronze, customers=customers, terminals=terminals)


def _write_day(silver: pd.DataFrame, day, customers, terminals, staging: Path) -> dict:
    """Write a day's silver and gold partitions; return the day's silver counts."""
    lake.write_parquet(silver, lake.lake_path("silver", date=day, data_dir=staging))
    lake.write_parquet(
        steps.build_gold(silver, customers, terminals),
        lake.lake_path("gold", date=day, data_dir=staging),
    )
    late_in = int(silver["arrived_late"].sum())
    return {"date": day, "on_time": len(silver) - late_in, "late_in": late_in}


def _build_day(current, following, day, dates, customers, terminals, staging):
    """Dask partition job: build, write and count one day from its file and the next."""
    rows = steps.assemble_day(current, following, day, first=day == dates[0])
    silver, rejected, late = steps.split_checked(steps.deduplicate_transactions(rows), dates)
    summary = _write_day(silver, day, customers, terminals, staging)
    return {**summary, "raw_rows": len(current)}, rejected, late


def _run_pandas(jobs, dates, customers, terminals, staging):
    """Build every day at once with pandas; return (summaries, rejected, late)."""
    bronze = [_ingest(*job) for job in jobs]
    everything = pd.concat(bronze, ignore_index=True)
    checked = steps.validate_transactions(everything, customers=customers, terminals=terminals)
    silver, rejected, late = steps.split_checked(steps.deduplicate_transactions(checked), dates)
    by_day = dict(list(silver.groupby("tx_date")))
    summaries = []
    for day, rows in zip(dates, bronze, strict=False):
        summary = _write_day(by_day.get(day, silver.head(0)), day, customers, terminals, staging)
        summaries.append({**summary, "raw_rows": len(rows)})
    return summaries, rejected, late


def _compute(tasks: list, show_progress: bool) -> list:
    """Compute Dask ``tasks`` on local threads, or on the cluster at DASK_SCHEDULER_ADDRESS."""
    address = get_settings().dask_scheduler_address
    if address is None:
        with ProgressBar(minimum=1.0) if show_progress else contextlib.nullcontext():
            return dask.compute(*tasks, scheduler="threads")
    from distributed import Client, progress  # heavy: only when a cluster is configured

    with Client(address, set_as_default=False, timeout="30s") as client:
        futures = client.compute(tasks)
        if show_progress:
            progress(futures, notebook=False)
        return client.gather(futures)


def _run_dask(jobs, dates, customers, terminals, staging, show_progress):
    """Build the days in parallel with Dask, each from its file and the next."""
    checked = [dask.delayed(_ingest, pure=False)(*job, customers, terminals) for job in jobs]
    checked.append(None)
    build = dask.delayed(_build_day, nout=3, pure=False)
    days = [
        build(checked[i], checked[i + 1], day, dates, customers, terminals, staging)
        for i, day in enumerate(dates)
    ]
    summaries, rejected, late = zip(*_compute(days, show_progress), strict=True)
    return list(summaries), pd.concat(rejected), pd.concat(late)


def _counts(dates, summaries, rejected, late) -> pd.DataFrame:
    """Per-day counts; raise if a raw row is neither silver, rejected nor late."""
    days = pd.DatetimeIndex(dates, name="date")
    s = pd.DataFrame(summaries).set_index("date").reindex(days)
    counts = pd.DataFrame(
        {
            "raw_rows": s["raw_rows"],
            "silver_rows": s["on_time"] + s["late_in"].shift(1, fill_value=0),
            "rejected_rows": rejected.groupby("date").size().reindex(days, fill_value=0),
            "late_rows": (late["date"] + steps.ONE_DAY).value_counts().reindex(days, fill_value=0),
            "gold_rows": s["on_time"] + s["late_in"],
        },
        index=days,
    ).astype("int64")
    lost = counts["raw_rows"] - counts[["silver_rows", "rejected_rows", "late_rows"]].sum(axis=1)
    if lost.any():
        raise RuntimeError(
            f"run_pipeline: raw rows unaccounted for, per day: {lost[lost != 0].to_dict()}"
        )
    return counts


def _check_unfinished(marker: Path, start, end) -> None:
    """Refuse a run that does not cover the dates of an unfinished earlier run."""
    left = json.loads(marker.read_text()) if marker.is_file() else {"start": start, "end": end}
    if not (start <= pd.Timestamp(left["start"]) and pd.Timestamp(left["end"]) <= end):
        raise RuntimeError(
            f"run_pipeline: the run of {left['start']}..{left['end']} did not finish (marker "
            f"{str(marker)!r}): lake and database may mix old and new data for those days. "
            f"Re-run run_pipeline({left['start']!r}, {left['end']!r}) first."
        )


def _publish(staging: Path, root: Path) -> None:
    """Move every staged file into place under ``root`` (each move atomic)."""
    for staged in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = root / staged.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def _load(staging, dates, customers, terminals, engine, prefix: str) -> dict:
    """Upsert the dimensions and replace the transaction partitions of ``dates``."""
    tables, names = {}, {f"{prefix}{t}": t for t in ("customers", "terminals", "transactions")}
    for name, frame in zip(names, (customers, terminals), strict=False):
        key = steps.DIMENSION_KEYS[names[name]]
        tables[name] = write_table(frame, name, mode="upsert", key_cols=key, engine=engine)
    silver = lake.read_lake("silver", start_date=dates[0], end_date=dates[-1], data_dir=staging)
    name, mode = f"{prefix}transactions", "replace_partitions"
    tables[name] = write_table(silver, name, mode=mode, partition_cols="tx_date", engine=engine)
    return tables


def _staged_run(root, staging, dates, backend, show_progress):
    """Build every file of the run under ``staging``; return (counts, rejected, late, dims)."""
    files = [lake.raw_path(day, data_dir=root) for day in dates]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"run_pipeline: no raw file for {len(missing)} day(s): {missing[:3]}. "
            "Land them with export_raw_days."
        )
    dims = [
        lake.read_raw_dimension(lake.raw_path(table=t, data_dir=root), t)
        for t in ("customers", "terminals")
    ]
    for frame, table in zip(dims, ("customers", "terminals"), strict=True):
        lake.write_parquet(frame, lake.lake_path("silver", table, data_dir=staging))
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    jobs = [
        (path, lake.lake_path("bronze", date=day, data_dir=staging), now)
        for day, path in zip(dates, files, strict=True)
    ]
    following = lake.raw_path(dates[-1] + steps.ONE_DAY, data_dir=root)
    jobs += [(following, None, now)] if following.is_file() else []
    if backend == "pandas":
        summaries, rejected, late = _run_pandas(jobs, dates, *dims, staging)
    else:
        summaries, rejected, late = _run_dask(jobs, dates, *dims, staging, show_progress)
    order = ["date", "source_file", "source_row"]
    rejected, late = (f.sort_values(order, ignore_index=True) for f in (rejected, late))
    for day in dates:
        lake.write_atomic(
            lambda tmp, d=day: rejected[rejected["date"] == d].to_csv(
                tmp, index=False, date_format="%Y-%m-%d"
            ),
            lake.rejected_path(day, data_dir=staging),
        )
    return _counts(dates, summaries, rejected, late), rejected, late, dims


@validate_params(backend=OneOf(*BACKENDS), table_prefix=Instance(str), load=Instance(bool))
def run_pipeline(
    start_date,
    end_date,
    *,
    data_dir=None,
    backend: str = "pandas",
    load: bool = True,
    engine=None,
    table_prefix: str = "",
    show_progress: bool = True,
) -> PipelineReport:
    """Run bronze -> silver -> gold for ``start_date .. end_date`` and load the database.

    Writes those days' partitions of bronze, silver, gold and the rejected report, then
    loads ``customers``/``terminals`` (upserted by key) and ``transactions`` (silver,
    ``tx_date`` partitions replaced) through :func:`production.db.write_table`. Idempotent.

    Parameters
    ----------
    start_date, end_date : str or datetime.date
        First and last day, inclusive.
    data_dir : path-like, optional
        Root folder holding ``raw/``; defaults to ``get_settings().data_dir``.
    backend : {"pandas", "dask"}, default="pandas"
        ``"pandas"`` runs each step once on all days; ``"dask"`` day by day in parallel,
        on local threads or on the cluster at ``DASK_SCHEDULER_ADDRESS``.
    load, engine, table_prefix
        Whether to load the database, which (default :func:`production.db.get_engine`),
        and a prefix of the table names (e.g. ``"lab02_"``).
    show_progress : bool, default=True
        Dask only: a progress bar for runs longer than a second.

    Returns
    -------
    PipelineReport
        Counts per day, the rejected and late rows, rows loaded.

    Raises
    ------
    FileNotFoundError, ValueError
        A raw file is missing, unreadable or has a missing or repeated column (named).
    RuntimeError
        Another run holds the lock, or an unfinished run's dates are not covered.
    """
    started, where = time.perf_counter(), "run_pipeline"
    start, end = as_day(start_date, "start_date", where), as_day(end_date, "end_date", where)
    if end < start:
        raise ValueError(
            f"run_pipeline: end_date ({end:%Y-%m-%d}) is before start_date ({start:%Y-%m-%d})."
        )
    if table_prefix:
        check_param(table_prefix, TableName(), "table_prefix", where)
    root, dates = lake.data_root(data_dir), list(pd.date_range(start, end, freq="D"))
    folder = root / ".staging"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = locket.lock_file(str(folder / "lock"), timeout=0)
        lock.acquire()
    except locket.LockError:
        raise RuntimeError(
            f"run_pipeline: another run holds {str(folder / 'lock')!r}; wait for it."
        ) from None
    staging = folder / f"run-{uuid.uuid4().hex[:12]}"
    try:
        for stale in folder.glob("run-*"):  # left by killed runs: nobody else holds the lock
            shutil.rmtree(stale, ignore_errors=True)
        marker = folder / "unfinished.json"
        _check_unfinished(marker, start, end)
        counts, rejected, late, dims = _staged_run(root, staging, dates, backend, show_progress)
        marker.write_text(json.dumps({"start": f"{start:%Y-%m-%d}", "end": f"{end:%Y-%m-%d}"}))
        tables = _load(staging, dates, *dims, engine, table_prefix) if load else {}
        _publish(staging, root)
        marker.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.release()
    seconds = time.perf_counter() - started
    return PipelineReport(start, end, backend, counts, rejected, late, tables, seconds)

"""The pipeline job: raw files -> bronze, silver, gold, rejected report, database.

A run over ``start_date .. end_date`` also reads the next day's file, if landed: a
transaction of day ``d`` may land in the file of ``d + 1``. Each run checks, per file,
``raw rows = silver rows + rejected rows + late rows`` (late rows: of the day before the
range, not loaded, listed in ``PipelineReport.late``). One run at a time holds
``.staging/lock`` and removes killed runs' staging folders. Loading and publishing are not
atomic: until a run covering its dates succeeds, ``.staging/unfinished.json`` stays.
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

import locket
import pandas as pd

import production.data.lake as lake
import production.data.steps as steps
from production._validation import Instance, OneOf, TableName, as_day, check_param, validate_params
from production.config import get_settings
from production.db import write_table


@dataclass(frozen=True, repr=False)
class PipelineReport:
    """What :func:`run_pipeline` did.

    ``counts``: per day, ``raw_rows`` = ``silver_rows`` + ``rejected_rows`` + ``late_rows``
    (of its file) and ``gold_rows`` (its partition); ``rejected``: the rejected-records
    report; ``late``: late rows not loaded (``date``: their day); ``tables``: rows loaded.
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


def _ingest(path, bronze_file, ingested_at, dims=None):
    """Read a raw file into bronze (written to ``bronze_file`` if given); validate if ``dims``."""
    bronze = lake.read_raw_transactions(path, ingested_at=ingested_at)
    if bronze_file is not None:
        lake.write_frame(bronze, bronze_file)
    return bronze if dims is None else steps.validate_transactions(bronze, **dims)


def _write_day(silver: pd.DataFrame, day, dims: dict, staging: Path) -> dict:
    """Write a day's silver and gold partitions; return the day's silver counts."""
    lake.write_frame(silver, lake.lake_path("silver", date=day, data_dir=staging))
    gold = steps.build_gold(silver, **dims)
    lake.write_frame(gold, lake.lake_path("gold", date=day, data_dir=staging))
    late_in = int(silver["arrived_late"].sum())
    return {"date": day, "on_time": len(silver) - late_in, "late_in": late_in}


def _build_day(current, following, day, dates, dims, staging):
    """Dask partition job: build, write and count one day from its file and the next."""
    rows = steps.assemble_day(current, following, day, first=day == dates[0])
    silver, rejected, late = steps.split_checked(steps.deduplicate_transactions(rows), dates)
    return {**_write_day(silver, day, dims, staging), "raw_rows": len(current)}, rejected, late


def _run_pandas(jobs, dates, dims, staging):
    """Build every day at once with pandas; return (summaries, rejected, late)."""
    bronze = [_ingest(*job) for job in jobs]
    checked = steps.validate_transactions(pd.concat(bronze, ignore_index=True), **dims)
    silver, rejected, late = steps.split_checked(steps.deduplicate_transactions(checked), dates)
    by_day = dict(list(silver.groupby("tx_date")))
    summaries = [
        {**_write_day(by_day.get(day, silver.head(0)), day, dims, staging), "raw_rows": len(rows)}
        for day, rows in zip(dates, bronze, strict=False)
    ]
    return summaries, rejected, late


def _compute(tasks: list, show_progress: bool) -> list:
    """Compute Dask ``tasks`` on local threads, or on the cluster at DASK_SCHEDULER_ADDRESS."""
    import dask  # only the Dask backend pays its import (0.1-0.2 s)
    from dask.diagnostics import ProgressBar

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


def _run_dask(jobs, dates, dims, staging, show_progress):
    """Build the days in parallel with Dask, each from its file and the next."""
    import dask

    checked = [dask.delayed(_ingest, pure=False)(*job, dims) for job in jobs] + [None]
    build = dask.delayed(_build_day, nout=3, pure=False)
    days = [
        build(checked[i], checked[i + 1], day, dates, dims, staging) for i, day in enumerate(dates)
    ]
    summaries, rejected, late = zip(*_compute(days, show_progress), strict=True)
    rejected, late = (pd.concat(frames, ignore_index=True) for frames in (rejected, late))
    return list(summaries), rejected, late


def _counts(dates, summaries, rejected, late) -> pd.DataFrame:
    """Per-day counts; raise if a raw row is neither silver, rejected nor late."""
    days = pd.DatetimeIndex(dates, name="date")
    s = pd.DataFrame(summaries).set_index("date").reindex(days)
    counts = s[["raw_rows"]].assign(
        silver_rows=s["on_time"] + s["late_in"].shift(1, fill_value=0),
        rejected_rows=rejected.groupby("date").size(),
        late_rows=(late["date"] + steps.ONE_DAY).value_counts(),
        gold_rows=s["on_time"] + s["late_in"],
    )
    counts = counts.fillna(0).astype("int64")
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


def _load(staging, dates, dims, engine, prefix: str) -> dict:
    """Upsert the dimensions and replace the transaction partitions of ``dates``."""
    tables = {}
    for table, frame in dims.items():
        name, key = prefix + table, steps.DIMENSION_KEYS[table]
        tables[name] = write_table(frame, name, mode="upsert", key_cols=key, engine=engine)
    silver = lake.read_lake("silver", start_date=dates[0], end_date=dates[-1], data_dir=staging)
    name, mode = prefix + "transactions", "replace_partitions"
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
    dims = {}
    for table in ("customers", "terminals"):
        dims[table] = lake.read_raw_dimension(lake.raw_path(table=table, data_dir=root), table)
        lake.write_frame(dims[table], lake.lake_path("silver", table, data_dir=staging))
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    jobs = [
        (path, lake.lake_path("bronze", date=day, data_dir=staging), now)
        for day, path in zip(dates, files, strict=True)
    ]
    following = lake.raw_path(dates[-1] + steps.ONE_DAY, data_dir=root)
    jobs += [(following, None, now)] if following.is_file() else []
    if backend == "pandas":
        summaries, rejected, late = _run_pandas(jobs, dates, dims, staging)
    else:
        summaries, rejected, late = _run_dask(jobs, dates, dims, staging, show_progress)
    for day in dates:
        path = lake.rejected_path(day, data_dir=staging)
        lake.write_frame(rejected[rejected["date"] == day], path, date_format="%Y-%m-%d")
    return _counts(dates, summaries, rejected, late), rejected, late, dims


@validate_params(backend=OneOf("pandas", "dask"), table_prefix=Instance(str), load=Instance(bool))
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

    Idempotent: rewrites those days' lake partitions and rejected report, upserts
    ``customers``/``terminals`` and replaces the ``tx_date`` partitions of ``transactions``.

    Parameters
    ----------
    start_date, end_date : str or datetime.date
        First and last day, inclusive.
    data_dir : path-like, optional
        Root folder holding ``raw/``; defaults to ``get_settings().data_dir``.
    backend : {"pandas", "dask"}, default="pandas"
        All days at once, or day by day in parallel (local threads, or the cluster at
        ``DASK_SCHEDULER_ADDRESS``).
    load, engine, table_prefix
        Whether to load the database, which one (default :func:`production.db.get_engine`),
        and a prefix of the table names (e.g. ``"lab02_"``).
    show_progress : bool, default=True
        Dask only: a progress bar for runs longer than a second.

    Returns
    -------
    PipelineReport

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
        tables = _load(staging, dates, dims, engine, table_prefix) if load else {}
        _publish(staging, root)
        marker.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.release()
    seconds = time.perf_counter() - started
    return PipelineReport(start, end, backend, counts, rejected, late, tables, seconds)

"""The Dask backend of :func:`production.data.run_pipeline`: the same steps, day by day.

Each raw file is one partition, read lazily (:func:`dask.dataframe.from_map`). The
*same* pandas functions as the pandas backend run on every partition through
``map_partitions``: :func:`~production.data.validate_transactions` per file, then,
per day, :func:`~production.data.deduplicate_transactions` on the day's file plus the
late rows of the next file, silver selection, :func:`~production.data.build_gold` and
the writes. Only one or two days are in memory per worker thread, so the range can be
larger than memory, and the days run in parallel.

Runs on the local threaded scheduler, or on the cluster at ``DASK_SCHEDULER_ADDRESS``
(``get_settings().dask_scheduler_address``) through :class:`distributed.Client`.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import pandas as pd

from production.config import get_settings
from production.data import (
    _BRONZE_DTYPES,
    _CHECKED_DTYPES,
    _GOLD_DTYPES,
    _REJECTED_DTYPES,
    _SILVER_DTYPES,
    _SUMMARY_DTYPES,
    _empty,
    _ingest,
    _select_rejected,
    _select_silver,
    _summary,
    _write_layer,
    build_gold,
    deduplicate_transactions,
    lake_path,
    validate_transactions,
)

__all__ = ["run_layers_dask"]


def _assemble_day(current: pd.DataFrame, following: pd.DataFrame, day) -> pd.DataFrame:
    """Return the checked rows of ``day``'s file plus the next file's late rows, deduplicated."""
    late = following[(following["tx_date"] == day) & following["reject_reason"].isna()]
    return deduplicate_transactions(pd.concat([current, late], ignore_index=True))


def _silver_part(day_rows: pd.DataFrame, dates, partition_info=None) -> pd.DataFrame:
    """Return the silver rows of the partition's day."""
    return _select_silver(day_rows, [dates[partition_info["number"]]])


def _rejected_part(day_rows: pd.DataFrame, dates, partition_info=None) -> pd.DataFrame:
    """Return the rejected-records report of the partition's day."""
    return _select_rejected(day_rows, [dates[partition_info["number"]]])


def _raw_rows_part(day_rows: pd.DataFrame, dates, partition_info=None) -> pd.DataFrame:
    """Return how many rows the partition's day file held."""
    day = dates[partition_info["number"]]
    return _summary("bronze", day, int((day_rows["file_date"] == day).sum()))


def _write_part(frame: pd.DataFrame, layer: str, root, dates, partition_info=None):
    """Write the partition's day of ``layer`` under ``root``; return its summary."""
    return _write_layer(frame, layer, root, dates[partition_info["number"]])


def _compute(collections: list, show_progress: bool):
    """Compute ``collections`` together, locally or on the configured cluster."""
    address = get_settings().dask_scheduler_address
    if address is None:
        if not show_progress:
            return dask.compute(*collections, scheduler="threads")
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0):
            return dask.compute(*collections, scheduler="threads")
    from distributed import Client, progress

    with Client(address, set_as_default=False, timeout="30s") as client:
        futures = client.compute(collections)
        if show_progress:
            progress(futures, notebook=False, scheduler=client.scheduler.address)
        return client.gather(futures)


def run_layers_dask(
    files, following, dates, customers, terminals, staging, ingested_at, *, show_progress=True
):
    """Build bronze, silver and gold for ``dates`` with Dask, writing under ``staging``.

    Parameters
    ----------
    files : list of pathlib.Path
        The raw file of each day of ``dates``.
    following : pathlib.Path or None
        The raw file of the day after the range, for its late rows.
    dates : list of pandas.Timestamp
        The days to build.
    customers, terminals : pandas.DataFrame
        Validated dimensions.
    staging : pathlib.Path
        Root the partitions are written under (same layout as ``data_dir``).
    ingested_at : pandas.Timestamp
        Ingestion time recorded in bronze.
    show_progress : bool, default=True
        Show a progress bar (local runs longer than a second, or on the cluster).

    Returns
    -------
    rejected : pandas.DataFrame
        The rejected-records report of ``dates``.
    summaries : pandas.DataFrame
        Rows written per layer and day (``layer``, ``date``, ``rows``, ``late``).
    """
    paths = [*files, following] if following is not None else list(files)
    bronze_files = [lake_path("bronze", date=day, data_dir=staging) for day in dates]
    bronze = dd.from_map(
        _ingest,
        paths,
        bronze_files + [None] * (len(paths) - len(files)),
        ingested_at=ingested_at,
        meta=_empty(_BRONZE_DTYPES),
        label="ingest-bronze",
        enforce_metadata=False,
    )
    customers_, terminals_ = dask.delayed(customers), dask.delayed(terminals)
    checked = bronze.map_partitions(
        validate_transactions,
        customers=customers_,
        terminals=terminals_,
        meta=_empty(_CHECKED_DTYPES),
    )
    # day d needs the file of d and the late rows of the file of d + 1: pair the partitions
    parts = checked.to_delayed()
    no_rows = _empty(_CHECKED_DTYPES)
    days = dd.from_delayed(
        [
            dask.delayed(_assemble_day)(
                parts[i], parts[i + 1] if i + 1 < len(parts) else no_rows, day
            )
            for i, day in enumerate(dates)
        ],
        meta=no_rows,
        verify_meta=False,
    )
    silver = days.map_partitions(_silver_part, dates, meta=_empty(_SILVER_DTYPES))
    gold = silver.map_partitions(build_gold, customers_, terminals_, meta=_empty(_GOLD_DTYPES))
    rejected = days.map_partitions(_rejected_part, dates, meta=_empty(_REJECTED_DTYPES))
    summary = _empty(_SUMMARY_DTYPES)
    written = [
        days.map_partitions(_raw_rows_part, dates, meta=summary),
        silver.map_partitions(_write_part, "silver", staging, dates, meta=summary),
        gold.map_partitions(_write_part, "gold", staging, dates, meta=summary),
    ]
    raw_rows, silver_rows, gold_rows, report = _compute([*written, rejected], show_progress)
    summaries = pd.concat([raw_rows, silver_rows, gold_rows], ignore_index=True)
    return report.reset_index(drop=True), summaries

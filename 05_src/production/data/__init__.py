"""Data engineering: raw files -> bronze -> silver -> gold -> database.

``steps`` (pure), ``lake`` (files), ``exports`` (the source), ``pipeline`` (the job).
"""

from production.data.exports import DIRTY_KINDS, RawExport, export_raw_days
from production.data.lake import lake_path, raw_path, read_lake, read_raw_transactions
from production.data.pipeline import PipelineReport, run_pipeline
from production.data.steps import (
    REJECTED_COLUMNS,
    SILVER_TRANSACTIONS_SCHEMA,
    build_gold,
    deduplicate_transactions,
    split_checked,
    validate_transactions,
)

__all__ = [
    "DIRTY_KINDS",
    "REJECTED_COLUMNS",
    "SILVER_TRANSACTIONS_SCHEMA",
    "PipelineReport",
    "RawExport",
    "build_gold",
    "deduplicate_transactions",
    "export_raw_days",
    "lake_path",
    "raw_path",
    "read_lake",
    "read_raw_transactions",
    "run_pipeline",
    "split_checked",
    "validate_transactions",
]

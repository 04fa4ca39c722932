#!/usr/bin/env bash
# The main job: set up, then run the end-to-end demo, a Prefect flow, on the embedded defaults
# (SQLite + local MLflow store + a temporary Prefect server; no service needed). Run again, the
# unchanged stages are skipped (cached). Extra arguments go to `production demo`
# (--days N, --refresh, --verbose). To watch the run in the Prefect UI, start
# `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec "${UV[@]}" run --frozen --no-sync production demo "$@"

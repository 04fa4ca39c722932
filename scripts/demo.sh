#!/usr/bin/env bash
# The main job: set up, then run the end-to-end demo on the embedded defaults
# (SQLite + local MLflow store; no service needed). Extra arguments go to `production demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec "${UV[@]}" run --frozen --no-sync production demo "$@"

#!/usr/bin/env bash
# Set up, then open JupyterLab on the course notebooks (the package is importable in every kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
extra=()
if [ "$(id -u 2>/dev/null || echo 1)" = 0 ]; then extra+=(--allow-root); fi
exec "${UV[@]}" run --frozen --no-sync jupyter lab "${extra[@]}" "$@"

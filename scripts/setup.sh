#!/usr/bin/env bash
# Set up the project on a fresh machine: uv (installed with pip if missing) and the locked
# environment in .venv, with the `production` package installed editable.
# Sourced by demo.sh, test.sh and lab.sh; safe to run again (it only syncs what changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in python3.11 python3 python py; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: Python >= 3.11 not found on PATH (install it from python.org, then re-run)" >&2
  return 1
}

if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  PYTHON=$(find_python)
  if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
    echo "setup: installing uv with pip" >&2
    "$PYTHON" -m pip install --quiet --user uv 2>/dev/null || "$PYTHON" -m pip install --quiet uv
  fi
  UV=("$PYTHON" -m uv)
fi
export UV_COMPILE_BYTECODE=1   # PYTHONDONTWRITEBYTECODE machines otherwise recompile every import
"${UV[@]}" sync --frozen --quiet

#!/usr/bin/env bash
# Set up the project on a fresh machine: uv (installed with pip if missing) and the locked
# environment in .venv, with the `production` package installed editable.
# Sourced by demo.sh, test.sh and lab.sh; safe to run again (it only syncs what changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  # The first Python >= 3.11 on PATH that has uv or pip (an activated venv may have neither),
  # else the first Python >= 3.11.
  local candidate fallback=""
  while IFS= read -r candidate; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      if "$candidate" -m uv --version >/dev/null 2>&1 || "$candidate" -m pip --version >/dev/null 2>&1; then
        echo "$candidate"; return 0
      fi
      fallback=${fallback:-$candidate}
    fi
  done < <(type -ap python3.11 python3 python py 2>/dev/null)
  if [ -n "$fallback" ]; then echo "$fallback"; return 0; fi
  echo "setup: Python >= 3.11 not found on PATH (install it from python.org, then re-run)" >&2
  return 1
}

if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  PYTHON=$(find_python)
  if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
    echo "setup: installing uv with pip" >&2
    "$PYTHON" -m pip --version >/dev/null 2>&1 || "$PYTHON" -m ensurepip --upgrade >/dev/null
    "$PYTHON" -m pip install --quiet --user uv 2>/dev/null || "$PYTHON" -m pip install --quiet uv
  fi
  UV=("$PYTHON" -m uv)
fi
export UV_COMPILE_BYTECODE=1   # PYTHONDONTWRITEBYTECODE machines otherwise recompile every import
"${UV[@]}" sync --frozen --quiet

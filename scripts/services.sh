#!/usr/bin/env bash
# Start, stop or check the course services natively (no Docker): a throwaway PostgreSQL
# on 127.0.0.1, an MLflow tracking server backed by it, and a Prefect server (API + UI) for
# the flows. Used by the test command and CI; learners with Docker use `docker compose up -d`
# instead (see SETUP.md).
#
#   bash scripts/services.sh start    # prints the file with DATABASE_URL / MLFLOW_TRACKING_URI
#                                     # / PREFECT_API_URL
#   bash scripts/services.sh status
#   bash scripts/services.sh stop     # stops them and deletes the throwaway data
#
# Settings (environment): PRODUCTION_SERVICES_DIR (default /tmp/production-services-$UID),
# PG_PORT (55432), MLFLOW_PORT (55000), PREFECT_PORT (54200).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${PRODUCTION_SERVICES_DIR:-/tmp/production-services-$(id -u)}
pg_port=${PG_PORT:-55432}
mlflow_port=${MLFLOW_PORT:-55000}
prefect_port=${PREFECT_PORT:-54200}
env_file="$state/services.env"

log() { printf '[services] %s\n' "$*" >&2; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$dir" ] && command -v pg_ctl >/dev/null 2>&1; then dir=$(dirname "$(command -v pg_ctl)"); fi
  if [ -z "$dir" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "PostgreSQL not found: installing Debian's postgresql package"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    else
      log "PostgreSQL is not installed. Install it (e.g. 'sudo apt-get install postgresql') or use 'docker compose up -d'."
      exit 1
    fi
  fi
  printf '%s\n' "$dir"
}

# Run a command as the PostgreSQL owner: initdb refuses to run as root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

venv_exe() {  # venv_exe NAME: the project's .venv/bin/NAME, else NAME on the PATH
  if [ -x "$root/.venv/bin/$1" ]; then printf '%s\n' "$root/.venv/bin/$1"; else command -v "$1"; fi
}

answers() {  # answers URL: true if an HTTP GET of URL succeeds within 2 s
  python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then log "$what did not come up within ${limit}s"; return 1; fi
    sleep 0.5
  done
  log "$what is up after $((SECONDS - start))s"
}

start() {
  if [ -f "$env_file" ] && status >/dev/null 2>&1; then
    log "already running"; printf '%s\n' "$env_file"; return 0
  fi
  stop >/dev/null 2>&1 || true
  local bin; bin=$(pg_bin)
  mkdir -p "$state"
  chmod 755 "$state"
  trap 'stop >/dev/null 2>&1 || true' EXIT  # a failed start leaves nothing running
  # Prefect first (it needs nothing else and is the slowest to start): API + UI, its own
  # home (SQLite database) in the state folder, offline. Its services stay on: without
  # them task runs are not recorded (the UI shows none)
  mkdir -p "$state/prefect"
  PREFECT_HOME="$state/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false \
    setsid env -u PREFECT_API_URL "$(venv_exe prefect)" server start --host 127.0.0.1 \
    --port "$prefect_port" \
    >"$state/prefect.log" 2>&1 </dev/null &
  echo $! >"$state/prefect.pid"
  local password; password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  local pgdata="$state/pgdata"
  mkdir -p "$pgdata" "$state/mlartifacts"
  if [ "$(id -u)" = 0 ]; then chown postgres "$pgdata"; fi
  as_pg "$bin/initdb" -D "$pgdata" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata -c fsync=off" start >/dev/null \
    || { cat "$pgdata/server.log" >&2; exit 1; }
  as_pg "$bin/psql" -h "$pgdata" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -q -d postgres <<SQL
CREATE ROLE course LOGIN PASSWORD '$password';
CREATE DATABASE course OWNER course;
CREATE DATABASE mlflow OWNER course;
SQL
  local db_base="postgresql+psycopg2://course:$password@127.0.0.1:$pg_port"
  (umask 077; cat >"$env_file" <<ENV
DATABASE_URL=$db_base/course
MLFLOW_TRACKING_URI=http://127.0.0.1:$mlflow_port
PREFECT_API_URL=http://127.0.0.1:$prefect_port/api
ENV
  )
  log "PostgreSQL on 127.0.0.1:$pg_port (databases course, mlflow)"
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_BACKEND_STORE_URI="$db_base/mlflow" setsid "$(venv_exe mlflow)" server \
    --serve-artifacts --artifacts-destination "$state/mlartifacts" \
    --host 127.0.0.1 --port "$mlflow_port" --workers 1 \
    >"$state/mlflow.log" 2>&1 </dev/null &
  echo $! >"$state/mlflow.pid"
  wait_for 90 "MLflow server on 127.0.0.1:$mlflow_port" answers "http://127.0.0.1:$mlflow_port/health" \
    || { tail -n 30 "$state/mlflow.log" >&2; exit 1; }
  wait_for 120 "Prefect server on 127.0.0.1:$prefect_port" answers "http://127.0.0.1:$prefect_port/api/health" \
    || { tail -n 30 "$state/prefect.log" >&2; exit 1; }
  trap - EXIT
  printf '%s\n' "$env_file"
}

stop_server() {  # stop_server NAME: stop the process group in $state/NAME.pid
  local pid; pid=$(cat "$state/$1.pid")
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 -- "-$pid" 2>/dev/null || true
  rm -f "$state/$1.pid"
}

stop() {
  if [ -f "$state/mlflow.pid" ]; then stop_server mlflow; log "MLflow server stopped"; fi
  if [ -f "$state/prefect.pid" ]; then stop_server prefect; log "Prefect server stopped"; fi
  if [ -f "$state/pgdata/postmaster.pid" ]; then
    local bin; bin=$(pg_bin)
    as_pg "$bin/pg_ctl" -D "$state/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    log "PostgreSQL stopped"
  fi
  rm -rf "$state"
}

status() {
  local ok=0
  if [ -f "$state/pgdata/postmaster.pid" ] && kill -0 "$(head -n 1 "$state/pgdata/postmaster.pid")" 2>/dev/null; then
    echo "postgresql: running on 127.0.0.1:$pg_port"
  else echo "postgresql: stopped"; ok=1; fi
  if answers "http://127.0.0.1:$mlflow_port/health" 2>/dev/null; then
    echo "mlflow: running on http://127.0.0.1:$mlflow_port"
  else echo "mlflow: stopped"; ok=1; fi
  if answers "http://127.0.0.1:$prefect_port/api/health" 2>/dev/null; then
    echo "prefect: running on http://127.0.0.1:$prefect_port (UI), API /api"
  else echo "prefect: stopped"; ok=1; fi
  return $ok
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: bash scripts/services.sh start|stop|status" >&2; exit 2 ;;
esac

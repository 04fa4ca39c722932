#!/bin/sh
# Entrypoint of the API image (deploy/Dockerfile). `serve` (the default command) starts the
# scoring API; anything else is run as given (the Kubernetes Job and CronJob use this).
#
# Exits non-zero whenever the API cannot serve: `set -eu` stops at the first failing step,
# and `exec` hands PID 1 to uvicorn, whose exit code (3 when the app fails to start) is the
# container's, so restart policies and `docker compose up --wait` see the failure.
set -eu

if [ "${1:-serve}" != serve ]; then
  exec "$@"
fi

workers=${WEB_CONCURRENCY:-1}
case $workers in
  '' | *[!0-9]* | 0) echo "entrypoint: WEB_CONCURRENCY must be a positive integer, got '$workers'" >&2; exit 2 ;;
esac

# Workers add up their Prometheus metrics in this folder: a restarted container must not
# count its previous life.
metrics_dir=${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}
rm -rf "$metrics_dir"
mkdir -p "$metrics_dir"

if [ "$workers" -gt 1 ]; then
  # With several workers uvicorn's supervisor exits 0 when they die, and each worker would
  # migrate a new local MLflow store at once. So check the settings and create the store
  # here, once, before they fork: a failure stops the container with this step's code.
  python - <<'PY'
from course.api import create_app
from production.config import get_settings
from production.tracking import configure_tracking

create_app()  # validates the settings (MODEL_RELOAD_INTERVAL_S, ...)
if not get_settings().mlflow_tracking_uri.startswith(("http://", "https://")):
    import mlflow  # only a local store needs creating (and migrating) before the fork

    configure_tracking()
    mlflow.MlflowClient().search_experiments(max_results=1)
PY
fi

# TcpNoDelayH11Protocol: with several workers, plain uvicorn leaves Nagle's algorithm on
# (+40 ms per response); the request log comes from the app, so uvicorn's is off.
exec uvicorn course.api:create_app --factory --host 0.0.0.0 --port "${PORT:-8000}" \
  --workers "$workers" --http course.api:TcpNoDelayH11Protocol --no-access-log

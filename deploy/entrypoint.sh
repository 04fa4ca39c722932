#!/bin/sh
# Entrypoint of the API image (deploy/Dockerfile). `serve` (the default command) starts the
# scoring API; `smoke` checks what the image pruned (its build runs it); anything else is
# run as given (the Kubernetes Job and CronJob use this).
#
# Exits non-zero whenever the API cannot serve: `set -eu` stops at the first failing step,
# and `exec` hands PID 1 to uvicorn, whose exit code (3 when the app fails to start) is the
# container's, so restart policies and `docker compose up --wait` see the failure.
set -eu

if [ "${1:-serve}" = smoke ]; then
  # What deploy/Dockerfile pruned must not be missed: run the code paths of the service,
  # the Job and the CronJob that need no model store (the build fails if one breaks).
  # a fresh local store: never the configured database or MLflow server
  PRODUCTION_HOME=$(mktemp -d)
  export PRODUCTION_HOME PRODUCTION_DATA_DIR="$PRODUCTION_HOME/data" DATABASE_URL= MLFLOW_TRACKING_URI=
  cd "$PRODUCTION_HOME"  # MLflow's default artifact root is ./mlruns: the root may be read-only
  exec python - <<'PY'
import io

import mlflow
import numpy as np
import onnxruntime
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
import uvicorn.lifespan.on, uvicorn.loops.auto, uvicorn.protocols.http.httptools_impl  # noqa: E401
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import course.api
from production.monitoring import drift_report
from production.serving import ServingModel
from production.tracking import configure_tracking

# production.db's COPY buffer for PostgreSQL (pyarrow's CSV writer) and the driver
frame = pd.DataFrame({"n": [1, None], "s": ["x", None], "t": pd.to_datetime(["2026-01-01", None])})
buffer = io.BytesIO()
options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer, options)
assert buffer.getvalue().startswith(b'"1","x"'), buffer.getvalue()
sa.create_engine("postgresql+psycopg2://smoke@127.0.0.1/smoke").dialect.dbapi.connect
assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
# the scikit-learn backend, the drift tests (scipy.stats) and a local MLflow store
rng = np.random.default_rng(0)
X = pd.DataFrame({"amount": rng.gamma(2, 30, 200), "channel": rng.choice(["pos", "web"], 200)})
y = (X["amount"] > 80).astype(int)
encode = make_column_transformer((OrdinalEncoder(), ["channel"]), remainder="passthrough")
model = ServingModel(make_pipeline(encode, HistGradientBoostingClassifier(max_iter=5)).fit(X, y))
assert model.score_frame(X).shape == (200,)
report = drift_report(X.iloc[:100], X.iloc[100:], numeric_cols=["amount"], categorical_cols=["channel"])
assert len(report) == 2, report
configure_tracking()
with mlflow.start_run(experiment_id=mlflow.create_experiment("smoke")):
    mlflow.log_metrics({"psi": float(report["psi"].max())})
    mlflow.log_dict({"ok": True}, "smoke.json")
course.api.create_app
print("smoke: ok")
PY
fi

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

# TcpNoDelayHttpToolsProtocol (the C parser): with several workers, plain uvicorn leaves Nagle's algorithm on
# (+40 ms per response); the request log comes from the app, so uvicorn's is off.
exec uvicorn course.api:create_app --factory --host 0.0.0.0 --port "${PORT:-8000}" \
  --workers "$workers" --http course.api:TcpNoDelayHttpToolsProtocol --no-access-log

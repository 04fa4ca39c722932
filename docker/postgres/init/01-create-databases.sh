#!/usr/bin/env bash
# Runs once, when the pgdata volume is first created: the course database is POSTGRES_DB;
# MLflow gets a database of its own.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE DATABASE mlflow OWNER "$POSTGRES_USER";
SQL

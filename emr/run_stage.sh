#!/bin/bash
# One pipeline stage on the EMR primary node; every EMR step calls it through command-runner.jar:
#   run-stage [--blocked-ok] <stage> [--date YYYY-MM-DD]   ->   python -m spark_jobs <stage> ...
# Settings are the NLP_* variables in conf/nlp.env, written by spark_jobs/emr_launcher.py.
# The MLflow registry (SQLite + artifacts) and the reports outlive the cluster in S3: they are
# copied down before the stage and up after the stages that write them.
set -euo pipefail
APP="${NLP_BATCH_HOME:-/opt/nlp-batch}"   # overridable for tests
blocked_ok=false
if [ "${1:-}" = "--blocked-ok" ]; then blocked_ok=true; shift; fi
stage="${1:?usage: run-stage [--blocked-ok] <stage> [--date YYYY-MM-DD]}"

set -a; . "$APP/conf/nlp.env"; set +a
export SPARK_HOME="${SPARK_HOME:-/usr/lib/spark}"
export PYTHONPATH="$SPARK_HOME/python:$(ls "$SPARK_HOME"/python/lib/py4j-*-src.zip)"
mkdir -p "$EMR_WORK_DIR/mlflow" "$NLP_REPORTS_DIR"
aws s3 sync --only-show-errors "$EMR_MLFLOW_S3" "$EMR_WORK_DIR/mlflow"
cd "$APP"

if [ "$stage" = dbt ]; then
  # The lake's Glue tables (CREATE ... IF NOT EXISTS, partition projection): dbt's sources on Athena.
  "$APP/venv/bin/dbt" run-operation lake_glue_ddl --args '{apply: true}' --target athena \
    --project-dir "$NLP_DBT_PROJECT_DIR" --profiles-dir "$NLP_DBT_PROJECT_DIR"
fi

set +e
"$APP/venv/bin/python" -m spark_jobs "$@"
rc=$?
set -e

case "$stage" in
  train)  aws s3 sync --only-show-errors "$EMR_WORK_DIR/mlflow" "$EMR_MLFLOW_S3" ;;
  report) aws s3 sync --only-show-errors "$NLP_REPORTS_DIR" "$EMR_REPORTS_S3" ;;
esac

# Exit 3 = batch blocked by a critical expectation. Under the state machine that is a decision, not a
# failure to retry: its QualityGate state reads the ingest run record and stops the run itself.
if [ "$blocked_ok" = true ] && [ "$stage" = ingest ] && [ "$rc" -eq 3 ]; then
  echo "ingest: batch blocked by the quality gate (exit 3); the state machine stops the run"
  exit 0
fi
exit "$rc"

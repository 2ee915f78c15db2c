#!/bin/bash
# One pipeline stage on the EMR primary node; every EMR step calls it through command-runner.jar:
#   run-stage [--outcomes s3://<bucket>/outcomes/<execution>/] <stage> [--date YYYY-MM-DD]
# Settings are the NLP_* variables in conf/nlp.env, written by the launcher (emr/nlp_emr). The MLflow
# registry is the stack's PostgreSQL: its URI is built here from the Secrets Manager secret, and lives
# only in this process's environment. Reports are copied to S3 after the report stage.
set -euo pipefail
APP="${NLP_BATCH_HOME:-/opt/nlp-batch}"   # overridable for tests
outcomes=""
if [ "${1:-}" = "--outcomes" ]; then outcomes="${2:?--outcomes needs an s3:// prefix}"; shift 2; fi
stage="${1:?usage: run-stage [--outcomes s3://...] <stage> [--date YYYY-MM-DD]}"

set -a; . "$APP/conf/nlp.env"; set +a
export SPARK_HOME="${SPARK_HOME:-/usr/lib/spark}"
export PYTHONPATH="$SPARK_HOME/python:$(ls "$SPARK_HOME"/python/lib/py4j-*-src.zip)"
NLP_MLFLOW_TRACKING_URI="$("$APP/venv/bin/python" "$APP/emr/mlflow_uri.py")"
export NLP_MLFLOW_TRACKING_URI
mkdir -p "$NLP_REPORTS_DIR"
cd "$APP"

# The lake's tables are Iceberg tables in the Glue Data Catalog, registered by the jobs' own commits:
# dbt's sources on Athena need no DDL step.
set +e
"$APP/venv/bin/python" -m spark_jobs "$@"
rc=$?
set -e

if [ "$stage" = report ]; then
  aws s3 sync --only-show-errors "$NLP_REPORTS_DIR" "$EMR_REPORTS_S3"
fi

# Exit 3 (ingest: batch blocked by a critical expectation) and 9 (report: a critical alert, the report
# is published) are decisions, not failures to retry. Under the state machine (--outcomes) the step
# completes and leaves an empty marker <stage>-exit-<code>, which the pipeline's gate reads by name.
decision=false
case "$stage:$rc" in ingest:3|report:9) decision=true ;; esac
if [ -n "$outcomes" ] && [ "$decision" = true ]; then
  marker="${outcomes%/}/$stage-exit-$rc"
  bucket="${marker#s3://}"; key="${bucket#*/}"; bucket="${bucket%%/*}"
  aws s3api put-object --bucket "$bucket" --key "$key" >/dev/null
  echo "$stage: exit $rc is a decision, not a failure; marked $marker for the state machine"
  exit 0
fi
exit "$rc"

#!/bin/bash
# EMR bootstrap action: runs on every node, as hadoop, before Spark starts.
#   bootstrap.sh s3://<bucket>/artifacts/<version> s3://<bucket>/models
# Installs this project's wheel and pinned dependencies into a Python 3.11 virtualenv, and its files
# (conf/, expectations/, notebooks/, dbt/, the embedding model) under /opt/nlp-batch.
set -euxo pipefail
ARTIFACTS="$1"
MODELS="$2"
APP=/opt/nlp-batch

sudo dnf install -y -q python3.11 python3.11-devel gcc
sudo mkdir -p "$APP" /mnt/nlp-batch
sudo chown -R hadoop:hadoop "$APP" /mnt/nlp-batch

aws s3 cp --recursive --only-show-errors "$ARTIFACTS/" "$APP/"
aws s3 cp --recursive --only-show-errors "$MODELS/" "$APP/models/"

# EMR ships its own Spark (pyspark, py4j): run_stage.sh puts it on PYTHONPATH, PyPI's would shadow it.
python3.11 -m venv "$APP/venv"
grep -v -E '^(pyspark|py4j)==' "$APP/requirements.lock" > "$APP/requirements-emr.txt"
"$APP/venv/bin/pip" install --quiet -r "$APP/requirements-emr.txt"
"$APP/venv/bin/pip" install --quiet --no-deps "$APP"/dist/*.whl

mkdir -p "$APP/bin"
install -m 0755 "$APP/emr/run_stage.sh" "$APP/bin/run-stage"

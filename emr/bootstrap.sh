#!/bin/bash
# EMR bootstrap action: runs on every node, as hadoop, before Spark starts.
#   bootstrap.sh <artifacts uri> <wheelhouse uri> <cpu jars uri> <executor jars uri> <models uri> <cpu|gpu>
# Everything comes from the project bucket (prepared by `make deploy` / `make run TARGET=emr`): the
# pinned wheels, installed with --require-hashes and --no-index, and the jar tree of jars/pom.xml. The
# nodes need no internet: S3 (and the Amazon Linux repositories, which are in S3) through a gateway
# endpoint is enough. The primary node (the driver) takes the CPU jars; core nodes take the profile's
# (GPU) jars and, in the gpu profile, the CUDA 12 / cuDNN 9 runtime wheels ONNX Runtime's CUDA provider
# links against (spark-defaults points the executors' LD_LIBRARY_PATH at them).
set -euxo pipefail
ARTIFACTS="$1"
WHEELHOUSE="$2"
CPU_JARS="$3"
EXECUTOR_JARS="$4"
MODELS="$5"
FLAVOUR="$6"
APP="${NLP_BATCH_HOME:-/opt/nlp-batch}"            # overridable for tests
INFO="${EMR_INSTANCE_INFO:-/mnt/var/lib/info/instance.json}"

sudo dnf install -y -q python3.11
sudo mkdir -p "$APP" /mnt/nlp-batch
sudo chown -R "$(id -un):$(id -gn)" "$APP" /mnt/nlp-batch

aws s3 cp --recursive --only-show-errors "$ARTIFACTS/" "$APP/"
aws s3 cp --recursive --only-show-errors "$WHEELHOUSE/" "$APP/wheelhouse/"
aws s3 cp --recursive --only-show-errors "$MODELS/" "$APP/models/"
if grep -q '"isMaster": *true' "$INFO"; then role=primary; jars="$CPU_JARS"; else role=core; jars="$EXECUTOR_JARS"; fi
aws s3 cp --recursive --only-show-errors --exclude .complete "$jars/" "$APP/jars/"

# EMR ships its own Spark (pyspark, py4j): the runtime lock leaves them out; run_stage.sh puts EMR's on PYTHONPATH.
python3.11 -m venv "$APP/venv"
pip=("$APP/venv/bin/pip" install --quiet --no-index --find-links "$APP/wheelhouse" --require-hashes)
"${pip[@]}" -r "$APP/emr/requirements-runtime.lock"
if [ "$FLAVOUR" = gpu ] && [ "$role" = core ]; then
  "${pip[@]}" -r "$APP/emr/requirements-gpu.lock"
fi
"$APP/venv/bin/pip" install --quiet --no-index --no-deps "$APP"/dist/*.whl   # this project, built at deploy

mkdir -p "$APP/bin"
install -m 0755 "$APP/emr/run_stage.sh" "$APP/bin/run-stage"

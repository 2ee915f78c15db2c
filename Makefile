# Batch NLP analytics on Spark. `make run` and `make test` are all a fresh machine needs
# (Java 17, Python 3.11 and Maven installed). Settings: any NLP_* environment variable
# (see spark_jobs/settings.py), or the shortcuts below. `make help` lists the targets.
#
# Values given on the command line (FILE, DATE, ...) never reach a shell or make as code: each is
# made a simply-expanded variable of its raw text (make would otherwise run a `$(shell ...)` in it
# when it exports it), exported, and read by the recipes as a quoted shell variable ("$$FILE").
# Schedulers that need the real exit code (README "Exit codes") call `.venv/bin/nlp-batch`: make
# reports every failure as 2.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
JARS    := .cache/jars
COMMA   := ,

override TARGET  := $(or $(value TARGET),local)
override DATE    := $(value DATE)
override FILE    := $(value FILE)
override SOURCE  := $(or $(value SOURCE),reviews)
override VERSION := $(value VERSION)
override RESCORE := $(value RESCORE)
override FORCE   := $(value FORCE)
override DRY_RUN := $(value DRY_RUN)
override RERUN   := $(value RERUN)
override TRAIN   := $(value TRAIN)
export FILE SOURCE VERSION

export NLP_TARGET := $(TARGET)
ifneq ($(DATE),)
export NLP_DATE := $(DATE)
endif

JOB := $(PY) -m spark_jobs
EMR := PYTHONPATH=emr $(PY) -m nlp_emr
EMR_CACHE := .cache/emr
YES = $(filter 1 true yes,$(1))

.PHONY: setup run land unland replay ingest train infer promote dbt report retrain test test-fast bench clean clean-lake \
        help synth deploy destroy preflight emr-artifacts emr-locks maintain test-tools

## help: this list (the `## ` comments of the Makefile)
help:
	@sed -n 's/^## //p' $(firstword $(MAKEFILE_LIST))

# checkov, the tests' security scan of the stack, in a virtualenv of its own (its pins clash with the project's)
CHECKOV := .cache/checkov/bin/checkov

## setup: virtualenv with pinned packages + JVM jars in a local cache (quick when done)
setup: $(VENV)/.installed $(JARS)/.resolved node_modules/.installed $(CHECKOV)

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

# -C: a jar whose checksum does not match the repository's fails the build (Maven's default only warns)
$(JARS)/.resolved: jars/pom.xml
	@mkdir -p $(JARS)
	mvn -C -q -B -f jars/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	    -DoutputDirectory=$(CURDIR)/$(JARS) -Dmdep.overWriteReleases=true
	@touch $@

$(CHECKOV):
	$(PYTHON) -m venv .cache/checkov
	.cache/checkov/bin/pip install --quiet "checkov==3.2.533"

# the ASL validator the tests run on every state machine (package-lock.json pins it)
node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	@touch $@

## run [DATE=D]: land the corpus if the lake is empty, then ingest -> train (no champion yet) -> infer -> dbt -> report
## run TARGET=emr [DATE=D] [DRY_RUN=1] [RERUN=1] [TRAIN=1]: the same on EMR (DRY_RUN=1 prints the plan)
run: setup
ifeq ($(TARGET),emr)
	$(EMR) run $(if $(call YES,$(DRY_RUN)),--dry-run) $(if $(call YES,$(RERUN)),--rerun) $(if $(call YES,$(TRAIN)),--train)
else
	$(JOB) run
endif

## land FILE=path DATE=D [SOURCE=reviews]: copy a file into the raw zone, byte for byte
land: setup
	$(JOB) land --file "$$FILE" --source "$$SOURCE"

## unland FILE=name DATE=D: take a landed file back out of the raw zone (a copy stays in lake/unlanded/)
unland: setup
	$(JOB) unland --file "$$FILE"

## replay: land the review corpus as daily batches (dates already landed are skipped)
replay: setup
	$(JOB) replay

## ingest DATE=D: validate, curate and quarantine one landed date
## train: train every pipeline of NLP_TRAIN_PIPELINES through the promotion gate
## report DATE=D: the monitoring report of a scored date
## retrain DATE=D: after a report's critical alert, train a candidate by the retraining policy (retrain_* settings)
ingest train report retrain: setup
	$(JOB) $@

## infer DATE=D [RESCORE=1]: the champion (and the challenger, in shadow) scores a date
infer: setup
	$(JOB) infer $(if $(RESCORE),--rescore)

## promote [VERSION=N] [FORCE=1]: the promotion gate for a registered version (default: the challenger);
##   FORCE=1 makes it champion without the gate (a rollback)
promote: setup
	$(JOB) promote $(if $(VERSION),--model-version "$$VERSION") $(if $(FORCE),--force)

## dbt: build and test the warehouse
dbt: setup
	$(JOB) dbt

## maintain: compact the lake's tables, expire snapshots past NLP_SNAPSHOT_RETENTION_DAYS, delete orphan files and the vectors of encoders no model reads
maintain: setup
	$(JOB) maintain

## synth: write the CloudFormation stack that deploy sends, emr/build/stack.json (AWS: emr/README.md)
synth: setup
	$(EMR) synth

## deploy [DRY_RUN=1]: create or update the AWS stack and upload the run's artifacts
deploy: setup emr-artifacts
	$(EMR) deploy $(if $(call YES,$(DRY_RUN)),--dry-run)

## destroy [DRY_RUN=1]: delete the AWS stack (the bucket and the key, your data, are kept)
destroy: setup
	$(EMR) destroy $(if $(call YES,$(DRY_RUN)),--dry-run)

## preflight TARGET=emr: check what a run on AWS needs, one line each with what to do
preflight: setup
ifeq ($(TARGET),emr)
	$(EMR) preflight
else
	@echo "preflight checks the AWS deployment: make preflight TARGET=emr"
endif

## emr-artifacts: what cluster nodes install, prepared here so they need no internet: the wheels of
##   emr/requirements-*.lock (hashes checked) and the jar trees of jars/pom.xml (checksums checked)
emr-artifacts: $(EMR_CACHE)/wheelhouse/.downloaded $(EMR_CACHE)/jars/cpu/.resolved \
               $(if $(filter cpu,$(NLP_EMR_PROFILE)),,$(EMR_CACHE)/jars/gpu/.resolved)

# EMR 7 nodes run Amazon Linux 2023 (glibc 2.34), x86_64, its python3.11 package: wheels of any manylinux
# up to 2.34, for the Python version the runtime lock was resolved with (some pins need >= 3.11.5)
NODE_PYTHON := 3.11.7
NODE_PLATFORMS := $(foreach v,2_34 2_31 2_28 2_27 2_26 2_24 2_17 2_5,--platform manylinux_$(v)_x86_64)
$(EMR_CACHE)/wheelhouse/.downloaded: emr/requirements-runtime.lock emr/requirements-gpu.lock
	@mkdir -p $(@D)
	for lock in emr/requirements-runtime.lock emr/requirements-gpu.lock; do \
	  $(PY) -m pip download --quiet --require-hashes --no-deps --only-binary=:all: $(NODE_PLATFORMS) \
	    --python-version $(NODE_PYTHON) --implementation cp -r "$$lock" -d $(@D) || exit 1; done
	@touch $@

$(EMR_CACHE)/jars/%/.resolved: jars/pom.xml
	@rm -rf $(@D) && mkdir -p $(@D)
	mvn -C -q -B -f jars/pom.xml -P $(if $(filter gpu,$*),emr$(COMMA)gpu,emr) dependency:copy-dependencies -DincludeScope=runtime \
	    -DexcludeArtifactIds=hadoop-aws,aws-java-sdk-bundle,wildfly-openssl -DoutputDirectory=$(CURDIR)/$(@D)
	@touch $@

## emr-locks: regenerate the hashed runtime locks of the cluster nodes (pip-tools in a throwaway venv)
emr-locks:
	$(PYTHON) -m venv .cache/pip-tools && .cache/pip-tools/bin/pip install --quiet "pip-tools==7.5.*"
	cd emr && for name in runtime gpu; do ../.cache/pip-tools/bin/pip-compile --quiet --generate-hashes \
	  --strip-extras --no-emit-index-url --allow-unsafe -o "requirements-$$name.lock" "requirements-$$name.in" || exit 1; done

## test: unit + integration tests (real Spark, Spark NLP, GX, MLflow, dbt, papermill) and dbt build
test: setup test-tools
	$(PY) -m pytest tests -q

## test-tools: the system tools some tests need (PostgreSQL, Chromium), installed with apt-get when
##   missing and running as root; otherwise named, and the tests that need them fail saying so
test-tools:
	@missing=""; ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make test: missing$$missing (install them: the tests that need them fail)" >&2; fi; \
	fi

## test-fast: the tests not marked slow
test-fast: setup
	$(PY) -m pytest tests -q -m "not slow"

## bench: every measurement in benchmarks/ at full size, one script after the other, then the README's tables
##   from benchmarks/results/ (hours on 2 cores: benchmarks/README.md says how long each takes)
bench: setup
	$(PY) benchmarks/ingest_benchmark.py
	$(PY) benchmarks/scoring_benchmark.py
	$(PY) benchmarks/inference_benchmark.py
	$(PY) benchmarks/model_quality_benchmark.py
	NLP_SHADOW_SHARE=0.1 $(PY) benchmarks/day_benchmark.py --rows 100000
	NLP_SHADOW_SHARE=0.01 $(PY) benchmarks/day_benchmark.py --rows 1000000
	$(PY) benchmarks/lake_format_benchmark.py
	$(PY) benchmarks/fresh_run_benchmark.py
	$(PY) benchmarks/fresh_run_benchmark.py --baseline 2af5d81 --name fresh_run_before_after --labels before,after
	$(PY) benchmarks/render.py

## clean-lake: delete the local lake, registry, warehouse and reports
clean-lake:
	rm -rf lake mlartifacts mlflow.db warehouse reports dbt/target dbt/logs

## clean: clean-lake, and the virtualenv and caches
clean: clean-lake
	rm -rf $(VENV) .cache node_modules emr/build

# Batch NLP analytics on Spark. `make run` and `make test` are all a fresh machine needs
# (Java 17, Python 3.11 and Maven installed). Settings: any NLP_* environment variable
# (see spark_jobs/settings.py), or the shortcuts DATE, FILE, SOURCE below.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
JARS    := .cache/jars
TARGET  ?= local
DATE    ?=
FILE    ?=
SOURCE  ?= reviews

export NLP_TARGET := $(TARGET)
ifneq ($(DATE),)
export NLP_DATE := $(DATE)
endif

JOB := $(PY) -m spark_jobs
EMR := PYTHONPATH=emr $(PY) -m nlp_emr
EMR_CACHE := .cache/emr
# run TARGET=emr: DRY_RUN=1 prints the plan, RERUN=1 runs a finished date again, TRAIN=1 trains first
YES = $(filter 1 true yes,$(1))

.PHONY: setup run land replay ingest train infer promote dbt report test test-fast bench clean clean-lake help \
        synth deploy destroy preflight emr-artifacts emr-locks

help:
	@echo "make setup | run [DATE=] [TARGET=emr [DRY_RUN=1] [RERUN=1]] | land FILE= DATE= [SOURCE=] | replay"
	@echo "make ingest|train|infer|report DATE=YYYY-MM-DD | dbt | test | bench | clean-lake"
	@echo "make synth | deploy | destroy | preflight TARGET=emr   (AWS: emr/README.md)"

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

## run: land the corpus if the lake is empty, then ingest -> train -> infer -> dbt -> report
run: setup
ifeq ($(TARGET),emr)
	$(EMR) run $(if $(call YES,$(DRY_RUN)),--dry-run) $(if $(call YES,$(RERUN)),--rerun) $(if $(call YES,$(TRAIN)),--train)
else
	$(JOB) run
endif

land: setup
	$(JOB) land --file "$(FILE)" --source "$(SOURCE)"

replay: setup
	$(JOB) replay

ingest train report: setup
	$(JOB) $@

## infer DATE=... [RESCORE=1]: champion (+ challenger in shadow) scores a date
infer: setup
	$(JOB) infer $(if $(RESCORE),--rescore)

## promote [VERSION=N] [FORCE=1]: promotion gate for a registered version (default: the challenger)
promote: setup
	$(JOB) promote $(if $(VERSION),--model-version $(VERSION)) $(if $(FORCE),--force)

dbt: setup
	$(JOB) dbt

## AWS (emr/README.md): synth writes emr/build/stack.json; deploy creates or updates the stack and uploads
## the artifacts; preflight TARGET=emr checks what a run needs; destroy deletes the stack (keeps the data)
synth: setup
	$(EMR) synth

deploy: setup emr-artifacts
	$(EMR) deploy $(if $(call YES,$(DRY_RUN)),--dry-run)

destroy: setup
	$(EMR) destroy $(if $(call YES,$(DRY_RUN)),--dry-run)

preflight: setup
ifeq ($(TARGET),emr)
	$(EMR) preflight
else
	@echo "preflight checks the AWS deployment: make preflight TARGET=emr"
endif

## emr-artifacts: what cluster nodes install, prepared here so they need no internet: the wheels of
## emr/requirements-*.lock (hashes checked) and the jar trees of jars/pom.xml (checksums checked)
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
	mvn -C -q -B -f jars/pom.xml $(if $(filter gpu,$*),-P gpu) dependency:copy-dependencies -DincludeScope=runtime \
	    -DexcludeArtifactIds=hadoop-aws,aws-java-sdk-bundle,wildfly-openssl -DoutputDirectory=$(CURDIR)/$(@D)
	@touch $@

## emr-locks: regenerate the hashed runtime locks of the cluster nodes (pip-tools in a throwaway venv)
emr-locks:
	$(PYTHON) -m venv .cache/pip-tools && .cache/pip-tools/bin/pip install --quiet "pip-tools==7.5.*"
	cd emr && for name in runtime gpu; do ../.cache/pip-tools/bin/pip-compile --quiet --generate-hashes \
	  --strip-extras --no-emit-index-url --allow-unsafe -o "requirements-$$name.lock" "requirements-$$name.in" || exit 1; done

## test: unit + integration tests (real Spark, Spark NLP, GX, MLflow, dbt, papermill) and dbt build
test: setup
	$(PY) -m pytest tests -q

test-fast: setup
	$(PY) -m pytest tests -q -m "not slow"

## bench: the measurements in benchmarks/ (minutes; results in benchmarks/results/)
bench: setup
	$(PY) benchmarks/ingest_benchmark.py
	$(PY) benchmarks/inference_benchmark.py

clean-lake:
	rm -rf lake mlartifacts mlflow.db warehouse reports dbt/target dbt/logs

clean: clean-lake
	rm -rf $(VENV) .cache node_modules emr/build

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

.PHONY: setup run land replay ingest train infer promote dbt report test test-fast bench clean clean-lake help

help:
	@echo "make setup | run [DATE=] [TARGET=emr] | land FILE= DATE= [SOURCE=] | replay"
	@echo "make ingest|train|infer|report DATE=YYYY-MM-DD | dbt | test | bench | clean-lake"

## setup: virtualenv with pinned packages + JVM jars in a local cache (quick when done)
setup: $(VENV)/.installed $(JARS)/.resolved

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(JARS)/.resolved: jars/pom.xml
	@mkdir -p $(JARS)
	mvn -q -B -f jars/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	    -DoutputDirectory=$(CURDIR)/$(JARS) -Dmdep.overWriteReleases=true
	@touch $@

## run: land the corpus if the lake is empty, then ingest -> train -> infer -> dbt -> report
run: setup
ifeq ($(TARGET),emr)
	$(PY) -m spark_jobs.emr_launcher run $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run)
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
	rm -rf $(VENV) .cache

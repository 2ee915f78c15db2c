"""The value sets the pipeline writes and the warehouse tests, defined here once.

dbt cannot import Python, so `dbt/dbt_project.yml` carries the same sets as vars (`run_statuses`,
`stages`, `labels`, `severities`, `quarantine_reasons`, `max_field_chars`) and the dbt tests read
them with `var(...)`. `python -m spark_jobs.vocabulary` prints the vars block to paste there, and
tests/unit/test_vocabulary.py fails as soon as the two differ (how an `alerted` run record once broke
every build after a critical alert).

No imports from the rest of the package: everything may import this module.
"""
from __future__ import annotations

from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """How every command ends: the one table of exit codes (README "Exit codes" is checked against it;
    emr/run_stage.sh and the AWS launcher use the same numbers)."""
    OK = 0
    UNEXPECTED = 1             # a bug or an environment failure: the trace is in logs/, one line on stderr
    BAD_SETTING = 2            # a setting we cannot use, or an input that is missing (checked before any work)
    BLOCKED = 3                # the batch is blocked by the quality gate: nothing curated, raw files kept
    NO_CHAMPION = 4            # no usable champion model
    NO_TRAINING_DATA = 5
    REPORT_FAILED = 6          # a notebook cell failed (the executed notebook is kept)
    DBT_FAILED = 7
    LOCKED = 8                 # the date is being processed by another run
    CRITICAL_ALERT = 9         # a monitoring report raised a critical alert (it is published)
    REGISTRY_UNAVAILABLE = 10  # the MLflow store cannot be reached or read


class RunStatus(StrEnum):
    """What a stage run ended as (the run record's `status`)."""
    RUNNING = "running"        # written only if the process dies before the record is closed
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"        # nothing to do (already done)
    BLOCKED = "blocked"        # a gate stopped it on purpose (quality gate)
    FAILED = "failed"
    ALERTED = "alerted"        # done, and raised a critical monitoring alert


class Stage(StrEnum):
    """The stages that write run records."""
    INGEST = "ingest"
    TRAIN = "train"
    INFER = "infer"
    SHADOW = "shadow"
    PROMOTE = "promote"
    DBT = "dbt"
    REPORT = "report"
    MAINTAIN = "maintain"
    RETRAIN = "retrain"        # the retraining policy after a report's critical alert (it may train)


# The Spark NLP pipelines a model can be (spark_jobs/nlp.py builds them).
PIPELINES = ("tfidf_logreg", "minilm_logreg")

# The classes every model predicts, in the classifiers' index order (ratings 1-2, 3, 4-5).
LABELS = ("negative", "neutral", "positive")

# Alert severities of the monitoring report, mildest first.
SEVERITIES = ("warning", "critical")

# The monitoring report's sections, in its order (the `section` of every alert and report metric).
REPORT_SECTIONS = ("integrity", "outputs", "drift", "quality", "pipeline")

# What a drift statistic per segment is measured over (mart_segment_drift).
SEGMENTS = ("department", "product")

# Why a row is quarantined: the names of the row checks (quality.ROW_CHECKS, and each row-level
# expectation's meta.reason in expectations/documents.json).
QUARANTINE_REASONS = ("source_columns_missing", "unreadable", "malformed_record", "review_id_missing", "text_empty",
                      "field_too_long", "rating_not_integer", "rating_out_of_range")

# The longest id or name (review_id, product_id, department, class) a row may carry; longer ones are
# quarantined (`field_too_long`), so warehouses can type these columns with a bounded width
# (Redshift's VARCHAR without a length is 256 bytes).
MAX_FIELD_CHARS = 256


def dbt_vars() -> dict:
    """The vars block dbt_project.yml must carry, from the definitions above."""
    return {
        "run_statuses": [s.value for s in RunStatus],
        "stages": [s.value for s in Stage],
        "labels": list(LABELS),
        "severities": list(SEVERITIES),
        "report_sections": list(REPORT_SECTIONS),
        "segments": list(SEGMENTS),
        "quarantine_reasons": list(QUARANTINE_REASONS),
        "max_field_chars": MAX_FIELD_CHARS,
    }


def dbt_mismatches(project_vars: dict, expected: dict | None = None) -> list[str]:
    """One line per value set where dbt's vars differ from Python's; empty when they agree."""
    expected = dbt_vars() if expected is None else expected
    out = []
    for name, values in expected.items():
        have = project_vars.get(name)
        if isinstance(values, list):
            missing = [v for v in values if v not in (have or [])]
            extra = [v for v in (have or []) if v not in values]
            if missing or extra or have is None:
                out.append(f"dbt var {name}: missing {missing}, not written by Python {extra}")
        elif have != values:
            out.append(f"dbt var {name}: {have!r}, Python says {values!r}")
    return out


if __name__ == "__main__":
    import yaml

    print(yaml.safe_dump({"vars": dbt_vars()}, sort_keys=False, default_flow_style=None), end="")

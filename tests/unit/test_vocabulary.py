"""The value sets Python writes and dbt tests are one definition (spark_jobs/vocabulary.py): dbt's
copy in dbt_project.yml must agree, or a new status (as `alerted` once did) fails every build."""
import yaml

from spark_jobs import quality, vocabulary
from spark_jobs.settings import PROJECT_ROOT


def project_vars() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dbt" / "dbt_project.yml").read_text())["vars"]


def test_dbt_vars_agree_with_python():
    assert vocabulary.dbt_mismatches(project_vars()) == []


def test_a_status_python_gains_and_dbt_lacks_is_reported():
    """The check above fails on a deliberate mismatch: Python writes a status dbt does not accept."""
    expected = vocabulary.dbt_vars()
    expected["run_statuses"] = expected["run_statuses"] + ["paused"]
    assert vocabulary.dbt_mismatches(project_vars(), expected) == [
        "dbt var run_statuses: missing ['paused'], not written by Python []"]
    stale = {**project_vars(), "max_field_chars": 255}
    assert vocabulary.dbt_mismatches(stale) == ["dbt var max_field_chars: 255, Python says 256"]


def test_a_stage_or_status_outside_the_vocabulary_is_refused_before_it_is_written(settings):
    import pytest

    from spark_jobs.runlog import StageStopped, stage_run

    with pytest.raises(ValueError, match="'paused' is not a valid RunStatus"):
        StageStopped("stop", exit_code=3, status="paused")
    with pytest.raises(ValueError, match="'deploy' is not a valid Stage"):
        with stage_run(settings, "deploy", "2026-11-01"):
            pass
    assert set(quality.ROW_CHECKS) == set(vocabulary.QUARANTINE_REASONS)


def test_the_printed_block_is_what_dbt_reads():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "spark_jobs.vocabulary"], capture_output=True, text=True, check=True)
    assert yaml.safe_load(out.stdout)["vars"] == vocabulary.dbt_vars()

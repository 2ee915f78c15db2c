"""emr/run_stage.sh, the command every EMR step runs, with stand-ins for EMR's python, Spark and aws CLI."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.aws.conftest import EMR_DIR


@pytest.fixture
def node(tmp_path):
    """An /opt/nlp-batch as bootstrap.sh leaves it, whose python exits with $FAKE_EXIT."""
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "nlp.env").write_text(
        f"NLP_REPORTS_DIR={tmp_path}/reports\nEMR_WORK_DIR={tmp_path}/work\n"
        "EMR_MLFLOW_S3=s3://b/mlflow/\nEMR_REPORTS_S3=s3://b/reports/\nNLP_DBT_PROJECT_DIR=/opt/dbt\n")
    calls = tmp_path / "calls.log"
    for tool in (app / "venv" / "bin" / "python", app / "venv" / "bin" / "dbt", tmp_path / "bin" / "aws"):
        tool.parent.mkdir(parents=True, exist_ok=True)
        exit_code = '"${FAKE_EXIT:-0}"' if tool.name == "python" else "0"
        tool.write_text(f'#!/bin/bash\necho "{tool.name} $*" >> {calls}\nexit {exit_code}\n')
        tool.chmod(0o755)
    (tmp_path / "spark" / "python" / "lib").mkdir(parents=True)
    (tmp_path / "spark" / "python" / "lib" / "py4j-0.10.9.7-src.zip").write_bytes(b"")

    def run(*args: str, fake_exit: int = 0) -> tuple[int, list[str]]:
        env = dict(os.environ, NLP_BATCH_HOME=str(app), SPARK_HOME=str(tmp_path / "spark"),
                   PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", FAKE_EXIT=str(fake_exit))
        calls.write_text("")
        rc = subprocess.run(["bash", str(EMR_DIR / "run_stage.sh"), *args], env=env, capture_output=True).returncode
        return rc, calls.read_text().splitlines()
    return run


def test_a_stage_runs_the_job_with_the_registry_copied_down(node):
    rc, calls = node("infer", "--date", "2026-11-01")
    assert rc == 0
    assert calls == [f"aws s3 sync --only-show-errors s3://b/mlflow/ {calls[0].split()[-1]}",
                     "python -m spark_jobs infer --date 2026-11-01"]


def test_train_copies_the_registry_back_and_report_publishes_even_when_failing(node):
    assert node("train", "--date", "2026-11-01")[1][-1].endswith(" s3://b/mlflow/")
    rc, calls = node("report", "--date", "2026-11-01", fake_exit=6)
    assert rc == 6 and calls[-1].endswith(" s3://b/reports/")


def test_dbt_creates_the_glue_tables_first(node):
    calls = node("dbt", "--date", "2026-11-01")[1]
    assert calls[1].startswith("dbt run-operation lake_glue_ddl --args {apply: true} --target athena")
    assert calls[2] == "python -m spark_jobs dbt --date 2026-11-01"


def test_a_blocked_batch_is_a_completed_step_only_under_the_state_machine(node):
    assert node("--blocked-ok", "ingest", "--date", "2026-11-01", fake_exit=3)[0] == 0
    assert node("ingest", "--date", "2026-11-01", fake_exit=3)[0] == 3
    assert node("--blocked-ok", "ingest", "--date", "2026-11-01", fake_exit=1)[0] == 1

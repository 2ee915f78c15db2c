"""emr/run_stage.sh (what every EMR step runs) with stand-ins for EMR's python, Spark and aws CLI, and
emr/mlflow_uri.py (the registry's URI from its Secrets Manager secret) against the moto server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.aws.conftest import EMR_DIR, client


@pytest.fixture
def node(tmp_path):
    """An /opt/nlp-batch as bootstrap.sh leaves it; its python exits with $FAKE_EXIT for the job and
    prints a registry URI for mlflow_uri.py."""
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "nlp.env").write_text(
        f"NLP_REPORTS_DIR={tmp_path}/reports\nEMR_REPORTS_S3=s3://b/reports/\nNLP_DBT_PROJECT_DIR=/opt/dbt\n")
    calls = tmp_path / "calls.log"
    for tool in (app / "venv" / "bin" / "python", app / "venv" / "bin" / "dbt", tmp_path / "bin" / "aws"):
        tool.parent.mkdir(parents=True, exist_ok=True)
        body = f'echo "{tool.name} $*" >> {calls}\n'
        if tool.name == "python":
            body = (f'if [ "$1" = -m ]; then echo "{tool.name} $* uri=$NLP_MLFLOW_TRACKING_URI" >> {calls}; '
                    f'exit "${{FAKE_EXIT:-0}}"; fi\n{body}echo "postgresql://u:p@registry:5432/mlflow"\n')
        tool.write_text(f"#!/bin/bash\n{body}exit 0\n")
        tool.chmod(0o755)
    (tmp_path / "spark" / "python" / "lib").mkdir(parents=True)
    (tmp_path / "spark" / "python" / "lib" / "py4j-0.10.9.7-src.zip").write_bytes(b"")

    def run(*args: str, fake_exit: int = 0) -> tuple[int, list[str]]:
        env = dict(os.environ, NLP_BATCH_HOME=str(app), SPARK_HOME=str(tmp_path / "spark"),
                   PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", FAKE_EXIT=str(fake_exit))
        calls.write_text("")
        rc = subprocess.run(["bash", str(EMR_DIR / "run_stage.sh"), *args], env=env, capture_output=True).returncode
        return rc, [line.replace(str(app), "$APP") for line in calls.read_text().splitlines()]
    return run


def test_a_stage_runs_the_job_with_the_registry_uri_from_its_secret(node):
    rc, calls = node("infer", "--date", "2026-11-01")
    assert rc == 0
    assert calls == ["python $APP/emr/mlflow_uri.py",
                     "python -m spark_jobs infer --date 2026-11-01 uri=postgresql://u:p@registry:5432/mlflow"]


def test_report_publishes_even_when_failing_and_dbt_needs_no_ddl_step(node):
    rc, calls = node("report", "--date", "2026-11-01", fake_exit=6)
    assert rc == 6 and calls[-1].startswith("aws s3 sync --only-show-errors ") and calls[-1].endswith(" s3://b/reports/")
    calls = node("dbt", "--date", "2026-11-01")[1]   # the Iceberg tables are in Glue already
    assert [c.split(" uri=")[0] for c in calls] == ["python $APP/emr/mlflow_uri.py",
                                                    "python -m spark_jobs dbt --date 2026-11-01"]


@pytest.mark.parametrize("stage, code, decision", [
    ("ingest", 3, True), ("report", 9, True),          # a blocked batch; a critical alert (report published)
    ("ingest", 1, False), ("report", 3, False), ("infer", 9, False)])
def test_decisions_complete_the_step_and_leave_a_marker_only_under_the_state_machine(node, stage, code, decision):
    rc, calls = node("--outcomes", "s3://b/outcomes/exec-1/", stage, "--date", "2026-11-01", fake_exit=code)
    marker = f"aws s3api put-object --bucket b --key outcomes/exec-1/{stage}-exit-{code}"
    assert (rc, marker in calls) == ((0, True) if decision else (code, False))
    assert node(stage, "--date", "2026-11-01", fake_exit=code)[0] == code    # without --outcomes: the code as it is


def mlflow_uri(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EMR_DIR / "mlflow_uri.py")], env=env, capture_output=True, text=True)


def test_the_registry_uri_comes_from_the_secret_quoted(moto_url):
    secret = client("secretsmanager").create_secret(
        Name="rds!db-test", SecretString=json.dumps({"username": "mlflow", "password": "p@ss/w:rd%?"}))["ARN"]
    env = dict(os.environ, EMR_REGISTRY_SECRET_ARN=secret, EMR_REGISTRY_HOST="registry.example", EMR_REGISTRY_PORT="5432",
               EMR_REGISTRY_DATABASE="mlflow")
    done = mlflow_uri(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgresql+psycopg2://mlflow:p%40ss%2Fw%3Ard%25%3F@registry.example:5432/mlflow?sslmode=require"
    missing = mlflow_uri(dict(env, EMR_REGISTRY_SECRET_ARN=secret + "-gone"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        f"ERROR: the registry's URI: ResourceNotFoundException reading {secret}-gone"]
    local = mlflow_uri({k: v for k, v in env.items() if k != "EMR_REGISTRY_SECRET_ARN"} | {
        "NLP_MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"})
    assert local.stdout.strip() == "sqlite:///mlflow.db"

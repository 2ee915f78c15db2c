"""dbt stage: build and test the warehouse models over the lake (DuckDB locally)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings

EXIT_DBT_FAILED = 7


def dbt_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.as_env())
    env.update({
        "NLP_LAKE_ROOT": settings.path("lake_root"),
        "NLP_WAREHOUSE_PATH": settings.path("warehouse_path"),
        "NLP_DBT_TARGET": settings.dbt_target,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    })
    return env


def dbt(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """Runs the dbt CLI of this environment on the project with our profiles."""
    project = settings.path("dbt_project_dir")
    cmd = [os.path.join(os.path.dirname(sys.executable), "dbt"), "--no-use-colors", *args,
           "--project-dir", project, "--profiles-dir", project, "--target", settings.dbt_target]
    return subprocess.run(cmd, env=dbt_env(settings), capture_output=True, text=True, cwd=project)


def run(settings: Settings, date: str = "all") -> RunRecord:
    os.makedirs(os.path.dirname(settings.path("warehouse_path")), exist_ok=True)
    with stage_run(settings, "dbt", date) as rec:
        result = dbt(settings, "build")
        summary = [line for line in result.stdout.splitlines() if "Done. PASS=" in line]
        if result.returncode != 0:
            errors = [line for line in result.stdout.splitlines() if re.search(r"\b(ERROR|FAIL)\b", line)]
            detail = "; ".join(e.split("] ", 1)[-1].strip() for e in errors[:3]) or result.stderr.strip()[-300:]
            raise StageStopped(f"dbt build failed: {detail}", exit_code=EXIT_DBT_FAILED, status="failed")
        rec.message = summary[-1].split("Done. ", 1)[-1] if summary else "ok"
        rec.outputs["warehouse"] = settings.path("warehouse_path")
    return rec

"""dbt stage: build and test the warehouse models over the lake (DuckDB locally).

On the local DuckDB target the build never touches the file analysts have open: dbt builds a copy
in a side folder and the finished database replaces the original in one rename. DuckDB locks a
database file for a writer against every other process, readers included, so building in place
would fail while anyone has the warehouse open (and an analyst's open connection would block the
daily run). Connections opened before the swap keep reading the previous build until they
reconnect; a failed build leaves the previous warehouse as it was.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

from . import duck, tables
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings, SettingsError
from .vocabulary import ExitCode, RunStatus



def dbt_env(settings: Settings, warehouse_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.as_env())
    env.update({
        "NLP_LAKE_ROOT": settings.path("lake_root"),
        "NLP_WAREHOUSE_PATH": warehouse_path or settings.path("warehouse_path"),
        "NLP_DBT_TARGET": settings.dbt_target,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    })
    if settings.dbt_target == "local":
        env["NLP_DUCKDB_EXTENSIONS"] = duck.extension_directory()
    return env


LAKE_TABLES = "NLP_LAKE_TABLES"


def lake_tables_env(settings: Settings) -> dict[str, str]:
    """The environment variable that hands the build the lake tables' current metadata files (DuckDB
    reads them; one snapshot per table for the whole build). Not a --vars value: dbt takes a new one
    for a change of the project and parses it all again, while this one is read only when a model
    runs, so each build reuses the last one's parse. A lake with no table at all is a wrong setting,
    said in one line."""
    tables_now = tables.metadata_locations(settings)
    if not tables_now:
        where = tables.catalog_db(settings) if settings.lake_catalog == "local" else "the Glue Data Catalog"
        raise SettingsError(f"the lake at {settings.path('lake_root')} has no tables in {where} (settings "
                            "lake_root, lake_catalog): point them at the lake the Spark jobs write")
    return {LAKE_TABLES: json.dumps(tables_now)}


def dbt(settings: Settings, *args: str, warehouse_path: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs the dbt CLI of this environment on the project with our profiles (`env`: more variables)."""
    project = settings.path("dbt_project_dir")
    cmd = [os.path.join(os.path.dirname(sys.executable), "dbt"), "--no-use-colors", *args,
           "--project-dir", project, "--profiles-dir", project, "--target", settings.dbt_target]
    return subprocess.run(cmd, env={**dbt_env(settings, warehouse_path), **(env or {})}, capture_output=True,
                          text=True, cwd=project)


@contextmanager
def side_build(warehouse: str) -> Iterator[tuple[str, list[bool]]]:
    """Yields (path to build, [done]): a copy of `warehouse` in a hidden side folder, with the same
    file name (DuckDB names a database's catalog after its file, and views refer to it). When the
    caller sets done[0], the copy replaces `warehouse` atomically; otherwise it is thrown away.

    The side folder is always the same one: dbt's profile names the file it builds, and a profile
    that changed makes dbt parse the whole project again. Builds of one warehouse take turns on it
    (a lock file beside it, released when the process ends, however it ends)."""
    folder = os.path.join(os.path.dirname(warehouse), f".{os.path.basename(warehouse)}.building")
    with open(folder + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(folder, ignore_errors=True)  # what a build killed before its end left
        os.makedirs(folder)
        building = os.path.join(folder, os.path.basename(warehouse))
        for suffix in ("", ".wal"):  # incremental models continue from the current build
            if os.path.exists(warehouse + suffix):
                shutil.copyfile(warehouse + suffix, building + suffix)
        done = [False]
        try:
            yield building, done
            if done[0]:
                os.replace(building, warehouse)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


_TIME = re.compile(r"^\d\d:\d\d:\d\d\s+")


def first_failure(stdout: str) -> str:
    """'model stg_x: <the reason dbt gives>' for the first failure dbt's summary lists, '' if none."""
    lines = [_TIME.sub("", line).strip() for line in stdout.splitlines()]
    summary = next((i for i, line in enumerate(lines) if line.startswith("Completed with")), None)
    if summary is None:
        return ""
    failures = [i for i, line in enumerate(lines) if i > summary and re.match(r"(Failure|Error) in \w+ \S+", line)]
    if not failures:
        return ""
    what = re.match(r"(?:Failure|Error) in (\w+ \S+)", lines[failures[0]]).group(1)
    reason = next((line for line in lines[failures[0] + 1:] if line and not line.startswith(">")
                   and not re.match(r"(Compilation|Runtime|Database) Error in ", line)), "")
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"{what}: {reason}{more}"


def run(settings: Settings, date: str = "all") -> RunRecord:
    warehouse = settings.path("warehouse_path")
    os.makedirs(os.path.dirname(warehouse), exist_ok=True)
    # The models and their data tests. dbt's unit tests check the SQL on fixed inputs, so they run where
    # the SQL changes (`make test`), not in every build: dbt's own advice for production builds.
    build = ("build", "--exclude-resource-type", "unit_test")
    with stage_run(settings, "dbt", date) as rec:
        if settings.dbt_target == "local":
            lake_tables = lake_tables_env(settings)
            with side_build(warehouse) as (building, done):
                result = dbt(settings, *build, warehouse_path=building, env=lake_tables)
                done[0] = result.returncode == 0
        else:
            result = dbt(settings, *build)
        summary = [line for line in result.stdout.splitlines() if "Done. PASS=" in line]
        if result.returncode != 0:
            detail = (first_failure(result.stdout) or (result.stderr.strip().splitlines() or [""])[-1]
                      or "no reason given")
            raise StageStopped(f"dbt build failed: {detail[:600]} (dbt's log: {settings.path('dbt_project_dir')}"
                               "/logs/dbt.log)", exit_code=ExitCode.DBT_FAILED, status=RunStatus.FAILED)
        rec.message = summary[-1].split("Done. ", 1)[-1] if summary else "ok"
        rec.outputs["warehouse"] = warehouse
    return rec

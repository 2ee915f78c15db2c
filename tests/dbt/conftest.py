"""dbt test fixtures: a small lake written in Python (no Spark), and dbt run in-process on it.

Every dbt call gets its own target and log folders under a temp dir, so tests never touch dbt/target,
the developer's warehouse or ./lake.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dbt.lake_fixture import Lake, write_lake

PROJECT = Path(__file__).resolve().parents[2] / "dbt"


@dataclass
class DbtResult:
    success: bool
    results: list          # dbt's per-node results (run_results), [] for parse/run-operation
    stdout: str            # what macros print()ed (run-operation)
    exception: BaseException | None

    def failures(self) -> list[str]:
        return [f"{r.node.unique_id}: {r.status} {r.message}" for r in self.results
                if str(r.status) not in ("success", "pass", "no-op")]


_PARSED: dict[str, object] = {}  # target -> parsed manifest, shared by that target's commands


def dbt(args: list[str], work: Path, env: dict[str, str], reuse_parse: bool = False) -> DbtResult:
    """Runs one dbt command in-process with `env` set for its duration (env_var() reads os.environ).

    reuse_parse: hand dbt the manifest parsed once for this target instead of parsing again (about
    3 s a command); for commands whose parse does not depend on --vars.
    """
    from dbt.cli.main import dbtRunner

    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env, **lake_tables(args, env)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out = io.StringIO()
    flags = ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT), "--target-path", str(work / "target"),
             "--log-path", str(work / "logs"), "--no-use-colors", "--quiet"]
    target = env.get("NLP_DBT_TARGET", "local")
    try:
        with contextlib.redirect_stdout(out):
            if reuse_parse and target not in _PARSED:
                parsed = dbtRunner().invoke(["parse", *flags])
                assert parsed.success, parsed.exception
                _PARSED[target] = parsed.result
            res = dbtRunner(manifest=_PARSED.get(target) if reuse_parse else None).invoke([*args, *flags])
    finally:
        release_duckdb()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results = list(res.result) if res.result is not None and hasattr(res.result, "__iter__") \
        and not isinstance(res.result, (str, bytes)) and args[0] in ("build", "run", "test", "compile") else []
    return DbtResult(bool(res.success), results, out.getvalue(), res.exception)


def lake_tables(args: list[str], env: dict[str, str]) -> dict[str, str]:
    """On DuckDB the pipeline passes the lake tables' metadata files in NLP_LAKE_TABLES
    (spark_jobs/warehouse.py); the tests do the same, unless they set it themselves."""
    from spark_jobs import warehouse
    from tests.dbt.lake_fixture import lake_settings

    if env.get("NLP_DBT_TARGET", "local") != "local" or not env.get("NLP_LAKE_ROOT") or not args \
            or args[0] in ("parse", "run-operation") or warehouse.LAKE_TABLES in env:
        return {}
    return warehouse.lake_tables_env(lake_settings(Path(env["NLP_LAKE_ROOT"])))


def release_duckdb() -> None:
    """dbt-duckdb keeps its database open in the process after a command; close it so the test (or
    the next command, with other settings) can open the file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    if DuckDBConnectionManager._ENV is not None:
        DuckDBConnectionManager._ENV.close()
        DuckDBConnectionManager.close_all_connections()


def duckdb_env(lake_root: Path, warehouse: Path) -> dict[str, str]:
    from spark_jobs import duck

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {"NLP_DBT_TARGET": "local", "NLP_LAKE_ROOT": str(lake_root), "NLP_WAREHOUSE_PATH": str(warehouse),
            "NLP_DUCKDB_EXTENSIONS": duck.extension_directory()}


@dataclass
class Build:
    lake: Lake
    warehouse: Path
    work: Path
    result: DbtResult


@pytest.fixture(scope="session")
def fixture_lake(tmp_path_factory) -> Lake:
    return write_lake(tmp_path_factory.mktemp("dbt_lake") / "lake")


@pytest.fixture(scope="session")
def duckdb_build(fixture_lake, tmp_path_factory) -> Build:
    """`dbt build` (models, data tests, unit tests) of the whole project on the fixture lake."""
    work = tmp_path_factory.mktemp("dbt_duckdb")
    warehouse = work / "nlp.duckdb"
    result = dbt(["build"], work, duckdb_env(fixture_lake.root, warehouse), reuse_parse=True)
    return Build(fixture_lake, warehouse, work, result)


@pytest.fixture
def warehouse(duckdb_build):
    """A read-only connection to the built warehouse, closed after each test (dbt needs the file back)."""
    import duckdb

    assert duckdb_build.result.success, duckdb_build.result.failures() or duckdb_build.result.exception
    con = duckdb.connect(str(duckdb_build.warehouse), read_only=True)
    yield con
    con.close()

"""The project built for real on PostgreSQL, the nearest open stand-in for Redshift's dialect (dbt-redshift
dispatches to the postgres__ macros wherever it has no redshift__ one).

The test starts a throwaway server on 127.0.0.1 (`make test` installs PostgreSQL where it can; without it the test fails), loads the
fixture lake into Glue-typed source tables, runs `dbt build --target postgres` (models, unit tests,
data tests, contracts) and compares every mart with the DuckDB build of the same lake.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from tests.conftest import missing
from tests.dbt.conftest import PROJECT, dbt
from tests.dbt.test_portability import MARTS

GLUE_TO = {  # Glue type -> (PostgreSQL, DuckDB) type
    "string": ("varchar", "varchar"), "int": ("integer", "integer"), "bigint": ("bigint", "bigint"),
    "double": ("double precision", "double"), "boolean": ("boolean", "boolean"),
    "array<string>": ("varchar[]", "varchar[]")}


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of our own on 127.0.0.1; yields its port; stopped and deleted afterwards."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        missing("PostgreSQL is not installed (`make test` installs it as root with apt-get; else apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="nlp-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no postgres user to run the server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                              "-c full_page_writes=off -c synchronous_commit=off", "start"],
                       check=True, capture_output=True, timeout=120)
        yield port
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def load_lake(port: int, lake_root: Path) -> None:
    """The lake's tables as tables nlp_lake.<table>, with the types of _lake__sources.yml, loaded from
    each Iceberg table's current snapshot."""
    import psycopg2
    from psycopg2.extras import execute_values

    from spark_jobs import duck, tables
    from tests.dbt.lake_fixture import lake_settings

    sources = yaml.safe_load((PROJECT / "models" / "staging" / "_lake__sources.yml").read_text())
    locations = tables.metadata_locations(lake_settings(lake_root))
    admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute("create database nlp")
    admin.close()
    reader = duck.connect()
    with psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="nlp") as pg, pg.cursor() as cur:
        cur.execute("create schema nlp_lake")
        for table in sources["sources"][0]["tables"]:
            columns = table["columns"]
            ddl = ", ".join(f'"{c["name"]}" {GLUE_TO[c["data_type"]][0]}' for c in columns)
            cur.execute(f'create table nlp_lake."{table["name"]}" ({ddl})')
            if table["name"] not in locations:
                continue
            names = ", ".join(f'"{c["name"]}"' for c in columns)
            typed = ", ".join(f'cast("{c["name"]}" as {GLUE_TO[c["data_type"]][1]})' for c in columns)
            rows = reader.execute(f"select {typed} from iceberg_scan(?)", [locations[table["name"]]])
            execute_values(cur, f'insert into nlp_lake."{table["name"]}" ({names}) values %s', rows.fetchall())
    reader.close()


@pytest.fixture(scope="module")
def pg_build(postgres, duckdb_build, tmp_path_factory):
    """The fixture lake loaded into PostgreSQL and `dbt build --target postgres` run on it once."""
    assert duckdb_build.result.success
    load_lake(postgres, duckdb_build.lake.root)
    env = {"NLP_DBT_TARGET": "postgres", "NLP_PG_HOST": "127.0.0.1", "NLP_PG_PORT": str(postgres),
           "NLP_PG_USER": "postgres", "NLP_PG_DATABASE": "nlp", "NLP_LAKE_SCHEMA": "nlp_lake"}
    return dbt(["build"], tmp_path_factory.mktemp("pg_build"), env)


def pg_frame(port: int, sql: str) -> pd.DataFrame:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="nlp") as pg, pg.cursor() as cur:
        cur.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def assert_marts_equal_duckdbs(port: int, schema: str, duckdb_build) -> None:
    con = duckdb.connect()
    con.execute(f"attach '{duckdb_build.warehouse}' as built (read_only)")
    try:
        for mart in MARTS:
            pg_rows = pg_frame(port, f"select * from {schema}.{mart}")
            con.register("pg_rows", pg_rows)
            local = con.sql(f"select * from built.main.{mart} order by all").df()
            on_pg = con.sql("select * from pg_rows order by all").df()
            assert list(on_pg.columns) == list(local.columns) and len(local) > 0, mart
            for column in local.columns:  # dates come back from psycopg2 as datetime.date objects
                if pd.api.types.is_datetime64_any_dtype(local[column]):
                    on_pg[column] = pd.to_datetime(on_pg[column])
            pd.testing.assert_frame_equal(on_pg, local, check_dtype=False, check_exact=False, obj=mart)
            con.unregister("pg_rows")
    finally:
        con.close()


def test_postgres_build_passes_and_its_marts_equal_duckdbs(postgres, pg_build, duckdb_build):
    assert pg_build.success, pg_build.failures() or pg_build.exception
    assert sum(str(r.node.resource_type) == "unit_test" for r in pg_build.results) == 11
    assert_marts_equal_duckdbs(postgres, "nlp_marts", duckdb_build)


# The models whose Redshift SQL PostgreSQL refuses, and the Redshift-only construct that makes it so
# (each a redshift__ macro in macros/cross_database.sql or dbt-redshift's own).
REDSHIFT_ONLY = {
    "stg_documents": "len(",                         # dbt.length is Redshift's len()
    "stg_quarantine_reasons": "quarantine.reasons",  # PartiQL unnesting of an array column (Spectrum)
    "dim_products": 'column "day"',                  # add_days: Redshift's dateadd(day, n, date)
    "mart_data_quality": "listagg",                  # dbt.listagg: Redshift's listagg ... within group
}


def test_redshift_sql_runs_on_postgres_where_postgres_accepts_it(postgres, pg_build, duckdb_build, tmp_path):
    """Every model as compiled for Redshift (not for the postgres stand-in) is run on PostgreSQL, in
    dependency order. A model whose SQL PostgreSQL refuses must be one of REDSHIFT_ONLY, refused for
    the construct named there; it is then built from the postgres target's SQL so that the models
    downstream still run their Redshift SQL. The marts equal the DuckDB build's."""
    import psycopg2

    from tests.dbt.test_portability import OFFLINE, compiled_nodes, in_dependency_order

    assert pg_build.success, pg_build.failures() or pg_build.exception
    env = {"NLP_REDSHIFT_DATABASE": "nlp", "NLP_REDSHIFT_SCHEMA": "rs_marts", "NLP_LAKE_SCHEMA": "nlp_lake"}
    res = dbt(["compile", "--target", "redshift", *OFFLINE, "--vars", '{offline_is_incremental: false}'], tmp_path, env)
    assert res.success, res.exception
    models = compiled_nodes(tmp_path / "target", ("model",))
    refused = {}
    pg = psycopg2.connect(host="127.0.0.1", port=postgres, user="postgres", dbname="nlp")
    pg.autocommit = True
    try:
        cur = pg.cursor()
        cur.execute("create schema rs_marts")
        for node in in_dependency_order(models):
            assert node["database"] == "nlp" and node["schema"] == "rs_marts"
            try:
                cur.execute(f'create table rs_marts."{node["alias"]}" as {node["compiled_code"]}')
            except psycopg2.Error as err:
                refused[node["name"]] = str(err).splitlines()[0]
                cur.execute(f'create table rs_marts."{node["alias"]}" as select * from nlp_marts."{node["alias"]}"')
    finally:
        pg.close()
    assert set(refused) == set(REDSHIFT_ONLY), refused
    for name, construct in REDSHIFT_ONLY.items():
        assert construct in refused[name], (name, refused[name])
    assert_marts_equal_duckdbs(postgres, "rs_marts", duckdb_build)


def test_the_reports_sql_runs_on_postgres_and_answers_as_duckdb(postgres, pg_build, duckdb_build):
    """The monitoring report's statements (spark_jobs/report_inputs), the text redshift_connector would
    send, on the PostgreSQL build: the same rows as on the DuckDB build."""
    from spark_jobs import report_inputs
    from tests.dbt.test_report_sql import statements

    assert pg_build.success, pg_build.failures() or pg_build.exception
    con = duckdb.connect(str(duckdb_build.warehouse), read_only=True)
    try:
        on_duckdb = statements("main")
        for name, sql in statements("nlp_marts").items():
            types = report_inputs.QUERIES[name][1]
            got = report_inputs.typed(pg_frame(postgres, sql), types)
            want = report_inputs.typed(con.sql(on_duckdb[name]).df(), types)
            assert len(want) > 0, name
            order = list(want.columns)
            pd.testing.assert_frame_equal(got.sort_values(order).reset_index(drop=True),
                                          want.sort_values(order).reset_index(drop=True), obj=name)
    finally:
        con.close()

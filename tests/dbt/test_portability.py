"""The same dbt project on Athena and Redshift, proven offline.

- `dbt parse` succeeds for every target;
- `dbt compile` for athena and redshift needs no credentials (no cache, no introspection; the
  incremental branch is forced by the offline_is_incremental var, both ways);
- every compiled model and data test parses with sqlglot in the target's dialect;
- the Athena SQL runs: the Glue Data Catalog's Iceberg tables are emulated in DuckDB (each table's
  current snapshot with the declared types), the compiled Athena models are transpiled to DuckDB with
  sqlglot and run in dependency order, and every mart equals the one the DuckDB build made from the
  same lake.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from tests.dbt.conftest import PROJECT, dbt

S3_URI = "s3://nlp-batch-test/lake"
OFFLINE = ["--no-populate-cache", "--no-introspect"]
DIALECT = {"athena": "athena", "redshift": "redshift"}
MARTS = ["fct_predictions", "dim_products", "mart_daily_sentiment", "mart_daily_product_sentiment",
         "mart_model_performance", "mart_data_quality", "mart_pipeline_runs", "mart_champion_challenger",
         "mart_monitoring_metrics", "mart_monitoring_alerts", "mart_monitoring_daily", "mart_segment_drift"]


@pytest.mark.parametrize("target", ["local", "athena", "redshift", "postgres"])
def test_parse_succeeds_for_every_target(target, tmp_path):
    res = dbt(["parse", "--target", target], tmp_path, {})
    assert res.success, res.exception
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == {"local": "duckdb"}.get(target, target)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[tuple[str, bool], Path]:
    """target/ folders of `dbt compile` per (target, incremental), without any warehouse credentials."""
    folders = {}
    for target in DIALECT:
        for incremental in (False, True):
            work = tmp_path_factory.mktemp(f"compile_{target}_{incremental}")
            res = dbt(["compile", "--target", target, *OFFLINE,
                       "--vars", json.dumps({"offline_is_incremental": incremental})], work, {})
            assert res.success, (target, incremental, res.exception, res.failures())
            folders[(target, incremental)] = work / "target"
    return folders


def compiled_nodes(target_dir: Path, resource_types=("model", "test")) -> dict[str, dict]:
    manifest = json.loads((target_dir / "manifest.json").read_text())
    return {uid: n for uid, n in manifest["nodes"].items()
            if n["resource_type"] in resource_types and n.get("compiled_code")}


@pytest.mark.parametrize("target", list(DIALECT))
@pytest.mark.parametrize("incremental", [False, True])
def test_every_compiled_model_and_test_parses_in_the_target_dialect(compiled, target, incremental):
    nodes = compiled_nodes(compiled[(target, incremental)])
    assert sum(n["resource_type"] == "model" for n in nodes.values()) == 24
    for uid, node in nodes.items():
        statements = sqlglot.parse(node["compiled_code"], read=DIALECT[target],
                                   error_level=sqlglot.ErrorLevel.RAISE)
        unsupported = [s for s in statements if isinstance(s, exp.Command)]
        assert statements and not unsupported, f"{uid} does not parse as {target} SQL"


def test_incremental_sql_differs_only_where_models_are_incremental(compiled):
    for target in DIALECT:
        full = compiled_nodes(compiled[(target, False)], ("model",))
        incremental = compiled_nodes(compiled[(target, True)], ("model",))
        changed = {full[u]["name"] for u in full if full[u]["compiled_code"] != incremental[u]["compiled_code"]}
        assert changed == {"fct_predictions", "mart_daily_product_sentiment"}, target
        fct = incremental["model.nlp_batch.fct_predictions"]["compiled_code"]
        assert "not exists" in fct and "fct_predictions" in fct.split("not exists", 1)[1]


def test_athena_incremental_models_end_with_their_partition_column(compiled):
    """Athena (Hive) insert_overwrite needs the partition column last in the select."""
    nodes = compiled_nodes(compiled[("athena", False)], ("model",))
    for node in nodes.values():
        if node["config"]["materialized"] == "incremental":
            assert node["config"]["incremental_strategy"] == "insert_overwrite"
            assert node["config"]["partitioned_by"] == ["ingest_date"]
            select = sqlglot.parse_one(node["compiled_code"], read="athena")
            assert select.named_selects[-1] == "ingest_date", node["name"]


SOURCE_TO_ARROW = {"string": "string", "int": "int32", "double": "double", "bigint": "int64", "boolean": "bool",
                   "array<string>": "list<element: string>"}


def lake_sources() -> list[dict]:
    """The lake's tables as _lake__sources.yml declares them: name and (column, type) pairs."""
    import yaml

    spec = yaml.safe_load((PROJECT / "models" / "staging" / "_lake__sources.yml").read_text())
    return [{"name": t["name"], "columns": [(c["name"], c["data_type"]) for c in t["columns"]]}
            for t in spec["sources"][0]["tables"]]


def test_the_sources_describe_the_lake_tables(fixture_lake):
    """Every declared column is in the Iceberg table with the declared type (the tables the jobs write
    are checked the same way end to end: tests/integration/test_pipeline.py)."""
    from spark_jobs import tables
    from tests.dbt.lake_fixture import lake_settings

    declared = {t["name"]: t["columns"] for t in lake_sources()}
    assert set(declared) == {"curated", "quarantine", "labels", "predictions", "predictions_shadow", "runs", "metrics"}
    for name, columns in declared.items():
        schema = tables.load_table(lake_settings(fixture_lake.root), name).schema().as_arrow()
        for column, kind in columns:
            assert SOURCE_TO_ARROW[kind] == str(schema.field(column).type).replace("large_", ""), (name, column)


def emulate_glue_catalog(con, lake_root: Path) -> None:
    """The Glue Data Catalog's Iceberg tables as Athena reads them, in DuckDB: each table's current
    snapshot (iceberg_scan of its metadata file), with the declared types."""
    from spark_jobs import duck, tables
    from tests.dbt.lake_fixture import lake_settings

    duck.load_extensions(con)
    settings = lake_settings(lake_root)
    locations = tables.metadata_locations(settings)
    con.execute("attach ':memory:' as awsdatacatalog")
    con.execute(f"create schema if not exists awsdatacatalog.{settings.lake_schema}")
    for t in lake_sources():
        typed = ", ".join(f'cast("{c}" as {k.replace("string", "varchar").replace("array<varchar>", "varchar[]")})'
                          f' as "{c}"' for c, k in t["columns"])
        con.execute(f"create view awsdatacatalog.{settings.lake_schema}.{t['name']} as select {typed} "
                    f"from iceberg_scan('{locations[t['name']]}')")


def in_dependency_order(nodes: dict[str, dict]) -> list[dict]:
    done, order = set(), []

    def visit(uid):
        if uid in done or uid not in nodes:
            return
        for parent in nodes[uid]["depends_on"]["nodes"]:
            visit(parent)
        done.add(uid)
        order.append(nodes[uid])

    for uid in sorted(nodes):
        visit(uid)
    return order


def test_athena_sql_transpiled_to_duckdb_gives_the_duckdb_builds_marts(compiled, duckdb_build):
    assert duckdb_build.result.success
    con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
    emulate_glue_catalog(con, duckdb_build.lake.root)
    models = compiled_nodes(compiled[("athena", False)], ("model",))
    for node in in_dependency_order(models):
        assert node["database"] == "awsdatacatalog"
        con.execute(f"create schema if not exists awsdatacatalog.{node['schema']}")
        (sql,) = sqlglot.transpile(node["compiled_code"], read="athena", write="duckdb")
        try:
            con.execute(f'create table awsdatacatalog.{node["schema"]}."{node["alias"]}" as {sql}')
        except duckdb.Error as err:
            pytest.fail(f"{node['name']}: Athena SQL transpiled to DuckDB fails: {err}\n{sql}")

    schema = models["model.nlp_batch.fct_predictions"]["schema"]
    # What Athena stores: its timestamps hold milliseconds (sqlglot's rewrite of from_iso8601_timestamp
    # keeps DuckDB's microseconds, which would hide a difference analysts would see).
    for mart in MARTS:
        columns = con.sql(f"describe awsdatacatalog.{schema}.{mart}").fetchall()
        for name, kind, *_ in columns:
            if kind.startswith("TIMESTAMP"):
                con.execute(f'alter table awsdatacatalog.{schema}.{mart} alter "{name}" type timestamp_ms')
    con.execute(f"attach '{duckdb_build.warehouse}' as built (read_only)")
    try:
        for mart in MARTS:
            athena = con.sql(f"select * from awsdatacatalog.{schema}.{mart} order by all").df()
            local = con.sql(f"select * from built.main.{mart} order by all").df()
            assert list(athena.columns) == list(local.columns), mart
            assert len(local) > 0, f"{mart} is empty on the fixture lake: nothing compared"
            for column in athena.columns:  # DuckDB and Athena spell some types differently (date vs timestamp)
                if pd.api.types.is_datetime64_any_dtype(athena[column]) or pd.api.types.is_datetime64_any_dtype(local[column]):
                    athena[column], local[column] = pd.to_datetime(athena[column]), pd.to_datetime(local[column])
                    assert athena[column].tolist() == local[column].tolist(), f"{mart}.{column}: timestamps differ"
            pd.testing.assert_frame_equal(athena, local, check_dtype=False, check_exact=False, obj=mart)
    finally:
        con.close()


def contract_types(target_dir: Path) -> dict[tuple[str, str], str]:
    """(mart, column) -> the contract's data_type as that target renders it."""
    nodes = compiled_nodes(target_dir, ("model",))
    return {(n["name"], c["name"]): c["data_type"] for n in nodes.values() if n["name"] in MARTS
            for c in n["columns"].values()}


def test_contract_types_hold_every_value_on_each_adapter(compiled, duckdb_build):
    """Redshift: every string column has a length (a bare VARCHAR is 256 bytes) and the longest value
    of the fixture lake's build, in UTF-8 bytes, fits it: run messages are longer than 256 bytes and
    have multi-byte characters. Athena and DuckDB: plain varchar, the same numeric types."""
    redshift, athena = contract_types(compiled[("redshift", False)]), contract_types(compiled[("athena", False)])
    assert set(redshift) == set(athena) and len(redshift) > 80
    con = duckdb.connect(str(duckdb_build.warehouse), read_only=True)
    try:
        for (mart, column), kind in redshift.items():
            assert "{{" not in kind and "{{" not in athena[(mart, column)], (mart, column)
            if athena[(mart, column)] != "varchar":
                assert kind == athena[(mart, column)], (mart, column)  # only strings differ
                continue
            width = int(kind.removeprefix("varchar(").removesuffix(")"))
            longest = con.sql(f'select max(octet_length(encode("{column}"))) from {mart}').fetchall()[0][0] or 0
            assert longest <= width, f"{mart}.{column}: {longest} bytes do not fit Redshift's {kind}"
        message = redshift[("mart_pipeline_runs", "message")]
        assert message == "varchar(65535)"
        assert con.sql("select max(octet_length(encode(message))) from mart_pipeline_runs").fetchall()[0][0] > 256
    finally:
        con.close()

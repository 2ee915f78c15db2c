"""The same dbt project on Athena and Redshift, proven offline.

- `dbt parse` succeeds for every target;
- `dbt compile` for athena and redshift needs no credentials (no cache, no introspection; the
  incremental branch is forced by the offline_is_incremental var, both ways);
- every compiled model and data test parses with sqlglot in the target's dialect;
- the Athena SQL runs: the Glue tables are emulated in DuckDB from the DDL that
  `run-operation lake_glue_ddl` generates (columns, types, partition projection template), the
  compiled Athena models are transpiled to DuckDB with sqlglot and run in dependency order, and every
  mart equals the one the DuckDB build made from the same lake.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from tests.dbt.conftest import dbt

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
    assert sum(n["resource_type"] == "model" for n in nodes.values()) == 23
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


@pytest.fixture(scope="module")
def glue_ddl(tmp_path_factory) -> list[exp.Create]:
    """The Glue tables that `dbt run-operation lake_glue_ddl` generates, parsed as Athena DDL."""
    res = dbt(["run-operation", "lake_glue_ddl", "--target", "athena", "--args", json.dumps({"s3_uri": S3_URI})],
              tmp_path_factory.mktemp("ddl"), {})
    assert res.success, res.exception
    statements = [s.strip() for s in res.stdout.split(";\n") if s.strip()]
    assert any(s.startswith("-- Redshift") and "CREATE EXTERNAL SCHEMA IF NOT EXISTS nlp_lake" in s for s in statements)
    tables = [sqlglot.parse_one(s, read="athena") for s in statements if s.startswith("CREATE EXTERNAL TABLE")]
    return tables


def table_parts(create: exp.Create) -> dict:
    props = {type(p).__name__: p for p in create.args["properties"].expressions}
    tblprops = {p.this.name: p.args["value"].name for p in create.args["properties"].expressions
                if type(p) is exp.Property}
    partitions = props.get("PartitionedByProperty")
    return {
        "name": create.this.this.name,
        "database": create.this.this.args["db"].name,
        "columns": [(c.name, c.args["kind"]) for c in create.this.expressions],
        "partitions": [(c.name, c.args["kind"]) for c in partitions.this.expressions] if partitions else [],
        "json": "RowFormatSerdeProperty" in props,
        "location": props["LocationProperty"].this.name,
        "template": tblprops.get("storage.location.template"),
        "projection": tblprops,
    }


def test_glue_ddl_describes_the_files_the_lake_holds(glue_ddl, fixture_lake):
    """Glue types match the Parquet types the Spark jobs write; projection covers each partition key."""
    glue_to_arrow = {"STRING": "string", "INT": "int32", "DOUBLE": "double", "BIGINT": "int64", "BOOLEAN": "bool",
                     "ARRAY<STRING>": "list<element: string>"}
    tables = {t["name"]: t for t in map(table_parts, glue_ddl)}
    assert set(tables) == {"curated", "quarantine", "labels", "predictions", "predictions_shadow", "runs", "metrics"}
    for name, table in tables.items():
        if table["json"]:
            assert table["location"] == f"{S3_URI}/{name}/" and not table["partitions"]
            columns = {c for c, _ in table["columns"]}
            if name == "runs":
                assert columns <= set(fixture_lake.runs[0])
            else:   # every field a metric row has is a column (spark_jobs.metrics.MetricRow)
                assert columns == set(asdict(fixture_lake.metrics[0]))
            continue
        assert table["projection"]["projection.enabled"] == "true"
        for key, _ in table["partitions"]:
            assert f"{key}=${{{key}}}" in table["template"]
            assert table["projection"][f"projection.{key}.type"] in ("date", "integer")
        files = sorted(fixture_lake.root.glob(f"{name}/**/*.parquet"))
        schema = pq.read_schema(files[-1])  # the newest: older curated files predate the source column
        for column, glue_type in table["columns"]:
            assert glue_to_arrow[glue_type.sql("hive")] == str(schema.field(column).type), (name, column)


def emulate_glue_catalog(con, tables: list[dict], lake_root: Path) -> None:
    """Each Glue table as a DuckDB view over the local lake, read the way Athena would: the
    projection template picks the partition folders, the declared types are what queries see, JSON
    tables read every file under their location."""
    con.execute("attach ':memory:' as awsdatacatalog")
    for t in tables:
        con.execute(f"create schema if not exists awsdatacatalog.{t['database']}")
        local = lambda uri: str(lake_root) + uri[len(S3_URI):]  # noqa: E731
        columns = t["columns"] + t["partitions"]
        typed = ", ".join(f'cast("{c}" as {k.sql("duckdb")}) as "{c}"' for c, k in columns)
        if t["json"]:
            keys = ", ".join(f"'{c}': '{k.sql('duckdb')}'" for c, k in columns)
            reader = f"read_json('{local(t['location'])}**/*.json', format = 'auto', columns = {{{keys}}})"
        else:
            folders = t["template"]
            for key, _ in t["partitions"]:
                folders = folders.replace(f"${{{key}}}", "*")
            reader = f"read_parquet('{local(folders)}*.parquet', hive_partitioning = true, union_by_name = true)"
        con.execute(f"create view awsdatacatalog.{t['database']}.{t['name']} as select {typed} from {reader}")


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


def test_athena_sql_transpiled_to_duckdb_gives_the_duckdb_builds_marts(compiled, glue_ddl, duckdb_build):
    assert duckdb_build.result.success
    con = duckdb.connect()
    emulate_glue_catalog(con, [table_parts(t) for t in glue_ddl], duckdb_build.lake.root)
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


def test_apply_creates_the_glue_tables_through_the_athena_api(tmp_path):
    """`lake_glue_ddl` with apply sends each Athena statement to Athena (a moto server here)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
        client = lambda name: boto3.client(name, endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",  # noqa: E731
                                           aws_access_key_id="testing", aws_secret_access_key="testing")
        client("s3").create_bucket(Bucket="athena-results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        res = dbt(["run-operation", "lake_glue_ddl", "--target", "athena", "--args", "{apply: true}"], tmp_path,
                  {**aws, "NLP_LAKE_S3_URI": S3_URI, "NLP_ATHENA_S3_STAGING_DIR": "s3://athena-results/"})
        assert res.success, res.exception
        athena = client("athena")
        sent = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"]
                for i in athena.list_query_executions()["QueryExecutionIds"]]
        sent = sorted(q.split("*/", 1)[-1].strip() for q in sent)  # dbt prefixes a query comment
        printed = sorted(s.strip() for s in res.stdout.split(";\n")
                         if s.strip().startswith(("CREATE DATABASE", "CREATE EXTERNAL TABLE")))
        assert len(printed) == 8 and sent == printed
    finally:
        server.stop()

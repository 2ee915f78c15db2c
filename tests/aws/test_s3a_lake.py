"""The lake on an s3a:// root, against the moto server: Spark commits Iceberg tables to S3 through s3a,
pyiceberg (run records, the checks before a command, DuckDB's inputs) reads and appends the same tables
through S3, and an older lake's files on S3 migrate."""
from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from spark_jobs import migration, runlog, tables
from spark_jobs.lake import Lake
from spark_jobs.runlog import RunRecord
from tests.aws.conftest import client

BUCKET = "nlp-s3a-lake"


@pytest.fixture
def s3a_settings(spark, moto_url, aws_settings, tmp_path):
    """The shared SparkSession predates the moto server, so s3a is pointed at it at run time. The catalog
    is the local one (a SQLite file here) with the tables' files on S3, as a laptop against a bucket."""
    client("s3").create_bucket(Bucket=BUCKET)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    s3a = {
        "fs.s3a.endpoint": moto_url, "fs.s3a.endpoint.region": "us-east-1", "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false", "fs.s3a.access.key": "testing", "fs.s3a.secret.key": "testing",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }
    before = {key: hadoop.get(key) for key in s3a}
    for key, value in s3a.items():
        hadoop.set(key, value)
    yield aws_settings(lake_root=f"s3a://{BUCKET}/lake", lake_catalog_db=str(tmp_path / "catalog.db"))
    for key, value in before.items():   # the session's other tests see the configuration they had
        hadoop.unset(key) if value is None else hadoop.set(key, value)


def keys(prefix: str = "lake/") -> list[str]:
    return [o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_spark_commits_the_lake_tables_to_s3_and_pyiceberg_reads_them(spark, s3a_settings):
    rows = spark.range(3).withColumn("text", F.lit("good")).withColumn("ingest_date", F.lit("2026-11-01"))
    date = F.col("ingest_date") == "2026-11-01"
    first = tables.write_partitions(spark, s3a_settings, "curated", rows.withColumn("batch_id", F.lit("b1")),
                                    date, "b1", None)
    better = spark.range(5, 7).withColumn("text", F.lit("better")).withColumn("ingest_date", F.lit("2026-11-01"))
    tables.write_partitions(spark, s3a_settings, "curated", better.withColumn("batch_id", F.lit("b2")), date, "b2", first)
    runlog.write(s3a_settings, RunRecord(stage="ingest", ingest_date="2026-11-01", run_id="b2", status="succeeded"))

    # what readers see: the one committed batch, through Spark and through pyiceberg (no JVM)
    read = tables.read(spark, s3a_settings, "curated")
    assert sorted((r.id, r.text) for r in read.collect()) == [(5, "better"), (6, "better")]
    assert Lake(s3a_settings).ingested_dates() == ["2026-11-01"]
    assert Lake(s3a_settings).dates("curated") == ["2026-11-01"]
    scanned = tables.load_table(s3a_settings, "curated").scan().to_arrow()
    assert sorted(scanned.column("id").to_pylist()) == [5, 6]

    # the files are on S3 under the warehouse, none under a name Athena skips
    found = keys()
    assert any(k.startswith("lake/nlp_lake/curated/data/ingest_date=2026-11-01/") and k.endswith(".parquet")
               for k in found)
    assert any(k.startswith("lake/nlp_lake/curated/metadata/") for k in found)
    assert any(k.startswith("lake/nlp_lake/runs/data/") for k in found)  # run records: pyiceberg on S3
    assert not [k for k in found if any(part.startswith(("_", ".")) for part in k.split("/"))]
    metadata = tables.metadata_locations(s3a_settings)
    assert metadata["curated"].startswith(f"s3a://{BUCKET}/lake/nlp_lake/curated/metadata/")


def test_an_old_lake_on_s3_migrates_its_zones_and_run_records(s3a_settings):
    s3 = client("s3")
    record = {"stage": "ingest", "ingest_date": "2026-11-01", "run_id": "r1", "status": "succeeded", "rows_in": 3}
    s3.put_object(Bucket=BUCKET, Key="lake/_runs/stage=ingest/ingest_date=2026-11-01/r1.json",
                  Body=json.dumps(record).encode())
    s3.put_object(Bucket=BUCKET, Key="lake/_quality/ingest_date=2026-11-01/validation.json", Body=b"{}")
    done = migration.migrate(s3a_settings)
    assert done == ["_runs -> runs", "_quality -> quality", "1 run records (JSON) -> the runs table"]
    found = set(keys())
    assert "lake/quality/ingest_date=2026-11-01/validation.json" in found
    assert "lake/legacy/runs/stage=ingest/ingest_date=2026-11-01/r1.json" in found
    assert not [k for k in found if k.startswith(("lake/_runs/", "lake/_quality/"))]
    (migrated,) = runlog.records(s3a_settings)
    assert (migrated["run_id"], migrated["status"], migrated["rows_in"]) == ("r1", "succeeded", 3)
    assert migration.migrate(s3a_settings) == []  # once

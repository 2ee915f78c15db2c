"""The lake on an s3a:// root, against the moto server: Spark writes and reads Parquet through s3a,
the partition swap works on S3, and the boto3 side (storage.py) lists and reads what Spark wrote."""
from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.lake import Lake, partition_exists, write_partition
from spark_jobs.runlog import RunRecord, write
from tests.aws.conftest import client

BUCKET = "nlp-s3a-lake"


@pytest.fixture
def s3a_settings(spark, moto_url, aws_settings):
    """The shared SparkSession predates the moto server, so s3a is pointed at it at run time."""
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
    yield aws_settings(lake_root=f"s3a://{BUCKET}/lake")
    for key, value in before.items():   # the session's other tests see the configuration they had
        hadoop.unset(key) if value is None else hadoop.set(key, value)


def test_spark_writes_and_reads_the_lake_zones_through_s3a(spark, s3a_settings):
    lake = Lake(s3a_settings)
    curated = lake.partition("curated", "2026-11-01")
    assert curated == f"s3a://{BUCKET}/lake/curated/ingest_date=2026-11-01"
    write_partition(spark, spark.range(3).withColumn("text", F.lit("good")), curated)
    write_partition(spark, spark.range(5, 7).withColumn("text", F.lit("better")), curated)   # replaced whole
    assert sorted((r.id, r.text) for r in spark.read.parquet(curated).collect()) == [(5, "better"), (6, "better")]
    predictions = lake.partition("predictions", "2026-11-02", model_version="3")
    write_partition(spark, spark.range(2).withColumn("label", F.lit("positive")), predictions)

    # boto3 (storage.py) sees what Spark wrote, and no staging copy is left behind
    assert lake.dates("curated") == ["2026-11-01"]
    assert lake.dates("predictions") == ["2026-11-02"]
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET, Prefix="lake/")["Contents"]]
    assert keys and all(k.endswith(".parquet") for k in keys)
    assert not [k for k in keys if "/_staging-" in k or "/_old-" in k]
    assert partition_exists(spark, curated)
    assert not partition_exists(spark, lake.partition("curated", "2026-11-03"))

    # partition discovery over the zone, as dbt and the jobs read it
    (row,) = spark.read.parquet(lake.zone("predictions")).select("ingest_date", "model_version").distinct().collect()
    assert (str(row.ingest_date), row.model_version) == ("2026-11-02", 3)


def test_run_records_go_to_s3_and_come_back(s3a_settings):
    record = RunRecord(stage="ingest", ingest_date="2026-11-01", status="succeeded", rows_in=3, rows_out=2)
    uri = write(s3a_settings, record)
    assert uri.startswith(f"s3a://{BUCKET}/lake/runs/stage=ingest/ingest_date=2026-11-01/")
    assert json.loads(storage.read_text(uri))["rows_out"] == 2
    assert storage.list_files(f"s3a://{BUCKET}/lake/runs") == [uri]


def test_an_old_lakes_run_records_move_to_the_new_zone_on_s3(s3a_settings):
    s3 = client("s3")
    s3.put_object(Bucket=BUCKET, Key="lake/_runs/stage=ingest/ingest_date=2026-11-01/r1.json", Body=b'{"a": 1}')
    s3.put_object(Bucket=BUCKET, Key="lake/_quality/ingest_date=2026-11-01/validation.json", Body=b"{}")
    assert Lake(s3a_settings).migrate_legacy_zones() == ["runs", "quality"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="lake/")["Contents"]}
    assert {"lake/quality/ingest_date=2026-11-01/validation.json",
            "lake/runs/stage=ingest/ingest_date=2026-11-01/r1.json"} <= keys
    assert not [k for k in keys if k.startswith(("lake/_runs/", "lake/_quality/"))]

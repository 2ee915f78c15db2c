"""The lake on an s3a:// root, against the moto server: Spark commits Iceberg tables to S3 through s3a,
pyiceberg (run records, the checks before a command, DuckDB's inputs) reads and appends the same tables
through S3, an older lake's files on S3 migrate, and the ingest command itself (a process of its own)
killed mid-write or run twice at once for one date leaves exactly one whole batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pyspark.sql import functions as F

from spark_jobs import ingest, migration, replay, runlog, tables
from spark_jobs.lake import Lake
from spark_jobs.runlog import RunRecord
from spark_jobs.settings import PROJECT_ROOT
from spark_jobs.vocabulary import ExitCode
from tests.aws.conftest import client, settings_under
from tests.killed_ingest import assert_whole_after_kill, seen

BUCKET = "nlp-s3a-lake"
DATE = "2026-11-20"
ROWS = 20_000  # enough that the kill lands while the batch is being written


@pytest.fixture(scope="module")
def s3a(spark, moto_url):
    """The shared SparkSession predates the moto server, so s3a is pointed at it at run time (and back
    afterwards: the session's other tests see the configuration they had)."""
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
    yield
    for key, value in before.items():
        hadoop.unset(key) if value is None else hadoop.set(key, value)


@pytest.fixture
def s3a_settings(s3a, aws_settings, tmp_path):
    """The catalog is the local one (a SQLite file here) with the tables' files on S3, as a laptop
    against a bucket."""
    return aws_settings(lake_root=f"s3a://{BUCKET}/lake", lake_catalog_db=str(tmp_path / "catalog.db"))


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


# --- the ingest command on S3: killed mid-write, and two at once for one date ----------------------------
def lake_on_s3(root, name: str):
    return settings_under(root, lake_root=f"s3a://{BUCKET}/{name}", lake_catalog_db=str(root / "catalog.db"),
                          spark_master="local[1]", spark_driver_memory="2g")


def land(settings, rows: int, seed: int) -> None:
    """One CSV of synthetic reviews landed for DATE (replacing what was landed)."""
    body = replay.synthetic_corpus(rows, 1, seed).to_csv(index=False).encode()
    key = Lake(settings).partition("raw", DATE).split(f"{BUCKET}/", 1)[1] + "/source=reviews/batch.csv"
    client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


def data_files(settings) -> int:
    prefix = settings.lake_root.split(f"{BUCKET}/", 1)[1] + f"/{settings.lake_schema}/"
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sum(o["Key"].endswith(".parquet") for page in pages for o in page.get("Contents", []))


def ingest_process(settings) -> subprocess.Popen:
    """`python -m spark_jobs ingest` in a process (and JVM) of its own, on the moto server's S3 (the
    environment points AWS clients at it) and the lake's catalog file."""
    flags = [f"--{name.replace('_', '-')}={getattr(settings, name)}" for name in
             ("lake_root", "lake_catalog_db", "mlflow_tracking_uri", "spark_master", "spark_driver_memory")]
    return subprocess.Popen([sys.executable, "-m", "spark_jobs", "ingest", *flags, f"--date={DATE}"], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def uninterrupted(s3a, spark, tmp_path_factory):
    """What one uninterrupted ingest of the landed batch gives readers, per table."""
    settings = lake_on_s3(tmp_path_factory.mktemp("uninterrupted"), "uninterrupted")
    land(settings, ROWS, seed=2)
    ingest.run(spark, settings, DATE)
    return seen(spark, settings, DATE)


@pytest.mark.slow
def test_on_s3_an_ingest_killed_mid_write_leaves_the_tables_whole_and_a_rerun_matches(spark, s3a, uninterrupted,
                                                                                      tmp_path):
    settings = lake_on_s3(tmp_path, "killed")
    land(settings, 300, seed=1)
    ingest.run(spark, settings, DATE)
    before = seen(spark, settings, DATE)
    snapshots = {zone: tables.current_snapshot(settings, zone) for zone in tables.BATCHED}
    files = data_files(settings)

    land(settings, ROWS, seed=2)
    proc = ingest_process(settings)
    deadline = time.monotonic() + 300
    try:
        while data_files(settings) == files:  # the new batch's first data file is on S3: it is writing
            assert proc.poll() is None, f"ingest ended before it started writing: {proc.stdout.read()[-2000:]}"
            assert time.monotonic() < deadline, "ingest never started writing"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM too
        proc.wait()

    assert_whole_after_kill(spark, settings, DATE, before, snapshots)
    ingest.run(spark, settings, DATE)  # nothing of the dead run holds the date
    assert seen(spark, settings, DATE) == uninterrupted
    assert len(uninterrupted["curated"]) > ROWS * 0.9


@pytest.mark.slow
def test_on_s3_two_ingests_of_one_date_at_once_commit_one_batch_and_refuse_the_other(spark, s3a, uninterrupted,
                                                                                     tmp_path):
    settings = lake_on_s3(tmp_path, "twice")
    land(settings, ROWS, seed=2)
    first, second = ingest_process(settings), ingest_process(settings)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    codes = [first.returncode, second.returncode]

    assert sorted(codes) == [0, ExitCode.LOCKED], outputs
    refused = outputs[codes.index(ExitCode.LOCKED)]
    assert f"ingest {DATE}: refused, curated: another run committed the same partition while this one ran" in refused
    # readers see the winner's batch, whole and once: what one uninterrupted ingest gives
    assert seen(spark, settings, DATE) == uninterrupted
    (won,) = [r for r in runlog.records(settings) if r["stage"] == "ingest" and r["status"] == "succeeded"]
    assert tables.committed(settings) == {DATE: won["run_id"]}

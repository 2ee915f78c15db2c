"""The lake's Iceberg tables: one commit per write, refused when another run committed the same
partition meanwhile, schema evolved in place, readers see committed batches only; older lakes migrate."""
import dataclasses
import json
import os

import pytest
from pyspark.sql import functions as F

from spark_jobs import migration, runlog, storage, tables
from spark_jobs.lake import Lake
from spark_jobs.runlog import RunRecord

D1, D2 = "2026-11-01", "2026-11-02"


def rows(spark, ids, date, batch, **extra):
    df = spark.range(*ids).withColumn("ingest_date", F.lit(date)).withColumn("batch_id", F.lit(batch))
    for name, value in extra.items():
        df = df.withColumn(name, F.lit(value))
    return df


def write(spark, settings, df, date, run_id):
    found_at = tables.current_snapshot(settings, "curated")
    return tables.write_partitions(spark, settings, "curated", df, F.col("ingest_date") == date, run_id, found_at)


def ids(spark, settings, date=None):
    df = spark.table(tables.table(spark, settings, "curated"))
    df = df.where(F.col("ingest_date") == date) if date else df
    return sorted(r.id for r in df.collect())


def succeed(settings, date, batch):
    runlog.write(settings, RunRecord(stage="ingest", ingest_date=date, run_id=batch, status="succeeded"))


def test_a_write_replaces_its_date_in_one_commit_and_leaves_the_other_dates(spark, settings):
    write(spark, settings, rows(spark, (0, 3), D1, "b1"), D1, "b1")
    before = write(spark, settings, rows(spark, (10, 12), D2, "b2"), D2, "b2")
    snapshot = write(spark, settings, rows(spark, (5, 7), D1, "b3"), D1, "b3")
    assert ids(spark, settings, D1) == [5, 6] and ids(spark, settings, D2) == [10, 11]
    assert tables.current_snapshot(settings, "curated") == snapshot
    # the commit names its run (lineage), and the replaced rows stay reachable by time travel
    (summary,) = spark.sql(f"SELECT summary FROM {tables.table(spark, settings, 'curated')}.snapshots "
                           f"WHERE snapshot_id = {snapshot}").collect()
    assert summary.summary["run-id"] == "b3"
    then = spark.sql(f"SELECT id FROM {tables.table(spark, settings, 'curated')} VERSION AS OF {before} "
                     f"WHERE ingest_date = '{D1}'").collect()
    assert sorted(r.id for r in then) == [0, 1, 2]
    assert Lake(settings).dates("curated") == [D1, D2]


def test_a_write_of_no_rows_empties_the_date(spark, settings):
    write(spark, settings, rows(spark, (0, 3), D1, "b1"), D1, "b1")
    write(spark, settings, rows(spark, (0, 0), D1, "b2"), D1, "b2")
    assert ids(spark, settings, D1) == []


def test_a_failing_write_leaves_the_table_as_it_was(spark, settings):
    write(spark, settings, rows(spark, (0, 3), D1, "b1"), D1, "b1")
    before = tables.current_snapshot(settings, "curated")
    boom = rows(spark, (0, 10), D1, "b2").withColumn(
        "id", F.when(F.col("id") == 7, F.raise_error("disk on fire")).otherwise(F.col("id")))
    with pytest.raises(Exception, match="disk on fire"):
        write(spark, settings, boom, D1, "b2")
    assert ids(spark, settings, D1) == [0, 1, 2]
    assert tables.current_snapshot(settings, "curated") == before


def test_a_commit_is_refused_when_another_run_committed_the_same_date_meanwhile(spark, settings):
    write(spark, settings, rows(spark, (0, 3), D1, "b1"), D1, "b1")
    found_at = tables.current_snapshot(settings, "curated")   # run A starts
    write(spark, settings, rows(spark, (5, 6), D1, "b2"), D1, "b2")  # run B commits the same date
    with pytest.raises(tables.ConcurrentCommit, match="curated: another run committed the same partition"):
        tables.write_partitions(spark, settings, "curated", rows(spark, (8, 9), D1, "b3"),
                                F.col("ingest_date") == D1, "b3", found_at)
    assert ids(spark, settings, D1) == [5]  # B's rows, whole
    # another date does not conflict: two dates may be ingested at once
    tables.write_partitions(spark, settings, "curated", rows(spark, (20, 21), D2, "b4"),
                            F.col("ingest_date") == D2, "b4", found_at)
    assert ids(spark, settings, D2) == [20]


def test_two_first_runs_racing_to_create_the_table_commit_one_and_refuse_the_other_on_the_same_date(spark, settings):
    # runs A and B both start before the table exists (found_at None); B creates it with its rows of D1
    tables.write_partitions(spark, settings, "curated", rows(spark, (0, 3), D1, "b"), F.col("ingest_date") == D1,
                            "b", None)
    with pytest.raises(tables.ConcurrentCommit, match="curated: another run committed the same partition"):
        tables.write_partitions(spark, settings, "curated", rows(spark, (5, 6), D1, "a"), F.col("ingest_date") == D1,
                                "a", None)
    assert ids(spark, settings, D1) == [0, 1, 2]
    # A run of another date that found no table writes its date next to B's
    tables.write_partitions(spark, settings, "curated", rows(spark, (9, 10), D2, "c"), F.col("ingest_date") == D2,
                            "c", None)
    assert ids(spark, settings) == [0, 1, 2, 9]


def test_a_new_column_evolves_the_table_in_place(spark, settings):
    write(spark, settings, rows(spark, (0, 2), D1, "b1"), D1, "b1")
    write(spark, settings, rows(spark, (5, 6), D2, "b2", source="reviews"), D2, "b2")
    got = {r.id: r.source for r in spark.table(tables.table(spark, settings, "curated")).collect()}
    assert got == {0: None, 1: None, 5: "reviews"}


def test_readers_see_a_dates_rows_only_once_its_ingest_run_succeeded(spark, settings):
    lake = Lake(settings)
    write(spark, settings, rows(spark, (0, 3), D1, "b1"), D1, "b1")
    assert tables.read(spark, settings, "curated").count() == 0 and not lake.is_ingested(D1)
    succeed(settings, D1, "b1")
    assert tables.read(spark, settings, "curated").count() == 3 and lake.ingested_dates() == [D1]
    # a later batch of the date, killed before its run record: readers keep seeing nothing half-done
    write(spark, settings, rows(spark, (7, 8), D1, "b2"), D1, "b2")
    assert not lake.is_ingested(D1) and tables.read(spark, settings, "curated").count() == 0
    succeed(settings, D1, "b2")
    assert [r.id for r in tables.read(spark, settings, "curated", [D1]).collect()] == [7]
    assert tables.read(spark, settings, "labels") is None  # no such table yet


def test_the_runs_table_takes_appends_from_any_process_and_reads_back_in_order(settings):
    first = RunRecord(stage="ingest", ingest_date=D1, status="succeeded", rows_in=3, outputs={"curated": 2},
                      started_at="2026-11-01T10:00:00.000+00:00")
    second = RunRecord(stage="infer", ingest_date=D1, status="failed", message="boom",
                       started_at="2026-11-01T10:00:00.001+00:00")  # a millisecond later: read back after it
    runlog.write(settings, first)
    runlog.write(settings, second)
    got = runlog.records(settings)
    assert [(r["run_id"], r["status"]) for r in got] == [(first.run_id, "succeeded"), (second.run_id, "failed")]
    assert got[0]["outputs"] == {"curated": 2} and got[0]["rows_in"] == 3
    assert [r["run_id"] for r in runlog.records(settings, stage="infer")] == [second.run_id]


def test_no_zone_and_no_table_location_starts_with_an_underscore_or_a_dot(settings):
    """Athena and Hive skip such locations: a table there would read as empty."""
    from spark_jobs.lake import ZONES

    assert not [z for z in ZONES + (settings.lake_schema,) if z.startswith(("_", "."))]
    runlog.write(settings, RunRecord(stage="ingest", ingest_date=D1))
    location = tables.load_table(settings, "runs").location()
    assert location.endswith(f"/{settings.lake_schema}/runs") and "/_" not in location.split("://")[-1]


def test_a_lake_under_the_old_zone_names_and_files_is_migrated_once(spark, settings):
    lake = Lake(settings)
    old_run = RunRecord(stage="train", ingest_date=D1, status="succeeded", rows_in=9)
    storage.put_text(os.path.join(lake.root, "_runs", "stage=train", f"ingest_date={D1}", "r1.json"),
                     json.dumps(dataclasses.asdict(old_run)))
    docs = os.path.join(lake.root, "_quality", f"ingest_date={D1}", "data_docs", "index.html")
    storage.put_text(docs, "<html>")
    rows(spark, (0, 3), D1, "x").drop("ingest_date", "batch_id").withColumn("text", F.lit("t")) \
        .write.parquet(os.path.join(lake.root, "curated", f"ingest_date={D1}"))

    done = migration.migrate(settings, spark, log=lambda _: None)
    assert done == ["_runs -> runs", "_quality -> quality", "1 run records (JSON) -> the runs table",
                    "curated (Parquet folders) -> the curated table"]
    assert os.path.exists(os.path.join(lake.zone("quality"), f"ingest_date={D1}", "data_docs", "index.html"))
    assert [r["rows_in"] for r in runlog.records(settings, stage="train")] == [9]
    assert lake.ingested_dates() == [D1]  # the migrated batch is committed
    assert sorted(r.id for r in tables.read(spark, settings, "curated").collect()) == [0, 1, 2]
    assert os.path.isdir(os.path.join(lake.root, "legacy", "curated"))
    assert not os.path.exists(os.path.join(lake.root, "_runs")) and not os.path.exists(os.path.join(lake.root, "curated"))
    assert migration.migrate(settings, spark, log=lambda _: None) == []


def test_maintain_compacts_and_deletes_only_old_orphans_and_no_row_changes(spark, settings):
    from spark_jobs import maintain

    for n in range(4):
        succeed(settings, D1, f"r{n}")  # the runs table: one file per record
    write(spark, settings, rows(spark, (0, 50), D1, "r3"), D1, "r3")
    data = os.path.join(settings.path("lake_root"), settings.lake_schema, "curated", "data")
    old, fresh = os.path.join(data, "old-orphan.parquet"), os.path.join(data, "fresh-orphan.parquet")
    for path in (old, fresh):
        open(path, "wb").write(b"left by a killed write")
    os.utime(old, (0, 0))  # 1970: well past orphan_file_days
    before = ids(spark, settings), [r["run_id"] for r in runlog.records(settings)]

    rec = maintain.run(spark, settings)
    assert rec.status == "succeeded" and rec.outputs["tables"]["runs"]["compacted"] == 4
    assert rec.outputs["tables"]["curated"]["orphans"] == 1
    assert not os.path.exists(old) and os.path.exists(fresh)  # a write may still be running
    runs = tables.load_table(settings, "runs")
    assert len(runs.inspect.files()) == 2  # the four record files compacted into one, and maintain's record
    assert (ids(spark, settings), [r["run_id"] for r in runlog.records(settings)][:4]) == before

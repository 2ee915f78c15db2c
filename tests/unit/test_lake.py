"""Atomic partition replacement."""
import os

import pytest
from pyspark.sql import functions as F

from spark_jobs.lake import Lake, recover, write_partition


def read_ids(spark, path):
    return sorted(r.id for r in spark.read.parquet(path).collect())


def test_write_replaces_the_partition_and_leaves_no_staging(spark, settings):
    target = Lake(settings).partition("curated", "2026-11-01")
    write_partition(spark, spark.range(3), target)
    write_partition(spark, spark.range(5, 7), target)
    assert read_ids(spark, target) == [5, 6]
    assert os.listdir(os.path.dirname(target)) == ["ingest_date=2026-11-01"]


def test_a_failing_write_leaves_the_previous_partition_intact(spark, settings):
    target = Lake(settings).partition("curated", "2026-11-01")
    write_partition(spark, spark.range(3), target)
    boom = spark.range(10).withColumn("x", F.when(F.col("id") == 7, F.raise_error("disk on fire")).otherwise(1))
    with pytest.raises(Exception, match="disk on fire"):
        write_partition(spark, boom, target)
    assert read_ids(spark, target) == [0, 1, 2]
    # the half-written staging copy is hidden from readers and cleaned by the next write
    write_partition(spark, spark.range(1), target)
    assert os.listdir(os.path.dirname(target)) == ["ingest_date=2026-11-01"]


def test_lake_lists_dates_in_order(spark, settings):
    lake = Lake(settings)
    for d in ("2026-11-03", "2026-11-01"):
        write_partition(spark, spark.range(1), lake.partition("labels", d))
    assert lake.dates("labels") == ["2026-11-01", "2026-11-03"]
    assert lake.dates("curated") == []


def test_a_swap_interrupted_between_its_renames_is_put_back(spark, settings):
    target = Lake(settings).partition("curated", "2026-11-01")
    write_partition(spark, spark.range(3), target)
    aside = os.path.join(os.path.dirname(target), "_old-ingest_date=2026-11-01-deadbeef")
    os.rename(target, aside)  # what a kill after the first rename leaves
    recover(spark, target)  # what every write does first
    assert read_ids(spark, target) == [0, 1, 2]
    write_partition(spark, spark.range(1), target)
    assert read_ids(spark, target) == [0]
    assert os.listdir(os.path.dirname(target)) == ["ingest_date=2026-11-01"]


def test_no_zone_and_no_dbt_source_location_starts_with_an_underscore_or_a_dot():
    """Athena and Hive skip such locations: a table there would read as empty."""
    import yaml

    from spark_jobs.lake import ZONES
    from spark_jobs.settings import PROJECT_ROOT

    assert not [z for z in ZONES if z.startswith(("_", "."))]
    sources = yaml.safe_load((PROJECT_ROOT / "dbt" / "models" / "staging" / "_lake__sources.yml").read_text())
    for table in sources["sources"][0]["tables"]:
        meta = table["config"]["meta"]
        location = meta.get("location") or meta["files"].split("/")[0]
        assert not location.startswith(("_", ".")) and location in ZONES, table["name"]


def test_a_lake_written_under_the_old_zone_names_is_moved_once(settings):
    from spark_jobs import storage

    lake = Lake(settings)
    old_run = os.path.join(lake.root, "_runs", "stage=ingest", "ingest_date=2026-11-01", "r1.json")
    both = os.path.join(lake.root, "_runs", "stage=dbt", "ingest_date=all", "r2.json")
    docs = os.path.join(lake.root, "_quality", "ingest_date=2026-11-01", "data_docs", "index.html")
    for path, text in ((old_run, "old"), (both, "old"), (docs, "<html>")):
        storage.put_text(path, text)
    storage.put_text(os.path.join(lake.zone("runs"), "stage=dbt", "ingest_date=all", "r2.json"), "new")

    assert lake.migrate_legacy_zones() == ["runs", "quality"]
    assert storage.read_text(os.path.join(lake.zone("runs"), "stage=ingest", "ingest_date=2026-11-01", "r1.json")) == "old"
    assert storage.read_text(os.path.join(lake.zone("runs"), "stage=dbt", "ingest_date=all", "r2.json")) == "new"
    assert os.path.exists(os.path.join(lake.zone("quality"), "ingest_date=2026-11-01", "data_docs", "index.html"))
    assert not os.path.exists(os.path.join(lake.root, "_runs")) and not os.path.exists(os.path.join(lake.root, "_quality"))
    assert lake.migrate_legacy_zones() == []

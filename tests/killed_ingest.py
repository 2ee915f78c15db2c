"""What an ingest killed mid-write may leave, for the kill tests on a local lake and on S3."""
from __future__ import annotations

from spark_jobs import tables
from spark_jobs.lake import Lake


def rows_read(spark, settings, date: str, zone: str = "curated") -> list[tuple]:
    """What readers see of a date (committed batches only), less what names the run or the lake's place.
    A reader that starts now: this session's catalog may still hold the table as it was before the
    killed run's commits (Iceberg's Spark catalog caches tables)."""
    if tables.exists(spark, settings, zone):
        spark.sql(f"REFRESH TABLE {tables.table(spark, settings, zone)}")
    df = tables.read(spark, settings, zone, [date])
    return sorted(tuple(r) for r in df.drop("batch_id", "source_file").collect())


def seen(spark, settings, date: str) -> dict[str, list[tuple]]:
    return {zone: rows_read(spark, settings, date, zone) for zone in tables.BATCHED}


def assert_whole_after_kill(spark, settings, date: str, before: dict, snapshots: dict) -> None:
    """Each table is at its old snapshot or at one whole commit of the new batch, and readers see the
    old batch everywhere (nothing committed yet) or nothing of the date (its run never succeeded)."""
    after_kill = seen(spark, settings, date)
    unchanged = {zone: tables.current_snapshot(settings, zone) == snapshots[zone] for zone in tables.BATCHED}
    if all(unchanged.values()):
        assert after_kill == before and Lake(settings).is_ingested(date)
    else:
        assert all(rows == [] for rows in after_kill.values()) and not Lake(settings).is_ingested(date), (
            unchanged, {z: len(r) for z, r in after_kill.items()}, {z: len(r) for z, r in before.items()})

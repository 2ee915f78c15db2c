"""Brings a lake written by an older version up to date, once; every command calls it first.

1. Zones under `_runs`, `_quality`, `_locks` (names Athena skips) move to `runs`, `quality`, `locks`.
2. Run records kept as JSON files under `runs/` are appended to the runs table.
3. Zones kept as folders of Parquet (`curated/ingest_date=D/...`) become rows of their Iceberg tables
   (Spark, so only where a session is at hand): each date as one batch, `migrated-<D>`, with a
   succeeded ingest record as its commit record. The folders then move to `legacy/` (delete them
   when you no longer need them).
"""
from __future__ import annotations

import json

from . import storage, tables
from .settings import Settings

LEGACY_NAMES = {"runs": "_runs", "quality": "_quality", "locks": "_locks"}  # zone -> its name before
PARQUET_ZONES = ("curated", "quarantine", "duplicates", "labels", "predictions", "predictions_shadow")


def migrate(settings: Settings, spark=None, log=print) -> list[str]:
    """What was migrated, in words (empty: nothing to do)."""
    root = settings.path("lake_root")
    done = []
    for zone, legacy in LEGACY_NAMES.items():
        old = storage.join(root, legacy)
        if storage.list_files(old, include_hidden=True):
            storage.move_tree(old, storage.join(root, zone))
            done.append(f"{legacy} -> {zone}")
    done += _json_run_records(settings, root)
    if spark is not None:
        done += _parquet_zones(spark, settings, root)
    for line in done:
        log(f"lake: migrated {line}")
    return done


def _json_run_records(settings: Settings, root: str) -> list[str]:
    from .runlog import RunRecord, write

    folder = storage.join(root, "runs")
    files = [f for f in storage.list_files(folder) if f.endswith(".json")]
    if not files:
        return []
    known = {f for f in RunRecord.__dataclass_fields__}
    for path in files:
        fields = json.loads(storage.read_text(path))
        write(settings, RunRecord(**{k: v for k, v in fields.items() if k in known}))
    storage.move_tree(folder, storage.join(root, "legacy", "runs"))
    return [f"{len(files)} run records (JSON) -> the runs table"]


def _parquet_zones(spark, settings: Settings, root: str) -> list[str]:
    from pyspark.sql import functions as F

    from .runlog import RunRecord, write

    done, batches = [], set()
    for zone in PARQUET_ZONES:
        folder = storage.join(root, zone)
        if not [d for d in storage.list_dirs(folder) if d.startswith("ingest_date=")]:
            continue
        if tables.exists(spark, settings, zone):
            raise RuntimeError(f"{folder} holds Parquet partitions and the table {zone} exists too: move the "
                               "folder aside once you know which is right")
        df = spark.read.option("mergeSchema", "true").parquet(folder)
        df = df.withColumn("ingest_date", F.col("ingest_date").cast("string"))
        if "model_version" in df.columns:
            df = df.withColumn("model_version", F.col("model_version").cast("int"))
        df = df.withColumn("batch_id", F.concat(F.lit("migrated-"), F.col("ingest_date")))
        tables.write_partitions(spark, settings, zone, df, F.lit(True), "migrated", None)
        batches |= {r.ingest_date for r in df.select("ingest_date").distinct().collect()}
        storage.move_tree(folder, storage.join(root, "legacy", zone))
        done.append(f"{zone} (Parquet folders) -> the {zone} table")
    for date in sorted(batches):  # each migrated date's commit record
        write(settings, RunRecord(stage="ingest", ingest_date=date, run_id=f"migrated-{date}", status="succeeded",
                                  message="migrated from the Parquet lake"))
    return done

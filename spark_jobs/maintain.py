"""Keeps the lake's Iceberg tables small and cheap to read (`make maintain`, weekly or so):

1. compaction: rewrite_data_files joins the small files of each partition (the runs table gets one
   file per run record; a day's predictions one per task);
2. expire_snapshots: snapshots older than `snapshot_retention_days` go, with the files only they
   reference (time travel reaches back that far; the newest `KEEP_LAST` snapshots always stay);
3. remove_orphan_files: files no snapshot references (left by a killed job's uncommitted write) once
   older than `orphan_file_days`, so a write still running is never touched.

Each is Iceberg's own Spark procedure and changes no row. One step does, on the embeddings table
only, before the others: the vectors of encoders no run reads any more are deleted
(embedding_store.prune; a model whose vectors are gone encodes its texts again).
"""
from __future__ import annotations

import datetime as dt
import time

from . import embedding_store, tables
from .runlog import RunRecord, progress, stage_run
from .settings import Settings

KEEP_LAST = 5


def procedures(settings: Settings, catalog: str, zone: str, now: dt.datetime) -> list[tuple[str, str]]:
    """(step, SQL) for one table. The values are ours (a validated identifier, computed timestamps):
    nothing a user typed reaches the SQL as text."""
    ident = f"{settings.lake_schema}.{zone}"
    expire_before = (now - dt.timedelta(days=settings.snapshot_retention_days)).strftime("%Y-%m-%d %H:%M:%S")
    orphans_before = (now - dt.timedelta(days=settings.orphan_file_days)).strftime("%Y-%m-%d %H:%M:%S")
    return [
        # a partition with two files or more is rewritten (Iceberg's default waits for five)
        ("compacted", f"CALL {catalog}.system.rewrite_data_files(table => '{ident}', "
                      "options => map('min-input-files', '2'))"),
        ("expired", f"CALL {catalog}.system.expire_snapshots(table => '{ident}', "
                    f"older_than => TIMESTAMP '{expire_before}', retain_last => {KEEP_LAST})"),
        ("orphans", f"CALL {catalog}.system.remove_orphan_files(table => '{ident}', "
                    f"older_than => TIMESTAMP '{orphans_before}')"),
    ]


def run(spark, settings: Settings) -> RunRecord:
    if settings.snapshot_retention_days < 1 or settings.orphan_file_days < 1:
        from .settings import SettingsError

        raise SettingsError("settings snapshot_retention_days and orphan_file_days must be at least 1 "
                            "(a shorter window could delete the files of a write still running)")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    catalog = tables.catalog(spark, settings)
    with stage_run(settings, "maintain", now.strftime("%Y-%m-%d")) as rec:
        done = {}
        for zone in tables.ZONES:
            if not tables.exists(spark, settings, zone):
                continue
            clock, figures = time.monotonic(), {}
            if zone == embedding_store.ZONE:
                figures["pruned"] = sum(embedding_store.prune(spark, settings, rec.run_id).values())
            for step, sql in procedures(settings, catalog, zone, now):
                figures[step] = _count(step, spark.sql(sql).collect())
            done[zone] = figures
            progress("maintain", rec.ingest_date, f"{zone}: {_words(figures)} ({time.monotonic() - clock:.1f}s)")
        rec.outputs["tables"] = done
        rec.message = "; ".join(f"{zone}: {_words(f)}" for zone, f in done.items()) or "no tables yet"
    return rec


def _count(step: str, rows: list) -> int:
    """The procedure's figure worth reporting: files rewritten, data files expired, orphans deleted
    (remove_orphan_files returns one row per file)."""
    if step == "orphans" or not rows:
        return len(rows)
    fields = rows[0].asDict()
    return int(fields.get("rewritten_data_files_count" if step == "compacted" else "deleted_data_files_count") or 0)


def _words(figures: dict[str, int]) -> str:
    pruned = f"{figures['pruned']:,} vectors of unused encoders deleted, " if "pruned" in figures else ""
    return (f"{pruned}{figures['compacted']} files compacted, {figures['expired']} expired files deleted, "
            f"{figures['orphans']} orphan files")

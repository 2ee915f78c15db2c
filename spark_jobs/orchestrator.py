"""Local orchestrator: the same stage order as the cloud state machine (emr/).

    replay (when the lake is empty) -> ingest each pending date -> train (only when there is no
    champion yet: each configured pipeline through the promotion gate) -> infer each date (champion,
    and the challenger in shadow) -> dbt build -> report for each date scored in this run -> retrain
    after each report that raised a critical alert (retrain_auto: the policy in retrain.py decides)

A daily run has one pending date; a first run backfills every landed date and trains on all of them.

Each stage is idempotent, so running the whole thing twice changes no counts.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import infer, ingest, migration, registry, replay, report, retrain, tables, train, warehouse
from .lake import Lake
from .runlog import RunRecord, StageStopped
from .settings import Settings
from .spark import get_spark
from .vocabulary import ExitCode, RunStatus


def pending_dates(settings: Settings) -> list[str]:
    dates = Lake(settings).dates("raw")
    return [d for d in dates if d == settings.date] if settings.date else dates


def run_pipeline(settings: Settings, log=print) -> list[RunRecord]:
    started = time.monotonic()
    lake = Lake(settings)
    migration.migrate(settings, log=log)
    records: list[RunRecord] = []
    if not lake.dates("raw"):
        replay.replay(settings, log=log)
    dates = pending_dates(settings)
    if not dates:
        raise StageStopped(f"nothing to do: no landed batch for {settings.date or 'any date'} under {lake.zone('raw')}",
                           exit_code=ExitCode.BAD_SETTING, status=RunStatus.FAILED)

    # The model registry's client takes a second or two to import, and a new SQLite store as long to
    # create its tables: both happen while the JVM starts and ingest runs.
    registry_opened = threading.Thread(target=registry.open_store, args=(settings,), daemon=True)
    registry_opened.start()
    spark = get_spark(settings, record_classes=True)
    migration.migrate(settings, spark, log=log)
    scored: list[str] = []
    committed = tables.committed(settings)
    for date in dates:
        if settings.date or date not in committed:
            records.append(ingest.run(spark, settings, date))
    registry_opened.join()  # two threads must not create one store's tables at once
    if registry.champion(settings) is None:  # first run: learn from every batch at hand
        records += train.run(spark, settings, dates[-1])
    for date in dates:
        scoring = infer.run(spark, settings, date)
        records += scoring
        if any(r.status == RunStatus.SUCCEEDED for r in scoring):
            scored.append(date)

    # No later stage writes the tables the summary counts: the JVM counts them while dbt and the
    # report (other processes) run.
    with ThreadPoolExecutor(1) as pool:
        counted = pool.submit(lake_rows, spark, settings)
        records.append(warehouse.run(settings))
        alerted = []
        for date in dates:
            if date in scored or settings.date or not os.path.exists(
                    os.path.join(settings.path("reports_dir"), date, "monitoring.html")):
                try:
                    records.append(report.run(settings, date))
                except StageStopped as stop:
                    if stop.exit_code != ExitCode.CRITICAL_ALERT:
                        raise
                    alerted.append(str(stop))  # published with its alerts; the other dates still get theirs
                    if settings.retrain_auto:
                        records += retrain.run(spark, settings, date)
        rows = counted.result()

    summarise(settings, records, rows, time.monotonic() - started, log)
    if alerted:
        raise StageStopped(f"{len(alerted)} report(s) raised critical alerts: " + " | ".join(alerted),
                           exit_code=ExitCode.CRITICAL_ALERT, status=RunStatus.ALERTED)
    return records


SUMMARY_ZONES = ("curated", "quarantine", "duplicates", "predictions", "predictions_shadow")


def lake_rows(spark, settings: Settings) -> dict[str, int]:
    """Rows of each of SUMMARY_ZONES, in the committed batches only."""
    batches = tables.committed(settings)  # looked up once: it scans the curated table

    def rows(zone: str) -> int:
        df = tables.read(spark, settings, zone, batches=batches)
        return 0 if df is None else df.count()

    return {zone: rows(zone) for zone in SUMMARY_ZONES}


def summarise(settings: Settings, records: list[RunRecord], rows: dict[str, int], seconds: float,
              log=print) -> None:
    """The run's closing lines: what was written where (`rows`: lake_rows)."""
    lake = Lake(settings)
    champ = registry.champion(settings)
    reports = sorted(r.outputs["html"] for r in records if r.stage == "report" and "html" in r.outputs)
    log("")
    log(f"Done in {seconds:.0f}s. {sum(r.status == RunStatus.SUCCEEDED for r in records)} stage runs succeeded, "
        f"{sum(r.status == RunStatus.SKIPPED for r in records)} skipped (already done).")
    log(f"  lake        {lake.root}: {len(lake.dates('raw'))} landed dates; curated {rows['curated']:,} rows, "
        f"quarantine {rows['quarantine']:,}, duplicates {rows['duplicates']:,}, predictions {rows['predictions']:,}, "
        f"shadow predictions {rows['predictions_shadow']:,}")
    log(f"  tables      {tables.catalog_db(settings) if settings.lake_catalog == 'local' else 'Glue'}: "
        f"{', '.join(f'{settings.lake_schema}.{z}' for z in tables.ZONES)} (run records: runs)")
    log(f"  data docs   {lake.zone('quality')}/ingest_date=<D>/data_docs/index.html")
    challenger = registry.model_by_alias(settings, registry.CHALLENGER)
    log(f"  mlflow      {settings.mlflow_uri} (artifacts {settings.path('mlflow_artifact_root')}); "
        f"champion: {champ.uri if champ else 'none'}; challenger: {challenger.uri if challenger else 'none'}")
    log(f"  warehouse   {settings.path('warehouse_path')}: "
        f"duckdb {settings.warehouse_path} \"select * from mart_daily_sentiment\"")
    for r in reports:
        log(f"  report      {r}")

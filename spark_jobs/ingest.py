"""Ingest job: one raw partition -> curated, quarantine, duplicates and labels partitions.

    raw files --parse+clean (documents.py, one file per task)--> canonical records
      --GX gate (quality.py)--> blocked? stop with exit code 3, nothing written but the validation
      --row checks--> quarantine (reasons, source file and line, original record)
      --duplicates (same id / same text, in this batch or an earlier one)--> duplicates (listed)
      --> curated, labels

`split` and `labels` are pure DataFrame transforms; `run` is the edge that reads, writes, locks,
and checks that landed = curated + quarantined + duplicates.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import documents, quality, storage
from .lake import Lake, LockedError, lock, write_partition
from .landing import load_sources
from .nlp import label_of_rating
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings
from .vocabulary import RunStatus

CURATED = ["review_id", "text", "title", "rating", "product_id", "department", "class", "source",
           "source_file", "source_line", "text_hash", "text_truncated"]
QUARANTINE = ["review_id", "text", "title", "rating_raw", "product_id", "department", "class", "source",
              "source_file", "source_line", "raw_record", "reasons"]
DUPLICATES = ["review_id", "duplicate_of", "duplicate_reason", "first_seen_on", "source_file", "source_line"]

# Written last, after the four partitions and the reconciliation: a date is ingested only when its
# marker exists. Removed before the first write, so a run killed between two partition swaps
# leaves the date pending (the next `make run` ingests it again) instead of half-done.
COMPLETE_MARKER = "ingest_complete.json"

EXIT_NO_INPUT = 2
EXIT_BLOCKED = 3
EXIT_LOCKED = 8

CLEANED_SCHEMA = documents.PARSED_SCHEMA + ", text_truncated boolean, text_hash string"


def parse_source(spark: SparkSession, folder: str, spec: dict, max_text_chars: int) -> DataFrame:
    """Every file under folder, parsed and cleaned by documents.py inside the executors."""
    files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(folder)
             .select("path", "content"))

    def parse(batches):
        for pdf in batches:
            for path, content in zip(pdf["path"], pdf["content"]):
                for frame in documents.parse_file(path, bytes(content), spec):
                    yield documents.clean(frame, max_text_chars)

    return files.mapInPandas(parse, CLEANED_SCHEMA)


def with_derived(df: DataFrame) -> DataFrame:
    """The columns the gate checks besides the parsed ones: `rating` as an integer where rating_raw
    is a whole number (else null), and `longest_field` (quality.BOUNDED_FIELDS)."""
    whole = F.col("rating_raw").rlike(quality.INTEGER_PATTERN)
    return (df.withColumn("rating", F.when(whole, F.trim("rating_raw").cast("double").cast("int")))
            .withColumn("longest_field", quality.longest_field()))


def split(batch: DataFrame, earlier: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """-> (curated, quarantine, duplicates).

    Rows failing a row check go to quarantine with their reasons. Of the rows that pass, a row is a
    duplicate when its review_id or its text was curated on an earlier date (`earlier`: review_id,
    text_hash, ingest_date), or appeared before it in this batch (by file and line); the first one
    is kept. Every duplicate names the review it duplicates.
    """
    checked = quality.with_reasons(batch)
    quarantine = checked.where(F.size("reasons") > 0).select(*QUARANTINE)
    passed = checked.where(F.size("reasons") == 0)
    order = ["source_file", "source_line"]

    def dup(df, reason, of, seen=F.lit(None).cast("string")):
        return df.select("review_id", of.alias("duplicate_of"), F.lit(reason).alias("duplicate_reason"),
                         seen.alias("first_seen_on"), "source_file", "source_line")

    ranked = passed.withColumn("_id_rank", F.row_number().over(Window.partitionBy("review_id").orderBy(*order)))
    dups = [dup(ranked.where("_id_rank > 1"), "same review_id in batch", F.col("review_id"))]
    rest = ranked.where("_id_rank = 1").drop("_id_rank")

    if earlier is not None:
        seen_ids = earlier.groupBy("review_id").agg(F.min("ingest_date").alias("_seen_on"))
        rest = rest.join(seen_ids, "review_id", "left")
        dups.append(dup(rest.where("_seen_on is not null"), "review_id seen earlier", F.col("review_id"), F.col("_seen_on")))
        rest = rest.where("_seen_on is null").drop("_seen_on")
        seen_texts = (earlier.withColumn("_r", F.row_number().over(Window.partitionBy("text_hash").orderBy("ingest_date", "review_id")))
                      .where("_r = 1").select("text_hash", F.col("review_id").alias("_seen_id"), F.col("ingest_date").alias("_seen_on")))
        rest = rest.join(seen_texts, "text_hash", "left")
        dups.append(dup(rest.where("_seen_id is not null"), "text seen earlier", F.col("_seen_id"), F.col("_seen_on")))
        rest = rest.where("_seen_id is null").drop("_seen_id", "_seen_on")

    by_text = Window.partitionBy("text_hash").orderBy(*order)
    rest = rest.withColumn("_t_rank", F.row_number().over(by_text)).withColumn("_t_first", F.first("review_id").over(by_text))
    dups.append(dup(rest.where("_t_rank > 1"), "same text in batch", F.col("_t_first")))
    curated = rest.where("_t_rank = 1").select(*CURATED)

    duplicates = dups[0]
    for d in dups[1:]:
        duplicates = duplicates.unionByName(d)
    return curated, quarantine, duplicates


def labels(curated: DataFrame) -> DataFrame:
    """Ground truth that came with the texts (ratings), for training and quality monitoring."""
    return curated.where(F.col("rating").isNotNull()).select(
        "review_id", "rating", label_of_rating(F.col("rating")).alias("label"))


def read_batch(spark: SparkSession, settings: Settings, date: str) -> DataFrame:
    lake = Lake(settings)
    raw = lake.partition("raw", date)
    source_dirs = [d for d in storage.list_dirs(raw) if d.startswith("source=")]
    if not source_dirs:
        raise StageStopped(f"ingest {date}: no landed files under {raw} (land some with `make land`)",
                           exit_code=EXIT_NO_INPUT, status=RunStatus.FAILED)
    sources = load_sources(settings)
    frames = []
    for d in source_dirs:
        name = d.split("=", 1)[1]
        if name not in sources:
            raise StageStopped(f"ingest {date}: {raw}/{d} has no mapping in {settings.path('sources_file')}",
                               exit_code=EXIT_NO_INPUT, status=RunStatus.FAILED)
        frames.append(parse_source(spark, storage.join(raw, d), sources[name], settings.max_text_chars)
                      .withColumn("source", F.lit(name)))
    batch = frames[0]
    for f in frames[1:]:
        batch = batch.unionByName(f)
    return with_derived(batch)


def earlier_batches(spark: SparkSession, lake: Lake, date: str) -> DataFrame | None:
    dates = [d for d in lake.dates("curated") if d < date]
    if not dates:
        return None
    return (spark.read.option("basePath", lake.zone("curated"))
            .parquet(*[lake.partition("curated", d) for d in dates])
            .select("review_id", "text_hash", F.col("ingest_date").cast("string")))


def completion_marker(lake: Lake, date: str) -> str:
    return storage.join(lake.partition("quality", date), COMPLETE_MARKER)


def is_complete(lake: Lake, date: str) -> bool:
    """True when an ingest of the date wrote every partition and its counts reconciled."""
    return storage.exists(completion_marker(lake, date))


def ingested_dates(lake: Lake) -> list[str]:
    """Dates whose ingest completed, sorted: what training and promotion may read."""
    return [d for d in lake.dates("labels") if is_complete(lake, d)]


def _gate(settings: Settings, lake: Lake, date: str, batch: DataFrame, rec: RunRecord) -> None:
    quality_dir = lake.partition("quality", date)
    with tempfile.TemporaryDirectory() as docs:
        gate = quality.validate(batch, os.path.join(settings.path("expectations_dir"), "documents.json"),
                                settings.critical_max_failing_share, docs_dir=docs)
        storage.put_text(storage.join(quality_dir, "validation.json"), json.dumps(gate.result_json, indent=1, default=str))
        for root, _, files in os.walk(docs):
            for name in files:
                local = os.path.join(root, name)
                storage.copy_file(local, storage.join(quality_dir, "data_docs", os.path.relpath(local, docs)))
    docs_index = storage.join(quality_dir, "data_docs", "index.html")
    rec.outputs.update({"validation": storage.join(quality_dir, "validation.json"), "data_docs": docs_index})
    if gate.warnings:
        rec.outputs["warnings"] = [w.describe() for w in gate.warnings]
    if gate.blocked:
        failed = "; ".join(o.describe() for o in gate.blocking_failures)
        raise StageStopped(f"ingest {date}: batch blocked by critical expectations: {failed}. "
                           f"Data Docs: {docs_index}", exit_code=EXIT_BLOCKED)


def run(spark: SparkSession, settings: Settings, date: str) -> RunRecord:
    lake = Lake(settings)
    with stage_run(settings, "ingest", date) as rec:
        try:
            with lock(settings, f"ingest-{date}"):
                _ingest(spark, settings, lake, date, rec)
        except LockedError as exc:
            raise StageStopped(f"ingest {date}: refused, {exc}", exit_code=EXIT_LOCKED, status=RunStatus.FAILED) from None
    return rec


def _ingest(spark: SparkSession, settings: Settings, lake: Lake, date: str, rec: RunRecord) -> None:
    timings = rec.outputs.setdefault("seconds", {})
    clock = time.monotonic()
    batch = read_batch(spark, settings, date).cache()
    rec.rows_in = batch.count()
    notes = [r.decode_note for r in batch.select("source_file", "decode_note").where("decode_note is not null").distinct().collect()]
    if notes:
        rec.outputs["read_notes"] = sorted(set(notes))
    timings["read"], clock = round(time.monotonic() - clock, 2), time.monotonic()
    try:
        _gate(settings, lake, date, batch, rec)
    finally:
        timings["validate"], clock = round(time.monotonic() - clock, 2), time.monotonic()

    curated, quarantine, duplicates = split(batch, earlier_batches(spark, lake, date))
    storage.delete(completion_marker(lake, date))
    targets = {z: lake.partition(z, date) for z in ("curated", "quarantine", "duplicates", "labels")}
    write_partition(spark, curated, targets["curated"])
    curated = spark.read.parquet(targets["curated"])
    write_partition(spark, quarantine, targets["quarantine"])
    write_partition(spark, duplicates, targets["duplicates"])
    write_partition(spark, labels(curated), targets["labels"])
    batch.unpersist()

    rec.rows_out = curated.count()
    rec.rows_rejected = spark.read.parquet(targets["quarantine"]).count()
    rec.rows_duplicate = spark.read.parquet(targets["duplicates"]).count()
    truncated = curated.where("text_truncated").count()
    if truncated:
        rec.outputs["texts_truncated"] = truncated
    rec.outputs.update(targets)
    timings["split_write"] = round(time.monotonic() - clock, 2)
    if rec.rows_in != rec.rows_out + rec.rows_rejected + rec.rows_duplicate:
        raise RuntimeError(
            f"ingest {date}: counts do not reconcile: landed {rec.rows_in} != curated {rec.rows_out} "
            f"+ quarantined {rec.rows_rejected} + duplicates {rec.rows_duplicate}")
    storage.put_text(completion_marker(lake, date), json.dumps(
        {"run_id": rec.run_id, "rows_in": rec.rows_in, "curated": rec.rows_out,
         "quarantined": rec.rows_rejected, "duplicates": rec.rows_duplicate}, sort_keys=True) + "\n")


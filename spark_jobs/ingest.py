"""Ingest job: one raw partition -> curated, quarantine, duplicates and labels partitions.

    raw files --parse+clean (documents.py, one file per task)--> canonical records
              --census (census.py: counted by other readers)--> the two counts must agree, per file
      --GX gate (quality.py) and the lost-records rule--> blocked? stop with exit code 3, nothing
        written but the validation
      --row checks--> quarantine (reasons, source file and line, original record)
      --duplicates (same id / same text, in this batch or an earlier one)--> duplicates (listed)
      --> curated, labels

`split` and `labels` are pure DataFrame transforms; `run` is the edge that reads, writes, locks,
and checks that landed = curated + quarantined + duplicates + lost.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import census, data_docs, documents, quality, storage, tables
from .lake import Lake
from .landing import load_sources
from .nlp import label_of_rating
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings
from .vocabulary import ExitCode, RunStatus

CURATED = ["review_id", "text", "title", "rating", "product_id", "department", "class", "source",
           "source_file", "source_line", "text_hash", "text_truncated"]
QUARANTINE = ["review_id", "text", "title", "rating_raw", "product_id", "department", "class", "source",
              "source_file", "source_line", "raw_record", "reasons", "detail"]
DUPLICATES = ["review_id", "duplicate_of", "duplicate_reason", "first_seen_on", "source_file", "source_line"]
ROW_KEY = ("source_file", "source_line")  # where a record starts: one record per key in a batch

CLEANED_SCHEMA = documents.CLEANED_SCHEMA


def landed_files(spark: SparkSession, folder: str) -> DataFrame:
    """Every file under folder, one row each (Spark packs them into tasks by size). A local file is
    read by the Python task itself, from its path: that is cheaper than the JVM reading it and handing
    its bytes over. Elsewhere (S3) Spark reads them, with the cluster's file system and credentials,
    and hands them over in `content`."""
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(folder)
    return files.select("path", "content") if storage.is_s3(folder) else files.select("path")


_FILE_SCHEME = re.compile(r"^file:(//[^/]*)?")  # file:/a, file:///a -> /a


def _with_bytes(files: pd.DataFrame) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each landed_files row, from its content or, for a local file, its path."""
    if "content" in files:
        yield from ((path, bytes(content)) for path, content in zip(files["path"], files["content"]))
    else:
        for path in files["path"]:
            with open(_FILE_SCHEME.sub("", path), "rb") as f:
                yield path, f.read()


def parse_source(spark: SparkSession, folder: str, spec: dict, max_text_chars: int) -> DataFrame:
    """Every file under folder, parsed and cleaned by documents.py inside the executors, handed to
    Spark as Arrow record batches."""
    def parse(batches):
        for files in batches:
            for path, data in _with_bytes(files.to_pandas()):
                yield from documents.read_file(path, data, spec, max_text_chars, quality.may_fail)

    return landed_files(spark, folder).mapInArrow(parse, CLEANED_SCHEMA)


def census_of_source(spark: SparkSession, folder: str, spec: dict) -> list[dict]:
    """One census row per file under folder (census.py), computed in the executors."""
    def count(batches):
        for files in batches:
            yield census.census_frame(list(_with_bytes(files)), spec)

    return [r.asDict() for r in landed_files(spark, folder).mapInPandas(count, census.CENSUS_SCHEMA).collect()]


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
    is kept. Every duplicate names the review it duplicates. The duplicates are found on the rows'
    keys alone (the texts are not shuffled), and curated is what passed less them, by file and line.
    """
    fails = quality.fails_a_check()  # the reasons themselves only for the rows that have some
    detail = F.coalesce("unreadable", "parse_error", F.concat(F.lit("source columns missing: "), "missing_columns"))
    quarantine = quality.with_reasons(batch.where(fails)).withColumn("detail", detail).select(*QUARANTINE)
    passed = batch.where(~fails)
    duplicates = duplicates_of(passed.select("review_id", "text_hash", *ROW_KEY), earlier)
    curated = passed.join(duplicates.select(*ROW_KEY), list(ROW_KEY), "left_anti").select(*CURATED)
    return curated, quarantine, duplicates


def duplicates_of(keys: DataFrame, earlier: DataFrame | None = None) -> DataFrame:
    """The duplicates among the rows whose keys (review_id, text_hash, source_file, source_line) are
    given, as `split` defines them, in the columns of DUPLICATES.

    One pass: each row is ranked among the rows of its review_id, looked up in the earlier batches,
    then ranked among the rows of its text that are still candidates, and gets the first reason that
    applies, in the order of the reasons below. (A frame per reason, in a union, would shuffle and
    sort the batch's keys once per reason.)"""
    by_id = Window.partitionBy("review_id").orderBy(*ROW_KEY)
    rows = keys.withColumn("_id_rank", F.row_number().over(by_id))
    seen_id_on = seen_text_of = seen_text_on = F.lit(None).cast("string")
    if earlier is not None:
        seen_ids = earlier.groupBy("review_id").agg(F.min("ingest_date").alias("_seen_id_on"))
        first_of_text = Window.partitionBy("text_hash").orderBy("ingest_date", "review_id")
        seen_texts = (earlier.withColumn("_r", F.row_number().over(first_of_text)).where("_r = 1")
                      .select("text_hash", F.col("review_id").alias("_seen_text_of"),
                              F.col("ingest_date").alias("_seen_text_on")))
        rows = rows.join(seen_ids, "review_id", "left").join(seen_texts, "text_hash", "left")
        seen_id_on, seen_text_of, seen_text_on = F.col("_seen_id_on"), F.col("_seen_text_of"), F.col("_seen_text_on")
    # Only rows that are no duplicate for another reason compete for being the first of their text.
    candidate = (F.col("_id_rank") == 1) & seen_id_on.isNull() & seen_text_of.isNull()
    by_text = Window.partitionBy("text_hash", "_candidate").orderBy(*ROW_KEY)
    rows = (rows.withColumn("_candidate", candidate)
            .withColumn("_text_rank", F.row_number().over(by_text))
            .withColumn("_text_first", F.first("review_id").over(by_text)))
    no_date = F.lit(None).cast("string")
    reasons = [  # (when, reason, duplicate_of, first_seen_on): a row gets the first that applies
        (F.col("_id_rank") > 1, F.lit("same review_id in batch"), F.col("review_id"), no_date),
        (seen_id_on.isNotNull(), F.lit("review_id seen earlier"), F.col("review_id"), seen_id_on),
        (seen_text_of.isNotNull(), F.lit("text seen earlier"), seen_text_of, seen_text_on),
        (F.col("_candidate") & (F.col("_text_rank") > 1), F.lit("same text in batch"), F.col("_text_first"), no_date),
    ]

    def first_that_applies(pick: int) -> Column:
        (when, *values), *others = reasons
        out = F.when(when, values[pick - 1])
        for when, *values in others:
            out = out.when(when, values[pick - 1])
        return out

    return (rows.select("review_id", first_that_applies(2).alias("duplicate_of"),
                        first_that_applies(1).alias("duplicate_reason"),
                        first_that_applies(3).alias("first_seen_on"), *ROW_KEY)
            .where(F.col("duplicate_reason").isNotNull()))


def labels(curated: DataFrame) -> DataFrame:
    """Ground truth that came with the texts (ratings), for training and quality monitoring."""
    return curated.where(F.col("rating").isNotNull()).select(
        "review_id", "rating", label_of_rating(F.col("rating")).alias("label"))


def read_batch(spark: SparkSession, settings: Settings, date: str) -> tuple[DataFrame, list[tuple[str, dict]]]:
    """The landed files of a date parsed into one batch (a plan: nothing is read yet), and the
    folders it reads with their sources' specs (for the census)."""
    lake = Lake(settings)
    raw = lake.partition("raw", date)
    source_dirs = [d for d in storage.list_dirs(raw) if d.startswith("source=")]
    if not source_dirs:
        raise StageStopped(f"ingest {date}: no landed files under {raw} (land some with `make land`)",
                           exit_code=ExitCode.BAD_SETTING, status=RunStatus.FAILED)
    sources = load_sources(settings)
    frames, landed = [], []
    for d in source_dirs:
        name = d.split("=", 1)[1]
        if name not in sources:
            raise StageStopped(f"ingest {date}: {raw}/{d} has no mapping in {settings.path('sources_file')}",
                               exit_code=ExitCode.BAD_SETTING, status=RunStatus.FAILED)
        spec = sources[name]
        frames.append(parse_source(spark, storage.join(raw, d), spec, settings.max_text_chars)
                      .withColumn("source", F.lit(name))
                      .withColumn("title_mapped", F.lit(bool((spec.get("columns") or {}).get("title")))))
        landed.append((storage.join(raw, d), spec))
    batch = frames[0]
    for f in frames[1:]:
        batch = batch.unionByName(f)
    return with_derived(batch), landed


def earlier_batches(spark: SparkSession, settings: Settings, date: str, snapshot: int | None) -> DataFrame | None:
    """(review_id, text_hash, ingest_date) of every document curated on an earlier date, as of the
    curated table's `snapshot`; None when no earlier date is committed (the first day: no joins to plan)."""
    earlier = {d: b for d, b in tables.committed(settings).items() if d < date}
    if not earlier or snapshot is None:
        return None
    return tables.read(spark, settings, "curated", dates=sorted(earlier), batches=earlier, snapshot=snapshot).select(
        "review_id", "text_hash", "ingest_date")


def _gate(settings: Settings, lake: Lake, date: str, batch: DataFrame, acc: census.Accounting,
          rec: RunRecord) -> None:
    """The quality gate: Great Expectations' critical expectations, and the lost-records rule."""
    quality_dir = lake.partition("quality", date)
    gate = quality.validate(batch, os.path.join(settings.path("expectations_dir"), "documents.json"),
                            settings.critical_max_failing_share)
    lost = None
    if acc.damaged and acc.lost_share() > settings.max_lost_share:
        losses = ", ".join(f"{d['file']} ({d['why']})" for d in acc.damaged)
        share = "an unknown number" if acc.lost_unknown else f"{acc.lost:,} ({acc.lost_share():.1%})"
        lost = (f"{share} of the landed records are lost, above max_lost_share={settings.max_lost_share:g}: {losses}; "
                "land the files again complete, or raise NLP_MAX_LOST_SHARE to accept the loss")
    storage.put_text(storage.join(quality_dir, "validation.json"), json.dumps(gate.result_json, indent=1, default=str))
    docs_index = storage.join(quality_dir, "data_docs", "index.html")
    storage.put_text(docs_index, data_docs.render(gate, f"Ingest gate of {date}", gate.notes, lost=lost))
    rec.outputs.update({"validation": storage.join(quality_dir, "validation.json"), "data_docs": docs_index})
    if gate.warnings:
        rec.outputs["warnings"] = [w.describe() for w in gate.warnings]
    if gate.blocked or lost:
        failed = "; ".join([o.describe() for o in gate.blocking_failures] + ([lost] if lost else []))
        raise StageStopped(f"ingest {date}: batch blocked: {failed}. Data Docs: {docs_index}",
                           exit_code=ExitCode.BLOCKED)


def run(spark: SparkSession, settings: Settings, date: str) -> RunRecord:
    lake = Lake(settings)
    with stage_run(settings, "ingest", date) as rec:
        try:
            _ingest(spark, settings, lake, date, rec)
        except tables.ConcurrentCommit as exc:
            raise StageStopped(f"ingest {date}: refused, {exc}: the other run's batch stands, this one committed "
                               "nothing readers see; run `make ingest` again to replace it",
                               exit_code=ExitCode.LOCKED, status=RunStatus.FAILED) from None
    return rec


def parsed_per_file(batch: DataFrame) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """file -> (records the parser produced, its unreadable rows), and the notes the decoder left on
    the files (what it repaired), in one pass over the batch."""
    rows = batch.groupBy("source_file").agg(
        F.count(F.when(F.col("unreadable").isNull(), 1)).alias("records"),
        F.count("unreadable").alias("unreadable"), F.collect_set("decode_note").alias("notes")).collect()
    return {r.source_file: (r.records, r.unreadable) for r in rows}, sorted({n for r in rows for n in r.notes})


def _ingest(spark: SparkSession, settings: Settings, lake: Lake, date: str, rec: RunRecord) -> None:
    # The gate's library takes seconds to import: that happens while the driver only waits for Spark.
    threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()
    timings = rec.outputs.setdefault("seconds", {})
    clock = time.monotonic()
    found_at = {zone: tables.current_snapshot(settings, zone) for zone in tables.BATCHED}
    batch, landed = read_batch(spark, settings, date)
    batch = batch.cache()
    # The census runs beside the parse, not before it: each job is a few tasks of whole files, and
    # together they keep the cores busier than one after the other.
    with ThreadPoolExecutor(1) as pool:
        counted = pool.submit(lambda: [row for folder, spec in landed for row in census_of_source(spark, folder, spec)])
        parsed, notes = parsed_per_file(batch)
        acc = census.reconcile(counted.result(), parsed)
    rec.rows_in, rec.rows_lost = acc.found + acc.lost, (None if acc.lost_unknown else acc.lost)
    if notes:
        rec.outputs["read_notes"] = notes
    if acc.damaged:
        rec.outputs["damaged_files"] = acc.damaged
    timings["read"], clock = round(time.monotonic() - clock, 2), time.monotonic()
    if acc.disagreements:
        raise StageStopped(f"ingest {date}: the landed files' record counts disagree, so nothing is curated: "
                           + "; ".join(acc.disagreements) + " (the file is read differently by two standard "
                           "readers: fix its quoting or line ends and land it again)", exit_code=ExitCode.BLOCKED)
    # The earlier batches as of the snapshot this run found: what it validates its commits against, and
    # a plan Spark does not take for the curated table as written below (it would drop the duplicates
    # cached on it once curated is written, and compute them again for their own write).
    curated, quarantine, duplicates = split(batch, earlier_batches(spark, settings, date, found_at["curated"]))
    # Found and kept before anything is written: curated is the batch less them, planned with their
    # true (usually tiny) size, so that it takes them as a broadcast rather than a shuffle of the texts.
    # They are found while the gate validates: neither writes, and the gate's library leaves cores idle
    # between its small jobs. A batch the gate blocks cancels them.
    duplicates = duplicates.cache()
    group = f"ingest-duplicates-{rec.run_id}"

    def find_duplicates() -> int:
        spark.sparkContext.setJobGroup(group, f"ingest {date}: duplicates", interruptOnCancel=True)
        started = time.monotonic()
        count = duplicates.count()
        timings["duplicates_beside_gate"] = round(time.monotonic() - started, 2)
        return count

    with ThreadPoolExecutor(1) as pool:
        found = pool.submit(find_duplicates)
        try:
            _gate(settings, lake, date, batch, acc, rec)
            timings["gate_in_validate"] = round(time.monotonic() - clock, 2)
        except BaseException:
            spark.sparkContext.cancelJobGroup(group)
            duplicates.unpersist()
            raise
        finally:
            timings["validate"], clock = round(time.monotonic() - clock, 2), time.monotonic()
        found.result()
    stamp = [F.lit(rec.run_id).alias("batch_id"), F.lit(date).alias("ingest_date")]

    def written(zone: str) -> DataFrame:  # this run's rows as committed (cheaper to scan than to recompute)
        return spark.table(tables.table(spark, settings, zone)).where(
            (F.col("ingest_date") == date) & (F.col("batch_id") == rec.run_id))

    # One commit per table, each replacing the date's rows and validated against the table as this run
    # found it (found_at, taken before any reading): the batch becomes visible with its run record.
    # Curated goes first: from its commit on, the date's batch is this run's, which readers do not see
    # until the run succeeds, so a run killed after it shows them nothing of the date, never the old
    # batch with some of its tables already replaced. Labels are derived from the curated rows as written.
    outputs = {"curated": lambda: curated.select("*", *stamp), "duplicates": lambda: duplicates.select("*", *stamp),
               "quarantine": lambda: quarantine.select("*", *stamp),
               "labels": lambda: labels(written("curated")).select("*", *stamp)}
    snapshots = rec.outputs["snapshots"] = {}
    for zone, frame in outputs.items():
        started = time.monotonic()
        snapshots[zone] = tables.write_partitions(spark, settings, zone, frame(), F.col("ingest_date") == date,
                                                  rec.run_id, found_at[zone])
        timings[f"{zone}_write"] = round(time.monotonic() - started, 2)
    truncated = written("curated").where("text_truncated").count()
    batch.unpersist()
    duplicates.unpersist()

    # What each commit wrote, as Iceberg counted it (a commit replaces the date's rows with this run's only)
    rec.rows_out, rec.rows_rejected, rec.rows_duplicate = (
        tables.records_added(settings, zone, snapshots[zone]) for zone in ("curated", "quarantine", "duplicates"))
    if truncated:
        rec.outputs["texts_truncated"] = truncated
    timings["split_write"] = round(time.monotonic() - clock, 2)
    if rec.rows_in != rec.rows_out + rec.rows_rejected + rec.rows_duplicate + acc.lost:
        raise StageStopped(
            f"ingest {date}: counts do not reconcile: landed {rec.rows_in} != curated {rec.rows_out} "
            f"+ quarantined {rec.rows_rejected} + duplicates {rec.rows_duplicate} + lost {acc.lost}; the batch "
            "stays invisible to readers (its run did not succeed) and the date pending",
            exit_code=ExitCode.UNEXPECTED, status=RunStatus.FAILED)


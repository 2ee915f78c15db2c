"""Ingest job: one raw partition -> validated curated rows, quarantined rows with reasons, labels.

Pure transforms (`to_canonical`, `clean`, `split`) take and return DataFrames; `run` is the thin
edge that reads the raw files, calls the gate and the transforms, writes the partitions and the
run record, and checks that every landed row is accounted for.
"""
from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import quality, storage
from .lake import Lake, write_partition
from .landing import load_sources
from .nlp import label_of_rating
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings

CANONICAL = ["review_id", "text", "title", "rating_raw", "product_id", "department", "class", "source_file"]
CURATED = ["review_id", "text", "title", "rating", "product_id", "department", "class", "source_file", "text_hash"]

EXIT_NO_INPUT = 2
EXIT_BLOCKED = 3


def read_source(spark: SparkSession, path: str, spec: dict) -> DataFrame:
    """Reads one landed source folder as strings (types are checked later, not guessed)."""
    reader = spark.read.options(**(spec.get("options") or {}))
    fmt = spec["format"]
    if fmt == "csv":
        df = reader.csv(path)
    elif fmt == "jsonl":
        df = reader.json(path)
    else:
        df = reader.parquet(path)
    return df.select([F.col(f"`{c}`").cast("string").alias(c) for c in df.columns]).withColumn(
        "source_file", F.input_file_name()
    )


def to_canonical(raw: DataFrame, spec: dict) -> DataFrame:
    """Renames source columns to the canonical schema. A column the mapping declares absent (null)
    becomes a null column; a mapped column the file lacks stays missing, so the gate's schema
    expectation names it."""
    cols = []
    prefix = spec.get("id_prefix") or ""
    for canonical, source_col in spec["columns"].items():
        name = "rating_raw" if canonical == "rating" else canonical
        if source_col is None:
            cols.append(F.lit(None).cast("string").alias(name))
        elif source_col in raw.columns:
            c = F.col(f"`{source_col}`")
            if canonical == "review_id" and prefix:
                c = F.when(F.trim(c) != "", F.concat(F.lit(prefix), F.trim(c)))
            cols.append(c.alias(name))
    return raw.select(*cols, "source_file")


def _tidy(c):
    """Whitespace collapsed and trimmed; blank becomes null."""
    t = F.trim(F.regexp_replace(c, r"\s+", " "))
    return F.when(t != "", t)


def clean(df: DataFrame) -> DataFrame:
    """Normalised strings, an integer rating where the raw value is one, and a text hash."""
    out = df
    for c in ("review_id", "text", "title", "product_id", "department", "class"):
        if c in df.columns:
            out = out.withColumn(c, _tidy(F.col(c)))
    if "rating_raw" in df.columns:
        out = out.withColumn(
            "rating",
            F.when(F.col("rating_raw").rlike(quality.INTEGER_PATTERN), F.trim(F.col("rating_raw")).cast("int")),
        )
    if "text" in df.columns:
        out = out.withColumn("text_hash", F.sha2(F.lower(F.col("text")), 256))
    return out


def split(df: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """-> (curated, quarantine, duplicates). Rows failing a row check go to quarantine with their
    reasons; of the passing rows, the first of each review_id is curated and the rest are duplicates."""
    checked = quality.with_reasons(df).withColumn("_seq", F.monotonically_increasing_id())
    rejected = checked.where(F.size("reasons") > 0)
    passed = checked.where(F.size("reasons") == 0)
    first = Window.partitionBy("review_id").orderBy("source_file", "_seq")
    ranked = passed.withColumn("_rank", F.row_number().over(first))
    curated = ranked.where("_rank = 1").select(*CURATED)
    duplicates = ranked.where("_rank > 1").select("review_id", "source_file")
    quarantine = rejected.select(*CANONICAL, "reasons")
    return curated, quarantine, duplicates


def labels(curated: DataFrame) -> DataFrame:
    """Ground truth that came with the texts (ratings), for training and quality monitoring."""
    return curated.where(F.col("rating").isNotNull()).select(
        "review_id", "rating", label_of_rating(F.col("rating")).alias("label")
    )


def read_batch(spark: SparkSession, settings: Settings, date: str) -> DataFrame:
    lake = Lake(settings)
    raw = lake.partition("raw", date)
    source_dirs = [d for d in storage.list_dirs(raw) if d.startswith("source=")]
    if not source_dirs:
        raise StageStopped(f"ingest {date}: no landed files under {raw} (land some with `make land`)",
                           exit_code=EXIT_NO_INPUT, status="failed")
    sources = load_sources(settings)
    frames = []
    for d in source_dirs:
        name = d.split("=", 1)[1]
        if name not in sources:
            raise StageStopped(f"ingest {date}: {raw}/{d} has no mapping in {settings.path('sources_file')}",
                               exit_code=EXIT_NO_INPUT, status="failed")
        frames.append(to_canonical(read_source(spark, storage.join(raw, d), sources[name]), sources[name]))
    batch = frames[0]
    for f in frames[1:]:
        batch = batch.unionByName(f, allowMissingColumns=True)
    return batch


def run(spark: SparkSession, settings: Settings, date: str) -> RunRecord:
    lake = Lake(settings)
    with stage_run(settings, "ingest", date) as rec:
        batch = clean(read_batch(spark, settings, date)).cache()
        rec.rows_in = batch.count()

        gate = quality.validate(batch, f"{settings.path('expectations_dir')}/documents.json",
                                settings.critical_max_failing_share)
        validation_uri = storage.join(lake.partition("_quality", date), "validation.json")
        storage.put_text(validation_uri, json.dumps(gate.result_json, indent=1, default=str))
        rec.outputs["validation"] = validation_uri
        if gate.warnings:
            rec.outputs["warnings"] = [w.describe() for w in gate.warnings]
        if gate.blocked:
            failed = "; ".join(o.describe() for o in gate.blocking_failures)
            raise StageStopped(f"ingest {date}: batch blocked by critical expectations: {failed} "
                               f"(details: {validation_uri})", exit_code=EXIT_BLOCKED)

        curated, quarantine, duplicates = split(batch)
        curated = curated.cache()
        write_partition(spark, curated, lake.partition("curated", date))
        write_partition(spark, quarantine, lake.partition("quarantine", date))
        write_partition(spark, labels(curated), lake.partition("labels", date))

        rec.rows_out = spark.read.parquet(lake.partition("curated", date)).count()
        rec.rows_rejected = spark.read.parquet(lake.partition("quarantine", date)).count()
        rec.rows_duplicate = duplicates.count()
        rec.outputs.update({z: lake.partition(z, date) for z in ("curated", "quarantine", "labels")})
        if rec.rows_in != rec.rows_out + rec.rows_rejected + rec.rows_duplicate:
            raise RuntimeError(
                f"ingest {date}: counts do not reconcile: landed {rec.rows_in} != curated {rec.rows_out} "
                f"+ quarantined {rec.rows_rejected} + duplicates {rec.rows_duplicate}")
        batch.unpersist()
        curated.unpersist()
    return rec

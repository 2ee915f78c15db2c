"""Inference job: the registry's champion scores each curated partition it has not scored yet, and
the challenger, when one is set, scores the same rows in shadow: all of them, or the deterministic
sample by review id of `shadow_share` (smaller on a day above `shadow_max_rows`, so that its cost
stays about that many texts however large the day), or none when `shadow_skip_margin` says its gate
found it too much worse than the champion.

    predictions          (table, partitioned by ingest_date, model_version) the champion's: what analysts see
    predictions_shadow   (the same layout) the challenger's, never mixed in

One row per curated document: label, confidence, per-class scores, flags (long_text, non_english),
model name, version, the run id that wrote it, and whether the model was fitted on the document
(`seen_in_training`: dbt leaves those out of model-quality figures). A (date, version) already
scored (for the date's committed batch: a re-ingested date is scored again) is skipped unless
`--rescore`, so re-runs do no repeated work and a promotion re-scores history on the next run.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from . import embedding_store, registry, splits, tables
from .nlp import predictions_from
from .runlog import RunRecord, StageStopped, progress, stage_run
from .settings import Settings
from .spark import scoring_partitions
from .vocabulary import ExitCode, RunStatus


def seen_in_training(scope: registry.TrainingScope | None, date: str) -> Column:
    """True for the documents of `date` that the model was fitted on (its train split of its
    training dates), so that quality against labels is measured on the others only; null when the
    version's training scope is unknown (no lineage tags): then no document may judge it."""
    if scope is None:
        return F.lit(None).cast("boolean")
    if date not in scope.dates:
        return F.lit(False)
    return splits.in_train_split(F.col("review_id"), scope.test_fraction, scope.validation_fraction)


def score(model, curated: DataFrame, ref: registry.ModelRef, run_id: str, max_pieces: int,
          seen: Column | None = None) -> DataFrame:
    """Pure: curated documents (with ingest_date and batch_id) -> prediction rows of the lake's table."""
    return (predictions_from(model.transform(curated), ref.name, ref.version, run_id, max_pieces,
                             keep=("ingest_date", "batch_id"))
            .withColumn("seen_in_training", F.lit(False) if seen is None else seen)
            .withColumn("model_version", F.col("model_version").cast("int")))


def run(spark: SparkSession, settings: Settings, date: str, rescore: bool = False) -> list[RunRecord]:
    champion = registry.champion(settings)
    if champion is None:
        with stage_run(settings, "infer", date):
            raise StageStopped(
                f"infer {date}: no '{registry.CHAMPION}' alias on model {settings.model_name} in "
                f"{settings.mlflow_uri} (run `make train` first)", exit_code=ExitCode.NO_CHAMPION, status=RunStatus.FAILED)
    records = [_score(spark, settings, date, champion, "predictions", "infer", rescore)]
    challenger = registry.model_by_alias(settings, registry.CHALLENGER)
    if challenger and challenger.version != champion.version:
        skip = shadow_skip_reason(settings, challenger)
        if skip:
            with stage_run(settings, "shadow", date) as rec:
                rec.model_name, rec.model_version = challenger.name, challenger.version
                rec.status, rec.message = RunStatus.SKIPPED, skip
            records.append(rec)
        else:
            records.append(_score(spark, settings, date, challenger, "predictions_shadow", "shadow", rescore))
    return records


SAMPLE_BUCKETS = 10_000  # a share is taken in steps of 1/10,000 of the documents


def shadow_sample(curated: DataFrame, share: float) -> DataFrame:
    """Pure: the deterministic share of documents by review id (the same ones every run, for every
    challenger, so that samples of two days or two challengers overlap where the documents do)."""
    if share >= 1:
        return curated
    buckets = max(1, round(share * SAMPLE_BUCKETS)) if share > 0 else 0
    return curated.where(F.pmod(F.xxhash64("review_id"), F.lit(SAMPLE_BUCKETS)) < F.lit(buckets))


def shadow_share_of_day(share: float, max_rows: int, day_rows: int) -> float:
    """Pure: the share of a day the shadow scores: `share`, lowered on a day of more than `max_rows`
    rows (0: no cap) so that about `max_rows` are scored."""
    if max_rows and day_rows * share > max_rows:
        return max_rows / day_rows
    return share


def shadow_skip_reason(settings: Settings, challenger: registry.ModelRef) -> str | None:
    """Why the challenger scores nothing (None: it scores its sample)."""
    from .promotion import GATE_GAIN_TAG

    if settings.shadow_share == 0:
        return "shadow scoring is off (shadow_share=0)"
    if settings.shadow_skip_margin < 0:
        return None
    with registry.store(settings):
        tags = registry.client(settings).get_model_version(challenger.name, challenger.version).tags
    gain = tags.get(GATE_GAIN_TAG)
    if gain is not None and float(gain) < -settings.shadow_skip_margin:
        return (f"not shadow-scored: at its gate v{challenger.version} scored macro-F1 {float(gain):+.4f} against the "
                f"champion, worse than the margin {settings.shadow_skip_margin} (shadow_skip_margin)")
    return None


def _score(spark, settings: Settings, date: str, ref: registry.ModelRef, zone: str, stage: str,
           rescore: bool) -> RunRecord:
    with stage_run(settings, stage, date) as rec:
        rec.model_name, rec.model_version = ref.name, ref.version
        batch = tables.committed(settings).get(date)
        if batch is None:
            raise StageStopped(f"{stage} {date}: the date's batch is not committed (ingest did not finish or did "
                               f"not succeed); run `make ingest DATE={date}` first",
                               exit_code=ExitCode.BAD_SETTING, status=RunStatus.FAILED)
        found_at = tables.current_snapshot(settings, zone)
        if not rescore and scored_already(spark, settings, zone, date, ref.version, batch):
            rec.status = RunStatus.SKIPPED
            rec.message = f"already scored by {ref.name} v{ref.version}"
            return rec
        try:
            model = embedding_store.load_version(spark, settings, ref, rec.run_id)
        except StageStopped:
            raise
        except Exception as exc:
            raise StageStopped(f"{stage} {date}: model {ref.uri} cannot be loaded: {exc}".splitlines()[0],
                               exit_code=ExitCode.NO_CHAMPION, status=RunStatus.FAILED) from exc
        curated = tables.read(spark, settings, "curated", [date], batches={date: batch})
        counted = None  # the day's rows, when the cap already counted them and no sample was drawn
        if stage == "shadow":
            share = settings.shadow_share
            if settings.shadow_max_rows and share > 0:
                counted = curated.count()
                share = shadow_share_of_day(share, settings.shadow_max_rows, counted)
            if share < 1:
                curated, counted = shadow_sample(curated, share), None
                rec.outputs["shadow_share"] = round(share, 6)
            if share < settings.shadow_share:
                rec.outputs["shadow_max_rows"] = settings.shadow_max_rows
        curated = curated.repartition(scoring_partitions(spark, settings), "review_id")
        rec.rows_in = curated.count() if counted is None else counted
        progress(stage, date, f"scoring {rec.rows_in:,} rows with {ref.name} v{ref.version}")
        seen = seen_in_training(registry.training_scope(settings, ref), date)
        rows = score(model, curated, ref, rec.run_id, settings.max_sentence_length, seen)
        where = (F.col("ingest_date") == date) & (F.col("model_version") == int(ref.version))
        try:
            snapshot = tables.write_partitions(spark, settings, zone, rows, where, rec.run_id, found_at)
        except tables.ConcurrentCommit as exc:
            raise StageStopped(f"{stage} {date}: refused, {exc}", exit_code=ExitCode.LOCKED,
                               status=RunStatus.FAILED) from None
        written = spark.table(tables.table(spark, settings, zone)).where(where & (F.col("run_id") == rec.run_id))
        rec.rows_out = written.count()
        flags = written.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()
        if isinstance(model, embedding_store.StoredEncoderModel):  # the others' vectors came from the table
            rec.outputs["texts_encoded"] = model.encoded
        rec.outputs.update({"table": zone, "snapshots": {zone: snapshot},
                            "flagged": written.where("size(flags) > 0").count(),
                            "flags": {r["flag"]: r["count"] for r in flags}})
    return rec


def scored_already(spark, settings: Settings, zone: str, date: str, version: str, batch: str) -> bool:
    """The version scored the date's committed batch before (a re-ingested date is scored again)."""
    if not tables.exists(spark, settings, zone):
        return False
    return spark.table(tables.table(spark, settings, zone)).where(
        (F.col("ingest_date") == date) & (F.col("model_version") == int(version)) & (F.col("batch_id") == batch)
    ).limit(1).count() > 0

"""Inference job: the registry's champion scores each curated partition it has not scored yet.

Output: predictions/ingest_date=D/model_version=V/, one row per curated document with label,
confidence, per-class scores, model name, version and the run id that wrote it.
"""
from __future__ import annotations

from pyspark.sql import SparkSession

from . import registry
from .lake import Lake, partition_exists, write_partition
from .nlp import predictions_from
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings
from .spark import scoring_partitions

_loaded: dict[str, object] = {}  # model uri -> fitted pipeline, loaded once per process


def score(model, curated, ref: registry.ModelRef, run_id: str):
    """Pure: curated documents -> prediction rows."""
    return predictions_from(model.transform(curated), ref.name, ref.version, run_id)


def run(spark: SparkSession, settings: Settings, date: str, rescore: bool = False) -> RunRecord:
    lake = Lake(settings)
    with stage_run(settings, "infer", date) as rec:
        ref = registry.champion(settings)
        if ref is None:
            raise StageStopped(
                f"infer {date}: no '{registry.CHAMPION}' alias on model {settings.model_name} in "
                f"{settings.mlflow_uri} (run `make train` first)", exit_code=registry.EXIT_NO_CHAMPION, status="failed")
        rec.model_name, rec.model_version = ref.name, ref.version
        source = lake.partition("curated", date)
        if not partition_exists(spark, source):
            raise StageStopped(f"infer {date}: no curated partition at {source} (run ingest first)",
                               exit_code=2, status="failed")
        target = lake.partition("predictions", date, model_version=ref.version)
        if partition_exists(spark, target) and not rescore:
            rec.status = "skipped"
            rec.message = f"already scored by {ref.name} v{ref.version}"
            return rec
        if ref.uri not in _loaded:
            try:
                _loaded[ref.uri] = registry.load_pipeline(settings, ref)
            except Exception as exc:
                raise StageStopped(f"infer {date}: champion {ref.uri} cannot be loaded: {exc}".splitlines()[0],
                                   exit_code=registry.EXIT_NO_CHAMPION, status="failed") from exc
        curated = spark.read.parquet(source).repartition(scoring_partitions(spark, settings), "review_id")
        rec.rows_in = curated.count()
        write_partition(spark, score(_loaded[ref.uri], curated, ref, rec.run_id), target)
        rec.rows_out = spark.read.parquet(target).count()
        rec.outputs["predictions"] = target
    return rec

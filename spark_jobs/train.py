"""Train job: fit each configured pipeline on the labelled curated texts, evaluate it on the frozen
test split, log everything to MLflow, register it, and pass it through the promotion gate.

The split is frozen by a hash of review_id (test / validation / train buckets of 0..99), so a review
is in the same split on every machine, run and retraining, and two models are always compared on
the same documents.
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import evaluation, ingest, registry
from .lake import Lake
from .nlp import LABELS, label_index, pipeline, predictions_from
from .runlog import RunRecord, StageStopped, progress, stage_run
from .settings import Settings
from .spark import scoring_partitions
from .vocabulary import RunStatus

EXIT_NO_TRAINING_DATA = 5


def split_bucket(review_id) -> F.Column:
    """0..99, fixed per review_id on every machine and run: the split never drifts."""
    return F.pmod(F.xxhash64(review_id), F.lit(100))


def split_cuts(test_fraction: float, validation_fraction: float) -> tuple[int, int]:
    """Buckets [0, test_cut) are test, [test_cut, train_cut) validation, the rest train."""
    test_cut = int(round(test_fraction * 100))
    return test_cut, test_cut + int(round(validation_fraction * 100))


def in_train_split(review_id, test_fraction: float, validation_fraction: float) -> F.Column:
    return split_bucket(review_id) >= split_cuts(test_fraction, validation_fraction)[1]


def frozen_split(labelled: DataFrame, test_fraction: float, validation_fraction: float):
    """-> (train, validation, test), by bucket."""
    bucket = split_bucket(F.col("review_id"))
    test_cut, train_cut = split_cuts(test_fraction, validation_fraction)
    return (labelled.where(bucket >= train_cut), labelled.where((bucket >= test_cut) & (bucket < train_cut)),
            labelled.where(bucket < test_cut))


def labelled_documents(spark: SparkSession, settings: Settings, dates: list[str]) -> DataFrame:
    lake = Lake(settings)
    curated = spark.read.parquet(*[lake.partition("curated", d) for d in dates])
    labels = spark.read.parquet(*[lake.partition("labels", d) for d in dates])
    return curated.select("review_id", "title", "text").join(labels.select("review_id", "label"), "review_id")


def with_class_weights(train: DataFrame, scheme: str) -> DataFrame:
    """Adds label_index and weight (inverse class frequency when balanced) for the classifier."""
    out = train.withColumn("label_index", label_index(F.col("label")))
    if scheme != "balanced":
        return out.withColumn("weight", F.lit(1.0))
    counts = {r["label"]: r["count"] for r in train.groupBy("label").count().collect()}
    total, k = sum(counts.values()), len(counts)
    weight = F.lit(1.0)
    for label, n in counts.items():
        weight = F.when(F.col("label") == label, F.lit(total / (k * n))).otherwise(weight)
    return out.withColumn("weight", weight)


def scored_frame(model, labelled: DataFrame, max_pieces: int) -> pd.DataFrame:
    """The model's predictions on labelled rows, collected: review_id, truth, label, confidence, scores."""
    preds = predictions_from(model.transform(labelled), "", "", "", max_pieces)
    return (preds.join(labelled.select("review_id", F.col("label").alias("truth")), "review_id")
            .select("review_id", "truth", "label", "confidence", *[f"score_{c}" for c in LABELS])
            .toPandas().sort_values("review_id", ignore_index=True))


def fit(pipeline, train: DataFrame):
    """Fits the feature stages, caches the featurised rows, then fits the classifier on them.

    A plain Pipeline.fit hands the classifier an uncached lineage, and logistic regression reads it
    more than once (label metadata, then the optimisation): the MiniLM embeddings would be computed
    twice. Same fitted stages, one pass of the encoder."""
    from pyspark.ml import Pipeline, PipelineModel

    *feature_stages, classifier = pipeline.getStages()
    features = Pipeline(stages=feature_stages).fit(train)
    featured = features.transform(train).persist()
    try:
        head = classifier.fit(featured)
    finally:
        featured.unpersist()
    return PipelineModel(stages=[*features.stages, head])


def data_fingerprint(df: DataFrame) -> str:
    """Order-independent hash of (review_id, label): same training data, same fingerprint."""
    row = df.select(F.sum(F.xxhash64("review_id", "label").cast("decimal(38,0)")).alias("h")).first()
    return format(int(row["h"] or 0) % (1 << 64), "016x")


class Splits:
    """The frozen splits of every labelled document up to a date, cached once for all pipelines."""

    def __init__(self, spark: SparkSession, settings: Settings, dates: list[str]):
        self.dates = dates
        data = labelled_documents(spark, settings, dates)
        train, validation, test = frozen_split(data, settings.test_fraction, settings.validation_fraction)
        if settings.train_max_rows:
            train = train.orderBy(F.xxhash64("review_id")).limit(settings.train_max_rows)
        parts = scoring_partitions(spark, settings)
        self.train, self.validation, self.test = (
            d.repartition(parts, "review_id").cache() for d in (train, validation, test))
        self.counts = {n: d.count() for n, d in (("train", self.train), ("validation", self.validation), ("test", self.test))}
        self.test_texts = self.test.select("review_id", "text").toPandas().set_index("review_id")["text"]

    def release(self) -> None:
        for d in (self.train, self.validation, self.test):
            d.unpersist()


def run(spark: SparkSession, settings: Settings, date: str | None = None) -> list[RunRecord]:
    lake = Lake(settings)
    dates = [d for d in ingest.ingested_dates(lake) if not date or d <= date]
    if not dates:
        raise StageStopped("train: no labelled curated data in the lake yet (run ingest first)",
                           exit_code=EXIT_NO_TRAINING_DATA, status=RunStatus.FAILED)
    splits = Splits(spark, settings, dates)
    if min(splits.counts.values()) == 0:
        raise StageStopped(f"train: splits {splits.counts} on {', '.join(dates)}; every split needs rows",
                           exit_code=EXIT_NO_TRAINING_DATA, status=RunStatus.FAILED)
    try:
        return [train_one(spark, settings, name, splits, date or dates[-1]) for name in settings.pipelines]
    finally:
        splits.release()


def train_one(spark: SparkSession, settings: Settings, name: str, splits: Splits, date: str) -> RunRecord:
    import mlflow

    from . import promotion

    def step(text: str) -> None:  # fitting MiniLM takes minutes: say what is happening
        progress("train", date, f"{name}: {text}")

    with stage_run(settings, "train", date) as rec:
        rec.rows_in = splits.counts["train"]
        registry.client(settings)
        with mlflow.start_run(experiment_id=registry.experiment_id(settings), run_name=f"{name}-{rec.run_id}") as run:
            mlflow.log_params({
                "pipeline": name, "embeddings_model_dir": settings.embeddings_model_dir,
                "onnx_int8": settings.onnx_int8, "max_iter": settings.train_max_iter,
                "reg_param": settings.reg_param(name), "class_weighting": settings.class_weighting,
                "max_sentence_length": settings.max_sentence_length, "test_fraction": settings.test_fraction,
                "validation_fraction": settings.validation_fraction, "seed": settings.seed,
                **{f"{k}_rows": v for k, v in splits.counts.items()},
            })
            lineage = {"pipeline": name, "training_dates": ",".join(splits.dates),
                       "training_rows": str(splits.counts["train"]),
                       "training_data_hash": data_fingerprint(splits.train), "code_version": rec.code_version}
            mlflow.set_tags(lineage)

            step(f"fitting on {splits.counts['train']:,} rows of {len(splits.dates)} dates")
            model = fit(pipeline(name, spark, settings), with_class_weights(splits.train, settings.class_weighting))
            step(f"evaluating on {splits.counts['test']:,} test and {splits.counts['validation']:,} validation rows")
            test = scored_frame(model, splits.test, settings.max_sentence_length)
            validation = scored_frame(model, splits.validation, settings.max_sentence_length)
            vader = evaluation.vader_predictions(splits.test_texts).join(
                splits.test.select("review_id", F.col("label").alias("truth")).toPandas().set_index("review_id"))
            scores = evaluation.metrics(test)
            mlflow.log_metrics(scores)
            mlflow.log_metrics({f"validation_{k}": v for k, v in evaluation.metrics(validation).items()
                                if k in ("accuracy", "macro_f1")})
            mlflow.log_metrics({f"vader_{k}": v for k, v in evaluation.metrics(vader).items()})
            mlflow.log_figure(evaluation.confusion_figure(test, f"{name} on {len(test):,} test documents"),
                              "confusion_matrix.png")
            mlflow.log_text(evaluation.confusion(test).to_csv(), "confusion_matrix.csv")

            ref = registry.log_pipeline(settings, model)
            client = registry.client(settings)
            for k, v in {**lineage, "test_macro_f1": f"{scores['macro_f1']:.4f}",
                         "test_accuracy": f"{scores['accuracy']:.4f}"}.items():
                client.set_model_version_tag(ref.name, ref.version, k, v)
            step(f"registered as {ref.name} v{ref.version}; promotion gate")
            decision = promotion.gate(spark, settings, ref, test, splits)

        rec.model_name, rec.model_version = ref.name, ref.version
        rec.rows_out = splits.counts["test"]
        rec.outputs.update({"mlflow_run_id": run.info.run_id, "pipeline": name, "decision": decision,
                            **{k: round(scores[k], 4) for k in ("accuracy", "macro_f1")}})
        rec.message = (f"{name} -> {ref.name} v{ref.version}: test accuracy {scores['accuracy']:.3f}, "
                       f"macro-F1 {scores['macro_f1']:.3f} on {len(test):,} rows; {decision}")
    return rec

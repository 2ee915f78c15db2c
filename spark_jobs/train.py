"""Train job: fit each configured pipeline on the labelled curated texts, evaluate it on the frozen
test split (splits.py), log everything to MLflow, register it, and pass it through the promotion gate.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import embedding_store, evaluation, promotion, registry
from .lake import Lake
from .nlp import label_index, pipeline
from .runlog import RunRecord, StageStopped, progress, stage_run
from .settings import Settings
from .splits import Splits, scored_frame
from .vocabulary import ExitCode, RunStatus


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


def fit(pipeline, train: DataFrame, through=lambda model: model):
    """Fits the feature stages, caches the featurised rows, then fits the classifier on them.

    A plain Pipeline.fit hands the classifier an uncached lineage, and logistic regression reads it
    more than once (label metadata, then the optimisation): the MiniLM embeddings would be computed
    twice. Same fitted stages, one pass of the encoder. `through` wraps the fitted feature stages
    (embedding_store.with_store: the vectors of texts encoded before are read, not computed).

    Feature stages that learn from the data (TF-IDF's CountVectorizer and IDF) read it once each,
    and the classifier's input reads it again: the text stages before them (Spark NLP's tokenizer)
    would run three times. Their output is cached once instead (`fit_feature_stages`)."""
    from pyspark.ml import PipelineModel

    *feature_stages, classifier = pipeline.getStages()
    # only what the classifier reads is cached (not the texts or the NLP annotations)
    wanted = list(dict.fromkeys([classifier.getFeaturesCol(), classifier.getLabelCol(), classifier.getWeightCol()]))
    fitted, texts, featurised = fit_feature_stages(feature_stages, train, wanted)
    features = PipelineModel(stages=fitted)
    # No stage read the data to fit (the MiniLM encoder): the classifier's input goes through `through`,
    # the embeddings table. No pipeline has both an encoder and such a stage.
    if texts is None:
        featurised = through(features).transform(train)
    featured = featurised.select(*wanted).persist()
    try:
        head = classifier.fit(featured)
    finally:
        featured.unpersist()
        if texts is not None:
            texts.unpersist()
    return PipelineModel(stages=[*features.stages, head])


def fit_feature_stages(stages: list, train: DataFrame, wanted: list[str]):
    """Fits `stages` in order, each on the output of those before it, as Pipeline.fit does, except
    that the frame the first Spark ML estimator reads is cached (only the columns it and the later
    stages read, and `wanted`). -> (fitted stages, that cached frame or None when no stage reads the
    data to fit, the last stage's output). Spark NLP's annotator approaches (Tokenizer, Normalizer)
    fit from their parameters alone, without a pass over the data."""
    from pyspark.ml import Estimator
    from sparknlp.common import AnnotatorApproach

    frame, fitted, texts = train, [], None
    for i, stage in enumerate(stages):
        if texts is None and isinstance(stage, Estimator) and not isinstance(stage, AnnotatorApproach):
            read = columns_read(stages[i:])
            texts = frame.select(*[c for c in frame.columns if read is None or c in read or c in wanted]).persist()
            frame = texts
        model = stage.fit(frame) if isinstance(stage, Estimator) else stage
        fitted.append(model)
        frame = model.transform(frame)
    return fitted, texts, frame


def columns_read(stages: list) -> set[str] | None:
    """The input columns `stages` name (inputCol, inputCols), or None when one may read any column
    (a SQL statement)."""
    from pyspark.ml.feature import SQLTransformer

    read: set[str] = set()
    for stage in stages:
        if isinstance(stage, SQLTransformer):
            return None
        for param in ("inputCol", "inputCols"):
            if stage.hasParam(param) and stage.isDefined(param):
                value = stage.getOrDefault(param)
                read.update([value] if isinstance(value, str) else value)
    return read


def data_fingerprint(df: DataFrame) -> str:
    """Order-independent hash of (review_id, label): same training data, same fingerprint."""
    row = df.select(F.sum(F.xxhash64("review_id", "label").cast("decimal(38,0)")).alias("h")).first()
    return format(int(row["h"] or 0) % (1 << 64), "016x")


def run(spark: SparkSession, settings: Settings, date: str | None = None) -> list[RunRecord]:
    """Every configured pipeline on every ingested date (up to `date`), each through the gate."""
    dates = [d for d in Lake(settings).ingested_dates() if not date or d <= date]
    return fit_and_gate(spark, settings, dates, date or (dates[-1] if dates else ""), settings.pipelines)


def fit_and_gate(spark: SparkSession, settings: Settings, dates: list[str], date: str, pipelines: list[str],
                 tags: dict[str, str] | None = None) -> list[RunRecord]:
    """Fits each pipeline on the labelled documents of `dates` (their frozen train split), registers it
    with `tags` added to its lineage, and passes it through the promotion gate."""
    if not dates:
        raise StageStopped("train: no labelled curated data in the lake yet (run ingest first)",
                           exit_code=ExitCode.NO_TRAINING_DATA, status=RunStatus.FAILED)
    splits = Splits(spark, settings, dates)
    if min(splits.counts.values()) == 0:
        raise StageStopped(f"train: splits {splits.counts} on {', '.join(dates)}; every split needs rows",
                           exit_code=ExitCode.NO_TRAINING_DATA, status=RunStatus.FAILED)
    try:
        return [train_one(spark, settings, name, splits, date, tags) for name in pipelines]
    finally:
        splits.release()


def train_one(spark: SparkSession, settings: Settings, name: str, splits: Splits, date: str,
              tags: dict[str, str] | None = None) -> RunRecord:
    import mlflow

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
                       "training_data_hash": data_fingerprint(splits.train), "code_version": rec.code_version,
                       **(tags or {})}
            mlflow.set_tags(lineage)

            built = pipeline(name, spark, settings)
            encoder = embedding_store.encoder_id(settings) if embedding_store.encoder_span(built.getStages()) else None

            applied = []

            def through(fitted):
                applied.append(embedding_store.with_store(spark, settings, fitted, encoder, rec.run_id))
                return applied[-1]

            step(f"fitting on {splits.counts['train']:,} rows of {len(splits.dates)} dates")
            model = fit(built, with_class_weights(splits.train, settings.class_weighting), through)
            step(f"evaluating on {splits.counts['test']:,} test and {splits.counts['validation']:,} validation rows")
            test = scored_frame(through(model), splits.test, settings.max_sentence_length)
            validation = scored_frame(through(model), splits.validation, settings.max_sentence_length)
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
                         "test_accuracy": f"{scores['accuracy']:.4f}",
                         **({registry.ENCODER_TAG: encoder} if encoder else {})}.items():
                client.set_model_version_tag(ref.name, ref.version, k, v)
            step(f"registered as {ref.name} v{ref.version}; promotion gate")
            decision = promotion.gate(spark, settings, ref, test, splits, rec.run_id)

        rec.model_name, rec.model_version = ref.name, ref.version
        rec.rows_out = splits.counts["test"]
        if encoder and settings.embeddings_store:  # texts sent to the encoder (the others came from the table)
            rec.outputs["texts_encoded"] = sum(getattr(m, "encoded", 0) for m in applied)
        rec.outputs.update({"mlflow_run_id": run.info.run_id, "pipeline": name, "decision": decision,
                            **{k: round(scores[k], 4) for k in ("accuracy", "macro_f1")}})
        rec.message = (f"{name} -> {ref.name} v{ref.version}: test accuracy {scores['accuracy']:.3f}, "
                       f"macro-F1 {scores['macro_f1']:.3f} on {len(test):,} rows; {decision}")
    return rec

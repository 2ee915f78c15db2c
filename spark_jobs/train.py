"""Train job: fit the Spark NLP pipeline on labelled curated texts, evaluate on a frozen test split,
log everything to MLflow and register the model (champion when there is none yet)."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import registry
from .lake import Lake
from .nlp import LABELS, label_index, minilm_logreg, predictions_from
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings
from .spark import scoring_partitions

EXIT_NO_TRAINING_DATA = 5


def split_bucket(review_id) -> F.Column:
    """0..99, fixed per review_id on every machine and run: the split never drifts."""
    return F.pmod(F.xxhash64(review_id), F.lit(100))


def train_test_split(labelled: DataFrame, test_fraction: float) -> tuple[DataFrame, DataFrame]:
    bucket = split_bucket(F.col("review_id"))
    cut = int(round(test_fraction * 100))
    return labelled.where(bucket >= cut), labelled.where(bucket < cut)


def labelled_documents(spark: SparkSession, settings: Settings, dates: list[str]) -> DataFrame:
    lake = Lake(settings)
    curated = spark.read.parquet(*[lake.partition("curated", d) for d in dates])
    labels = spark.read.parquet(*[lake.partition("labels", d) for d in dates])
    return curated.select("review_id", "text").join(labels.select("review_id", "label"), "review_id")


def classification_metrics(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y_pred = [p if p is not None else "none" for p in y_pred]
    out = {"accuracy": accuracy_score(y_true, y_pred),
           "macro_f1": f1_score(y_true, y_pred, labels=list(LABELS), average="macro", zero_division=0)}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS), zero_division=0)
    for i, label in enumerate(LABELS):
        out.update({f"precision_{label}": p[i], f"recall_{label}": r[i], f"f1_{label}": f[i], f"support_{label}": float(s[i])})
    return {k: float(v) for k, v in out.items()}


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


def data_fingerprint(df: DataFrame) -> str:
    """Order-independent hash of (review_id, label): same training data, same fingerprint."""
    row = df.select(F.sum(F.xxhash64("review_id", "label").cast("decimal(38,0)")).alias("h")).first()
    return format(int(row["h"] or 0) % (1 << 64), "016x")


def run(spark: SparkSession, settings: Settings, date: str | None = None) -> RunRecord:
    import mlflow

    lake = Lake(settings)
    dates = [d for d in lake.dates("labels") if not date or d <= date]
    with stage_run(settings, "train", date or (dates[-1] if dates else "none")) as rec:
        if not dates:
            raise StageStopped("train: no labelled curated data in the lake yet (run ingest first)",
                               exit_code=EXIT_NO_TRAINING_DATA, status="failed")
        data = labelled_documents(spark, settings, dates)
        train, test = train_test_split(data, settings.test_fraction)
        if settings.train_max_rows:
            train = train.orderBy(F.xxhash64("review_id")).limit(settings.train_max_rows)
        parts = scoring_partitions(spark, settings)
        train, test = train.repartition(parts, "review_id").cache(), test.repartition(parts, "review_id").cache()
        n_train, n_test = train.count(), test.count()
        rec.rows_in = n_train + n_test
        if n_train == 0 or n_test == 0:
            raise StageStopped(f"train: {n_train} training and {n_test} test rows; need both",
                               exit_code=EXIT_NO_TRAINING_DATA, status="failed")

        registry.client(settings)
        with mlflow.start_run(experiment_id=registry.experiment_id(settings), run_name=f"train-{rec.run_id}") as run:
            mlflow.log_params({
                "pipeline": "minilm_logreg", "embeddings_model_dir": settings.embeddings_model_dir,
                "max_iter": settings.train_max_iter, "reg_param": settings.train_reg_param,
                "class_weighting": settings.class_weighting, "max_sentence_length": settings.max_sentence_length,
                "test_fraction": settings.test_fraction, "seed": settings.seed,
                "train_rows": n_train, "test_rows": n_test,
            })
            mlflow.set_tags({
                "training_dates": ",".join(dates), "training_rows": str(n_train),
                "training_data_hash": data_fingerprint(train), "code_version": rec.code_version,
            })
            model = minilm_logreg(spark, settings).fit(with_class_weights(train, settings.class_weighting))
            scored = predictions_from(model.transform(test), settings.model_name, "candidate", "")
            pairs = scored.join(test.select("review_id", F.col("label").alias("truth")), "review_id") \
                .select("truth", "label").collect()
            metrics = classification_metrics([r.truth for r in pairs], [r.label for r in pairs])
            mlflow.log_metrics(metrics)
            ref = registry.log_pipeline(settings, model)
            client = registry.client(settings)
            for k, v in {"training_dates": ",".join(dates), "code_version": rec.code_version,
                         "test_macro_f1": f"{metrics['macro_f1']:.4f}", "test_accuracy": f"{metrics['accuracy']:.4f}"}.items():
                client.set_model_version_tag(ref.name, ref.version, k, v)
            if registry.champion(settings) is None:
                registry.set_alias(settings, registry.CHAMPION, ref.version)
                rec.message = f"registered {ref.name} v{ref.version} as champion"
            else:
                rec.message = f"registered {ref.name} v{ref.version} (champion unchanged)"
        rec.model_name, rec.model_version = ref.name, ref.version
        rec.rows_out = n_test
        rec.outputs.update({"mlflow_run_id": run.info.run_id, **{k: round(v, 4) for k, v in metrics.items()
                                                               if k in ("accuracy", "macro_f1")}})
        rec.message += f"; test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} on {n_test:,} rows"
        train.unpersist()
        test.unpersist()
    return rec

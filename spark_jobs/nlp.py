"""Spark NLP pipeline definitions and the rating -> label rule.

MiniLM sentence embeddings: the model in `embeddings_model_dir` is all-MiniLM-L6-v2 as ONNX (BERT
WordPiece vocabulary, attention-masked mean pooling of last_hidden_state). Spark NLP 5.5.3, the
newest release the Maven mirror serves here, has no `MiniLMEmbeddings` (added in 6.x); its
`E5Embeddings` runs exactly that computation on a BERT-layout ONNX model (WordPiece with [CLS]/[SEP],
mean of last_hidden_state). Spark NLP 5.5.3's ONNX path marks padding as attended, so only a batch
of one is exact; `embeddings_batch_size` defaults to 1 and tests/integration checks the vectors
against a plain ONNX Runtime run of the same model.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from .settings import Settings, SettingsError

LABELS = ("negative", "neutral", "positive")


def label_of_rating(rating: Column) -> Column:
    """1-2 negative, 3 neutral, 4-5 positive; null stays null."""
    return (F.when(rating <= 2, "negative").when(rating == 3, "neutral")
            .when(rating >= 4, "positive"))


def sentence_embeddings(spark, settings: Settings, input_col: str = "document", output_col: str = "sentence_embeddings"):
    import os

    from sparknlp.annotator import E5Embeddings

    folder = settings.embeddings_model_dir
    for needed in ("model.onnx", "assets/vocab.txt"):
        if not os.path.isfile(os.path.join(folder, needed)):
            raise SettingsError(
                f"setting embeddings_model_dir={folder}: {needed} is missing (expected an ONNX BERT-layout "
                "sentence-embedding model; see README 'Use your own data and model')")
    return (E5Embeddings.loadSavedModel(folder, spark)
            .setInputCols([input_col]).setOutputCol(output_col)
            .setBatchSize(settings.embeddings_batch_size)
            .setMaxSentenceLength(settings.max_sentence_length)
            .setDimension(384))


def minilm_logreg(spark, settings: Settings):
    """DocumentAssembler -> MiniLM sentence embeddings -> Spark ML multinomial logistic regression.

    Expects `label_index` (position in LABELS) and `weight` columns when fitting; see train.py.
    ClassifierDLApproach would be the all-Spark-NLP head, but with TF-Java 0.4.2 standing in for
    John Snow Labs' tensorflow-cpu 0.4.4 build (not served here) it trains to the class prior only
    (measured: every row predicted positive); logistic regression on the same embeddings learns.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import SQLTransformer
    from sparknlp.base import DocumentAssembler, EmbeddingsFinisher

    document = DocumentAssembler().setInputCol("text").setOutputCol("document").setCleanupMode("shrink")
    finisher = (EmbeddingsFinisher().setInputCols(["sentence_embeddings"]).setOutputCols(["embedding_vectors"])
                .setOutputAsVector(True))
    # One document is one "sentence" here, so the first (only) vector is the document's.
    features = SQLTransformer(statement="SELECT *, element_at(embedding_vectors, 1) AS features FROM __THIS__")
    classifier = LogisticRegression(featuresCol="features", labelCol="label_index", weightCol="weight",
                                    family="multinomial", maxIter=settings.train_max_iter,
                                    regParam=settings.train_reg_param)
    return Pipeline(stages=[document, sentence_embeddings(spark, settings), finisher, features, classifier])


def label_index(label: Column) -> Column:
    """Position of the label in LABELS (the classifier's class order)."""
    out = F.lit(None).cast("double")
    for i, name in reversed(list(enumerate(LABELS))):
        out = F.when(label == name, F.lit(float(i))).otherwise(out)
    return out


def predictions_from(scored, model_name: str, model_version: str, run_id: str):
    """Flattens the classifier's output into one prediction row per document."""
    from pyspark.ml.functions import vector_to_array

    probs = vector_to_array(F.col("probability"))
    label = F.element_at(F.array(*[F.lit(name) for name in LABELS]), F.col("prediction").cast("int") + 1)
    return scored.select(
        "review_id",
        label.alias("label"),
        F.array_max(probs).alias("confidence"),
        *[probs[i].alias(f"score_{name}") for i, name in enumerate(LABELS)],
        F.lit(model_name).alias("model_name"),
        F.lit(str(model_version)).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )

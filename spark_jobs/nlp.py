"""Spark NLP pipeline definitions, the rating -> label rule and the prediction row shape.

Two pipelines, both fitted by train.py and served from the MLflow registry:

- `minilm_logreg`: DocumentAssembler -> MiniLM sentence embeddings (ONNX, Spark NLP) -> Spark ML
  multinomial logistic regression. The model in `embeddings_model_dir` is all-MiniLM-L6-v2 (BERT
  WordPiece vocabulary, attention-masked mean pooling of last_hidden_state). Spark NLP 5.5.3, the
  newest release the Maven mirror here serves, has no `MiniLMEmbeddings` (a 6.x annotator); its
  `E5Embeddings` runs exactly that computation on a BERT-layout ONNX model. Its ONNX path marks
  padding as attended, so only a batch of one is exact: `embeddings_batch_size` defaults to 1, and
  tests/unit/test_nlp.py checks the vectors against plain ONNX Runtime.
  ClassifierDLApproach would be the all-Spark-NLP head, but with TF-Java 0.4.2 standing in for
  John Snow Labs' tensorflow-cpu 0.4.4 build (not served here) it trains to the class prior only
  (measured: every row predicted positive); logistic regression on the same vectors learns.
- `tfidf_logreg`: Spark NLP Tokenizer + Normalizer -> Spark ML uni- and bigram counts, IDF ->
  logistic regression. Light enough for any CPU. (Models registered before the words were taken
  from the annotations in SQL carry a Finisher stage instead; both give the same words.)

Both read `model_text` = title + ". " + text (the title carries much of the sentiment).
"""
from __future__ import annotations

import os
import shutil

from pyspark.sql import Column
from pyspark.sql import functions as F

from .settings import PROJECT_ROOT, Settings, SettingsError
from .vocabulary import LABELS, PIPELINES

# The one place the model input is composed, as a Spark ML stage so serving uses the same rule.
MODEL_TEXT_SQL = ("SELECT *, concat_ws('. ', nullif(trim(title), ''), text) AS model_text FROM __THIS__")


# The stage that reads the encoder's vector as `features`, and the encoder annotators: where
# embedding_store.py cuts a pipeline in two (encoder, then head).
FEATURES_SQL = "SELECT *, element_at(embedding_vectors, 1) AS features FROM __THIS__"
ENCODER_STAGES = ("E5Embeddings",)


def label_of_rating(rating: Column) -> Column:
    """1-2 negative, 3 neutral, 4-5 positive; null stays null."""
    return (F.when(rating <= 2, "negative").when(rating == 3, "neutral")
            .when(rating >= 4, "positive"))


def label_index(label: Column) -> Column:
    """Position of the label in LABELS (the classifiers' class order)."""
    out = F.lit(None).cast("double")
    for i, name in reversed(list(enumerate(LABELS))):
        out = F.when(label == name, F.lit(float(i))).otherwise(out)
    return out


def embeddings_model_folder(settings: Settings) -> str:
    """The ONNX model folder to load: the configured one, or its int8-quantised copy."""
    folder = settings.embeddings_model_dir
    for needed in ("model.onnx", "assets/vocab.txt"):
        if not os.path.isfile(os.path.join(folder, needed)):
            raise SettingsError(
                f"setting embeddings_model_dir={folder}: {needed} is missing (expected an ONNX BERT-layout "
                "sentence-embedding model; see README 'Use your own data and model')")
    if not settings.onnx_int8:
        return folder
    return quantised_copy(folder, os.path.join(PROJECT_ROOT, ".cache", "models"))


def quantised_copy(folder: str, cache: str) -> str:
    """Dynamic int8 quantisation (onnxruntime.quantization) of model.onnx, made once and cached."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = os.path.join(cache, os.path.basename(os.path.normpath(folder)) + "-int8")
    model = os.path.join(target, "model.onnx")
    if not os.path.isfile(model):
        tmp = f"{target}.{os.getpid()}.tmp"  # two first runs at once each make their own
        shutil.rmtree(tmp, ignore_errors=True)
        # the files' bytes, not their modes: a read-only model folder must not make a read-only copy
        for root, _, files in os.walk(folder):
            into = os.path.join(tmp, os.path.relpath(root, folder))
            os.makedirs(into, exist_ok=True)
            for name in files:
                if (root, name) != (folder, "model.onnx"):
                    shutil.copyfile(os.path.join(root, name), os.path.join(into, name))
        quantize_dynamic(os.path.join(folder, "model.onnx"), os.path.join(tmp, "model.onnx"),
                         weight_type=QuantType.QInt8)
        if os.path.isfile(model):  # another process finished first: its copy is the same
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    return target


def sentence_embeddings(spark, settings: Settings, input_col: str = "document", output_col: str = "sentence_embeddings"):
    from sparknlp.annotator import E5Embeddings

    return (E5Embeddings.loadSavedModel(embeddings_model_folder(settings), spark)
            .setInputCols([input_col]).setOutputCol(output_col)
            .setBatchSize(settings.embeddings_batch_size)
            .setMaxSentenceLength(settings.max_sentence_length)
            .setDimension(384))


def _classifier(settings: Settings, pipeline_name: str, standardize: bool = True):
    from pyspark.ml.classification import LogisticRegression

    return LogisticRegression(featuresCol="features", labelCol="label_index", weightCol="weight",
                              family="multinomial", maxIter=settings.train_max_iter,
                              regParam=settings.reg_param(pipeline_name), standardization=standardize)


def minilm_logreg(spark, settings: Settings):
    """model_text -> MiniLM sentence embeddings (Spark NLP) -> logistic regression (Spark ML)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer
    from sparknlp.base import DocumentAssembler, EmbeddingsFinisher

    return Pipeline(stages=[
        SQLTransformer(statement=MODEL_TEXT_SQL),
        DocumentAssembler().setInputCol("model_text").setOutputCol("document").setCleanupMode("shrink"),
        sentence_embeddings(spark, settings),
        EmbeddingsFinisher().setInputCols(["sentence_embeddings"]).setOutputCols(["embedding_vectors"])
        .setOutputAsVector(True),
        # One document is one "sentence" here, so the first (only) vector is the document's.
        SQLTransformer(statement=FEATURES_SQL),
        _classifier(settings, "minilm_logreg"),
    ])


def tfidf_logreg(spark, settings: Settings):
    """model_text -> Spark NLP tokens, normalised -> uni+bigram counts, IDF -> logistic regression."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import IDF, CountVectorizer, NGram, SQLTransformer
    from pyspark.ml.feature import Normalizer as VectorNormalizer
    from sparknlp.annotator import Normalizer, Tokenizer
    from sparknlp.base import DocumentAssembler

    return Pipeline(stages=[
        SQLTransformer(statement=MODEL_TEXT_SQL),
        DocumentAssembler().setInputCol("model_text").setOutputCol("document").setCleanupMode("shrink"),
        Tokenizer().setInputCols(["document"]).setOutputCol("token"),
        # Lower-cased words; apostrophes kept so "didn't" stays one negating token.
        Normalizer().setInputCols(["token"]).setOutputCol("normal").setLowercase(True)
        .setCleanupPatterns(["[^\\w']"]),
        # The words are the annotations' results: read in SQL rather than by the Finisher, a UDF that
        # converts every annotation row (10% of the scoring time, benchmarks/README.md); the same arrays.
        SQLTransformer(statement="SELECT *, normal.result AS words FROM __THIS__"),
        NGram(n=2, inputCol="words", outputCol="bigrams"),
        SQLTransformer(statement="SELECT *, concat(words, bigrams) AS terms FROM __THIS__"),
        CountVectorizer(inputCol="terms", outputCol="counts", minDF=2.0, vocabSize=1 << 18),
        IDF(inputCol="counts", outputCol="tfidf"),
        # Unit-length rows and no per-feature standardisation: standardising sparse TF-IDF inflates
        # rare terms (measured: test macro-F1 0.586 with it, 0.662 without).
        VectorNormalizer(inputCol="tfidf", outputCol="features", p=2.0),
        _classifier(settings, "tfidf_logreg", standardize=False),
    ])


def pipeline(name: str, spark, settings: Settings):
    builders = {"tfidf_logreg": tfidf_logreg, "minilm_logreg": minilm_logreg}
    if name not in builders:
        raise SettingsError(f"unknown pipeline {name!r}: expected one of {', '.join(PIPELINES)}")
    return builders[name](spark, settings)


_ENGLISH = r"\b(the|and|is|it|to|of|this|was|for|in|my|with|but|not|so|very|on|you|are|be|have|i|a)\b"


def flags(text: Column, max_pieces: int) -> Column:
    """Texts the model sees differently from most: longer than the encoder reads (~4 characters
    a word piece), or probably not English (no common English word at all)."""
    lowered = F.lower(text)
    return F.filter(F.array(
        F.when(F.length(text) > max_pieces * 4, F.lit("long_text")),
        F.when((F.length(text) >= 20) & ~lowered.rlike(_ENGLISH), F.lit("non_english")),
    ), lambda f: f.isNotNull())


def predictions_from(scored, model_name: str, model_version: str, run_id: str, max_pieces: int = 256,
                     keep: tuple[str, ...] = ()):
    """Flattens the classifier's output into one prediction row per document (plus the input columns
    named in `keep`)."""
    from pyspark.ml.functions import vector_to_array

    probs = vector_to_array(F.col("probability"))
    label = F.element_at(F.array(*[F.lit(name) for name in LABELS]), F.col("prediction").cast("int") + 1)
    return scored.select(
        "review_id",
        label.alias("label"),
        F.array_max(probs).alias("confidence"),
        *[probs[i].alias(f"score_{name}") for i, name in enumerate(LABELS)],
        flags(F.col("text"), max_pieces).alias("flags"),
        F.lit(model_name).alias("model_name"),
        F.lit(str(model_version)).alias("model_version"),
        F.lit(run_id).alias("run_id"),
        *keep,
    )

"""The Spark NLP embeddings stage computes exactly all-MiniLM-L6-v2's sentence vectors."""
import numpy as np
import pandas as pd
import pytest

from spark_jobs import nlp
from spark_jobs.settings import SettingsError
from tests.conftest import CORPUS, MODEL_DIR, make_settings, need


def reference_embeddings(texts, model_dir):
    """Plain ONNX Runtime + the Hugging Face tokenizer, pooled as pooling_config.json says."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc])
    mask = np.array([e.attention_mask for e in enc])
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_spark_nlp_embeddings_match_plain_onnx_runtime(spark, tmp_path):
    need(CORPUS)
    need(MODEL_DIR)
    from pyspark.ml import Pipeline
    from sparknlp.base import DocumentAssembler, EmbeddingsFinisher

    texts = pd.read_csv(CORPUS, nrows=40)["Review Text"].dropna().head(12).tolist() + ["ok", "Terrible."]
    settings = make_settings(tmp_path)
    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    pipe = Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        nlp.sentence_embeddings(spark, settings),
        EmbeddingsFinisher().setInputCols(["sentence_embeddings"]).setOutputCols(["v"]),
    ]).fit(df)
    got = np.array([r.v[0] for r in pipe.transform(df).select("v").collect()])
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    cos = (got * reference_embeddings(texts, MODEL_DIR)).sum(1)
    assert cos.min() > 0.9999, cos


def test_a_model_folder_without_onnx_is_a_clear_error(spark, tmp_path):
    settings = make_settings(tmp_path, embeddings_model_dir=str(tmp_path))
    with pytest.raises(SettingsError, match="embeddings_model_dir=.*model.onnx is missing"):
        nlp.sentence_embeddings(spark, settings)


def test_label_of_rating(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(r,) for r in [1, 2, 3, 4, 5, None]], "r int")
    got = [row.l for row in df.select(nlp.label_of_rating(F.col("r")).alias("l")).collect()]
    assert got == ["negative", "negative", "neutral", "positive", "positive", None]


def test_the_words_taken_in_sql_are_the_finishers(spark, tmp_path):
    """tfidf_logreg reads the normalised tokens' results in SQL; models registered before that carry
    Spark NLP's Finisher there. Both must give the classifier the same words."""
    need(CORPUS)
    from pyspark.ml import Pipeline
    from sparknlp.base import Finisher

    reviews = pd.read_csv(CORPUS, nrows=400).fillna({"Title": "", "Review Text": ""})
    texts = reviews["Review Text"].tolist() + ["Didn't fit -- at ALL!!", "Great!!! 10/10 :)", "   ", "é&amp;<b>"]
    titles = reviews["Title"].tolist() + ["", "x", "", ""]
    df = spark.createDataFrame(list(zip(range(len(texts)), titles, texts)), ["review_id", "title", "text"])
    stages = nlp.tfidf_logreg(spark, make_settings(tmp_path)).getStages()
    words_at = next(i for i, st in enumerate(stages) if "AS words" in getattr(st, "getStatement", lambda: "")())
    ours = Pipeline(stages=stages[:words_at + 1]).fit(df).transform(df).select("review_id", "words")
    finisher = Finisher().setInputCols(["normal"]).setOutputCols(["words"]).setOutputAsArray(True)
    theirs = Pipeline(stages=[*stages[:words_at], finisher]).fit(df).transform(df).select("review_id", "words")
    got = {r.review_id: r.words for r in ours.collect()}
    assert got == {r.review_id: r.words for r in theirs.collect()}
    assert len(got) == len(texts) and sum(map(len, got.values())) > 10 * len(texts)

"""The Spark NLP embeddings stage computes exactly all-MiniLM-L6-v2's sentence vectors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spark_jobs import nlp
from spark_jobs.settings import PROJECT_ROOT, SettingsError
from tests.conftest import CORPUS, MODEL_DIR, make_settings, need


def reference_embeddings(texts, model_dir):
    """Plain ONNX Runtime + the Hugging Face tokenizer, mean-pooled as pooling_config.json says; one
    text per call, as the annotator runs (an int8 model quantises each call's input as a whole, so
    padding in a batch would move its vectors)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.no_padding()  # the file asks for a fixed width
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    pooled = []
    for e in tok.encode_batch(texts):
        ids = np.array([e.ids])
        hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                    "token_type_ids": np.zeros_like(ids)})[0]
        pooled.append(hidden[0].mean(0))
    pooled = np.array(pooled)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_spark_nlp_embeddings_match_plain_onnx_runtime(tmp_path):
    """fp32 (NLP_ONNX_INT8=false): exactly the model's vectors. In a process of its own: Spark NLP 5.5.3
    adds the model.onnx it loads to the session's files under that name, and refuses a second one
    with other bytes, so a session loads one encoder file (this test session's is the int8 default's)."""
    need(CORPUS)
    need(MODEL_DIR)
    texts = pd.read_csv(CORPUS, nrows=40)["Review Text"].dropna().head(12).tolist() + ["ok", "Terrible."]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = ("import json, sys, numpy as np; from pathlib import Path; from spark_jobs.spark import get_spark; "
              "from tests.conftest import make_settings; from tests.unit.test_nlp import spark_nlp_embeddings; "
              "root = Path(sys.argv[1]); settings = make_settings(root, onnx_int8=False); "
              "np.save(root / 'v.npy', spark_nlp_embeddings(get_spark(settings), settings, "
              "json.loads((root / 'texts.json').read_text())))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT, check=True, timeout=300)
    cos = (np.load(tmp_path / "v.npy") * reference_embeddings(texts, MODEL_DIR)).sum(1)
    assert cos.min() > 0.9999, cos


def spark_nlp_embeddings(spark, settings, texts):
    """The annotator's sentence vectors of `texts`, unit length."""
    from pyspark.ml import Pipeline
    from sparknlp.base import DocumentAssembler, EmbeddingsFinisher

    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    pipe = Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        nlp.sentence_embeddings(spark, settings),
        EmbeddingsFinisher().setInputCols(["sentence_embeddings"]).setOutputCols(["v"]),
    ]).fit(df)
    got = np.array([r.v[0] for r in pipe.transform(df).select("v").collect()])
    return got / np.linalg.norm(got, axis=1, keepdims=True)


def test_the_int8_default_encodes_with_a_quantised_copy_made_once(spark, tmp_path):
    """onnx_int8 (the default): the annotator loads a dynamically quantised copy of model.onnx, made
    once beside the project and reused; its vectors are plain ONNX Runtime's on that copy (up to the
    rounding of two versions' int8 kernels), near the fp32 ones but not equal, so the copy's hash
    makes an encoder of its own in the embeddings table."""
    need(CORPUS)
    need(MODEL_DIR)
    from spark_jobs import embedding_store

    settings = make_settings(tmp_path)
    assert settings.onnx_int8
    folder = nlp.embeddings_model_folder(settings)
    model = os.path.join(folder, "model.onnx")
    assert folder != str(MODEL_DIR) and os.path.getsize(model) < os.path.getsize(MODEL_DIR / "model.onnx") / 3
    made = os.stat(model).st_mtime_ns
    assert nlp.embeddings_model_folder(settings) == folder and os.stat(model).st_mtime_ns == made  # reused
    assert sorted(os.listdir(folder)) == sorted(os.listdir(MODEL_DIR))  # the tokenizer files came along

    texts = pd.read_csv(CORPUS, nrows=40)["Review Text"].dropna().head(12).tolist() + ["ok", "Terrible."]
    got = spark_nlp_embeddings(spark, settings, texts)
    int8 = (got * reference_embeddings(texts, Path(folder))).sum(1)
    fp32 = (got * reference_embeddings(texts, MODEL_DIR)).sum(1)
    assert int8.min() > 0.99 and np.median(int8) > 0.9999, int8
    assert 0.8 < fp32.min() and np.median(fp32) < 0.99, fp32
    assert embedding_store.encoder_id(settings) != embedding_store.encoder_id(settings.replace(onnx_int8=False))


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

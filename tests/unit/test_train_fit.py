"""train.fit fits what Pipeline.fit fits, with the text stages' output cached once for the feature
stages that learn from the data."""
import numpy as np
import pandas as pd

from spark_jobs import nlp, train
from tests.conftest import CORPUS, MODEL_DIR, make_settings, need


def _labelled(spark, rows: int):
    from pyspark.sql import functions as F

    reviews = pd.read_csv(CORPUS, nrows=rows).fillna({"Title": "", "Review Text": ""})
    df = spark.createDataFrame(
        [(f"r{i}", t, x, int(r)) for i, (t, x, r) in enumerate(zip(reviews["Title"], reviews["Review Text"],
                                                                    reviews["Rating"]))],
        "review_id string, title string, text string, rating int").repartition(2, "review_id")
    return train.with_class_weights(df.withColumn("label", nlp.label_of_rating(F.col("rating"))), "balanced")


def test_the_tfidf_fit_is_pipeline_fits_with_the_tokens_cached_once(spark, tmp_path):
    need(CORPUS)
    from pyspark.ml import Pipeline

    settings = make_settings(tmp_path, train_max_iter=20)
    data = _labelled(spark, 300).cache()
    ours = train.fit(nlp.tfidf_logreg(spark, settings), data)
    theirs = Pipeline(stages=nlp.tfidf_logreg(spark, settings).getStages()).fit(data)

    def fitted(model, kind):
        return next(s for s in model.stages if type(s).__name__ == kind)
    assert fitted(ours, "CountVectorizerModel").vocabulary == fitted(theirs, "CountVectorizerModel").vocabulary
    assert len(fitted(ours, "CountVectorizerModel").vocabulary) > 500
    np.testing.assert_array_equal(fitted(ours, "IDFModel").idf.toArray(), fitted(theirs, "IDFModel").idf.toArray())
    np.testing.assert_allclose(ours.stages[-1].coefficientMatrix.toArray(),
                               theirs.stages[-1].coefficientMatrix.toArray(), rtol=1e-6)

    # what was cached for the estimators: the terms they read and the classifier's label and weight,
    # not the texts or Spark NLP's annotations
    stages = nlp.tfidf_logreg(spark, settings).getStages()[:-1]
    fitted_stages, texts, out = train.fit_feature_stages(stages, data, ["features", "label_index", "weight"])
    try:
        assert texts.is_cached and sorted(texts.columns) == ["label_index", "terms", "weight"]
        assert "features" in out.columns and len(fitted_stages) == len(stages)
    finally:
        texts.unpersist()
        data.unpersist()


def test_a_pipeline_without_estimators_that_read_data_caches_nothing(spark, tmp_path):
    need(MODEL_DIR)
    from pyspark.ml.feature import IDF, SQLTransformer

    settings = make_settings(tmp_path)
    stages = nlp.minilm_logreg(spark, settings).getStages()[:-1]  # the encoder's stages: no data read to fit
    data = spark.createDataFrame([("r1", "", "Lovely dress", "positive", 0.0, 1.0)],
                                 "review_id string, title string, text string, label string, label_index double, "
                                 "weight double")
    _, texts, _ = train.fit_feature_stages(stages, data, ["features", "label_index", "weight"])
    assert texts is None
    assert train.columns_read([IDF(inputCol="counts", outputCol="tfidf")]) == {"counts"}
    assert train.columns_read([SQLTransformer(statement="SELECT * FROM __THIS__")]) is None  # may read any

"""A model applied through the embeddings table predicts exactly what it predicts whole, and each
text reaches the encoder once per encoder."""
import numpy as np
import pandas as pd

from spark_jobs import embedding_store, nlp, tables, train
from tests.conftest import CORPUS, MODEL_DIR, make_settings, need, table_rows


def _docs(spark, reviews: pd.DataFrame, date_of):
    rows = [(f"r{i}", date_of(i), title, text, nlp_label)
            for i, (title, text, nlp_label) in enumerate(zip(reviews["Title"], reviews["Review Text"], reviews["label"]))]
    return spark.createDataFrame(rows, "review_id string, ingest_date string, title string, text string, label string")


def _snapshots(settings) -> int:
    return len(tables.load_table(settings, "embeddings").snapshots())


def test_through_the_table_the_same_model_and_predictions_and_each_text_encoded_once(spark, tmp_path):
    need(CORPUS)
    need(MODEL_DIR)
    settings = make_settings(tmp_path, train_max_iter=30)
    reviews = pd.read_csv(CORPUS, nrows=80).dropna(subset=["Review Text"]).head(36).fillna({"Title": ""})
    reviews["label"] = ["negative" if r <= 2 else "neutral" if r == 3 else "positive" for r in reviews["Rating"]]
    reviews = reviews[["Title", "Review Text", "label"]].reset_index(drop=True)
    reviews.loc[35, ["Title", "Review Text"]] = reviews.loc[0, ["Title", "Review Text"]].to_numpy()  # the same text
    docs = _docs(spark, reviews, lambda i: "2026-11-01" if i < 20 or i == 35 else "2026-11-02")
    weighted = train.with_class_weights(docs, "balanced")
    encoder = embedding_store.encoder_id(settings)

    def through(model):
        return embedding_store.with_store(spark, settings, model, encoder, "run-test")

    whole = train.fit(nlp.minilm_logreg(spark, settings), weighted)
    assert through(whole).transform(docs.limit(0)).count() == 0  # no documents, no table yet: no error
    assert tables.load_table(settings, "embeddings") is None
    stored = train.fit(nlp.minilm_logreg(spark, settings), weighted, through)

    kept = table_rows(settings, "embeddings")
    assert len(kept) == 35, "36 documents, one text twice on the same date: 35 vectors"
    assert set(kept["encoder"]) == {encoder} and set(kept["ingest_date"]) == {"2026-11-01", "2026-11-02"}
    assert {len(v) for v in kept["embedding"]} == {384}
    # the same vectors in another row order: equal up to the order of the optimiser's float sums
    np.testing.assert_allclose(stored.stages[-1].coefficientMatrix.toArray(),
                               whole.stages[-1].coefficientMatrix.toArray(), rtol=1e-6)

    commits = _snapshots(settings)

    def probabilities(df):
        return {r.review_id: r.probability.toArray().tolist() for r in df.select("review_id", "probability").collect()}
    assert probabilities(through(whole).transform(docs)) == probabilities(whole.transform(docs))
    assert _snapshots(settings) == commits, "every text was in the table: nothing encoded, nothing committed"

    more = _docs(spark, pd.DataFrame({"Title": ["", "Brand new"], "Review Text": ["Never seen before.", "A new one"],
                                      "label": ["neutral", "positive"]}), lambda i: "2026-11-02")
    assert probabilities(through(whole).transform(more)) == probabilities(whole.transform(more))
    assert _snapshots(settings) == commits + 1 and len(table_rows(settings, "embeddings")) == 37


def test_models_without_an_encoder_or_with_the_table_off_are_applied_whole(spark, tmp_path):
    need(MODEL_DIR)
    settings = make_settings(tmp_path)
    docs = spark.createDataFrame([("r1", "2026-11-01", "t", "good", "positive"), ("r2", "2026-11-01", "", "bad", "negative"),
                                  ("r3", "2026-11-01", "", "good good", "positive"),
                                  ("r4", "2026-11-01", "", "bad bad", "negative")],
                                 "review_id string, ingest_date string, title string, text string, label string")
    tfidf = nlp.tfidf_logreg(spark, settings)
    assert embedding_store.encoder_span(tfidf.getStages()) is None
    minilm = nlp.minilm_logreg(spark, settings)
    assert embedding_store.encoder_span(minilm.getStages()) == (1, 4)
    off = make_settings(tmp_path, embeddings_store=False)
    assert embedding_store.with_store(spark, off, minilm, "abc", "run") is minilm
    assert embedding_store.with_store(spark, settings, minilm, None, "run") is minilm
    fitted = train.fit(tfidf, train.with_class_weights(docs, "none"))
    assert embedding_store.with_store(spark, settings, fitted, "abc", "run") is fitted


def test_the_encoder_id_changes_with_what_changes_the_vectors(tmp_path):
    need(MODEL_DIR)
    base = embedding_store.encoder_id(make_settings(tmp_path))
    assert base == embedding_store.encoder_id(make_settings(tmp_path, replay_days=3))
    assert base != embedding_store.encoder_id(make_settings(tmp_path, max_sentence_length=128))
    assert base != embedding_store.encoder_id(make_settings(tmp_path, embeddings_batch_size=8))


def test_maintain_deletes_the_vectors_of_encoders_no_run_reads(spark, tmp_path):
    from collections import Counter

    from spark_jobs import maintain, registry

    need(MODEL_DIR)
    settings = make_settings(tmp_path)
    current = embedding_store.encoder_id(settings)  # what the next training encodes with

    def vectors(encoder: str, n: int):
        return spark.createDataFrame([(encoder, "2026-11-01", f"key{i}", [0.5] * 384) for i in range(n)],
                                     "encoder string, ingest_date string, text_key string, embedding array<float>")

    held = {current: 3, "c0ffee0000000001": 2, "c0ffee0000000002": 4}
    for encoder, n in {**held, "c0ffee0000000003": 5, "c0ffee0000000004": 1}.items():
        tables.append(spark, settings, "embeddings", vectors(encoder, n), "run-test")
    client = registry.client(settings)
    client.create_registered_model(settings.model_name)
    # versions 1 and 2 hold the aliases; version 3 was retired (its encoder ...03 is read by no run),
    # and no version was ever registered with ...04 (a run under other settings encoded with it)
    for number, (encoder, alias) in enumerate((("c0ffee0000000001", registry.CHAMPION),
                                               ("c0ffee0000000002", registry.CHALLENGER),
                                               ("c0ffee0000000003", None)), 1):
        client.create_model_version(settings.model_name, str(tmp_path), tags={registry.ENCODER_TAG: encoder})
        if alias:
            client.set_registered_model_alias(settings.model_name, alias, str(number))
    assert registry.aliased_encoders(settings) == {"c0ffee0000000001", "c0ffee0000000002"}

    rec = maintain.run(spark, settings)
    assert rec.outputs["tables"]["embeddings"]["pruned"] == 6
    assert "6 vectors of unused encoders deleted" in rec.message
    assert dict(Counter(table_rows(settings, "embeddings")["encoder"])) == held
    assert maintain.run(spark, settings).outputs["tables"]["embeddings"]["pruned"] == 0

"""What the models' settings cost in quality, on one frozen split: minilm_logreg with fp32 and with
int8 embeddings, tfidf_logreg with and without per-feature standardisation, and Spark NLP's
ClassifierDL in place of the logistic regression on the MiniLM vectors.

    .venv/bin/python benchmarks/model_quality_benchmark.py [--rows 10000] [--cosine-rows 500]

The corpus' first `rows` reviews with a text (title + text, labels from ratings) are split by the
project's frozen rule (splits.frozen_split: a hash of review_id; the test and validation shares of
the settings). Each variant is fitted on the train split with the project's own code (nlp.pipeline,
train.with_class_weights, train.fit) and scored on the test split (splits.scored_frame,
evaluation.metrics): the same documents for every variant.

- minilm_logreg fp32 / int8 (NLP_ONNX_INT8: the dynamically quantised copy nlp.py makes): trained
  and served with the same setting, as a registered model would be.
- tfidf_logreg as nlp.py builds it (no standardisation of the sparse TF-IDF features), and the same
  pipeline with the logistic regression's standardisation on.
- minilm_classifierdl: the MiniLM embedding stages of minilm_logreg, then ClassifierDLApproach
  (Spark NLP's own head, its default epochs and learning rate; it takes no row weights, so the class
  weighting the logistic regression gets does not apply) on the TF-Java build the project's jars
  carry (John Snow Labs' TensorFlow build is not served); the labels it predicts are counted like
  every variant's.
- How far int8 moves the vectors: cosine similarity of int8 to fp32 sentence vectors (plain ONNX
  Runtime, monitoring.SentenceEmbedder) on the first `cosine-rows` test texts.

Results: benchmarks/results/model_quality.json, with the differences computed here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

# variant: (the project's pipeline, settings changed, head: as built / standardised / ClassifierDL)
VARIANTS = {
    "minilm_logreg_fp32": ("minilm_logreg", {"onnx_int8": False}, "as built"),
    "minilm_logreg_int8": ("minilm_logreg", {"onnx_int8": True}, "as built"),
    "tfidf_logreg": ("tfidf_logreg", {}, "as built"),
    "tfidf_logreg_standardized": ("tfidf_logreg", {}, "standardized"),
    "minilm_classifierdl": ("minilm_logreg", {"onnx_int8": False}, "classifierdl"),
}


def build(name: str, spark, s, head: str):
    """The project's pipeline, its logistic regression standardising, or ClassifierDL in its place
    (after the same embedding stages)."""
    from pyspark.ml import Pipeline

    from spark_jobs import nlp

    pipeline = nlp.pipeline(name, spark, s)
    if head == "as built":
        return pipeline
    *features, classifier = pipeline.getStages()
    if head == "standardized":
        return Pipeline(stages=[*features, classifier.copy().setStandardization(True)])
    from sparknlp.annotator import ClassifierDLApproach

    embeddings = features[:3]  # model text, DocumentAssembler, E5Embeddings
    return Pipeline(stages=[*embeddings, ClassifierDLApproach().setInputCols(["sentence_embeddings"])
                            .setOutputCol("class").setLabelColumn("label").setEnableOutputLogs(False)])


def scored(model, test, head: str, max_pieces: int):
    """truth, label, confidence per test document (splits.scored_frame; ClassifierDL's annotation
    read the same way: its result, and its score for that result as the confidence)."""
    from pyspark.sql import functions as F

    from spark_jobs import splits

    if head != "classifierdl":
        return splits.scored_frame(model, test, max_pieces)
    out = model.transform(test).select(
        "review_id", F.col("label").alias("truth"), F.col("class")[0]["result"].alias("label"),
        F.col("class")[0]["metadata"]).toPandas()
    out["confidence"] = [float(m.get(label, "nan")) for m, label in zip(out.pop("class[0].metadata"), out["label"])]
    return out.sort_values("review_id", ignore_index=True)


def cosines(test_texts: list[str], s) -> dict:
    import numpy as np

    from spark_jobs import monitoring, nlp

    vectors = [monitoring.SentenceEmbedder(nlp.embeddings_model_folder(s.replace(onnx_int8=int8)),
                                           max_length=s.max_sentence_length).embed(test_texts)
               for int8 in (False, True)]
    cos = (vectors[0] * vectors[1]).sum(1)  # unit vectors
    return {"rows": len(test_texts), "mean": round(float(cos.mean()), 4), "p5": round(float(np.percentile(cos, 5)), 4),
            "min": round(float(cos.min()), 4)}


def frozen_test_split(rows: int):
    """(spark, settings, split counts, train, test): the first `rows` reviews split by the frozen rule."""
    from spark_jobs import splits
    from spark_jobs.spark import get_spark, scoring_partitions

    s = common.settings()
    spark = get_spark(s)
    parts = scoring_partitions(spark, s)
    docs = spark.createDataFrame(common.documents(rows).drop(columns="model_text"))
    train_df, validation, test = (d.repartition(parts, "review_id").cache() for d in
                                  splits.frozen_split(docs, s.test_fraction, s.validation_fraction))
    counts = {"train": train_df.count(), "validation": validation.count(), "test": test.count()}
    return spark, s, counts, train_df, test


def one(variant: str, rows: int, cosine_rows: int) -> dict:
    """One variant in this process (Spark NLP loads one model.onnx per session, so fp32 and int8
    cannot share one)."""
    from spark_jobs import evaluation, train

    spark, s, counts, train_df, test = frozen_test_split(rows)
    if variant == "cosine":
        ids = sorted(r.review_id for r in test.select("review_id").collect())[:cosine_rows]
        texts = common.documents(rows).set_index("review_id").loc[ids]["model_text"].tolist()
        return {"split": counts, **cosines(texts, s)}
    name, changes, head = VARIANTS[variant]
    vs = s.replace(**changes)
    start = time.monotonic()
    pipeline, weighted = build(name, spark, vs, head), train.with_class_weights(train_df, vs.class_weighting)
    # ClassifierDL reads annotations, not a features column: train.fit's cached split does not apply
    model = pipeline.fit(weighted) if head == "classifierdl" else train.fit(pipeline, weighted)
    fitted = time.monotonic() - start
    frame = scored(model, test, head, vs.max_sentence_length)
    scores = evaluation.metrics(frame)
    return {"split": counts, "pipeline": name, "onnx_int8": vs.onnx_int8, "head": head,
            "fit_seconds": round(fitted, 1), "test_seconds": round(time.monotonic() - start - fitted, 1),
            "predicted": {k: int(v) for k, v in frame["label"].value_counts().items()},
            **{k: round(v, 4) for k, v in scores.items() if not k.startswith("support_")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--cosine-rows", type=int, default=500, help="0: no cosine figures")
    common.add_configuration_args(p, [*VARIANTS, "cosine"], "variants")
    args = p.parse_args()
    if args.one:
        common.print_result(one(args.one, args.rows, args.cosine_rows))
        return
    run = common.run_of(__file__, args)
    results = {}
    for variant in [*(args.only.split(",") if args.only else VARIANTS), *(["cosine"] if args.cosine_rows else [])]:
        results[variant] = common.run_isolated(__file__, "--one", variant, "--rows", str(args.rows),
                                               "--cosine-rows", str(args.cosine_rows))
        print(variant, results[variant], flush=True)
    cosine = results.pop("cosine", None)
    splits_seen = {json.dumps(r.pop("split", None), sort_keys=True) for r in [*results.values(), cosine or {}]}

    def diff(a, b):
        have = a in results and b in results and "macro_f1" in results[a] and "macro_f1" in results[b]
        return round(results[a]["macro_f1"] - results[b]["macro_f1"], 4) if have else None

    s = common.settings()
    run.write("model_quality" if not args.only else "model_quality_partial", {
        "split": {"counts": [json.loads(x) for x in sorted(splits_seen)], "test_fraction": s.test_fraction,
                  "validation_fraction": s.validation_fraction, "rule": "spark_jobs.splits.frozen_split"},
        "variants": results, "int8_cosine_to_fp32": cosine,
        "comparisons": {"minilm_macro_f1_int8_minus_fp32": diff("minilm_logreg_int8", "minilm_logreg_fp32"),
                        "tfidf_macro_f1_standardized_minus_not": diff("tfidf_logreg_standardized", "tfidf_logreg"),
                        "minilm_macro_f1_classifierdl_minus_logreg": diff("minilm_classifierdl", "minilm_logreg_fp32")},
    })


if __name__ == "__main__":
    main()

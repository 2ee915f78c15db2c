"""Champion scoring: `tfidf_logreg` in Spark next to the same model in scikit-learn on one core, and
where the Spark scoring time goes, stage by stage.

    .venv/bin/python benchmarks/scoring_benchmark.py [--rows 100000] [--fit-rows 20000] [--profile-rows 30000]

Both sides are fitted on the corpus' first `fit-rows` reviews (not timed) and score the same `rows`
reviews (the corpus cycled through from there: each review comes back with an id of its own), title
+ text as the pipeline composes them (its own SQL stage composes the texts both sides read).

- Spark: the project's `tfidf_logreg` (nlp.py, fitted by train.fit) on Spark local[*] (one task per
  core), input cached and counted before the timer, a warm-up on `warmup` other rows, then the
  scoring inference runs: transform + the flattening into prediction rows (nlp.predictions_from),
  every row computed (Spark's noop sink).
- scikit-learn, in a process of its own pinned to one core (BLAS and OpenMP at one thread): the same
  features and classifier: lower-cased whitespace tokens with the characters [^\\w'] removed (Spark
  NLP's Tokenizer + Normalizer, approximately: its tokenizer also splits some punctuation), uni- and
  bigram counts with the same min-df and vocabulary cap, TF-IDF, L2-normalised rows, multinomial
  logistic regression with balanced class weights and the same regularisation; scoring is
  predict_proba on the raw texts and the same prediction rows (label, confidence, scores), after
  the same warm-up. Two tokenisers, each fitted and timed: `same_tokens` (the rule above, a Python
  function per text) and `builtin_regex` (scikit-learn's own token_pattern [\\w']+ on lower-cased
  text, what a user of scikit-learn would write; it also splits inside words such as "well-made").
  The ratio is taken against the faster of the two, the strongest plain alternative. The share of
  rows on which each predicts the same label as Spark is written down.
- Profile: the fitted Spark pipeline's stages as prefixes (stages 1..k, then the flattening), each
  prefix timed on `profile-rows` cached rows (best of `profile-repeats`); a stage costs the
  difference between its prefix and the one before.

Results: benchmarks/results/scoring.json, with Spark's rows/s per core over scikit-learn's.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def words(text: str) -> list[str]:
    """Spark NLP's Tokenizer + Normalizer(lowercase, cleanup [^\\w']) as nearly as one line can."""
    return [w for w in (re.sub(r"[^\w']", "", t) for t in text.lower().split()) if w]


def sklearn_side(work: str) -> dict:
    """Runs in its own process: for each tokeniser, fit (not timed), warm-up, then score the rows on one core."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np
    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from spark_jobs.vocabulary import LABELS

    s = common.settings()
    fit, warm, rows = (pd.read_parquet(os.path.join(work, f"{n}.parquet")) for n in ("fit", "warm", "rows"))
    tokenisers = {"same_tokens": {"tokenizer": words, "lowercase": False, "token_pattern": None},
                  "builtin_regex": {"lowercase": True, "token_pattern": r"(?u)[\w']+"}}
    out = {}
    for name, tokens in tokenisers.items():
        model = make_pipeline(
            CountVectorizer(ngram_range=(1, 2), min_df=2, max_features=1 << 18, **tokens),
            TfidfTransformer(norm="l2"),
            LogisticRegression(C=1 / (s.tfidf_reg_param * len(fit)), class_weight="balanced",
                               max_iter=s.train_max_iter))
        model.fit(fit["model_text"], fit["label"])
        classes = list(model.classes_)
        order = [classes.index(c) for c in LABELS]

        def score(frame):
            proba = model.predict_proba(frame["model_text"])[:, order]
            best = proba.argmax(1)
            return pd.DataFrame({"review_id": frame["review_id"], "label": np.array(LABELS)[best],
                                 "confidence": proba.max(1),
                                 **{f"score_{c}": proba[:, i] for i, c in enumerate(LABELS)}})

        score(warm)  # warm-up, not timed
        start = time.monotonic()
        scored_rows = score(rows)
        seconds = time.monotonic() - start
        scored_rows[["review_id", "label"]].to_parquet(os.path.join(work, f"sklearn_{name}_labels.parquet"))
        out[name] = {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_second": common.rate(len(rows), seconds),
                     "cores": 1, "vocabulary": len(model[0].vocabulary_)}
    return out


def stage_name(stage) -> str:
    kind = type(stage).__name__
    if kind == "SQLTransformer":
        column = re.findall(r"AS (\w+) FROM", stage.getStatement())[-1]
        return f"{kind} -> {column}"
    for param in ("outputCol", "outputCols"):
        if stage.hasParam(param) and stage.isDefined(param):
            out = stage.getOrDefault(param)
            return f"{kind} -> {', '.join(out) if isinstance(out, list) else out}"
    return kind


def profile(model, data, flatten, repeats: int) -> list[dict]:
    """Seconds per stage: each prefix of the pipeline timed (best of `repeats`), differences taken."""
    from pyspark.ml import PipelineModel

    prefixes = [("input (cached)", lambda: data)]
    for k, stage in enumerate(model.stages, 1):
        prefixes.append((stage_name(stage), lambda k=k: PipelineModel(stages=model.stages[:k]).transform(data)))
    prefixes.append(("flattening to prediction rows (predictions_from)", lambda: flatten(model.transform(data))))
    out, before = [], 0.0
    for name, frame in prefixes:
        seconds = min(common.spark_seconds(frame()) for _ in range(repeats))
        out.append({"stage": name, "prefix_seconds": round(seconds, 2), "seconds": round(seconds - before, 2)})
        before = seconds
    total = sum(p["seconds"] for p in out[1:])
    for p in out:
        p["share"] = round(p["seconds"] / total, 3) if total > 0 else None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--fit-rows", type=int, default=20_000)
    p.add_argument("--warmup", type=int, default=2_000)
    p.add_argument("--profile-rows", type=int, default=30_000, help="0: no profile")
    p.add_argument("--profile-repeats", type=int, default=2)
    p.add_argument("--work", default=os.path.join(common.WORK, "scoring"))
    p.add_argument("--sklearn", action="store_true", help=argparse.SUPPRESS)
    common.add_results_dir(p)
    args = p.parse_args()
    if args.sklearn:
        common.print_result(sklearn_side(args.work))
        return
    run = common.Run(__file__, args, args.results_dir)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    from spark_jobs import nlp, train
    from spark_jobs.spark import get_spark, scoring_partitions

    s = common.settings()
    spark = get_spark(s)
    cores, parts = spark.sparkContext.defaultParallelism, scoring_partitions(spark, s)

    def frame(rows, offset):
        return spark.createDataFrame(common.documents(rows, offset).drop(columns="model_text"))

    fit = frame(args.fit_rows, 0).repartition(parts, "review_id")
    model = train.fit(nlp.pipeline("tfidf_logreg", spark, s), train.with_class_weights(fit, s.class_weighting))
    data = frame(args.rows, args.fit_rows).repartition(parts, "review_id").cache()
    data.count()
    warm = frame(args.warmup, args.fit_rows + args.rows).repartition(parts, "review_id")

    def flatten(scored):
        return nlp.predictions_from(scored, "tfidf_logreg", "0", "benchmark", s.max_sentence_length)

    with common.PeakMemory() as mem:
        common.spark_seconds(flatten(model.transform(warm)))  # warm-up, not timed
        seconds = common.spark_seconds(flatten(model.transform(data)))
    spark_side = {"rows": args.rows, "seconds": round(seconds, 2), "rows_per_second": common.rate(args.rows, seconds),
                  "cores": cores, "tasks": parts, "rows_per_second_per_core": common.rate(args.rows, seconds * cores),
                  "peak_memory_gib": mem.peak_gib, "vocabulary": len(next(st for st in model.stages if hasattr(st, "vocabulary")).vocabulary)}
    print("spark", spark_side, flush=True)

    compose = model.stages[0]  # the pipeline's own SQL stage: both sides read the same texts
    for name, df in (("fit", fit), ("warm", warm), ("rows", data)):
        compose.transform(df).select("review_id", "model_text", "label").toPandas().to_parquet(
            os.path.join(args.work, f"{name}.parquet"))
    sk = common.run_isolated(__file__, "--sklearn", "--work", args.work,
                             env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    print("scikit-learn", sk, flush=True)
    if "error" not in sk:
        import pandas as pd

        ours = flatten(model.transform(data)).select("review_id", "label").toPandas().set_index("review_id")["label"]
        for name, side in sk.items():
            theirs = pd.read_parquet(os.path.join(args.work, f"sklearn_{name}_labels.parquet")).set_index("review_id")
            side["same_label_as_spark"] = round(float((ours == theirs["label"].reindex(ours.index)).mean()), 4)
        strongest = max(sk, key=lambda n: sk[n]["rows_per_second"])
    else:
        strongest = None

    stages = []
    if args.profile_rows:
        sample = frame(args.profile_rows, args.fit_rows).repartition(parts, "review_id").cache()
        sample.count()
        common.spark_seconds(flatten(model.transform(sample)))  # warm-up
        stages = profile(model, sample, flatten, args.profile_repeats)
        for st in stages:
            print(st, flush=True)
    run.write("scoring", {
        "spark": spark_side, "sklearn": sk, "profile": {"rows": args.profile_rows, "stages": stages},
        "comparisons": {"sklearn_strongest": strongest,
                        "spark_per_core_over_sklearn_one_core":
                        common.ratio(spark_side["rows_per_second_per_core"],
                                     sk[strongest]["rows_per_second"] if strongest else None)},
    })
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Inference throughput on real reviews: each pipeline in Spark NLP next to plain ONNX Runtime.

    .venv/bin/python benchmarks/inference_benchmark.py [--rows 10000]

Every configuration runs in its own process (so peak memory is its own) on the same `rows` reviews
(title + text, as the pipelines read them):

- ort_*: plain ONNX Runtime + Hugging Face tokenizers, the same all-MiniLM-L6-v2 ONNX file, mean
  pooling; threads and batch size as named.
- sparknlp_minilm_embeddings_*: the Spark NLP embeddings stage alone (DocumentAssembler + E5Embeddings).
- pipeline_*: the fitted pipelines end to end (fitted first on other reviews, not timed).

Results: benchmarks/results/inference.json (rows/s, peak RSS of the process tree, the machine).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import PeakMemory, machine, write_result  # noqa: E402

CONFIGS = {
    # name: (kind, options)
    "ort_fp32_threads2_batch1": ("ort", {"threads": 2, "batch": 1, "int8": False}),
    "ort_fp32_threads2_batch32": ("ort", {"threads": 2, "batch": 32, "int8": False}),
    "ort_int8_threads2_batch1": ("ort", {"threads": 2, "batch": 1, "int8": True}),
    "ort_int8_threads2_batch32": ("ort", {"threads": 2, "batch": 32, "int8": True}),
    "sparknlp_minilm_embeddings_fp32": ("embeddings", {"int8": False}),
    "sparknlp_minilm_embeddings_int8": ("embeddings", {"int8": True}),
    "pipeline_minilm_logreg_fp32": ("pipeline", {"name": "minilm_logreg", "int8": False}),
    "pipeline_tfidf_logreg": ("pipeline", {"name": "tfidf_logreg", "int8": False}),
}


def reviews(rows: int, offset: int = 0):
    import pandas as pd

    from spark_jobs import settings as settings_mod

    df = pd.read_csv(settings_mod.load(env={}).corpus_path, dtype=str, keep_default_na=False)
    df = df[df["Review Text"].str.strip() != ""].iloc[offset: offset + rows]
    rating = df["Rating"].astype(int)
    label = rating.map(lambda r: "negative" if r <= 2 else ("neutral" if r == 3 else "positive"))
    return pd.DataFrame({"review_id": "wcr-" + df.iloc[:, 0], "title": df["Title"], "text": df["Review Text"],
                         "label": label})


def model_texts(df):
    return [f"{t}. {x}" if t.strip() else x for t, x in zip(df["title"], df["text"])]


def run_ort(rows: int, threads: int, batch: int, int8: bool) -> dict:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from spark_jobs import nlp, settings as settings_mod

    s = settings_mod.load(env={}, onnx_int8=int8)
    folder = nlp.embeddings_model_folder(s)
    texts = model_texts(reviews(rows))
    tok = Tokenizer.from_file(os.path.join(s.embeddings_model_dir, "tokenizer.json"))
    tok.enable_truncation(s.max_sentence_length)
    tok.enable_padding()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts)
    with PeakMemory() as mem:
        start = time.monotonic()
        for i in range(0, len(texts), batch):
            enc = tok.encode_batch(texts[i: i + batch])
            ids = np.array([e.ids for e in enc])
            mask = np.array([e.attention_mask for e in enc])
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        seconds = time.monotonic() - start
    return {"rows": len(texts), "seconds": round(seconds, 1), "rows_per_second": round(len(texts) / seconds, 1),
            "peak_memory_gib": mem.peak_gib}


def run_spark(rows: int, kind: str, int8: bool, name: str | None = None) -> dict:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer
    from sparknlp.base import DocumentAssembler

    from spark_jobs import nlp, settings as settings_mod, train
    from spark_jobs.spark import get_spark, scoring_partitions

    s = settings_mod.load(env=os.environ, onnx_int8=int8)
    with PeakMemory() as mem:
        spark = get_spark(s)
        parts = scoring_partitions(spark, s)
        data = spark.createDataFrame(reviews(rows)).repartition(parts, "review_id").cache()
        data.count()
        if kind == "embeddings":
            model = Pipeline(stages=[
                SQLTransformer(statement=nlp.MODEL_TEXT_SQL),
                DocumentAssembler().setInputCol("model_text").setOutputCol("document"),
                nlp.sentence_embeddings(spark, s)]).fit(data)
        else:
            fit_on = spark.createDataFrame(reviews(3000, offset=rows)).repartition(parts, "review_id")
            model = nlp.pipeline(name, spark, s).fit(train.with_class_weights(fit_on, s.class_weighting))
        model.transform(data.limit(50)).write.format("noop").mode("overwrite").save()  # warm-up
        start = time.monotonic()
        model.transform(data).write.format("noop").mode("overwrite").save()
        seconds = time.monotonic() - start
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds, 1),
            "peak_memory_gib": mem.peak_gib, "partitions": parts, "onnx_threads_per_task": s.onnx_threads,
            "embeddings_batch_size": s.embeddings_batch_size}


def one(name: str, rows: int) -> dict:
    kind, opts = CONFIGS[name]
    if kind == "ort":
        return run_ort(rows, **opts)
    return run_spark(rows, kind, opts["int8"], opts.get("name"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--one", choices=sorted(CONFIGS))
    p.add_argument("--only", help="comma list of configurations (default: all)")
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.rows)), flush=True)
        return
    path = os.path.join(ROOT, "benchmarks", "results", "inference.json")
    previous = json.load(open(path))["results"] if args.only and os.path.exists(path) else {}
    results = {**previous}  # --only re-measures some configurations and keeps the others
    for name in (args.only.split(",") if args.only else CONFIGS):
        out = subprocess.run([sys.executable, __file__, "--one", name, "--rows", str(args.rows)],
                             capture_output=True, text=True, cwd=ROOT)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        results[name] = json.loads(line[-1][7:]) if line else {"error": out.stderr.strip().splitlines()[-1:]}
        results[name]["load_average_after"] = round(os.getloadavg()[0], 2)
        print(name, results[name], flush=True)
    base = results.get("ort_fp32_threads2_batch32", {}).get("rows_per_second")
    for r in results.values():
        if base and "rows_per_second" in r:
            r["ratio_to_ort_fp32_batch32"] = round(r["rows_per_second"] / base, 2)
    summary = {"results": results, "machine": machine(),
               "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "notes": "Spark runs: local[*] on all cores, one ONNX Runtime thread per task, batch 1 "
                        "(exact pooling in Spark NLP 5.5.3); plain ORT: one process, threads as named."}
    print("written to", write_result("inference", summary))


if __name__ == "__main__":
    main()

"""MiniLM inference throughput: the Spark NLP embeddings stage and the fitted pipelines, next to
plain ONNX Runtime at its strongest on the same cores.

    .venv/bin/python benchmarks/inference_benchmark.py [--rows 10000] [--warmup 64] [--only NAME,...]

Every configuration runs in a process of its own (its own memory, its own JVM) on the same `rows`
real reviews (the corpus' first rows with a text, title + text composed as the pipelines compose
them, `nlp.MODEL_TEXT_SQL`). Every side reads raw text and tokenises it inside the timed region, and
every side first scores `warmup` other reviews (not timed): the ONNX sessions are loaded, their
memory arenas grown, the JVM's code compiled.

- ort_*: plain ONNX Runtime + the Hugging Face tokenizer on the same all-MiniLM-L6-v2 file (fp32, or
  the int8 copy the project quantises), attention-masked mean pooling. `P x T`: P processes of T
  intra-op threads, each process a half (interleaved) of the rows; the time is from the moment
  every process is warm to the moment the last one is done. `batch1`: one text per call;
  `sortedB`: all texts tokenised, sorted by token count, and run in batches of B padded to their
  longest member (the strongest batching on CPU: little padding).
- sparknlp_embeddings_*: the Spark NLP embeddings stage as minilm_logreg builds it (model text,
  DocumentAssembler, E5Embeddings at batch 1, exact) on Spark local[*]: one task per core, one
  ONNX Runtime thread per task; input cached and counted before the timer.
- pipeline_*: the fitted pipelines end to end, flattened to prediction rows as inference writes them
  (fitted first on other reviews, not timed).

Results: benchmarks/results/inference.json, with the ratio of the Spark NLP embeddings stage to the
best plain ONNX Runtime configuration of the same precision, computed here from this run's figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def _ort(procs: int, threads: int, batch: int, sort: bool, int8: bool) -> dict:
    return {"kind": "ort", "processes": procs, "threads": threads, "batch": batch, "sorted": sort, "int8": int8}


CONFIGS: dict[str, dict] = {}
for _int8 in (False, True):
    for _procs, _threads in ((2, 1), (1, 2)):
        for _batch in (1, 8, 16, 32):
            _name = f"ort_{'int8' if _int8 else 'fp32'}_{_procs}x{_threads}_{'batch1' if _batch == 1 else f'sorted{_batch}'}"
            CONFIGS[_name] = _ort(_procs, _threads, _batch, _batch > 1, _int8)
CONFIGS.update({
    "sparknlp_embeddings_fp32": {"kind": "embeddings", "int8": False},
    "sparknlp_embeddings_int8": {"kind": "embeddings", "int8": True},
    "pipeline_minilm_logreg_fp32": {"kind": "pipeline", "pipeline": "minilm_logreg", "int8": False},
    "pipeline_tfidf_logreg": {"kind": "pipeline", "pipeline": "tfidf_logreg", "int8": False},
})
FIT_ROWS = 3000  # reviews the pipelines are fitted on (after the measured and the warm-up rows)


# --- plain ONNX Runtime ---------------------------------------------------------------------------------
def ort_embed(session, tokenizer, texts: list[str], batch: int, sort: bool):
    """Tokenise, (sort by token count,) run in padded batches, mean-pool; vectors in input order."""
    import numpy as np

    enc = tokenizer.encode_batch(texts)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i].ids)) if sort else list(range(len(enc)))
    out = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        which = order[start: start + batch]
        width = max(len(enc[i].ids) for i in which)
        ids = np.zeros((len(which), width), dtype=np.int64)
        mask = np.zeros((len(which), width), dtype=np.int64)
        for row, i in enumerate(which):
            n = len(enc[i].ids)
            ids[row, :n], mask[row, :n] = enc[i].ids, 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        out[which] = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return out


def ort_worker(model_dir: str, tokenizer_file: str, max_length: int, texts, warm, threads: int, batch: int,
               sort: bool, barrier, results) -> None:
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # the tokenizer's thread pool: no more threads than ORT's
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file)
    tok.enable_truncation(max_length)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    ort_embed(session, tok, warm, batch, sort)  # warm-up, not timed
    barrier.wait()
    start = time.time()
    ort_embed(session, tok, texts, batch, sort)
    results.put((start, time.time(), len(texts)))


def run_ort(rows: int, warmup: int, processes: int, threads: int, batch: int, sorted: bool, int8: bool) -> dict:
    import multiprocessing as mp

    from spark_jobs import nlp

    s = common.settings(onnx_int8=int8)
    folder = nlp.embeddings_model_folder(s)
    texts = common.documents(rows)["model_text"].tolist()
    warm = common.documents(warmup, offset=rows)["model_text"].tolist()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=ort_worker, args=(
        folder, os.path.join(s.embeddings_model_dir, "tokenizer.json"), s.max_sentence_length,
        texts[p::processes], warm[p::processes], threads, batch, sorted, barrier, results))
        for p in range(processes)]
    with common.PeakMemory() as mem:
        for w in workers:
            w.start()
        spans = [results.get() for _ in workers]
        for w in workers:
            w.join()
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return {"rows": sum(n for *_, n in spans), "seconds": round(seconds, 1),
            "rows_per_second": common.rate(rows, seconds), "peak_memory_gib": mem.peak_gib}


# --- Spark NLP ----------------------------------------------------------------------------------------------
def run_spark(rows: int, warmup: int, kind: str, int8: bool, pipeline: str | None = None) -> dict:
    from pyspark.ml import Pipeline

    from spark_jobs import nlp, train
    from spark_jobs.spark import get_spark, scoring_partitions

    s = common.settings(onnx_int8=int8)
    docs = common.documents(rows)
    with common.PeakMemory() as mem:
        spark = get_spark(s)
        parts = scoring_partitions(spark, s)
        data = spark.createDataFrame(docs.drop(columns="model_text")).repartition(parts, "review_id").cache()
        data.count()
        warm = spark.createDataFrame(common.documents(warmup, offset=rows).drop(columns="model_text")).repartition(parts)
        if kind == "embeddings":
            # the stages minilm_logreg runs before its classifier: model text, DocumentAssembler, E5Embeddings
            model = Pipeline(stages=nlp.minilm_logreg(spark, s).getStages()[:3]).fit(data)

            def output(df):
                return model.transform(df).select("review_id", "sentence_embeddings")
        else:
            fit_on = spark.createDataFrame(common.documents(FIT_ROWS, offset=rows + warmup).drop(columns="model_text"))
            model = train.fit(nlp.pipeline(pipeline, spark, s),
                              train.with_class_weights(fit_on.repartition(parts, "review_id"), s.class_weighting))

            def output(df):
                return nlp.predictions_from(model.transform(df), pipeline, "0", "benchmark", s.max_sentence_length)
        common.spark_seconds(output(warm))  # warm-up, not timed
        seconds = common.spark_seconds(output(data))
    composed = [r.model_text for r in nlp.minilm_logreg(spark, s).getStages()[0].transform(data)
                .orderBy("review_id").select("model_text").collect()]
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_second": common.rate(rows, seconds),
            "peak_memory_gib": mem.peak_gib, "tasks": parts, "onnx_threads_per_task": s.onnx_threads,
            "embeddings_batch_size": s.embeddings_batch_size,
            "model_text_as_plain_ort": composed == docs.sort_values("review_id")["model_text"].tolist()}


def one(name: str, rows: int, warmup: int) -> dict:
    spec = dict(CONFIGS[name])
    kind = spec.pop("kind")
    if kind == "ort":
        return run_ort(rows, warmup, **spec)
    return run_spark(rows, warmup, kind, spec["int8"], spec.get("pipeline"))


def best(results: dict, int8: bool) -> str | None:
    """The fastest plain ONNX Runtime configuration of that precision in this run."""
    measured = [n for n, r in results.items() if CONFIGS[n]["kind"] == "ort" and CONFIGS[n]["int8"] == int8
                and r.get("rows_per_second")]
    return max(measured, key=lambda n: results[n]["rows_per_second"]) if measured else None


def comparisons(results: dict) -> dict:
    out = {}
    for precision, int8 in (("fp32", False), ("int8", True)):
        anchor = best(results, int8)
        spark = results.get(f"sparknlp_embeddings_{precision}", {}).get("rows_per_second")
        out[f"embeddings_{precision}"] = {
            "best_plain_ort": anchor,
            "best_plain_ort_rows_per_second": results[anchor]["rows_per_second"] if anchor else None,
            "sparknlp_rows_per_second": spark,
            "ratio": common.ratio(spark, results[anchor]["rows_per_second"] if anchor else None)}
    fp32, int8 = (results.get(f"sparknlp_embeddings_{p}", {}).get("rows_per_second") for p in ("fp32", "int8"))
    out["sparknlp_int8_over_fp32"] = common.ratio(int8, fp32)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=64, help="reviews each configuration scores before the timer")
    common.add_configuration_args(p, sorted(CONFIGS), "configurations")
    args = p.parse_args()
    if args.one:
        common.print_result(one(args.one, args.rows, args.warmup))
        return
    run = common.run_of(__file__, args)
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        p.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    results = {}
    for name in names:
        results[name] = {**CONFIGS[name], **common.run_isolated(
            __file__, "--one", name, "--rows", str(args.rows), "--warmup", str(args.warmup)),
            "load_average_after": round(os.getloadavg()[0], 2)}
        print(name, results[name], flush=True)
    run.write("inference" if not args.only else "inference_partial", {
        "results": results, "comparisons": comparisons(results),
        "input": "raw text on every side (title + text as the pipelines compose it), tokenised inside the "
                 "timed region; a warm-up of other reviews before the timer on every side"})


if __name__ == "__main__":
    main()

"""Ingest throughput on generated reviews: rows/s, peak memory, share of time in validation.

    .venv/bin/python benchmarks/ingest_benchmark.py [--rows 1000000] [--files 8]

Lands `rows` synthetic reviews (the project's own generator, unique texts, about 3% damaged rows)
as `files` CSV files for one date in a scratch lake, runs the real ingest job once and writes
benchmarks/results/ingest.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import PeakMemory, machine, write_result  # noqa: E402
from spark_jobs import ingest, replay, settings as settings_mod  # noqa: E402
from spark_jobs.lake import Lake  # noqa: E402
from spark_jobs.spark import get_spark  # noqa: E402

DATE = "2026-12-01"


def land(settings, rows: int, files: int) -> int:
    folder = os.path.join(Lake(settings).partition("raw", DATE), "source=reviews")
    os.makedirs(folder, exist_ok=True)
    corpus = replay.synthetic_corpus(rows, 1, seed=7)
    damaged = corpus.sample(frac=0.03, random_state=7).index
    corpus.loc[damaged[: len(damaged) // 2], "Review Text"] = ""       # quarantined: empty text
    corpus.loc[damaged[len(damaged) // 2:], "Rating"] = "9"            # quarantined: out of range
    size = 0
    for i, part in enumerate(range(0, rows, -(-rows // files))):
        path = os.path.join(folder, f"part-{i:02d}.csv")
        corpus.iloc[part: part + -(-rows // files)].to_csv(path, index=False)
        size += os.path.getsize(path)
    return size


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--work", default=os.path.join(os.path.dirname(__file__), ".work", "ingest"))
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    settings = settings_mod.load(env=os.environ, lake_root=os.path.join(args.work, "lake"),
                                 mlflow_tracking_uri=f"sqlite:///{args.work}/mlflow.db")
    t = time.monotonic()
    size = land(settings, args.rows, args.files)
    print(f"landed {args.rows:,} rows in {args.files} files ({size / 2**20:.0f} MiB) in {time.monotonic() - t:.0f}s")
    spark = get_spark(settings)
    with PeakMemory() as mem:
        t = time.monotonic()
        rec = ingest.run(spark, settings, DATE)
        wall = time.monotonic() - t
    parts = rec.outputs["seconds"]
    result = {
        "rows": rec.rows_in, "files": args.files, "input_mib": round(size / 2**20, 1),
        "curated": rec.rows_out, "quarantined": rec.rows_rejected, "duplicates": rec.rows_duplicate,
        "seconds": round(wall, 1), "rows_per_second": round(rec.rows_in / wall),
        "seconds_by_step": parts, "validation_share": round(parts["validate"] / wall, 3),
        "peak_memory_gib": mem.peak_gib, "spark_master": settings.spark_master,
        "driver_memory": settings.spark_driver_memory, "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(result)
    print("written to", write_result("ingest", result))


if __name__ == "__main__":
    main()

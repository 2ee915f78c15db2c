"""Ingest throughput with Great Expectations on, next to Arrow's CSV reader alone on the same files.

    .venv/bin/python benchmarks/ingest_benchmark.py [--rows 1000000] [--files 8] [--warmup 10000]

Lands `rows` reviews of the project's synthetic generator (replay.synthetic_corpus: unique texts;
3 % damaged, half with an empty text and half with a rating of 9, so that quarantine has work) as
`files` CSV files for one date in a scratch lake, and runs the real ingest job on them once
(spark_jobs.ingest.run: parse + clean, census, Great Expectations gate, split, de-duplication, the
four partition writes, reconciliation) on Spark local[*]. Then, in the same run, the plain
alternative: Arrow's CSV reader parsing the same files on one thread, to a table of strings.

Both sides are warmed up alike, untimed: `warmup` other generated reviews land as a later date
(so the measured date has no earlier batch to de-duplicate against, as in a fresh lake), the ingest
job runs on that date first in the same Spark session, and Arrow first parses those same warm-up
files. Both sides then read the measured files from the page cache (written just before).

Steps come from the run record the job writes (`seconds`). The census runs beside the parse, within
`read`: its job's own seconds, timed around the job's call of census_of_source, are written as
`census_beside_read` (they overlap `read`, so the steps' shares add up to more than the whole).

A profile follows the timed run, each part alone on the measured date (best of `--profile-repeats`):
the parse and clean (documents.read_file, what one Spark task runs per file) over every file in this
process, on one core; and, on the date's batch read and cached, the gate (quality.validate) alone and
the duplicates' search alone, the two parts of `validate`, which the job runs beside each other.

Results: benchmarks/results/ingest.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

DATE, WARMUP_DATE = "2026-12-01", "2026-12-02"


def arrow_alone(paths: list[str], warm: list[str]) -> dict:
    """Arrow's CSV reader on one thread: rows parsed per second, every column read as a string; the
    warm-up files parsed first, untimed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(path):
        return pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                              parse_options=pacsv.ParseOptions(newlines_in_values=True),
                              convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False,
                                                                   auto_dict_encode=False,
                                                                   check_utf8=True)).num_rows

    pa.set_cpu_count(1)
    for path in warm:  # warm-up, not timed
        read(path)
    start = time.monotonic()
    rows = sum(read(path) for path in paths)
    seconds = time.monotonic() - start
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": common.rate(rows, seconds), "threads": 1}


def best_of(repeats: int, work) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.monotonic()
        work()
        seconds.append(time.monotonic() - start)
    return round(min(seconds), 3)


def parts_alone(spark, s, paths: list[str], repeats: int) -> dict:
    """The profile: the parse and clean on one core, the gate alone, the duplicates' search alone."""
    from spark_jobs import documents, ingest, quality
    from spark_jobs.landing import load_sources

    spec = load_sources(s)["reviews"]

    def parse_clean() -> int:
        rows = 0
        for path in paths:
            with open(path, "rb") as f:
                data = f.read()
            rows += sum(b.num_rows for b in documents.read_file(path, data, spec, s.max_text_chars, quality.may_fail))
        return rows

    rows = parse_clean()   # also its warm-up
    parse_seconds = best_of(repeats, parse_clean)
    batch, _ = ingest.read_batch(spark, s, DATE)
    batch = batch.cache()
    batch.count()
    suite = os.path.join(s.path("expectations_dir"), "documents.json")
    gate = best_of(repeats, lambda: quality.validate(batch, suite, s.critical_max_failing_share))
    duplicates = best_of(repeats, lambda: ingest.split(batch)[2].count())   # no earlier batch, as in the run
    batch.unpersist()
    return {"parse_clean_one_core": {"rows": rows, "seconds": parse_seconds,
                                     "rows_per_second": common.rate(rows, parse_seconds)},
            "gate_alone_seconds": gate, "duplicates_alone_seconds": duplicates, "repeats": repeats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--damaged", type=float, default=0.03, help="share of rows broken on purpose")
    p.add_argument("--warmup", type=int, default=10_000, help="rows of the warm-up date both sides read first")
    p.add_argument("--profile-repeats", type=int, default=2)
    p.add_argument("--work", default=os.path.join(common.WORK, "ingest"))
    common.add_results_dir(p)
    args = p.parse_args()
    run = common.Run(__file__, args, args.results_dir)
    shutil.rmtree(args.work, ignore_errors=True)

    from spark_jobs import ingest
    from spark_jobs.lake import Lake
    from spark_jobs.spark import get_spark

    s = common.settings(lake_root=os.path.join(args.work, "lake"),
                        mlflow_tracking_uri=f"sqlite:///{args.work}/mlflow.db")
    t = time.monotonic()
    rows = common.landable_reviews(args.rows, "synthetic", damaged=args.damaged)
    paths = common.write_csv_parts(rows, os.path.join(Lake(s).partition("raw", DATE), "source=reviews"), args.files)
    print(f"landed {args.rows:,} rows in {len(paths)} files ({common.mib(paths)} MiB) in {time.monotonic() - t:.0f}s")
    warm_rows = common.landable_reviews(args.warmup, "synthetic", seed=8,
                                        damaged=args.damaged, id_offset=args.rows)
    warm_paths = common.write_csv_parts(warm_rows, os.path.join(Lake(s).partition("raw", WARMUP_DATE), "source=reviews"),
                                        min(args.files, 2), stem="warmup")
    del rows, warm_rows  # not counted in the peak memory of the ingest

    spark = get_spark(s)
    cores = spark.sparkContext.defaultParallelism
    t = time.monotonic()
    warm_rec = ingest.run(spark, s, WARMUP_DATE)  # warm-up, not timed
    print(f"warm-up ingest of {warm_rec.rows_in:,} rows ({warm_rec.status}) in {time.monotonic() - t:.0f}s", flush=True)
    calls: dict = {}
    with common.PeakMemory() as mem, common.timing_calls(ingest, "census_of_source", calls):
        t = time.monotonic()
        rec = ingest.run(spark, s, DATE)
        wall = time.monotonic() - t
    steps = dict(rec.outputs.get("seconds", {}))
    if calls["census_of_source"] is not None:
        steps["census_beside_read"] = calls["census_of_source"]
    project = {
        "rows": rec.rows_in, "curated": rec.rows_out, "quarantined": rec.rows_rejected,
        "duplicates": rec.rows_duplicate, "lost": rec.rows_lost, "status": rec.status,
        "seconds": round(wall, 1), "rows_per_second": common.rate(rec.rows_in, wall), "cores": cores,
        "rows_per_second_per_core": common.rate(rec.rows_in, wall * cores),
        "seconds_by_step": steps, "share_by_step": {k: round(v / wall, 3) for k, v in steps.items()},
        "peak_memory_gib": mem.peak_gib, "great_expectations": True,
        "spark_master": s.spark_master, "driver_memory": s.spark_driver_memory,
    }
    print("ingest", project, flush=True)
    project["profile"] = parts_alone(spark, s, paths, args.profile_repeats)
    print("profile", project["profile"], flush=True)
    arrow = arrow_alone(paths, warm_paths)
    print("arrow", arrow, flush=True)
    run.write("ingest", {
        "input": {"rows": args.rows, "files": len(paths), "mib": common.mib(paths), "generator": "synthetic",
                  "damaged_share": args.damaged, "warmup_rows": args.warmup},
        "warmup": "both sides first read the same other files (the warm-up date), untimed; both read the measured "
                  "files from the page cache",
        "ingest": project, "arrow_csv_one_thread": arrow,
        "comparisons": {"ingest_per_core_over_arrow_one_thread":
                        common.ratio(project["rows_per_second_per_core"], arrow["rows_per_second"])},
    })
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

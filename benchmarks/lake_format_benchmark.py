"""The ingest on the Iceberg lake against the same ingest on the folder-of-Parquet lake it replaced
(issue 13: at most 1.3x slower), measured in one run on the same machine.

    .venv/bin/python benchmarks/lake_format_benchmark.py [--rows 1000000] [--files 8] [--repeats 2]
                                                        [--baseline 2a3af81]

The baseline is the last commit of the Parquet lake (atomic partition swaps, a completion marker,
lock files); it is checked out as a detached git worktree under benchmarks/.work/. Both trees ingest
the same landed files (the synthetic generator, 3 % damaged rows) into a fresh lake of their own,
each in a fresh process (its own JVM; Python imports the tree's spark_jobs first,
both with the same jar folder: the current tree's, a superset), after an untimed warm-up ingest of
other rows as another date. The trees alternate (baseline, current, baseline, ...) so that neither
gets the quieter minutes; each side's best run is compared.

Results: benchmarks/results/lake_format.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

DATE, WARMUP_DATE = "2026-12-01", "2026-12-02"


def child(lake: str, work: str) -> None:
    """In the tree under test (BENCH_TREE, first on the path): warm-up ingest, then the timed one."""
    tree = os.environ["BENCH_TREE"]
    sys.path.insert(0, tree)
    from spark_jobs import ingest, settings
    from spark_jobs.spark import get_spark

    assert os.path.abspath(ingest.__file__).startswith(os.path.abspath(tree) + os.sep), ingest.__file__

    s = settings.load(env={}, lake_root=lake, mlflow_tracking_uri=f"sqlite:///{work}/mlflow.db",
                      jars_dir=os.path.join(common.ROOT, ".cache", "jars"), spark_master="local[*]")
    spark = get_spark(s)
    ingest.run(spark, s, WARMUP_DATE)  # warm-up, not timed
    start = time.monotonic()
    rec = ingest.run(spark, s, DATE)
    seconds = time.monotonic() - start
    common.print_result({"seconds": round(seconds, 1), "rows": rec.rows_in, "curated": rec.rows_out,
                         "quarantined": rec.rows_rejected, "duplicates": rec.rows_duplicate, "status": str(rec.status),
                         "rows_per_second": common.rate(rec.rows_in, seconds),
                         "seconds_by_step": rec.outputs.get("seconds", {})})


def baseline_tree(commit: str) -> str:
    path = os.path.join(common.WORK, f"baseline-{commit}")
    if not os.path.isdir(path):
        subprocess.run(["git", "worktree", "add", "--detach", path, commit], cwd=common.ROOT, check=True,
                       capture_output=True)
    return path


def land(folder: str, rows, warm, files: int) -> None:
    """The same files under each lake's raw zone (the landed form; nothing else in the lake)."""
    shutil.rmtree(folder, ignore_errors=True)
    common.write_csv_parts(rows, os.path.join(folder, "raw", f"ingest_date={DATE}", "source=reviews"), files)
    common.write_csv_parts(warm, os.path.join(folder, "raw", f"ingest_date={WARMUP_DATE}", "source=reviews"), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--baseline", default="2a3af81", help="the last commit of the Parquet-folder lake")
    p.add_argument("--child", nargs=2, metavar=("LAKE", "WORK"), help=argparse.SUPPRESS)
    common.add_results_dir(p)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    run = common.Run(__file__, args, args.results_dir)
    trees = {"parquet_folders": baseline_tree(args.baseline), "iceberg": common.ROOT}
    rows = common.landable_reviews(args.rows, "synthetic", damaged=0.03)
    warm = common.landable_reviews(args.warmup, "synthetic", seed=8, damaged=0.03, id_offset=args.rows)
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for attempt in range(args.repeats):
        for name, tree in trees.items():
            work = os.path.join(common.WORK, "lake_format", name)
            land(os.path.join(work, "lake"), rows, warm, args.files)
            result = common.run_isolated(__file__, "--child", os.path.join(work, "lake"), work,
                                         env={"BENCH_TREE": tree})
            print(name, attempt, json.dumps(result), flush=True)
            runs[name].append(result)
            shutil.rmtree(work, ignore_errors=True)
    best = {name: min((r for r in rs if "seconds" in r), key=lambda r: r["seconds"], default=None)
            for name, rs in runs.items()}
    same_counts = all(best[n] and {k: best[n][k] for k in ("rows", "curated", "quarantined", "duplicates")}
                      == {k: best["iceberg"][k] for k in ("rows", "curated", "quarantined", "duplicates")}
                      for n in best)
    run.write("lake_format", {
        "input": {"rows": args.rows, "files": args.files, "warmup_rows": args.warmup, "generator": "synthetic",
                  "damaged_share": 0.03},
        "baseline_commit": args.baseline, "runs": runs, "best": best, "same_counts": same_counts,
        "comparisons": {"iceberg_seconds_over_parquet_folders": common.ratio(
            (best["iceberg"] or {}).get("seconds"), (best["parquet_folders"] or {}).get("seconds"))},
    })


if __name__ == "__main__":
    main()

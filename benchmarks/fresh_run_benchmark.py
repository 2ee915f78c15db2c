"""A fresh `make run` on the Iceberg lake against the same on the folder-of-Parquet lake it replaced
(issue 13: at most 1.3x slower), measured in one run on the same machine.

    .venv/bin/python benchmarks/fresh_run_benchmark.py [--repeats 1] [--baseline 2a3af81]

Each side runs `python -m spark_jobs run` (what `make run` runs once `make setup` is done) in its own
tree (the baseline commit as a detached worktree under benchmarks/.work/, as lake_format_benchmark.py
does), with every output (lake, MLflow store and artifacts, warehouse, reports) in a fresh folder of
its own: the corpus replayed as days, ingest, training of the champion and the challenger, scoring with
both, dbt, the reports. Both use the same venv, jars, corpus and model; PYTHONPATH puts the tree's
code first, for the report notebook's kernel too. The sides alternate, baseline first.

Results: benchmarks/results/fresh_run.json, with each run's per-stage seconds from its stdout.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from benchmarks.lake_format_benchmark import baseline_tree  # noqa: E402


def fresh_run(tree: str, work: str) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    current = common.settings()
    env = {**os.environ, "PYTHONPATH": tree,
           "NLP_LAKE_ROOT": os.path.join(work, "lake"),
           "NLP_MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
           "NLP_MLFLOW_ARTIFACT_ROOT": os.path.join(work, "mlartifacts"),
           "NLP_WAREHOUSE_PATH": os.path.join(work, "warehouse", "nlp.duckdb"),
           "NLP_REPORTS_DIR": os.path.join(work, "reports"),
           "NLP_LOG_DIR": os.path.join(work, "logs"),
           "NLP_JARS_DIR": current.path("jars_dir"),
           "NLP_CORPUS_PATH": current.path("corpus_path"),
           "NLP_EMBEDDINGS_MODEL_DIR": current.path("embeddings_model_dir")}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "spark_jobs", "run"], cwd=tree, env=env, capture_output=True,
                         text=True)
    seconds = time.monotonic() - start
    text = out.stdout + out.stderr
    return {"seconds": round(seconds, 1), "exit_code": out.returncode,
            "stages": stage_seconds(text), "summary": summary_lines(text)}


def stage_seconds(text: str) -> dict[str, float]:
    """Seconds per stage, summed over dates, from the progress lines `[stage  date] succeeded in 12.3s - ...`
    (runlog.progress, the same in both trees)."""
    totals: dict[str, float] = {}
    for stage, secs in re.findall(r"^\[(\w+)\s+\S+\] \w+ in (\d+(?:\.\d+)?)s", text, flags=re.M):
        totals[stage] = round(totals.get(stage, 0.0) + float(secs), 1)
    return totals


def summary_lines(text: str) -> list[str]:
    """The run's closing lines: counts and where things were written (no review text is printed)."""
    lines = text.strip().splitlines()
    return lines[-12:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--baseline", default="2a3af81", help="the last commit of the Parquet-folder lake")
    common.add_results_dir(p)
    args = p.parse_args()
    run = common.Run(__file__, args, args.results_dir)
    trees = {"parquet_folders": baseline_tree(args.baseline), "iceberg": common.ROOT}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for attempt in range(args.repeats):
        for name, tree in trees.items():
            work = os.path.join(common.WORK, "fresh_run", name)
            result = fresh_run(tree, work)
            print(name, attempt, result["seconds"], result["exit_code"], result["stages"], flush=True)
            runs[name].append(result)
            shutil.rmtree(work, ignore_errors=True)
    best = {name: min((r for r in rs if r["exit_code"] == 0), key=lambda r: r["seconds"], default=None)
            for name, rs in runs.items()}
    run.write("fresh_run", {
        "baseline_commit": args.baseline, "runs": runs, "best": best,
        "comparisons": {"iceberg_seconds_over_parquet_folders": common.ratio(
            (best["iceberg"] or {}).get("seconds"), (best["parquet_folders"] or {}).get("seconds"))},
    })


if __name__ == "__main__":
    main()

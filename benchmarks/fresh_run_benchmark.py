"""A fresh `make run` at a baseline commit against the same at this tree, measured in one run on
the same machine: the Iceberg lake against the folder-of-Parquet lake it replaced (issue 13: at most
1.3x slower; the defaults), or this tree against an earlier one of its own (issue 17: at most half
the wall time, with every count and the champion's metrics unchanged).

    .venv/bin/python benchmarks/fresh_run_benchmark.py [--repeats 1] [--baseline 2a3af81]
    .venv/bin/python benchmarks/fresh_run_benchmark.py --baseline 2af5d81 --name fresh_run_before_after \
        --labels before,after

Each side runs `python -m spark_jobs run` (what `make run` runs once `make setup` is done) in its own
tree (the baseline commit as a detached worktree under benchmarks/.work/, as lake_format_benchmark.py
does), with every output (lake, MLflow store and artifacts, warehouse, reports) in a fresh folder of
its own, and without the tree's int8 copy of the model (`.cache/models`, which the run makes): the
corpus replayed as days, ingest, training of the champion and the challenger, scoring with both,
dbt, the reports. Both use the same venv, jars, corpus and model; PYTHONPATH puts the tree's
code first, for the report notebook's kernel too. The sides alternate, baseline first.

Results: benchmarks/results/<name>.json, with each run's per-stage seconds, its table counts and the
champion's test metrics from its stdout, and whether both sides have the same counts and metrics.
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
    # a fresh checkout has no int8 copy of the model yet (nlp.quantised_copy): the run makes its own
    shutil.rmtree(os.path.join(tree, ".cache", "models"), ignore_errors=True)
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
            "stages": stage_seconds(text), "counts": table_counts(text), "champion": champion_metrics(text),
            "summary": summary_lines(text)}


def stage_seconds(text: str) -> dict[str, float]:
    """Seconds per stage, summed over dates, from the progress lines `[stage  date] succeeded in 12.3s - ...`
    (runlog.progress, the same in both trees)."""
    totals: dict[str, float] = {}
    for stage, secs in re.findall(r"^\[(\w+)\s+\S+\] \w+ in (\d+(?:\.\d+)?)s", text, flags=re.M):
        totals[stage] = round(totals.get(stage, 0.0) + float(secs), 1)
    return totals


def table_counts(text: str) -> dict[str, int]:
    """The lake's row counts from the run's closing summary (`curated 23,100 rows, quarantine 12, ...`)."""
    found = re.search(r"curated ([\d,]+) rows, quarantine ([\d,]+), duplicates ([\d,]+), predictions ([\d,]+), "
                      r"shadow predictions ([\d,]+)", text)
    names = ("curated", "quarantine", "duplicates", "predictions", "predictions_shadow")
    return {} if not found else {n: int(v.replace(",", "")) for n, v in zip(names, found.groups())}


def champion_metrics(text: str) -> dict:
    """The champion's test figures from the train stage's line (`... -> review_sentiment v1: test accuracy
    0.812, macro-F1 0.655 on 4,700 rows; champion (there was none)`)."""
    for name, version, acc, f1, rows in re.findall(
            r"(\w+) -> \S+ v(\d+): test accuracy ([\d.]+), macro-F1 ([\d.]+) on ([\d,]+) rows; champion", text):
        return {"pipeline": name, "version": int(version), "test_accuracy": float(acc), "test_macro_f1": float(f1),
                "test_rows": int(rows.replace(",", ""))}
    return {}


def summary_lines(text: str) -> list[str]:
    """The run's closing lines: counts and where things were written (no review text is printed)."""
    lines = text.strip().splitlines()
    return lines[-12:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--baseline", default="2a3af81", help="the commit to compare with (default: the last commit "
                   "of the Parquet-folder lake)")
    p.add_argument("--name", default="fresh_run", help="the results file's name")
    p.add_argument("--labels", default="parquet_folders,iceberg", help="names of the baseline side and this tree's")
    common.add_results_dir(p)
    args = p.parse_args()
    run = common.Run(__file__, args, args.results_dir)
    before, after = args.labels.split(",")
    trees = {before: baseline_tree(args.baseline), after: common.ROOT}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for attempt in range(args.repeats):
        for name, tree in trees.items():
            work = os.path.join(common.WORK, args.name, name)
            result = fresh_run(tree, work)
            print(name, attempt, result["seconds"], result["exit_code"], result["stages"], flush=True)
            runs[name].append(result)
            shutil.rmtree(work, ignore_errors=True)
    best = {name: min((r for r in rs if r["exit_code"] == 0), key=lambda r: r["seconds"], default=None)
            for name, rs in runs.items()}
    every = [r for rs in runs.values() for r in rs]
    run.write(args.name, {
        "baseline_commit": args.baseline, "sides": [before, after], "runs": runs, "best": best,
        "same_counts": all(r["counts"] and r["counts"] == every[0]["counts"] for r in every),
        "same_champion_metrics": all(r["champion"] and r["champion"] == every[0]["champion"] for r in every),
        "comparisons": {f"{after}_seconds_over_{before}": common.ratio(
            (best[after] or {}).get("seconds"), (best[before] or {}).get("seconds"))},
    })


if __name__ == "__main__":
    main()

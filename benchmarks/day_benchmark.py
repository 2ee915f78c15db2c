"""A day end to end: N reviews landed as one day in a fresh lake, the whole chain run by the project's
command line, with the time of every stage and the peak memory.

    .venv/bin/python benchmarks/day_benchmark.py --rows 1000000 [--texts corpus|synthetic] [--files 8]

In a fresh temporary lake (its own registry, warehouse and reports):
1. Setup, not part of the day's figures: the corpus' first `train-rows` reviews land as the day
   before, and `nlp-batch run --date <that day>` ingests them, trains both pipelines (with a
   promotion margin no model can clear, so tfidf_logreg, trained first, is champion and
   minilm_logreg the challenger, the roles they have on the corpus), scores, builds dbt and reports.
2. The day: `rows` reviews as `files` CSV files. texts=corpus (default): real reviews drawn with
   replacement from the corpus, each copy with an id of its own and a text made unique by a suffix
   " (ref N)" (otherwise ingest would drop the copies as duplicates); texts=synthetic: the project's
   generator (replay.synthetic_corpus, much shorter texts). Landed with `nlp-batch land`.
3. Timed: `nlp-batch run --date <the day>`: ingest (Great Expectations on), no training (a champion
   exists), inference by the champion and the challenger's shadow as the settings say (any NLP_*
   setting in the environment applies, and is written down), dbt build, the monitoring report.
   Per stage: the run records the stages write under lake/runs/; "other" is the rest of the wall
   time (process and Spark start, the orchestrator's checks and summary).

Results: benchmarks/results/day_<size>.json (day_1m.json for a million rows, day_100k.json, ...).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

SETUP_DATE, DAY = "2026-11-30", "2026-12-01"
ID_OFFSET = 10_000_000  # the day's review ids start here: none is one of the setup day's
INFERENCE_STAGES = ("infer", "shadow")


def size_name(rows: int) -> str:
    for unit, div in (("m", 1_000_000), ("k", 1_000)):
        if rows >= div and rows % div == 0:
            return f"{rows // div}{unit}"
    return str(rows)


def settings_in_env() -> dict:
    """The NLP_* settings the caller set (names of Settings fields only: nothing else is copied)."""
    from dataclasses import fields

    from spark_jobs.settings import Settings, env_name

    names = {env_name(f.name) for f in fields(Settings)}
    return {k: v for k, v in sorted(os.environ.items()) if k in names}


class Lake:
    """A fresh lake, registry, warehouse and reports under one folder, driven by the command line."""

    def __init__(self, root: str):
        self.root = root
        self.env = {**os.environ, "NLP_LAKE_ROOT": f"{root}/lake", "NLP_MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
                    "NLP_MLFLOW_ARTIFACT_ROOT": f"{root}/mlartifacts", "NLP_WAREHOUSE_PATH": f"{root}/warehouse/nlp.duckdb",
                    "NLP_REPORTS_DIR": f"{root}/reports", "NLP_LOG_DIR": f"{root}/logs"}

    def cli(self, *args: str, log: str, ok=(0,), **env: str) -> tuple[int, float]:
        """`nlp-batch *args` (python -m spark_jobs); its output goes to the log file. -> (exit code, seconds)"""
        start = time.monotonic()
        with open(os.path.join(self.root, log), "a") as out:
            rc = subprocess.run([sys.executable, "-m", "spark_jobs", *args], cwd=common.ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**self.env, **env}).returncode
        if rc not in ok:
            tail = open(os.path.join(self.root, log)).read().splitlines()[-15:]
            raise SystemExit(f"nlp-batch {' '.join(args)} exited {rc}; the lake is kept at {self.root}:\n"
                             + "\n".join(tail))
        return rc, round(time.monotonic() - start, 1)

    def land(self, df, date: str, files: int) -> list[str]:
        paths = common.write_csv_parts(df, os.path.join(self.root, "landing", date), files, stem=f"reviews-{date}")
        for path in paths:
            self.cli("land", "--file", path, "--date", date, "--source", "reviews", log="land.log")
        return paths

    def records(self) -> dict[str, dict]:
        """Every run record in the lake (its runs table), by run id."""
        from spark_jobs import runlog, settings

        return {r["run_id"]: r for r in runlog.records(settings.load(env={}, lake_root=f"{self.root}/lake"))}


def stage_table(records: list[dict], wall: float, pipelines: dict[str, str]) -> dict:
    """Seconds, rows and share of the wall time per stage, in the order they ran; inference and the
    rest. `pipelines`: model version -> pipeline name."""
    stages: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: r["started_at"]):
        st = stages.setdefault(r["stage"], {"seconds": 0.0, "order": len(stages), "runs": []})
        st["seconds"] = round(st["seconds"] + (r["seconds"] or 0), 1)
        st["runs"].append({k: r.get(k) for k in ("status", "seconds", "rows_in", "rows_out", "rows_rejected",
                                                   "rows_duplicate", "model_version", "message")}
                          | {"steps": r.get("outputs", {}).get("seconds"), "pipeline": pipelines.get(r.get("model_version"))})
    for st in stages.values():
        rows = st["runs"][0].get("rows_in")
        st["share"] = round(st["seconds"] / wall, 3)
        st["rows_per_second"] = common.rate(rows, st["seconds"]) if rows else None
    other = round(wall - sum(st["seconds"] for st in stages.values()), 1)
    inference = sum(st["seconds"] for name, st in stages.items() if name in INFERENCE_STAGES)
    return {"stages": stages, "other": {"seconds": other, "share": round(other / wall, 3)},
            "inference_share": round(inference / wall, 3), "non_inference_share": round(1 - inference / wall, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--texts", choices=("corpus", "synthetic"), default="corpus")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--train-rows", type=int, default=2_000, help="real reviews of the setup day the models learn from")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--name", help="results file name (default day_<size>: day_1m, day_100k)")
    p.add_argument("--keep", action="store_true", help="keep the temporary lake")
    common.add_results_dir(p)
    args = p.parse_args()
    run = common.Run(__file__, args, args.results_dir)
    os.makedirs(common.WORK, exist_ok=True)
    lake = Lake(tempfile.mkdtemp(prefix="day-", dir=common.WORK))
    print(f"lake: {lake.root}", flush=True)

    lake.land(common.corpus().head(args.train_rows), SETUP_DATE, files=1)
    setup_rc, setup_seconds = lake.cli("run", "--date", SETUP_DATE, log="setup.log", ok=(0, 9),
                                       NLP_PROMOTION_MARGIN="1.0")
    before = lake.records()
    roles = {r["model_version"]: r["outputs"].get("pipeline") for r in before.values() if r["stage"] == "train"}
    print(f"setup: trained {roles} in {setup_seconds:.0f}s (exit {setup_rc})", flush=True)

    start = time.monotonic()
    day = common.landable_reviews(args.rows, args.texts, seed=args.seed, id_offset=ID_OFFSET)
    paths = lake.land(day, DAY, args.files)
    landing = {"rows": args.rows, "files": len(paths), "mib": common.mib(paths), "texts": args.texts,
               "mean_text_chars": round(float(day["Review Text"].str.len().mean()), 1),
               "seconds": round(time.monotonic() - start, 1)}
    del day
    print(f"landed {landing}", flush=True)

    with common.PeakMemory() as mem:
        rc, wall = lake.cli("run", "--date", DAY, log="day.log", ok=(0, 9))
    new = [r for run_id, r in lake.records().items() if run_id not in before]
    table = stage_table(new, wall, roles)
    for name, st in table["stages"].items():
        print(f"{name:<8} {st['seconds']:>9.1f}s  {st['share']:.1%}", flush=True)
    run.write(args.name or f"day_{size_name(args.rows)}", {
        "landing": landing, "settings": settings_in_env(),
        "setup": {"date": SETUP_DATE, "rows": args.train_rows, "texts": "corpus (first rows)", "seconds": setup_seconds,
                  "exit_code": setup_rc, "pipelines_by_version": roles, "promotion_margin": 1.0},
        "day": {"date": DAY, "exit_code": rc, "seconds": wall, "rows_per_second": common.rate(args.rows, wall),
                "peak_memory_gib": mem.peak_gib, **table},
    })
    if not args.keep:
        shutil.rmtree(lake.root, ignore_errors=True)


if __name__ == "__main__":
    main()

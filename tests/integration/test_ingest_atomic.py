"""Killing ingest mid-write leaves every table as readers saw it, with the date's batch all or nothing;
a re-run then gives exactly the rows of an uninterrupted run."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from spark_jobs import ingest, replay, tables
from spark_jobs.lake import Lake
from spark_jobs.settings import PROJECT_ROOT
from tests.conftest import make_settings
from tests.killed_ingest import assert_whole_after_kill, rows_read, seen

DATE = "2026-11-20"


def land_synthetic(settings, rows: int, seed: int) -> None:
    folder = os.path.join(Lake(settings).partition("raw", DATE), "source=reviews")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    replay.synthetic_corpus(rows, 1, seed).to_csv(os.path.join(folder, "batch.csv"), index=False)


def data_files(settings) -> int:
    root = os.path.join(settings.path("lake_root"), settings.lake_schema)
    return sum(f.endswith(".parquet") for _, _, fs in os.walk(root) for f in fs)


@pytest.mark.slow
def test_kill_mid_write_leaves_the_tables_whole_and_a_rerun_matches_an_uninterrupted_run(spark, tmp_path):
    settings = make_settings(tmp_path / "a")
    land_synthetic(settings, 300, seed=1)
    ingest.run(spark, settings, DATE)
    before = seen(spark, settings, DATE)
    snapshots = {zone: tables.current_snapshot(settings, zone) for zone in tables.BATCHED}
    files = data_files(settings)

    land_synthetic(settings, 60_000, seed=2)
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--spark-master", "local[2]", "--spark-driver-memory", "3g", "--date", DATE]
    proc = subprocess.Popen([sys.executable, "-m", "spark_jobs", "ingest", *flags], cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while data_files(settings) == files:  # the new batch's first data file: it is writing
            assert proc.poll() is None, "ingest ended before it started writing"
            assert time.monotonic() < deadline, "ingest never started writing"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM too
        proc.wait()

    assert_whole_after_kill(spark, settings, DATE, before, snapshots)
    ingest.run(spark, settings, DATE)  # no lock to take over: nothing of the dead run holds the date
    assert Lake(settings).is_ingested(DATE)
    uninterrupted = make_settings(tmp_path / "b")
    shutil.copytree(Lake(settings).zone("raw"), Lake(uninterrupted).zone("raw"))
    ingest.run(spark, uninterrupted, DATE)
    assert seen(spark, settings, DATE) == seen(spark, uninterrupted, DATE)
    assert len(rows_read(spark, settings, DATE)) > 50_000

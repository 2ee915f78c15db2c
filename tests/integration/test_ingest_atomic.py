"""Killing ingest mid-write leaves the previous partition whole; a re-run then gives exactly the rows
of an uninterrupted run. A second ingest of the same date while one runs is refused."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from spark_jobs import ingest, replay
from spark_jobs.lake import Lake, lock
from spark_jobs.runlog import StageStopped
from spark_jobs.settings import PROJECT_ROOT
from spark_jobs.vocabulary import ExitCode
from tests.conftest import make_settings

DATE = "2026-11-20"


def land_synthetic(settings, rows: int, seed: int) -> None:
    folder = os.path.join(Lake(settings).partition("raw", DATE), "source=reviews")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    replay.synthetic_corpus(rows, 1, seed).to_csv(os.path.join(folder, "batch.csv"), index=False)


def curated_rows(spark, settings):
    df = spark.read.parquet(Lake(settings).partition("curated", DATE))
    return sorted(tuple(r) for r in df.select("review_id", "text", "rating", "text_hash").collect())


@pytest.mark.slow
def test_kill_mid_write_keeps_the_old_partition_and_a_rerun_matches_an_uninterrupted_run(spark, tmp_path):
    settings = make_settings(tmp_path / "a")
    land_synthetic(settings, 300, seed=1)
    ingest.run(spark, settings, DATE)
    before = curated_rows(spark, settings)

    land_synthetic(settings, 60_000, seed=2)
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--spark-master", "local[2]", "--spark-driver-memory", "3g", "--date", DATE]
    proc = subprocess.Popen([sys.executable, "-m", "spark_jobs", "ingest", *flags], cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    zone = Lake(settings).zone("curated")
    deadline = time.monotonic() + 300
    try:
        while not any(n.startswith("_staging-") for n in os.listdir(zone)):
            assert proc.poll() is None, "ingest ended before it started writing"
            assert time.monotonic() < deadline, "ingest never started writing"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM too
        proc.wait()

    assert curated_rows(spark, settings) == before  # readers still see the complete old partition
    assert not Lake(settings).is_ingested(DATE)  # ...but the date is pending again for `make run`

    ingest.run(spark, settings, DATE)  # takes over the dead run's lock, cleans its staging folder
    assert not [n for n in os.listdir(zone) if n.startswith("_")]
    assert Lake(settings).is_ingested(DATE)
    uninterrupted = make_settings(tmp_path / "b")
    shutil.copytree(Lake(settings).zone("raw"), Lake(uninterrupted).zone("raw"))
    ingest.run(spark, uninterrupted, DATE)
    after = curated_rows(spark, settings)
    assert len(after) > 50_000 and after == curated_rows(spark, uninterrupted)


def test_a_second_ingest_of_the_same_date_is_refused_while_one_runs(spark, tmp_path):
    settings = make_settings(tmp_path)
    land_synthetic(settings, 20, seed=3)
    with lock(settings, f"ingest-{DATE}"):
        with pytest.raises(StageStopped) as stop:
            ingest.run(spark, settings, DATE)
    assert stop.value.exit_code == ExitCode.LOCKED
    assert "already running" in str(stop.value) and f"pid {os.getpid()}" in str(stop.value)
    assert ingest.run(spark, settings, DATE).rows_out == 20  # free again once the first one ends

"""The JVM's class-data archive (spark.py): the first command that starts Spark records the classes its
JVM loaded, and later commands map them instead of loading them from the jars again."""
import glob
import os
import subprocess
import sys

import pytest

from spark_jobs import replay, spark
from spark_jobs.lake import Lake
from spark_jobs.settings import PROJECT_ROOT
from tests.conftest import make_settings

DATE = "2026-11-20"


def ingest(settings) -> subprocess.CompletedProcess:
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--jvm-class-archive-dir", settings.jvm_class_archive_dir, "--spark-master", "local[2]",
             "--spark-driver-memory", "2g", "--date", DATE]
    return subprocess.run([sys.executable, "-m", "spark_jobs", "ingest", *flags], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)


def java_options(settings, record_classes=False) -> list[str]:
    return spark.spark_conf(settings, record_classes).get("spark.driver.extraJavaOptions", "").split()


@pytest.mark.slow
def test_the_first_command_records_the_classes_and_the_next_maps_them(tmp_path):
    settings = make_settings(tmp_path, jvm_class_archive_dir=str(tmp_path / "jvm"))
    folder = os.path.join(Lake(settings).partition("raw", DATE), "source=reviews")
    os.makedirs(folder)
    replay.synthetic_corpus(40, 1, 3).to_csv(os.path.join(folder, "batch.csv"), index=False)
    os.makedirs(tmp_path / "jvm")
    left = tmp_path / "jvm" / "spark-0123456789abcdef.jsa.999999999.tmp"   # a recording whose process died
    left.write_bytes(b"partial")
    assert not any(o.startswith("-XX:SharedArchiveFile") for o in java_options(settings))
    assert [o for o in java_options(settings, record_classes=True) if o.startswith("-XX:ArchiveClassesAtExit=")]

    first = ingest(settings)
    assert first.returncode == 0, first.stderr[-2000:]
    archives = glob.glob(str(tmp_path / "jvm" / "*"))
    assert len(archives) == 1 and archives[0].endswith(".jsa") and os.path.getsize(archives[0]) > 1_000_000
    mapped = f"-XX:SharedArchiveFile={archives[0]}"
    assert mapped in java_options(settings) and mapped in java_options(settings, record_classes=True)

    recorded_at = os.path.getmtime(archives[0])
    second = ingest(settings)  # the same lake and date again: maps the archive, records nothing
    assert second.returncode == 0, second.stderr[-2000:]
    assert glob.glob(str(tmp_path / "jvm" / "*")) == archives and os.path.getmtime(archives[0]) == recorded_at
    assert f"JVM classes recorded for the next commands (once per Java and jar set): {archives[0]}" in first.stderr
    assert "JVM classes recorded" not in second.stderr
    assert "cds" not in first.stdout + first.stderr + second.stdout + second.stderr  # Java's CDS logging is off


def test_no_archive_where_it_is_turned_off_or_the_jvm_is_not_local(tmp_path):
    for settings in (make_settings(tmp_path, jvm_class_archive_dir=""), make_settings(tmp_path, target="emr")):
        assert spark.class_archive(settings, []) is None

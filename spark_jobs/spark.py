"""The Spark session factory: the only place that knows about jars and Spark configuration."""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

from . import tables
from .settings import PROJECT_ROOT, Settings, SettingsError

_session = None
_recording: str | None = None  # the file this process's JVM writes its class-data archive to, if it records one


def spark_conf(settings: Settings, record_classes: bool = False) -> dict[str, str]:
    """The session's configuration. record_classes: where no class-data archive exists yet, the JVM
    writes one of the classes it loaded when it exits (`finish` puts it in place)."""
    return _configured(settings, record_classes)[0]


def _configured(settings: Settings, record_classes: bool) -> tuple[dict[str, str], str | None]:
    """spark_conf, and the file the JVM records its class-data archive to (None: it records none)."""
    recording = None
    conf = {
        "spark.app.name": "nlp-batch",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Spark NLP annotators hold native models: they must be serialised with Kryo.
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.kryoserializer.buffer.max": "1000M",
        "spark.driver.maxResultSize": "0",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.compression.codec": "zstd",
        # Cached frames live for one stage and are mostly unique texts, which the cache's dictionary and
        # run-length encodings do not shrink: trying them cost more time than the memory they saved.
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # The lake's tables are Apache Iceberg (tables.py): its SQL extensions, and this lake's catalog.
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        **tables.spark_conf(settings),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # No _SUCCESS files beside what Spark writes outside the tables (benchmarks, exports).
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.hadoop.parquet.summary.metadata.level": "NONE",
    }
    if settings.onnx_threads:
        conf["spark.jsl.settings.onnx.intraOpNumThreads"] = str(settings.onnx_threads)
    if settings.target == "local":
        # Python workers (mapInPandas in ingest) must use this environment's interpreter.
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
        jars = sorted(glob.glob(os.path.join(settings.path("jars_dir"), "*.jar")))
        if not jars:
            raise SettingsError(
                f"setting jars_dir={settings.path('jars_dir')}: no jars there; run `make setup`"
            )
        if settings.spark_master.startswith("local"):
            # One JVM is driver and executor: the jars go on its class path. As spark.jars, every session
            # would first copy all of them (hundreds of MB) into its temporary folder for its executor.
            conf["spark.driver.extraClassPath"] = os.pathsep.join(jars)
        else:
            conf["spark.jars"] = ",".join(jars)
        java_options = []
        logging_conf = os.path.join(PROJECT_ROOT, "conf", "log4j2.properties")
        if os.path.isfile(logging_conf):  # quiet startup; an installed wheel keeps Spark's default
            java_options.append(f"-Dlog4j2.configurationFile=file:{logging_conf}")
        archive = class_archive(settings, jars)
        if archive and os.path.isfile(archive):
            java_options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds*=off"]
        elif archive and record_classes:
            recording = _recording_file(archive)
            java_options += [f"-XX:ArchiveClassesAtExit={recording}", "-Xlog:cds*=off"]
        if java_options:
            conf["spark.driver.extraJavaOptions"] = " ".join(java_options)
    if settings.lake_root.startswith("s3a://"):
        conf["spark.hadoop.fs.s3a.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:  # a moto server in tests, or a VPC endpoint
            conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
    if settings.gpu:
        conf["spark.executor.resource.gpu.amount"] = "1"
        conf["spark.task.resource.gpu.amount"] = str(settings.gpu_task_amount)
    return conf, recording


def get_spark(settings: Settings, record_classes: bool = False):
    """One SparkSession per process; later calls return the same session. record_classes: see
    spark_conf (for a caller that calls `finish` at its end: the command line)."""
    global _session, _recording
    if _session is not None:
        return _session
    from pyspark.sql import SparkSession

    if settings.target == "local":
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if settings.spark_master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: bind to loopback, say nothing
    conf, recording = _configured(settings, record_classes)
    if recording:
        _start_recording(recording)
    builder = SparkSession.builder.master(settings.spark_master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    _session = builder.getOrCreate()
    _recording = recording
    _session.sparkContext.setLogLevel("ERROR")
    return _session


def scoring_partitions(spark, settings: Settings) -> int:
    """How many partitions to spread model scoring over: one per core unless configured."""
    return settings.scoring_partitions or spark.sparkContext.defaultParallelism


# --- the JVM's class-data archive ----------------------------------------------------------------------
# A local run's JVM spends seconds loading and checking the classes of Spark, Iceberg and Spark NLP from
# their jars, the same ones every run. Java's class-data sharing (CDS) lets it map them from an archive
# instead: the first run that finds none records the classes it loaded into one when its JVM exits, and
# later runs map it. The archive holds nothing but classes. Its name carries a digest of the Java
# runtime and the jars, so a new Java or new jars get an archive of their own; a JVM that cannot use
# an archive runs without it (Java checks, and says nothing: -Xlog:cds*=off).
def class_archive(settings: Settings, jars: list[str]) -> str | None:
    """The archive for this Java and these jars (it may not exist yet); None where none is used."""
    if settings.target != "local" or not settings.jvm_class_archive_dir:
        return None
    import hashlib
    import shutil

    import pyspark

    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java:
        return None
    java = os.path.realpath(java)
    parts = [java, os.path.getsize(java), os.path.getmtime(java), pyspark.__version__,
             settings.spark_master.startswith("local"),   # the jars on the class path, or in spark.jars
             *[(os.path.basename(j), os.path.getsize(j), os.path.getmtime(j)) for j in jars]]   # Java checks these
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return os.path.join(settings.path("jvm_class_archive_dir"), f"spark-{digest}.jsa")


def _recording_file(archive: str) -> str:
    """Where this process's JVM writes the archive it records (`finish` renames it into place)."""
    return f"{archive}.{os.getpid()}.tmp"


_RECORDING = re.compile(r"(?P<archive>.+\.jsa)\.(?P<pid>\d+)\.tmp")   # what _recording_file names


def _start_recording(recording: str) -> None:
    """Makes the archive's folder, and removes what recordings whose process is gone (killed before its
    end) left there."""
    folder = os.path.dirname(recording)
    os.makedirs(folder, exist_ok=True)
    for left in glob.glob(os.path.join(folder, "*.tmp")):
        match = _RECORDING.fullmatch(left)
        if match is None:
            continue
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            os.remove(left)
        except OSError:  # alive, under another user
            pass


def finish(timeout: float = 300) -> None:
    """Stops this process's session, if it has one. When its JVM records a class-data archive, waits
    for the JVM to write it as it exits and puts it in place (once; a later run maps it)."""
    global _session, _recording
    if _session is None:
        return
    recording, _recording = _recording, None
    jvm = _session.sparkContext._gateway.proc  # pyspark's handle on the gateway JVM it started
    _session.stop()
    _session = None
    if recording is None or jvm is None:
        return
    jvm.stdin.close()  # the gateway exits at the end of its input, writing the archive on its way out
    try:
        jvm.wait(timeout)
    except subprocess.TimeoutExpired:  # no archive this time; the next run records again
        return
    if jvm.returncode == 0 and os.path.isfile(recording) and os.path.getsize(recording):
        archive = _RECORDING.fullmatch(recording)["archive"]
        os.replace(recording, archive)
        print(f"JVM classes recorded for the next commands (once per Java and jar set): {archive}", file=sys.stderr)

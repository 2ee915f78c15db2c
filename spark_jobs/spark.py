"""The Spark session factory: the only place that knows about jars and Spark configuration."""
from __future__ import annotations

import glob
import os
import sys

from . import tables
from .settings import PROJECT_ROOT, Settings, SettingsError

_session = None


def spark_conf(settings: Settings) -> dict[str, str]:
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
        conf["spark.jars"] = ",".join(jars)
        logging_conf = os.path.join(PROJECT_ROOT, "conf", "log4j2.properties")
        if os.path.isfile(logging_conf):  # quiet startup; an installed wheel keeps Spark's default
            conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{logging_conf}"
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
    return conf


def get_spark(settings: Settings):
    """One SparkSession per process; later calls return the same session."""
    global _session
    if _session is not None:
        return _session
    from pyspark.sql import SparkSession

    if settings.target == "local":
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if settings.spark_master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: bind to loopback, say nothing
    builder = SparkSession.builder.master(settings.spark_master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel("ERROR")
    return _session


def scoring_partitions(spark, settings: Settings) -> int:
    """How many partitions to spread model scoring over: one per core unless configured."""
    return settings.scoring_partitions or spark.sparkContext.defaultParallelism

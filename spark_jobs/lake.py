"""Lake layout and the atomic partition swap.

    <lake_root>/raw/ingest_date=D/source=S/<original file>
    <lake_root>/curated/ingest_date=D/*.parquet
    <lake_root>/quarantine/ingest_date=D/*.parquet
    <lake_root>/labels/ingest_date=D/*.parquet
    <lake_root>/predictions/ingest_date=D/model_version=V/*.parquet
    <lake_root>/_runs/stage=X/ingest_date=D/<run_id>.json
    <lake_root>/_quality/ingest_date=D/validation.json

Folders whose names start with `_` or `.` are ignored by Spark and by the dbt sources'
`ingest_date=*` globs, so staging copies are invisible until they are swapped in.
"""
from __future__ import annotations

import uuid

from .settings import Settings
from . import storage

ZONES = ("raw", "curated", "quarantine", "labels", "predictions", "_runs", "_quality")


class Lake:
    def __init__(self, settings: Settings):
        self.root = settings.path("lake_root")

    def zone(self, name: str) -> str:
        assert name in ZONES, name
        return storage.join(self.root, name)

    def partition(self, zone: str, date: str, **keys: str) -> str:
        parts = [f"ingest_date={date}"] + [f"{k}={v}" for k, v in keys.items()]
        return storage.join(self.zone(zone), *parts)

    def dates(self, zone: str) -> list[str]:
        """ingest_dates present in a zone, sorted."""
        return sorted(
            d.split("=", 1)[1] for d in storage.list_dirs(self.zone(zone)) if d.startswith("ingest_date=")
        )


def _fs(spark, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def write_partition(spark, df, target: str) -> None:
    """Replace the partition folder `target` with df's rows, atomically enough for readers.

    Spark writes the whole result beside the target first; only a complete write is swapped in
    (rename old aside, rename new in, delete old). A crash before the swap leaves the previous
    partition untouched; the staging folder is hidden (leading `_`) and cleaned on the next run.
    """
    parent, name = target.rsplit("/", 1)
    staging = f"{parent}/_staging-{name}-{uuid.uuid4().hex[:8]}"
    df.write.mode("errorifexists").parquet(staging)
    fs, tgt = _fs(spark, target)
    jvm = spark.sparkContext._jvm
    old = jvm.org.apache.hadoop.fs.Path(f"{parent}/_old-{name}-{uuid.uuid4().hex[:8]}")
    had_old = fs.exists(tgt)
    if had_old and not fs.rename(tgt, old):
        raise OSError(f"could not move aside {target}")
    if not fs.rename(jvm.org.apache.hadoop.fs.Path(staging), tgt):
        if had_old:
            fs.rename(old, tgt)
        raise OSError(f"could not swap in {target} from {staging}")
    if had_old:
        fs.delete(old, True)
    _clean_leftovers(spark, parent, name)


def _clean_leftovers(spark, parent: str, name: str) -> None:
    """Remove staging/old folders that a killed run left behind for this partition."""
    fs, p = _fs(spark, parent)
    for st in fs.listStatus(p):
        n = st.getPath().getName()
        if n.startswith((f"_staging-{name}-", f"_old-{name}-")):
            fs.delete(st.getPath(), True)


def partition_exists(spark, target: str) -> bool:
    fs, p = _fs(spark, target)
    return bool(fs.exists(p))

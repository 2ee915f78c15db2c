"""Lake layout and the atomic partition swap.

    <lake_root>/raw/ingest_date=D/source=S/<original file>
    <lake_root>/curated/ingest_date=D/*.parquet
    <lake_root>/quarantine/ingest_date=D/*.parquet
    <lake_root>/duplicates/ingest_date=D/*.parquet     rows dropped as duplicates, each naming its original
    <lake_root>/labels/ingest_date=D/*.parquet
    <lake_root>/predictions/ingest_date=D/model_version=V/*.parquet
    <lake_root>/runs/stage=X/ingest_date=D/<run_id>.json
    <lake_root>/quality/ingest_date=D/validation.json, data_docs/index.html
    <lake_root>/locks/<name>.lock                       held while a stage writes a date
    <lake_root>/unlanded/ingest_date=D/source=S/<time>-<file>   files taken back out of raw (`make unland`)
    <lake_root>/metrics/producer=P/ingest_date=D/<run_id>.json  metric rows of stage runs and reports (metrics.py)

Folders whose names start with `_` or `.` are ignored by Spark and by the dbt sources'
`ingest_date=*` globs, so staging copies are invisible until they are swapped in. For the same
reason no zone may start with one: Athena and Hive skip such locations (AWS: "Table location in
Amazon S3"), so a table there reads as empty. Lakes written before this rule kept run records
under `_runs`, `_quality` and `_locks`; `migrate_legacy_zones` moves them once.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from contextlib import contextmanager

from .settings import Settings
from . import storage

ZONES = ("raw", "curated", "quarantine", "duplicates", "labels", "predictions", "predictions_shadow",
         "runs", "quality", "locks", "unlanded", "metrics")
LEGACY_ZONES = {"runs": "_runs", "quality": "_quality", "locks": "_locks"}  # zone -> its name before
COMPLETE_MARKER = "ingest_complete.json"


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

    def completion_marker(self, date: str) -> str:
        """Written last by an ingest, after its four partitions and its counts reconciled."""
        return storage.join(self.partition("quality", date), COMPLETE_MARKER)

    def is_ingested(self, date: str) -> bool:
        """True when an ingest of the date wrote every partition and its counts reconciled."""
        return storage.exists(self.completion_marker(date))

    def ingested_dates(self) -> list[str]:
        """Dates whose ingest completed, sorted: what training and promotion may read."""
        return [d for d in self.dates("labels") if self.is_ingested(d)]

    def migrate_legacy_zones(self) -> list[str]:
        """Moves what a lake written by an older version kept under `_runs`, `_quality` and `_locks`
        to the zones' current names (files already there win); returns the zones moved."""
        moved = []
        for zone, legacy in LEGACY_ZONES.items():
            old = storage.join(self.root, legacy)
            if storage.list_files(old, include_hidden=True):
                storage.move_tree(old, self.zone(zone))
                moved.append(zone)
        return moved


def _fs(spark, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def write_partition(spark, df, target: str) -> None:
    """Replace the partition folder `target` with df's rows, atomically enough for readers.

    Spark writes the whole result beside the target first; only a complete write is swapped in
    (rename old aside, rename new in, delete old). A crash before the swap leaves the previous
    partition untouched; the staging folder is hidden (leading `_`) and cleaned on the next run. A
    crash between the two renames leaves the previous partition aside, and `recover` puts it back
    before the next write.
    """
    parent, name = target.rsplit("/", 1)
    recover(spark, target)
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


def recover(spark, target: str) -> None:
    """Undo a swap that a kill interrupted between its two renames: the previous partition is
    waiting beside the target as `_old-<name>-*`; put it back."""
    parent, name = target.rsplit("/", 1)
    fs, tgt = _fs(spark, target)
    folder = tgt.getParent()
    if fs.exists(tgt) or not fs.exists(folder):
        return
    olds = [st.getPath() for st in fs.listStatus(folder) if st.getPath().getName().startswith(f"_old-{name}-")]
    if olds:
        fs.rename(olds[0], tgt)


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


class LockedError(RuntimeError):
    pass


@contextmanager
def lock(settings: Settings, name: str):
    """One writer per name (e.g. ingest-2026-11-01): a second one is refused while the first runs.
    A lock left by a process that died on this host is taken over."""
    uri = storage.join(Lake(settings).zone("locks"), f"{name}.lock")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not storage.create_exclusive(uri, json.dumps(me)):
        try:
            holder = json.loads(storage.read_text(uri))
        except (OSError, ValueError):
            holder = {}
        if holder.get("host") == me["host"] and not _alive(holder.get("pid")):
            storage.delete(uri)  # its owner died: stale
            if not storage.create_exclusive(uri, json.dumps(me)):
                raise LockedError(f"{name} is being run by another process")
        else:
            raise LockedError(f"{name} is already running (pid {holder.get('pid')} on {holder.get('host')} "
                              f"since {holder.get('since')}); lock file {uri}")
    try:
        yield
    finally:
        storage.delete(uri)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False

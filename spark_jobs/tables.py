"""The lake's tables: Apache Iceberg, one per zone but raw (which keeps the landed bytes as files).

    table                partitioned by               written by
    curated              ingest_date                  ingest (one commit per table and date)
    quarantine           ingest_date                  ingest
    duplicates           ingest_date                  ingest
    labels               ingest_date                  ingest
    predictions          ingest_date, model_version   infer
    predictions_shadow   ingest_date, model_version   infer (the challenger)
    embeddings           encoder, ingest_date         whoever applies an encoder first to a text (embedding_store.py)
    runs                 (none)                       every stage run: one row each, appended (runlog.py)
    metrics              (none)                       every stage run and report: its figures (metrics.py)

One catalog per lake (setting lake_catalog): `local` is Iceberg's JDBC catalog on a SQLite file (no
server; lake_catalog_db, by default catalog.db in the lake root), `glue` the Glue Data Catalog on AWS,
where Athena and Redshift Spectrum read the same tables. Spark reaches the catalog through a catalog
plugin registered per lake (`catalog`); plain Python (run records, the checks before a command starts,
DuckDB's readers) through pyiceberg (`python_catalog`).

A stage writes a date by replacing the table's rows of that date (predictions: of that date and
model version) in one commit (`write_partitions`: an overwrite by filter, atomic even when the new
rows are none), so a reader sees all of them or none, and a job killed before its commit leaves the
table as it was. The commit is validated against the table as the stage found it when it started:
if another run committed to the same partition meanwhile, this one fails with ConcurrentCommit
(exit 8) and commits nothing more.

Ingest writes four tables, so four commits. Every row carries the `batch_id` of the ingest run that
wrote it (predictions: of the batch they scored), and that run's record (status succeeded) is the
commit record of the whole batch. A date's committed batch is the one the curated table holds for it,
if its run succeeded (`committed`); readers take every table's rows of a date only where they belong
to that batch. A run killed between two of its commits leaves rows of a batch that never succeeded:
nobody reads them, the date counts as not ingested, and the next `make run` ingests it again.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import time

from .settings import Settings

ZONES = ("curated", "quarantine", "duplicates", "labels", "predictions", "predictions_shadow", "embeddings", "runs",
         "metrics")
COMMITTED = ("curated", "quarantine", "duplicates", "labels", "predictions", "predictions_shadow")  # batch_id-filtered
PARTITIONS = {"predictions": ("ingest_date", "model_version"), "predictions_shadow": ("ingest_date", "model_version"),
              "embeddings": ("encoder", "ingest_date"), "runs": (), "metrics": ()}
BATCHED = ("curated", "quarantine", "duplicates", "labels")  # ingest's tables: rows carry batch_id
PROPERTIES = {
    "format-version": "2",
    "write.spark.accept-any-schema": "true",  # a new column evolves the table in place (merge-schema)
    "write.parquet.compression-codec": "zstd",
    # A write holds one date (of one model version): Iceberg's default hash distribution would shuffle
    # it into one task per partition, i.e. one core. Each task writes its own files instead (fanout for
    # the writes spanning several dates: migration); `make maintain` compacts them.
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
    # no column bounds in the metadata: Iceberg's default keeps the first 16 characters of each file's
    # smallest and largest value, which for review texts is personal data outside the data files
    "write.metadata.metrics.default": "counts",
}


class ConcurrentCommit(RuntimeError):
    """Another run committed the same partition of a table while this one ran."""


def partition_columns(zone: str) -> tuple[str, ...]:
    return PARTITIONS.get(zone, ("ingest_date",))


# --- where the catalog is ---------------------------------------------------------------------------------
def warehouse(settings: Settings) -> str:
    """The lake root as a URI Iceberg can use (tables go to <warehouse>/<namespace>/<table>). In Glue
    the locations are s3:// (Athena and Redshift read no other scheme; Iceberg's S3FileIO writes them)."""
    root = settings.path("lake_root")
    if settings.lake_catalog == "glue":
        return "s3://" + root.split("://", 1)[1] if root.startswith(("s3a://", "s3n://")) else root
    return root if "://" in root else "file://" + root


def catalog_db(settings: Settings) -> str:
    return settings.resolve(settings.lake_catalog_db) if settings.lake_catalog_db else \
        os.path.join(settings.path("lake_root"), "catalog.db")


# Iceberg's JDBC catalog tables (schema V1, as org.apache.iceberg.jdbc.JdbcUtil writes them). We create
# them, and tell Iceberg not to (jdbc.init-catalog-tables=false): its check for them leaves a query open on
# a pooled connection, which then holds a read transaction for good, and every later commit through that
# connection after another process's write fails with SQLITE_BUSY_SNAPSHOT (two runs at once, or Spark
# and pyiceberg).
CATALOG_DDL = (
    "CREATE TABLE IF NOT EXISTS iceberg_tables(catalog_name VARCHAR(255) NOT NULL,"
    "table_namespace VARCHAR(255) NOT NULL,table_name VARCHAR(255) NOT NULL,metadata_location VARCHAR(1000),"
    "previous_metadata_location VARCHAR(1000),iceberg_type VARCHAR(5),"
    "PRIMARY KEY (catalog_name, table_namespace, table_name))",
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties(catalog_name VARCHAR(255) NOT NULL,"
    "namespace VARCHAR(255) NOT NULL,property_key VARCHAR(255),property_value VARCHAR(1000),"
    "PRIMARY KEY (catalog_name, namespace, property_key))",
)


def prepare_catalog_db(path: str) -> None:
    """The SQLite file in WAL mode (kept in the file): Spark's JDBC connection and pyiceberg's read and
    write it from two processes, and in WAL mode a reader never blocks the other's commit. Holds the
    catalog's tables (CATALOG_DDL); a file whose iceberg_tables predates views gains their column."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        with db:
            for ddl in CATALOG_DDL:
                db.execute(ddl)
            if "iceberg_type" not in {row[1] for row in db.execute("PRAGMA table_info(iceberg_tables)")}:
                db.execute("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)")


def catalog_properties(settings: Settings) -> dict[str, str]:
    """Iceberg catalog properties, the same for Spark's catalog plugin and for pyiceberg."""
    if settings.lake_catalog == "glue":
        return {"catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog", "warehouse": warehouse(settings),
                "io-impl": "org.apache.iceberg.aws.s3.S3FileIO"}
    # busy_timeout: a commit waits for another process's short catalog write instead of failing
    return {"catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
            "uri": "jdbc:sqlite:" + catalog_db(settings) + "?busy_timeout=30000",
            "jdbc.schema-version": "V1", "jdbc.init-catalog-tables": "false", "warehouse": warehouse(settings)}


def catalog_name(settings: Settings) -> str:
    """Spark's name for this lake's catalog: one per catalog location, so one session may reach several
    lakes (the tests do)."""
    props = catalog_properties(settings)
    return "lake_" + hashlib.sha1(f"{props.get('uri', 'glue')}|{props['warehouse']}".encode()).hexdigest()[:10]


def spark_conf(settings: Settings) -> dict[str, str]:
    """The session settings that register the lake's catalog (spark.py sets them at start)."""
    name = f"spark.sql.catalog.{catalog_name(settings)}"
    return {name: "org.apache.iceberg.spark.SparkCatalog",
            **{f"{name}.{k}": v for k, v in catalog_properties(settings).items()}}


def catalog(spark, settings: Settings) -> str:
    """Registers the lake's catalog in this session (once) and creates its namespace; returns its name."""
    name = catalog_name(settings)
    if spark.conf.get(f"spark.sql.catalog.{name}", None) is None:
        for key, value in spark_conf(settings).items():
            spark.conf.set(key, value)
    if settings.lake_catalog == "local":
        prepare_catalog_db(catalog_db(settings))
    _retrying_busy(lambda: spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {name}.{_ident(settings.lake_schema)}"))
    return name


def catalog_busy(exc: BaseException) -> bool:
    """The local catalog's SQLite file refused a write because another process wrote it at that very
    moment (in WAL mode SQLite answers SQLITE_BUSY_SNAPSHOT at once instead of waiting): the statement
    changed nothing, so it can be tried again."""
    return bool(re.search(r"SQLITE_BUSY|database is locked", str(exc)))


def _retrying_busy(action, attempts: int = 6):
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:
            if not catalog_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2 ** attempt)


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return name


def table(spark, settings: Settings, zone: str) -> str:
    assert zone in ZONES, zone
    return f"{catalog(spark, settings)}.{_ident(settings.lake_schema)}.{zone}"


def exists(spark, settings: Settings, zone: str) -> bool:
    return bool(spark.catalog.tableExists(table(spark, settings, zone)))


def current_snapshot(settings: Settings, zone: str) -> int | None:
    """The table's current snapshot as the catalog holds it now (read without a Spark job); None while
    the table does not exist or has no commit."""
    t = load_table(settings, zone)
    snapshot = t.current_snapshot() if t is not None else None
    return snapshot.snapshot_id if snapshot is not None else None


# --- writing -----------------------------------------------------------------------------------------------
def write_partitions(spark, settings: Settings, zone: str, df, condition, run_id: str, found_at: int | None) -> int:
    """Replaces the table's rows matching `condition` (a Column over partition columns) with df's, in
    one commit validated against the table as it was at snapshot `found_at` (None: it did not exist
    yet). Returns the snapshot committed (tagged with run_id: lineage). A commit the catalog file
    refused because another process wrote it at that moment is tried again (validated as before)."""
    return _retrying_busy(lambda: _write_once(spark, settings, zone, df, condition, run_id, found_at))


def _write_once(spark, settings: Settings, zone: str, df, condition, run_id: str, found_at: int | None) -> int:
    name = table(spark, settings, zone)
    try:
        if found_at is None and _created(spark, settings, zone, df, run_id):
            return _snapshot_of(settings, zone, run_id)
        if found_at is None:
            # The table was created while this run ran, by another run: if that run committed rows of
            # this partition, this one must not replace them unseen (nothing to validate from).
            found_at = current_snapshot(settings, zone)
            if found_at is not None and spark.read.option("snapshot-id", found_at).table(name).where(condition).limit(1).count():
                raise ConcurrentCommit(f"{zone}: another run committed the same partition while this one ran "
                                       "(it created the table)")
        writer = (df.writeTo(name).option("snapshot-property.run-id", run_id).option("merge-schema", "true")
                  .option("isolation-level", "serializable"))
        if found_at is not None:
            writer = writer.option("validate-from-snapshot-id", str(found_at))
        writer.overwrite(condition)
    except ConcurrentCommit:
        raise
    except Exception as exc:
        if _conflict(exc):
            raise ConcurrentCommit(f"{zone}: another run committed the same partition while this one ran "
                                   f"({_java_message(exc)})") from None
        raise
    return _snapshot_of(settings, zone, run_id)


def _created(spark, settings: Settings, zone: str, df, run_id: str) -> bool:
    """Makes the table with df's rows as its first commit; False when it exists, or another run
    made it first (the caller then writes like any later write)."""
    if exists(spark, settings, zone):
        return False
    writer = df.writeTo(table(spark, settings, zone)).option("snapshot-property.run-id", run_id)
    writer = writer.partitionedBy(*[df[c] for c in partition_columns(zone)]) if partition_columns(zone) else writer
    for key, value in PROPERTIES.items():
        writer = writer.tableProperty(key, value)
    try:
        writer.create()
        return True
    except Exception as exc:
        if "already exists" not in str(exc) and not (catalog_busy(exc) and exists(spark, settings, zone)):
            raise
        return False


def append(spark, settings: Settings, zone: str, df, run_id: str) -> None:
    """Adds df's rows to the table (made on the first append) in one commit. Appends do not conflict
    with one another: for tables whose readers take one row per key (embeddings)."""
    name = table(spark, settings, zone)

    def once() -> None:
        if not _created(spark, settings, zone, df, run_id):
            df.writeTo(name).option("snapshot-property.run-id", run_id).append()

    _retrying_busy(once)


def _snapshot_of(settings: Settings, zone: str, run_id: str) -> int:
    """The latest snapshot the run committed to the table (tagged with its run id)."""
    mine = [s for s in load_table(settings, zone).snapshots() if s.summary and s.summary.get("run-id") == run_id]
    return max(mine, key=lambda s: (s.timestamp_ms, s.sequence_number or 0)).snapshot_id


def _java_message(exc: BaseException) -> str:
    text = str(exc)
    found = re.search(r"(ValidationException|CommitFailedException): ([^\n]+)", text)
    return (found.group(0) if found else text.strip().splitlines()[0])[:300]


def _conflict(exc: BaseException) -> bool:
    return bool(re.search(r"org\.apache\.iceberg\.exceptions\.(ValidationException|CommitFailedException)"
                          r"|Found conflicting files", str(exc)))


# --- reading ----------------------------------------------------------------------------------------------
def records_added(settings: Settings, zone: str, snapshot_id: int) -> int:
    """The rows the commit `snapshot_id` wrote to the table, as its summary counts them (Iceberg adds up
    the record counts of the data files the commit added): no scan of the data."""
    summary = load_table(settings, zone).snapshot_by_id(snapshot_id).summary
    return int(summary.get("added-records") or 0) if summary else 0


def read(spark, settings: Settings, zone: str, dates: list[str] | None = None,
         batches: dict[str, str] | None = None, snapshot: int | None = None):
    """A table's committed rows (of some dates), or None while the table does not exist: rows of a
    batch that never succeeded, or no longer the date's batch, are left out (module docstring).
    `batches`: `committed(settings)` when the caller has it already (it scans the curated table).
    `snapshot`: the table as of that snapshot, not as it is when the frame is computed."""
    from pyspark.sql import functions as F

    if not exists(spark, settings, zone):
        return None
    reader = spark.read if snapshot is None else spark.read.option("snapshot-id", str(snapshot))
    df = reader.table(table(spark, settings, zone))
    if dates is not None:
        df = df.where(F.col("ingest_date").isin(list(dates)))
    if zone in COMMITTED:
        known = committed(settings) if batches is None else batches
        pairs = spark.createDataFrame(sorted(known.items()), "ingest_date string, batch_id string")
        df = df.join(F.broadcast(pairs), ["ingest_date", "batch_id"], "left_semi")
    return df


# --- pyiceberg: the same catalog from plain Python ---------------------------------------------------------
def python_catalog(settings: Settings):
    """The lake's catalog through pyiceberg (no JVM): for run records, the checks before a command starts
    and DuckDB's readers."""
    from pyiceberg.catalog import load_catalog

    if settings.lake_catalog == "glue":
        return load_catalog("lake", type="glue", warehouse=warehouse(settings),
                            **_s3_properties())
    path = catalog_db(settings)
    prepare_catalog_db(path)
    # the JDBC catalog keys its rows by catalog name: pyiceberg must use Spark's name for this lake
    return load_catalog(catalog_name(settings), type="sql", uri=f"sqlite:///{path}?timeout=30", warehouse=warehouse(settings),
                        **_s3_properties())


def _s3_properties() -> dict[str, str]:
    """pyiceberg's S3 settings from the AWS environment (a moto server in tests, a VPC endpoint)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    props = {"s3.region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if endpoint:
        props.update({"s3.endpoint": endpoint, "s3.force-virtual-addressing": "false"})
    for env, key in (("AWS_ACCESS_KEY_ID", "s3.access-key-id"), ("AWS_SECRET_ACCESS_KEY", "s3.secret-access-key"),
                     ("AWS_SESSION_TOKEN", "s3.session-token")):
        if os.environ.get(env):
            props[key] = os.environ[env]
    return props


def python_table(settings: Settings, zone: str, schema):
    """A table written from plain Python (runs, metrics), created on first use with the arrow `schema`;
    a table written by an older version gains the new columns."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    table = load_table(settings, zone)
    if table is None:
        catalog = python_catalog(settings)
        catalog.create_namespace_if_not_exists(settings.lake_schema)
        try:
            table = catalog.create_table((settings.lake_schema, zone), schema=schema,
                                         location=f"{warehouse(settings)}/{settings.lake_schema}/{zone}",
                                         properties={"format-version": "2"})
        except TableAlreadyExistsError:  # another process created it first
            table = load_table(settings, zone)
    if set(schema.names) - set(table.schema().column_names):
        with table.update_schema() as update:
            update.union_by_name(schema)
    return table


def load_table(settings: Settings, zone: str):
    """The pyiceberg table, or None while it does not exist."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    if settings.lake_catalog == "local" and not os.path.exists(catalog_db(settings)):
        return None  # reading creates nothing
    try:
        return python_catalog(settings).load_table((settings.lake_schema, zone))
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def succeeded_ingests(settings: Settings) -> set[str]:
    """The run ids of the ingests that succeeded."""
    from pyiceberg.expressions import And, EqualTo

    runs = load_table(settings, "runs")
    if runs is None:
        return set()
    rows = runs.scan(row_filter=And(EqualTo("stage", "ingest"), EqualTo("status", "succeeded")),
                     selected_fields=("run_id",)).to_arrow()
    return set(rows.column("run_id").to_pylist())


def committed(settings: Settings) -> dict[str, str]:
    """ingest_date -> its committed batch: the batch the curated table holds for the date, if the
    ingest run that wrote it succeeded. Dates missing here are not ingested (or not completely)."""
    t = load_table(settings, "curated")
    if t is None or t.current_snapshot() is None:
        return {}
    held = t.scan(selected_fields=("ingest_date", "batch_id")).to_arrow().group_by(
        ["ingest_date", "batch_id"]).aggregate([]).to_pylist()
    ok = succeeded_ingests(settings)
    return {r["ingest_date"]: r["batch_id"] for r in held if r["batch_id"] in ok}


def dates(settings: Settings, zone: str) -> list[str]:
    """The ingest_dates a table holds, from its partition metadata (committed or not)."""
    t = load_table(settings, zone)
    if t is None or t.current_snapshot() is None:
        return []
    partitions = t.inspect.partitions().column("partition").to_pylist()
    return sorted({p["ingest_date"] for p in partitions})


def batch_of(settings: Settings, date: str) -> str | None:
    """The batch the curated table holds for a date (one per date: each ingest replaces the date)."""
    from pyiceberg.expressions import EqualTo

    t = load_table(settings, "curated")
    if t is None or t.current_snapshot() is None:
        return None
    rows = t.scan(row_filter=EqualTo("ingest_date", date), selected_fields=("batch_id",), limit=1).to_arrow()
    return rows.column("batch_id")[0].as_py() if rows.num_rows else None


def metadata_locations(settings: Settings) -> dict[str, str]:
    """zone -> the metadata file of its current snapshot, for the tables that exist: what DuckDB's
    iceberg_scan reads (dbt's lake_source, the report)."""
    out = {}
    for zone in ZONES:
        t = load_table(settings, zone)
        if t is not None and t.current_snapshot() is not None:
            out[zone] = t.metadata_location
    return out

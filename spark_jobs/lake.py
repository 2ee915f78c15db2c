"""The lake's layout. Tables are Apache Iceberg (tables.py); three zones stay files:

    <lake_root>/raw/ingest_date=D/source=S/<original file>        the landed bytes, as they came
    <lake_root>/quality/ingest_date=D/validation.json, data_docs/index.html   the ingest gate's record
    <lake_root>/unlanded/ingest_date=D/source=S/<time>-<file>    files taken back out of raw (`make unland`)
    <lake_root>/<lake_schema>/<table>/                          the tables (local catalog; on AWS the
                                                                Glue Data Catalog chooses the place)
    <lake_root>/catalog.db                                      the local catalog (SQLite)

No location starts with `_` or `.`: Athena and Hive skip such locations (AWS: "Table location in
Amazon S3"). Lakes written by older versions are brought up to date by `migrate` (migration.py).
"""
from __future__ import annotations

from . import storage, tables
from .settings import Settings

FILE_ZONES = ("raw", "quality", "unlanded")
ZONES = FILE_ZONES + tables.ZONES


class Lake:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.path("lake_root")

    def zone(self, name: str) -> str:
        """The folder of a file zone (for a table: where an older version kept its files)."""
        assert name in ZONES, name
        return storage.join(self.root, name)

    def partition(self, zone: str, date: str, **keys: str) -> str:
        parts = [f"ingest_date={date}"] + [f"{k}={v}" for k, v in keys.items()]
        return storage.join(self.zone(zone), *parts)

    def dates(self, zone: str) -> list[str]:
        """ingest_dates present in a zone, sorted (a table's: committed or not)."""
        if zone in tables.ZONES:
            return tables.dates(self.settings, zone)
        return sorted(
            d.split("=", 1)[1] for d in storage.list_dirs(self.zone(zone)) if d.startswith("ingest_date=")
        )

    def is_ingested(self, date: str) -> bool:
        """True when the date's batch is committed: every table written and its ingest run succeeded."""
        return date in tables.committed(self.settings)

    def ingested_dates(self) -> list[str]:
        """Dates whose batch is committed, sorted: what training, promotion and inference may read."""
        return sorted(tables.committed(self.settings))

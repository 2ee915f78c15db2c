"""Landing: put one source file into raw/ingest_date=D/source=S/ unchanged, or take it back out."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from . import storage
from .lake import Lake
from .settings import Settings, SettingsError


def load_sources(settings: Settings) -> dict[str, dict]:
    path = settings.path("sources_file")
    try:
        with open(path, encoding="utf-8") as f:
            sources = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise SettingsError(f"setting sources_file={path}: file not found") from None
    for name, spec in sources.items():
        cols = spec.get("columns") or {}
        for required in ("review_id", "text"):
            if not cols.get(required):
                raise SettingsError(f"{path}: source '{name}' must map column '{required}'")
        if spec.get("format") not in ("csv", "jsonl", "parquet"):
            raise SettingsError(f"{path}: source '{name}' has format {spec.get('format')!r}; expected csv, jsonl or parquet")
    return sources


def land(settings: Settings, file: str, date: str, source: str | None = None) -> str:
    """Copies `file` byte for byte into the raw zone; returns where it landed."""
    source = source or settings.source
    sources = load_sources(settings)
    if source not in sources:
        raise SettingsError(f"source {source!r} is not in {settings.path('sources_file')} (known: {', '.join(sorted(sources))})")
    settings.replace(date=date)  # validates the date
    if not os.path.isfile(file):
        raise SettingsError(f"cannot land {file}: no such file")
    if os.path.getsize(file) == 0:
        raise SettingsError(f"cannot land {file}: the file is empty")
    dest = storage.join(Lake(settings).partition("raw", date), f"source={source}", Path(file).name)
    storage.copy_file(file, dest)
    return dest


def unland(settings: Settings, name: str, date: str) -> str:
    """Takes a landed file back out of raw/ingest_date=D/ (a file landed under the wrong source, or
    for the wrong date): it moves to unlanded/ingest_date=D/source=S/<UTC time>-<name>. The date's
    committed batch stays what readers see until `make ingest DATE=D` replaces it with what is left.
    Returns where the copy is."""
    import datetime as dt

    lake = Lake(settings)
    landed = [f for f in storage.list_files(lake.partition("raw", date)) if f.rsplit("/", 1)[-1] == name]
    if not landed:
        names = sorted({f.rsplit("/", 1)[-1] for f in storage.list_files(lake.partition("raw", date))})
        raise SettingsError(f"unland {date}: no landed file named {name!r} (landed: {', '.join(names) or 'none'})")
    if len(landed) > 1:
        raise SettingsError(f"unland {date}: {name!r} is landed under several sources ({', '.join(landed)}); "
                            "move the one to take back by hand")
    source = landed[0].rsplit("/", 2)[-2]  # source=S
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = storage.join(lake.zone("unlanded"), f"ingest_date={date}", source, f"{stamp}-{name}")
    storage.move_file(landed[0], aside)
    return aside

"""One record per stage run, appended to the lake's `runs` table (Iceberg, through pyiceberg: any
process can write one, Spark or not).

`stage_run` times a stage, prints one progress line when it ends, and writes the record on every
path (succeeded, skipped, blocked, failed) so dbt's mart_pipeline_runs sees failures too.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Iterator

from . import metrics
from .settings import PROJECT_ROOT, Settings
from .vocabulary import ExitCode, RunStatus, Stage

MESSAGE_MAX_CHARS = 2000  # a stop line, never a dump: warehouses type the column with a bound


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    if os.environ.get("NLP_CODE_VERSION"):
        return os.environ["NLP_CODE_VERSION"]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nlp-batch")
    except PackageNotFoundError:
        return "unknown"


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds: the precision every warehouse keeps (Athena's timestamps
    are milliseconds; DuckDB and Redshift would keep microseconds and disagree)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


@dataclass
class RunRecord:
    stage: str
    ingest_date: str
    run_id: str = field(default_factory=new_run_id)
    status: str = RunStatus.RUNNING
    started_at: str = field(default_factory=utc_now)
    ended_at: str | None = None
    seconds: float | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    rows_rejected: int | None = None
    rows_duplicate: int | None = None
    rows_lost: int | None = None   # ingest: records known lost in unreadable bytes (None: unknown, or none damaged)
    model_name: str | None = None
    model_version: str | None = None
    code_version: str = field(default_factory=code_version)
    message: str = ""
    outputs: dict = field(default_factory=dict)


class StageStopped(Exception):
    """A stage decided the pipeline must stop (a gate), with a one-line reason and an exit code."""

    def __init__(self, message: str, exit_code: int, status: str = RunStatus.BLOCKED):
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)
        self.status = RunStatus(status)  # a status dbt's tests do not accept fails here, not in the warehouse


def _run_schema():
    import pyarrow as pa

    text, number, count = pa.string(), pa.float64(), pa.int64()
    kinds = {"seconds": number, "rows_in": count, "rows_out": count, "rows_rejected": count,
             "rows_duplicate": count, "rows_lost": count}
    return pa.schema([(f.name, kinds.get(f.name, text)) for f in fields(RunRecord)])


def _as_row(record: RunRecord) -> dict:
    row = asdict(record)
    row["outputs"] = json.dumps(row["outputs"], sort_keys=True, default=str)  # nested and free-form: JSON text
    return {k: (str(v) if isinstance(v, (RunStatus, Stage)) else v) for k, v in row.items()}


def runs_table(settings: Settings):
    from . import tables

    return tables.python_table(settings, "runs", _run_schema())


def write(settings: Settings, record: RunRecord) -> int:
    """Appends the record; returns the runs table's snapshot that holds it. Appends never conflict
    with each other: a commit refused because another process appended first is tried again."""
    import pyarrow as pa
    from pyiceberg.exceptions import CommitFailedException

    from . import tables

    rows = pa.Table.from_pylist([_as_row(record)], schema=_run_schema())
    for attempt in range(8):
        table = runs_table(settings)
        try:
            table.append(rows)
            return table.current_snapshot().snapshot_id
        except Exception as exc:  # refused: another process committed, or wrote the catalog file, meanwhile
            if not (isinstance(exc, CommitFailedException) or tables.catalog_busy(exc)):
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise RuntimeError(f"could not append the run record {record.run_id}: the runs table kept changing")


def records(settings: Settings, stage: str | None = None, date: str | None = None) -> list[dict]:
    """Run records as dicts (outputs parsed), oldest first; filtered by stage and ingest_date."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo

    from . import tables

    table = tables.load_table(settings, "runs")
    if table is None:
        return []
    condition = AlwaysTrue()
    if stage:
        condition = And(condition, EqualTo("stage", stage))
    if date:
        condition = And(condition, EqualTo("ingest_date", date))
    out = table.scan(row_filter=condition).to_arrow().to_pylist()
    for row in out:
        row["outputs"] = json.loads(row["outputs"] or "{}")
    return sorted(out, key=lambda r: (r["started_at"] or "", r["run_id"]))


def progress(stage: str, date: str, text: str) -> None:
    print(f"[{stage:<6} {date}] {text}", flush=True)


@contextmanager
def stage_run(settings: Settings, stage: str, date: str) -> Iterator[RunRecord]:
    record = RunRecord(stage=Stage(stage), ingest_date=date)  # an unknown stage fails here, before any work
    start = time.monotonic()
    progress(stage, date, "started")
    try:
        yield record
        if record.status == RunStatus.RUNNING:
            record.status = RunStatus.SUCCEEDED
    except StageStopped as stop:
        record.status, record.message = stop.status, str(stop)
        raise
    except BaseException as exc:
        record.status = RunStatus.FAILED
        record.message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        raise
    finally:
        record.seconds = round(time.monotonic() - start, 2)
        record.ended_at = utc_now()
        if len(record.message) > MESSAGE_MAX_CHARS:
            record.message = record.message[:MESSAGE_MAX_CHARS - 1] + "…"
        try:
            write(settings, record)
        except Exception as exc:  # the record must never hide the stage's own error
            print(f"warning: could not write run record: {exc}", file=sys.stderr)
        try:
            metrics.publish(settings, metrics.of_record(record))
        except Exception as exc:  # nor must its metrics (the record above holds the same figures)
            print(f"warning: could not publish the metrics of {stage} {date}: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:300] if str(exc) else ''}", file=sys.stderr)
        summary = record.message or _counts(record)
        progress(stage, date, f"{record.status} in {record.seconds:.1f}s{' - ' + summary if summary else ''}")


def _counts(r: RunRecord) -> str:
    parts = []
    if r.rows_in is not None:
        parts.append(f"{r.rows_in:,} rows in")
    if r.rows_out is not None:
        parts.append(f"{r.rows_out:,} out")
    if r.rows_rejected:
        parts.append(f"{r.rows_rejected:,} quarantined")
    if r.rows_duplicate:
        parts.append(f"{r.rows_duplicate:,} duplicates")
    if r.rows_out and r.seconds:
        parts.append(f"{r.rows_out / r.seconds:,.0f} rows/s")
    return ", ".join(parts)

"""Metrics out: every stage run and every monitoring report publishes its figures as metric rows.

One row per figure: the batch (`ingest_date`), who measured it (`producer`: the stage, `report` for
the monitoring report) and in which run, the report `section`, the `metric`, its `value` and `unit`,
the scope it was measured over (`source`, `department`, `product_id`, `label`; empty = the whole
batch), the model version, and for a crossed threshold the alert's `severity`, `threshold` and
`message`. Rows never hold a text or any other value of a row of data: names, counts and statistics.

`publish` sends them to
- the lake's `metrics` table (`write_table`, the one writer of that table), an Iceberg table like the
  others: one commit per run, which replaces that run's rows (publishing a run twice leaves one copy);
  dbt stages it (stg_monitoring_metrics) into the monitoring marts;
- CloudWatch when `cloudwatch_metrics` is on: PutMetricData in `cloudwatch_namespace`, dimension
  `Stage` (the producer), plus `Source`, `Department` or `Label` for scoped figures. Product-level
  figures and model versions stay in the lake: CloudWatch bills every dimension value as a metric of
  its own. The stack's alarms and dashboard (emr/stack.yaml) read these names and dimensions.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Mapping

from . import tables
from .settings import Settings
from .vocabulary import REPORT_SECTIONS, RunStatus

COUNTS = ("rows_in", "rows_out", "rows_rejected", "rows_duplicate", "rows_lost")
# report metrics.json: per-label mappings -> (metric name of each row, section)
PER_LABEL = {"label_shares": "label_share", "precision": "precision", "recall": "recall", "f1": "f1"}
PUT_BATCH = 500   # datums per PutMetricData request (AWS allows 1,000 and 1 MB)


@dataclass
class MetricRow:
    ingest_date: str
    producer: str
    run_id: str
    recorded_at: str
    metric: str
    value: float | None
    unit: str = "None"
    section: str | None = None
    source: str | None = None
    department: str | None = None
    product_id: str | None = None
    label: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    severity: str | None = None
    threshold: float | None = None
    message: str | None = None


COLUMNS = tuple(f.name for f in fields(MetricRow))


def unit_of(metric: str) -> str:
    """CloudWatch's unit for a metric, by its name."""
    if metric.endswith("per_second"):
        return "Count/Second"
    if metric.endswith("seconds"):
        return "Seconds"
    if metric.startswith(("rows_", "n_", "flagged_")) or metric in ("landed", "curated", "quarantined", "duplicates",
                                                                    "failed", "failed_runs", "retries"):
        return "Count"
    return "None"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


# --- rows from a stage run ----------------------------------------------------------------------------
def of_record(record) -> list[MetricRow]:
    """The figures of one stage run (a runlog.RunRecord): its seconds, row counts and throughput,
    whether it failed, and what the stage adds (ingest: quarantine and duplicate shares; infer and
    shadow: flagged texts; train: test scores). A skipped run measured nothing and gives no rows."""
    if record.status in (RunStatus.SKIPPED, RunStatus.RUNNING):
        return []
    base = dict(ingest_date=record.ingest_date, producer=str(record.stage), run_id=record.run_id,
                recorded_at=record.ended_at or record.started_at, model_name=record.model_name,
                model_version=None if record.model_version is None else str(record.model_version))

    def row(metric: str, value, **scope) -> MetricRow:
        return MetricRow(metric=metric, value=value, unit=unit_of(metric), section="pipeline", **base, **scope)

    rows = [row("failed", 1.0 if record.status == RunStatus.FAILED else 0.0)]
    if record.seconds is not None:
        rows.append(row("seconds", float(record.seconds)))
    rows += [row(name, float(getattr(record, name))) for name in COUNTS if getattr(record, name) is not None]
    if record.status == RunStatus.SUCCEEDED and record.rows_out and record.seconds:
        rows.append(row("rows_per_second", record.rows_out / record.seconds))
    if record.stage == "ingest" and record.rows_in:
        for name, count in (("quarantine_share", record.rows_rejected), ("duplicate_share", record.rows_duplicate)):
            if count is not None:
                rows.append(MetricRow(metric=name, value=count / record.rows_in, section="integrity", **base))
    for flag, count in sorted((record.outputs.get("flags") or {}).items()):
        rows.append(MetricRow(metric=f"flagged_{flag}", value=float(count), unit="Count", section="outputs", **base))
    for name in ("accuracy", "macro_f1"):
        if record.stage == "train" and _number(record.outputs.get(name)) is not None:
            rows.append(MetricRow(metric=f"test_{name}", value=float(record.outputs[name]), section="quality", **base))
    return rows


# --- rows from a monitoring report -----------------------------------------------------------------------
def of_report(figures: Mapping, payload: Mapping, run_id: str, recorded_at: str) -> list[MetricRow]:
    """The report's metrics.json (`figures`) and alerts.json (`payload`) as rows: every number of
    each section, the per-label figures (label shares, precision, recall, F1), the drift of each
    segment (department, product), and every alert on the row of its metric (alerts that are events,
    such as a Great Expectations warning, get a row of their own)."""
    base = dict(ingest_date=figures["run_date"], producer="report", run_id=run_id, recorded_at=recorded_at,
                model_name=figures.get("model_name"), model_version=str(figures.get("model_version")))
    rows: list[MetricRow] = []
    for section in REPORT_SECTIONS:
        for key, value in (figures.get(section) or {}).items():
            if _number(value) is not None:
                rows.append(MetricRow(metric=key, value=_number(value), unit=unit_of(key), section=section, **base))
            elif key in PER_LABEL and isinstance(value, Mapping):
                rows += [MetricRow(metric=PER_LABEL[key], value=_number(v), section=section, label=label, **base)
                         for label, v in sorted(value.items()) if _number(v) is not None]
            elif key == "segments":
                for segment in value:
                    scope = {"source": segment["source"],
                             "department" if segment["segment"] == "department" else "product_id": segment["value"]}
                    rows += [MetricRow(metric=name, value=_number(segment[name]), unit=unit_of(name), section=section,
                                       **scope, **base)
                             for name in ("n_documents", "n_baseline_documents", "label_js", "psi_confidence")
                             if _number(segment.get(name)) is not None]
    for alert in payload.get("alerts", []):
        match = next((r for r in rows if r.section == alert["section"] and r.metric == alert["metric"]
                      and r.severity is None and not (r.source or r.department or r.product_id or r.label)), None)
        if match is None:
            match = MetricRow(metric=alert["metric"], value=_number(alert["value"]), unit=unit_of(alert["metric"]),
                              section=alert["section"], **base)
            rows.append(match)
        match.severity, match.threshold, match.message = alert["severity"], alert["threshold"], alert["message"]
    return rows


# --- where they go ---------------------------------------------------------------------------------------
def _schema():
    import pyarrow as pa

    kinds = {"value": pa.float64(), "threshold": pa.float64()}
    return pa.schema([(name, kinds.get(name, pa.string())) for name in COLUMNS])


def write_table(settings: Settings, rows: Iterable[MetricRow]) -> int:
    """Writes the rows to the lake's metrics table, one commit replacing the rows of the same runs
    (so publishing a run twice leaves one copy); returns the rows written. The one writer of that table."""
    import pyarrow as pa
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import In

    rows = list(rows)
    if not rows:
        return 0
    data = pa.Table.from_pylist([asdict(r) for r in rows], schema=_schema())
    runs = sorted({r.run_id for r in rows})
    for attempt in range(8):  # another process's commit meanwhile: try again on the new snapshot
        table = tables.python_table(settings, "metrics", _schema())
        try:
            table.overwrite(data, overwrite_filter=In("run_id", runs))
            return len(rows)
        except Exception as exc:  # refused: another process committed, or wrote the catalog file, meanwhile
            if not (isinstance(exc, CommitFailedException) or tables.catalog_busy(exc)):
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise RuntimeError(f"could not write the metrics of runs {', '.join(runs)}: the metrics table kept changing")


def dimensions(row: MetricRow) -> list[dict[str, str]]:
    dims = [{"Name": "Stage", "Value": row.producer}]
    for name, value in (("Source", row.source), ("Department", row.department), ("Label", row.label)):
        if value:
            dims.append({"Name": name, "Value": value})
    return dims


def datums(rows: Iterable[MetricRow]) -> list[dict]:
    """PutMetricData datums: every number but product-level ones, at the time it was recorded."""
    out = []
    for r in rows:
        if r.value is None or r.product_id:
            continue
        out.append({"MetricName": r.metric, "Dimensions": dimensions(r), "Value": r.value, "Unit": r.unit,
                    "Timestamp": dt.datetime.fromisoformat(r.recorded_at)})
    return out


def to_cloudwatch(settings: Settings, rows: Iterable[MetricRow]) -> int:
    """PutMetricData in batches; returns how many datums were sent."""
    import boto3

    sent = datums(rows)
    client = boto3.client("cloudwatch", region_name=settings.aws_region)
    for start in range(0, len(sent), PUT_BATCH):
        client.put_metric_data(Namespace=settings.cloudwatch_namespace, MetricData=sent[start:start + PUT_BATCH])
    return len(sent)


def publish(settings: Settings, rows: list[MetricRow]) -> dict:
    """Rows to the lake's metrics table, and to CloudWatch when the setting turns it on."""
    if not rows:
        return {}
    out = {"metrics_rows": write_table(settings, rows)}
    if settings.cloudwatch_metrics:
        out["cloudwatch_datums"] = to_cloudwatch(settings, rows)
    return out

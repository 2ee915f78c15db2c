"""Retraining after a monitoring report's critical alert, by the policy in the settings.

    make retrain DATE=D        (and `make run`, after a report that raised a critical alert, when
                                retrain_auto is on; on EMR the pipeline's Retrain state)

The report of D must have raised a critical alert on a metric of `retrain_on` (drift against the
training data or a macro-F1 drop, by default). Then, in this order:
- D itself must have labelled rows: a source without labels (tweets) never triggers training on itself;
- no retraining may have been started by a date less than `retrain_cooldown_days` away (a drifted week
  retrains once, not daily);
- the window, the labelled dates within `retrain_window_days` up to D, must hold at least
  `retrain_min_labelled_rows` labelled rows.
The candidate (the champion's pipeline) is trained on the window plus the history before it
(`retrain_history_days`, 0 = all of it) and goes through the same promotion gate as `make train`: it
becomes champion only if it beats the champion, otherwise challenger. The alert that caused it is in the
version's registry tags (`retrain_reason`, `retrain_trigger_date`, `retrain_alerts`) and in the reports
that follow. Each decision, taken or not, is one `retrain` run record with its reason.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from . import monitoring, registry, report, train
from . import tables
from .runlog import RunRecord, stage_run
from .settings import Settings, SettingsError
from .vocabulary import PIPELINES, RunStatus

TRIGGER_TAG = "retrain_trigger_date"


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str                                    # one line: why, or why not
    triggers: tuple = ()                           # the critical alerts that asked for it
    dates: tuple = ()                              # the training dates, when it retrains
    tags: dict = field(default_factory=dict)       # what the registry records on the new version


def alert_metrics(settings: Settings) -> set[str]:
    """The metrics an alert can be about (the report's rules)."""
    return {r.metric for r in monitoring.rules(report.thresholds_of(settings))}


def check(settings: Settings) -> None:
    """retrain_on names metrics the report can alert on."""
    known = alert_metrics(settings)
    unknown = sorted(set(settings.retrain_metrics) - known)
    if unknown:
        raise SettingsError(f"setting retrain_on: {', '.join(unknown)} is no metric of the report's alert rules "
                            f"(known: {', '.join(sorted(known))})")


def triggers(alerts: Sequence[Mapping], retrain_on: Sequence[str]) -> list[Mapping]:
    return [a for a in alerts if a["severity"] == "critical" and a["metric"] in retrain_on]


def _days(a: str, b: str) -> int:
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)


def decide(date: str, alerts: Sequence[Mapping], retrain_on: Sequence[str], labelled_rows: Mapping[str, int],
           last_trigger: str | None, window_days: int, history_days: int, min_rows: int,
           cooldown_days: int) -> Decision:
    """The policy, on numbers only: the report's alerts, the labelled rows of each ingested date, and
    the date that started the last retraining."""
    found = triggers(alerts, retrain_on)
    if not found:
        return Decision(False, f"no critical alert on {', '.join(retrain_on) or 'any retrain_on metric'} in the "
                               f"report of {date}")
    asked = "; ".join(f"critical {a['metric']} {a['value']:.3g} > {a['threshold']:g}" if a["threshold"] is not None
                      else f"critical {a['metric']}" for a in found)
    if not labelled_rows.get(date):
        return Decision(False, f"{asked}, but {date} has no labelled rows: a source without labels never triggers "
                               "training on itself", tuple(found))
    if last_trigger and _days(date, last_trigger) < cooldown_days:
        return Decision(False, f"{asked}, but the last retraining was started by {last_trigger}, within the "
                               f"cooldown of {cooldown_days} days", tuple(found))
    start = (dt.date.fromisoformat(date) - dt.timedelta(days=window_days - 1)).isoformat()
    window = sorted(d for d, n in labelled_rows.items() if start <= d <= date and n)
    rows = sum(labelled_rows[d] for d in window)
    if rows < min_rows:
        return Decision(False, f"{asked}, but the window {start}..{date} holds {rows} labelled rows, fewer than "
                               f"retrain_min_labelled_rows={min_rows}", tuple(found))
    earliest = (dt.date.fromisoformat(start) - dt.timedelta(days=history_days)).isoformat() if history_days else ""
    history = sorted(d for d, n in labelled_rows.items() if earliest <= d < start and n)
    reason = f"{asked} in the report of {date}"
    tags = {"retrain_reason": reason, TRIGGER_TAG: date, "retrain_alerts": ",".join(a["metric"] for a in found),
            "retrain_window": f"{start}..{date}"}
    return Decision(True, f"{reason}: training on {len(window)} window date(s) ({rows} labelled rows) and "
                          f"{len(history)} earlier date(s)", tuple(found), tuple(history + window), tags)


def last_trigger(settings: Settings) -> str | None:
    """The alerted date that started the newest retraining, from the registry's version tags."""
    with registry.store(settings):
        versions = registry.client(settings).search_model_versions(f"name='{settings.model_name}'")
    dates = [v.tags[TRIGGER_TAG] for v in versions if v.tags.get(TRIGGER_TAG)]
    return max(dates) if dates else None


def labelled_rows(spark, settings: Settings) -> dict[str, int]:
    """Labelled rows per ingested date (0 for a date whose source has no labels)."""
    from pyspark.sql import functions as F

    batches = tables.committed(settings)
    dates = sorted(batches)  # the ingested dates (Lake.ingested_dates), without scanning twice
    labels = tables.read(spark, settings, "labels", dates, batches) if dates else None
    if labels is None:
        return {d: 0 for d in dates}
    counts = labels.groupBy(F.col("ingest_date").alias("d")).count().collect()
    found = {r["d"]: r["count"] for r in counts}
    return {d: int(found.get(d, 0)) for d in dates}


def champion_pipeline(settings: Settings) -> str:
    """The pipeline the champion was fitted with (its `pipeline` tag), else the first configured one."""
    champ = registry.champion(settings)
    if champ is not None:
        with registry.store(settings):
            name = registry.client(settings).get_model_version(champ.name, champ.version).tags.get("pipeline")
        if name in PIPELINES:
            return name
    return settings.pipelines[0]


def run(spark, settings: Settings, date: str) -> list[RunRecord]:
    """Applies the policy to the report of `date`; trains through the gate when it says so."""
    check(settings)
    alerts = report.alerts_of(settings, date)["alerts"]
    records: list[RunRecord] = []
    with stage_run(settings, "retrain", date) as rec:
        decision = decide(date, alerts, settings.retrain_metrics, labelled_rows(spark, settings),
                          last_trigger(settings), settings.retrain_window_days, settings.retrain_history_days,
                          settings.retrain_min_labelled_rows, settings.retrain_cooldown_days)
        rec.message = decision.reason
        rec.outputs["triggers"] = [a["metric"] for a in decision.triggers]
        if not decision.retrain:
            rec.status = RunStatus.SKIPPED
        else:
            rec.outputs["training_dates"] = list(decision.dates)
            records = train.fit_and_gate(spark, settings, list(decision.dates), date, [champion_pipeline(settings)],
                                         decision.tags)
            rec.model_name, rec.model_version = records[0].model_name, records[0].model_version
            rec.message = f"{decision.reason}; {records[0].outputs.get('decision', '')}"
    return [rec, *records]

"""Promotion gate: a model becomes champion only when it beats the champion's macro-F1 by
`promotion_margin` on the same frozen test set, scored now by both (a differential test).

A candidate that does not pass becomes the challenger and scores in shadow. On promotion the old
champion keeps the alias `previous_champion`; `make promote VERSION=N FORCE=1` rolls back to any
version without the gate (recorded as forced).
Each decision writes a promotion report (JSON and Markdown) into the candidate's MLflow run.
"""
from __future__ import annotations

from pyspark.sql import SparkSession

from . import embedding_store, evaluation, registry
from .lake import Lake
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings
from .splits import Splits, scored_frame
from .vocabulary import ExitCode, RunStatus

PREVIOUS = "previous_champion"


GATE_GAIN_TAG = "gate_macro_f1_gain"  # the candidate's macro-F1 minus the champion's, at its gate


def passes(candidate_f1: float, champion_f1: float, margin: float) -> bool:
    return candidate_f1 >= champion_f1 + margin


def gate(spark: SparkSession, settings: Settings, candidate: registry.ModelRef, candidate_test, splits,
         run_id: str) -> str:
    """Decides and sets the aliases; returns the decision in words."""
    champion = registry.champion(settings)
    if champion is None:
        registry.set_alias(settings, registry.CHAMPION, candidate.version)
        return "champion (there was none)"
    if champion.version == candidate.version:
        return "already champion"
    champion_model = embedding_store.load_version(spark, settings, champion, run_id)
    champion_test = scored_frame(champion_model, splits.test, settings.max_sentence_length)
    report = evaluation.compare(candidate_test, champion_test)
    gain = report["difference"]["macro_f1"]
    if passes(report["candidate"]["macro_f1"], report["champion"]["macro_f1"], settings.promotion_margin):
        registry.set_alias(settings, PREVIOUS, champion.version)
        registry.set_alias(settings, registry.CHAMPION, candidate.version)
        challenger = registry.model_by_alias(settings, registry.CHALLENGER)
        if challenger and challenger.version == candidate.version:
            registry.client(settings).delete_registered_model_alias(settings.model_name, registry.CHALLENGER)
        decision = (f"promoted to champion over v{champion.version} (macro-F1 {gain:+.4f} on "
                    f"{report['rows']:,} test documents, margin {settings.promotion_margin})")
    else:
        registry.set_alias(settings, registry.CHALLENGER, candidate.version)
        # what shadow scoring reads to decide whether the challenger is worth scoring (shadow_skip_margin)
        registry.client(settings).set_model_version_tag(candidate.name, candidate.version, GATE_GAIN_TAG,
                                                        f"{gain:.4f}")
        decision = (f"not promoted: macro-F1 {gain:+.4f} against champion v{champion.version} on "
                    f"{report['rows']:,} test documents is below the margin {settings.promotion_margin}; "
                    f"set as challenger (shadow scoring)")
    client = registry.client(settings)
    client.log_dict(candidate.run_id, {**report, "decision": decision, "champion_version": champion.version,
                                       "candidate_version": candidate.version}, "promotion/report.json")
    client.log_text(candidate.run_id, evaluation.report_markdown(report, decision), "promotion/report.md")
    return decision


def run(spark: SparkSession, settings: Settings, force: bool = False) -> RunRecord:
    """`make promote [VERSION=N] [FORCE=1]`: the gate for an already registered version (default:
    the challenger), on today's frozen test set; with force, the version becomes champion as is."""
    version = settings.model_version or getattr(registry.model_by_alias(settings, registry.CHALLENGER), "version", "")
    dates = Lake(settings).ingested_dates()
    with stage_run(settings, "promote", dates[-1] if dates else "none") as rec:
        if not version:
            raise StageStopped("promote: no VERSION given and no challenger set", exit_code=ExitCode.BAD_SETTING,
                               status=RunStatus.FAILED)
        candidate = registry.version(settings, version)
        if candidate is None:
            raise StageStopped(f"promote: model {settings.model_name} has no version {version}",
                               exit_code=ExitCode.BAD_SETTING,
                               status=RunStatus.FAILED)
        rec.model_name, rec.model_version = candidate.name, candidate.version
        current = registry.champion(settings)
        if force:
            if current and current.version != candidate.version:
                registry.set_alias(settings, PREVIOUS, current.version)
            registry.set_alias(settings, registry.CHAMPION, candidate.version)
            rec.message = f"v{candidate.version}: forced to champion (was v{current.version if current else 'none'})"
            return rec
        splits = Splits(spark, settings, dates)
        try:
            test = scored_frame(embedding_store.load_version(spark, settings, candidate, rec.run_id), splits.test,
                                settings.max_sentence_length)
            rec.message = f"v{candidate.version}: {gate(spark, settings, candidate, test, splits, rec.run_id)}"
        finally:
            splits.release()
    return rec

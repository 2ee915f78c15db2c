"""The retraining loop end to end, through `make run` (orchestrator.run_pipeline): a labelled batch on
which the champion decays raises a critical alert in its report, the retraining policy trains a
candidate through the promotion gate and the registry records why; a second decayed batch within the
cooldown raises the alert again and does not retrain; the report that follows names the retraining.

The decayed batches are real reviews of the corpus that the replay did not use, with their ratings
mirrored (1 <-> 5, 2 <-> 4): the same kind of text, the opposite sentiment (a concept shift)."""
import json

import pytest

from spark_jobs import landing, registry, replay, runlog
from spark_jobs.orchestrator import run_pipeline
from spark_jobs.runlog import StageStopped
from spark_jobs.vocabulary import ExitCode
from tests.conftest import CORPUS, make_settings, need

DECAYED, AGAIN = "2026-11-03", "2026-11-05"   # 2 days apart: within the default cooldown of 7 days
REPLAYED = 1600


def land_mirrored(settings, tmp_path, date, rows):
    corpus = replay.read_corpus(str(CORPUS))
    batch = corpus.iloc[rows].copy()
    batch["Rating"] = batch["Rating"].map(lambda r: str(6 - int(r)) if r.strip().isdigit() else r)
    path = tmp_path / f"reviews_{date}.csv.gz"
    batch.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
    landing.land(settings, str(path), date, "reviews")


def records_of(settings, stage, date):
    return runlog.records(settings, stage, date)


def run_alerted(settings):
    with pytest.raises(StageStopped) as stop:
        run_pipeline(settings, log=lambda *_: None)
    assert stop.value.exit_code == ExitCode.CRITICAL_ALERT, str(stop.value)
    return str(stop.value)


@pytest.fixture(scope="module")
def loop(spark, tmp_path_factory):
    need(CORPUS)
    root = tmp_path_factory.mktemp("retrain")
    settings = make_settings(root, replay_limit=REPLAYED, replay_days=2, train_pipelines="tfidf_logreg",
                             retrain_on="macro_f1_drop")
    first = run_pipeline(settings, log=lambda *_: None)       # D1, D2: the champion, calm reports
    land_mirrored(settings, root, DECAYED, slice(REPLAYED, REPLAYED + 500))
    decayed = run_alerted(settings.replace(date=DECAYED))
    land_mirrored(settings, root, AGAIN, slice(REPLAYED + 500, REPLAYED + 1000))
    again = run_alerted(settings.replace(date=AGAIN))
    return settings, first, decayed, again


@pytest.mark.slow
def test_a_decayed_labelled_batch_retrains_through_the_gate_and_the_registry_says_why(loop):
    settings, first, decayed, _ = loop
    assert [r.stage for r in first if r.stage == "retrain"] == []          # calm days never retrain
    assert "macro_f1_drop" in decayed
    alerts = json.load(open(f"{settings.path('reports_dir')}/{DECAYED}/alerts.json"))["alerts"]
    (drop,) = [a for a in alerts if a["metric"] == "macro_f1_drop" and a["severity"] == "critical"]

    (rec,) = records_of(settings, "retrain", DECAYED)
    assert rec["status"] == "succeeded"
    assert rec["outputs"]["triggers"] == ["macro_f1_drop"]
    assert rec["outputs"]["training_dates"] == ["2026-11-01", "2026-11-02", DECAYED]
    assert rec["message"].startswith(f"critical macro_f1_drop {drop['value']:.3g} > {drop['threshold']:g} "
                                     f"in the report of {DECAYED}: training on 3 window date(s)")

    # the candidate went through the gate: champion if it beat v1, else challenger; never unaliased
    client = registry.client(settings)
    version = client.get_model_version(settings.model_name, rec["model_version"])
    assert version.tags["retrain_trigger_date"] == DECAYED and version.tags["retrain_alerts"] == "macro_f1_drop"
    assert version.tags["retrain_reason"] == f"critical macro_f1_drop {drop['value']:.3g} > {drop['threshold']:g} " \
                                             f"in the report of {DECAYED}"
    assert version.tags["training_dates"] == f"2026-11-01,2026-11-02,{DECAYED}"
    (trained,) = records_of(settings, "train", DECAYED)
    decision = trained["outputs"]["decision"]
    champion, challenger = registry.champion(settings), registry.model_by_alias(settings, registry.CHALLENGER)
    if decision.startswith("promoted"):
        assert champion.version == rec["model_version"]
    else:
        assert decision.startswith("not promoted") and challenger.version == rec["model_version"]
        assert champion.version == "1"
    assert decision in rec["message"]


@pytest.mark.slow
def test_a_second_decayed_batch_within_the_cooldown_does_not_retrain_and_the_report_names_the_last(loop):
    settings, _, _, again = loop
    assert "macro_f1_drop" in again                                  # the alert is raised again ...
    (rec,) = records_of(settings, "retrain", AGAIN)                  # ... and the policy declines
    assert rec["status"] == "skipped" and rec["outputs"]["triggers"] == ["macro_f1_drop"]
    assert f"but the last retraining was started by {DECAYED}, within the cooldown of 7 days" in rec["message"]
    assert records_of(settings, "train", AGAIN) == []
    versions = registry.client(settings).search_model_versions(f"name='{settings.model_name}'")
    assert sorted(v.tags.get("retrain_trigger_date", "") for v in versions) == ["", DECAYED]

    html = open(f"{settings.path('reports_dir')}/{AGAIN}/monitoring.html", encoding="utf-8").read()
    assert f"started by the report of {DECAYED}" in html

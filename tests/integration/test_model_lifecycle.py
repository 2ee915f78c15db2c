"""Registry lifecycle on a small real sample: the gate promotes a better model and refuses a worse
one, the challenger scores in shadow apart from the champion, scoring is incremental and repeatable."""
import json
import shutil

import pandas as pd
import pytest

from spark_jobs import infer, ingest, promotion, registry, replay, tables, train
from spark_jobs.lake import Lake
from spark_jobs.vocabulary import ExitCode
from tests.conftest import CORPUS, make_settings, need, table_rows

D1, D2 = "2026-11-01", "2026-11-02"
# A deliberately poor model: heavy regularisation and no class weights predict almost only "positive".
POOR = dict(tfidf_reg_param=5.0, class_weighting="none")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    need(CORPUS)
    settings = make_settings(tmp_path_factory.mktemp("lifecycle"), replay_limit=1600, replay_days=2,
                             train_pipelines="tfidf_logreg", promotion_margin=0.01)
    replay.replay(settings, log=lambda *_: None)
    for d in (D1, D2):
        ingest.run(spark, settings, d)
    return settings


@pytest.fixture(scope="module")
def trained(spark, lake):
    """A poor model (v1), a better one (v2, promoted over it), a poor one again (v3, refused: the
    challenger). Every test that needs a registry starts from this state, never from another test's."""
    return [train.run(spark, settings)[0] for settings in (lake.replace(**POOR), lake, lake.replace(**POOR))]


def registry_copy(settings, tmp_path):
    """The same registry in a file of its own, for a test that moves aliases."""
    copy = settings.replace(mlflow_tracking_uri=f"sqlite:///{tmp_path}/copy.db")
    shutil.copy(settings.mlflow_uri[len("sqlite:///"):], tmp_path / "copy.db")
    return copy


def aliases(settings):
    return {a: getattr(registry.model_by_alias(settings, a), "version", None)
            for a in (registry.CHAMPION, registry.CHALLENGER, promotion.PREVIOUS)}


def predictions(spark, settings, zone, date, version):
    df = table_rows(settings, zone, date)
    return df[df.model_version == int(version)].sort_values("review_id", ignore_index=True)


def snapshots(settings, *zones):
    return [tables.load_table(settings, z).current_snapshot().snapshot_id for z in zones]


@pytest.mark.slow
def test_gate_promotes_a_better_model_and_refuses_a_worse_one(spark, lake, trained, tmp_path):
    poor, good, worse = trained
    assert poor.outputs["decision"] == "champion (there was none)"
    assert good.outputs["decision"].startswith("promoted to champion over v1")
    assert good.outputs["macro_f1"] >= poor.outputs["macro_f1"] + 0.01
    assert worse.outputs["decision"].startswith("not promoted")
    assert aliases(lake) == {"champion": "2", "challenger": "3", "previous_champion": "1"}

    report = registry.client(lake).download_artifacts(worse.outputs["mlflow_run_id"], "promotion/report.json")
    body = json.load(open(report))
    assert body["champion_version"] == "2" and body["difference"]["macro_f1"] < 0.01
    assert body["disagreements"] and set(body["disagreements"][0]) == {"review_id", "truth", "candidate", "champion"}

    # the challenger is refused again when asked explicitly, and a forced rollback is recorded
    moved = registry_copy(lake, tmp_path)
    assert "not promoted" in promotion.run(spark, moved).message
    assert aliases(moved)["champion"] == "2"
    forced = promotion.run(spark, moved.replace(model_version="1"), force=True)
    assert "forced" in forced.message and aliases(moved)["champion"] == "1"
    assert aliases(lake)["champion"] == "2"  # the copy moved, not the module's registry


@pytest.mark.slow
def test_shadow_scoring_is_kept_apart_incremental_and_repeatable(spark, lake, trained):
    assert aliases(lake)["champion"] == "2" and aliases(lake)["challenger"] == "3"
    first = infer.run(spark, lake, D1)
    assert [(r.stage, r.model_version, r.status) for r in first] == [("infer", "2", "succeeded"), ("shadow", "3", "succeeded")]
    champion = predictions(spark, lake, "predictions", D1, "2")
    shadow = predictions(spark, lake, "predictions_shadow", D1, "3")
    assert set(table_rows(lake, "predictions", D1).model_version) == {2}  # never mixed in
    assert list(champion.review_id) == list(shadow.review_id)  # the same rows, in shadow
    assert (shadow.label == "positive").mean() > (champion.label == "positive").mean()

    before = snapshots(lake, "predictions", "predictions_shadow")
    again = infer.run(spark, lake, D1)
    assert [r.status for r in again] == ["skipped", "skipped"]  # no repeated work
    assert snapshots(lake, "predictions", "predictions_shadow") == before  # no commit

    infer.run(spark, lake, D1, rescore=True)
    rescored = predictions(spark, lake, "predictions", D1, "2")
    cols = ["review_id", "label", "confidence", "score_negative", "score_neutral", "score_positive", "model_version"]
    pd.testing.assert_frame_equal(rescored[cols], champion[cols])  # same version, same predictions
    assert set(rescored.run_id) != set(champion.run_id)


@pytest.mark.slow
def test_inference_refuses_a_date_whose_ingest_did_not_complete(spark, lake, trained):
    from spark_jobs.runlog import StageStopped

    from pyspark.sql import functions as F

    # what an ingest killed between two commits leaves: the date's curated rows are a batch whose
    # ingest run never succeeded
    name = tables.table(spark, lake, "curated")
    saved = spark.table(name).where(F.col("ingest_date") == D2).localCheckpoint()
    found = tables.current_snapshot(lake, "curated")
    tables.write_partitions(spark, lake, "curated", saved.withColumn("batch_id", F.lit("killed-run")),
                            F.col("ingest_date") == D2, "killed-run", found)
    try:
        with pytest.raises(StageStopped) as stop:
            infer.run(spark, lake, D2)
        assert stop.value.exit_code == 2 and f"make ingest DATE={D2}" in str(stop.value)
        assert D2 not in Lake(lake).ingested_dates()  # nor is it trained on
    finally:
        tables.write_partitions(spark, lake, "curated", saved, F.col("ingest_date") == D2, "restored",
                                tables.current_snapshot(lake, "curated"))
        assert D2 in Lake(lake).ingested_dates()


@pytest.mark.slow
def test_a_broken_champion_stops_with_a_clear_message(spark, lake, trained, tmp_path):
    from spark_jobs.runlog import StageStopped

    broken = registry_copy(lake, tmp_path)
    client = registry.client(broken)
    # point the champion at a version whose files are gone
    mv = client.create_model_version(broken.model_name, source=str(tmp_path / "missing"), run_id=None)
    registry.set_alias(broken, registry.CHAMPION, mv.version)
    with pytest.raises(StageStopped) as stop:
        infer.run(spark, broken, D2)
    assert stop.value.exit_code == ExitCode.NO_CHAMPION and "cannot be loaded" in str(stop.value)


@pytest.mark.slow
def test_a_champion_whose_artifacts_changed_since_registration_is_refused(spark, lake, trained, tmp_path):
    import mlflow.artifacts

    from spark_jobs.runlog import StageStopped

    moved = registry_copy(lake, tmp_path)
    client = registry.client(moved)
    champion = registry.champion(moved)
    recorded = client.get_model_version(champion.name, champion.version).tags[registry.ARTIFACT_HASH_TAG]
    copy = mlflow.artifacts.download_artifacts(artifact_uri=champion.uri, dst_path=str(tmp_path / "model"))
    assert registry.artifact_hash(copy) == recorded  # recorded at registration
    # a copy of the champion's files with one byte changed, registered under the champion's hash
    victim = sorted(p for p in (tmp_path / "model").rglob("*") if p.is_file() and p.suffix != ".crc")[0]
    victim.write_bytes(victim.read_bytes() + b" ")
    mv = client.create_model_version(moved.model_name, source=copy, run_id=champion.run_id)
    client.set_model_version_tag(moved.model_name, mv.version, registry.ARTIFACT_HASH_TAG, recorded)
    registry.set_alias(moved, registry.CHAMPION, mv.version)
    with pytest.raises(StageStopped) as stop:
        infer.run(spark, moved, D2)
    assert stop.value.exit_code == ExitCode.NO_CHAMPION and "changed since it was registered" in str(stop.value)


@pytest.mark.slow
def test_shadow_scores_its_share_of_the_day_or_nothing_when_the_gate_found_it_much_worse(spark, lake, trained):
    from spark_jobs.promotion import GATE_GAIN_TAG

    sampled = lake.replace(shadow_share=0.5)
    champion_version, challenger = aliases(lake)["champion"], registry.model_by_alias(lake, registry.CHALLENGER)
    records = infer.run(spark, sampled, D2, rescore=True)
    assert [r.stage for r in records] == ["infer", "shadow"] and records[1].outputs["shadow_share"] == 0.5
    champion = predictions(spark, lake, "predictions", D2, champion_version)
    shadow = predictions(spark, lake, "predictions_shadow", D2, challenger.version)
    assert 0.35 < len(shadow) / len(champion) < 0.65 and set(shadow.review_id) < set(champion.review_id)
    assert records[1].rows_in == len(shadow)

    with registry.store(lake):
        gain = float(registry.client(lake).get_model_version(challenger.name, challenger.version).tags[GATE_GAIN_TAG])
    assert gain < 0  # the worse model, as its gate measured it
    assert infer.shadow_skip_reason(lake.replace(shadow_skip_margin=-gain + 0.001), challenger) is None
    reason = infer.shadow_skip_reason(lake.replace(shadow_skip_margin=-gain - 0.001), challenger)
    assert reason and f"v{challenger.version} scored macro-F1 {gain:+.4f}" in reason and "shadow_skip_margin" in reason
    assert infer.shadow_skip_reason(lake.replace(shadow_share=0.0), challenger) == "shadow scoring is off (shadow_share=0)"

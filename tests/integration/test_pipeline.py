"""End to end on a small real sample: replay -> ingest (GX) -> train (Spark NLP, MLflow) -> infer
-> dbt build (DuckDB) -> papermill report; then the same again changes nothing."""
import json
import os

import duckdb
import pandas as pd
import pytest

from spark_jobs import cli, registry, runlog, splits, storage, tables
from spark_jobs.lake import Lake
from spark_jobs.orchestrator import run_pipeline
from tests.conftest import CORPUS, MODEL_DIR, need, table_rows

DATES = ["2026-11-01", "2026-11-02"]
# Personal data planted in the first day's batch: it must stay in the lake's tables (curated, quarantine).
EMAIL, PHONE = "jane.doe@example.com", "+1 555 0100"
PLANTED = pd.DataFrame([
    {"": "900001", "Clothing ID": "1080", "Title": f"Write to {EMAIL}", "Review Text": (
        f"Lovely dress. Mail me at {EMAIL} or call {PHONE} about it. " + "It fits well and the fabric is soft. " * 120),
     "Rating": "5", "Department Name": "Dresses", "Class Name": "Dresses"},
    {"": "900002", "Clothing ID": "1080", "Title": "Odd rating", "Review Text": f"Ask {EMAIL} why the rating is odd.",
     "Rating": EMAIL, "Department Name": "Dresses", "Class Name": "Dresses"},  # quarantined: rating_not_integer
])


def zone_counts(settings, zone):
    return table_rows(settings, zone).groupby("ingest_date").size().to_dict()


def predictions(settings):
    return table_rows(settings, "predictions")


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    need(CORPUS)
    need(MODEL_DIR)
    from tests.conftest import make_settings

    from spark_jobs import landing, replay

    # A margin no model can clear: tfidf_logreg (trained first) is champion, minilm_logreg the challenger.
    root = tmp_path_factory.mktemp("e2e")
    settings = make_settings(root, replay_limit=300, replay_days=2, promotion_margin=1.0)
    lines = []
    replay.replay(settings, log=lines.append)
    planted = root / "planted.csv"
    PLANTED.to_csv(planted, index=False)
    landing.land(settings, str(planted), DATES[0], "reviews")
    records = run_pipeline(settings, log=lines.append)
    return settings, records, lines


@pytest.mark.slow
def test_stages_run_in_the_state_machine_order(first_run):
    settings, records, _ = first_run
    assert [(r.stage, r.ingest_date, r.status) for r in records] == [
        ("ingest", DATES[0], "succeeded"), ("ingest", DATES[1], "succeeded"),
        ("train", DATES[1], "succeeded"), ("train", DATES[1], "succeeded"),
        ("infer", DATES[0], "succeeded"), ("shadow", DATES[0], "succeeded"),
        ("infer", DATES[1], "succeeded"), ("shadow", DATES[1], "succeeded"),
        ("dbt", "all", "succeeded"), ("report", DATES[0], "succeeded"), ("report", DATES[1], "succeeded"),
    ]
    assert [r.outputs["pipeline"] for r in records if r.stage == "train"] == ["tfidf_logreg", "minilm_logreg"]
    assert [r.model_version for r in records if r.stage in ("infer", "shadow")] == ["1", "2", "1", "2"]


@pytest.mark.slow
def test_every_landed_row_is_accounted_for_and_scored_once(spark, first_run):
    settings, records, _ = first_run
    lake = Lake(settings)
    curated = zone_counts(settings, "curated")
    quarantined = zone_counts(settings, "quarantine")
    ingest_records = {r.ingest_date: r for r in records if r.stage == "ingest"}
    preds = predictions(settings)
    infer_run = {r.ingest_date: r.run_id for r in records if r.stage == "infer"}
    for d in DATES:
        landed = sum(len(pd.read_csv(f, dtype=str)) for f in storage.list_files(lake.partition("raw", d)))  # read independently of Spark
        dup = ingest_records[d].rows_duplicate
        assert landed == curated[d] + quarantined[d] + dup
        day = preds[preds.ingest_date.astype(str) == d]
        ids = set(table_rows(settings, "curated", d).review_id)
        assert set(day.review_id) == ids and day.review_id.is_unique
        assert set(day.run_id) == {infer_run[d]}
    champion = registry.champion(settings)
    assert set(preds.model_name) == {"review_sentiment"} and set(preds.model_version.astype(str)) == {champion.version}
    assert set(preds.label) <= {"negative", "neutral", "positive"}
    scores = preds[["score_negative", "score_neutral", "score_positive"]]
    assert ((scores.sum(axis=1) - 1).abs() < 1e-6).all()
    # the confidence is the predicted label's score, and that label is the highest scoring one
    picked = scores.to_numpy()[range(len(preds)), preds.label.map({"negative": 0, "neutral": 1, "positive": 2})]
    assert (abs(preds.confidence - picked) < 1e-12).all() and (abs(preds.confidence - scores.max(axis=1)) < 1e-12).all()
    quarantine = table_rows(settings, "quarantine")
    assert quarantine.reasons.map(len).min() >= 1  # the corpus has reviews without text

    # the champion was trained on both dates: exactly its train split is marked as seen
    fitted, _, _ = splits.frozen_split(splits.labelled_documents(spark, settings, DATES),
                                      settings.test_fraction, settings.validation_fraction)
    fitted_ids = {r.review_id for r in fitted.select("review_id").collect()}
    assert 0 < len(fitted_ids) < len(preds) and set(preds[preds.seen_in_training].review_id) == fitted_ids


@pytest.mark.slow
def test_the_shadow_reads_the_vectors_training_stored(first_run):
    """Every labelled document was encoded by training: the challenger's shadow encodes only the others."""
    settings, records, _ = first_run
    curated, labels = table_rows(settings, "curated"), table_rows(settings, "labels")
    trained = [r for r in records if r.stage == "train" and r.outputs["pipeline"] == "minilm_logreg"]
    assert trained[0].outputs["texts_encoded"] > 0
    for r in [r for r in records if r.stage == "shadow"]:
        day = curated[curated.ingest_date.astype(str) == r.ingest_date]
        unlabelled = set(day.review_id) - set(labels.review_id)
        assert r.outputs["texts_encoded"] <= len(unlabelled) < r.rows_out
    kept = table_rows(settings, "embeddings")
    assert not kept.duplicated(["encoder", "ingest_date", "text_key"]).any()
    assert len(kept) <= len(curated) and set(kept.ingest_date.astype(str)) == set(DATES)


@pytest.mark.slow
def test_the_champion_is_registered_with_its_metrics_and_lineage(first_run):
    settings, records, _ = first_run
    ref = registry.champion(settings)
    assert ref is not None and ref.version == "1"
    client = registry.client(settings)
    for r in [r for r in records if r.stage == "train"]:
        run = client.get_run(r.outputs["mlflow_run_id"])
        metrics = run.data.metrics
        for key in ("accuracy", "macro_f1", "f1_negative", "recall_neutral", "calibration_error",
                    "vader_macro_f1", "validation_macro_f1"):
            assert 0 <= metrics[key] <= 1, key
        assert run.data.tags["training_dates"] == ",".join(DATES)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix.png", "model"} <= artifacts
        version = client.get_model_version(ref.name, r.model_version)
        assert version.tags["training_dates"] == ",".join(DATES) and version.tags["training_data_hash"]


@pytest.mark.slow
def test_the_mart_answers_and_matches_the_lake(spark, first_run):
    settings, _, _ = first_run
    preds = predictions(settings)
    con = duckdb.connect(settings.path("warehouse_path"), read_only=True)
    per_day = dict(con.execute(
        "select cast(ingest_date as varchar), sum(n_documents) from mart_daily_sentiment group by 1").fetchall())
    shares = con.execute("select ingest_date, department, sum(share_of_department) from mart_daily_sentiment "
                         "group by 1, 2").fetchall()
    con.close()
    assert per_day == {d: int((preds.ingest_date.astype(str) == d).sum()) for d in DATES}
    assert all(abs(s - 1) < 1e-9 for *_, s in shares)


@pytest.mark.slow
def test_the_report_is_html_with_plots_and_metrics(spark, first_run):
    settings, _, lines = first_run
    preds = predictions(settings)
    for d in DATES:
        folder = os.path.join(settings.path("reports_dir"), d)
        html = open(os.path.join(folder, "monitoring.html"), encoding="utf-8").read()
        assert html.count("<img") >= 2 and "data:image/png;base64" in html
        assert "import duckdb" not in html  # published without code
        assert os.path.getsize(os.path.join(folder, "monitoring.html")) < 5_000_000
        metrics = json.load(open(os.path.join(folder, "metrics.json")))
        day = preds[preds.ingest_date.astype(str) == d]
        assert metrics["n_predictions"] == len(day)
        assert metrics["mean_confidence"] == pytest.approx(day.confidence.mean())
    summary = "\n".join(lines)
    assert "mart_daily_sentiment" in summary and "monitoring.html" in summary


@pytest.mark.slow
def test_a_second_run_changes_nothing(spark, first_run):
    settings, _, _ = first_run
    zones = ("curated", "quarantine", "labels", "predictions")
    snapshots = {z: tables.load_table(settings, z).current_snapshot().snapshot_id for z in zones}
    records = run_pipeline(settings, log=lambda *_: None)
    assert [r.status for r in records if r.stage == "infer"] == ["skipped", "skipped"]
    assert not [r for r in records if r.stage in ("ingest", "train")]
    assert {z: tables.load_table(settings, z).current_snapshot().snapshot_id for z in zones} == snapshots  # no commit


@pytest.mark.slow
def test_a_batch_missing_a_column_is_blocked_before_inference(spark, first_run, tmp_path, capsys):
    settings, _, _ = first_run
    bad = tmp_path / "no_text.csv"
    bad.write_text(",Title,Rating\n1,Nice,5\n2,Bad,1\n")
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--mlflow-artifact-root", settings.mlflow_artifact_root, "--date", "2026-11-09"]
    assert cli.main(["land", "--file", str(bad), *flags]) == 0
    assert cli.main(["ingest", *flags]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expect_column_values_to_be_null(missing_columns)" in err[0] and "blocked" in err[0]
    assert "Review Text" in err[0] and "data_docs/index.html" in err[0]
    lake = Lake(settings)
    assert "2026-11-09" not in lake.dates("curated")
    assert storage.list_files(lake.partition("raw", "2026-11-09"))  # raw kept for re-processing
    assert cli.main(["infer", *flags]) == 2  # nothing curated: inference does not run
    runs = runlog.records(settings)
    assert {"stage": "ingest", "status": "blocked"}.items() <= next(
        r for r in runs if r["ingest_date"] == "2026-11-09" and r["stage"] == "ingest").items()


@pytest.mark.slow
def test_planted_personal_data_stays_in_the_lakes_tables(first_run):
    """The planted e-mail address and phone number are in the curated and quarantine tables (their place)
    and nowhere else: not in run records, validation results, Data Docs, MLflow (database and
    artifacts), reports, logs or what the run printed."""
    settings, _, lines = first_run
    lake = Lake(settings)
    curated = table_rows(settings, "curated", DATES[0])
    quarantine = table_rows(settings, "quarantine", DATES[0])
    assert curated.text.str.contains(EMAIL, regex=False).sum() == 1
    assert quarantine.rating_raw.eq(EMAIL).sum() == 1
    kept = {lake.zone("raw")} | {os.path.join(settings.path("lake_root"), settings.lake_schema, z, "data")
                                 for z in ("curated", "quarantine", "duplicates", "labels")}  # the tables' data files
    places = [settings.path("lake_root"), settings.path("mlflow_artifact_root"), settings.path("reports_dir"),
              settings.path("log_dir"), settings.mlflow_uri[len("sqlite:///"):]]
    searched, found = 0, []
    for place in places:
        files = [place] if os.path.isfile(place) else [os.path.join(r, f) for r, _, fs in os.walk(place) for f in fs]
        for path in files:
            if any(path.startswith(t + os.sep) for t in kept):
                continue
            searched += 1
            data = open(path, "rb").read()
            if EMAIL.encode() in data or PHONE.encode() in data:
                found.append(path)
    assert searched > 50 and found == []
    assert not [line for line in lines if EMAIL in line or PHONE in line]

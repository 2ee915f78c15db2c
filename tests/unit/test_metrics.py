"""Metric rows (spark_jobs/metrics.py): what a stage run and a report publish, and the lake table they
land in. CloudWatch itself is exercised against a moto server in tests/aws/test_monitoring_aws.py."""
from __future__ import annotations


import pytest

from spark_jobs import metrics, tables
from spark_jobs.runlog import RunRecord


def record(stage="ingest", status="succeeded", **fields) -> RunRecord:
    values = dict(stage=stage, ingest_date="2026-11-01", status=status, seconds=10.0, ended_at="2026-11-02T08:00:00.000+00:00")
    values.update(fields)
    return RunRecord(**values)


def by_metric(rows) -> dict[str, metrics.MetricRow]:
    return {r.metric: r for r in rows}


def test_an_ingest_run_publishes_its_counts_and_shares():
    rows = by_metric(metrics.of_record(record(rows_in=200, rows_out=170, rows_rejected=20, rows_duplicate=10)))
    assert rows["quarantine_share"].value == 0.1 and rows["quarantine_share"].section == "integrity"
    assert rows["duplicate_share"].value == 0.05
    assert rows["seconds"].unit == "Seconds" and rows["rows_in"].unit == "Count" and rows["failed"].value == 0
    assert rows["rows_per_second"].value == 17 and rows["rows_per_second"].unit == "Count/Second"
    assert {r.producer for r in rows.values()} == {"ingest"} and "rows_lost" not in rows


def test_a_scoring_run_publishes_its_flags_and_a_failed_run_says_so():
    rows = by_metric(metrics.of_record(record("infer", rows_in=5, rows_out=5, model_name="m", model_version="3",
                                              outputs={"flags": {"long_text": 2, "non_english": 1}})))
    assert rows["flagged_long_text"].value == 2 and rows["flagged_long_text"].section == "outputs"
    assert rows["flagged_non_english"].model_version == "3"
    failed = by_metric(metrics.of_record(record("report", status="failed")))
    assert failed["failed"].value == 1 and "rows_per_second" not in failed


def test_a_skipped_run_measured_nothing():
    assert metrics.of_record(record("infer", status="skipped")) == []


def test_a_training_run_publishes_its_test_scores():
    rows = by_metric(metrics.of_record(record("train", outputs={"accuracy": 0.8, "macro_f1": 0.6})))
    assert rows["test_macro_f1"].value == 0.6 and rows["test_accuracy"].section == "quality"


FIGURES = {"run_date": "2026-11-04", "model_name": "review_sentiment", "model_version": 2,
           "integrity": {"landed": 300, "quarantine_share": 0.0, "top_reasons": None, "gx_warnings": ["x"]},
           "outputs": {"label_shares": {"negative": 0.9, "positive": 0.1}, "flags": {"non_english": 9}},
           "drift": {"oov_rate": 0.32, "psi_confidence": None, "unseen_tokens": ["united"],
                     "segments": [{"segment": "department", "source": "reviews", "value": "Tops", "n_documents": 40,
                                   "n_baseline_documents": 80, "label_js": 0.2, "psi_confidence": 0.1},
                                  {"segment": "product", "source": "reviews", "value": "1078", "n_documents": 31,
                                   "n_baseline_documents": 60, "label_js": 0.1, "psi_confidence": 0.05}]},
           "quality": {"precision": {"negative": 0.5}, "macro_f1": None},
           "pipeline": {"run_seconds": 40.0, "stage_seconds": {"ingest": 40.0}, "emr_profile": "gpu"}}
PAYLOAD = {"alerts": [
    {"severity": "critical", "section": "drift", "metric": "oov_rate", "value": 0.32, "threshold": 0.2,
     "message": "out-of-vocabulary rate 0.32 > 0.2"},
    {"severity": "warning", "section": "integrity", "metric": "gx_warning", "value": 7.0, "threshold": None,
     "message": "Great Expectations warning expect_x(title): 7 of 300 rows"}]}


def test_a_report_publishes_each_number_per_label_per_segment_and_its_alerts():
    rows = metrics.of_report(FIGURES, PAYLOAD, "r1", "2026-11-05T08:00:00.000+00:00")
    keyed = {(r.metric, r.label, r.department, r.product_id): r for r in rows}
    assert keyed[("landed", None, None, None)].value == 300 and keyed[("landed", None, None, None)].unit == "Count"
    assert keyed[("label_share", "negative", None, None)].value == 0.9
    assert keyed[("precision", "negative", None, None)].section == "quality"
    assert keyed[("label_js", None, "Tops", None)].source == "reviews"
    assert keyed[("label_js", None, None, "1078")].value == 0.1
    oov = keyed[("oov_rate", None, None, None)]
    assert (oov.severity, oov.threshold, oov.message) == ("critical", 0.2, "out-of-vocabulary rate 0.32 > 0.2")
    gx = keyed[("gx_warning", None, None, None)]
    assert gx.value == 7 and gx.severity == "warning" and gx.section == "integrity"
    # nothing that is not a number: no None figure, no list, no text
    assert ("psi_confidence", None, None, None) not in keyed and ("macro_f1", None, None, None) not in keyed
    assert all(r.producer == "report" and r.model_version == "2" and r.ingest_date == "2026-11-04" for r in rows)
    assert len(rows) == len(keyed)


def test_cloudwatch_gets_the_batch_and_department_figures_not_the_products():
    rows = metrics.of_report(FIGURES, PAYLOAD, "r1", "2026-11-05T08:00:00.000+00:00")
    datums = metrics.datums(rows)
    dims = {(d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])) for d in datums}
    assert ("oov_rate", (("Stage", "report"),)) in dims
    assert ("label_js", (("Stage", "report"), ("Source", "reviews"), ("Department", "Tops"))) in dims
    assert ("label_share", (("Stage", "report"), ("Label", "negative"))) in dims
    assert len(datums) == len([r for r in rows if not r.product_id])


def table_rows(settings):
    return tables.load_table(settings, "metrics").scan().to_arrow().to_pylist()


def test_the_table_holds_each_run_once_and_a_second_publish_replaces_it(settings):
    rows = metrics.of_report(FIGURES, PAYLOAD, "r1", "2026-11-05T08:00:00.000+00:00")
    first = metrics.publish(settings, rows)
    snapshot = tables.load_table(settings, "metrics").current_snapshot().snapshot_id
    again = metrics.publish(settings, rows)
    assert again == first == {"metrics_rows": len(rows)}  # no CloudWatch unless the setting says so
    stored = table_rows(settings)
    assert len(stored) == len(rows) and set(stored[0]) == set(metrics.COLUMNS)  # replaced, not appended
    assert {(r["producer"], r["ingest_date"], r["run_id"]) for r in stored} == {("report", "2026-11-04", "r1")}
    assert tables.load_table(settings, "metrics").current_snapshot().snapshot_id != snapshot  # one commit each


def test_every_stage_run_lands_in_the_table(settings):
    from spark_jobs.runlog import stage_run

    with pytest.raises(RuntimeError):
        with stage_run(settings, "infer", "2026-11-02") as rec:
            rec.rows_in = 3
            raise RuntimeError("boom")
    rows = {r["metric"]: r for r in table_rows(settings) if r["run_id"] == rec.run_id}
    assert rows["failed"]["value"] == 1 and rows["rows_in"]["value"] == 3 and rows["seconds"]["value"] >= 0

"""The report's sections (spark_jobs/report_sections.py) on tiny frames: what each computes, where each
threshold starts to alert (a value on the threshold does not, the next one up does), and that every value
put into HTML is escaped."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from spark_jobs import monitoring as M
from spark_jobs import report, report_sections as S
from spark_jobs.report_inputs import Lineage, Window, window_of
from spark_jobs.settings import load

WINDOW = Window("2026-11-03", ["2026-11-01", "2026-11-02"])
RULES = M.rules(report.thresholds_of(load(env={})))   # quarantine 0.1/0.2, low confidence 0.3/0.6, ...


def thresholds(**changes):
    return M.rules(report.thresholds_of(load(env={}, **changes)))


def severities(section: S.Section) -> dict[str, str]:
    return {a.metric: a.severity for a in section.alerts}


# --- the window --------------------------------------------------------------------------------------------
def test_the_window_is_the_earlier_scored_dates_up_to_baseline_days():
    scored = ["2026-10-30", "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert window_of(scored, "2026-11-03", 2) == WINDOW
    assert window_of(scored, "2026-11-03", 0).baseline == []
    assert window_of(scored, "2026-10-30", 7).dates == ["2026-10-30"]
    with pytest.raises(ValueError, match="no predictions for run_date 2026-11-05 .*dates scored: 2026-10-30"):
        window_of(scored, "2026-11-05", 7)


# --- 1. integrity ------------------------------------------------------------------------------------------
def quality_frame(quarantined_today: int, landed_today: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"d": WINDOW.dates, "landed": [100, 120, landed_today],
                         "curated": [90, 110, landed_today - quarantined_today - 1],
                         "quarantined": [9, 9, quarantined_today], "duplicates": [1, 1, 1],
                         "top_reasons": ["text_empty (9)", None, "text_empty (3)"]})


@pytest.mark.parametrize("quarantined, expected", [(10, None), (11, "warning"), (20, "warning"), (21, "critical")])
def test_quarantine_share_boundaries(quarantined, expected):
    section = S.integrity(quality_frame(quarantined), WINDOW, None, RULES)
    assert section.metrics["quarantine_share"] == quarantined / 100
    assert severities(section).get("quarantine_share") == expected


@pytest.mark.parametrize("landed, expected", [(165, None), (166, "warning"), (55, None), (54, "warning")])
def test_batch_size_change_boundaries(landed, expected):
    """Baseline median 110: a change of 0.5 (55 rows) is on the threshold, 56 rows over it."""
    section = S.integrity(quality_frame(0, landed), WINDOW, None, RULES)
    assert section.metrics["baseline_median_landed"] == 110
    assert severities(section).get("batch_size_change") == expected


def test_integrity_figures_and_gx_warnings():
    validation = {"results": [
        {"success": False, "expectation_config": {"type": "expect_column_values_to_not_be_null", "severity": "warning",
                                                  "kwargs": {"column": "title"}}, "result": {"unexpected_count": 7}},
        {"success": False, "expectation_config": {"type": "expect_table_row_count_to_be_between",
                                                  "severity": "critical", "kwargs": {}}, "result": {}},
        {"success": True, "expectation_config": {"type": "expect_column_value_lengths_to_be_between",
                                                 "severity": "warning", "kwargs": {"column": "text"}}, "result": {}}]}
    section = S.integrity(quality_frame(3), WINDOW, validation, RULES)
    assert section.metrics | {"gx_warnings": None} == {
        "landed": 100, "curated": 96, "quarantined": 3, "duplicates": 1, "baseline_median_landed": 110,
        "batch_size_change": pytest.approx(10 / 110, abs=1e-6), "quarantine_share": 0.03, "duplicate_share": 0.01,
        "top_reasons": "text_empty (3)", "gx_warnings": None}
    (gx,) = section.alerts
    assert (gx.severity, gx.metric, gx.value, gx.threshold) == ("warning", "gx_warning", 7.0, None)
    assert gx.message == "Great Expectations warning expect_column_values_to_not_be_null(title): 7 of 100 rows"
    assert section.status == "warning" and "3.0% quarantined" in section.verdict


def test_a_batch_missing_from_the_quality_mart_stops_the_section():
    with pytest.raises(ValueError, match="no ingest run for 2026-11-03"):
        S.integrity(quality_frame(0).iloc[:2], WINDOW, None, RULES)


def test_the_first_batch_has_no_baseline():
    section = S.integrity(quality_frame(0).iloc[2:], Window("2026-11-03", []), None, RULES)
    assert section.metrics["batch_size_change"] is None and "no baseline yet" in section.verdict


# --- 2. outputs --------------------------------------------------------------------------------------------
def predictions(day_confidences, day_labels=None, base_labels=("positive", "negative") * 10, dept="Tops"):
    rows = [{"d": d, "source": "reviews", "department": dept, "product_id": "p1", "label": label, "confidence": 0.9}
            for d in WINDOW.baseline for label in base_labels]
    day_labels = day_labels or ["positive"] * len(day_confidences)
    rows += [{"d": WINDOW.run_date, "source": "reviews", "department": dept, "product_id": "p1", "label": label,
              "confidence": c} for c, label in zip(day_confidences, day_labels)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("low, expected", [(3, None), (4, "warning"), (6, "warning"), (7, "critical")])
def test_low_confidence_share_boundaries(low, expected):
    """10 predictions, `low` of them below the 0.5 cut (0.5 itself is not low)."""
    section = S.outputs(predictions([0.2] * low + [0.5] * (10 - low)), WINDOW, {}, RULES, 0.5)
    assert section.metrics["low_confidence_share"] == low / 10
    assert severities(section).get("low_confidence_share") == expected


def test_outputs_figures():
    section = S.outputs(predictions([0.9, 0.4, 0.8, 0.7], ["positive", "negative", "positive", "neutral"]),
                        WINDOW, {"long_text": 2}, RULES, 0.5)
    m = section.metrics
    assert m["n_predictions"] == 4 and m["mean_confidence"] == pytest.approx(0.7)
    assert m["label_shares"] == {"negative": 0.25, "neutral": 0.25, "positive": 0.5}
    assert m["baseline_label_shares"] == {"negative": 0.5, "neutral": 0.0, "positive": 0.5}
    assert m["flags"] == {"long_text": 2} and "flagged: long_text 2" in section.verdict
    assert list(section.plot["shares"].index) == WINDOW.baseline + ["baseline", WINDOW.run_date]


# --- 3. drift ----------------------------------------------------------------------------------------------
def documents(day_texts, base_texts):
    rows = [{"d": d, "text": t, "text_hash": f"{d}{i}"} for d in WINDOW.baseline for i, t in enumerate(base_texts)]
    rows += [{"d": WINDOW.run_date, "text": t, "text_hash": f"x{i}"} for i, t in enumerate(day_texts)]
    return pd.DataFrame(rows)


def test_drift_is_near_zero_for_the_same_texts_and_critical_for_others():
    rng = np.random.default_rng(3)
    words = ["dress", "fits", "soft", "lovely", "size", "fabric", "colour", "small", "large", "wash"]
    reviews = [" ".join(rng.choice(words, size=int(rng.integers(4, 30)))) for _ in range(200)]
    same_preds = predictions(list(rng.uniform(0.5, 1, 200)), base_labels=["positive"] * 200)
    same_preds.loc[same_preds.d != WINDOW.run_date, "confidence"] = rng.uniform(0.5, 1, 400)
    training = pd.DataFrame({"d": "2026-11-01", "text": reviews, "text_hash": [str(i) for i in range(200)]})
    same = S.drift(same_preds, documents(reviews, reviews), training, WINDOW, RULES)
    assert same.alerts == [] and same.metrics["oov_rate"] == 0 and same.metrics["token_js"] == 0
    assert same.metrics["embedding_distance"] is None   # no embedder given

    tweets = ["@united flight delayed again, lost my bag"] * 200
    other = predictions([0.4] * 200, ["negative"] * 200, base_labels=["positive"] * 200)
    drifted = S.drift(other, documents(tweets, reviews), training, WINDOW, RULES,
                      embed=lambda texts: np.array([[1.0, 0.0] if "@" in t else [0.0, 1.0] for t in texts]))
    got = severities(drifted)
    assert got == dict.fromkeys(["psi_confidence", "psi_text_length", "label_js", "token_js", "oov_rate",
                                 "embedding_distance"], "critical")
    assert drifted.metrics["embedding_distance"] == pytest.approx(1.0)
    assert drifted.metrics["unseen_tokens"][:3] == ["again", "bag", "delayed"]   # 200 each: alphabetical
    assert drifted.plot["projection"] is not None
    assert same.metrics["n_texts_read"] == 200 and S.text_sample_html(*same.plot["texts"]) == ""


def test_drift_says_when_its_text_statistics_come_from_a_sample_of_the_day():
    """report_inputs.load reads at most report_text_sample texts of a date: the section counts what it
    read against the day's predictions, and says so."""
    texts = [f"soft dress number {i}" for i in range(50)]
    preds = predictions([0.9] * 200)
    section = S.drift(preds, documents(texts, texts), documents(texts, [])[:0], WINDOW, RULES)
    assert section.metrics["n_texts_read"] == 50 and section.plot["texts"] == (50, 200)
    assert S.text_sample_html(*section.plot["texts"]) == (
        "<p>Text statistics from 50 of the day's 200 texts: the first by text hash, the same texts on every run "
        "(setting report_text_sample).</p>")


def test_drift_without_a_baseline_or_training_dates_measures_what_it_can():
    docs = documents(["nice dress"], [])
    section = S.drift(predictions([0.9]).query("d == '2026-11-03'"), docs, docs.iloc[:0], WINDOW, RULES)
    assert all(section.metrics[k] is None for k in S.DRIFT_STATISTICS) and section.alerts == []


def segment_predictions(n_day: int, n_base: int, department="Tops", product="p1", source="reviews"):
    rows = [{"d": WINDOW.baseline[0], "source": source, "department": department, "product_id": product,
             "label": "positive", "confidence": 0.9}] * n_base
    rows += [{"d": WINDOW.run_date, "source": source, "department": department, "product_id": product,
              "label": "negative", "confidence": 0.6}] * n_day
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_day, n_base, kept", [(30, 30, True), (29, 30, False), (30, 29, False)])
def test_segments_need_min_rows_on_the_day_and_in_the_baseline(n_day, n_base, kept):
    found = S.segment_drift(segment_predictions(n_day, n_base), WINDOW, 30)
    assert [(s["segment"], s["value"]) for s in found] == ([("department", "Tops"), ("product", "p1")] if kept else [])


def test_segments_are_ranked_and_keep_sources_apart():
    frame = pd.concat([segment_predictions(40, 40, "Tops", "p1"),
                       segment_predictions(40, 40, None, None, source="tweets"),
                       segment_predictions(40, 40, "Dresses", "p2").assign(
                           label=lambda f: np.where(f.d == WINDOW.run_date, "positive", "positive"))])
    found = S.segment_drift(frame, WINDOW, 30)
    keys = [(s["segment"], s["source"], s["value"]) for s in found]
    # tweets without department are one '(none)' segment; products without an id are no segment
    assert ("department", "tweets", "(none)") in keys and not any(k[1] == "tweets" and k[0] == "product" for k in keys)
    assert found[-1]["label_js"] == 0 and found[0]["label_js"] == pytest.approx(1.0)
    assert [s["label_js"] for s in found] == sorted((s["label_js"] for s in found), reverse=True)


def test_a_segment_is_measured_on_its_own_rows_when_earlier_rows_lack_the_key():
    """Baseline rows without a product id come first: the product's figures are still its own rows'
    (the grouping once took positions counted without those rows from the frame that had them)."""
    nameless = segment_predictions(0, 40, "Tops", None).assign(label="neutral", confidence=0.1)
    frame = pd.concat([nameless, segment_predictions(40, 40, "Tops", "p1").assign(label="positive")],
                      ignore_index=True)
    (product,) = [s for s in S.segment_drift(frame, WINDOW, 30) if s["segment"] == "product"]
    assert (product["value"], product["n_documents"], product["n_baseline_documents"]) == ("p1", 40, 40)
    assert product["label_js"] == 0
    assert product["psi_confidence"] == pytest.approx(M.psi([0.9] * 40, [0.6] * 40), abs=1e-6)


# --- 4. quality --------------------------------------------------------------------------------------------
def performance(macro_f1: float) -> pd.DataFrame:
    return pd.DataFrame({"d": [WINDOW.run_date], "model_version": [3], "scored_as": ["champion"], "n_labelled": [50],
                         "accuracy": [0.8], "macro_f1": [macro_f1]})


CONFUSION = pd.DataFrame({"true_label": ["negative", "negative", "positive", "positive", "neutral"],
                          "predicted_label": ["negative", "positive", "positive", "negative", "positive"],
                          "n": [3, 1, 5, 2, 2]})


@pytest.mark.parametrize("macro_f1, expected", [(0.55, None), (0.549, "warning"), (0.45, "warning"), (0.449, "critical")])
def test_macro_f1_drop_boundaries(macro_f1, expected):
    """Test macro-F1 0.6: a drop of 0.05 warns when exceeded, 0.15 is critical when exceeded."""
    section = S.quality(performance(macro_f1), CONFUSION, pd.DataFrame(columns=["d"]), WINDOW, 3, 0.6, RULES)
    assert section.metrics["macro_f1_drop"] == pytest.approx(0.6 - macro_f1)
    assert severities(section).get("macro_f1_drop") == expected


def test_per_class_scores_match_scikit_learn():
    truth = [t for t, n in zip(CONFUSION.true_label, CONFUSION.n) for _ in range(n)]
    predicted = [p for p, n in zip(CONFUSION.predicted_label, CONFUSION.n) for _ in range(n)]
    got = S.per_class(CONFUSION, ["negative", "neutral", "positive"])
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        want = fn(truth, predicted, labels=["negative", "positive"], average=None, zero_division=0)
        assert [got[name]["negative"], got[name]["positive"]] == pytest.approx(list(want), abs=1e-6)
    assert "neutral" not in got["precision"] and got["recall"]["neutral"] == 0.0   # never predicted, once true


@pytest.mark.parametrize("agreement, expected", [(0.8, None), (0.79, "warning")])
def test_challenger_agreement_warns_below_its_threshold(agreement, expected):
    pairs = pd.DataFrame({"d": [WINDOW.run_date], "challenger_version": [4], "agreement_rate": [agreement],
                          "n_compared": [100], "champion_accuracy": [0.8], "challenger_accuracy": [0.7]})
    section = S.quality(performance(0.6), CONFUSION, pairs, WINDOW, 3, 0.6, RULES)
    assert section.metrics["challenger_version"] == 4 and severities(section).get("challenger_agreement") == expected


def test_a_sampled_shadow_says_what_share_of_the_day_it_scored():
    pairs = pd.DataFrame({"d": [WINDOW.run_date], "challenger_version": [4], "agreement_rate": [0.9],
                          "n_compared": [250], "champion_accuracy": [0.8], "challenger_accuracy": [0.7]})
    sampled = S.quality(performance(0.6), CONFUSION, pairs, WINDOW, 3, 0.6, RULES, n_scored=1000)
    assert sampled.metrics["challenger_sample_share"] == 0.25
    assert "agrees on 90% of 250 texts (the 25% of the day it scored in shadow: settings shadow_share, shadow_max_rows)" in sampled.verdict
    whole = S.quality(performance(0.6), CONFUSION, pairs, WINDOW, 3, 0.6, RULES, n_scored=250)
    assert "challenger_sample_share" not in whole.metrics and "shadow_share" not in whole.verdict


def test_quality_without_labels_says_so():
    section = S.quality(performance(0.6).iloc[:0], CONFUSION.iloc[:0], pd.DataFrame(columns=["d"]), WINDOW, 3, None,
                        RULES)
    assert section.metrics["macro_f1"] is None and section.metrics["macro_f1_drop"] is None
    assert section.plot["matrix"] is None and "no labels for 2026-11-03 yet" in section.verdict


# --- 5. pipeline health --------------------------------------------------------------------------------------
def runs(seconds_today=(60.0, 40.0), failed_message=None, retry=False) -> pd.DataFrame:
    rows = [{"stage": "ingest", "d": WINDOW.run_date, "status": "succeeded", "is_failure": False, "attempt": 1,
             "seconds": seconds_today[0], "rows_out": 1000.0, "rows_per_second": None, "message": None},
            {"stage": "infer", "d": WINDOW.run_date, "status": "succeeded", "is_failure": False, "attempt": 2 if retry else 1,
             "seconds": seconds_today[1], "rows_out": 1000.0, "rows_per_second": 100.0, "message": None},
            {"stage": "infer", "d": WINDOW.baseline[0], "status": "succeeded", "is_failure": False, "attempt": 1,
             "seconds": 10.0, "rows_out": 1000.0, "rows_per_second": 50.0, "message": None}]
    if failed_message:
        rows.append({"stage": "report", "d": WINDOW.run_date, "status": "failed", "is_failure": True, "attempt": 1,
                     "seconds": 1.0, "rows_out": None, "rows_per_second": None, "message": failed_message})
    frame = pd.DataFrame(rows)
    return frame.astype({"is_failure": "boolean", "attempt": "Int64"})


def test_health_figures_and_the_one_cost_function():
    section = S.health(runs(retry=True), WINDOW, (3.6, 0.5), "gpu", "local", RULES)
    m = section.metrics
    assert m["run_seconds"] == 100 and m["stage_seconds"] == {"infer": 40.0, "ingest": 60.0}
    assert m["infer_rows_per_second"] == 100 and m["retries"] == 1 and m["failed_runs"] == 0
    assert m["emr_dollars_per_million_texts"] == pytest.approx(M.dollars_per_million(3.6, 100), abs=0.01) == 10.0
    assert m["emr_dollars_per_run_overhead"] == 1.8
    assert section.alerts == [] and "(1 after a retry)" in section.verdict


@pytest.mark.parametrize("seconds, expected", [(7200.0, None), (7200.5, "warning")])
def test_run_seconds_budget_boundary(seconds, expected):
    section = S.health(runs((seconds - 40.0, 40.0)), WINDOW, (3.6, 0.5), "gpu", "local", RULES)
    assert severities(section).get("run_seconds") == expected


@pytest.mark.parametrize("per_hour, expected", [(18.0, None), (18.01, "warning")])
def test_cost_per_million_texts_boundary(per_hour, expected):
    """100 texts/s: $18/h is $50 per million texts, the default warning."""
    section = S.health(runs(), WINDOW, (per_hour, 0.5), "gpu", "emr", RULES)
    assert severities(section).get("emr_dollars_per_million_texts") == expected


def test_failed_runs_are_an_event_alert_naming_the_stage():
    section = S.health(runs(failed_message="KeyError: 'x'"), WINDOW, (3.6, 0.5), "gpu", "local", RULES)
    (alert,) = section.alerts
    assert alert.metric == "failed_runs" and alert.threshold is None
    assert alert.message == "1 failed stage run(s) for this batch: report (KeyError: 'x')"
    assert list(section.plot["troubles"].stage) == ["infer", "report"][-1:]


# --- the day, and the HTML ------------------------------------------------------------------------------------
LINEAGE = Lineage("review_sentiment", 3, {"pipeline": "tfidf_logreg", "training_dates": "2026-11-01,2026-11-02",
                                          "test_macro_f1": "0.6"}, None)


def test_figures_and_payload_keep_the_files_shape():
    sections = [S.outputs(predictions([0.9, 0.2]), WINDOW, {}, RULES, 0.5),
                S.quality(performance(0.4), CONFUSION, pd.DataFrame(columns=["d"]), WINDOW, 3, 0.6, RULES)]
    figures = S.figures(WINDOW, LINEAGE, sections)
    assert figures["training_dates"] == ["2026-11-01", "2026-11-02"] and figures["model_version"] == 3
    assert figures["n_predictions"] == 2 and figures["share_low_confidence"] == 0.5
    alerts = S.alerts_of(sections)
    assert [a.severity for a in alerts] == ["critical", "warning"]   # critical first
    payload = S.payload(WINDOW, LINEAGE, alerts)
    assert payload["status"] == "critical" and payload["alerts"][0]["metric"] == "macro_f1_drop"


class Tags(HTMLParser):
    def __init__(self, markup: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


PLANT = '<img src=x onerror="alert(1)" data-planted="1"><script data-planted="1">alert(2)</script>'


def planted(markup: str) -> list:
    return [(tag, attrs) for tag, attrs in Tags(markup).tags if "data-planted" in attrs or "onerror" in attrs
            or tag == "script"]


def test_every_value_put_into_html_is_escaped():
    lineage = Lineage(f"model{PLANT}", 3, {"pipeline": PLANT, "training_dates": "2026-11-01"},
                      {"version": 4, "trigger_date": "2026-11-03", "reason": PLANT, "aliases": [PLANT]})
    alert = M.Alert("critical", "pipeline", "failed_runs", 1.0, None, PLANT)
    section = S.Section("pipeline", {}, [alert], PLANT)
    quiet = S.Section("drift", {}, [], PLANT)
    markup = "".join([
        S.header_html(WINDOW, lineage), S.summary_html([section, quiet]), S.verdict_html(section),
        S.verdict_html(quiet), S.alerts_html([alert]), S.words_html([(PLANT, 3)]),
        S.table_html(pd.DataFrame({"message": [PLANT]})), S.badge("ok", PLANT), S.badge("warning", PLANT, bold=True),
        S.segments_html([{"segment": "product", "source": PLANT, "value": PLANT, "n_documents": 1,
                          "n_baseline_documents": 1, "label_js": 0.1, "psi_confidence": 0.1}])])
    assert markup.count("data-planted") == 2 * 14   # all 14 plants are there, as text
    assert planted(markup) == []
    assert planted(PLANT)   # the check finds the tags when they are live

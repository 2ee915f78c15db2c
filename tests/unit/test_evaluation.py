"""Evaluation arithmetic on hand-checked examples."""
import numpy as np
import pandas as pd
import pytest

from spark_jobs import evaluation, promotion


def frame(truth, label, confidence=None):
    df = pd.DataFrame({"review_id": [f"r{i}" for i in range(len(truth))], "truth": truth, "label": label})
    if confidence is not None:
        df["confidence"] = confidence
    return df


def test_metrics_on_a_small_hand_checked_case():
    df = frame(["positive", "positive", "negative", "neutral"], ["positive", "negative", "negative", "positive"],
               [0.9, 0.6, 0.8, 0.7])
    m = evaluation.metrics(df)
    assert m["accuracy"] == 0.5
    # positive: P=1/2 R=1/2 F=1/2; negative: P=1/2 R=1 F=2/3; neutral: 0
    assert m["f1_positive"] == pytest.approx(0.5) and m["f1_negative"] == pytest.approx(2 / 3)
    assert m["f1_neutral"] == 0 and m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert m["support_positive"] == 2


def test_calibration_error_weights_bins_by_size():
    # bin 0.9: two rows, one right -> |0.5 - 0.9| ; bin 0.6: one row, right -> |1 - 0.6|
    ece = evaluation.expected_calibration_error(np.array([0.9, 0.9, 0.6]), np.array([True, False, True]))
    assert ece == pytest.approx((2 * 0.4 + 1 * 0.4) / 3)
    assert evaluation.expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0


def test_confusion_rows_are_truth_columns_predictions():
    m = evaluation.confusion(frame(["negative", "negative", "positive"], ["positive", "negative", "positive"]))
    assert m.loc["negative", "positive"] == 1 and m.loc["negative", "negative"] == 1 and m.to_numpy().sum() == 3


def test_vader_reads_obvious_sentiment():
    got = evaluation.vader_predictions(pd.Series(["I love this, it is wonderful!", "Awful, terrible, I hate it.",
                                                 "It is a dress."]))
    assert list(got["label"]) == ["positive", "negative", "neutral"]


def test_compare_reports_differences_and_disagreements_on_shared_rows():
    truth = ["positive", "negative", "neutral", "positive"]
    candidate = frame(truth, ["positive", "negative", "neutral", "negative"], [0.9] * 4)
    champion = frame(truth, ["positive", "positive", "positive", "positive"], [0.9] * 4)
    report = evaluation.compare(candidate, champion)
    assert report["rows"] == 4 and report["agreement"] == 0.25
    assert report["difference"]["accuracy"] == 0.25  # 3/4 right against 2/4
    assert {d["review_id"] for d in report["disagreements"]} == {"r1", "r2", "r3"}
    md = evaluation.report_markdown(report, "promoted")
    assert "| macro_f1 |" in md and "| r1 | negative | negative | positive |" in md
    assert "text" not in str(report["disagreements"])  # ids only: texts never go into the registry


@pytest.mark.parametrize("candidate, champion, margin, expected", [
    (0.66, 0.65, 0.005, True), (0.654, 0.65, 0.005, False), (0.655, 0.65, 0.005, True), (0.60, 0.65, 0.0, False),
])
def test_promotion_needs_the_margin(candidate, champion, margin, expected):
    assert promotion.passes(candidate, champion, margin) is expected

"""The retraining policy (spark_jobs/retrain.decide) on numbers: which alerts start it, and each
boundary of its window, minimum of labelled rows and cooldown."""
from __future__ import annotations

import pytest

from spark_jobs import retrain
from spark_jobs.settings import SettingsError, load

DECAY = {"severity": "critical", "section": "quality", "metric": "macro_f1_drop", "value": 0.4, "threshold": 0.15,
         "message": "macro-F1 below the test macro-F1 by 0.4 > 0.15"}
ON = ["macro_f1_drop", "oov_rate"]
LABELLED = {"2026-10-20": 500, "2026-10-30": 100, "2026-11-01": 50, "2026-11-04": 0, "2026-11-06": 60}


def decide(alerts=(DECAY,), labelled=None, last=None, window=7, history=0, min_rows=100, cooldown=7,
           date="2026-11-06") -> retrain.Decision:
    return retrain.decide(date, list(alerts), ON, LABELLED if labelled is None else labelled, last, window, history,
                          min_rows, cooldown)


def test_a_critical_alert_on_a_retrain_metric_retrains_on_the_window_and_the_history():
    d = decide()
    assert d.retrain and d.dates == ("2026-10-20", "2026-10-30", "2026-11-01", "2026-11-06")
    assert d.tags == {"retrain_reason": "critical macro_f1_drop 0.4 > 0.15 in the report of 2026-11-06",
                      "retrain_trigger_date": "2026-11-06", "retrain_alerts": "macro_f1_drop",
                      "retrain_window": "2026-10-31..2026-11-06"}
    assert d.reason.startswith("critical macro_f1_drop 0.4 > 0.15 in the report of 2026-11-06: training on 2 window")


@pytest.mark.parametrize("alert", [dict(DECAY, severity="warning"), dict(DECAY, metric="psi_confidence")])
def test_warnings_and_other_metrics_do_not_retrain(alert):
    d = decide([alert])
    assert not d.retrain and d.reason == "no critical alert on macro_f1_drop, oov_rate in the report of 2026-11-06"


def test_a_date_without_labels_never_triggers_training_on_itself():
    d = decide(date="2026-11-04")
    assert not d.retrain and "2026-11-04 has no labelled rows" in d.reason and d.triggers == (DECAY,)


@pytest.mark.parametrize("last, retrains", [("2026-10-30", True), ("2026-10-31", False), ("2026-11-06", False)])
def test_cooldown_boundary(last, retrains):
    """Cooldown 7 days: a retraining started by 2026-10-30 (7 days before) no longer blocks one."""
    d = decide(last=last)
    assert d.retrain == retrains
    if not retrains:
        assert f"started by {last}, within the cooldown of 7 days" in d.reason


@pytest.mark.parametrize("min_rows, retrains", [(110, True), (111, False)])
def test_minimum_labelled_rows_in_the_window_boundary(min_rows, retrains):
    """The window 2026-10-31..2026-11-06 holds 50 + 60 = 110 labelled rows."""
    d = decide(min_rows=min_rows)
    assert d.retrain == retrains
    if not retrains:
        assert "holds 110 labelled rows, fewer than retrain_min_labelled_rows=111" in d.reason


@pytest.mark.parametrize("window, first", [(7, "2026-11-01"), (8, "2026-10-30"), (6, "2026-11-01")])
def test_window_boundary(window, first):
    d = decide(window=window, min_rows=1)
    assert d.tags["retrain_window"].split("..")[0] <= first
    window_dates = [x for x in d.dates if x >= d.tags["retrain_window"].split("..")[0]]
    assert window_dates[0] == first


@pytest.mark.parametrize("history, dates", [(0, ("2026-10-20", "2026-10-30")), (1, ("2026-10-30",)),
                                            (10, ("2026-10-30",)), (11, ("2026-10-20", "2026-10-30"))])
def test_history_days_boundary(history, dates):
    d = decide(history=history)
    assert d.dates[:-2] == dates


def test_retrain_on_must_name_alert_metrics():
    retrain.check(load(env={}))
    with pytest.raises(SettingsError, match="setting retrain_on: psi_confidenc is no metric"):
        retrain.check(load(env={}, retrain_on="psi_confidenc,oov_rate"))

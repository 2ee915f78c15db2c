"""Metrics out, the stack's alarms and its dashboard, on the moto server of this folder.

The jobs publish with the project's own code (spark_jobs.metrics.publish, CloudWatch on) into the
deployed stack's namespace; GetMetricData returns the figures. moto stores alarms but never evaluates
them, and its CloudFormation skips AWS::CloudWatch::Alarm: so the test reads each alarm the template
defines, with the deployed stack's parameters, applies its metric, dimensions, statistic, period,
comparison and threshold to what GetMetricData returns, and creates it in moto. An alarm in ALARM state
notifies its AlarmActions; moto does not deliver that either, so the test delivers the notification as
CloudWatch would to the topic the alarm names, and the inbox subscribed to the stack's topic receives it.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from nlp_emr import launcher, template
from spark_jobs import metrics, tables
from spark_jobs import monitoring as M
from spark_jobs.report import thresholds_of
from spark_jobs.runlog import RunRecord
from spark_jobs.vocabulary import Stage
from tests.aws.conftest import BUCKET, client

HOUR = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
CALM, DRIFTED, DECAYED = (HOUR - dt.timedelta(hours=h) for h in (3, 2, 1))


def figures(date: str, **values) -> dict:
    """A report's metrics.json with these section values (the rest calm)."""
    calm = {"integrity": {"landed": 300, "quarantine_share": 0.01},
            "outputs": {"low_confidence_share": 0.05, "mean_confidence": 0.8,
                        "label_shares": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}},
            "drift": {"psi_confidence": 0.02, "psi_text_length": 0.03, "label_js": 0.05, "token_js": 0.1,
                      "oov_rate": 0.01, "embedding_distance": 0.01,
                      "segments": [{"segment": "department", "source": "reviews", "value": "Tops", "n_documents": 40,
                                    "n_baseline_documents": 80, "label_js": 0.3, "psi_confidence": 0.1}]},
            "quality": {"accuracy": 0.8, "macro_f1": 0.6, "macro_f1_drop": 0.0, "challenger_agreement": 0.9,
                        "precision": {"negative": 0.5}, "recall": {"negative": 0.4}},
            "pipeline": {"run_seconds": 600.0, "emr_dollars_per_million_texts": 12.0}}
    for key, value in values.items():
        section = next(s for s, v in calm.items() if key in v)
        calm[section][key] = value
    return {"run_date": date, "model_name": "review_sentiment", "model_version": 1, **calm}


DRIFT = dict(psi_confidence=3.24, psi_text_length=7.67, label_js=0.201, token_js=0.502, oov_rate=0.32,
             embedding_distance=0.855)   # the tweet day of tests/report
DECAY = dict(macro_f1_drop=0.4, run_seconds=9000.0, emr_dollars_per_million_texts=80.0)


def alerts_of(fig: dict, rules) -> list[dict]:
    """alerts.json as the report computes it (monitoring.evaluate on each section's figures)."""
    return [a.as_dict() for section in ("integrity", "outputs", "drift", "quality", "pipeline")
            for a in M.evaluate(fig[section], [r for r in rules if r.section == section])]


def resolver(stack: dict, outputs: dict):
    """The template's intrinsics as the deployed stack resolves them (Ref of a parameter or the topic, Sub)."""
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    refs = {**params, "Topic": outputs["TopicArn"], "PipelineStateMachine": outputs["PipelineStateMachineArn"],
            "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}

    def resolve(node):
        if isinstance(node, list):
            return [resolve(v) for v in node]
        if isinstance(node, dict) and list(node) == ["Ref"]:
            return refs[node["Ref"]]
        if isinstance(node, dict) and list(node) == ["Fn::Sub"]:
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(refs[m.group(1)]), node["Fn::Sub"])
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        return node
    return resolve


@pytest.fixture(scope="module")
def published(stack, tmp_path_factory):
    """Three hours of figures published by the project's code: a calm day, a drifted day (the tweet day's
    drift) and a decayed, slow and costly day whose ingest quarantined 30 % of its batch."""
    from tests.aws.conftest import settings_under

    deployment, inbox = stack
    settings = settings_under(tmp_path_factory.mktemp("metrics"), lake_root=f"s3a://{BUCKET}/lake", lake_catalog="glue",
                              cloudwatch_metrics=True, cloudwatch_namespace=deployment.name)
    rules = M.rules(thresholds_of(settings))
    days = {}
    for hour, date, values in ((CALM, "2026-11-01", {}), (DRIFTED, "2026-11-04", DRIFT),
                               (DECAYED, "2026-11-06", DECAY)):
        fig = figures(date, **values)
        days[hour] = alerts_of(fig, rules)
        at = (hour + dt.timedelta(minutes=20)).isoformat(timespec="milliseconds")
        rows = metrics.of_report(fig, {"alerts": days[hour]}, f"report-{date}", at)
        rejected = 90 if hour == DECAYED else 3
        ingest = RunRecord(stage="ingest", ingest_date=date, run_id=f"ingest-{date}", status="succeeded",
                           seconds=30.0, ended_at=(hour + dt.timedelta(minutes=5)).isoformat(timespec="milliseconds"),
                           rows_in=300, rows_out=300 - rejected, rows_rejected=rejected, rows_duplicate=0)
        if hour == DECAYED:
            days[hour].append({"severity": "critical", "metric": "quarantine_share"})   # as the report would say
        out = metrics.publish(settings, rows + metrics.of_record(ingest))
        assert out["cloudwatch_datums"] == len(metrics.datums(rows + metrics.of_record(ingest)))
    others = [metrics.of_record(RunRecord(stage=s, ingest_date="2026-11-06", status="succeeded", seconds=5.0,
                                          ended_at=DECAYED.isoformat(timespec="milliseconds")))
              for s in Stage if s not in ("ingest", "report")]
    metrics.publish(settings, [r for rows in others for r in rows])
    return deployment, inbox, settings, days


def get(metric: str, dims: list[dict], stat: str = "Maximum", period: int = 3600) -> dict:
    res = client("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": "nlp-batch", "MetricName": metric,
                                                                 "Dimensions": dims}, "Period": period, "Stat": stat}}],
        StartTime=CALM - dt.timedelta(hours=1), EndTime=HOUR + dt.timedelta(hours=1))["MetricDataResults"][0]
    return {t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t: v
            for t, v in zip(res["Timestamps"], res["Values"])}


def test_the_metrics_land_in_cloudwatch(published):
    settings = published[2]
    got = get("oov_rate", [{"Name": "Stage", "Value": "report"}])
    assert got == {CALM: 0.01, DRIFTED: 0.32, DECAYED: 0.01}
    assert get("quarantine_share", [{"Name": "Stage", "Value": "ingest"}])[DECAYED] == pytest.approx(0.3)
    tops = get("label_js", [{"Name": "Stage", "Value": "report"}, {"Name": "Source", "Value": "reviews"},
                            {"Name": "Department", "Value": "Tops"}])
    assert tops == {CALM: 0.3, DRIFTED: 0.3, DECAYED: 0.3}
    assert get("label_share", [{"Name": "Stage", "Value": "report"}, {"Name": "Label", "Value": "negative"}])
    # and in the lake's metrics table (Iceberg, in the stack's Glue database, its files on S3), the same rows
    rows = tables.load_table(settings, "metrics").scan().to_arrow().to_pylist()
    assert {r["ingest_date"] for r in rows if r["producer"] == "report"} >= {"2026-11-01", "2026-11-04"}
    assert {r["value"] for r in rows if r["metric"] == "oov_rate"} == {0.01, 0.32}
    assert client("s3").list_objects_v2(Bucket=BUCKET, Prefix="lake/nlp_lake/metrics/data/")["KeyCount"] > 0


def test_the_stacks_alarms_fire_on_the_hours_whose_report_alerts_and_reach_sns(published):
    deployment, inbox, settings, days = published
    stack = deployment.stack()
    resolve = resolver(stack, deployment.outputs())
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {k: float(params[k]) for k in launcher.ALARM_THRESHOLDS} == {
        k: getattr(settings, v) for k, v in launcher.ALARM_THRESHOLDS.items()}   # the report's thresholds
    alarms = [resolve(r["Properties"]) for r in template.synthesize()["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and resolve(r["Properties"])["Namespace"] == "nlp-batch"]
    assert len(alarms) == 10
    cw = client("cloudwatch")
    fired: dict[dt.datetime, set[str]] = {CALM: set(), DRIFTED: set(), DECAYED: set()}
    for alarm in alarms:
        assert alarm["AlarmActions"] == [deployment.outputs()["TopicArn"]]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["EvaluationPeriods"] == 1
        values = get(alarm["MetricName"], alarm["Dimensions"], alarm["Statistic"], alarm["Period"])
        assert values, f"{alarm['AlarmName']}: no data for its metric and dimensions"
        for hour, value in values.items():
            if value > float(alarm["Threshold"]):
                fired[hour].add(alarm["MetricName"])
        cw.put_metric_alarm(**{k: (float(v) if k == "Threshold" else v) for k, v in alarm.items()})
    # an alarm fires where the report raised the alert it stands for, and nowhere else
    for hour, alerts in days.items():
        assert fired[hour] == {a["metric"] for a in alerts if a["severity"] == "critical"
                               or a["metric"] in ("run_seconds", "emr_dollars_per_million_texts")}, hour
    assert fired[DRIFTED] == set(DRIFT) and fired[DECAYED] == set(DECAY) | {"quarantine_share"} and not fired[CALM]

    inbox()
    names = {a["MetricName"]: a["AlarmName"] for a in alarms}
    for metric in sorted(fired[DRIFTED]):
        cw.set_alarm_state(AlarmName=names[metric], StateValue="ALARM", StateReason=f"{metric} above its threshold")
    ringing = cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]
    assert {a["AlarmName"] for a in ringing} == {names[m] for m in fired[DRIFTED]}
    for alarm in ringing:   # what CloudWatch sends to each action of an alarm entering ALARM (moto does not)
        assert alarm["ActionsEnabled"]
        for action in alarm["AlarmActions"]:
            client("sns").publish(TopicArn=action, Subject=f'ALARM: "{alarm["AlarmName"]}" in US East (N. Virginia)',
                                  Message=json.dumps({"AlarmName": alarm["AlarmName"], "NewStateValue": "ALARM",
                                                      "NewStateReason": alarm["StateReason"],
                                                      "Trigger": {"MetricName": alarm["MetricName"],
                                                                  "Namespace": alarm["Namespace"],
                                                                  "Threshold": alarm["Threshold"]}}))
    notes = inbox()
    assert sorted(json.loads(n["Message"])["AlarmName"] for n in notes) == sorted(names[m] for m in fired[DRIFTED])


def test_the_topic_admits_cloudwatch_alarms():
    topic_policy = next(r for r in template.synthesize()["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy")
    statement = next(s for s in topic_policy["Properties"]["PolicyDocument"]["Statement"] if s["Sid"] == "AlarmsPublish")
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and statement["Action"] == "sns:Publish"


def expanded(lines: list[list]) -> list[list]:
    """A metric widget's lines with CloudWatch's "." (same as the line above) filled in."""
    out: list[list] = []
    for line in lines:
        if not isinstance(line[0], str):
            continue   # an expression (SEARCH)
        out.append([out[-1][i] if v == "." else v for i, v in enumerate(line)])
    return out


def test_the_dashboard_is_deployed_and_shows_what_the_jobs_publish(published):
    deployment, _, _, _ = published
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=deployment.name)["DashboardBody"])
    rows = metrics.of_report(figures("2026-11-04", **DRIFT, **DECAY), {"alerts": []}, "r", HOUR.isoformat())
    rows += [r for stage in Stage for r in metrics.of_record(RunRecord(
        stage=stage, ingest_date="d", status="succeeded", seconds=1.0, rows_in=2, rows_out=2, rows_rejected=0,
        rows_duplicate=0))]
    publishable = {(d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"]))
                   for d in metrics.datums(rows)}
    shown = [line for widget in body["widgets"] for line in expanded(widget["properties"].get("metrics", []))
             if line[0] == "nlp-batch"]
    assert len(shown) > 30
    for line in shown:
        dims = tuple((line[i], line[i + 1]) for i in range(2, len(line) - 1, 2) if isinstance(line[i], str))
        assert (line[1], dims) in publishable, line
    assert {"quarantine_share", "psi_confidence", "macro_f1_drop", "run_seconds",
            "emr_dollars_per_million_texts"} <= {line[1] for line in shown}
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert len(alarm_widget["properties"]["alarms"]) == 12

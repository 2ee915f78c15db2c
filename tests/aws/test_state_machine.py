"""The deployed state machines, executed by moto's Step Functions, with EMR step failures injected."""
from __future__ import annotations

import json

import pytest

from tests.aws.conftest import client, deliver, wait_for_execution

DATE = "2026-11-01"


@pytest.fixture
def stack(stack):
    """The session's deployment, with an empty inbox."""
    launcher, inbox = stack
    inbox()
    return launcher, inbox


def execute(launcher, name: str, payload: dict) -> dict:
    arn = client("stepfunctions").start_execution(
        stateMachineArn=launcher.values["PipelineStateMachineArn"], name=name, input=json.dumps(payload))["executionArn"]
    return wait_for_execution(arn)


def stages(worker) -> list[str]:
    return [next(a for a in args[1:] if not a.startswith("--")) for args in worker.stage_args()]


def cluster_states(worker) -> list[str]:
    emr = client("emr")
    return [emr.describe_cluster(ClusterId=c)["Cluster"]["Status"]["State"] for c in worker.clusters()]


def test_a_failing_stage_is_retried_3_times_then_notified_and_the_cluster_terminated(stack, emr_worker):
    launcher, inbox = stack
    emr_worker.outcome = lambda stage, args: "FAILED" if stage == "infer" else "COMPLETED"
    status = execute(launcher, "infer-fails", {"ingest_date": DATE, "train": False})

    assert status["status"] == "FAILED" and status["error"] == "PipelineFailed"
    assert stages(emr_worker) == ["ingest", "infer", "infer", "infer", "infer"]   # 1 try + 3 retries, then stop
    assert cluster_states(emr_worker) == ["TERMINATED"]
    (note,) = inbox()
    assert note["Subject"] == "nlp-batch pipeline failed"
    assert note["Message"].startswith("nlp-batch execution infer-fails failed: ")
    history = client("stepfunctions").get_execution_history(executionArn=status["executionArn"])["events"]
    first_failure = next(e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed")
    assert first_failure["error"] == "States.TaskFailed" and "EmrStepFailed" in first_failure["cause"]
    tries = [e["timestamp"] for e in history if e["type"] == "TaskScheduled"
             and e["taskScheduledEventDetails"]["resource"] == "startExecution.sync:2"
             and '"Name": "infer ' in e["taskScheduledEventDetails"]["parameters"]]
    assert len(tries) == 4
    assert all((b - a).total_seconds() >= 1 for a, b in zip(tries, tries[1:]))   # the retry interval (1 s here)


def test_a_blocked_batch_stops_at_the_quality_gate_without_retrying(stack, emr_worker):
    launcher, inbox = stack
    emr_worker.outcome = lambda stage, args: "BLOCKED" if stage == "ingest" else "COMPLETED"
    status = execute(launcher, "blocked", {"ingest_date": DATE, "train": False})

    assert status["error"] == "QualityGateBlocked"
    assert status["cause"] == f"ingest {DATE}: batch blocked by critical expectations: text is null in 40% of rows"
    assert stages(emr_worker) == ["ingest"]
    assert cluster_states(emr_worker) == ["TERMINATED"]
    (note,) = inbox()
    assert "QualityGateBlocked: ingest 2026-11-01: batch blocked" in note["Message"]


def test_s3_and_schedule_events_start_runs_for_the_right_date(stack, emr_worker):
    launcher, _ = stack
    emr_worker.outcome = lambda stage, args: "BLOCKED"     # ingest is enough to see the date; stop there
    landed = {"bucket": {"name": launcher.bucket},
              "object": {"key": "lake/raw/ingest_date=2026-11-02/source=reviews/batch.csv.gz"}}
    (payload,) = deliver("nlp-batch-landing", "aws.s3", "Object Created", landed)
    assert execute(launcher, "landed", payload)["error"] == "QualityGateBlocked"
    (payload,) = deliver("nlp-batch-schedule", "aws.events", "Scheduled Event", {}, pattern='{"source": ["aws.events"]}')
    payload["event_time"] = "2026-11-03T23:30:00Z"     # the probe's event time is now; the schedule's is 23:30
    assert execute(launcher, "scheduled", payload)["error"] == "QualityGateBlocked"
    assert emr_worker.stage_args() == [
        ["/opt/nlp-batch/bin/run-stage", "--blocked-ok", "ingest", "--date", date] for date in ("2026-11-02", "2026-11-03")]
    assert cluster_states(emr_worker) == ["TERMINATED", "TERMINATED"]


def test_the_circuit_breaker_opens_on_the_third_consecutive_failure(stack, emr_worker):
    launcher, inbox = stack
    sfn, events = client("stepfunctions"), client("events")
    pipeline = launcher.values["PipelineStateMachineArn"]

    def breaker_after(execution: dict) -> None:
        """What EventBridge does when a pipeline execution ends: route it through pipeline_failed."""
        change = {"executionArn": execution["executionArn"], "stateMachineArn": pipeline, "status": execution["status"]}
        routed = deliver("nlp-batch-pipeline-failed", "aws.states", "Step Functions Execution Status Change", change)
        if execution["status"] == "SUCCEEDED":
            assert routed == []
            return
        (event,) = routed
        run = sfn.start_execution(stateMachineArn=launcher.values["CircuitBreakerStateMachineArn"],
                                  name=f"breaker-{execution['name']}", input=json.dumps(event))
        assert wait_for_execution(run["executionArn"])["status"] == "SUCCEEDED"

    def triggers() -> list[str]:
        return [events.describe_rule(Name=n)["State"] for n in ("nlp-batch-schedule", "nlp-batch-landing")]

    breaker_after(execute(launcher, "s1", {"ingest_date": DATE, "train": False}))     # a success
    emr_worker.outcome = lambda stage, args: "BLOCKED"
    breaker_after(execute(launcher, "f1", {"ingest_date": DATE, "train": False}))     # the quality gate stops it
    breaker_after(execute(launcher, "f2", {}))                                          # bad input fails fast
    assert triggers() == ["ENABLED", "ENABLED"]                                         # S F F: not 3 in a row
    assert not [n for n in inbox() if "circuit" in n["Subject"]]

    breaker_after(execute(launcher, "f3", {}))                                          # F F F
    assert triggers() == ["DISABLED", "DISABLED"]
    opened = [n for n in inbox() if "circuit open" in n["Subject"]]
    assert len(opened) == 1
    assert "aws events enable-rule --name nlp-batch-schedule" in opened[0]["Message"]
    for rule in ("nlp-batch-schedule", "nlp-batch-landing"):   # close it again for the tests after this one
        events.enable_rule(Name=rule)

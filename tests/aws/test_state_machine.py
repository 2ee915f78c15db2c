"""The deployed state machines (CloudFormation in moto), executed by moto's Step Functions, with EMR
outcomes injected by the worker: every failure path notifies and terminates the cluster."""
from __future__ import annotations

import json

import pytest

from tests.aws.conftest import client, deliver, wait_for_execution

DATE = "2026-11-01"
STAGES = ["ingest", "train", "infer", "dbt", "report", "maintain"]


@pytest.fixture
def stack(stack):
    """The session's deployment, with an empty inbox and no claims left from earlier tests."""
    deployment, inbox = stack
    inbox()
    table = deployment.outputs()["RunsTable"]
    for item in client("dynamodb").scan(TableName=table)["Items"]:
        client("dynamodb").delete_item(TableName=table, Key={"pk": item["pk"]})
    return deployment, inbox


def start(deployment, name: str, payload: dict) -> str:
    return client("stepfunctions").start_execution(
        stateMachineArn=deployment.outputs()["PipelineStateMachineArn"], name=name, input=json.dumps(payload))["executionArn"]


def execute(deployment, name: str, payload: dict) -> dict:
    return wait_for_execution(start(deployment, name, payload))


def cluster_states(worker) -> list[str]:
    emr = client("emr")
    return [emr.describe_cluster(ClusterId=c)["Cluster"]["Status"]["State"] for c in worker.clusters()]


def claim(deployment, date: str) -> str | None:
    item = client("dynamodb").get_item(TableName=deployment.outputs()["RunsTable"],
                                       Key={"pk": {"S": f"date#{date}"}}).get("Item")
    return item["run_status"]["S"] if item else None


def test_a_run_succeeds_through_every_stage_and_terminates_its_cluster(stack, emr_worker):
    deployment, inbox = stack
    status = execute(deployment, "all-good", {"ingest_date": DATE, "train": True})
    assert status["status"] == "SUCCEEDED", status
    assert json.loads(status["output"])["outcome"] == "succeeded"
    assert emr_worker.stages() == STAGES
    assert cluster_states(emr_worker) == ["TERMINATED"]
    cluster = client("emr").describe_cluster(ClusterId=emr_worker.clusters()[0])["Cluster"]
    assert cluster["Name"] == "nlp-batch-all-good"                       # the cleanup finds it by this name
    assert cluster["SecurityConfiguration"] == "nlp-batch"
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]}["execution"] == "all-good"
    assert claim(deployment, DATE) == "SUCCEEDED"
    assert inbox() == []


def test_a_run_told_not_to_maintain_ends_after_its_report(stack, emr_worker):
    deployment, inbox = stack
    status = execute(deployment, "no-maintenance", {"ingest_date": DATE, "maintain": False})
    assert status["status"] == "SUCCEEDED", status
    assert emr_worker.stages() == ["ingest", "infer", "dbt", "report"]
    assert cluster_states(emr_worker) == ["TERMINATED"] and inbox() == []


@pytest.mark.parametrize("failing", STAGES)
def test_a_failing_stage_gets_3_attempts_then_notifies_and_terminates_the_cluster(stack, emr_worker, failing):
    deployment, inbox = stack
    emr_worker.outcome = lambda stage, args: "FAILED" if stage == failing else "COMPLETED"
    status = execute(deployment, f"{failing}-fails", {"ingest_date": DATE, "train": True})

    assert status["status"] == "FAILED" and status["error"] == "PipelineFailed"
    done = STAGES[:STAGES.index(failing)]
    assert emr_worker.stages() == done + [failing] * 3          # 3 attempts in all, then stop
    assert cluster_states(emr_worker) == ["TERMINATED"]
    (note,) = inbox()
    assert note["Subject"] == "nlp-batch pipeline stopped"
    assert note["Message"].startswith(f"nlp-batch execution {failing}-fails stopped: ")
    assert "attempt 3 of 3 ended FAILED" in note["Message"]
    assert claim(deployment, DATE) == "FAILED"                   # the date may run again


def test_a_stage_past_its_timeout_is_stopped_and_the_cluster_terminated(stack, emr_worker, aws_settings):
    deployment, inbox = stack
    emr_worker.outcome = lambda stage, args: "HANG" if stage == "infer" else "COMPLETED"
    status = wait_for_execution(start(deployment, "infer-hangs", {"ingest_date": DATE}), timeout=120)
    assert status["status"] == "FAILED"
    assert "States.Timeout" in status["cause"]
    assert emr_worker.stages() == ["ingest", "infer"]
    assert cluster_states(emr_worker) == ["TERMINATED"]
    assert "States.Timeout" in inbox()[0]["Message"]


def test_a_cluster_that_fails_to_start_fails_the_run_with_emrs_reason(stack, emr_worker):
    deployment, inbox = stack
    emr_worker.start_failure = "On the master instance (i-0abc), bootstrap action 2 returned a non-zero return code"
    status = execute(deployment, "no-start", {"ingest_date": DATE})
    assert status["status"] == "FAILED"
    assert "ClusterStartFailed" in status["cause"] and "bootstrap action 2 returned a non-zero" in status["cause"]
    assert emr_worker.stages() == []
    assert "bootstrap action 2" in inbox()[0]["Message"]


def test_a_blocked_batch_and_a_critical_alert_stop_without_retries_and_notify(stack, emr_worker):
    deployment, inbox = stack
    emr_worker.outcome = lambda stage, args: "BLOCKED" if stage == "ingest" else "COMPLETED"
    status = execute(deployment, "blocked", {"ingest_date": DATE})
    assert status["error"] == "QualityGateBlocked"
    assert status["cause"].startswith(f"ingest {DATE}: batch blocked by critical expectations; ")
    assert f"lake/quality/ingest_date={DATE}/validation.json" in status["cause"]
    assert emr_worker.stages() == ["ingest"]
    assert claim(deployment, DATE) == "BLOCKED"
    emr_worker.outcome = lambda stage, args: "ALERT" if stage == "report" else "COMPLETED"
    status = execute(deployment, "alerted", {"ingest_date": DATE})     # a blocked date may run again
    assert status["error"] == "CriticalAlert"
    # after the critical alert the retraining policy runs (it decides on the report's alerts), then the alert
    assert emr_worker.stages() == ["ingest", "ingest", "infer", "dbt", "report", "retrain"]
    assert emr_worker.stage_args()[-1][1:] == ["retrain", "--date", DATE]
    assert cluster_states(emr_worker) == ["TERMINATED", "TERMINATED"]
    assert [n["Message"].split(": ")[1] for n in inbox()] == ["QualityGateBlocked", "CriticalAlert"]
    assert claim(deployment, DATE) == "ALERTED"


def test_a_retraining_that_fails_gets_3_attempts_then_fails_the_run(stack, emr_worker):
    deployment, inbox = stack
    emr_worker.outcome = lambda stage, args: {"report": "ALERT", "retrain": "FAILED"}.get(stage, "COMPLETED")
    status = execute(deployment, "retrain-fails", {"ingest_date": DATE})
    assert status["status"] == "FAILED" and status["error"] == "PipelineFailed"
    assert emr_worker.stages() == ["ingest", "infer", "dbt", "report"] + ["retrain"] * 3
    assert cluster_states(emr_worker) == ["TERMINATED"]
    (note,) = inbox()
    assert "attempt 3 of 3 ended FAILED" in note["Message"]


def test_a_second_execution_for_the_same_date_is_refused(stack, emr_worker):
    deployment, _ = stack
    emr_worker.outcome = lambda stage, args: "HANG" if stage == "ingest" else "COMPLETED"
    first = start(deployment, "first", {"ingest_date": DATE})
    landed = {"bucket": {"name": deployment.outputs()["BucketName"]},
              "object": {"key": f"lake/raw/ingest_date={DATE}/source=reviews/more.csv"}}
    (payload,) = deliver("nlp-batch-landing", "aws.s3", "Object Created", landed)
    second = execute(deployment, "second", payload)
    assert second["status"] == "SUCCEEDED" and json.loads(second["output"]) == {"outcome": "refused", "ingest_date": DATE}
    rerun = execute(deployment, "rerun-while-running", {"ingest_date": DATE, "rerun": True})
    assert json.loads(rerun["output"])["outcome"] == "refused"        # not even a rerun while one runs
    client("stepfunctions").stop_execution(executionArn=first)
    names = {c["Name"] for c in client("emr").list_clusters()["Clusters"]}
    assert "nlp-batch-first" in names
    assert not {"nlp-batch-second", "nlp-batch-rerun-while-running"} & names   # the refused ones started none


def test_s3_and_schedule_events_start_runs_for_the_right_date(stack, emr_worker):
    deployment, _ = stack
    emr_worker.outcome = lambda stage, args: "BLOCKED"     # ingest is enough to see the date; stop there
    landed = {"bucket": {"name": deployment.outputs()["BucketName"]},
              "object": {"key": "lake/raw/ingest_date=2026-11-02/source=reviews/batch.csv.gz"}}
    (payload,) = deliver("nlp-batch-landing", "aws.s3", "Object Created", landed)
    assert execute(deployment, "landed", payload)["error"] == "QualityGateBlocked"
    (payload,) = deliver("nlp-batch-schedule", "aws.events", "Scheduled Event", {}, pattern='{"source": ["aws.events"]}')
    payload["event_time"] = "2026-11-03T23:30:00Z"     # the probe's event time is now; the schedule's is 23:30
    assert execute(deployment, "scheduled", payload)["error"] == "QualityGateBlocked"
    assert [a[a.index("--date") + 1] for a in emr_worker.stage_args()] == ["2026-11-02", "2026-11-03"]
    assert all(a[:3] == ["/opt/nlp-batch/bin/run-stage", "--outcomes", f"s3://nlp-test-bucket/outcomes/{n}/"]
               for a, n in zip(emr_worker.stage_args(), ("landed", "scheduled")))


def wait_for(condition, timeout: float = 30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def status_change(deployment, execution_arn: str, status: str) -> dict:
    sfn = client("stepfunctions")
    run = sfn.describe_execution(executionArn=execution_arn)
    return {"executionArn": execution_arn, "stateMachineArn": run["stateMachineArn"], "name": run["name"],
            "status": status}


def run_machine(deployment, output: str, name: str, event: dict) -> dict:
    arn = client("stepfunctions").start_execution(stateMachineArn=deployment.outputs()[output], name=name,
                                                  input=json.dumps(event))["executionArn"]
    return wait_for_execution(arn)


@pytest.mark.parametrize("status", ["ABORTED", "TIMED_OUT", "FAILED"])
def test_an_execution_stopped_from_outside_is_cleaned_up(stack, emr_worker, status):
    """An abort, the execution's own timeout or a States.Runtime error end it where no state of its own
    runs: EventBridge's status-change rule hands it to the cleanup machine."""
    deployment, inbox = stack
    emr_worker.outcome = lambda stage, args: "HANG"
    name = f"stuck-{status.lower()}"
    arn = start(deployment, name, {"ingest_date": DATE})
    wait_for(lambda: emr_worker.steps)                                 # the cluster is up and ingest runs
    if status == "ABORTED":
        client("stepfunctions").stop_execution(executionArn=arn)
    (event,) = deliver("nlp-batch-pipeline-stopped", "aws.states", "Step Functions Execution Status Change",
                       status_change(deployment, arn, status))
    cleaned = run_machine(deployment, "CleanupStateMachineArn", f"cleanup-{name}", event)
    history = client("stepfunctions").get_execution_history(executionArn=cleaned["executionArn"])["events"]
    assert cleaned["status"] == "SUCCEEDED", [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]

    assert cluster_states(emr_worker) == ["TERMINATED"]
    assert claim(deployment, DATE) == status                            # the date can run again
    notes = inbox()
    if status == "FAILED":
        assert notes == []      # a failure notifies from the pipeline; a runtime error through the alarm
    else:
        assert [n["Message"] for n in notes] == [
            f"nlp-batch execution {name} ended {status}; its cluster was terminated and its date can run again"]
    client("stepfunctions").stop_execution(executionArn=arn)


def test_the_breaker_counts_infrastructure_failures_only(stack, emr_worker):
    deployment, inbox = stack
    events = client("events")
    table = deployment.outputs()["RunsTable"]

    def ended(name: str, payload: dict, error: str | None) -> None:
        """Run the pipeline, then what EventBridge does when it ends: route it to the breaker."""
        name = f"cb-{name}"                      # execution names are unique for the package's stack
        run = execute(deployment, name, payload)
        assert run.get("error") == error, run
        (event,) = deliver("nlp-batch-pipeline-ended", "aws.states", "Step Functions Execution Status Change",
                           status_change(deployment, run["executionArn"], run["status"]))
        assert run_machine(deployment, "CircuitBreakerStateMachineArn", f"breaker-{name}", event)["status"] == "SUCCEEDED"

    def triggers() -> list[str]:
        return [events.describe_rule(Name=n)["State"] for n in ("nlp-batch-schedule", "nlp-batch-landing")]

    def count() -> int:
        item = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "circuit-breaker"}}).get("Item", {})
        return int(item.get("consecutive_failures", {"N": "0"})["N"])

    ended("bad-input-1", {}, "PipelineFailed")                                   # infrastructure: 1
    emr_worker.outcome = lambda stage, args: "BLOCKED"
    ended("blocked-1", {"ingest_date": "2026-11-05"}, "QualityGateBlocked")     # data: not counted
    ended("blocked-2", {"ingest_date": "2026-11-05"}, "QualityGateBlocked")
    emr_worker.outcome = lambda stage, args: "ALERT" if stage == "report" else "COMPLETED"
    ended("alerted", {"ingest_date": "2026-11-06"}, "CriticalAlert")             # data: not counted
    ended("refused", {"ingest_date": "2026-11-06"}, None)                         # done already: neither
    ended("bad-input-2", {}, "PipelineFailed")                                   # infrastructure: 2
    assert count() == 2 and triggers() == ["ENABLED", "ENABLED"]
    assert not [n for n in inbox() if "circuit" in n["Subject"]]

    emr_worker.outcome = lambda stage, args: "COMPLETED"
    ended("success", {"ingest_date": "2026-11-07"}, None)                        # a success resets
    assert count() == 0
    for i in range(1, 4):
        ended(f"bad-input-{i + 2}", {}, "PipelineFailed")
    assert count() == 3 and triggers() == ["DISABLED", "DISABLED"]
    opened = [n for n in inbox() if "circuit open" in n["Subject"]]
    assert len(opened) == 1
    assert opened[0]["Message"].startswith("3 executions of nlp-batch-pipeline in a row failed")
    assert "aws events enable-rule --name nlp-batch-schedule" in opened[0]["Message"]
    for rule in ("nlp-batch-schedule", "nlp-batch-landing"):   # close it again for the tests after this one
        events.enable_rule(Name=rule)

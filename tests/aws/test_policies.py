"""Offline lint of what gets deployed: IAM policies (parliament), the state machines (moto's ASL parser,
the one that executes them, plus the rules this project holds itself to), and the bucket policy."""
from __future__ import annotations

import fnmatch
import json

import pytest

from spark_jobs import emr_launcher
from spark_jobs.emr_launcher import render
from tests.aws.conftest import EMR_DIR, client

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VALUES = {
    "Name": "nlp-batch", "Region": "us-east-1", "AccountId": "123456789012", "Bucket": "nlp-bucket",
    "LakePrefix": "lake", "KmsKeyArn": KEY, "AthenaWorkgroup": "primary",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:nlp-batch-alerts",
    "PipelineStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:nlp-batch-pipeline",
    "CircuitBreakerStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:nlp-batch-circuit-breaker",
}
ROLE_FILES = sorted(p.name for p in (EMR_DIR / "iam").glob("*_role.json"))

# Findings reviewed and accepted, each for a reason (parliament 1.6.4's action database is older than AWS's).
ACCEPTED = {
    # iam:PassRole is how EMR gets its roles; scoped to the two project roles and iam:PassedToService.
    ("emr_service_role.json", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    ("pipeline_role.json", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    # AWS documents ListExecutions on a stateMachine resource; parliament knows only mapRun.
    ("circuit_breaker_role.json", "RESOURCE_MISMATCH"),
    # AWS documents DescribeExecution on execution:<machine>:<name>; parliament knows only express executions.
    ("pipeline_role.json", "RESOURCE_MISMATCH"),
}


def role(name: str) -> dict:
    return render(json.loads((EMR_DIR / "iam" / name).read_text()), VALUES)


def bucket_policy() -> dict:
    return render(json.loads((EMR_DIR / "iam" / "bucket_policy.json").read_text()), VALUES)


@pytest.mark.parametrize("name", ROLE_FILES)
def test_role_policies_pass_parliament(name):
    from parliament import analyze_policy_string

    findings = analyze_policy_string(json.dumps(role(name)["Policy"]), include_community_auditors=True).findings
    unexpected = [(f.issue, f.detail) for f in findings if (name, f.issue) not in ACCEPTED]
    assert unexpected == []


def test_bucket_policy_passes_parliament():
    from parliament import analyze_policy_string

    assert analyze_policy_string(json.dumps(bucket_policy()), include_community_auditors=True).findings == []


@pytest.mark.parametrize("name", ROLE_FILES)
def test_roles_are_assumable_only_by_their_service_and_grant_nothing_broad(name):
    doc = role(name)
    (trust,) = doc["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole" and list(trust["Principal"]) == ["Service"]
    if trust["Principal"]["Service"] != "ec2.amazonaws.com":   # EC2 sends no source account
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == VALUES["AccountId"]
    for statement in doc["Policy"]["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement["Sid"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if "*" in resources:   # only actions without resource-level permissions, and then under a tag condition
            assert set(actions) <= {"elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags"}, statement["Sid"]
            assert statement["Condition"]["StringEquals"]["aws:RequestTag/project"] == "nlp-batch"
        assert all("${" not in r for r in resources)


# --- the state machines -------------------------------------------------------------------------------

def definitions() -> dict[str, dict]:
    settings = emr_launcher.settings_mod.load(env={}, aws_bucket="nlp-bucket")
    launcher = emr_launcher.Launcher(settings)
    launcher.set_account(VALUES["AccountId"])
    launcher.values["KmsKeyArn"] = KEY
    return {name: definition for name, (_, definition) in launcher.state_machine_definitions().items()}


def transitions(state: dict) -> list[str]:
    nexts = [state.get("Next"), state.get("Default")]
    nexts += [c.get("Next") for c in state.get("Choices", [])] + [c["Next"] for c in state.get("Catch", [])]
    return [n for n in nexts if n]


@pytest.mark.parametrize("name", ["nlp-batch-pipeline", "nlp-batch-emr-step", "nlp-batch-circuit-breaker"])
def test_state_machines_parse_and_every_state_is_wired(name):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = definitions()[name]
    AmazonStateLanguageParser.parse(json.dumps(definition))     # raises ASLParserException on bad ASL
    assert emr_launcher.placeholders(definition) == set()
    states = definition["States"]
    reachable, todo = set(), [definition["StartAt"]]
    while todo:
        current = todo.pop()
        if current not in reachable:
            reachable.add(current)
            assert current in states, f"{name}: a transition goes to missing state {current!r}"
            todo += transitions(states[current])
    assert reachable == set(states), f"{name}: unreachable {set(states) - reachable}"
    for state_name, state in states.items():
        ends = state["Type"] in ("Succeed", "Fail") or state.get("End")
        assert ends or transitions(state), f"{name}: {state_name} leads nowhere"
        if state["Type"] == "Task":
            assert state["Retry"] == [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3,
                                       "IntervalSeconds": 60, "BackoffRate": 1.0}], state_name


def test_every_pipeline_task_notifies_on_failure_and_ends_by_terminating_the_cluster():
    states = definitions()["nlp-batch-pipeline"]["States"]
    cleanup = {"NotifyFailure", "TerminateClusterAfterFailure", "TerminateCluster"}
    for state_name, state in states.items():
        if state["Type"] == "Task" and state_name not in cleanup:
            assert [c["Next"] for c in state["Catch"]] == ["NotifyFailure"], state_name
    # every way to the end after the cluster exists goes through a TerminateJobFlows task
    terminators = {n for n, s in states.items() if s.get("Resource", "").endswith("emr:terminateJobFlows")}
    assert terminators == {"TerminateCluster", "TerminateClusterAfterFailure"}
    assert states["Succeeded"] == {"Type": "Succeed"} and states["Report"]["Next"] == "TerminateCluster"
    assert states["ClusterToTerminate?"]["Choices"][0] == {
        "Variable": "$.cluster.ClusterId", "IsPresent": True, "Next": "TerminateClusterAfterFailure"}
    assert {s.get("Next") for n, s in states.items() if n in ("NotifyFailure",)} == {"ClusterToTerminate?"}


def test_the_stage_steps_match_steps_json():
    spec = json.loads((EMR_DIR / "steps.json").read_text())
    states = definitions()["nlp-batch-pipeline"]["States"]
    for stage, args in spec["Stages"].items():
        built = states[stage.capitalize()]["Parameters"]["Input"]["Args.$"]
        expected = [spec["Runner"], *(["--blocked-ok"] if stage == "ingest" else []), *args[:-1]]
        assert built == "States.Array(" + ", ".join(f"'{a}'" for a in expected) + ", $.ingest_date)"


# --- the bucket policy ------------------------------------------------------------------------------------

def evaluate(policy: dict, action: str, resource: str, context: dict[str, str]) -> str:
    """IAM's answer from this policy alone: Deny wins, then Allow, else no decision. Supports the
    condition operators the bucket policy uses and refuses any other (moto ignores them instead)."""
    def listed(value):
        return [value] if isinstance(value, str) else value

    operators = {
        "Bool": lambda have, want: have is not None and have.lower() == want.lower(),
        "StringEquals": lambda have, want: have is not None and have == want,
        "StringNotEquals": lambda have, want: have is None or have != want,   # absent keys match negations
        "ArnNotEquals": lambda have, want: have is None or not fnmatch.fnmatchcase(have, want),
        "Null": lambda have, want: (have is None) == (want == "true"),
    }
    effects = set()
    for st in policy["Statement"]:
        if not any(fnmatch.fnmatchcase(action, a) for a in listed(st["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in listed(st["Resource"])):
            continue
        if all(operators[op](context.get(key), want)
               for op, pairs in st.get("Condition", {}).items() for key, want in pairs.items()):
            effects.add(st["Effect"])
    return "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else "NoDecision"


TLS = {"aws:SecureTransport": "true"}
OBJECT = "arn:aws:s3:::nlp-bucket/lake/curated/ingest_date=2026-11-01/part-0.parquet"


@pytest.mark.parametrize("action, context, answer", [
    ("s3:GetObject", {"aws:SecureTransport": "false"}, "Deny"),
    ("s3:PutObject", {"aws:SecureTransport": "false"}, "Deny"),
    ("s3:GetObject", TLS, "NoDecision"),                       # the roles' own policies decide
    ("s3:PutObject", TLS, "NoDecision"),                       # no header: the bucket's SSE-KMS default applies
    ("s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption": "AES256"}, "Deny"),
    ("s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption": "aws:kms"}, "Deny"),   # would use aws/s3
    ("s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption": "aws:kms",
                      "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY}, "NoDecision"),
    ("s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption": "aws:kms",
                      "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY.replace("1234abcd", "99999999")}, "Deny"),
    ("s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}, "Deny"),
])
def test_the_bucket_policy_refuses_non_tls_and_foreign_encryption(action, context, answer):
    assert evaluate(bucket_policy(), action, OBJECT, context) == answer


def test_moto_refuses_a_plain_http_request_once_the_policy_is_on(moto_url):
    """moto serves plain HTTP only and applies a bucket policy without evaluating its conditions: it
    refuses this non-TLS request, but would refuse a TLS one too. The evaluator above is the proof of the
    policy's meaning; this shows the policy deploys and takes effect."""
    from botocore.exceptions import ClientError

    s3, bucket = client("s3"), "nlp-policy-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="lake/x.json", Body=b"{}")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(render(bucket_policy(), {}) | {
        "Statement": [dict(st, Resource=[r.replace("nlp-bucket", bucket) for r in
                                         ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])])
                      for st in bucket_policy()["Statement"]]}))
    with pytest.raises(ClientError, match="403|AccessDenied|Forbidden"):
        s3.get_object(Bucket=bucket, Key="lake/x.json")

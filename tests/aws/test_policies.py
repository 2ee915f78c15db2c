"""Offline lint of what the stack deploys: its IAM policies (parliament), the key policy, and the bucket
policy's meaning (a small evaluator: moto ignores policy conditions)."""
from __future__ import annotations

import fnmatch
import json
import re

import pytest

from nlp_emr import template
from tests.aws.conftest import client

ACCOUNT, REGION, NAME, BUCKET = "123456789012", "us-east-1", "nlp-batch", "nlp-bucket"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PARAMETERS = {"ProjectName": NAME, "BucketName": BUCKET, "LakeDatabaseName": "nlp_lake", "MartsDatabaseName": "nlp_marts",
              "OperatorArns": [f"arn:aws:iam::{ACCOUNT}:role/operator"], "AWS::Region": REGION,
              "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
CONDITIONS = {"CreateBucket": True, "HasEmail": False, "HasTls": False}

# Findings reviewed and accepted, each for a reason (parliament 1.6.4's action database is older than AWS's).
ACCEPTED = {
    # iam:PassRole is how EMR gets its instance role; scoped to that role and iam:PassedToService.
    ("EmrServiceRole", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    ("PipelinePolicy", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    # logs:PutResourcePolicy: Step Functions' logging to CloudWatch Logs needs it, with the other log-delivery
    # actions, on Resource "*" (AWS: "IAM policies for logging to CloudWatch Logs"); no resource-level form.
    ("CleanupPolicy", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    ("CircuitBreakerPolicy", "PERMISSIONS_MANAGEMENT_ACTIONS"),
    # AWS documents DescribeExecution on execution:<machine>:<name>; parliament knows only express executions.
    ("PipelinePolicy", "RESOURCE_MISMATCH"),
    ("CircuitBreakerPolicy", "RESOURCE_MISMATCH"),
}


def resolve(node):
    """The template's intrinsic functions with this test's values: Ref, Sub, GetAtt (a fake ARN), Join,
    Split, If. A reference to anything else fails the test."""
    if isinstance(node, list):
        return [resolve(v) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in PARAMETERS:
                return PARAMETERS[arg]
            kind, props = TEMPLATE["Resources"][arg]["Type"], TEMPLATE["Resources"][arg]["Properties"]
            if kind == "AWS::SNS::Topic":
                return f"arn:aws:sns:{REGION}:{ACCOUNT}:{resolve(props['TopicName'])}"
            if kind == "AWS::StepFunctions::StateMachine":
                return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{resolve(props['StateMachineName'])}"
            return f"{arg}-physical-id"
        if fn == "Fn::GetAtt":
            return attribute(*arg)
        if fn == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1]))

            def value(m):
                name = m.group(1)
                if name in extra:
                    return str(extra[name])
                if "." in name:
                    return resolve({"Fn::GetAtt": name.split(".", 1)})
                return str(resolve({"Ref": name}))
            return re.sub(r"\$\{([^}!]+)\}", value, text)
        if fn == "Fn::Join":
            return arg[0].join(str(v) if not isinstance(v, list) else arg[0].join(v) for v in resolve(arg[1]))
        if fn == "Fn::Split":
            return resolve(arg[1]).split(arg[0])
        if fn == "Fn::If":
            return resolve(arg[1] if CONDITIONS[arg[0]] else arg[2])
    return {k: resolve(v) for k, v in node.items()}


TEMPLATE = template.synthesize()


def attribute(logical_id: str, name: str) -> str:
    """The ARN AWS would give the resource (names from the template)."""
    props = TEMPLATE["Resources"][logical_id]["Properties"]
    kind = TEMPLATE["Resources"][logical_id]["Type"]
    arns = {
        "AWS::KMS::Key": lambda: KEY,
        "AWS::IAM::Role": lambda: f"arn:aws:iam::{ACCOUNT}:role/{resolve(props['RoleName'])}",
        "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{resolve(props['TableName'])}",
        "AWS::Logs::LogGroup": lambda: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{resolve(props['LogGroupName'])}:*",
        "AWS::RDS::DBInstance": lambda: f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0123-abcdef",
    }
    assert kind in arns, f"no stand-in ARN for {logical_id}.{name}"
    return arns[kind]()


@pytest.fixture(scope="module")
def resources() -> dict:
    return TEMPLATE["Resources"]


def policies(resources) -> dict[str, dict]:
    """Every IAM policy document of the stack, by the logical id that holds it."""
    out = {}
    for name, r in resources.items():
        if r["Type"] == "AWS::IAM::Policy":
            out[name] = resolve(r["Properties"]["PolicyDocument"])
        elif r["Type"] == "AWS::IAM::Role":
            for p in r["Properties"].get("Policies", []):
                out[name] = resolve(p["PolicyDocument"])
    return out


def listed(value) -> list:
    return [value] if isinstance(value, str) else value


def test_role_policies_pass_parliament(resources):
    from parliament import analyze_policy_string

    found = set()
    for name, doc in policies(resources).items():
        findings = analyze_policy_string(json.dumps(doc), include_community_auditors=True).findings
        found |= {(name, f.issue) for f in findings}
    assert found == ACCEPTED          # nothing new, and no acceptance left that no longer applies


def test_roles_are_assumable_only_by_their_service_and_grant_nothing_broad(resources):
    roles = {n: r for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"EmrServiceRole", "EmrInstanceRole", "PipelineRole", "CleanupRole", "CircuitBreakerRole",
                          "EventsRole"}
    for name, role in roles.items():
        (trust,) = resolve(role["Properties"]["AssumeRolePolicyDocument"])["Statement"]
        assert trust["Action"] == "sts:AssumeRole" and list(trust["Principal"]) == ["Service"], name
        if trust["Principal"]["Service"] != "ec2.amazonaws.com":   # EC2 sends no source account
            assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT, name
    star_ok = {"elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags", "elasticmapreduce:ListClusters",
               "cloudwatch:PutMetricData"}   # no resource-level form: scoped by its namespace below
    for name, doc in policies(resources).items():
        for statement in doc["Statement"]:
            actions, targets = listed(statement["Action"]), listed(statement["Resource"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (name, statement["Sid"])
            if "*" in targets and not all(a.startswith("logs:") for a in actions):
                assert set(actions) <= star_ok, (name, statement["Sid"])
                if "elasticmapreduce:RunJobFlow" in actions:
                    assert statement["Condition"]["StringEquals"]["aws:RequestTag/project"] == NAME
                if "cloudwatch:PutMetricData" in actions:
                    assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == NAME


def test_the_cluster_can_read_raw_data_but_never_delete_or_rewrite_it(resources):
    doc = policies(resources)["EmrInstancePolicy"]
    raw = f"arn:aws:s3:::{BUCKET}/lake/raw/landed.csv"

    def effect(action: str) -> str:
        return evaluate(doc, action, raw, {})
    assert effect("s3:GetObject") == "Allow"
    assert effect("s3:DeleteObject") == effect("s3:PutObject") == effect("s3:DeleteObjectVersion") == "Deny"
    assert evaluate(doc, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/lake/curated/x.parquet", {}) == "Allow"
    bucket = resolve(resources["BucketPolicy"]["Properties"]["PolicyDocument"])
    assert evaluate(bucket, "s3:DeleteObject", raw, {"aws:SecureTransport": "true"}) == "Deny"   # and the bucket says so too


def test_the_cluster_can_write_every_lake_table(resources):
    """Each Iceberg table lives under the Glue database's location, lake/<table>/ (stack: LocationUri)."""
    from spark_jobs import tables

    doc = policies(resources)["EmrInstancePolicy"]
    refused = [zone for zone in tables.ZONES for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
               if evaluate(doc, action, f"arn:aws:s3:::{BUCKET}/lake/{zone}/data/x.parquet", {}) != "Allow"]
    assert not refused


def test_the_key_policy_names_its_users_and_gives_no_one_everything(resources):
    statements = {s["Sid"]: s for s in resolve(resources["Key"]["Properties"]["KeyPolicy"])["Statement"]}
    users = statements["KeyUsers"]["Principal"]["AWS"]
    assert users == [f"arn:aws:iam::{ACCOUNT}:role/nlp-batch-{role}" for role in (
        "emr-instance", "emr-service", "pipeline", "cleanup", "circuit-breaker")] + PARAMETERS["OperatorArns"]
    for sid, statement in statements.items():
        actions = listed(statement["Action"])
        assert "kms:*" not in actions, sid
        if statement["Principal"].get("AWS") == f"arn:aws:iam::{ACCOUNT}:root" and sid != "RdsAndSecretsManagerForTheRegistry":
            assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} & set(actions), sid   # administers only
    assert statements["RdsAndSecretsManagerForTheRegistry"]["Condition"]["StringEquals"]["kms:ViaService"]
    bootstrap = {s["Sid"]: s for s in resolve(template.bootstrap()["Resources"]["Key"]["Properties"]["KeyPolicy"])["Statement"]}
    assert bootstrap["KeyUsers"]["Principal"]["AWS"] == PARAMETERS["OperatorArns"]   # before the roles exist


def bucket_policy() -> dict:
    return resolve(TEMPLATE["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"])


def test_bucket_policy_passes_parliament():
    from parliament import analyze_policy_string

    findings = analyze_policy_string(json.dumps(bucket_policy()), include_community_auditors=True).findings
    assert [(f.issue, f.detail) for f in findings] == []


# --- the bucket policy ------------------------------------------------------------------------------------

def evaluate(policy: dict, action: str, resource: str, context: dict[str, str]) -> str:
    """IAM's answer from this policy alone: Deny wins, then Allow, else no decision. Supports the
    condition operators the policies use and refuses any other (moto ignores them instead)."""
    operators = {
        "Bool": lambda have, want: have is not None and have.lower() == want.lower(),
        "StringEquals": lambda have, want: have is not None and have == want,
        "StringNotEquals": lambda have, want: have is None or have != want,   # absent keys match negations
        "ArnNotEquals": lambda have, want: have is None or not fnmatch.fnmatchcase(have, want),
        "ArnLike": lambda have, want: have is not None and fnmatch.fnmatchcase(have, want),
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
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy() | {
        "Statement": [dict(st, Resource=[r.replace("nlp-bucket", bucket) for r in listed(st["Resource"])])
                      for st in bucket_policy()["Statement"] if "AWS" not in st["Principal"]]}))
    with pytest.raises(ClientError, match="403|AccessDenied|Forbidden"):
        s3.get_object(Bucket=bucket, Key="lake/x.json")

"""`make preflight TARGET=emr`: what a run on AWS needs, one line each, with what to do when it is missing.

A FAIL blocks a run (exit 2); a WARN is worth knowing but does not.
"""
from __future__ import annotations

from typing import Callable

from .artifacts import load_json
from .launcher import Deployment

EMR_TAG = "for-use-with-amazon-emr-managed-policies"
# Service Quotas codes of EC2's on-demand vCPU limits, by instance family letter
VCPU_QUOTAS = {"g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
               "standard": ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")}


def needed_vcpus(profile: dict) -> dict[str, int]:
    """vCPUs the profile's cluster takes per quota (from the profile's node sizes and instance groups)."""
    sizes = {"m5.xlarge": 4, "m5.2xlarge": 8, "g5.2xlarge": 8}
    sizes.update({k: v["vcpu"] for k, v in profile.get("Node", {}).items()})
    need: dict[str, int] = {}
    for g in profile["InstanceGroups"]:
        family = "g" if g["InstanceType"].startswith(("g", "vt")) else "standard"
        need[family] = need.get(family, 0) + sizes[g["InstanceType"]] * g["InstanceCount"]
    return need


def quota_line(family: str, limit: float | None, need: int) -> tuple[str, str]:
    code, name = VCPU_QUOTAS[family]
    if limit is None:
        return "WARN", (f"vCPU quota {name} ({code}) could not be read: check it is at least {need} in the "
                        "Service Quotas console")
    if limit < need:
        return "FAIL", (f"vCPU quota {name} ({code}) is {limit:g}, the cluster needs {need}: request an increase "
                        f"(aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
                        f"--desired-value {need})")
    return "ok", f"vCPU quota {name}: {limit:g} (the cluster takes {need})"


def run(deployment: Deployment, out: Callable[[str], None] = print) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    s, lines = deployment.s, []

    def say(level: str, text: str) -> None:
        lines.append(level)
        out(f"{level:<4} {text}")

    try:
        who = deployment.client("sts").get_caller_identity()
        say("ok", f"credentials: {who['Arn']} (account {who['Account']})")
    except (BotoCoreError, ClientError) as exc:
        say("FAIL", f"credentials: none usable ({type(exc).__name__}): set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY, then `aws sts get-caller-identity`")
        return 2
    import boto3

    regions = boto3.session.Session().get_available_regions("emr")
    if s.aws_region in regions:
        say("ok", f"region: {s.aws_region}")
    else:
        say("FAIL", f"region: {s.aws_region!r} has no EMR: set NLP_AWS_REGION (for example us-east-1)")
    stack = deployment.stack()
    outputs: dict[str, str] = {}
    if stack and stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        say("ok", f"stack: {deployment.name} {stack['StackStatus']} (code {outputs.get('CodeVersion')})")
    else:
        state = stack["StackStatus"] if stack else "not deployed"
        say("FAIL", f"stack: {deployment.name} {state}: run `make deploy` (NLP_AWS_BUCKET, NLP_AWS_VPC_ID, "
                    "NLP_EMR_SUBNET_ID, NLP_AWS_DB_SUBNET_IDS)")
    subnet = outputs.get("SubnetId") or s.emr_subnet_id
    if not subnet:
        say("FAIL", "subnet: none set: NLP_EMR_SUBNET_ID (a private subnet with VPC endpoints)")
    else:
        try:
            (found,) = deployment.client("ec2").describe_subnets(SubnetIds=[subnet])["Subnets"]
            tags = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
            if tags.get(EMR_TAG) == "true":
                say("ok", f"subnet: {subnet} is tagged {EMR_TAG}=true")
            else:
                say("FAIL", f"subnet: {subnet} lacks the tag {EMR_TAG}=true that AmazonEMRServicePolicy_v2 needs: "
                            f"aws ec2 create-tags --resources {subnet} --tags Key={EMR_TAG},Value=true")
        except ClientError as exc:
            say("FAIL", f"subnet: {subnet} cannot be read ({exc.response['Error']['Code']}): check NLP_EMR_SUBNET_ID")
    try:
        deployment.client("iam").get_role(RoleName="AWSServiceRoleForEMRCleanup")
        say("ok", "EMR service-linked role AWSServiceRoleForEMRCleanup exists")
    except ClientError:
        say("FAIL", "EMR service-linked role AWSServiceRoleForEMRCleanup is missing; the first cluster creates it only "
                    "with iam:CreateServiceLinkedRole: aws iam create-service-linked-role --aws-service-name "
                    "elasticmapreduce.amazonaws.com")
    profile = load_json("profiles.json")[s.emr_profile]
    quotas = deployment.client("service-quotas")
    for family, need in needed_vcpus(profile).items():
        try:
            limit = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=VCPU_QUOTAS[family][0])["Quota"]["Value"]
        except (BotoCoreError, ClientError):
            limit = None
        say(*quota_line(family, limit, need))
    bucket = outputs.get("BucketName") or s.aws_bucket
    if bucket:
        try:
            found = deployment.client("s3").list_objects_v2(Bucket=bucket, Prefix="lake/raw/", Delimiter="/")
            dates = sorted(p["Prefix"].split("=", 1)[-1].strip("/") for p in found.get("CommonPrefixes", [])
                           if "ingest_date=" in p["Prefix"])
            if dates:
                say("ok", f"landed data: {len(dates)} dates in s3://{bucket}/lake/raw/, latest {dates[-1]}")
            else:
                say("FAIL", f"landed data: nothing under s3://{bucket}/lake/raw/: NLP_LAKE_ROOT=s3a://{bucket}/lake "
                            "make land FILE=... DATE=... (or make replay)")
        except ClientError as exc:
            say("FAIL", f"landed data: s3://{bucket} cannot be listed ({exc.response['Error']['Code']})")
    else:
        say("FAIL", "landed data: no bucket known: set NLP_AWS_BUCKET or deploy the stack")
    if stack and not any(p["ParameterKey"] == "TlsCertificatesS3Object" and p.get("ParameterValue")
                         for p in stack.get("Parameters", [])):
        say("WARN", "in-transit encryption is off: set NLP_EMR_TLS_CERTIFICATES to a PEM zip in S3 and make deploy")
    blocking = lines.count("FAIL")
    out(f"{'ready' if not blocking else f'{blocking} thing(s) block a run'}: {s.emr_profile} profile, stack "
        f"{deployment.name}, {s.aws_region}")
    return 2 if blocking else 0

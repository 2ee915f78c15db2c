"""Run the pipeline on Amazon EMR: what `make run TARGET=emr` calls (DRY_RUN=1 prints the plan).

    python -m spark_jobs.emr_launcher run|deploy|destroy|cost [--dry-run] [--train] [--any-setting value]

run      build the wheel, upload code and configuration to s3://<bucket>/artifacts/<version>/, deploy,
         then start the state machine for --date (default: the latest landed date) and follow it to
         its end; with --emr-launch cluster, create a cluster, add one step per stage and follow those
deploy   create or update the AWS resources described by the JSON files in emr/: bucket protection
         (SSE-KMS, Block Public Access, bucket policy), KMS key, SNS topic, IAM roles, the state
         machines and the EventBridge rules; the state machines run the artifacts of this version
destroy  delete what deploy created and terminate the project's running clusters; the bucket and the
         KMS key (your data) are kept, and the commands to remove them are printed
cost     the estimated cost of one run for the configured EMR profile

Every AWS request goes through boto3, so AWS_ENDPOINT_URL points it at a moto server in tests.
With --dry-run each request is printed with its parameters and none is sent; values only AWS can
tell (account id, key ARN, cluster id) stay as ${...} placeholders.
"""
from __future__ import annotations

import argparse
import atexit
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import settings as settings_mod
from .settings import PROJECT_ROOT, Settings, SettingsError

EMR_DIR = PROJECT_ROOT / "emr"
APP_DIR = "/opt/nlp-batch"        # where bootstrap.sh installs the artifacts on every node
WORK_DIR = "/mnt/nlp-batch"       # scratch space on the primary node
LAKE_PREFIX = "lake"
EXIT_FAILED, EXIT_BAD_SETTING, EXIT_BLOCKED = 1, 2, 3
TOKEN = re.compile(r"\$\{(\w+)\}")

# Settings that describe this machine or the deployment itself; everything else is forwarded to EMR.
NOT_FORWARDED = {
    "target", "lake_root", "mlflow_tracking_uri", "mlflow_artifact_root", "warehouse_path", "reports_dir",
    "expectations_dir", "sources_file", "dbt_project_dir", "dbt_target", "notebooks_dir", "corpus_path",
    "embeddings_model_dir", "spark_master", "spark_driver_memory", "jars_dir", "gpu", "date",
}
ARTIFACT_DIRS = ("conf", "expectations", "notebooks", "dbt")
SKIPPED_NAMES = {"target", "logs", "dbt_packages", "__pycache__", ".ipynb_checkpoints", ".user.yml"}
ROLE_FILES = ("emr_service_role", "emr_instance_role", "pipeline_role", "circuit_breaker_role", "events_role")
RULE_FILES = ("schedule", "landing", "pipeline_failed")


def load(name: str) -> Any:
    return json.loads((EMR_DIR / name).read_text())


def render(obj: Any, values: dict[str, Any]) -> Any:
    """Fill every ${Key}; a string that is exactly "${Key}" takes the value as it is (an object too).
    Keys without a value stay as placeholders (a dry run prints them)."""
    if isinstance(obj, dict):
        return {k: render(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [render(v, values) for v in obj]
    if isinstance(obj, str):
        whole = TOKEN.fullmatch(obj)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return TOKEN.sub(lambda m: str(values.get(m.group(1), m.group(0))), obj)
    return obj


def placeholders(obj: Any) -> set[str]:
    return set(TOKEN.findall(json.dumps(obj, default=str)))


def without_comment(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "Comment"}


def tune_definition(definition: dict, retry_interval: int, poll_seconds: int) -> dict:
    """The deployed ASL with this deployment's timing: every Retry's interval, every Wait's seconds."""
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for retrier in node.get("Retry", []):
                retrier["IntervalSeconds"] = retry_interval
            if node.get("Type") == "Wait" and "Seconds" in node:
                node["Seconds"] = poll_seconds
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(definition)
    return definition


def merge_configurations(*lists: list[dict]) -> list[dict]:
    """EMR configuration classifications; a later list's properties win for the same classification."""
    merged: dict[str, dict] = {}
    for configs in lists:
        for c in configs:
            into = merged.setdefault(c["Classification"], {"Classification": c["Classification"], "Properties": {}})
            into["Properties"].update(c.get("Properties", {}))
            if "Configurations" in c:
                into["Configurations"] = c["Configurations"]
    return list(merged.values())


def estimate_cost(profile_name: str) -> tuple[float, list[str]]:
    """(dollars per run, explanation lines) from emr/pricing.json for a profile's instance groups."""
    prices, profile = load("pricing.json"), load("profiles.json")[profile_name]
    hours = prices["estimated_run_hours"][profile_name]
    total, lines = 0.0, []
    for group in profile["InstanceGroups"]:
        price = prices["instances"][group["InstanceType"]]
        rate = price["ec2"] + price["emr"]
        cost = group["InstanceCount"] * rate * hours
        total += cost
        lines.append(f"  {group['InstanceCount']} x {group['InstanceType']:<11} {group['InstanceRole'].lower():<6} "
                     f"(EC2 ${price['ec2']:.3f} + EMR ${price['emr']:.3f})/h x {hours:g} h = ${cost:.2f}")
    lines.append(f"  ~${total:.2f} per run ({profile_name} profile, {prices['region']} on-demand, "
                 f"{prices['currency']}; an estimate: see emr/pricing.json)")
    return total, lines


class Launcher:
    """The deployment for one settings object: renders emr/*.json and sends (or prints) the requests."""

    def __init__(self, settings: Settings, dry_run: bool = False, out: Callable[[str], None] = print):
        self.s, self.dry_run, self.out = check(settings), dry_run, out
        self.name = settings.aws_stack_name
        self.bucket = settings.aws_bucket
        self.profile = load("profiles.json")[settings.emr_profile]
        self.version = re.sub(r"[^A-Za-z0-9._-]", "-", code_version())
        self.artifacts_uri = f"s3://{self.bucket}/artifacts/{self.version}"
        self._session = None
        self._clients: dict[str, Any] = {}
        self.values: dict[str, Any] = {
            "Name": self.name, "Region": settings.aws_region, "Bucket": self.bucket, "LakePrefix": LAKE_PREFIX,
            "Version": self.version, "Profile": settings.emr_profile, "ArtifactsUri": self.artifacts_uri,
            "ModelsUri": f"s3://{self.bucket}/models", "Schedule": settings.aws_schedule,
            "AthenaWorkgroup": settings.athena_workgroup, "SparkNlpPackage": self.profile["SparkNlpPackage"],
            "PipelineStateMachineName": f"{self.name}-pipeline",
            "ScheduleRuleName": f"{self.name}-schedule", "LandingRuleName": f"{self.name}-landing",
            "KmsKeyArn": "${KmsKeyArn}",   # known once the key is found or created
        }
        self.set_account("${AccountId}")

    # --- requests ----------------------------------------------------------------------------------
    def client(self, service: str):
        if service not in self._clients:
            import boto3

            # a session of our own: credentials and endpoint as the environment says now
            self._session = self._session or boto3.session.Session(region_name=self.s.aws_region)
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    def call(self, service: str, operation: str, why: str, **params: Any) -> dict:
        """One AWS request: printed in a dry run, otherwise sent; returns the response ({} in a dry run)."""
        api = "".join(w[:1].upper() + w[1:] for w in operation.split("_"))
        if self.dry_run:
            self.out(f"{service} {api}  # {why}")
            self.out("  " + json.dumps(params, default=str, indent=2).replace("\n", "\n  "))
            return {}
        left = placeholders(params)
        if left:
            raise SettingsError(f"{service} {api} ({why}): no value for {', '.join('${' + k + '}' for k in sorted(left))}")
        self.out(f"  {service} {api}: {why}")
        return getattr(self.client(service), operation)(**params)

    def call_unless(self, codes: tuple[str, ...], service: str, operation: str, why: str, **params: Any) -> dict | None:
        """Like call, but None when AWS answers with one of `codes` (it exists already, it is gone)."""
        from botocore.exceptions import ClientError

        try:
            return self.call(service, operation, why, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in codes:
                return None
            raise

    # --- names and ARNs ------------------------------------------------------------------------------
    def set_account(self, account: str) -> None:
        region, name = self.s.aws_region, self.name
        sm = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
        self.values.update({
            "AccountId": account,
            "PipelineStateMachineArn": f"{sm}-pipeline",
            "EmrStepStateMachineArn": f"{sm}-emr-step",
            "CircuitBreakerStateMachineArn": f"{sm}-circuit-breaker",
            "TopicArn": f"arn:aws:sns:{region}:{account}:{name}-alerts",
            "EventsRoleArn": f"arn:aws:iam::{account}:role/{name}-events",
        })

    def resolve_account(self) -> None:
        """The account id in every ARN: asked of STS once (a dry run keeps the placeholder)."""
        if not self.dry_run and self.values["AccountId"] == "${AccountId}":
            self.set_account(self.client("sts").get_caller_identity()["Account"])

    def role_arn(self, role: str) -> str:
        return f"arn:aws:iam::{self.values['AccountId']}:role/{self.name}-{role}"

    # --- deploy ----------------------------------------------------------------------------------------
    def deploy(self) -> None:
        self.out(f"deploy {self.name} {self.version} to {self.s.aws_region}, bucket {self.bucket}"
                 + (" (dry run: nothing is sent)" if self.dry_run else ""))
        self.resolve_account()
        self.ensure_key()
        self.ensure_bucket()
        self.ensure_topic()
        for role in ROLE_FILES:
            self.ensure_role(render(load(f"iam/{role}.json"), self.values))
        self.upload_artifacts()
        self.ensure_state_machines()
        self.ensure_rules()
        self.call("s3", "put_bucket_policy", "deny non-TLS requests and puts with another encryption",
                  Bucket=self.bucket, Policy=json.dumps(render(load("iam/bucket_policy.json"), self.values)))

    def ensure_key(self) -> None:
        alias = f"alias/{self.name}"
        found = None if self.dry_run else self.call_unless(
            ("NotFoundException",), "kms", "describe_key", "find the project key", KeyId=alias)
        if found:
            self.values["KmsKeyArn"] = found["KeyMetadata"]["Arn"]
            return
        created = self.call("kms", "create_key", "the key of the bucket, the topic and the registry copies",
                            Description=f"{self.name}: lake, artifacts, logs and notifications",
                            Tags=[{"TagKey": "project", "TagValue": self.name}])
        arn = created.get("KeyMetadata", {}).get("Arn", "${KmsKeyArn}")
        self.values["KmsKeyArn"] = arn
        self.call("kms", "create_alias", "name it", AliasName=alias, TargetKeyId=arn)
        self.call("kms", "enable_key_rotation", "yearly rotation", KeyId=arn)

    def ensure_bucket(self) -> None:
        b = self.bucket
        where = {} if self.s.aws_region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": self.s.aws_region}}
        self.call_unless(("BucketAlreadyOwnedByYou",), "s3", "create_bucket", "the project bucket", Bucket=b, **where)
        self.call("s3", "put_public_access_block", "no public access, ever", Bucket=b,
                  PublicAccessBlockConfiguration={k: True for k in (
                      "BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")})
        self.call("s3", "put_bucket_encryption", "SSE-KMS with the project key by default", Bucket=b,
                  ServerSideEncryptionConfiguration={"Rules": [{
                      "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                             "KMSMasterKeyID": self.values["KmsKeyArn"]},
                      "BucketKeyEnabled": True}]})
        self.call("s3", "put_bucket_notification_configuration", "object events to EventBridge (landing rule)",
                  Bucket=b, NotificationConfiguration={"EventBridgeConfiguration": {}})

    def ensure_topic(self) -> None:
        self.call("sns", "create_topic", "failure and circuit-breaker notifications", Name=f"{self.name}-alerts",
                  Attributes={"KmsMasterKeyId": self.values["KmsKeyArn"]},
                  Tags=[{"Key": "project", "Value": self.name}])
        if self.s.aws_notify_email:
            self.call("sns", "subscribe", "mail the notifications (confirm the first mail)",
                      TopicArn=self.values["TopicArn"], Protocol="email", Endpoint=self.s.aws_notify_email)

    def ensure_role(self, doc: dict) -> None:
        name, trust = doc["RoleName"], json.dumps(doc["AssumeRolePolicyDocument"])
        created = self.call_unless(("EntityAlreadyExists",), "iam", "create_role", f"role {name}", RoleName=name,
                                   AssumeRolePolicyDocument=trust, Tags=[{"Key": "project", "Value": self.name}])
        if created is None:
            self.call("iam", "update_assume_role_policy", f"{name} exists: refresh its trust policy",
                      RoleName=name, PolicyDocument=trust)
        self.call("iam", "put_role_policy", f"{name}: its permissions", RoleName=name, PolicyName=name,
                  PolicyDocument=json.dumps(doc["Policy"]))
        for arn in doc["ManagedPolicyArns"]:
            self.call("iam", "attach_role_policy", f"{name}: {arn.rsplit('/', 1)[-1]}", RoleName=name, PolicyArn=arn)
        if "InstanceProfileName" in doc:
            profile = doc["InstanceProfileName"]
            self.call_unless(("EntityAlreadyExists",), "iam", "create_instance_profile", "for the cluster nodes",
                             InstanceProfileName=profile)
            self.call_unless(("LimitExceeded",), "iam", "add_role_to_instance_profile", f"{name} in it",
                             InstanceProfileName=profile, RoleName=name)

    def state_machine_definitions(self) -> dict[str, tuple[str, dict]]:
        """name -> (role, rendered ASL) for the three state machines, with this deployment's timing."""
        values = dict(self.values, ClusterRequest=self.cluster_request())
        out = {}
        for name, role, path in (("emr-step", "pipeline", "emr_step.asl.json"),
                                 ("pipeline", "pipeline", "statemachine.asl.json"),
                                 ("circuit-breaker", "circuit-breaker", "circuit_breaker.asl.json")):
            definition = tune_definition(render(load(path), values), self.s.sfn_retry_interval_seconds,
                                         self.s.emr_poll_seconds)
            out[f"{self.name}-{name}"] = (role, definition)
        return out

    def ensure_state_machines(self) -> None:
        for name, (role, definition) in self.state_machine_definitions().items():
            arn = f"arn:aws:states:{self.s.aws_region}:{self.values['AccountId']}:stateMachine:{name}"
            body = {"definition": json.dumps(definition), "roleArn": self.role_arn(role)}
            deployed = not self.dry_run and self.call_unless(
                ("StateMachineDoesNotExist",), "stepfunctions", "describe_state_machine", f"is {name} there?",
                stateMachineArn=arn) is not None
            if deployed:
                self.call("stepfunctions", "update_state_machine", f"{name}: deploy this version",
                          stateMachineArn=arn, **body)
            else:
                self.once_role_is_usable(lambda: self.call(
                    "stepfunctions", "create_state_machine", f"state machine {name}", name=name,
                    type="STANDARD", **body, tags=[{"key": "project", "value": self.name}]))

    def once_role_is_usable(self, request: Callable[[], dict], tries: int = 6) -> dict:
        """A role created seconds ago is not yet assumable everywhere (IAM is eventually consistent):
        Step Functions refuses it for a while. Ask again, 10 s apart."""
        from botocore.exceptions import ClientError

        for attempt in range(1, tries + 1):
            try:
                return request()
            except ClientError as exc:
                if attempt == tries or "assume" not in str(exc):
                    raise
                self.out("  (waiting for IAM to propagate the new role)")
                time.sleep(10)

    def ensure_rules(self) -> None:
        for rule_file in RULE_FILES:
            doc = render(load(f"eventbridge/{rule_file}.json"), self.values)
            rule = dict(doc["Rule"])
            if "EventPattern" in rule:
                rule["EventPattern"] = json.dumps(rule["EventPattern"])
            self.call("events", "put_rule", doc["Comment"], **rule)
            self.call("events", "put_targets", f"{rule['Name']} -> {doc['Target']['Arn'].rsplit(':', 1)[-1]}",
                      Rule=rule["Name"], Targets=[doc["Target"]])

    # --- artifacts ---------------------------------------------------------------------------------------
    def emr_settings(self) -> dict[str, str]:
        """conf/nlp.env: the NLP_* settings the jobs read on EMR (plus what run_stage.sh needs)."""
        env = {k: v for k, v in self.s.as_env().items()
               if k[4:].lower() not in NOT_FORWARDED and not k.startswith(("NLP_AWS_", "NLP_EMR_", "NLP_SFN_"))}
        model = Path(self.s.path("embeddings_model_dir")).name
        env.update({
            "NLP_TARGET": "emr", "NLP_LAKE_ROOT": f"s3a://{self.bucket}/{LAKE_PREFIX}", "NLP_DBT_TARGET": "athena",
            "NLP_SPARK_MASTER": "yarn",
            "NLP_MLFLOW_TRACKING_URI": f"sqlite:///{WORK_DIR}/mlflow/mlflow.db",
            "NLP_MLFLOW_ARTIFACT_ROOT": f"{WORK_DIR}/mlflow/artifacts",
            "NLP_WAREHOUSE_PATH": f"{WORK_DIR}/warehouse/nlp.duckdb", "NLP_REPORTS_DIR": f"{WORK_DIR}/reports",
            "NLP_EXPECTATIONS_DIR": f"{APP_DIR}/expectations", "NLP_SOURCES_FILE": f"{APP_DIR}/conf/sources.yml",
            "NLP_DBT_PROJECT_DIR": f"{APP_DIR}/dbt", "NLP_NOTEBOOKS_DIR": f"{APP_DIR}/notebooks",
            "NLP_EMBEDDINGS_MODEL_DIR": f"{APP_DIR}/models/{model}",
            "NLP_ATHENA_S3_STAGING_DIR": f"s3://{self.bucket}/athena-results/",
            "NLP_CODE_VERSION": self.version, "AWS_REGION": self.s.aws_region,
            "AWS_DEFAULT_REGION": self.s.aws_region, "EMR_WORK_DIR": WORK_DIR,
            "EMR_MLFLOW_S3": f"s3://{self.bucket}/mlflow/", "EMR_REPORTS_S3": f"s3://{self.bucket}/reports/",
        })
        env.update(self.profile["Settings"])
        return env

    def artifact_files(self) -> list[tuple[Path, str]]:
        """(local file, key under artifacts/<version>/) for everything bootstrap.sh installs."""
        files = [(PROJECT_ROOT / "requirements.lock", "requirements.lock"),
                 (EMR_DIR / "bootstrap.sh", "emr/bootstrap.sh"), (EMR_DIR / "run_stage.sh", "emr/run_stage.sh")]
        for folder in ARTIFACT_DIRS:
            for path in sorted((PROJECT_ROOT / folder).rglob("*")):
                rel = path.relative_to(PROJECT_ROOT)
                if path.is_file() and not SKIPPED_NAMES.intersection(rel.parts):
                    files.append((path, rel.as_posix()))
        return files

    def upload_artifacts(self) -> None:
        files = self.artifact_files()
        env_text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(self.emr_settings().items()))
        model_dir = Path(self.s.path("embeddings_model_dir"))
        models = [(p, f"models/{model_dir.name}/{p.relative_to(model_dir).as_posix()}")
                  for p in sorted(model_dir.rglob("*")) if p.is_file()]
        if not models:
            raise SettingsError(f"setting embeddings_model_dir={model_dir}: no model files to upload")
        if self.dry_run:
            self.out(f"build the wheel: {sys.executable} -m pip wheel --no-deps {PROJECT_ROOT} -w <tmp>")
            self.out(f"s3 PutObject x {len(files) + 2}  # wheel, {len(files)} files of requirements.lock, emr/, "
                     f"{', '.join(ARTIFACT_DIRS)}, and conf/nlp.env -> {self.artifacts_uri}/")
            self.out("  conf/nlp.env:\n" + "".join(f"    {line}\n" for line in env_text.splitlines()).rstrip())
            self.out(f"s3 PutObject x <changed>  # {len(models)} model files of {model_dir} -> "
                     f"s3://{self.bucket}/models/{model_dir.name}/ (only those not there yet)")
            return
        s3 = self.client("s3")
        wheel = build_wheel()
        files.append((wheel, f"dist/{wheel.name}"))
        for path, key in files:
            s3.upload_file(str(path), self.bucket, f"artifacts/{self.version}/{key}")
        s3.put_object(Bucket=self.bucket, Key=f"artifacts/{self.version}/conf/nlp.env", Body=env_text.encode())
        there = {o["Key"]: o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"models/{model_dir.name}/") for o in page.get("Contents", [])}
        sent = [(p, k) for p, k in models if there.get(k) != p.stat().st_size]
        for path, key in sent:
            s3.upload_file(str(path), self.bucket, key)
        self.out(f"  uploaded {len(files) + 1} artifacts to {self.artifacts_uri}/ and "
                 f"{len(sent)} of {len(models)} model files to s3://{self.bucket}/models/{model_dir.name}/")

    # --- cluster and steps ------------------------------------------------------------------------------------
    def cluster_request(self) -> dict:
        """The RunJobFlow request: cluster.json + the profile's instances + configurations."""
        request = without_comment(render(load("cluster.json"), self.values))
        request["Instances"]["InstanceGroups"] = self.profile["InstanceGroups"]
        if self.s.emr_subnet_id:
            request["Instances"]["Ec2SubnetId"] = self.s.emr_subnet_id
        request["Configurations"] = render(
            merge_configurations(load("configurations.json"), self.profile["Configurations"]), self.values)
        return request

    def stage_steps(self, date: str, train: bool) -> list[dict]:
        spec = load("steps.json")
        return [{"Name": f"{stage} {date}", "ActionOnFailure": spec["ActionOnFailure"],
                 "HadoopJarStep": {"Jar": "command-runner.jar",
                                   "Args": [spec["Runner"], *render(args, {"Date": date})]}}
                for stage, args in spec["Stages"].items() if stage != "train" or train]

    # --- run ---------------------------------------------------------------------------------------------------
    def run(self, train: bool | None = None) -> int:
        self.deploy()
        return self.start(train)

    def start(self, train: bool | None = None) -> int:
        """Run the deployed pipeline for the date and follow it; the exit code says how it ended."""
        self.resolve_account()
        date = self.s.date or self.latest_landed_date()
        if train is None:
            train = self.registry_is_empty()
        if self.s.emr_launch == "cluster":
            return self.run_cluster(date, train)
        return self.run_state_machine(date, train)

    def latest_landed_date(self) -> str:
        if self.dry_run:
            return "${LatestLandedDate}"
        prefix = f"{LAKE_PREFIX}/raw/"
        found = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        dates = sorted(p["Prefix"][len(prefix):].strip("/").split("=", 1)[-1]
                       for p in found.get("CommonPrefixes", []) if "ingest_date=" in p["Prefix"])
        if not dates:
            raise SettingsError(f"no landed batch under s3://{self.bucket}/{prefix}: land one (for example "
                                f"NLP_LAKE_ROOT=s3a://{self.bucket}/{LAKE_PREFIX} make land FILE=... DATE=...) or set DATE")
        return dates[-1]

    def registry_is_empty(self) -> bool:
        """No MLflow registry in S3 yet: this run must train before it can score."""
        if self.dry_run:
            return True
        found = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix="mlflow/mlflow.db", MaxKeys=1)
        return not found.get("Contents")

    def run_state_machine(self, date: str, train: bool) -> int:
        name = f"{date}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        started = self.call("stepfunctions", "start_execution", f"run the pipeline for {date}",
                            stateMachineArn=self.values["PipelineStateMachineArn"], name=name,
                            input=json.dumps({"ingest_date": date, "train": train}))
        if self.dry_run:
            return 0
        return self.follow_execution(started["executionArn"], date)

    def follow_execution(self, execution_arn: str, date: str) -> int:
        sfn, seen = self.client("stepfunctions"), 0
        while True:
            status = sfn.describe_execution(executionArn=execution_arn)
            events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
                      for e in page["events"]]
            for event in events[seen:]:
                line = describe_event(event)
                if line:
                    self.out(f"[{event['timestamp']:%H:%M:%S}] {line}")
            seen = len(events)
            if status["status"] != "RUNNING":
                break
            time.sleep(self.s.emr_poll_seconds)
        if status["status"] == "SUCCEEDED":
            self.print_outputs(date)
            return 0
        error, cause = status.get("error", status["status"]), (status.get("cause") or "").splitlines()[:1]
        print(f"STOPPED: pipeline {status['name']} {status['status'].lower()}: {error}"
              f"{': ' + cause[0] if cause else ''} (execution {execution_arn})", file=sys.stderr)
        return EXIT_BLOCKED if error == "QualityGateBlocked" else EXIT_FAILED

    def run_cluster(self, date: str, train: bool) -> int:
        request = self.cluster_request()
        cluster = self.call("emr", "run_job_flow", f"a {self.s.emr_profile} cluster for {date}", **request)
        cluster_id = cluster.get("JobFlowId", "${ClusterId}")
        try:
            added = self.call("emr", "add_job_flow_steps", "one step per stage", JobFlowId=cluster_id,
                              Steps=self.stage_steps(date, train))
            if self.dry_run:
                return 0
            return self.follow_steps(cluster_id, added["StepIds"], date)
        finally:
            self.call("emr", "terminate_job_flows", "cleanup: the cluster never outlives the run",
                      JobFlowIds=[cluster_id])

    def follow_steps(self, cluster_id: str, step_ids: list[str], date: str) -> int:
        emr, last = self.client("emr"), {}
        while True:
            steps = [emr.describe_step(ClusterId=cluster_id, StepId=i)["Step"] for i in step_ids]
            for step in steps:
                state = step["Status"]["State"]
                if last.get(step["Id"]) != state:
                    self.out(f"[{time.strftime('%H:%M:%S')}] step {step['Name']}: {state.lower()}")
                    last[step["Id"]] = state
            states = [s["Status"]["State"] for s in steps]
            if all(s in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED") for s in states):
                break
            time.sleep(self.s.emr_poll_seconds)
        failed = [s for s in steps if s["Status"]["State"] != "COMPLETED"]
        if not failed:
            self.print_outputs(date)
            return 0
        first = failed[0]
        print(f"STOPPED: step {first['Name']} {first['Status']['State'].lower()} on cluster {cluster_id}; "
              f"logs under s3://{self.bucket}/emr-logs/{cluster_id}/steps/{first['Id']}/", file=sys.stderr)
        return EXIT_FAILED

    def print_outputs(self, date: str) -> None:
        lake = f"s3://{self.bucket}/{LAKE_PREFIX}"
        self.out(f"Done: pipeline for {date} succeeded ({self.version}, {self.s.emr_profile} profile).")
        self.out(f"  lake        {lake}/ (curated, quarantine, predictions/ingest_date={date}/, runs)")
        self.out(f"  warehouse   Athena {self.s.athena_schema} (workgroup {self.s.athena_workgroup}): "
                 f"select * from {self.s.athena_schema}.mart_daily_sentiment")
        self.out(f"  report      s3://{self.bucket}/reports/{date}/monitoring.html")
        self.out(f"  registry    s3://{self.bucket}/mlflow/   logs s3://{self.bucket}/emr-logs/")

    # --- destroy --------------------------------------------------------------------------------------------------
    def destroy(self) -> None:
        self.out(f"destroy {self.name} in {self.s.aws_region}" + (" (dry run: nothing is sent)" if self.dry_run else ""))
        self.resolve_account()
        if not self.dry_run:
            active = self.client("emr").list_clusters(ClusterStates=["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"])
            ids = [c["Id"] for c in active["Clusters"] if c["Name"].startswith(f"{self.name}-")]
            if ids:
                self.call("emr", "terminate_job_flows", "clusters of this project still up", JobFlowIds=ids)
        gone = ("ResourceNotFoundException", "NoSuchEntity", "NotFound", "StateMachineDoesNotExist")
        for rule_file in RULE_FILES:
            doc = render(load(f"eventbridge/{rule_file}.json"), self.values)
            self.call_unless(gone, "events", "remove_targets", "", Rule=doc["Rule"]["Name"], Ids=[doc["Target"]["Id"]])
            self.call_unless(gone, "events", "delete_rule", "", Name=doc["Rule"]["Name"])
        for name in ("pipeline", "emr-step", "circuit-breaker"):
            arn = f"arn:aws:states:{self.s.aws_region}:{self.values['AccountId']}:stateMachine:{self.name}-{name}"
            self.call_unless(gone, "stepfunctions", "delete_state_machine", "", stateMachineArn=arn)
        for role_file in ROLE_FILES:
            doc = render(load(f"iam/{role_file}.json"), self.values)
            role = doc["RoleName"]
            self.call_unless(gone, "iam", "delete_role_policy", "", RoleName=role, PolicyName=role)
            for arn in doc["ManagedPolicyArns"]:
                self.call_unless(gone, "iam", "detach_role_policy", "", RoleName=role, PolicyArn=arn)
            if "InstanceProfileName" in doc:
                self.call_unless(gone, "iam", "remove_role_from_instance_profile", "",
                                 InstanceProfileName=doc["InstanceProfileName"], RoleName=role)
                self.call_unless(gone, "iam", "delete_instance_profile", "", InstanceProfileName=doc["InstanceProfileName"])
            self.call_unless(gone, "iam", "delete_role", "", RoleName=role)
        self.call_unless(gone, "sns", "delete_topic", "", TopicArn=self.values["TopicArn"])
        self.out(f"Kept your data: bucket s3://{self.bucket} and key alias/{self.name}. To remove them too:\n"
                 f"  aws s3 rb s3://{self.bucket} --force\n"
                 f"  aws kms schedule-key-deletion --key-id $(aws kms describe-key --key-id alias/{self.name} "
                 f"--query KeyMetadata.Arn --output text) --pending-window-in-days 7")


def describe_event(event: dict) -> str | None:
    """One progress line for the execution history events worth a line."""
    kind = event["type"]
    if kind == "TaskStateEntered":
        return f"{event['stateEnteredEventDetails']['name']}: started"
    if kind == "TaskStateExited":
        return f"{event['stateExitedEventDetails']['name']}: finished"
    if kind == "TaskFailed":
        d = event.get("taskFailedEventDetails", {})
        return f"  task failed: {d.get('error', '?')} (retried while attempts are left, then notified)"
    if kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
        return kind.replace("Execution", "execution ").lower()
    return None


@functools.lru_cache(maxsize=1)
def build_wheel() -> Path:
    """This project's wheel (setuptools), the code bootstrap.sh installs on every node; built once per process."""
    dest = Path(tempfile.mkdtemp(prefix="nlp-batch-wheel-"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(PROJECT_ROOT),
                           "-w", str(dest)], capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the wheel of {PROJECT_ROOT} failed: {last}")
    return wheels[0]


def code_version() -> str:
    from .runlog import code_version as version

    return version()


def check(s: Settings, need_bucket: bool = True) -> Settings:
    """The settings AWS needs, each refused with the setting's name."""
    if need_bucket and not s.aws_bucket:
        raise SettingsError("setting aws_bucket is empty: set NLP_AWS_BUCKET to the S3 bucket of the deployment")
    if need_bucket and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", s.aws_bucket):
        raise SettingsError(f"setting aws_bucket={s.aws_bucket!r}: not a valid S3 bucket name")
    profiles = load("profiles.json")
    if s.emr_profile not in profiles:
        raise SettingsError(f"setting emr_profile={s.emr_profile!r}: expected one of {', '.join(profiles)} (emr/profiles.json)")
    if s.emr_launch not in ("statemachine", "cluster"):
        raise SettingsError(f"setting emr_launch={s.emr_launch!r}: expected 'statemachine' or 'cluster'")
    if s.emr_poll_seconds < 1 or s.sfn_retry_interval_seconds < 1:
        raise SettingsError("settings emr_poll_seconds and sfn_retry_interval_seconds must be at least 1")
    return s


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="spark_jobs.emr_launcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "deploy", "destroy", "cost"))
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the API requests, send nothing")
    parser.add_argument("--train", action="store_true", default=None,
                        help="run: train before scoring (default: only when s3://<bucket>/mlflow/ has no registry)")
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s = settings_mod.load(argv)
        if args.command == "cost":
            out("\n".join(estimate_cost(check(s, need_bucket=False).emr_profile)[1]))
            return 0
        launcher = Launcher(s, dry_run=args.dry_run, out=out)
        if args.command == "deploy":
            launcher.deploy()
        elif args.command == "destroy":
            launcher.destroy()
        else:
            if args.dry_run:
                out("\n".join(estimate_cost(s.emr_profile)[1]))
            return launcher.run(train=args.train)
        return 0
    except SettingsError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING
    except (BotoCoreError, ClientError) as exc:   # no credentials, access denied, throttled...
        print(f"ERROR: AWS refused or could not be reached ({s.aws_region}): {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

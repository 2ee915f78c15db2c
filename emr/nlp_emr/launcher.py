"""Deploy the stack, and plan, run and follow one pipeline execution.

Every AWS request goes through boto3, so AWS_ENDPOINT_URL points it at a moto server in tests. A dry
run prints each request with its parameters and sends none; values only AWS can tell stay as ${...}.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import time
from typing import Any, Callable

from spark_jobs.monitoring import cluster_dollars_per_hour, profile_price
from spark_jobs.settings import Settings, SettingsError

from . import template
from .artifacts import Artifacts, load_json

# exit codes, as spark_jobs/cli.py numbers them
EXIT_OK, EXIT_FAILED, EXIT_BAD_SETTING, EXIT_BLOCKED, EXIT_LOCKED, EXIT_ALERT = 0, 1, 2, 3, 8, 9
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE",
        "CREATE_FAILED", "DELETE_FAILED", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED"}


class Deployment:
    """One stack (settings.aws_stack_name) in one region."""

    def __init__(self, settings: Settings, dry_run: bool = False, out: Callable[[str], None] = print):
        self.s, self.dry_run, self.out = settings, dry_run, out
        self.name = settings.aws_stack_name
        self._session = None
        self._clients: dict[str, Any] = {}

    # --- requests ----------------------------------------------------------------------------------------
    def client(self, service: str):
        if service not in self._clients:
            import boto3

            self._session = self._session or boto3.session.Session(region_name=self.s.aws_region)
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    def call(self, service: str, operation: str, why: str, **params: Any) -> dict:
        """One AWS request that changes something: printed in a dry run, otherwise sent."""
        api = "".join(w[:1].upper() + w[1:] for w in operation.split("_"))
        if self.dry_run:
            self.out(f"{service} {api}  # {why}")
            shown = {k: (f"<{len(v):,} bytes>" if k in ("TemplateBody", "Body") else v) for k, v in params.items()}
            self.out("  " + json.dumps(shown, default=str, indent=2).replace("\n", "\n  "))
            return {}
        self.out(f"  {service} {api}: {why}")
        return getattr(self.client(service), operation)(**params)

    # --- the stack -----------------------------------------------------------------------------------------
    def stack(self) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client("cloudformation").describe_stacks(StackName=self.name)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    def outputs(self) -> dict[str, str]:
        """The deployed stack's outputs; a dry run without a stack shows them as placeholders."""
        found = None if self.dry_run and not self._can_read() else self.stack()
        if found is None or found["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE",
                                                          "UPDATE_ROLLBACK_COMPLETE"):
            if self.dry_run:
                names = [k for k in template.load()["Outputs"]]
                values = {k: "${" + k + "}" for k in names}
                values["BucketName"] = self.s.aws_bucket or "${BucketName}"
                return values
            state = found["StackStatus"] if found else "not deployed"
            raise SettingsError(f"stack {self.name} in {self.s.aws_region}: {state}; run `make deploy` first "
                                f"(make preflight TARGET=emr says what it needs)")
        return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}

    def _can_read(self) -> bool:
        """A dry run reads what it can (the stack, the bucket) when credentials work, and plans without."""
        try:
            self.client("sts").get_caller_identity()
            return True
        except Exception:
            return False

    def operator_arn(self) -> str:
        """The caller as an IAM principal the key policy can name (an assumed role -> its role)."""
        if self.dry_run and not self._can_read():
            return "${OperatorArn}"
        arn = self.client("sts").get_caller_identity()["Arn"]
        if ":assumed-role/" in arn:
            account = arn.split(":")[4]
            arn = f"arn:aws:iam::{account}:role/{arn.split('/')[1]}"
        return arn

    def parameters(self, previous: dict | None, version: str) -> dict[str, str]:
        s = self.s
        old = {p["ParameterKey"]: p["ParameterValue"] for p in (previous or {}).get("Parameters", [])}
        bucket = s.aws_bucket or old.get("BucketName", "")
        if not bucket:
            raise SettingsError("setting aws_bucket is empty: set NLP_AWS_BUCKET to the S3 bucket of the deployment")
        values = {
            "ProjectName": self.name, "BucketName": bucket, "CodeVersion": version,
            "UseExistingBucket": old.get("UseExistingBucket") or self.existing_bucket(bucket),
            "OperatorArns": old.get("OperatorArns") or self.operator_arn(),
            "NotifyEmail": s.aws_notify_email, "Schedule": s.aws_schedule,
            "MaintainAfterRun": str(s.aws_maintain_after_run).lower(),
            "VpcId": s.aws_vpc_id or old.get("VpcId", ""), "SubnetId": s.emr_subnet_id or old.get("SubnetId", ""),
            "DatabaseSubnetIds": s.aws_db_subnet_ids or old.get("DatabaseSubnetIds", ""),
            "TlsCertificatesS3Object": s.emr_tls_certificates, "PollSeconds": str(s.emr_poll_seconds),
            "RetryIntervalSeconds": str(s.sfn_retry_interval_seconds),
            "StageTimeoutSeconds": str(s.emr_stage_timeout_seconds),
            "ClusterStartPolls": str(s.emr_cluster_start_polls), "MartsDatabaseName": s.athena_schema,
            **alarm_thresholds(s),
        }
        needed = {"VpcId": "NLP_AWS_VPC_ID", "SubnetId": "NLP_EMR_SUBNET_ID",
                  "DatabaseSubnetIds": "NLP_AWS_DB_SUBNET_IDS"}
        missing = [env for key, env in needed.items() if not values[key]]
        if missing and not self.dry_run:
            raise SettingsError("the stack needs a VPC, a cluster subnet and two database subnets: set "
                                + ", ".join(missing))
        return values

    def existing_bucket(self, bucket: str) -> str:
        """'true' when the bucket exists already (the stack then uses it as it is)."""
        if self.dry_run and not self._can_read():
            return "false"
        from botocore.exceptions import ClientError

        try:
            self.client("s3").head_bucket(Bucket=bucket)
            return "true"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("403", "AccessDenied", "Forbidden"):
                raise SettingsError(f"setting aws_bucket={bucket!r}: the bucket exists and this account may not "
                                    "use it; choose another name") from None
            return "false"

    def deploy(self) -> int:
        """Create or update the stack; upload this version's artifacts; re-arm the triggers."""
        self.out(f"deploy stack {self.name} to {self.s.aws_region}"
                 + (" (dry run: nothing is sent)" if self.dry_run else ""))
        previous = None if (self.dry_run and not self._can_read()) else self.stack()
        if previous and previous["StackStatus"].endswith("_IN_PROGRESS"):
            raise SettingsError(f"stack {self.name} is {previous['StackStatus']}: wait for it to finish")
        from .artifacts import code_version

        cfn = "cloudformation"
        if previous and previous["StackStatus"] == "ROLLBACK_COMPLETE":   # a failed first creation: delete it
            self.call(cfn, "delete_stack", "remove the failed first creation", StackName=self.name)
            self.wait()
            previous = None
        version = code_version()
        params = self.parameters(previous, version)
        if previous is None:
            if params["UseExistingBucket"] == "false":
                boot = template.bootstrap()
                self.call(cfn, "create_stack", "first the key and the bucket (the whole template is staged there)",
                          StackName=self.name, TemplateBody=template.body(boot), OnFailure="ROLLBACK",
                          Parameters=[{"ParameterKey": k, "ParameterValue": params[k]} for k in boot["Parameters"]],
                          Tags=[{"Key": "project", "Value": self.name}])
                self.wait()
                first = None if self.dry_run else self.stack()
                if first is not None and first["StackStatus"] != "CREATE_COMPLETE":
                    print(f"STOPPED: stack {self.name} is {first['StackStatus']}: {self.first_failure()}",
                          file=sys.stderr)
                    return EXIT_FAILED
                request, operation = "the whole stack", "update_stack"
            else:
                request, operation = "the whole stack, in the existing bucket", "create_stack"
        else:
            request, operation = "update to this version", "update_stack"
        url = self.stage_template(params["BucketName"])
        body = {"StackName": self.name, "TemplateURL": url, "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
                "Tags": [{"Key": "project", "Value": self.name}]}
        from botocore.exceptions import ClientError

        try:
            self.call(cfn, operation, request, **body)
            self.wait()
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            self.out("  the stack is up to date")
        if self.dry_run:
            return EXIT_OK
        status = self.stack()["StackStatus"]
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            print(f"STOPPED: stack {self.name} is {status}: {self.first_failure()}", file=sys.stderr)
            return EXIT_FAILED
        outputs = self.outputs()
        Artifacts(self.s, outputs, self.out).upload(self.client("s3"))
        self.rearm(outputs)
        self.out(f"Deployed {self.name} ({version}): bucket s3://{outputs['BucketName']}, "
                 f"pipeline {outputs['PipelineStateMachineArn']}")
        return EXIT_OK

    def stage_template(self, bucket: str) -> str:
        """The whole template in the bucket (too large for TemplateBody); its URL for CloudFormation."""
        text = json.dumps(template.synthesize(), separators=(",", ":"))
        key = f"artifacts/cloudformation/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
        self.call("s3", "put_object", "stage the template", Bucket=bucket, Key=key, Body=text.encode())
        return f"https://{bucket}.s3.{self.s.aws_region}.amazonaws.com/{key}"

    def wait(self) -> None:
        if self.dry_run:
            return
        seen: set[str] = set()
        while True:
            stack = self.stack()
            if stack is None:
                return
            for e in reversed(self.client("cloudformation").describe_stack_events(StackName=self.name)["StackEvents"]):
                if e["EventId"] not in seen:
                    seen.add(e["EventId"])
                    if e["ResourceStatus"].endswith("FAILED"):
                        self.out(f"    {e['LogicalResourceId']}: {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}")
            if stack["StackStatus"] in DONE:
                return
            time.sleep(min(self.s.emr_poll_seconds, 10))

    def first_failure(self) -> str:
        for e in reversed(self.client("cloudformation").describe_stack_events(StackName=self.name)["StackEvents"]):
            if e["ResourceStatus"].endswith("FAILED"):
                return f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
        return "see the stack's events"

    def rearm(self, outputs: dict[str, str]) -> None:
        """After a deploy the triggers are on and the circuit breaker's count is zero (CloudFormation does
        not see a rule the breaker disabled: that is drift, not a template change)."""
        for rule in (f"{self.name}-schedule", f"{self.name}-landing"):
            self.call("events", "enable_rule", f"{rule} on", Name=rule)
        self.call("dynamodb", "put_item", "circuit breaker count to 0", TableName=outputs["RunsTable"],
                  Item={"pk": {"S": "circuit-breaker"}, "consecutive_failures": {"N": "0"}})

    def destroy(self) -> int:
        self.out(f"destroy stack {self.name} in {self.s.aws_region}" + (" (dry run: nothing is sent)" if self.dry_run else ""))
        stack = None if self.dry_run and not self._can_read() else self.stack()
        if stack is None and not self.dry_run:
            self.out("  no such stack")
            return EXIT_OK
        if not self.dry_run:
            active = self.client("emr").list_clusters(ClusterStates=["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"])
            ids = [c["Id"] for c in active["Clusters"] if c["Name"].startswith(f"{self.name}-")]
            if ids:
                self.call("emr", "terminate_job_flows", "clusters of this project still up", JobFlowIds=ids)
        self.call("cloudformation", "delete_stack", "everything but the data", StackName=self.name)
        self.wait()
        params = {p["ParameterKey"]: p["ParameterValue"] for p in (stack or {}).get("Parameters", [])}
        bucket = params.get("BucketName", "${BucketName}")
        self.out(f"Kept your data: bucket s3://{bucket} (and its access-log bucket), key alias/{self.name}, and a "
                 f"final snapshot of the registry database. To remove them too:\n"
                 f"  aws s3 rb s3://{bucket} --force\n"
                 f"  aws kms schedule-key-deletion --key-id alias/{self.name} --pending-window-in-days 7")
        return EXIT_OK

    # --- a run ---------------------------------------------------------------------------------------------
    def run(self, train: bool | None = None, rerun: bool = False) -> int:
        outputs = self.outputs()
        artifacts = Artifacts(self.s, outputs, self.out)
        date = self.s.date or self.latest_landed_date(outputs["BucketName"])
        if train is None:
            train = not self.has_trained(outputs)
        self.out(f"run {artifacts.version} ({self.s.emr_profile} profile) for {date} on stack {self.name}"
                 + (" (dry run: nothing is sent)" if self.dry_run else ""))
        if self.dry_run:
            self.out(f"s3 PutObject x <if missing>  # the artifacts of {artifacts.version} -> {artifacts.uri}/ "
                     "(code, conf/nlp.env, emr/cluster.json, wheelhouse, jar bundles, model)")
        else:
            artifacts.upload(self.client("s3"))
        payload = {"ingest_date": date, "train": train, "rerun": rerun, "version": artifacts.version}
        name = f"{date}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
        started = self.call("stepfunctions", "start_execution", f"run the pipeline for {date}",
                            stateMachineArn=outputs["PipelineStateMachineArn"], name=name, input=json.dumps(payload))
        if self.dry_run:
            return EXIT_OK
        return self.follow(started["executionArn"], date, outputs)

    def latest_landed_date(self, bucket: str) -> str:
        if self.dry_run and (bucket.startswith("${") or not self._can_read()):
            return "${LatestLandedDate}"
        prefix = "lake/raw/"
        found = self.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        dates = sorted(p["Prefix"][len(prefix):].strip("/").split("=", 1)[-1]
                       for p in found.get("CommonPrefixes", []) if "ingest_date=" in p["Prefix"])
        if not dates:
            raise SettingsError(f"no landed batch under s3://{bucket}/{prefix}: land one (for example "
                                f"NLP_LAKE_ROOT=s3a://{bucket}/lake make land FILE=... DATE=...) or set DATE")
        return dates[-1]

    def has_trained(self, outputs: dict[str, str]) -> bool:
        """A train stage has succeeded before (its record in the lake's runs table, an Iceberg table in
        the stack's Glue database): the registry has a model."""
        bucket = outputs["BucketName"]
        if self.dry_run and (bucket.startswith("${") or not self._can_read()):
            return False
        from spark_jobs import runlog

        lake = self.s.replace(lake_root=f"s3a://{bucket}/lake", lake_catalog="glue",
                              lake_schema=outputs["LakeDatabase"])
        return any(r["status"] == "succeeded" for r in runlog.records(lake, stage="train"))

    def follow(self, execution_arn: str, date: str, outputs: dict[str, str]) -> int:
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
        self.print_cost(status["name"])
        if status["status"] == "SUCCEEDED":
            outcome = json.loads(status.get("output") or "{}")
            if outcome.get("outcome") == "refused":
                print(f"STOPPED: pipeline {status['name']}: {date} is running or done in another execution "
                      f"(one per date; RERUN=1 runs a finished date again)", file=sys.stderr)
                return EXIT_LOCKED
            self.print_outputs(date, outputs)
            return EXIT_OK
        error = status.get("error", status["status"])
        cause = (status.get("cause") or "").splitlines()[:1]
        print(f"STOPPED: pipeline {status['name']} {status['status'].lower()}: {error}"
              f"{': ' + cause[0] if cause else ''} (execution {execution_arn})", file=sys.stderr)
        return {"QualityGateBlocked": EXIT_BLOCKED, "CriticalAlert": EXIT_ALERT}.get(error, EXIT_FAILED)

    def print_outputs(self, date: str, outputs: dict[str, str]) -> None:
        bucket = outputs["BucketName"]
        self.out(f"Done: pipeline for {date} succeeded ({self.s.emr_profile} profile).")
        self.out(f"  lake        s3://{bucket}/lake/ (curated, quarantine, predictions/ingest_date={date}/, runs)")
        self.out(f"  warehouse   Athena {outputs['MartsDatabase']} (workgroup {outputs['AthenaWorkGroup']}): "
                 f"select * from {outputs['MartsDatabase']}.mart_daily_sentiment")
        self.out(f"  report      s3://{bucket}/reports/{date}/monitoring.html")
        self.out(f"  registry    PostgreSQL {outputs['RegistryHost']} (MLflow), artifacts s3://{bucket}/mlflow/")
        self.out(f"  logs        s3://{bucket}/emr-logs/")

    def print_cost(self, execution_name: str) -> None:
        """What the run's cluster cost, from EMR's own timeline of it and emr/pricing.json."""
        cluster = self.cluster_of(execution_name)
        if cluster is None:
            self.out("cost: no cluster was started")
            return
        for line in measured_cost(self.client("emr"), cluster, load_json("pricing.json")):
            self.out(line)

    def cluster_of(self, execution_name: str) -> str | None:
        wanted = f"{self.name}-{execution_name}"
        for page in self.client("emr").get_paginator("list_clusters").paginate():
            for c in page["Clusters"]:
                if c["Name"] == wanted:
                    return c["Id"]
        return None


# stack parameter -> the setting whose threshold the monitoring report alerts on: the alarms fire with it
ALARM_THRESHOLDS = {"QuarantineShareCritical": "quarantine_share_critical", "PsiCritical": "psi_critical",
                    "LabelJsCritical": "label_js_critical", "TokenJsCritical": "token_js_critical",
                    "OovRateCritical": "oov_rate_critical", "EmbeddingDistanceCritical": "embedding_distance_critical",
                    "MacroF1DropCritical": "macro_f1_drop_critical", "RunSecondsWarning": "run_seconds_warning",
                    "DollarsPerMillionTextsWarning": "dollars_per_million_texts_warning"}


def alarm_thresholds(settings: Settings) -> dict[str, str]:
    return {param: f"{getattr(settings, name):g}" for param, name in ALARM_THRESHOLDS.items()}


def measured_cost(emr, cluster_id: str, pricing: dict) -> list[str]:
    """Lines: each step's instance-hours and dollars, and the cluster's, from EMR's timestamps (a cluster
    still up is counted until now). The price per hour is monitoring.cluster_dollars_per_hour, the one
    the monitoring report uses."""
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    groups = [{"InstanceType": g["InstanceType"], "InstanceCount": g.get("RequestedInstanceCount") or g.get(
        "RunningInstanceCount", 0)} for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]]
    per_hour = cluster_dollars_per_hour(pricing, groups)
    instances = sum(g["InstanceCount"] for g in groups)
    now = dt.datetime.now(dt.timezone.utc)

    def hours(timeline: dict, start: str, end: str) -> float:
        if not timeline.get(start):
            return 0.0
        return max(0.0, ((timeline.get(end) or now) - timeline[start]).total_seconds() / 3600)

    lines = []
    for step in reversed(emr.list_steps(ClusterId=cluster_id)["Steps"]):
        h = hours(step["Status"].get("Timeline", {}), "StartDateTime", "EndDateTime")
        lines.append(f"  step {step['Name']:<24} {step['Status']['State'].lower():<10} {h * 60:6.1f} min  "
                     f"{h * instances:6.2f} instance-h  ${h * per_hour:.2f}")
    total = hours(cluster["Status"].get("Timeline", {}), "CreationDateTime", "EndDateTime")
    lines.append(f"cost: cluster {cluster_id} up {total * 60:.1f} min x {instances} instances = "
                 f"{total * instances:.2f} instance-h x ${per_hour:.3f}/h = ${total * per_hour:.2f} "
                 f"({pricing['region']} on-demand EC2 + EMR, emr/pricing.json; EBS, S3, Athena and RDS not included)")
    return [lines[-1], *lines[:-1]]


def estimate(profile_name: str) -> list[str]:
    """The plan's figure before anything ran: the profile's price per hour x pricing.json's typical hours."""
    pricing = load_json("pricing.json")
    per_hour, hours = profile_price(pricing, load_json("profiles.json"), profile_name)
    return [f"  ~${per_hour * hours:.2f} per run ({profile_name} profile: ${per_hour:.3f}/h x {hours:g} h, "
            f"{pricing['region']} on-demand; an estimate: each run prints its measured cost)"]


def describe_event(event: dict) -> str | None:
    """One progress line for the execution history events worth a line."""
    kind = event["type"]
    if kind == "TaskStateEntered":
        return f"{event['stateEnteredEventDetails']['name']}: started"
    if kind == "TaskStateExited":
        return f"{event['stateExitedEventDetails']['name']}: finished"
    if kind == "TaskFailed":
        d = event.get("taskFailedEventDetails", {})
        return f"  task failed: {d.get('error', '?')}"
    if kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
        return kind.replace("Execution", "execution ").lower()
    return None

"""AWS served by a moto server on 127.0.0.1 (ThreadedMotoServer, in this process), fake credentials.

boto3 reaches it through AWS_ENDPOINT_URL, Spark through s3a settings, and moto's Step Functions
executes state machines ("execution mode"). The stack is deployed through moto's CloudFormation by the
project's launcher (emr/nlp_emr). EMR steps never finish by themselves in moto: the `emr_worker`
fixture plays the cluster, finishing each step the way a test asks.
"""
from __future__ import annotations

import datetime
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import make_settings, missing

EMR_PATH = str(Path(__file__).resolve().parents[2] / "emr")
if EMR_PATH not in sys.path:   # the launcher package lives with the infrastructure: emr/nlp_emr
    sys.path.insert(0, EMR_PATH)

REGION = "us-east-1"
ACCOUNT = "123456789012"   # moto's account
BUCKET = "nlp-test-bucket"


@pytest.fixture(scope="package")
def moto_url():
    """The server and the environment pointing at it, for the tests of this folder only."""
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in {
            "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            # moto's state machine interpreter calls the other services on localhost:$MOTO_PORT
            "MOTO_PORT": str(port),
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",   # the EMR service role attaches one of AWS's
        }.items():
            env.setenv(key, value)
        env.delenv("AWS_PROFILE", raising=False)
        requests.post(f"{url}/moto-api/config", timeout=10,
                      json={"stepfunctions": {"execute_state_machine": True}}).raise_for_status()
        normalise_like_aws(env)
        cloudformation_like_aws(env)
        yield url
    server.stop()


def normalise_like_aws(env: pytest.MonkeyPatch) -> None:
    """Two gaps in moto 5.2's port of LocalStack's state machine interpreter, filled as LocalStack and
    AWS behave, so that the ASL written for AWS runs unchanged (gaps of the fake, not of our code):
    - it leaves the request/response normalisation of task integrations stubbed out: AWS takes
      PascalCase parameters for every service (StateMachineArn for Step Functions' camelCase API),
      answers in PascalCase and reads a streamed S3 body into a string;
    - it maps aws-sdk service names to boto3 names for sfn only: AWS's `aws-sdk:eventbridge:*` is
      boto3's "events".
    """
    from botocore.session import get_session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    session = get_session()

    def operation(task, service, action):
        model = session.get_service_model(task._get_boto_service_name(service))
        names = {camel_to_snake_case(name): name for name in model.operation_names}
        return model.operation_model(names[task._get_boto_service_action(action)])

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        shape = operation(self, boto_service_name, service_action_name).input_shape
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        shape = operation(self, boto_service_name, service_action_name).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    env.setattr(StateTaskService, "_normalise_parameters", normalise_parameters)
    env.setattr(StateTaskService, "_normalise_response", normalise_response)
    env.setitem(StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES, "eventbridge", "events")


def cloudformation_like_aws(env: pytest.MonkeyPatch) -> None:
    """Two gaps of moto 5.2's CloudFormation, filled as AWS behaves (gaps of the fake, not of our code):
    - AWS::StepFunctions::StateMachine: moto reads DefinitionString but ignores DefinitionSubstitutions
      (AWS replaces each ${key} of the definition with its resolved value), and creates the machine in
      (and deletes it from) its plain Step Functions backend even when the API is served by the executing one;
    - AWS::RDS::DBInstance: moto's API manages the master password in Secrets Manager
      (ManageMasterUserPassword) but its CloudFormation model neither passes the property on nor answers
      Fn::GetAtt MasterUserSecret.SecretArn;
    - AWS::EMR::SecurityConfiguration: moto's delete reads the Name property unresolved (a Ref) and fails.
    """
    from moto.rds.models import DBInstance
    from moto.stepfunctions.models import StateMachine

    def substituted(properties: dict) -> dict:
        text = properties.get("DefinitionString", "")
        for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", str(value))
        return dict(properties, DefinitionString=text)

    create_sm, update_sm = StateMachine.create_from_cloudformation_json, StateMachine.update_from_cloudformation_json

    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    def executing_backend(call):
        """Run a moto CloudFormation handler with the backend the API serves (execution mode)."""
        plain = sfn_models.stepfunctions_backends
        env.setattr(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
        try:
            return call()
        finally:
            env.setattr(sfn_models, "stepfunctions_backends", plain)

    def create_state_machine(resource_name, cloudformation_json, account_id, region_name, **kwargs):
        doc = dict(cloudformation_json, Properties=substituted(cloudformation_json["Properties"]))
        return executing_backend(lambda: create_sm.__func__(StateMachine, resource_name, doc, account_id,
                                                            region_name, **kwargs))

    def update_state_machine(original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        doc = dict(cloudformation_json, Properties=substituted(cloudformation_json["Properties"]))
        return executing_backend(lambda: update_sm.__func__(StateMachine, original_resource, new_resource_name,
                                                            doc, account_id, region_name))

    delete_sm = StateMachine.delete_from_cloudformation_json

    def delete_state_machine(resource_name, *args, **kwargs):
        return executing_backend(lambda: delete_sm.__func__(StateMachine, resource_name, *args, **kwargs))

    env.setattr(StateMachine, "delete_from_cloudformation_json", classmethod(
        lambda cls, *a, **k: delete_state_machine(*a, **k)))
    env.setattr(StateMachine, "create_from_cloudformation_json", classmethod(
        lambda cls, *a, **k: create_state_machine(*a, **k)))
    env.setattr(StateMachine, "update_from_cloudformation_json", classmethod(
        lambda cls, *a, **k: update_state_machine(*a, **k)))

    create_db = DBInstance.create_from_cloudformation_json
    get_attribute = DBInstance.get_cfn_attribute

    def create_database(resource_name, cloudformation_json, account_id, region_name, **kwargs):
        db = create_db.__func__(DBInstance, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        props = cloudformation_json["Properties"]
        if props.get("ManageMasterUserPassword") and not getattr(db, "master_user_secret", None):
            db.update(manage_master_user_password=True,
                      master_user_secret_kms_key_id=(props.get("MasterUserSecret") or {}).get("KmsKeyId"))
        return db

    def attribute(self, attribute_name):
        if attribute_name == "MasterUserSecret.SecretArn":
            return self.master_user_secret.secret.arn
        return get_attribute(self, attribute_name)

    from moto.emr.models import SecurityConfiguration, emr_backends

    def delete_security_configuration(cls, resource_name, cloudformation_json, account_id, region_name):
        name = cloudformation_json["Properties"].get("Name")
        emr_backends[account_id][region_name].security_configurations.pop(
            name if isinstance(name, str) else resource_name, None)

    env.setattr(SecurityConfiguration, "delete_from_cloudformation_json", classmethod(delete_security_configuration))
    env.setattr(DBInstance, "create_from_cloudformation_json", classmethod(
        lambda cls, *a, **k: create_database(*a, **k)))
    has_attribute = DBInstance.has_cfn_attr
    env.setattr(DBInstance, "get_cfn_attribute", attribute)
    env.setattr(DBInstance, "has_cfn_attr", classmethod(
        lambda cls, name: name == "MasterUserSecret.SecretArn" or has_attribute(name)))


def require_tool(path, how: str) -> str:
    """The tool's path; the test fails, naming the tool, when it is missing (make setup installs it)."""
    import shutil

    found = str(path) if Path(path).exists() else shutil.which(str(path))
    if not found:
        missing(f"{path} is not installed: {how}")
    return found


def client(service: str):
    import boto3

    return boto3.client(service, region_name=REGION)


def network(name: str) -> dict[str, str]:
    """A VPC with a cluster subnet (tagged for EMR's managed policy) and two database subnets, in moto."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("abc")]
    ec2.create_tags(Resources=[subnets[0]], Tags=[{"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"},
                                                  {"Key": "Name", "Value": name}])
    return {"aws_vpc_id": vpc, "emr_subnet_id": subnets[0], "aws_db_subnet_ids": ",".join(subnets[1:])}


def settings_under(root: Path, **overrides):
    """Settings of a deployment into moto: second-long waits, a stand-in model, wheelhouse and jar bundles."""
    model = root / "models" / "all-MiniLM-L6-v2-onnx"
    (model / "assets").mkdir(parents=True, exist_ok=True)
    (model / "model.onnx").write_bytes(b"onnx stand-in")
    (model / "assets" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    (wheelhouse / "tiny-1.0-py3-none-any.whl").write_bytes(b"wheel stand-in")
    for flavour, jars in (("cpu", ("spark-nlp_2.12-5.5.3.jar", "onnxruntime-1.19.2.jar")),
                          ("gpu", ("spark-nlp-gpu_2.12-5.5.3.jar", "onnxruntime_gpu-1.19.2.jar"))):
        (root / "jars" / flavour).mkdir(parents=True, exist_ok=True)
        for jar in jars:
            (root / "jars" / flavour / jar).write_bytes(jar.encode())
    values = dict(aws_bucket=BUCKET, aws_region=REGION, emr_poll_seconds=1, sfn_retry_interval_seconds=1,
                  emr_stage_timeout_seconds=20, emr_cluster_start_polls=30, embeddings_model_dir=str(model),
                  emr_wheelhouse_dir=str(wheelhouse), emr_jars_dir=str(root / "jars"))
    values.update(overrides)
    return make_settings(root, **values)


@pytest.fixture
def aws_settings(tmp_path, moto_url):
    """Settings factory; tests that deploy their own stack give it its own aws_stack_name and bucket."""
    return lambda **overrides: settings_under(tmp_path, **overrides)


@pytest.fixture(scope="package")
def stack(tmp_path_factory, moto_url):
    """The project deployed once into moto through CloudFormation (stack nlp-batch, bucket
    nlp-test-bucket), and an inbox subscribed to its notification topic."""
    settings = settings_under(tmp_path_factory.mktemp("stack"), **network("nlp-batch"))
    # An existing bucket: the stack uses it as it is, and is created whole from the staged template.
    # (A new bucket is created by a first, small version of the stack that is then updated: moto's
    # CloudFormation cannot update a KMS key in place, so that path is checked by test_template.py.)
    client("s3").create_bucket(Bucket=settings.aws_bucket)
    deployment = deployed(settings, [])
    return deployment, sns_inbox(deployment.outputs()["TopicArn"])


@dataclass
class EmrWorker:
    """Plays the EMR clusters: runs each cluster's steps in order, one at a time.

    `outcome(stage, args)` says how a step ends: "COMPLETED", "FAILED", "HANG" (it never ends),
    "BLOCKED" (ingest exits 3) or "ALERT" (report exits 9); the last two complete the step and leave the
    outcome marker, as run_stage.sh --outcomes does. A completed ingest writes its run record to the
    s3a lake with the project's own runlog. `start_failure`, when set, is EMR's reason for ending every
    new cluster while it starts (TERMINATED_WITH_ERRORS).
    """
    lake_settings: object
    outcome: Callable[[str, list[str]], str] = lambda stage, args: "COMPLETED"
    start_failure: str | None = None
    steps: list[tuple[str, list[str], str]] = field(default_factory=list)   # (cluster id, args, state)
    _stop: threading.Event = field(default_factory=threading.Event)
    _seen: set = field(default_factory=set)

    def _backend(self):
        from moto.emr.models import emr_backends

        return emr_backends[ACCOUNT][REGION]

    def leave_earlier_clusters_alone(self) -> None:
        """Clusters and steps of earlier tests are theirs: a step left hanging there (its cluster
        terminated by the cleanup a moment later) must not be played, nor counted, as this test's."""
        for cluster in list(self._backend().clusters.values()):
            self._seen.update([cluster.id, *(step.id for step in cluster.steps)])

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:   # a broken worker must fail the test, not hang it
                self.steps.append(("worker-error", [repr(exc)], "ERROR"))
                return
            time.sleep(0.05)

    def tick(self) -> None:
        for cluster in list(self._backend().clusters.values()):
            if cluster.id not in self._seen:
                self._seen.add(cluster.id)
                if self.start_failure:
                    cluster.state = "TERMINATED_WITH_ERRORS"
                    cluster.last_state_change_reason = self.start_failure
            if cluster.state in ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"):
                continue
            open_steps = [s for s in cluster.steps if s.state in ("PENDING", "RUNNING")]
            if not open_steps:
                continue
            step = open_steps[0]
            if step.id in self._seen:
                continue   # a hanging step, already decided
            self._seen.add(step.id)
            args = list(step.args)
            stage = next(a for a in args[1:] if not a.startswith(("--", "s3://")))
            date = args[args.index("--date") + 1] if "--date" in args else ""
            result = self.outcome(stage, args)
            if stage == "ingest" and result in ("COMPLETED", "BLOCKED"):
                self.write_ingest_record(date, blocked=result == "BLOCKED")
            if result in ("BLOCKED", "ALERT"):
                marker = args[args.index("--outcomes") + 1] + f"{stage}-exit-{3 if result == 'BLOCKED' else 9}"
                bucket, key = marker[len("s3://"):].split("/", 1)
                client("s3").put_object(Bucket=bucket, Key=key, Body=b"")
            step.state = {"FAILED": "FAILED", "HANG": "RUNNING"}.get(result, "COMPLETED")
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)   # as moto keeps them
            step.start_date_time = now
            step.end_date_time = None if result == "HANG" else now + datetime.timedelta(seconds=90)
            self.steps.append((cluster.id, args, step.state))

    def write_ingest_record(self, date: str, blocked: bool) -> None:
        from spark_jobs.runlog import RunRecord, write

        write(self.lake_settings, RunRecord(stage="ingest", ingest_date=date,
                                             status="blocked" if blocked else "succeeded"))

    def stage_args(self) -> list[list[str]]:
        return [args for _, args, _ in self.steps]

    def stages(self) -> list[str]:
        return [next(a for a in args[1:] if not a.startswith(("--", "s3://"))) for args in self.stage_args()]

    def clusters(self) -> list[str]:
        """The clusters this test's steps ran on, in order of first use."""
        return list(dict.fromkeys(cluster for cluster, _, _ in self.steps))


@pytest.fixture
def emr_worker(aws_settings):
    # the cluster's settings: the runs table in the stack's Glue database (moto's Glue, through pyiceberg)
    worker = EmrWorker(lake_settings=aws_settings(lake_root=f"s3a://{BUCKET}/lake", lake_catalog="glue"))
    worker.leave_earlier_clusters_alone()
    thread = threading.Thread(target=worker.loop, daemon=True)
    thread.start()
    yield worker
    worker._stop.set()
    thread.join(timeout=5)
    assert not [s for s in worker.steps if s[2] == "ERROR"], worker.steps


def sns_inbox(topic_arn: str) -> Callable[[], list[dict]]:
    """Subscribe an SQS queue to the topic; returns a function that drains the notifications."""
    sqs, sns = client("sqs"), client("sns")
    queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def drain() -> list[dict]:
        out = []
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return out
            for m in got["Messages"]:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return drain


def wait_for_execution(arn: str, timeout: float = 60) -> dict:
    sfn = client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=arn)
        if status["status"] != "RUNNING":
            return status
        time.sleep(0.2)
    raise AssertionError(f"execution {arn} still running after {timeout}s")


EMR_DIR = Path(__file__).resolve().parents[2] / "emr"


def deliver(rule: str, source: str, detail_type: str, detail: dict, pattern: str | None = None) -> list:
    """What the deployed rule would hand its target for such an event (the input after its
    InputTransformer), or [] when its pattern does not match. moto cannot target a state machine, so a
    probe rule with the same pattern and transformer, on a bus of its own, targets an SQS queue instead."""
    events, sqs = client("events"), client("sqs")
    target = events.list_targets_by_rule(Rule=rule)["Targets"][0]
    pattern = pattern or events.describe_rule(Name=rule)["EventPattern"]
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=probe)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=probe)
    events.put_rule(Name=probe, EventBusName=probe, EventPattern=pattern)
    probe_target = {"Id": "queue", "Arn": queue_arn}
    if "InputTransformer" in target:
        probe_target["InputTransformer"] = target["InputTransformer"]
    events.put_targets(Rule=probe, EventBusName=probe, Targets=[probe_target])
    events.put_events(Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
                                "EventBusName": probe}])
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def deployed(settings, lines: list[str]):
    """The launcher's deployment into moto, ready to run."""
    from nlp_emr.launcher import Deployment

    deployment = Deployment(settings, out=lines.append)
    assert deployment.deploy() == 0, "\n".join(lines)
    return deployment

"""The launcher behind `make deploy|preflight|run TARGET=emr` (emr/nlp_emr), against the moto server."""
from __future__ import annotations

import json
import shlex

import pytest

from nlp_emr import __main__ as cli
from nlp_emr.artifacts import neutral_name
from nlp_emr.launcher import Deployment
from spark_jobs import runlog
from spark_jobs.runlog import RunRecord
from spark_jobs.settings import SettingsError
from tests.aws.conftest import BUCKET, EMR_DIR, client, deployed, network

DATE = "2026-11-01"


def main(*argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    return cli.main(list(argv), out=lines.append), lines


def test_the_plan_needs_no_bucket_no_stack_and_no_credentials(monkeypatch, moto_url):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("NLP_AWS_BUCKET", raising=False)
    code, lines = main("run", "--dry-run", f"--date={DATE}", "--aws-stack-name=planonly")
    text = "\n".join(lines)
    assert code == 0, text
    assert "stepfunctions StartExecution  # run the pipeline for 2026-11-01" in text
    assert '"stateMachineArn": "${PipelineStateMachineArn}"' in text
    # the estimate is the profile's instances priced from pricing.json, times its typical hours
    pricing = json.loads((EMR_DIR / "pricing.json").read_text())
    groups = json.loads((EMR_DIR / "profiles.json").read_text())["gpu"]["InstanceGroups"]
    per_hour = sum(g["InstanceCount"] * (pricing["instances"][g["InstanceType"]]["ec2"]
                                         + pricing["instances"][g["InstanceType"]]["emr"]) for g in groups)
    assert f"~${per_hour * pricing['estimated_run_hours']['gpu']:.2f} per run (gpu profile" in text
    code, lines = main("deploy", "--dry-run", "--aws-stack-name=planonly")
    assert code == 2                                  # deploying does need a bucket, and says which setting
    code, lines = main("deploy", "--dry-run", "--aws-stack-name=planonly", f"--aws-bucket={BUCKET}-plan")
    text = "\n".join(lines)
    assert code == 0, text
    assert "cloudformation CreateStack  # first the key and the bucket" in text
    assert "cloudformation UpdateStack  # the whole stack" in text


def test_run_uploads_the_artifacts_follows_the_execution_and_prints_the_measured_cost(stack, emr_worker):
    deployment, _ = stack
    lines: list[str] = []
    run = Deployment(deployment.s.replace(date=DATE), out=lines.append)
    assert run.run() == 0, "\n".join(lines)
    outputs, s3 = deployment.outputs(), client("s3")

    version = run_version = json.loads(s3.get_object(Bucket=BUCKET, Key=next(
        k for k in keys("artifacts/") if k.endswith("manifest.json")))["Body"].read())["version"]
    prefix = f"artifacts/{run_version}/"
    for expected in ("emr/bootstrap.sh", "emr/run_stage.sh", "emr/mlflow_uri.py", "emr/cgroup_devices.sh",
                     "emr/requirements-runtime.lock", "emr/requirements-gpu.lock", "conf/sources.yml",
                     "conf/nlp.env", "emr/cluster.json", "expectations/documents.json", "dbt/dbt_project.yml",
                     "notebooks/monitoring_report.ipynb"):
        assert prefix + expected in keys(prefix), expected
    assert any(k.startswith(prefix + "dist/nlp_batch-") and k.endswith(".whl") for k in keys(prefix))
    env = [shlex.join(shlex.split(line)) for line in   # as the shell reads it
           s3.get_object(Bucket=BUCKET, Key=prefix + "conf/nlp.env")["Body"].read().decode().splitlines()]
    for line in ("NLP_TARGET=emr", "NLP_LAKE_ROOT=s3a://nlp-test-bucket/lake", "NLP_DBT_TARGET=athena",
                 "NLP_ATHENA_WORKGROUP=nlp-batch", "NLP_ATHENA_SCHEMA=nlp_marts", "NLP_LAKE_SCHEMA=nlp_lake",
                 shlex.join([f"EMR_REGISTRY_SECRET_ARN={outputs['RegistrySecretArn']}"]), "NLP_GPU=true",
                 "NLP_ONNX_INT8=false",  # the gpu profile's: the int8 default's operators run on the CPU
                 f"NLP_CODE_VERSION={version}", "NLP_CLOUDWATCH_METRICS=true", "NLP_CLOUDWATCH_NAMESPACE=nlp-batch",
                 "NLP_AWS_REGION=us-east-1"):
        assert line in env, line
    assert not [line for line in env if line.startswith("NLP_MLFLOW_TRACKING_URI")]   # built on the node
    shape = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "emr/cluster.json")["Body"].read())
    jars = next(c for c in shape["Configurations"] if c["Classification"] == "spark-defaults")["Properties"]["spark.jars"]
    assert jars == "local:/opt/nlp-batch/jars/onnxruntime.jar,local:/opt/nlp-batch/jars/spark-nlp_2.12.jar"
    assert "spark.jars.packages" not in json.dumps(shape)                 # nothing resolved at cluster start
    # the jobs register the Glue catalog themselves (one Iceberg version everywhere): EMR's own stays off
    assert "iceberg-defaults" not in json.dumps(shape) and "NLP_LAKE_CATALOG=glue" in env
    cgroup, install = shape["BootstrapActions"]
    assert cgroup["ScriptBootstrapAction"]["Path"].endswith("/emr/cgroup_devices.sh")
    args = install["ScriptBootstrapAction"]["Args"]
    assert args[1].startswith(f"s3://{BUCKET}/artifacts/wheelhouse/") and args[-1] == "gpu"
    assert args[2].startswith(f"s3://{BUCKET}/artifacts/jars/cpu-") and args[3].startswith(f"s3://{BUCKET}/artifacts/jars/gpu-")
    assert {k.rsplit("/", 1)[1] for k in keys(args[3][len(f"s3://{BUCKET}/"):])} == {
        "spark-nlp_2.12.jar", "onnxruntime.jar", ".complete"}               # the GPU build, under the CPU names

    assert emr_worker.stages() == ["ingest", "train", "infer", "dbt", "report", "maintain"]   # no train record yet
    (cluster_id,) = emr_worker.clusters()
    assert client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"] == "TERMINATED"
    text = "\n".join(lines)
    for progress in ("CreateCluster: started", "Ingest: started", "Report: finished", "execution succeeded",
                     f"s3://{BUCKET}/reports/{DATE}/monitoring.html", f"cost: cluster {cluster_id} up "):
        assert progress in text, progress
    steps = [line for line in lines if line.startswith("  step ")]
    assert len(steps) == 6 and all("1.5 min" in line and "instance-h" in line for line in steps)   # the worker's 90 s

    again = Deployment(deployment.s.replace(date=DATE), out=lines.append)
    assert again.run() == 8                                               # the date is done: refused
    # a succeeded train record in the runs table (Glue, as the cluster writes it): the next run does not train
    runlog.write(emr_worker.lake_settings, RunRecord(stage="train", ingest_date=DATE, status="succeeded"))
    assert again.run(rerun=True) == 0                                     # unless asked to run it again
    assert emr_worker.stages()[6:] == ["ingest", "infer", "dbt", "report", "maintain"]
    # a committed version is uploaded once; a dirty tree's code every time, but the content-addressed
    # wheelhouse and jar bundles only once
    later = [line for line in lines if " artifacts of " in line][1:]
    assert len(later) == 2 and all(line.endswith(" and 0 shared files") if version.endswith("-dirty")
                                   else line == f"  artifacts of {version} already in s3://{BUCKET}/artifacts/{version}/"
                                   for line in later), later


def keys(prefix: str) -> list[str]:
    return [o["Key"] for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]


def test_a_blocked_run_exits_3_with_one_line(stack, emr_worker, capsys):
    deployment, _ = stack
    emr_worker.outcome = lambda stage, args: "BLOCKED"
    assert Deployment(deployment.s.replace(date="2026-11-09"), out=lambda line: None).run(train=False) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("STOPPED: pipeline 2026-11-09-") and "QualityGateBlocked: ingest 2026-11-09: batch blocked" in line


def test_preflight_says_what_blocks_a_run_and_what_to_do(stack, aws_settings):
    deployment, _ = stack
    lines: list[str] = []
    code = cli.preflight.run(Deployment(deployment.s, out=lines.append), lines.append)
    text = "\n".join(lines)
    assert code == 2
    assert "ok   credentials: " in text and "ok   region: us-east-1" in text
    assert "ok   stack: nlp-batch CREATE_COMPLETE" in text or "ok   stack: nlp-batch UPDATE_COMPLETE" in text
    assert "ok   subnet: subnet-" in text and "for-use-with-amazon-emr-managed-policies=true" in text
    assert "FAIL EMR service-linked role AWSServiceRoleForEMRCleanup is missing" in text
    assert "aws iam create-service-linked-role --aws-service-name elasticmapreduce.amazonaws.com" in text
    assert "WARN vCPU quota Running On-Demand G and VT instances (L-DB2E81BA) could not be read" in text
    assert "WARN in-transit encryption is off" in text
    client("iam").create_role(   # moto names service-linked roles its own way: the role EMR's first cluster creates
        RoleName="AWSServiceRoleForEMRCleanup", Path="/aws-service-role/elasticmapreduce.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                             "Principal": {"Service": "elasticmapreduce.amazonaws.com"}}]}))
    client("s3").put_object(Bucket=BUCKET, Key="lake/raw/ingest_date=2026-11-01/source=reviews/a.csv", Body=b"x")
    lines.clear()
    assert cli.preflight.run(Deployment(deployment.s, out=lines.append), lines.append) == 0, "\n".join(lines)
    assert "ok   landed data: " in "\n".join(lines)
    # an untagged subnet blocks
    untagged = network("untagged")["aws_db_subnet_ids"].split(",")[0]
    lines.clear()
    bare = aws_settings(aws_stack_name="nostack", emr_subnet_id=untagged)
    assert cli.preflight.run(Deployment(bare, out=lines.append), lines.append) == 2
    text = "\n".join(lines)
    assert "FAIL stack: nostack not deployed: run `make deploy`" in text
    assert f"aws ec2 create-tags --resources {untagged} --tags Key=for-use-with-amazon-emr-managed-policies,Value=true" in text


def test_quota_lines():
    assert cli.preflight.quota_line("g", 8, 16)[0] == "FAIL"
    assert "--desired-value 16" in cli.preflight.quota_line("g", 8, 16)[1]
    assert cli.preflight.quota_line("g", 16, 16)[0] == "ok"
    assert cli.preflight.needed_vcpus(json.loads((cli.EMR_DIR / "profiles.json").read_text())["gpu"]) == {
        "standard": 4, "g": 16}


def test_deploy_rearms_the_triggers_and_destroy_keeps_the_data(aws_settings):
    """(moto 5.2 cannot update this stack in place: its update loses the KMS key from the template's
    resource map. A second `make deploy` is an UpdateStack of the same staged template; see emr/README.md.)"""
    name, bucket = "redeploy", "nlp-redeploy-bucket"
    client("s3").create_bucket(Bucket=bucket)
    lines: list[str] = []
    first = deployed(aws_settings(aws_stack_name=name, aws_bucket=bucket, **network(name)), lines)
    outputs = first.outputs()
    assert outputs["BucketName"] == bucket and outputs["CodeVersion"]
    staged = keys_of(bucket, "artifacts/cloudformation/")
    assert len(staged) == 1                                         # the template deploy sent, staged in the bucket
    client("events").disable_rule(Name=f"{name}-schedule")          # as the circuit breaker does
    client("dynamodb").put_item(TableName=outputs["RunsTable"],
                                Item={"pk": {"S": "circuit-breaker"}, "consecutive_failures": {"N": "3"}})
    first.rearm(outputs)                                            # what every deploy ends with
    assert client("events").describe_rule(Name=f"{name}-schedule")["State"] == "ENABLED"
    item = client("dynamodb").get_item(TableName=outputs["RunsTable"], Key={"pk": {"S": "circuit-breaker"}})["Item"]
    assert item["consecutive_failures"] == {"N": "0"}
    assert first.destroy() == 0
    assert not [s for s in client("cloudformation").list_stacks()["StackSummaries"]
                if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]
    assert f"{name}-pipeline" not in {m["name"] for m in client("stepfunctions").list_state_machines()["stateMachines"]}
    assert client("s3").head_bucket(Bucket=bucket)                  # the data stays
    assert f"aws s3 rb s3://{bucket} --force" in "\n".join(lines)


def keys_of(bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_jar_names_are_the_same_for_both_builds():
    from pathlib import Path

    assert neutral_name(Path("spark-nlp-gpu_2.12-5.5.3.jar")) == neutral_name(Path("spark-nlp_2.12-5.5.3.jar")) == "spark-nlp_2.12.jar"
    assert neutral_name(Path("onnxruntime_gpu-1.19.2.jar")) == "onnxruntime.jar"
    assert neutral_name(Path("tensorflow-core-api-0.4.2-linux-x86_64.jar")) == "tensorflow-core-api-linux-x86_64.jar"
    assert neutral_name(Path("tensorflow-core-api-0.4.2.jar")) == "tensorflow-core-api.jar"
    assert neutral_name(Path("protobuf-java-3.19.4.jar")) == "protobuf-java.jar"


def test_settings_errors_name_the_setting(capsys, moto_url):
    assert cli.main(["deploy", "--aws-stack-name=novpc", "--aws-bucket=nlp-novpc-bucket"]) == 2
    assert capsys.readouterr().err.strip() == ("ERROR: the stack needs a VPC, a cluster subnet and two database subnets: "
                                               "set NLP_AWS_VPC_ID, NLP_EMR_SUBNET_ID, NLP_AWS_DB_SUBNET_IDS")
    assert cli.main(["deploy", "--aws-bucket=Bad_Bucket"]) == 2
    assert "setting aws_bucket='Bad_Bucket'" in capsys.readouterr().err
    assert cli.main(["deploy", "--aws-bucket=b-ok", "--emr-profile=tpu"]) == 2
    assert "setting emr_profile='tpu'" in capsys.readouterr().err
    assert cli.main(["run", "--aws-stack-name=nothere"]) == 2
    assert "stack nothere in us-east-1: not deployed; run `make deploy` first" in capsys.readouterr().err
    with pytest.raises(SettingsError):
        cli.check(cli.settings_mod.load(env={}, emr_poll_seconds=0))


def test_aws_errors_stop_with_one_line(capsys, monkeypatch, moto_url):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")          # no usable credentials
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["run", "--aws-stack-name=nocreds"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: AWS refused or could not be reached (us-east-1):")


def test_a_new_bucket_is_created_protected_by_the_first_version_of_the_stack(moto_url):
    """The stack's first version (what deploy sends before staging the whole template in the bucket),
    created by moto's CloudFormation. moto applies a bucket's encryption and tags only; its public access
    block, versioning, access logging, notifications and lifecycle are read from the template (checkov
    checks them too)."""
    from nlp_emr import template

    boot, bucket = template.bootstrap(), "nlp-new-bucket"
    values = {"ProjectName": "newbucket", "BucketName": bucket, "UseExistingBucket": "false",
              "OperatorArns": "arn:aws:iam::123456789012:role/operator"}
    cfn = client("cloudformation")
    cfn.create_stack(StackName="newbucket", TemplateBody=template.body(boot),
                     Parameters=[{"ParameterKey": k, "ParameterValue": values[k]} for k in boot["Parameters"]])
    stack = cfn.describe_stacks(StackName="newbucket")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    key = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["KeyArn"]
    s3 = client("s3")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in client("kms").list_aliases()["Aliases"]}
    assert aliases["alias/newbucket"] == key.rsplit("/", 1)[1]
    props = boot["Resources"]["Bucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert boot["Resources"]["Key"]["Properties"]["EnableKeyRotation"] is True
    cfn.delete_stack(StackName="newbucket")
    assert s3.head_bucket(Bucket=bucket)                            # DeletionPolicy Retain: the data stays

"""The launcher behind `make run TARGET=emr`, against the moto server: what it uploads, creates and starts."""
from __future__ import annotations

import json

import pytest

from spark_jobs import emr_launcher
from spark_jobs.settings import SettingsError
from tests.aws.conftest import ACCOUNT, BUCKET, REGION, client, deliver

DATE = "2026-11-01"


def run_launcher(settings, *argv: str) -> tuple[int, list[str]]:
    """main() with the settings given as flags, as make passes them; returns (exit code, printed lines)."""
    lines: list[str] = []
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in (
        ("aws_bucket", settings.aws_bucket), ("aws_region", settings.aws_region),
        ("aws_stack_name", settings.aws_stack_name),
        ("emr_poll_seconds", settings.emr_poll_seconds),
        ("sfn_retry_interval_seconds", settings.sfn_retry_interval_seconds),
        ("embeddings_model_dir", settings.embeddings_model_dir), ("emr_profile", settings.emr_profile),
        ("emr_launch", settings.emr_launch))]
    code = emr_launcher.main([*argv, *flags], out=lines.append)
    return code, lines


def test_dry_run_prints_the_plan_and_sends_nothing(aws_settings):
    settings = aws_settings(aws_bucket="nlp-dry-run-bucket", aws_stack_name="dryrun")
    code, lines = run_launcher(settings, "run", "--dry-run", f"--date={DATE}")
    text = "\n".join(lines)
    assert code == 0
    for request in ("kms CreateKey", "s3 PutBucketEncryption", "s3 PutPublicAccessBlock", "s3 PutBucketPolicy",
                    "iam CreateRole", "stepfunctions CreateStateMachine", "events PutRule",
                    "stepfunctions StartExecution"):
        assert request in text, request
    assert f'"input": "{{\\"ingest_date\\": \\"{DATE}\\", \\"train\\": true}}"' in text
    assert "NLP_LAKE_ROOT=s3a://nlp-dry-run-bucket/lake" in text
    assert "~$3.27 per run (gpu profile" in text
    # nothing was sent
    assert "nlp-dry-run-bucket" not in {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    assert not [m for m in client("stepfunctions").list_state_machines()["stateMachines"] if m["name"].startswith("dryrun-")]


def test_deploy_protects_the_bucket_and_is_idempotent(aws_settings):
    bucket, name = "nlp-deploy-bucket", "deploytest"
    assert run_launcher(aws_settings(aws_bucket=bucket, aws_stack_name=name), "deploy")[0] == 0
    client("s3").delete_bucket_policy(Bucket=bucket)       # see deployed()
    again = aws_settings(aws_bucket=bucket, aws_stack_name=name, sfn_retry_interval_seconds=7)
    assert run_launcher(again, "deploy")[0] == 0           # again: updated in place
    pipeline_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}-pipeline"
    definition = json.loads(client("stepfunctions").describe_state_machine(stateMachineArn=pipeline_arn)["definition"])
    assert definition["States"]["Infer"]["Retry"][0]["IntervalSeconds"] == 7

    s3, kms = client("s3"), client("kms")
    key_arn = kms.describe_key(KeyId=f"alias/{name}")["KeyMetadata"]["Arn"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [st["Sid"] for st in policy["Statement"]] == [
        "DenyNonTLS", "DenyPutsWithOtherEncryption", "DenyPutsWithAnotherKey", "DenyKmsPutsWithoutTheProjectKey",
        "DenyCustomerProvidedKeys"]
    assert key_arn in json.dumps(policy)

    machines = {m["name"] for m in client("stepfunctions").list_state_machines()["stateMachines"]}
    assert {f"{name}-pipeline", f"{name}-emr-step", f"{name}-circuit-breaker"} <= machines
    iam = client("iam")
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {f"{name}-{r}" for r in ("emr-service", "emr-instance", "pipeline", "circuit-breaker", "events")} <= roles
    assert iam.get_instance_profile(InstanceProfileName=f"{name}-emr-instance")["InstanceProfile"]["Roles"]
    attached = iam.list_attached_role_policies(RoleName=f"{name}-emr-service")["AttachedPolicies"]
    assert [a["PolicyName"] for a in attached] == ["AmazonEMRServicePolicy_v2"]
    pipeline_policy = iam.get_role_policy(RoleName=f"{name}-pipeline", PolicyName=f"{name}-pipeline")
    assert "${" not in json.dumps(pipeline_policy["PolicyDocument"]) and key_arn in json.dumps(pipeline_policy)

    events = client("events")
    schedule = events.describe_rule(Name=f"{name}-schedule")
    assert schedule["ScheduleExpression"] == "cron(30 23 * * ? *)" and schedule["State"] == "ENABLED"
    target = events.list_targets_by_rule(Rule=f"{name}-landing")["Targets"][0]
    assert target["Arn"] == pipeline_arn and target["RoleArn"].endswith(f":role/{name}-events")
    landed = {"bucket": {"name": bucket}, "object": {"key": "lake/raw/ingest_date=2026-11-01/source=reviews/a.csv"}}
    assert deliver(f"{name}-landing", "aws.s3", "Object Created", landed) == [
        {"object_key": "lake/raw/ingest_date=2026-11-01/source=reviews/a.csv"}]
    landed["object"]["key"] = "lake/curated/ingest_date=2026-11-01/part-0.parquet"
    assert deliver(f"{name}-landing", "aws.s3", "Object Created", landed) == []
    landed["bucket"]["name"] = "someone-elses-bucket"
    assert deliver(f"{name}-landing", "aws.s3", "Object Created", landed) == []

    code, lines = run_launcher(again, "destroy")           # teardown: everything but the data
    assert code == 0 and f"aws s3 rb s3://{bucket} --force" in "\n".join(lines)
    assert not {m["name"] for m in client("stepfunctions").list_state_machines()["stateMachines"]} & {
        f"{name}-pipeline", f"{name}-emr-step", f"{name}-circuit-breaker"}
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{name}-")]
    assert not [r for r in events.list_rules()["Rules"] if r["Name"].startswith(f"{name}-")]
    assert f"{name}-alerts" not in json.dumps(client("sns").list_topics())
    assert client("s3").head_bucket(Bucket=bucket) and kms.describe_key(KeyId=f"alias/{name}")


def test_run_uploads_the_artifacts_and_drives_the_cluster_through_every_stage(stack, emr_worker):
    deployment, _ = stack
    lines: list[str] = []
    code = emr_launcher.Launcher(deployment.s.replace(date=DATE), out=lines.append).start()
    assert code == 0, "\n".join(lines)

    version = deployment.version
    keys = {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET, Prefix="artifacts/")["Contents"]}
    prefix = f"artifacts/{version}/"
    for expected in ("requirements.lock", "emr/bootstrap.sh", "emr/run_stage.sh", "conf/sources.yml",
                     "conf/nlp.env", "expectations/documents.json", "dbt/dbt_project.yml", "dbt/profiles.yml",
                     "notebooks/monitoring_report.ipynb"):
        assert prefix + expected in keys, expected
    assert any(k.startswith(prefix + "dist/nlp_batch-") and k.endswith(".whl") for k in keys)
    assert not any("/target/" in k or "/logs/" in k for k in keys)
    env = client("s3").get_object(Bucket=BUCKET, Key=prefix + "conf/nlp.env")["Body"].read().decode()
    for line in ("NLP_TARGET=emr", "NLP_LAKE_ROOT=s3a://nlp-test-bucket/lake", "NLP_DBT_TARGET=athena",
                 "NLP_SPARK_MASTER=yarn", "NLP_GPU=true", f"NLP_CODE_VERSION={version}"):
        assert line in env.splitlines(), line
    assert client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/all-MiniLM-L6-v2-onnx/")["KeyCount"] == 2

    runner = "/opt/nlp-batch/bin/run-stage"
    assert emr_worker.stage_args() == [
        [runner, "--blocked-ok", "ingest", "--date", DATE],
        [runner, "train", "--date", DATE],          # no registry in the bucket yet: train first
        [runner, "infer", "--date", DATE],
        [runner, "dbt", "--date", DATE],
        [runner, "report", "--date", DATE],
    ]
    emr = client("emr")
    (cluster_id,) = emr_worker.clusters()
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["Status"]["State"] == "TERMINATED"            # cleanup on the success path
    assert cluster["ReleaseLabel"].startswith("emr-7.")
    assert cluster["LogUri"] == f"s3://{BUCKET}/emr-logs/"
    spark_defaults = next(c for c in cluster["Configurations"] if c["Classification"] == "spark-defaults")
    assert spark_defaults["Properties"]["spark.jars.packages"] == "com.johnsnowlabs.nlp:spark-nlp-gpu_2.12:5.5.3"
    assert {"yarn-site", "container-executor", "capacity-scheduler"} <= {c["Classification"] for c in cluster["Configurations"]}
    groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert sorted((g["InstanceGroupType"], g["InstanceType"]) for g in groups) == [("CORE", "g5.2xlarge"), ("MASTER", "m5.xlarge")]
    (bootstrap,) = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    assert bootstrap["ScriptPath"] == f"s3://{BUCKET}/{prefix}emr/bootstrap.sh"

    text = "\n".join(lines)
    for progress in ("CreateCluster: started", "Ingest: started", "Report: finished", "execution succeeded",
                     f"s3://{BUCKET}/reports/{DATE}/monitoring.html"):
        assert progress in text, progress


def test_cluster_mode_adds_one_step_per_stage_and_always_terminates(stack, emr_worker):
    settings = stack[0].s.replace(emr_launch="cluster", emr_profile="cpu", date=DATE)
    emr_worker.outcome = lambda stage, args: "FAILED" if stage == "infer" else "COMPLETED"
    lines: list[str] = []
    assert emr_launcher.Launcher(settings, out=lines.append).start(train=True) == 1

    (cluster_id,) = emr_worker.clusters()
    emr = client("emr")
    steps = emr.list_steps(ClusterId=cluster_id)["Steps"][::-1]      # oldest first
    spec = json.loads((emr_launcher.EMR_DIR / "steps.json").read_text())
    assert [s["Config"]["Args"] for s in steps] == [
        [spec["Runner"], stage, "--date", DATE] for stage in ("ingest", "train", "infer", "dbt", "report")]
    assert [s["Status"]["State"] for s in steps] == ["COMPLETED", "COMPLETED", "FAILED", "CANCELLED", "CANCELLED"]
    assert emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"] == "TERMINATED"
    groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert {g["InstanceType"] for g in groups} == {"m5.xlarge", "m5.2xlarge"}
    assert any("step infer 2026-11-01: failed" in line for line in lines)


def test_settings_errors_name_the_setting(aws_settings, capsys):
    assert emr_launcher.main(["deploy", "--aws-bucket="]) == 2
    assert "setting aws_bucket is empty" in capsys.readouterr().err
    assert emr_launcher.main(["deploy", "--aws-bucket=b-ok", "--emr-profile=tpu"]) == 2
    assert "setting emr_profile='tpu'" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="aws_bucket='Bad_Bucket'"):
        emr_launcher.check(aws_settings(aws_bucket="Bad_Bucket"))


def test_aws_errors_stop_with_one_line(aws_settings, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")          # no usable credentials
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert run_launcher(aws_settings(aws_stack_name="nocreds"), "deploy")[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: AWS refused or could not be reached (us-east-1):")

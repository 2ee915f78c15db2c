"""What a run needs in the bucket, prepared from this checkout: code, configuration, the cluster shape,
the wheelhouse and jar bundles (so cluster nodes install nothing from the internet), the model.

    s3://<bucket>/artifacts/<version>/     wheel, conf/ (with nlp.env), expectations/, notebooks/, dbt/,
                                           emr/ (bootstrap, run_stage, locks, cluster.json), manifest.json last
    s3://<bucket>/artifacts/wheelhouse/<lock digest>/   the wheels of emr/requirements-*.lock
    s3://<bucket>/artifacts/jars/<flavour>-<digest>/    the jar tree of jars/pom.xml (cpu; gpu)
    s3://<bucket>/models/<model>/                       the embeddings model
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from spark_jobs.settings import PROJECT_ROOT, Settings, SettingsError

from .template import EMR_DIR

APP_DIR = "/opt/nlp-batch"        # where bootstrap.sh installs the artifacts on every node
WORK_DIR = "/mnt/nlp-batch"       # scratch space on the primary node
ARTIFACT_DIRS = ("conf", "expectations", "notebooks", "dbt")
EMR_FILES = ("bootstrap.sh", "run_stage.sh", "cgroup_devices.sh", "mlflow_uri.py",
             "requirements-runtime.lock", "requirements-gpu.lock")
SKIPPED_NAMES = {"target", "logs", "dbt_packages", "__pycache__", ".ipynb_checkpoints", ".user.yml"}
# Settings that describe this machine or the deployment itself; everything else is forwarded to EMR.
NOT_FORWARDED = {
    "target", "lake_root", "mlflow_tracking_uri", "mlflow_artifact_root", "warehouse_path", "reports_dir",
    "expectations_dir", "sources_file", "dbt_project_dir", "dbt_target", "notebooks_dir", "corpus_path",
    "embeddings_model_dir", "spark_master", "spark_driver_memory", "jars_dir", "gpu", "date",
    "athena_workgroup", "athena_schema", "report_sns_topic_arn", "report_pricing_file", "log_dir",
}


def load_json(name: str) -> Any:
    return json.loads((EMR_DIR / name).read_text())


def code_version() -> str:
    from spark_jobs.runlog import code_version as version

    return re.sub(r"[^A-Za-z0-9._-]", "-", version())


def digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


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


def jar_bundle(folder: Path) -> list[Path]:
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise SettingsError(f"no jars in {folder}: run `make emr-artifacts` (mvn -C -P <flavour> on jars/pom.xml)")
    return jars


def neutral_name(jar: Path) -> str:
    """The name a jar has on every node, the same for its CPU and GPU build, so that one spark.jars list
    serves the driver (CPU tree) and the executors (GPU tree): spark-nlp-gpu_2.12-5.5.3.jar ->
    spark-nlp_2.12.jar, onnxruntime_gpu-1.19.2.jar -> onnxruntime.jar."""
    stem = re.sub(r"-\d[\w.]*?(-[a-z][\w-]*)?$", lambda m: m.group(1) or "", jar.stem)
    return re.sub(r"[-_]gpu(?=(_2\.12)?$|_)", "", stem) + ".jar"


class Artifacts:
    """The artifacts of one code version for one deployment (stack outputs known)."""

    def __init__(self, settings: Settings, outputs: dict[str, str], out=print):
        self.s, self.outputs, self.out = settings, outputs, out
        self.bucket = outputs["BucketName"]
        self.profile_name = settings.emr_profile
        self.profile = load_json("profiles.json")[settings.emr_profile]
        self.version = code_version()
        self.prefix = f"artifacts/{self.version}"
        self.uri = f"s3://{self.bucket}/{self.prefix}"

    # --- the cluster's shape -------------------------------------------------------------------------------
    def wheelhouse_files(self) -> list[Path]:
        folder = Path(self.s.path("emr_wheelhouse_dir"))
        wheels = sorted(folder.glob("*.whl"))
        if not wheels:
            raise SettingsError(f"setting emr_wheelhouse_dir={folder}: no wheels; run `make emr-artifacts` "
                                "(pip download of emr/requirements-*.lock, hashes checked)")
        return wheels

    def wheelhouse_uri(self) -> str:
        locks = [EMR_DIR / "requirements-runtime.lock", EMR_DIR / "requirements-gpu.lock"]
        return f"s3://{self.bucket}/artifacts/wheelhouse/{digest(locks + self.wheelhouse_files())}"

    def jars_uri(self, flavour: str) -> str:
        folder = Path(self.s.path("emr_jars_dir")) / flavour
        return f"s3://{self.bucket}/artifacts/jars/{flavour}-{digest(jar_bundle(folder))}"

    def spark_jars(self) -> str:
        """spark.jars: the bundle's jars as every node has them (local: no copy at submit)."""
        names = sorted(neutral_name(j) for j in jar_bundle(Path(self.s.path("emr_jars_dir")) / "cpu"))
        return ",".join(f"local:{APP_DIR}/jars/{n}" for n in names)

    def cluster_request(self) -> dict:
        """artifacts/<version>/emr/cluster.json: what the pipeline's CreateCluster takes from the artifact
        (roles, subnet, security configuration, logs and tags come from the stack)."""
        base = load_json("cluster.json")
        gpu = self.profile["Flavour"] == "gpu"
        actions = []
        if gpu:
            actions.append({"Name": "cgroup devices for YARN GPU isolation",
                            "ScriptBootstrapAction": {"Path": f"{self.uri}/emr/cgroup_devices.sh", "Args": []}})
        actions.append({"Name": f"install nlp-batch {self.version}", "ScriptBootstrapAction": {
            "Path": f"{self.uri}/emr/bootstrap.sh",
            "Args": [self.uri, self.wheelhouse_uri(), self.jars_uri("cpu"),
                     self.jars_uri("gpu") if gpu else self.jars_uri("cpu"),
                     f"s3://{self.bucket}/models", self.profile["Flavour"]]}})
        # Iceberg comes in the jar bundle (jars/pom.xml -P emr: the runtime and the AWS bundle); the jobs
        # register the Glue Data Catalog themselves (spark_jobs/spark.py, NLP_LAKE_CATALOG=glue), so
        # EMR's own Iceberg (iceberg-defaults) stays off and one version runs everywhere.
        jars = {"Classification": "spark-defaults", "Properties": {"spark.jars": self.spark_jars()}}
        return {
            "ReleaseLabel": base["ReleaseLabel"], "Applications": base["Applications"],
            "EbsRootVolumeSize": base["EbsRootVolumeSize"], "BootstrapActions": actions,
            "InstanceGroups": self.profile["InstanceGroups"],
            "Configurations": merge_configurations(base["Configurations"], [jars], self.profile["Configurations"]),
        }

    # --- settings on the cluster --------------------------------------------------------------------------------
    def emr_settings(self) -> dict[str, str]:
        """conf/nlp.env: the NLP_* settings the jobs read on EMR (plus what run_stage.sh needs)."""
        o = self.outputs
        env = {k: v for k, v in self.s.as_env().items()
               if k[4:].lower() not in NOT_FORWARDED and not k.startswith(("NLP_AWS_", "NLP_EMR_", "NLP_SFN_"))}
        model = Path(self.s.path("embeddings_model_dir")).name
        env.update({
            "NLP_TARGET": "emr", "NLP_LAKE_ROOT": f"s3a://{self.bucket}/lake", "NLP_DBT_TARGET": "athena",
            "NLP_SPARK_MASTER": "yarn",
            "NLP_MLFLOW_ARTIFACT_ROOT": f"s3://{self.bucket}/mlflow/artifacts",
            "NLP_WAREHOUSE_PATH": f"{WORK_DIR}/warehouse/nlp.duckdb", "NLP_REPORTS_DIR": f"{WORK_DIR}/reports",
            "NLP_LOG_DIR": f"{WORK_DIR}/logs",
            "NLP_EXPECTATIONS_DIR": f"{APP_DIR}/expectations", "NLP_SOURCES_FILE": f"{APP_DIR}/conf/sources.yml",
            "NLP_DBT_PROJECT_DIR": f"{APP_DIR}/dbt", "NLP_NOTEBOOKS_DIR": f"{APP_DIR}/notebooks",
            "NLP_EMBEDDINGS_MODEL_DIR": f"{APP_DIR}/models/{model}",
            "NLP_REPORT_PRICING_FILE": f"{APP_DIR}/emr/pricing.json",
            "NLP_ATHENA_S3_STAGING_DIR": f"s3://{self.bucket}/athena-results/",
            "NLP_ATHENA_S3_DATA_DIR": f"s3://{self.bucket}/marts/",
            "NLP_ATHENA_S3_TMP_TABLE_DIR": f"s3://{self.bucket}/athena-tmp/",
            "NLP_ATHENA_WORKGROUP": o["AthenaWorkGroup"], "NLP_ATHENA_SCHEMA": o["MartsDatabase"],
            "NLP_LAKE_SCHEMA": o["LakeDatabase"], "NLP_LAKE_CATALOG": "glue",
            "NLP_REPORT_SNS_TOPIC_ARN": o["TopicArn"],
            # metrics of every stage run and report to CloudWatch, where the stack's alarms and dashboard read them
            "NLP_CLOUDWATCH_METRICS": "true", "NLP_CLOUDWATCH_NAMESPACE": self.s.aws_stack_name,
            "NLP_AWS_REGION": self.s.aws_region,
            "NLP_CODE_VERSION": self.version, "AWS_REGION": self.s.aws_region,
            "AWS_DEFAULT_REGION": self.s.aws_region, "EMR_WORK_DIR": WORK_DIR,
            "EMR_REPORTS_S3": f"s3://{self.bucket}/reports/",
            "EMR_REGISTRY_SECRET_ARN": o["RegistrySecretArn"], "EMR_REGISTRY_HOST": o["RegistryHost"],
            "EMR_REGISTRY_PORT": str(o["RegistryPort"]), "EMR_REGISTRY_DATABASE": "mlflow",
        })
        env.update(self.profile["Settings"])
        return env

    def env_text(self) -> str:
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(self.emr_settings().items()))

    def files(self) -> list[tuple[Path, str]]:
        """(local file, key under artifacts/<version>/) for everything bootstrap.sh installs."""
        files = [(EMR_DIR / name, f"emr/{name}") for name in EMR_FILES]
        files.append((EMR_DIR / "pricing.json", "emr/pricing.json"))
        for folder in ARTIFACT_DIRS:
            for path in sorted((PROJECT_ROOT / folder).rglob("*")):
                rel = path.relative_to(PROJECT_ROOT)
                if path.is_file() and not SKIPPED_NAMES.intersection(rel.parts):
                    files.append((path, rel.as_posix()))
        return files

    # --- upload -----------------------------------------------------------------------------------------------
    def present(self, s3) -> bool:
        """A complete upload of this version is there (its manifest is written last); a dirty tree is
        always uploaded again."""
        if self.version.endswith("-dirty"):
            return False
        return bool(s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/manifest.json").get("KeyCount"))

    def upload(self, s3) -> None:
        if self.present(s3):
            self.out(f"  artifacts of {self.version} already in {self.uri}/")
            return
        sent = self.upload_folder(s3, self.wheelhouse_files(), self.wheelhouse_uri(), "wheelhouse")
        folder = Path(self.s.path("emr_jars_dir"))
        flavours = ["cpu"] + (["gpu"] if self.profile["Flavour"] == "gpu" else [])
        for flavour in flavours:
            jars = jar_bundle(folder / flavour)
            sent += self.upload_folder(s3, jars, self.jars_uri(flavour), f"{flavour} jars",
                                       names=[neutral_name(j) for j in jars])
        files = self.files() + [(build_wheel(), f"dist/{build_wheel().name}")]
        for path, key in files:
            s3.upload_file(str(path), self.bucket, f"{self.prefix}/{key}")
        s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/conf/nlp.env", Body=self.env_text().encode())
        s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/emr/cluster.json",
                      Body=json.dumps(self.cluster_request(), indent=1).encode())
        sent += self.upload_model(s3)
        s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/manifest.json", Body=json.dumps(
            {"version": self.version, "profile": self.profile_name, "files": [k for _, k in files]}).encode())
        self.out(f"  uploaded {len(files) + 3} artifacts of {self.version} to {self.uri}/ and {sent} shared files")

    def upload_folder(self, s3, paths: list[Path], uri: str, what: str, names: list[str] | None = None) -> int:
        """A content-addressed folder (its digest in the name): uploaded once, its marker last."""
        prefix = uri.split("/", 3)[3]
        if s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{prefix}/.complete").get("KeyCount"):
            return 0
        for path, name in zip(paths, names or [p.name for p in paths]):
            s3.upload_file(str(path), self.bucket, f"{prefix}/{name}")
        s3.put_object(Bucket=self.bucket, Key=f"{prefix}/.complete", Body=b"")
        self.out(f"  uploaded {len(paths)} {what} to {uri}/")
        return len(paths)

    def upload_model(self, s3) -> int:
        model_dir = Path(self.s.path("embeddings_model_dir"))
        models = [(p, f"models/{model_dir.name}/{p.relative_to(model_dir).as_posix()}")
                  for p in sorted(model_dir.rglob("*")) if p.is_file()]
        if not models:
            raise SettingsError(f"setting embeddings_model_dir={model_dir}: no model files to upload")
        there = {o["Key"]: o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"models/{model_dir.name}/") for o in page.get("Contents", [])}
        sent = [(p, k) for p, k in models if there.get(k) != p.stat().st_size]
        for path, key in sent:
            s3.upload_file(str(path), self.bucket, key)
        return len(sent)


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

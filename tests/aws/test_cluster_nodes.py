"""What the cluster nodes get: the gpu profile's sizes add up on its instances, the runtime locks pin
with hashes and hold only the jobs' runtime, and bootstrap.sh installs from the bucket with
--require-hashes (a tampered wheel stops it), the CPU jars on the primary node and the GPU ones on the
executors."""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.aws.conftest import EMR_DIR
from tests.conftest import missing

ROOT = EMR_DIR.parent
PROFILES = json.loads((EMR_DIR / "profiles.json").read_text())


def mib(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([mg])", size.lower()).groups()
    return int(number) * (1024 if unit == "g" else 1)


def properties(profile: dict, classification: str) -> dict:
    return next(c["Properties"] for c in profile["Configurations"] if c["Classification"] == classification)


def test_the_gpu_profiles_executors_fit_their_nodes_with_room_for_yarn_and_the_application_master():
    gpu = PROFILES["gpu"]
    spark, yarn = properties(gpu, "spark-defaults"), properties(gpu, "yarn-site")
    (core,) = [g for g in gpu["InstanceGroups"] if g["InstanceRole"] == "CORE"]
    node = gpu["Node"][core["InstanceType"]]
    round_up = 1024   # YARN rounds each container up; 1 GiB is the coarsest step EMR uses

    def container(memory: str, overhead_mib: int) -> int:
        return math.ceil((mib(memory) + overhead_mib) / round_up) * round_up

    executor = container(spark["spark.executor.memory"], mib(spark["spark.executor.memoryOverhead"]))
    master = container(spark["spark.yarn.am.memory"], max(384, mib(spark["spark.yarn.am.memory"]) // 10))
    yarn_memory = int(yarn["yarn.nodemanager.resource.memory-mb"])
    assert yarn_memory <= node["memory_gib"] * 1024 - 3 * 1024       # the OS and EMR's daemons keep 3+ GiB
    assert executor + master <= yarn_memory <= int(yarn["yarn.scheduler.maximum-allocation-mb"])
    assert int(spark["spark.executor.cores"]) + int(spark["spark.yarn.am.cores"]) <= int(yarn["yarn.nodemanager.resource.cpu-vcores"]) == node["vcpu"]
    assert int(spark["spark.executor.instances"]) == core["InstanceCount"]     # one executor per GPU node
    assert int(spark["spark.executor.resource.gpu.amount"]) == node["gpus"] == 1
    task_gpu = float(spark["spark.task.resource.gpu.amount"])
    assert task_gpu == float(gpu["Settings"]["NLP_GPU_TASK_AMOUNT"])           # the jobs ask for what YARN gives
    assert math.floor(1 / task_gpu) >= int(spark["spark.executor.cores"])     # cores, not the GPU, limit tasks
    # the driver never needs a GPU: the primary node has none and the driver asks for none
    (primary,) = [g for g in gpu["InstanceGroups"] if g["InstanceRole"] == "MASTER"]
    assert not primary["InstanceType"].startswith(("g", "p"))
    assert not [k for k in spark if k.startswith("spark.driver.resource")]


def test_the_executors_library_path_holds_every_cuda_library_of_the_gpu_lock():
    path = properties(PROFILES["gpu"], "spark-defaults")["spark.executorEnv.LD_LIBRARY_PATH"].split(":")
    site = "/opt/nlp-batch/venv/lib/python3.11/site-packages"
    packages = re.findall(r"^nvidia-([a-z-]+)-cu12==", (EMR_DIR / "requirements-gpu.lock").read_text(), re.M)
    assert sorted(packages) == ["cublas", "cuda-runtime", "cudnn", "cufft", "curand"]
    assert [p for p in path if p.startswith(site)] == [f"{site}/nvidia/{p.replace('-', '_')}/lib" for p in (
        "cuda-runtime", "cublas", "cufft", "curand", "cudnn")]
    versions = dict(re.findall(r"^(nvidia-[a-z-]+-cu12)==(\S+)", (EMR_DIR / "requirements-gpu.lock").read_text(), re.M))
    assert versions["nvidia-cudnn-cu12"].startswith("9.") and versions["nvidia-cufft-cu12"].startswith("11.")
    assert versions["nvidia-curand-cu12"].startswith("10.") and versions["nvidia-cublas-cu12"].startswith("12.")


def pins(text: str) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


@pytest.mark.parametrize("lock", ["requirements-runtime.lock", "requirements-gpu.lock"])
def test_the_node_locks_pin_every_package_with_hashes(lock):
    text = (EMR_DIR / lock).read_text()
    requirements = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[-1].strip())
    assert requirements and all(re.match(r"^\S+==\S+ \\\n", r) and "--hash=sha256:" in r for r in requirements)


def test_the_runtime_lock_is_the_runtime_of_the_tested_lock_and_nothing_else():
    runtime, dev = pins((EMR_DIR / "requirements-runtime.lock").read_text()), pins((ROOT / "requirements.lock").read_text())
    assert not {"pyspark", "py4j", "pytest", "moto", "jupyterlab", "notebook", "jupyter", "sqlglot", "parliament",
                "cfn-lint", "tokenizers", "dbt-duckdb", "dbt-redshift"} & set(runtime)
    assert {"spark-nlp", "mlflow", "psycopg2-binary", "great-expectations", "dbt-athena-community", "papermill"} <= set(runtime)
    assert {name: v for name, v in runtime.items() if dev.get(name, v) != v} == {}   # the versions the tests ran


def wheel(folder: Path, name: str, payload: str) -> Path:
    """A minimal pure-Python wheel (one module)."""
    path = folder / f"{name}-1.0-py3-none-any.whl"
    files = {f"{name}.py": payload, f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b'=').decode()},{len(v)}\n"
                     for k, v in files.items()) + f"{name}-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr(f"{name}-1.0.dist-info/RECORD", record)
    return path


def lock_line(path: Path) -> str:
    name = path.name.split("-")[0]
    return f"{name}==1.0 \\\n    --hash=sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}\n"


@pytest.fixture
def bucket(tmp_path):
    """s3:// as local folders: artifacts (with tiny locks and the project 'wheel'), wheelhouse, jars, models."""
    s3 = tmp_path / "s3"
    art, house = s3 / "artifacts" / "v1", s3 / "wheelhouse"
    for d in (art / "emr", art / "dist", house, s3 / "jars-cpu", s3 / "jars-gpu", s3 / "models" / "m"):
        d.mkdir(parents=True)
    (art / "emr" / "run_stage.sh").write_text("#!/bin/bash\n")
    runtime, cuda = wheel(house, "runtimepkg", "X = 1\n"), wheel(house, "cudapkg", "Y = 1\n")
    (art / "emr" / "requirements-runtime.lock").write_text(lock_line(runtime))
    (art / "emr" / "requirements-gpu.lock").write_text(lock_line(cuda))
    wheel(art / "dist", "nlpbatch", "Z = 1\n")
    (s3 / "jars-cpu" / "spark-nlp_2.12.jar").write_text("cpu build")
    (s3 / "jars-gpu" / "spark-nlp_2.12.jar").write_text("gpu build")
    (s3 / "jars-gpu" / ".complete").write_text("")
    (s3 / "models" / "m" / "model.onnx").write_text("onnx")
    return s3


def bootstrap(tmp_path: Path, s3: Path, primary: bool, flavour: str = "gpu") -> subprocess.CompletedProcess:
    """bootstrap.sh on a stand-in node: sudo and dnf do nothing, aws copies from the local 's3', and
    python3.11 is this interpreter (pip --require-hashes --no-index for real)."""
    node = tmp_path / ("primary" if primary else "core")
    bin_dir = node / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sudo").write_text('#!/bin/bash\n[ "$1" = dnf ] && exit 0\n"$@"\n')
    (bin_dir / "aws").write_text(f'#!/bin/bash\n# aws s3 cp --recursive --only-show-errors [--exclude X] SRC/ DST/\n'
                                 f'src="${{@: -2:1}}"; dst="${{@: -1}}"; src="{s3}/${{src#s3://bucket/}}"\n'
                                 'mkdir -p "$dst" && cp -r "$src"/. "$dst"/ && rm -f "$dst/.complete"\n')
    (bin_dir / "python3.11").symlink_to(sys.executable)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    info = node / "instance.json"
    info.write_text(json.dumps({"isMaster": primary}))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", NLP_BATCH_HOME=str(node / "app"),
               EMR_INSTANCE_INFO=str(info), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    args = ["s3://bucket/artifacts/v1", "s3://bucket/wheelhouse", "s3://bucket/jars-cpu", "s3://bucket/jars-gpu",
            "s3://bucket/models", flavour]
    return subprocess.run(["bash", str(EMR_DIR / "bootstrap.sh"), *args], env=env, capture_output=True, text=True)


def installed(tmp_path: Path, role: str) -> set[str]:
    site = next((tmp_path / role / "app" / "venv" / "lib").glob("python*/site-packages"))
    return {p.stem for p in site.glob("*.py")}


def test_bootstrap_installs_from_the_bucket_with_hashes_the_right_jars_on_each_node(tmp_path, bucket):
    primary = bootstrap(tmp_path, bucket, primary=True)
    assert primary.returncode == 0, primary.stderr[-2000:]
    core = bootstrap(tmp_path, bucket, primary=False)
    assert core.returncode == 0, core.stderr[-2000:]
    assert installed(tmp_path, "primary") == {"runtimepkg", "nlpbatch"}            # no CUDA on the driver's node
    assert installed(tmp_path, "core") == {"runtimepkg", "cudapkg", "nlpbatch"}
    assert (tmp_path / "primary" / "app" / "jars" / "spark-nlp_2.12.jar").read_text() == "cpu build"
    assert (tmp_path / "core" / "app" / "jars" / "spark-nlp_2.12.jar").read_text() == "gpu build"
    assert not (tmp_path / "core" / "app" / "jars" / ".complete").exists()
    assert os.access(tmp_path / "core" / "app" / "bin" / "run-stage", os.X_OK)


def test_bootstrap_stops_on_a_wheel_that_does_not_match_its_hash(tmp_path, bucket):
    tampered = bucket / "wheelhouse" / "runtimepkg-1.0-py3-none-any.whl"
    wheel(tampered.parent, "runtimepkg", "X = 'something else'\n")
    done = bootstrap(tmp_path, bucket, primary=True)
    assert done.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr


def test_every_maven_resolution_fails_on_a_checksum_mismatch():
    """Maven only warns on a bad checksum by default; -C (--strict-checksums) makes it fail."""
    calls = [line for line in (ROOT / "Makefile").read_text().splitlines() if re.match(r"\s+mvn\s", line)]
    assert len(calls) == 2 and all(re.search(r"\smvn -C\s", line) for line in calls), calls


def test_the_jar_tree_keeps_distinct_names_on_the_nodes():
    """Every jar of the curated tree (make setup resolves it) keeps a name of its own under the names
    the nodes use, so one spark.jars list fits the CPU and the GPU bundles."""
    from nlp_emr.artifacts import neutral_name

    jars = sorted((ROOT / ".cache" / "jars").glob("*.jar"))
    if not jars:
        missing("no .cache/jars: make setup resolves jars/pom.xml")
    names = [neutral_name(j) for j in jars]
    assert len(set(names)) == len(names) and "spark-nlp_2.12.jar" in names and "onnxruntime.jar" in names

"""MLflow tracking and model registry: log and register a fitted pipeline, find and load the champion.

Only MLflow's "does not exist" means there is no such model or alias. Any other failure of the store
(unreachable, a broken database, refused credentials) stops the command with exit 10 and one line
naming the store: read as "no champion", it would start a retraining or skip inference.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass

from .runlog import StageStopped
from .settings import Settings
from .vocabulary import ExitCode, RunStatus

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class RegistryUnavailable(StageStopped):
    def __init__(self, settings: Settings, exc: BaseException):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        super().__init__(f"MLflow store {redacted(settings.mlflow_uri)} cannot be used: {type(exc).__name__}: {first}",
                         exit_code=ExitCode.REGISTRY_UNAVAILABLE, status=RunStatus.FAILED)


def redacted(uri: str) -> str:
    """The store's URI without a password (postgresql://user:secret@host/db -> user:***@host)."""
    import re

    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", uri)


def missing(exc: BaseException) -> bool:
    """True for MLflow's answer that a model, version or alias does not exist. MLflow 3 says so for
    a model or version with RESOURCE_DOES_NOT_EXIST, and for an alias with INVALID_PARAMETER_VALUE
    ("Registered model alias champion not found.")."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


@contextlib.contextmanager
def store(settings: Settings):
    """Turns every failure of the store but "does not exist" into RegistryUnavailable."""
    try:
        yield
    except StageStopped:
        raise
    except Exception as exc:
        if missing(exc):
            raise
        raise RegistryUnavailable(settings, exc) from exc


def client(settings: Settings):
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    root = settings.path("mlflow_artifact_root")
    if "://" not in root:  # a local artifact root; an s3:// one needs no folder
        os.makedirs(root, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def experiment_id(settings: Settings) -> str:
    """The experiment named after the model, with its artifacts under mlflow_artifact_root."""
    c = client(settings)
    exp = c.get_experiment_by_name(settings.model_name)
    if exp is not None:
        return exp.experiment_id
    root = settings.path("mlflow_artifact_root")
    location = root if "://" in root else "file://" + root
    return c.create_experiment(settings.model_name, artifact_location=location)


def model_by_alias(settings: Settings, alias: str) -> ModelRef | None:
    try:
        with store(settings):
            mv = client(settings).get_model_version_by_alias(settings.model_name, alias)
    except Exception as exc:
        if missing(exc):
            return None
        raise
    return ModelRef(settings.model_name, str(mv.version), mv.run_id)


def champion(settings: Settings) -> ModelRef | None:
    return model_by_alias(settings, CHAMPION)


def open_store(settings: Settings) -> None:
    """Imports MLflow and opens the store (a new SQLite store creates its tables first), for a caller
    to run beside other work; a store that cannot be used is left to the next call to report."""
    with contextlib.suppress(Exception):
        champion(settings)


def set_alias(settings: Settings, alias: str, version: str) -> None:
    client(settings).set_registered_model_alias(settings.model_name, alias, str(version))


ARTIFACT_HASH_TAG = "artifact_sha256"


def artifact_hash(folder: str) -> str:
    """sha256 over every file of a model folder (relative path and bytes, in path order)."""
    import hashlib

    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def log_pipeline(settings: Settings, pipeline_model, name: str = "model") -> ModelRef:
    """Logs a fitted Spark pipeline in the active run, registers it under settings.model_name and
    records the sha256 of its artifacts as a version tag: load_pipeline checks it."""
    import mlflow
    import mlflow.artifacts
    import mlflow.spark

    client(settings)
    info = mlflow.spark.log_model(pipeline_model, artifact_path=name, registered_model_name=settings.model_name)
    run = mlflow.active_run()
    ref = ModelRef(settings.model_name, str(info.registered_model_version), run.info.run_id)
    local = mlflow.artifacts.download_artifacts(artifact_uri=ref.uri)
    client(settings).set_model_version_tag(ref.name, ref.version, ARTIFACT_HASH_TAG, artifact_hash(local))
    return ref


ENCODER_TAG = "embeddings_encoder"  # embedding_store.encoder_id of a version's encoder, when it has one


def encoder_of(settings: Settings, ref: ModelRef) -> str | None:
    """The version's encoder id (None: no encoder, or registered before the tag existed)."""
    with store(settings):
        return client(settings).get_model_version(ref.name, ref.version).tags.get(ENCODER_TAG)


def aliased_encoders(settings: Settings) -> set[str]:
    """The encoder ids of the versions that hold an alias (champion, challenger): what runs read."""
    refs = [model_by_alias(settings, alias) for alias in (CHAMPION, CHALLENGER)]
    return {encoder for encoder in (encoder_of(settings, ref) for ref in refs if ref) if encoder}


def version(settings: Settings, number: str) -> ModelRef | None:
    try:
        with store(settings):
            mv = client(settings).get_model_version(settings.model_name, str(number))
    except Exception as exc:
        if missing(exc):
            return None
        raise
    return ModelRef(settings.model_name, str(mv.version), mv.run_id)


@dataclass(frozen=True)
class TrainingScope:
    """What a version was fitted on: its training dates and the frozen split it took the train rows from."""
    dates: frozenset
    test_fraction: float
    validation_fraction: float


def training_scope(settings: Settings, ref: ModelRef) -> TrainingScope | None:
    """From the version's tags and its run's parameters; None when they are not there (a version
    registered by hand, or its run deleted): then nobody knows which documents it learnt, and
    inference marks seen_in_training unknown. With `train_max_rows` the model saw a sample of its
    train split; the whole split still counts as seen, which only ever leaves out more documents."""
    try:
        with store(settings):
            c = client(settings)
            tags = c.get_model_version(ref.name, ref.version).tags
            params = c.get_run(ref.run_id).data.params if ref.run_id else {}
    except Exception as exc:
        if missing(exc):
            return None
        raise
    if not tags.get("training_dates") or not {"test_fraction", "validation_fraction"} <= set(params):
        return None
    return TrainingScope(frozenset(tags["training_dates"].split(",")), float(params["test_fraction"]),
                         float(params["validation_fraction"]))


_loaded: dict[str, object] = {}  # (tracking uri, model uri) -> fitted pipeline, loaded once per process


def load_pipeline(settings: Settings, ref: ModelRef):
    """The fitted pipeline of a version, once its artifacts match the sha256 recorded when it was
    registered (a version registered before hashes were recorded loads as it is)."""
    import mlflow.artifacts
    import mlflow.spark

    key = f"{settings.mlflow_uri}|{ref.uri}"
    if key not in _loaded:
        with store(settings):
            recorded = client(settings).get_model_version(ref.name, ref.version).tags.get(ARTIFACT_HASH_TAG)
        local = mlflow.artifacts.download_artifacts(artifact_uri=ref.uri)
        if recorded and artifact_hash(local) != recorded:
            raise StageStopped(f"model {ref.uri}: its artifacts changed since it was registered (sha256 "
                               f"{artifact_hash(local)[:12]}..., recorded {recorded[:12]}...); refusing to load "
                               "it: register it again (make train) or roll back (make promote VERSION=N FORCE=1)",
                               exit_code=ExitCode.NO_CHAMPION, status=RunStatus.FAILED)
        _loaded[key] = mlflow.spark.load_model(local)
    return _loaded[key]

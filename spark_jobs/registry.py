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


def set_alias(settings: Settings, alias: str, version: str) -> None:
    client(settings).set_registered_model_alias(settings.model_name, alias, str(version))


def log_pipeline(settings: Settings, pipeline_model, name: str = "model") -> ModelRef:
    """Logs a fitted Spark pipeline in the active run and registers it under settings.model_name."""
    import mlflow
    import mlflow.spark

    client(settings)
    mlflow.spark.log_model(pipeline_model, artifact_path=name, registered_model_name=settings.model_name)
    run = mlflow.active_run()
    versions = client(settings).search_model_versions(f"name='{settings.model_name}' and run_id='{run.info.run_id}'")
    version = max(int(v.version) for v in versions)
    return ModelRef(settings.model_name, str(version), run.info.run_id)


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
    import mlflow.spark

    key = f"{settings.mlflow_uri}|{ref.uri}"
    if key not in _loaded:
        client(settings)
        _loaded[key] = mlflow.spark.load_model(ref.uri)
    return _loaded[key]

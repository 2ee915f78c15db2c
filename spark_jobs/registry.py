"""MLflow tracking and model registry: log and register a fitted pipeline, find and load the champion."""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

from .settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
EXIT_NO_CHAMPION = 4


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def client(settings: Settings):
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    os.makedirs(settings.path("mlflow_artifact_root"), exist_ok=True)
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
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        mv = c.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException:
        return None
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
    from mlflow.exceptions import MlflowException

    try:
        mv = client(settings).get_model_version(settings.model_name, str(number))
    except MlflowException:
        return None
    return ModelRef(settings.model_name, str(mv.version), mv.run_id)


@dataclass(frozen=True)
class TrainingScope:
    """What a version was fitted on: its training dates and the frozen split it took the train rows from."""
    dates: frozenset
    test_fraction: float
    validation_fraction: float


def training_scope(settings: Settings, ref: ModelRef) -> TrainingScope | None:
    """From the version's tags and its run's parameters; None when they are not there (a version
    registered by hand). With `train_max_rows` the model saw a sample of its train split; the whole
    split still counts as seen, which only ever leaves out more documents."""
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        tags = c.get_model_version(ref.name, ref.version).tags
        params = c.get_run(ref.run_id).data.params if ref.run_id else {}
    except MlflowException:
        return None
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

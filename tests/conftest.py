"""Shared fixtures: one SparkSession for the whole test run, and settings pointing at temp folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_jobs import settings as settings_mod

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "womens_clothing_ecommerce_reviews.csv.gz"
TWEETS = SHARED / "data" / "airline_tweets.csv.gz"
MODEL_DIR = SHARED / "models" / "all-MiniLM-L6-v2-onnx"


def make_settings(root: Path, **overrides) -> settings_mod.Settings:
    """Settings with every output under `root` (never the developer's ./lake)."""
    values = dict(
        lake_root=str(root / "lake"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        mlflow_artifact_root=str(root / "mlartifacts"),
        warehouse_path=str(root / "warehouse" / "nlp.duckdb"),
        reports_dir=str(root / "reports"),
        spark_master="local[2]",
        spark_driver_memory="4g",
    )
    values.update(overrides)
    return settings_mod.load(env={}, **values)


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nlp")


@pytest.fixture(scope="session")
def spark(session_root):
    from spark_jobs.spark import get_spark

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return get_spark(make_settings(session_root))


@pytest.fixture
def settings(tmp_path) -> settings_mod.Settings:
    return make_settings(tmp_path)


def missing(message: str):
    """A tool or data a test needs is not here: the test fails, naming it (never a skip, so that no run
    passes without the claims being tested). `make test` installs the system tools where it can
    (PostgreSQL, Chromium: root with apt-get); ../shared must sit beside the clone."""
    pytest.fail(f"{message}: the test needs it (README, \"Two commands\")")


def need(path: Path):
    if not path.exists():
        missing(f"{path} is not available (../shared missing)")


def table_rows(settings: settings_mod.Settings, zone: str, date: str | None = None):
    """A lake table's rows (of one ingest_date) as pandas, read with pyiceberg: independently of Spark,
    as an analyst's Python would; every row the table holds, committed batch or not."""
    import pandas as pd
    from pyiceberg.expressions import AlwaysTrue, EqualTo

    from spark_jobs import tables

    table = tables.load_table(settings, zone)
    if table is None or table.current_snapshot() is None:
        return pd.DataFrame()
    return table.scan(row_filter=EqualTo("ingest_date", date) if date else AlwaysTrue()).to_pandas()

"""The MLflow registry functions of spark_jobs/registry.py on PostgreSQL, the store the stack gives the
registry on AWS (RDS), here a throwaway server on 127.0.0.1 (tests/dbt/test_postgres.py starts it)."""
from __future__ import annotations

import pytest

from spark_jobs import registry
from tests.aws.conftest import require_tool
from tests.conftest import make_settings
from tests.dbt.test_postgres import pg_bin, postgres  # noqa: F401  (the server fixture)


@pytest.fixture(scope="module")
def registry_uri(postgres):  # noqa: F811
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=postgres, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE mlflow_registry")
    admin.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:{postgres}/mlflow_registry"


@pytest.fixture(scope="module", autouse=True)
def postgres_installed():
    require_tool(pg_bin("initdb") or "initdb", "apt-get install postgresql (.ci/run does)")


def test_register_versions_and_move_aliases_on_postgresql(registry_uri, spark, tmp_path):
    import mlflow
    import psycopg2
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Tokenizer

    settings = make_settings(tmp_path, mlflow_tracking_uri=registry_uri, mlflow_artifact_root=str(tmp_path / "artifacts"))
    texts = spark.createDataFrame([("runs on postgres",)], ["text"])
    fitted = Pipeline(stages=[Tokenizer(inputCol="text", outputCol="words")]).fit(texts)
    refs = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=registry.experiment_id(settings)):
            refs.append(registry.log_pipeline(settings, fitted))
    assert [r.version for r in refs] == ["1", "2"]
    assert registry.champion(settings) is None
    registry.set_alias(settings, registry.CHAMPION, refs[0].version)
    registry.set_alias(settings, registry.CHALLENGER, refs[1].version)
    assert registry.champion(settings) == refs[0]
    assert registry.model_by_alias(settings, registry.CHALLENGER) == refs[1]
    registry.set_alias(settings, registry.CHAMPION, refs[1].version)          # a promotion moves the alias
    assert registry.champion(settings) == refs[1] and registry.version(settings, "1") == refs[0]
    loaded = registry.load_pipeline(settings, refs[1])
    assert loaded.transform(texts).first().words == ["runs", "on", "postgres"]

    port = int(registry_uri.split(":")[-1].split("/")[0])
    with psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="mlflow_registry") as pg, pg.cursor() as cur:
        cur.execute("select version, alias from registered_model_aliases join model_versions using (name, version) "
                    "order by alias")
        assert cur.fetchall() == [(2, "challenger"), (2, "champion")]

import pytest

from spark_jobs import settings as S


def test_defaults_are_the_local_embedded_stack():
    s = S.load(env={})
    assert s.lake_root == "lake" and s.model_name == "review_sentiment"
    assert s.mlflow_uri.startswith("sqlite:////") and s.mlflow_uri.endswith("/mlflow.db")
    assert s.path("warehouse_path").endswith("warehouse/nlp.duckdb")


def test_cli_flag_beats_environment_beats_default():
    env = {"NLP_LAKE_ROOT": "/env/lake", "NLP_REPLAY_DAYS": "3"}
    assert S.load([], env=env).lake_root == "/env/lake"
    s = S.load(["--lake-root", "/cli/lake"], env=env)
    assert s.lake_root == "/cli/lake" and s.replay_days == 3


def test_uris_are_kept_as_they_are():
    s = S.load(env={"NLP_LAKE_ROOT": "s3a://bucket/lake", "NLP_LAKE_CATALOG": "glue"})
    assert s.path("lake_root") == "s3a://bucket/lake"


def test_a_lake_on_s3_with_the_local_catalog_needs_its_sqlite_file_named():
    with pytest.raises(S.SettingsError, match="lake_catalog_db: a local catalog of a lake at s3a://bucket/lake"):
        S.load(env={"NLP_LAKE_ROOT": "s3a://bucket/lake"})
    assert S.load(env={"NLP_LAKE_ROOT": "s3a://bucket/lake", "NLP_LAKE_CATALOG_DB": "/tmp/c.db"}).lake_catalog == "local"


@pytest.mark.parametrize("env, named", [
    ({"NLP_REPLAY_DAYS": "five"}, "NLP_REPLAY_DAYS"),
    ({"NLP_DATE": "2026-13-01"}, "date"),
    ({"NLP_DATE": "20261101"}, "date"),        # Python's fromisoformat reads these two as dates
    ({"NLP_DATE": "2026-W44-7"}, "date"),
    ({"NLP_DATE": "2026-11-01\n"}, "date"),
    ({"NLP_TARGET": "k8s"}, "target"),
    ({"NLP_GPU": "maybe"}, "NLP_GPU"),
    ({"NLP_CRITICAL_MAX_FAILING_SHARE": "1.5"}, "critical_max_failing_share"),
    ({"NLP_GPU": "true"}, "NLP_ONNX_INT8=false"),   # the int8 default's operators run on the CPU only
    ({"NLP_REPORT_TEXT_SAMPLE": "100"}, "report_text_sample=100"),   # fewer than the 128 texts embedded
])
def test_bad_values_fail_with_one_line_naming_the_setting(env, named):
    with pytest.raises(S.SettingsError) as err:
        S.load(env=env)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_mistyped_setting_is_refused_with_the_name_it_resembles():
    with pytest.raises(S.SettingsError) as err:
        S.load(env={"NLP_LAKE_ROOTT": "/x"})
    assert str(err.value).startswith("unknown setting NLP_LAKE_ROOTT: did you mean NLP_LAKE_ROOT?")
    with pytest.raises(S.SettingsError, match="NLP_NOTHING_LIKE_IT: no setting has a similar name"):
        S.load(env={"NLP_NOTHING_LIKE_IT": "1"})
    # variables the dbt profiles read are not settings, and are not refused
    assert S.load(env={"NLP_ATHENA_S3_DATA_DIR": "s3://b/marts/", "NLP_PG_PORT": "5432"}).lake_root == "lake"


def test_every_nlp_variable_dbt_reads_is_a_setting_or_declared_external():
    import re

    from spark_jobs.settings import PROJECT_ROOT

    read = set()
    for path in (PROJECT_ROOT / "dbt").rglob("*"):
        if path.suffix in (".yml", ".sql") and "target" not in path.parts:
            read |= set(re.findall(r"env_var\(\s*'(NLP_[A-Z0-9_]+)'", path.read_text()))
    settings = {S.env_name(f) for f in S.Settings.__dataclass_fields__}
    assert read and read <= settings | S.EXTERNAL_ENV, read - settings - S.EXTERNAL_ENV
    assert S.EXTERNAL_ENV - {"NLP_CODE_VERSION", "NLP_BATCH_HOME"} <= read  # nothing stale


def test_as_env_round_trips():
    s = S.load(env={}, replay_days=2, gpu=True, onnx_int8=False)
    assert S.load(env=s.as_env()) == s


def test_only_does_not_exist_means_no_model(tmp_path):
    """An alias or version that does not exist is "no model"; a store that cannot be used is not."""
    import pytest

    from spark_jobs import registry

    settings = S.load(env={}, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db", mlflow_artifact_root=str(tmp_path / "a"))
    assert registry.champion(settings) is None  # no registered model at all
    registry.client(settings).create_registered_model(settings.model_name)
    assert registry.champion(settings) is None and registry.version(settings, "7") is None  # no alias, no version
    # a store that cannot be opened (a server that does not answer is the same, after MLflow's own
    # ten retries, about 100 s: too slow for a unit test)
    broken = settings.replace(mlflow_tracking_uri="sqlite:////proc/version/mlflow.db")
    with pytest.raises(registry.RegistryUnavailable) as stop:
        registry.champion(broken)
    assert stop.value.exit_code == 10 and "sqlite:////proc/version/mlflow.db cannot be used" in str(stop.value)
    assert registry.redacted("postgresql+psycopg2://u:secret@db:5432/x") == "postgresql+psycopg2://u:***@db:5432/x"

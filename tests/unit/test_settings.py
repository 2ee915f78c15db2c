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
    s = S.load(env={"NLP_LAKE_ROOT": "s3a://bucket/lake"})
    assert s.path("lake_root") == "s3a://bucket/lake"


@pytest.mark.parametrize("env, named", [
    ({"NLP_REPLAY_DAYS": "five"}, "NLP_REPLAY_DAYS"),
    ({"NLP_DATE": "2026-13-01"}, "date"),
    ({"NLP_TARGET": "k8s"}, "target"),
    ({"NLP_GPU": "maybe"}, "NLP_GPU"),
    ({"NLP_CRITICAL_MAX_FAILING_SHARE": "1.5"}, "critical_max_failing_share"),
])
def test_bad_values_fail_with_one_line_naming_the_setting(env, named):
    with pytest.raises(S.SettingsError) as err:
        S.load(env=env)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_as_env_round_trips():
    s = S.load(env={}, replay_days=2, gpu=True)
    assert S.load(env=s.as_env()) == s

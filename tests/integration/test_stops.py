"""Every stop says what, where and why in one line, with its exit code (vocabulary.ExitCode), and a
command that cannot start writes nothing. Each case runs the real command line (`cli.main`, what
`nlp-batch` and `make` call) on a small lake."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import pyarrow as pa

from spark_jobs import cli, runlog, storage, tables
from spark_jobs.lake import Lake
from spark_jobs.runlog import RunRecord
from spark_jobs.settings import PROJECT_ROOT
from spark_jobs.vocabulary import ExitCode
from tests.conftest import make_settings

DATE = "2026-11-01"
REVIEWS = (",Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,Division Name,"
           "Department Name,Class Name\n"
           "1,1080,30,Nice,Lovely dress,5,1,0,General,Dresses,Dresses\n"
           "2,1080,41,Meh,It is fine,3,0,0,General,Dresses,Dresses\n"
           "3,862,25,Bad,Fell apart after one wash,1,0,2,General,Tops,Knits\n")


def flags(tmp_path: Path, **extra: str) -> list[str]:
    values = {"lake-root": str(tmp_path / "lake"), "mlflow-tracking-uri": f"sqlite:///{tmp_path}/mlflow.db",
              "mlflow-artifact-root": str(tmp_path / "mlartifacts"), "reports-dir": str(tmp_path / "reports"),
              "warehouse-path": str(tmp_path / "warehouse" / "nlp.duckdb"), "log-dir": str(tmp_path / "logs"),
              **extra}
    return [f"--{k}={v}" for k, v in values.items()]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def landed(tmp_path: Path, date: str = DATE, ingested: bool = False) -> Lake:
    """A lake with a file landed for `date` (and, when asked, a committed batch for it: a curated row of
    the batch and its succeeded ingest record, written with pyiceberg, no Spark needed)."""
    settings = make_settings(tmp_path)
    lake = Lake(settings)
    storage.put_text(storage.join(lake.partition("raw", date), "source=reviews", "reviews.csv"), REVIEWS)
    if ingested:
        rows = pa.table({"ingest_date": [date], "batch_id": ["b1"], "review_id": ["1"]})
        catalog = tables.python_catalog(settings)
        catalog.create_namespace_if_not_exists(settings.lake_schema)
        catalog.create_table((settings.lake_schema, "curated"), schema=rows.schema).append(rows)
        runlog.write(settings, RunRecord(stage="ingest", ingest_date=date, run_id="b1", status="succeeded"))
        assert lake.is_ingested(date)
    return lake


def stages_recorded(tmp_path: Path) -> list[str]:
    return [r["stage"] for r in runlog.records(make_settings(tmp_path))]


def test_a_mistyped_setting_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NLP_LAKE_ROOTT", "/x")
    assert cli.main(["ingest", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.BAD_SETTING
    assert one_line(capsys) == ("ERROR: unknown setting NLP_LAKE_ROOTT: did you mean NLP_LAKE_ROOT? "
                                "(settings: spark_jobs/settings.py, or `python -m spark_jobs run --help`)")


def test_a_lake_root_that_does_not_exist_is_named_and_left_alone(tmp_path, capsys):
    assert cli.main(["infer", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.BAD_SETTING
    line = one_line(capsys)
    assert line.startswith(f"ERROR: lake root {tmp_path / 'lake'} does not exist") and "NLP_LAKE_ROOT" in line
    assert not (tmp_path / "lake").exists()  # no run record written into it


def test_infer_for_a_date_never_landed_says_to_land_it(tmp_path, capsys):
    landed(tmp_path, "2026-11-02")
    assert cli.main(["infer", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.BAD_SETTING
    line = one_line(capsys)
    assert f"nothing is landed for {DATE}" in line and f"make land FILE=... DATE={DATE}" in line
    assert stages_recorded(tmp_path) == []


def test_infer_for_a_landed_date_not_ingested_says_to_ingest_it(tmp_path, capsys):
    landed(tmp_path)
    assert cli.main(["infer", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.BAD_SETTING
    assert f"run `make ingest DATE={DATE}` first" in one_line(capsys)
    assert stages_recorded(tmp_path) == []


def test_inference_without_a_champion_stops_with_its_own_code(tmp_path, capsys):
    landed(tmp_path, ingested=True)
    assert cli.main(["infer", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.NO_CHAMPION
    line = one_line(capsys)
    assert "no 'champion' alias on model review_sentiment" in line and "make train" in line


def test_a_report_for_a_date_never_scored_starts_nothing(tmp_path, capsys):
    landed(tmp_path)
    assert cli.main(["report", *flags(tmp_path), f"--date={DATE}"]) == ExitCode.BAD_SETTING
    line = one_line(capsys)
    assert "no warehouse at" in line and "make dbt" in line
    assert not (tmp_path / "reports").exists()


def test_a_registry_that_cannot_be_used_has_its_own_code_and_nothing_is_trained(spark, tmp_path, capsys):
    """`make run` used to read a registry it could not reach as "no champion", and retrained."""
    landed(tmp_path)
    store = "sqlite:////proc/version/mlflow.db"  # cannot be opened (a server that does not answer stops
    # the same way, after MLflow's own retries of about 100 s)
    code = cli.main(["run", *flags(tmp_path, **{"mlflow-tracking-uri": store}), f"--date={DATE}"])
    assert code == ExitCode.REGISTRY_UNAVAILABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"STOPPED: MLflow store {store} cannot be used")
    assert "ingest" in stages_recorded(tmp_path) and "train" not in stages_recorded(tmp_path)  # ingested, not trained


def test_an_unexpected_error_exits_1_with_one_line_and_its_trace_in_a_file(tmp_path, capsys):
    landed(tmp_path)
    broken = tmp_path / "expectations"
    broken.mkdir()
    (broken / "documents.json").write_text("{ not json")
    code = cli.main(["ingest", *flags(tmp_path, **{"expectations-dir": str(broken)}), f"--date={DATE}"])
    assert code == ExitCode.UNEXPECTED
    line = one_line(capsys)
    assert line.startswith("ERROR: ingest failed unexpectedly: JSONDecodeError:") and "trace in" in line
    (trace,) = (tmp_path / "logs").iterdir()
    assert "Traceback" in trace.read_text() and str(trace) in line


def test_dbt_on_a_lake_with_no_tables_names_the_setting(tmp_path, capsys):
    (tmp_path / "lake").mkdir()
    assert cli.main(["dbt", *flags(tmp_path)]) == ExitCode.BAD_SETTING
    line = one_line(capsys)
    assert line.startswith(f"ERROR: the lake at {tmp_path / 'lake'} has no tables in ") and "lake_root" in line


def test_dbt_names_the_reason_it_failed(tmp_path, capsys):
    landed(tmp_path, ingested=True)  # a curated table without the columns the staging model reads
    assert cli.main(["dbt", *flags(tmp_path)]) == ExitCode.DBT_FAILED
    line = one_line(capsys)
    assert line.startswith("STOPPED: dbt build failed: model stg_committed_batches: ") and '"text"' in line, line


def test_a_file_landed_under_the_wrong_source_can_be_taken_back(tmp_path, capsys):
    lake = landed(tmp_path, ingested=True)
    assert cli.main(["unland", *flags(tmp_path), f"--date={DATE}", "--file=reviews.csv"]) == ExitCode.OK
    assert storage.list_files(lake.partition("raw", DATE)) == []
    (aside,) = storage.list_files(lake.zone("unlanded"))
    assert f"ingest_date={DATE}/source=reviews/" in aside and aside.endswith("-reviews.csv")
    assert Path(aside).read_text() == REVIEWS
    assert lake.is_ingested(DATE)  # readers keep the committed batch until `make ingest` replaces it
    assert cli.main(["unland", *flags(tmp_path), f"--date={DATE}", "--file=reviews.csv"]) == ExitCode.BAD_SETTING
    assert f"nothing is landed for {DATE}" in capsys.readouterr().err


def test_help_lists_every_target_and_each_command_has_its_own(capsys):
    out = subprocess.run(["make", "-s", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    for needle in ("promote [VERSION=N] [FORCE=1]", "infer DATE=D [RESCORE=1]", "DRY_RUN=1", "unland FILE=name",
                   "land FILE=path DATE=D", "deploy", "preflight TARGET=emr"):
        assert needle in out, needle
    with pytest.raises(SystemExit) as done:
        cli.main(["infer", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: nlp-batch infer") and "--rescore" in text and "--lake-root" in text


def test_the_exit_code_table_in_the_readme_is_the_enum():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ExitCode:
        assert f"`{code.value}`" in section, code


def test_the_entry_point_returns_the_real_exit_code(tmp_path):
    """What schedulers call instead of make (which turns every failure into 2)."""
    entry = os.path.join(os.path.dirname(os.sys.executable), "nlp-batch")
    done = subprocess.run([entry, "infer", *flags(tmp_path), f"--date={DATE}"], capture_output=True, text=True)
    assert done.returncode == ExitCode.BAD_SETTING and "does not exist" in done.stderr
    landed(tmp_path, ingested=True)
    done = subprocess.run([entry, "infer", *flags(tmp_path), f"--date={DATE}"], capture_output=True, text=True)
    assert done.returncode == ExitCode.NO_CHAMPION, done.stderr

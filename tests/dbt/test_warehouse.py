"""dbt on DuckDB over a small lake: the build (models, unit tests, data tests) passes, and every mart
says what the lake's rows say, computed here independently with pandas and scikit-learn."""
from __future__ import annotations

import json
import random
from collections import Counter

import duckdb
import pandas as pd
import pytest
import sqlglot
from sklearn.metrics import accuracy_score, f1_score

from tests.dbt.conftest import PROJECT, dbt, duckdb_env
from tests.dbt.lake_fixture import (BLOCKED_DATE, CURATED, DATES, LONG_MESSAGE, PREDICTIONS, predict, write_lake,
                                    write_run, write_table)


def frame(con, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


def current_predictions(lake) -> pd.DataFrame:
    """Per ingest_date, the predictions of the newest model version, with their documents."""
    preds = lake.predictions
    newest = preds.groupby("ingest_date").model_version.transform("max")
    docs = lake.curated.rename(columns={"class": "product_class"})
    return preds[preds.model_version == newest].merge(docs, on=["review_id", "ingest_date"])


def test_build_runs_every_model_unit_test_and_data_test(duckdb_build):
    result = duckdb_build.result
    assert result.success, result.failures() or result.exception
    kinds = Counter(str(r.node.resource_type) for r in result.results)
    assert kinds["model"] == 24 and kinds["unit_test"] == 11 and kinds["test"] >= 80, kinds


def test_fct_predictions_has_one_row_per_prediction_with_its_document(warehouse, fixture_lake):
    fct = frame(warehouse, "select * from fct_predictions").assign(ingest_date=lambda d: d.ingest_date.astype(str))
    assert len(fct) == len(fixture_lake.predictions)
    docs = fixture_lake.curated.rename(columns={"class": "product_class"})
    joined = fct.merge(docs, on=["review_id", "ingest_date"], suffixes=("", "_lake"), validate="many_to_one")
    assert len(joined) == len(fct)
    for column in ["source", "product_id", "department", "product_class", "rating"]:
        assert joined[column].fillna(-1).tolist() == joined[column + "_lake"].fillna(-1).tolist(), column
    # version 2 rescored 2026-11-01: it is current there, version 1 everywhere else
    current = fct[fct.is_current].groupby("ingest_date").model_version.unique().map(list).to_dict()
    assert current == {"2026-11-01": [2], "2026-11-02": [1], "2026-11-03": [1]}


def test_daily_sentiment_keeps_the_report_columns_and_counts_current_predictions(warehouse, fixture_lake):
    mart = frame(warehouse, "select ingest_date, source, department, label, n_documents, share_of_department, "
                            "mean_confidence from mart_daily_sentiment")
    cur = current_predictions(fixture_lake).assign(department=lambda d: d.department.fillna("(none)"))
    keys = ["ingest_date", "source", "department", "label"]
    expected = cur.groupby(keys).agg(n_documents=("review_id", "size"), mean_confidence=("confidence", "mean")).reset_index()
    assert "tweets" in set(expected.source)  # the tweets are counted apart from the reviews without a department
    mart["ingest_date"] = mart.ingest_date.astype(str)
    merged = expected.merge(mart, on=keys, how="outer", suffixes=("", "_dbt"), indicator=True)
    assert (merged._merge == "both").all(), merged[merged._merge != "both"]
    assert (merged.n_documents == merged.n_documents_dbt).all()
    assert merged.mean_confidence.sub(merged.mean_confidence_dbt).abs().max() < 1e-9
    shares = mart.groupby(["ingest_date", "source", "department"]).share_of_department.sum()
    assert shares.sub(1).abs().max() < 1e-9


def test_daily_product_sentiment_matches_the_lake(warehouse, fixture_lake):
    mart = frame(warehouse, "select * from mart_daily_product_sentiment")
    cur = current_predictions(fixture_lake).fillna({"department": "(none)", "product_class": "(none)",
                                                   "product_id": "(none)"})
    keys = ["ingest_date", "source", "department", "product_class", "product_id"]
    expected = cur.groupby(keys).agg(
        n_documents=("review_id", "size"), n_negative=("label", lambda s: (s == "negative").sum()),
        mean_rating=("rating", "mean"), run_id=("run_id", "max")).reset_index()
    mart["ingest_date"] = mart.ingest_date.astype(str)
    merged = expected.merge(mart, on=keys, how="outer", suffixes=("", "_dbt"), indicator=True)
    assert (merged._merge == "both").all() and len(mart) == len(expected)
    assert (merged.n_documents == merged.n_documents_dbt).all() and (merged.n_negative == merged.n_negative_dbt).all()
    assert (merged.run_id == merged.run_id_dbt).all()
    assert merged.mean_rating.sub(merged.mean_rating_dbt).abs().max() < 1e-9
    assert (mart.share_negative * mart.n_documents - mart.n_negative).abs().max() < 1e-9


def test_model_performance_agrees_with_scikit_learn(warehouse, fixture_lake):
    mart = frame(warehouse, "select * from mart_model_performance").assign(ingest_date=lambda d: d.ingest_date.astype(str))
    labels = fixture_lake.labels[["review_id", "ingest_date", "label"]].rename(columns={"label": "true_label"})
    scored = pd.concat([fixture_lake.predictions.assign(scored_as="champion"),
                        fixture_lake.shadow.assign(scored_as="shadow")]).merge(labels, on=["review_id", "ingest_date"])
    assert scored.seen_in_training.sum() == 6
    scored = scored[~scored.seen_in_training]  # a model is not judged on what it was fitted on
    groups = scored.groupby(["scored_as", "ingest_date", "model_version"])
    assert len(mart) == groups.ngroups == 4  # labels exist for two dates: v1 x2, v2, shadow v3
    for (scored_as, date, version), g in groups:
        row = mart[(mart.scored_as == scored_as) & (mart.ingest_date == date) & (mart.model_version == version)].iloc[0]
        assert row.n_labelled == len(g)
        assert row.accuracy == pytest.approx(accuracy_score(g.true_label, g.label))
        assert row.macro_f1 == pytest.approx(f1_score(g.true_label, g.label, average="macro", zero_division=0))
    assert set(mart[mart.is_current].model_version.astype(str) + "@" + mart[mart.is_current].ingest_date) == \
        {"2@2026-11-01", "1@2026-11-02"}


def test_data_quality_accounts_for_every_landed_row(warehouse, fixture_lake):
    mart = frame(warehouse, "select * from mart_data_quality").assign(ingest_date=lambda d: d.ingest_date.astype(str))
    mart = mart.set_index("ingest_date")
    assert sorted(mart.index) == DATES + [BLOCKED_DATE]
    runs = [r for r in fixture_lake.runs if r["stage"] == "ingest"]
    for date in DATES:
        ok = next(r for r in runs if r["ingest_date"] == date and r["status"] == "succeeded")
        row = mart.loc[date]
        assert (row.ingest_status, row.ingest_run_id) == ("succeeded", ok["run_id"])
        assert (row.landed, row.curated, row.quarantined, row.duplicates) == \
            (ok["rows_in"], ok["rows_out"], ok["rows_rejected"], ok["rows_duplicate"])
        assert row.landed == row.curated + row.quarantined + row.duplicates and row.is_balanced
        assert row.curated_in_lake == (fixture_lake.curated.ingest_date == date).sum()
        reasons = fixture_lake.quarantine[fixture_lake.quarantine.ingest_date == date].reasons.explode()
        counts = sorted(reasons.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert row.top_reasons == ", ".join(f"{r} ({n})" for r, n in counts)
    assert mart.loc["2026-11-03"].n_ingest_runs == 2  # the failed attempt, then the success
    assert mart.loc["2026-11-03"].labelled_in_lake == 0
    blocked = mart.loc[BLOCKED_DATE]
    assert (blocked.ingest_status, blocked.curated_in_lake, blocked.landed) == ("blocked", 0, 9)


def test_pipeline_runs_show_attempts_failures_and_throughput(warehouse, fixture_lake):
    mart = frame(warehouse, "select * from mart_pipeline_runs")
    assert len(mart) == len(fixture_lake.runs)
    report = mart[mart.stage == "report"].set_index("ingest_date")
    assert report.loc["2026-11-03"].status == "alerted" and not report.loc["2026-11-03"].is_failure
    assert report.loc["2026-11-03"].message == LONG_MESSAGE  # longer than Redshift's default VARCHAR, kept whole
    retried = mart[(mart.stage == "ingest") & (mart.ingest_date == "2026-11-03")].sort_values("attempt")
    assert list(zip(retried.attempt, retried.status, retried.is_failure)) == [(1, "failed", True), (2, "succeeded", False)]
    assert mart[mart.is_failure].status.tolist().count("blocked") == 1
    infer = mart[mart.stage == "infer"]
    assert (infer.rows_per_second - infer.rows_in / infer.seconds).abs().max() < 1e-9
    dbt_run = mart[mart.stage == "dbt"].iloc[0]
    assert dbt_run.ingest_date == "all" and pd.isna(dbt_run.batch_date)
    durations = (mart.ended_at - mart.started_at).dt.total_seconds()
    assert (durations - mart.seconds).abs().max() < 1e-3
    # microseconds in the records, milliseconds in the mart: what Athena can hold, on every warehouse
    recorded = pd.to_datetime(pd.Series([r["started_at"] for r in fixture_lake.runs]), utc=True)
    assert (recorded.dt.microsecond % 1000 != 0).all()
    assert (mart.started_at.dt.microsecond % 1000 == 0).all()
    assert sorted(mart.started_at) == sorted(recorded.dt.floor("ms").dt.tz_localize(None))


def test_dim_products_takes_each_products_majority_class(warehouse, fixture_lake):
    dim = frame(warehouse, "select * from dim_products").set_index(["source", "product_id"])
    docs = fixture_lake.curated.dropna(subset=["product_id"])
    assert sorted(dim.index) == sorted(docs.groupby(["source", "product_id"]).size().index)
    assert dim.loc[("tweets", "United"), "n_documents"] == 2  # an airline, kept apart from the clothing
    # the curated files of 2026-11-01 predate the source column: their documents still count as reviews
    assert dim.loc[("reviews", "1002"), "product_class"] == "Jeans"  # one of its reviews says Pants
    assert dim.n_documents.to_dict() == docs.groupby(["source", "product_id"]).size().to_dict()
    cur = current_predictions(fixture_lake).dropna(subset=["product_id"])
    negative = cur[cur.label == "negative"].groupby(["source", "product_id"]).size()
    assert dim.n_negative.to_dict() == negative.reindex(dim.index, fill_value=0).to_dict()


def test_champion_challenger_agreement(warehouse, fixture_lake):
    mart = frame(warehouse, "select * from mart_champion_challenger").assign(ingest_date=lambda d: d.ingest_date.astype(str))
    cur = current_predictions(fixture_lake)[["review_id", "ingest_date", "label"]]
    pairs = fixture_lake.shadow.merge(cur, on=["review_id", "ingest_date"], suffixes=("_shadow", "_champion"))
    expected = pairs.groupby("ingest_date").apply(lambda g: (g.label_shadow == g.label_champion).mean()).to_dict()
    assert dict(zip(mart.ingest_date, mart.agreement_rate)) == pytest.approx(expected)
    assert set(mart.challenger_version) == {3}


def test_docs_generate_catalogues_the_marts(duckdb_build):
    work = duckdb_build.work
    res = dbt(["docs", "generate"], work, duckdb_env(duckdb_build.lake.root, duckdb_build.warehouse), reuse_parse=True)
    assert res.success, res.exception
    catalog = json.loads((work / "target" / "catalog.json").read_text())
    names = {n.split(".")[-1] for n in catalog["nodes"]}
    assert {"fct_predictions", "dim_products", "mart_daily_sentiment", "mart_model_performance",
            "mart_data_quality", "mart_pipeline_runs"} <= names
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    exposure = manifest["exposures"]["exposure.nlp_batch.monitoring_report"]
    assert {"model.nlp_batch.mart_daily_sentiment", "model.nlp_batch.fct_predictions"} <= set(exposure["depends_on"]["nodes"])


def test_incremental_run_rebuilds_only_changed_dates_and_matches_a_full_build(tmp_path):
    lake_root = tmp_path / "lake"  # a lake of its own (a copied Iceberg lake would still point at the original)
    fixture_lake = write_lake(lake_root)
    warehouse = tmp_path / "incremental" / "nlp.duckdb"  # same file name: the shared parse names the database after it
    env = duckdb_env(lake_root, warehouse)
    run_models = ["run", "--select", "+mart_daily_product_sentiment"]  # the incremental models and what they read
    assert dbt(run_models, tmp_path / "w1", env, reuse_parse=True).success

    # A marker in a date that will not change: an incremental run must leave it alone.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update fct_predictions set confidence = 0.123 where ingest_date = '2026-11-03'")

    # New batch 2026-11-05, and version 2 rescores 2026-11-02.
    docs = fixture_lake.curated[fixture_lake.curated.ingest_date == "2026-11-01"].drop(columns="ingest_date")
    docs = docs.assign(review_id="n" + docs.review_id)
    new_batch = write_run(lake_root, "ingest", "2026-11-05", pd.Timestamp("2026-11-21T08:00:00Z").to_pydatetime(),
                          2.0, rows_in=len(docs), rows_out=len(docs), rows_rejected=0, rows_duplicate=0)["run_id"]
    write_table(lake_root, "curated", docs, CURATED, "2026-11-05", new_batch)
    batches = {r["ingest_date"]: r["run_id"] for r in fixture_lake.runs if r["stage"] == "ingest"
               and r["status"] == "succeeded"} | {"2026-11-05": new_batch}
    rng = random.Random(1)
    for date, frame_docs, version in [("2026-11-05", docs, 1), ("2026-11-02", None, 2)]:
        if frame_docs is None:
            frame_docs = fixture_lake.curated[fixture_lake.curated.ingest_date == date]
        run = write_run(lake_root, "infer", date, pd.Timestamp("2026-11-21T09:00:00Z").to_pydatetime(), 3.0,
                        rows_in=len(frame_docs), model_version=str(version))
        write_table(lake_root, "predictions", predict(rng, frame_docs, version, run["run_id"], 0.9), PREDICTIONS,
                    date, batches[date], model_version=version)

    incremental = dbt(run_models, tmp_path / "w1", env, reuse_parse=True)
    assert incremental.success, (incremental.failures(), incremental.exception, incremental.stdout[-2000:])
    fct_node = next(r.node for r in incremental.results if r.node.name == "fct_predictions"
                    and str(r.node.resource_type) == "model")
    assert "not exists" in fct_node.compiled_code  # the incremental branch ran

    full = tmp_path / "full" / "nlp.duckdb"
    assert dbt(run_models, tmp_path / "w2", duckdb_env(lake_root, full), reuse_parse=True).success
    with duckdb.connect(str(warehouse), read_only=True) as inc, duckdb.connect(str(full), read_only=True) as ref:
        untouched = "ingest_date = '2026-11-03'"
        assert inc.sql(f"select distinct confidence from fct_predictions where {untouched}").fetchall() == [(0.123,)]
        for table in ["fct_predictions", "mart_daily_product_sentiment"]:
            order = "order by all"
            got = inc.sql(f"select * from {table} where not {untouched} {order}").df()
            want = ref.sql(f"select * from {table} where not {untouched} {order}").df()
            pd.testing.assert_frame_equal(got, want, check_exact=False)
        assert inc.sql("select count(*) from fct_predictions where ingest_date = '2026-11-02' and is_current "
                       "and model_version = 2").fetchall()[0][0] == 13

    # A table built before the model declared a column (an older warehouse) is rebuilt whole.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table fct_predictions drop column is_current")
    assert dbt(run_models, tmp_path / "w1", env, reuse_parse=True).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = len(fixture_lake.predictions) + 13 + 13  # + 2026-11-05 + the rescore of 2026-11-02
        assert con.sql("select count(*), count(is_current), count(*) filter (where confidence = 0.123) "
                       "from fct_predictions").fetchall() == [(rows, rows, 0)]


def test_a_fresh_lake_with_empty_zones_builds(tmp_path):
    """Only a blocked first batch: no curated, quarantine, labels, predictions or shadow files yet."""
    lake_root = tmp_path / "lake"
    (lake_root / "raw" / "ingest_date=2026-11-01" / "source=reviews").mkdir(parents=True)
    (lake_root / "raw" / "ingest_date=2026-11-01" / "source=reviews" / "reviews.csv").write_text("review_id,text\n")
    write_run(lake_root, "ingest", "2026-11-01", pd.Timestamp("2026-11-01T08:00:00Z").to_pydatetime(), 1.0,
              status="blocked", rows_in=0, rows_out=0, rows_rejected=0, message="blocked: empty file")
    warehouse = tmp_path / "nlp.duckdb"
    res = dbt(["build"], tmp_path / "w", duckdb_env(lake_root, warehouse), reuse_parse=True)
    assert res.success, res.failures() or res.exception
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.sql("select count(*) from fct_predictions").fetchall() == [(0,)]
        assert con.sql("select ingest_status from mart_data_quality").fetchall() == [("blocked",)]


def test_a_wrong_lake_root_is_one_clear_error(tmp_path):
    from spark_jobs import warehouse as warehouse_stage
    from spark_jobs.settings import SettingsError
    from tests.conftest import make_settings

    with pytest.raises(SettingsError, match="no-such-lake has no tables"):
        warehouse_stage.lake_tables_env(make_settings(tmp_path, lake_root=str(tmp_path / "no-such-lake")))
    # dbt run by hand without the lake's tables says how to run it
    env = {k: v for k, v in duckdb_env(tmp_path / "no-such-lake", tmp_path / "nlp.duckdb").items() if k != "NLP_LAKE_ROOT"}
    res = dbt(["run", "--select", "stg_documents"], tmp_path / "w", env, reuse_parse=True)
    assert not res.success
    messages = " ".join(str(r.message) for r in res.results) + str(res.exception or "")
    assert "NLP_LAKE_TABLES" in messages and "make dbt" in messages


def test_the_offline_incremental_switch_is_refused_outside_compile(fixture_lake, tmp_path):
    res = dbt(["run", "--select", "fct_predictions", "--vars", "{offline_is_incremental: true}"], tmp_path / "w",
              duckdb_env(fixture_lake.root, tmp_path / "x.duckdb"))
    assert not res.success
    messages = " ".join(str(r.message) for r in res.results) + str(res.exception or "")
    assert "offline_is_incremental" in messages and "refuses" in messages


def analyst_queries() -> list[str]:
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## For analysts", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip() for block in section.split("```sql\n")[1:]]


def test_the_readme_questions_run_here_and_parse_as_athena_and_redshift(warehouse):
    queries = analyst_queries()
    assert len(queries) == 6
    for sql in queries:
        assert len(warehouse.sql(sql).fetchall()) > 0, sql
        for dialect in ("athena", "redshift"):
            parsed = sqlglot.parse_one(sql, read=dialect)
            assert not isinstance(parsed, sqlglot.exp.Command), (dialect, sql)


def test_an_analysts_open_connection_does_not_block_the_build(tmp_path):
    """README's read-only snippet holds the warehouse open while the pipeline's dbt stage runs: the
    build goes to a side copy and is swapped in; the open connection keeps its snapshot."""
    from spark_jobs import warehouse as warehouse_stage
    from tests.conftest import make_settings

    lake_root = tmp_path / "lake"
    write_lake(lake_root)
    settings = make_settings(tmp_path, lake_root=str(lake_root))
    assert warehouse_stage.run(settings).status == "succeeded"
    path = settings.path("warehouse_path")
    analyst = duckdb.connect(path, read_only=True)
    try:
        before = analyst.sql("select count(*) from mart_pipeline_runs").fetchall()[0][0]
        record = warehouse_stage.run(settings)  # the first build's run record is new input
        assert record.status == "succeeded", record.message
        assert analyst.sql("select count(*) from mart_pipeline_runs").fetchall()[0][0] == before
    finally:
        analyst.close()
    with duckdb.connect(path, read_only=True) as fresh:
        assert fresh.sql("select count(*) from mart_pipeline_runs where stage = 'dbt'").fetchall()[0][0] == 2
    # no side copy left (the lock file that makes builds take turns stays, empty)
    assert sorted(p.name for p in (tmp_path / "warehouse").iterdir()) == [".nlp.duckdb.building.lock", "nlp.duckdb"]


def test_a_failed_build_leaves_the_previous_warehouse(tmp_path):
    from spark_jobs import warehouse as warehouse_stage
    from spark_jobs.runlog import StageStopped
    from tests.conftest import make_settings

    lake_root = tmp_path / "lake"
    write_lake(lake_root)
    settings = make_settings(tmp_path, lake_root=str(lake_root))
    warehouse_stage.run(settings)
    path = settings.path("warehouse_path")
    with duckdb.connect(path, read_only=True) as con:
        before = con.sql("select count(*) from fct_predictions").fetchall()
    write_run(lake_root, "ingest", "2026-11-05", pd.Timestamp("2026-11-21T09:00:00Z").to_pydatetime(), 1.0,
              status="paused")  # a status dbt's accepted_values test refuses
    with pytest.raises(StageStopped, match="dbt build failed"):
        warehouse_stage.run(settings)
    with duckdb.connect(path, read_only=True) as con:
        assert con.sql("select count(*) from fct_predictions").fetchall() == before
    assert sorted(p.name for p in (tmp_path / "warehouse").iterdir()) == [".nlp.duckdb.building.lock", "nlp.duckdb"]


def test_builds_of_one_warehouse_take_turns_on_its_side_folder(tmp_path):
    """The side folder has a fixed name (so that dbt reuses its parse): a second build waits for the
    first one's lock instead of building into the same folder."""
    import fcntl
    import threading

    from spark_jobs import warehouse as warehouse_stage
    from tests.conftest import make_settings

    lake_root = tmp_path / "lake"
    write_lake(lake_root)
    settings = make_settings(tmp_path, lake_root=str(lake_root))
    (tmp_path / "warehouse").mkdir()
    records = []
    with open(tmp_path / "warehouse" / ".nlp.duckdb.building.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # another build holds the side folder
        build = threading.Thread(target=lambda: records.append(warehouse_stage.run(settings)))
        build.start()
        build.join(timeout=3)
        assert build.is_alive() and not (tmp_path / "warehouse" / ".nlp.duckdb.building").exists()
    build.join(timeout=120)
    assert [r.status for r in records] == ["succeeded"]


def test_the_pipelines_build_leaves_the_unit_tests_to_make_test(tmp_path):
    """The dbt stage builds every model and runs every data test, not the unit tests (fixed inputs:
    tests/dbt runs them, test_build_runs_every_model_unit_test_and_data_test)."""
    from spark_jobs import warehouse as warehouse_stage
    from tests.conftest import make_settings

    lake_root = tmp_path / "lake"
    write_lake(lake_root)
    settings = make_settings(tmp_path, lake_root=str(lake_root))
    results_file = PROJECT / "target" / "run_results.json"   # where the stage's build writes its results
    results_file.unlink(missing_ok=True)
    record = warehouse_stage.run(settings)
    assert record.status == "succeeded"
    results = json.loads(results_file.read_text())
    kinds = Counter(r["unique_id"].split(".")[0] for r in results["results"])
    assert kinds["model"] == 24 and kinds["test"] >= 80 and "unit_test" not in kinds, kinds

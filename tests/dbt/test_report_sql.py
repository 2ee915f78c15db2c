"""The monitoring report's SQL (spark_jobs/report_inputs.QUERIES), proven the way the dbt SQL is: each
statement as it is sent parses in the DuckDB, Athena and Redshift dialects (sqlglot), runs on the
DuckDB build of the fixture lake with a result for every statement, and, read as Athena SQL and
transpiled, gives DuckDB's answer. On PostgreSQL, Redshift's stand-in, the same text runs in
test_postgres.py."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from spark_jobs import report_inputs
from tests.dbt.lake_fixture import DATES

# The second date: labelled (confusion), scored by v1 with a challenger in shadow, with flags.
PARAMS = {"run_date": DATES[1], "first_date": DATES[0], "last_date": DATES[1], "version": 1, "per_date": 3}


def params_of(name: str) -> dict:
    needed = set(report_inputs._PLACEHOLDER.findall(report_inputs.QUERIES[name][0]))
    return {k: v for k, v in PARAMS.items() if k in needed}


def statements(marts: str) -> dict[str, str]:
    return {name: report_inputs.statement(name, marts, **params_of(name)) for name in report_inputs.QUERIES}


@pytest.mark.parametrize("dialect", ["duckdb", "athena", "redshift", "postgres"])
def test_every_statement_parses_in_each_dialect(dialect):
    for name, sql in statements("nlp_marts").items():
        tree = sqlglot.parse_one(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(tree, exp.Select) and not list(tree.find_all(exp.Placeholder)), (dialect, name)
        tables = {t.sql() for t in tree.find_all(exp.Table)}
        assert all(t.startswith("nlp_marts.") for t in tables), (name, tables)


def test_parameters_are_only_dates_names_and_numbers():
    assert report_inputs.statement("model_version", "main", run_date="2026-11-03").endswith(
        "ingest_date = cast('2026-11-03' as date)")
    for bad in ("2026-11-03'; drop table x; --", 1.5, True, None):
        with pytest.raises(ValueError, match="parameter"):
            report_inputs.statement("model_version", "main", run_date=bad)
    with pytest.raises(ValueError, match="no value for run_date"):
        report_inputs.statement("model_version", "main")
    with pytest.raises(ValueError, match="not a plain identifier"):
        report_inputs.statement("scored_dates", "main; drop")


def test_typed_gives_strings_whatever_the_driver_returned():
    """Drivers answer a varchar as str, a date column as date, a count as Decimal: all come out as str or
    None; a column of strings (the common case, a day's texts) is passed through as it came."""
    import datetime
    import decimal

    texts = pd.DataFrame({"d": ["2026-11-01", None, "2026-11-02"]})
    out = report_inputs.typed(texts, {"d": "str"})
    assert out.d.tolist() == ["2026-11-01", None, "2026-11-02"] and out.d.dtype == object
    mixed = pd.DataFrame({"d": [datetime.date(2026, 11, 1), None, "x"], "n": [decimal.Decimal("3"), 4, None],
                          "v": [1.5, float("nan"), None]})
    out = report_inputs.typed(mixed, {"d": "str", "n": "str", "v": "str"})
    assert out.d.tolist() == ["2026-11-01", None, "x"]
    assert out.n.tolist() == ["3", "4", None]
    assert out.v.tolist() == ["1.5", None, None]
    assert report_inputs.typed(pd.DataFrame({"d": [None, None]}), {"d": "str"}).d.tolist() == [None, None]


@pytest.fixture
def built(duckdb_build):
    assert duckdb_build.result.success, duckdb_build.result.failures()
    con = duckdb.connect(str(duckdb_build.warehouse), read_only=True)
    yield con
    con.close()


def run(con, sql: str, name: str) -> pd.DataFrame:
    cur = con.cursor()
    cur.execute(sql)
    frame = pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])
    return report_inputs.typed(frame, report_inputs.QUERIES[name][1])


def test_every_statement_runs_on_duckdb_and_finds_rows(built):
    empty = [name for name, sql in statements("main").items() if run(built, sql, name).empty]
    assert empty == []


def test_the_columnar_fetch_on_duckdb_gives_what_the_rows_give(built):
    """The report reads DuckDB a column at a time (a day's million texts), the other drivers a row at a
    time: the same frames, column types included."""
    wh = report_inputs.Warehouse("duckdb", built, "main")
    for name, sql in statements("main").items():
        got, want = wh.frame(name, **params_of(name)), run(built, sql, name)
        assert not got.empty, name
        # two executions of a query without `order by` may return its rows in different orders
        pd.testing.assert_frame_equal(got.sort_values(list(got.columns)).reset_index(drop=True),
                                      want.sort_values(list(want.columns)).reset_index(drop=True), obj=name)


def test_read_as_athena_sql_each_statement_gives_duckdbs_answer(built):
    for name, sql in statements("main").items():
        (athena_as_duckdb,) = sqlglot.transpile(sql, read="athena", write="duckdb")
        got, want = run(built, athena_as_duckdb, name), run(built, sql, name)
        pd.testing.assert_frame_equal(got.sort_values(list(got.columns)).reset_index(drop=True),
                                      want.sort_values(list(want.columns)).reset_index(drop=True), obj=name)


def test_the_documents_are_the_first_of_each_date_by_text_hash(built):
    """The report's texts: at most per_date of each date, the first by text hash (then review id), the
    same on every run; a date with fewer is read whole."""
    every = built.execute("select cast(ingest_date as varchar) as d, review_id, text, text_hash "
                          "from stg_documents").fetch_df()
    wh = report_inputs.Warehouse("duckdb", built, "main")
    for per_date in (1, 3, len(every)):
        got = wh.frame("documents", first_date=DATES[0], last_date=DATES[1], per_date=per_date)
        want = (every[every.d.isin(DATES[:2])].sort_values(["d", "text_hash", "review_id"])
                .groupby("d").head(per_date))
        assert sorted(zip(got.d, got.text_hash, got.text)) == sorted(zip(want.d, want.text_hash, want.text))
        in_window = every[every.d.isin(DATES[:2])].groupby("d").size()
        assert got.groupby("d").size().to_dict() == in_window.clip(upper=per_date).to_dict()


def test_the_dbt_profile_names_the_connection(tmp_path):
    from tests.conftest import make_settings

    local = make_settings(tmp_path)
    assert report_inputs.connection_of(local) == {"type": "duckdb", "path": local.path("warehouse_path")}
    athena = report_inputs.connection_of(make_settings(tmp_path, dbt_target="athena", athena_workgroup="wg",
                                                       athena_schema="marts_x", aws_bucket="b1"))
    assert athena == {"type": "athena", "region_name": athena["region_name"], "s3_staging_dir": "s3://b1/athena-results/",
                      "work_group": "wg", "schema": "marts_x"}
    redshift = report_inputs.connection_of(make_settings(tmp_path, dbt_target="redshift"))
    assert redshift["type"] == "redshift" and redshift["port"] == 5439 and "password" not in redshift

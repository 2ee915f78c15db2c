"""The GX suite and the Spark row checks must agree; the gate blocks what it should."""
import json

import pandas as pd
import pyarrow as pa
import pytest

from spark_jobs import quality, vocabulary
from spark_jobs.settings import PROJECT_ROOT
from tests.unit.batches import batch as make_batch

SUITE = PROJECT_ROOT / "expectations" / "documents.json"


def batch(spark, rows):
    return make_batch(spark, [dict(zip(("review_id", "text", "rating_raw"), r)) for r in rows])


def test_every_row_level_expectation_has_a_spark_predicate_and_back():
    suite = json.loads(SUITE.read_text())
    reasons = {e["meta"]["reason"] for e in suite["expectations"] if "reason" in e.get("meta", {})}
    assert reasons == set(quality.ROW_CHECKS) - set(quality.NOT_RECORDS) == set(vocabulary.QUARANTINE_REASONS) - {"unreadable"}
    assert all(e.get("severity") in ("critical", "warning", "info") for e in suite["expectations"])
    (bound,) = [e["kwargs"]["max_value"] for e in suite["expectations"] if e["meta"].get("reason") == "field_too_long"]
    assert bound == vocabulary.MAX_FIELD_CHARS


def test_gx_counts_equal_spark_reason_counts(spark):
    df = make_batch(spark, [dict(zip(("review_id", "text", "rating_raw"), r)) for r in [
        ("1", "fine", "5"), ("2", "", "3"), (None, "x", "9"), ("4", "y", "abc"),
        ("5", "z", None), ("6", " ", "0"), ("7", "ok", "-1")]] + [
        {"review_id": "8", "text": "a", "parse_error": "malformed_row: 3 fields, header has 2"},
        {"review_id": "9", "text": "b", "missing_columns": "Title"},
        {"review_id": None, "text": None, "unreadable": "compressed stream cut before its end"},
        {"review_id": "10", "text": "c", "product_id": "p" * (vocabulary.MAX_FIELD_CHARS + 1)},
        {"review_id": "11", "text": "d", "department": "d" * vocabulary.MAX_FIELD_CHARS}])
    gate = quality.validate(df, SUITE, max_failing_share=1.0)
    by_key = {(o.expectation, o.column): o.unexpected_count for o in gate.outcomes}
    suite = json.loads(SUITE.read_text())
    gx_counts = {e["meta"]["reason"]: by_key[(e["type"], e["kwargs"].get("column"))]
                 for e in suite["expectations"] if "reason" in e.get("meta", {})}
    records = df.where("unreadable is null")  # the suite sees records only
    spark_counts = {reason: records.where(pred()).count() for reason, pred in quality.ROW_CHECKS.items()
                    if reason not in quality.NOT_RECORDS}
    assert df.where(quality.ROW_CHECKS["unreadable"]()).count() == 1
    assert gx_counts == spark_counts
    assert spark_counts == {"review_id_missing": 1, "text_empty": 2, "rating_not_integer": 1,
                            "rating_out_of_range": 3, "malformed_record": 1, "source_columns_missing": 1,
                            "field_too_long": 1}


def test_gate_blocks_when_the_failing_share_exceeds_the_threshold(spark):
    df = batch(spark, [("1", "a", "5"), ("2", "", "5"), ("3", "", "5"), ("4", "b", "4")])
    assert not quality.validate(df, SUITE, max_failing_share=0.6).blocked
    gate = quality.validate(df, SUITE, max_failing_share=0.2)
    assert gate.blocked
    assert [o.describe() for o in gate.blocking_failures] == [
        "expect_column_values_to_not_be_null(text): 2/4 rows (50.0%)"]


def test_gate_blocks_a_batch_missing_a_mapped_column_and_names_it(spark):
    df = make_batch(spark, [{"review_id": "1", "text": "a", "missing_columns": "Review Text"},
                            {"review_id": "2", "text": "b", "missing_columns": "Review Text"}])
    gate = quality.validate(df, SUITE, max_failing_share=0.5)
    assert [o.describe() for o in gate.blocking_failures] == [
        "expect_column_values_to_be_null(missing_columns): 2/2 rows (100.0%, e.g. 'Review Text')"]


def test_gate_blocks_an_empty_batch(spark):
    df = batch(spark, [("1", "a", "5")]).limit(0)
    gate = quality.validate(df, SUITE, max_failing_share=0.5)
    assert [o.expectation for o in gate.blocking_failures] == ["expect_table_row_count_to_be_between"]


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_warnings_never_block(spark, threshold):
    # every title missing breaks the title warning, nothing critical
    df = batch(spark, [("1", "a fine review", "5"), ("2", "another fine one", "4")])
    gate = quality.validate(df, SUITE, max_failing_share=threshold)
    assert not gate.blocked
    assert any(w.column == "title" for w in gate.warnings)


def test_the_gate_quotes_only_quotable_values_and_caches_no_copy_of_the_batch(spark):
    """Counts come from one pass; the values a message quotes from a second look at the failing
    expectations of quotable columns; GX does not cache the records a second time."""
    from pyspark.sql import functions as F

    df = make_batch(spark, [{"review_id": "1", "text": "a private review", "rating_raw": "9"},
                            {"review_id": "2", "text": "b", "parse_error": "malformed_row: 3 fields, header has 2"},
                            {"review_id": "3", "text": "c", "parse_error": "malformed_row: 3 fields, header has 2"}])
    gate = quality.validate(df, SUITE, max_failing_share=1.0)
    failed = {o.column: o for o in gate.outcomes if not o.success}
    assert failed["parse_error"].describe() == ("expect_column_values_to_be_null(parse_error): 2/3 rows "
                                                "(66.7%, e.g. 'malformed_row: 3 fields, header has 2')")
    assert failed["rating"].unexpected_count == 1 and failed["rating"].examples == []
    assert "a private review" not in json.dumps(gate.result_json)
    records = df.where(F.col("unreadable").isNull())
    assert spark._jsparkSession.sharedState().cacheManager().lookupCachedData(records._jdf).isEmpty()


def test_what_may_fail_clears_passes_every_row_check(spark):
    """The parse keeps the raw record only of the records quality.may_fail marks: each record a row
    check fails must be among them; and split sets aside what fails_a_check marks, which must be the
    records with reasons. Values on both sides of every check, in seeded combinations, cleaned as
    ingest cleans them."""
    import random

    from pyspark.sql import functions as F

    from spark_jobs import documents

    longest = vocabulary.MAX_FIELD_CHARS
    values = {
        "review_id": [None, "", " ", "r1", "&nbsp;", "<b>", "x" * longest, "x" * (longest + 1), "é" * (longest + 1),
                      "e\u0301" * longest, " r2 "],
        "text": [None, "", "  ", "<p>", "&lt;b&gt;", "fine", "<x never closed", "\u200b", "a&amp;b", "ok\x00"],
        "rating_raw": [None, "", "1", "5", "0", "6", "4.0", " 3 ", "-1", "x", "3.5", "\u0663", "5\u200b"],
        "product_id": [None, "p1", "p" * longest, "p" * (longest + 1), "&amp;" * (longest // 4), " "],
        "department": [None, "Tops", "d" * (longest + 1), "<i>Dresses</i>"],
        "class": [None, "Knits", "c" * (longest + 1)],
    }
    rng = random.Random(11)
    rows = [{c: rng.choice(v) for c, v in values.items()} for _ in range(600)]
    rows += [{**{c: v[3 % len(v)] for c, v in values.items()}, column: value}   # each value once beside fine ones
             for column, vs in values.items() for value in vs]
    rows += [{"review_id": "m", "text": "t", "rating_raw": "5", "parse_error": "malformed_row: 3 fields, header has 2"},
             {"review_id": "m", "text": "t", "rating_raw": "5", "missing_columns": "Title"},
             {"review_id": None, "text": None, "unreadable": "compressed stream cut before its end"}]
    df = make_batch(spark, rows)
    checked = quality.with_reasons(df).select("source_line", (F.size("reasons") > 0).alias("fails"),
                                              quality.fails_a_check().alias("fails_a_check")).collect()
    fails = {r.source_line: r.fails for r in checked}
    assert all(r.fails_a_check is r.fails for r in checked)   # split's filter: what has reasons, never null
    records = [{c: None for c in [*documents.CANONICAL, *documents.META]} | row for row in rows]
    cleaned = documents.clean_table(pa.Table.from_pandas(pd.DataFrame(records), schema=documents.PARSED_ARROW,
                                                         preserve_index=False), max_text_chars=10_000)
    marked = quality.may_fail(cleaned)
    missed = [rows[i] for i in range(len(rows)) if fails[i + 2] and not marked[i]]
    assert missed == []
    assert 0 < sum(fails.values()) < len(rows) and not marked.all()   # both kinds are there

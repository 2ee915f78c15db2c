"""Pure ingest transforms on tiny DataFrames."""
from pyspark.sql import functions as F

from spark_jobs import ingest

SPEC = {
    "format": "csv",
    "id_prefix": "r-",
    "columns": {"review_id": "id", "text": "body", "title": "headline", "rating": "stars",
                "product_id": "sku", "department": None, "class": None},
}


def raw(spark, rows, columns=("id", "body", "headline", "stars", "sku")):
    schema = ", ".join(f"{c} string" for c in columns)
    return spark.createDataFrame(rows, schema).withColumn("source_file", F.lit("f.csv"))


def test_to_canonical_renames_prefixes_ids_and_fills_declared_absent_columns(spark):
    out = ingest.to_canonical(raw(spark, [("7", "Nice", "T", "5", "p1")]), SPEC)
    assert out.columns == ["review_id", "text", "title", "rating_raw", "product_id", "department", "class", "source_file"]
    row = out.first()
    assert (row.review_id, row.text, row.rating_raw, row.department) == ("r-7", "Nice", "5", None)


def test_to_canonical_leaves_an_undeclared_missing_column_missing(spark):
    out = ingest.to_canonical(raw(spark, [("7", "x", "5", "p")], ("id", "headline", "stars", "sku")), SPEC)
    assert "text" not in out.columns  # the gate's schema expectation will name it


def test_clean_collapses_whitespace_blanks_to_null_and_parses_ratings(spark):
    df = ingest.to_canonical(raw(spark, [
        ("1", "  Great \n\n dress\t!  ", "  ", " 4 ", "p"),
        ("2", "   ", None, "five", "p"),
        ("", "text", None, None, "p"),
    ]), SPEC)
    rows = {r.review_id: r for r in ingest.clean(df).collect()}
    assert rows["r-1"].text == "Great dress !" and rows["r-1"].title is None and rows["r-1"].rating == 4
    assert rows["r-2"].text is None and rows["r-2"].rating is None and rows["r-2"].rating_raw == "five"
    assert None in rows  # a blank id stays null, to be quarantined
    assert rows["r-1"].text_hash != rows[None].text_hash


def test_split_quarantines_with_reasons_and_counts_duplicates(spark):
    df = ingest.clean(ingest.to_canonical(raw(spark, [
        ("1", "good", None, "5", "p"),
        ("1", "good again", None, "4", "p"),      # same id: kept once
        ("2", "", None, "3", "p"),                # empty text
        ("3", "fine", None, "9", "p"),            # out of range
        ("4", "ok", None, "x", "p"),              # not an integer
        (None, "", None, "7", "p"),               # three reasons at once
        ("5", "unrated", None, None, "p"),        # no rating is fine
    ]), SPEC))
    curated, quarantine, duplicates = ingest.split(df)
    reasons = {r.review_id: sorted(r.reasons) for r in quarantine.collect()}
    assert reasons == {
        "r-2": ["text_empty"], "r-3": ["rating_out_of_range"], "r-4": ["rating_not_integer"],
        None: ["rating_out_of_range", "review_id_missing", "text_empty"],
    }
    assert sorted(r.review_id for r in curated.collect()) == ["r-1", "r-5"]
    assert curated.where("review_id = 'r-1'").first().text == "good"  # the first one wins
    assert duplicates.count() == 1
    assert df.count() == curated.count() + quarantine.count() + duplicates.count()


def test_labels_follow_the_rating_rule(spark):
    df = ingest.clean(ingest.to_canonical(raw(spark, [
        (str(i), "t", None, str(r), "p") for i, r in enumerate([1, 2, 3, 4, 5])
    ] + [("9", "t", None, None, "p")]), SPEC))
    curated, _, _ = ingest.split(df)
    got = {r.rating: r.label for r in ingest.labels(curated).collect()}
    assert got == {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}

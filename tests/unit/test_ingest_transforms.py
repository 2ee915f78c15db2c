"""Spark-side ingest transforms on tiny batches: quarantine reasons, duplicates, labels."""
from spark_jobs import ingest
from tests.unit.batches import batch


def rows(*specs):
    return [dict(zip(("review_id", "text", "rating_raw"), s)) for s in specs]


def test_ratings_become_integers_only_when_whole(spark):
    df = batch(spark, rows(("1", "a", "4"), ("2", "b", "4.0"), ("3", "c", "4.5"), ("4", "d", "five"), ("5", "e", None)))
    assert {r.review_id: r.rating for r in df.collect()} == {"1": 4, "2": 4, "3": None, "4": None, "5": None}


def test_split_quarantines_with_reasons_and_lists_duplicates(spark):
    df = batch(spark, rows(
        ("1", "good", "5"),
        ("1", "good again", "4"),         # same id later in the batch
        ("2", "", "3"),                   # empty text
        ("3", "fine", "9"),               # out of range
        ("4", "ok", "x"),                 # not an integer
        (None, "", "7"),                  # three reasons at once
        ("5", "unrated", None),           # no rating is fine
        ("6", "GOOD", "5"),               # same text as 1 (case-folded)
    ) + [{"review_id": "7", "text": "cut", "parse_error": "truncated_record"},
         {"review_id": "8", "text": "t", "missing_columns": "Rating"}])
    curated, quarantine, duplicates = ingest.split(df)
    reasons = {r.review_id: sorted(r.reasons) for r in quarantine.collect()}
    assert reasons == {
        "2": ["text_empty"], "3": ["rating_out_of_range"], "4": ["rating_not_integer"],
        None: ["rating_out_of_range", "review_id_missing", "text_empty"],
        "7": ["malformed_record"], "8": ["source_columns_missing"],
    }
    assert sorted(r.review_id for r in curated.collect()) == ["1", "5"]
    assert curated.where("review_id = '1'").first().text == "good"  # the first one wins
    dups = {(r.review_id, r.duplicate_of, r.duplicate_reason) for r in duplicates.collect()}
    assert dups == {("1", "1", "same review_id in batch"), ("6", "1", "same text in batch")}
    assert df.count() == curated.count() + quarantine.count() + duplicates.count()
    q = quarantine.where("review_id = '3'").first()
    assert (q.source_file, q.source_line) == ("f.csv", 5) and q.raw_record


def test_duplicates_of_earlier_batches_name_the_first_sighting(spark):
    earlier = spark.createDataFrame(
        [("1", ingest_hash("seen text"), "2026-11-01"), ("9", ingest_hash("old review"), "2026-11-02")],
        "review_id string, text_hash string, ingest_date string")
    df = batch(spark, rows(("1", "new text, old id", "5"), ("2", "Old review", "4"), ("3", "fresh", "3")))
    curated, _, duplicates = ingest.split(df, earlier)
    assert [r.review_id for r in curated.collect()] == ["3"]
    assert {(r.review_id, r.duplicate_of, r.duplicate_reason, r.first_seen_on) for r in duplicates.collect()} == {
        ("1", "1", "review_id seen earlier", "2026-11-01"), ("2", "9", "text seen earlier", "2026-11-02")}


def test_each_duplicate_gets_the_first_reason_that_applies_and_the_first_row_it_repeats(spark):
    """A row that is a duplicate for one reason takes no part in the next: the first of a text is the
    first row of it that is no duplicate already."""
    earlier = spark.createDataFrame([("E1", "old", "2026-11-01"), ("E2", "old", "2026-11-02"), ("5", "x", "2026-11-01")],
                                    "review_id string, text_hash string, ingest_date string")
    keys = spark.createDataFrame([
        ("1", "a", "f", 1),
        ("1", "b", "f", 2),     # the id again
        ("2", "b", "f", 3),     # first of text b (line 2 is a duplicate already)
        ("3", "b", "f", 4),     # text b again
        ("4", "old", "f", 5),   # a text seen earlier: its first sighting
        ("5", "c", "f", 6),     # an id seen earlier
        ("6", "c", "f", 7),     # first of text c (line 6 is a duplicate already)
        ("7", "a", "g", 1),     # text a again, in a later file
    ], "review_id string, text_hash string, source_file string, source_line long")
    got = {tuple(r) for r in ingest.duplicates_of(keys, earlier).collect()}
    assert got == {
        ("1", "1", "same review_id in batch", None, "f", 2),
        ("3", "2", "same text in batch", None, "f", 4),
        ("4", "E1", "text seen earlier", "2026-11-01", "f", 5),
        ("5", "5", "review_id seen earlier", "2026-11-01", "f", 6),
        ("7", "1", "same text in batch", None, "g", 1),
    }
    assert ingest.duplicates_of(keys.where("source_line < 5 and source_file = 'f'")).count() == 2


def ingest_hash(text):
    from spark_jobs.documents import clean_text, text_fingerprint

    return text_fingerprint(clean_text(text))


def test_labels_follow_the_rating_rule(spark):
    df = batch(spark, [{"review_id": str(i), "text": f"t{i}", "rating_raw": r} for i, r in
                       enumerate(["1", "2", "3", "4", "5", None])])
    curated, _, _ = ingest.split(df)
    got = {r.rating: r.label for r in ingest.labels(curated).collect()}
    assert got == {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}


def test_landed_files_are_read_whole_from_their_paths_whatever_their_names(spark, tmp_path):
    # Local files are read by the Python task from the path Spark lists (file:/..., not percent-encoded);
    # the names a user lands may hold spaces, percent signs and letters outside ASCII.
    folder = tmp_path / "raw" / "source=reviews 100%"
    folder.mkdir(parents=True)
    contents = {"a b%20c.csv": b"review_id,text\n1,x\n", "caf\u00e9.csv": "2,\u00e9t\u00e9\n".encode()}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    for root in (str(tmp_path / "raw"), f"file://{tmp_path / 'raw'}"):
        files = ingest.landed_files(spark, root).toPandas()
        assert list(files.columns) == ["path"]  # the bytes are not handed over from the JVM
        read = dict(ingest._with_bytes(files))
        assert {p.rsplit("/", 1)[-1]: data for p, data in read.items()} == contents
        assert all(p.startswith("file:/") for p in read)

"""The census counts records without the parser, and reconcile() judges the two counts."""
import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq

from spark_jobs import census
from spark_jobs.documents import inflate

CSV = {"format": "csv", "options": {}, "columns": {"review_id": "id", "text": "text"}}


def test_csv_records_are_counted_by_arrow_with_quoted_line_breaks_and_bad_rows():
    text = 'id,text\n1,"two\nlines"\n\n2,x,surplus\n3,y\r\n4,"cut'
    assert census.count_csv(text, ",", '"') == 4  # the surplus-field row and the cut one count
    assert census.count_csv("id,text\n", ",", '"') == 0 and census.count_csv("", ",", '"') == 0
    assert census.count_csv("id;text\n1;a,b\n", ";", '"') == 1


def test_json_lines_end_at_newlines_only():
    assert census.count_jsonl('{"a": "x\u2028y"}\n\n  \n{"b": 1}\r\n') == 2


def test_a_gzip_stream_is_complete_only_when_every_member_ends():
    whole = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert inflate(whole) == (b"a\nb\n", True)
    assert inflate(whole[:-5])[1] is False
    assert inflate(gzip.compress(b"a\n") + b"garbage")[1] is False
    assert inflate(b"plain") == (b"plain", True)


def test_parquet_is_counted_from_its_footer():
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3]}), buf)
    whole = census.census_of("p", buf.getvalue(), {"format": "parquet"})
    assert (whole.records, whole.complete) == (3, True)
    cut = census.census_of("p", buf.getvalue()[:-20], {"format": "parquet"})
    assert (cut.records, cut.complete) == (0, False) and "footer" in cut.damage


def row(path, records, complete=True, damage=None, size=100):
    return {"path": path, "bytes": size, "records": records, "complete": complete, "damage": damage}


def test_reconcile_agreeing_counts_lose_nothing():
    acc = census.reconcile([row("/r/a.csv", 10), row("/r/b.csv", 5)], {"/r/a.csv": (10, 0), "/r/b.csv": (5, 0)})
    assert (acc.found, acc.lost, acc.disagreements, acc.damaged, acc.lost_share()) == (15, 0, [], [], 0.0)


def test_reconcile_names_a_file_the_two_readers_count_differently():
    acc = census.reconcile([row("/r/a.csv", 13)], {"/r/a.csv": (12, 0)})
    assert acc.disagreements == ["a.csv: 13 records counted by the census, 12 parsed"]


def test_reconcile_counts_known_and_unknown_losses():
    # a Parquet file whose footer declares 6 rows and whose data does not decode: 6 known lost
    known = census.reconcile([row("/r/d.parquet", 6), row("/r/j.jsonl", 9)], {"/r/d.parquet": (0, 1), "/r/j.jsonl": (9, 0)})
    assert (known.found, known.lost, known.lost_unknown, known.disagreements) == (10, 6, [], [])
    assert known.lost_share() == 6 / 16
    # a cut gzip stream: what was read agrees, what followed is unknown
    cut = census.reconcile([row("/r/c.csv.gz", 120, complete=False, damage="cut")], {"/r/c.csv.gz": (120, 1)})
    assert (cut.found, cut.lost, cut.lost_unknown, cut.lost_share()) == (121, 0, ["c.csv.gz"], 1.0)
    assert cut.damaged == [{"file": "c.csv.gz", "bytes": 100, "lost": None, "why": "cut"}]

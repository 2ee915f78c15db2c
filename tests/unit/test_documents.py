"""Reading damaged files and cleaning texts: pure pandas, no Spark."""
import gzip
import io
import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs import documents as D

CSV = {"format": "csv", "id_prefix": "r-", "columns": {
    "review_id": "_c0", "text": "Review Text", "title": "Title", "rating": "Rating",
    "product_id": None, "department": "Department Name", "class": None}}
JSONL = {**CSV, "format": "jsonl", "columns": {**CSV["columns"], "review_id": "id"}}


def parse(data: bytes, spec=CSV) -> pd.DataFrame:
    frames = list(D.parse_file("f", data, spec))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*D.CANONICAL, *D.META])


def test_quoted_line_breaks_crlf_and_bom_keep_records_and_their_first_line():
    data = '\ufeff,Title,Review Text,Rating\r\n1,A,"two\r\nlines",5\r\n2,B,plain,4\r\n'.encode()
    df = parse(data)
    assert list(df.review_id) == ["r-1", "r-2"]
    assert list(df.source_line) == [2, 4] and df.text[0] == "two\r\nlines"
    assert df.parse_error.isna().all() and df.decode_note.isna().all()


def test_header_names_match_loosely_and_missing_ones_are_named():
    df = parse(b"ID,  title ,REVIEW   TEXT,rating\n1,a,b,5\n")
    assert df.text[0] == "b" and df.title[0] == "a" and df.missing_columns[0] == "Department Name"


def test_other_delimiters_come_from_the_source_options():
    spec = {**CSV, "options": {"delimiter": ";"}}
    df = parse(b";Title;Review Text;Rating\n1;a;b, with a comma;5\n", spec)
    assert df.text[0] == "b, with a comma"


@pytest.mark.parametrize("data, text, note", [
    ("x,Review Text\n1,café\n".encode("cp1252"), "café", "not UTF-8: read as cp1252"),
    (b"x,Review Text\n1,caf\xc3\xa9 \xff ok\n", "café \ufffd ok", "1 invalid UTF-8 sequences replaced"),
    (b"x,Review Text\n1,nu\x00ll\n", "null", "1 NUL bytes removed"),
])
def test_damaged_bytes_are_repaired_and_noted(data, text, note):
    df = parse(data)
    assert df.text[0] == text and df.decode_note[0] == note


def test_a_cut_off_last_record_is_flagged_not_fatal():
    df = parse(b',Review Text,Rating\n1,fine,5\n2,"cut in the mid')
    assert list(df.parse_error) == [None, "truncated_record"]
    short = parse(b",Review Text,Rating\n1,fine,5\n2,no rating")
    assert short.parse_error[1] == "truncated_record"
    complete = parse(b",Review Text,Rating\n1,fine,5\n2,no newline,4")
    assert complete.parse_error.isna().all()


def test_rows_with_the_wrong_number_of_fields_keep_the_original_fields():
    df = parse(b",Review Text,Rating\n1,a,5,extra\n")
    assert df.parse_error[0] == "malformed_row: 4 fields, header has 3"
    assert json.loads(df.raw_record[0]) == ["1", "a", "5", "extra"]


def test_gzip_and_a_truncated_gzip_stream():
    body = b"".join(b"%d,text %d,5\n" % (i, i) for i in range(2000))
    packed = gzip.compress(b",Review Text,Rating\n" + body)
    assert len(parse(packed)) == 2000
    cut = parse(packed[: len(packed) // 2])
    assert 0 < len(cut) < 2000 and cut.decode_note.iloc[0] == "gzip stream truncated"


def test_jsonl_bad_lines_are_records_with_errors():
    data = b'{"id": 1, "Review Text": "ok", "Rating": 4.0}\n\n[1,2]\n{"id": 2, "Review Text": "x", "Rat'
    df = parse(data, JSONL)
    assert list(df.source_line) == [1, 3, 4]
    assert df.review_id[0] == "r-1" and df.rating_raw[0] == "4"
    assert df.parse_error[1] == "malformed_json: not an object"
    assert df.parse_error[2].startswith("malformed_json") and df.raw_record[2].startswith('{"id": 2')


def test_parquet_rows_carry_their_offset():
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [10, 11], "Review Text": ["a", None], "Rating": [5, None]}), buf)
    df = parse(buf.getvalue(), {**JSONL, "format": "parquet"})
    assert list(df.source_line) == [1, 2] and list(df.review_id) == ["r-10", "r-11"]
    assert df.rating_raw[0] == "5" and df.text[1] is None


def test_clean_normalises_strips_markup_and_truncates():
    raw = pd.DataFrame([{c: None for c in [*D.CANONICAL, *D.META]} | {
        "review_id": " 1 ", "text": "Cafe\u0301 <b>bold</b> &amp; &quot;fine&quot;\x07\n\n  ok", "title": "   "}])
    out = D.clean(raw, max_text_chars=1000)
    assert out.text[0] == 'Café bold & "fine" ok' and out.title[0] is None and out.review_id[0] == "1"
    assert not out.text_truncated[0]
    cut = D.clean(raw.assign(text="word " * 500), max_text_chars=100)
    assert cut.text_truncated[0] and len(cut.text[0]) <= 100


def test_the_text_hash_ignores_case_and_spacing():
    a = D.clean(pd.DataFrame([{c: None for c in [*D.CANONICAL, *D.META]} | {"text": "Love  it!"}]), 100)
    b = D.clean(pd.DataFrame([{c: None for c in [*D.CANONICAL, *D.META]} | {"text": "love it!"}]), 100)
    assert a.text_hash[0] == b.text_hash[0]


LIVE_TAG = re.compile(r"<[/!?]?[A-Za-z]")


@pytest.mark.parametrize("planted", [
    "&lt;img src=x onerror=alert(1)&gt;",                       # entities that decode to a tag
    "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;",    # encoded twice
    "<img src=x " + "a" * 300 + " onerror=alert(1)>",           # a tag longer than 200 characters
    "<img src=x onerror=alert(1)",                              # a tag never closed
    "<scr<script>ipt>alert(1)</script>",                        # a tag hidden in a tag
    "<!-- <script>alert(1)</script> -->",
])
def test_cleaning_never_leaves_or_creates_markup(planted):
    out = D.clean_text(f"Nice dress {planted} would buy again")
    assert out is not None and not LIVE_TAG.search(out), out
    assert out.startswith("Nice dress")


def test_text_that_only_looks_like_markup_stays():
    assert D.clean_text("I <3 it, and 2 < 3 > 1") == "I <3 it, and 2 < 3 > 1"

"""Reading damaged files and cleaning texts: Arrow and pandas, no Spark."""
import csv
import gzip
import io
import json
import random
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from spark_jobs import documents as D
from spark_jobs.settings import PROJECT_ROOT
from tests.conftest import CORPUS, TWEETS, need

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


# --- the column-at-a-time paths give exactly what the per-record ones give -------------------------

def forgiving(data: bytes, spec=CSV) -> pd.DataFrame:
    return D._frame(list(D._parse_csv("f", D.decode(data).text, spec, None)))


def arrow(data: bytes, spec=CSV) -> pd.DataFrame | None:
    read = D._parse_csv_arrow("f", data, D.decode(data).text, spec)
    if read is None:
        return None
    table, raw_of = read
    out = table.to_pandas()
    out["raw_record"] = raw_of(out.index.to_numpy()).to_numpy(zero_copy_only=False)
    return out


def generated_csv(rng, rows: int) -> bytes:
    """A well-formed CSV file of awkward values: quotes, delimiters, every kind of line break inside
    quoted values, blank lines inside them, non-ASCII, markup, a value longer than RAW_RECORD_MAX."""
    pieces = ["a", "B", " ", '"', ",", "\n", "\r", "\r\n", "\n\n", "é", "😀", "&amp;", "<b>", "\t", "\\", "\x07", "\b", "\f", "\x1f"]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"]),
                        quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    writer.writerow(["", "Title", "Review Text", "Rating", "Department Name"])
    for i in range(rows):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        writer.writerow([str(i), rng.choice(["", "Nice", 'say "hi"']), text, str(rng.randint(1, 5)), "Tops"])
    if rng.random() < 0.1:
        writer.writerow(["long", "t", "é" * (D.RAW_RECORD_MAX + 10), "5", "Tops"])
    return buf.getvalue().encode()


def test_arrow_reads_well_formed_files_exactly_as_the_forgiving_parser():
    rng = random.Random(11)
    fast = 0
    for _ in range(300):
        data = generated_csv(rng, rng.randint(1, 6))
        got = arrow(data)
        if got is not None:
            fast += 1
            pd.testing.assert_frame_equal(got, forgiving(data))
    assert fast >= 250   # the fast path is the common one, not the exception


@pytest.mark.parametrize("data", [
    b",Review Text,Rating\n1,a,5\n\n2,b,4\n",          # a blank line: the line numbers after it
    b",Review Text,Rating\n1,a,5,extra\n",             # a row of the wrong width
    b",Review Text,Rating\n1,a\n",
    b',Review Text,Rating\n1,"cut in the mid',         # cut off
    b",Review Text,Rating\n1,a,5",                     # no final line break
    b",Review Text,Review Text\n1,a,b\n",              # a header repeating a name
    b"Review Text\nonly one column\n",
    b"\n,Review Text,Rating\n1,a,5\n",                 # a blank line before the header
])
def test_files_arrow_cannot_vouch_for_go_to_the_forgiving_parser(data):
    assert arrow(data) is None
    assert len(parse(data)) >= 1   # and parse_file still reads them


@pytest.mark.parametrize("source, path", [("reviews", CORPUS), ("tweets", TWEETS)])
def test_the_real_corpora_take_the_fast_path_with_the_same_records(source, path):
    need(path)
    spec = yaml.safe_load((PROJECT_ROOT / "conf" / "sources.yml").read_text())[source]
    data = gzip.decompress(path.read_bytes())
    got = arrow(data, spec)
    assert got is not None
    pd.testing.assert_frame_equal(got, forgiving(data, spec))


@pytest.mark.parametrize("fast", [True, False])
def test_read_file_is_parse_file_cleaned_with_the_raw_records_asked_for(fast):
    """What ingest reads: parse_file's records cleaned; the fast reader keeps the raw record only of the
    records needs_raw marks (on the cleaned frame), the forgiving parser keeps every one."""
    rng = random.Random(3)
    data = next(d for d in (generated_csv(rng, 8) for _ in range(50)) if arrow(d) is not None)
    data += b"" if fast else b"1,cut"   # a cut last record: the forgiving parser reads the file
    assert (arrow(data) is not None) == fast
    every = D.clean(parse(data), max_text_chars=50)
    odd = lambda frame: (frame["source_line"].to_numpy() % 2 == 1)   # noqa: E731
    got = pa.Table.from_batches(D.read_file("f", data, CSV, 50, odd)).to_pandas()
    want = every.assign(raw_record=every.raw_record.where(odd(every) | (not fast), None))
    pd.testing.assert_frame_equal(got, want)
    assert got.raw_record.notna().any() and (got.raw_record.isna().any() == fast)


def test_clean_column_gives_what_the_per_value_cleaner_gives():
    rng = random.Random(5)
    pieces = ["a", "B", " ", "  ", "\t", "\n", "\r", "é", "e\u0301", "Å", "&amp;", "&lt;b&gt;", "<b>", "<", ">",
              "\x00", "\x07", "\x85", "\xa0", "\u2028", "\u200b", "\ufeff", "\u3000", "&", "😀", "I <3", "\x1c"]
    values = [None, float("nan"), "", " ", "\t\n", "plain", " padded ", "two  spaces"] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(5000)]
    expected = [None if v is None or v != v else D.clean_text(v) for v in values]
    assert list(D.clean_column(pd.Series(values, dtype=object))) == expected


def test_the_column_at_a_time_fingerprints_and_prefixes_give_what_the_per_value_ones_give():
    rng = random.Random(7)
    pieces = ["a", "B", " ", "\t", "\xa0", "\u3000", "\x1c", "ß", "Σ", "İ", "ﬁ", "é", "😀", "\u200b", "x"]
    values = [None, "", " ", "plain", " padded ", "STRASSE", "straße"] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    column = pa.array(values, pa.large_string())
    for part in (column, column.slice(5, 1000)):   # a slice starts inside Arrow's buffers
        want = [D.text_fingerprint(v) for v in part.to_pylist()]
        assert D.text_fingerprints(part).to_pylist() == want
    ids = pd.Series(values, dtype=object)
    want = ids.where(ids.isna() | (ids.str.strip() == ""), "p-" + ids.str.strip())
    assert D._prefixed(column, "p-").to_pylist() == list(want)
    assert D.text_fingerprint("STRASSE") == D.text_fingerprint("straße")


def test_a_header_longer_than_the_first_bytes_read_for_it_reads_as_the_forgiving_parser_reads_it():
    data = (',"Title ' + "x" * 70_000 + '",Review Text,Rating\n1,a,b,5\n2,c,d,4\n').encode()
    got = arrow(data)
    assert got is None   # the header read from the file's first bytes is cut short: the forgiving parser reads it
    assert list(parse(data).text) == ["b", "d"]

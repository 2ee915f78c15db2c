"""A catalogue of bad inputs, each run through the real ingest job (Spark + GX), each with its
expected outcome; for every case the counts reconcile: landed (counted by the census, independently
of the parser) = curated + quarantined + duplicates + lost."""
from __future__ import annotations

import gzip
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from spark_jobs import ingest, storage
from spark_jobs.lake import Lake
from spark_jobs.runlog import StageStopped
from spark_jobs.settings import PROJECT_ROOT
from spark_jobs.vocabulary import ExitCode
from tests.conftest import TWEETS, make_settings, need, table_rows

DATE = "2026-11-10"
HEADER = ",Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,Division Name,Department Name,Class Name\n"


def reviews(*rows: tuple) -> bytes:
    """CSV in the corpus' layout from (id, title, text, rating) tuples."""
    out = io.StringIO()
    out.write(HEADER)
    for rid, title, text, rating in rows:
        fields = [rid, "1080", "30", title, text, rating, "1", "0", "General", "Dresses", "Dresses"]
        out.write(",".join('"' + str(f).replace('"', '""') + '"' if f is not None else "" for f in fields) + "\n")
    return out.getvalue().encode()


GOOD = [(str(i), f"T{i}", f"A perfectly normal review number {i}.", "5") for i in range(1, 13)]


def parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(1, 7)), "body": ["nice", "bad", None, "ok", "fine", "meh"],
                             "stars": [5, 1, 4, 4, 5, 3]}), buf)
    return buf.getvalue()


def parquet_with_damaged_data() -> bytes:
    """The footer (6 rows) intact, the first data page header overwritten: rows known, not readable."""
    data = bytearray(parquet_bytes())
    data[4:12] = b"\xff" * 8
    return bytes(data)


def cut_gzip() -> bytes:
    return gzip.compress(reviews(*[(str(i), "t", f"review {i} " * 20, "4") for i in range(400)]))[:1500]


@dataclass
class Case:
    name: str
    files: dict[str, tuple[str, bytes]]          # source -> (file name, bytes)
    landed: int                                  # records in the files, counted by hand
    curated: int | None = None
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    blocked_by: str | None = None
    check: object = None                         # extra assertion on the curated rows (pandas)
    earlier: bytes | None = None                 # a batch ingested the day before


def text_of(df, rid):
    return df.set_index("review_id").text[rid]


CASES = [
    Case("empty file", {"reviews": ("empty.csv", b"")}, landed=0,
         blocked_by="expect_table_row_count_to_be_between"),
    Case("header only", {"reviews": ("header.csv", HEADER.encode())}, landed=0,
         blocked_by="expect_table_row_count_to_be_between"),
    Case("missing text column", {"reviews": ("nocol.csv", b",Title,Rating\n1,a,5\n2,b,4\n")}, landed=2,
         blocked_by="expect_column_values_to_be_null(missing_columns)"),
    Case("most texts empty", {"reviews": ("blank.csv", reviews(*GOOD[:2], *[(str(i), "t", "  ", "4") for i in range(10, 16)]))},
         landed=8, blocked_by="expect_column_values_to_not_be_null(text)"),
    Case("cp1252 file", {"reviews": ("latin.csv", reviews(*GOOD, ("50", "Café", "Très jolie robe", "5")).decode().encode("cp1252"))},
         landed=13, curated=13, check=lambda df: text_of(df, "wcr-50") == "Très jolie robe"),
    Case("invalid utf-8 bytes", {"reviews": ("bad.csv", reviews(*GOOD).replace(b"review number 3", b"review \xff\xfe 3")
                                             .replace(b"number 5", "nümber 5".encode()))},
         landed=12, curated=12, check=lambda df: "\ufffd" in text_of(df, "wcr-3") and "nümber" in text_of(df, "wcr-5")),
    Case("BOM and CRLF", {"reviews": ("win.csv", b"\xef\xbb\xbf" + reviews(*GOOD).replace(b"\n", b"\r\n"))},
         landed=12, curated=12, check=lambda df: set(df.review_id) == {f"wcr-{i}" for i in range(1, 13)}),
    Case("NUL bytes", {"reviews": ("nul.csv", reviews(*GOOD).replace(b"normal", b"nor\x00mal"))},
         landed=12, curated=12, check=lambda df: text_of(df, "wcr-1") == "A perfectly normal review number 1."),
    Case("truncated last line", {"reviews": ("cut.csv", reviews(*GOOD, ("99", "x", "This one stops in the mid", "4"))[:-12])},
         landed=13, curated=12, reasons={"malformed_record": 1}),
    Case("quoted line breaks", {"reviews": ("multi.csv", reviews(*GOOD[:3], ("20", "t", "line one\nline two\n\nline four", "4")))},
         landed=4, curated=4, check=lambda df: text_of(df, "wcr-20") == "line one line two line four"
         and int(df.set_index("review_id").source_line["wcr-20"]) == 5),
    Case("semicolon delimiter", {"semicolon": ("semi.csv", b"id;text;stars\n1;a, b and c;5\n2;fine;4\n")},
         landed=2, curated=2, check=lambda df: text_of(df, "s-1") == "a, b and c"),
    Case("header name variations", {"reviews": ("hdr.csv", reviews(*GOOD).replace(b"Review Text", b"  review   TEXT ").replace(b"Rating", b"RATING"))},
         landed=12, curated=12),
    Case("extra fields in a row", {"reviews": ("extra.csv", reviews(*GOOD) + b'77,1,2,t,"text",5,1,0,G,D,C,surplus\n')},
         landed=13, curated=12, reasons={"malformed_record": 1}),
    Case("duplicate ids", {"reviews": ("dupid.csv", reviews(*GOOD, ("1", "again", "A different text, same id", "4")))},
         landed=13, curated=12, duplicates=1),
    Case("duplicate texts", {"reviews": ("duptext.csv", reviews(*GOOD, ("30", "t", "a perfectly  NORMAL review number 1.", "5")))},
         landed=13, curated=12, duplicates=1),
    Case("duplicates of an earlier batch", {"reviews": ("again.csv", reviews(*GOOD[:4], ("40", "t", "brand new", "3")))},
         landed=5, curated=1, duplicates=4, earlier=reviews(*GOOD)),
    Case("huge text", {"reviews": ("huge.csv", reviews(*GOOD, ("60", "t", "word " * 60_000, "5")))},
         landed=13, curated=13, check=lambda df: int(df.text_truncated.sum()) == 1
         and len(text_of(df, "wcr-60")) <= 10_000),
    Case("wrong rating types", {"reviews": ("types.csv", reviews(*GOOD, ("70", "t", "a", "five"), ("71", "t", "b", "4.5"), ("72", "t", "c", "0"), ("73", "t", "d", "4.0")))},
         landed=16, curated=13, reasons={"rating_not_integer": 2, "rating_out_of_range": 1}),
    Case("missing ids", {"reviews": ("noid.csv", reviews(*GOOD, ("", "t", "no id here", "5"), ("  ", "t", "blank id", "4")))},
         landed=14, curated=12, reasons={"review_id_missing": 2}),
    Case("an id longer than any warehouse column", {"reviews": ("longid.csv", reviews(*GOOD, ("9" * 300, "t", "odd id", "5")))},
         landed=13, curated=12, reasons={"field_too_long": 1}),
    Case("markup planted in every text field", {"markup": ("xss.csv", (
        "id,title,body,stars,product,dept,cls\n"
        '1,"&lt;img src=x onerror=alert(1)&gt;","<img src=x ' + "a" * 300 + ' onerror=alert(1)> fine",5,'
        '"<b>p1</b>","&amp;lt;script&amp;gt;x&amp;lt;/script&amp;gt;Tops","<svg onload=alert(1)"\n').encode())},
         landed=1, curated=1, check=lambda df: not df.drop(columns=["source_line", "rating", "text_truncated"])
         .astype(str).apply(lambda col: col.str.contains(r"<[/!?]?[A-Za-z]")).any().any()
         and text_of(df, "x-1") == "fine"),
    Case("HTML and control characters", {"reviews": ("html.csv", reviews(*GOOD, ("80", "t", "<p>Great&nbsp;fit &amp; <b>soft</b></p>\x07\x1b", "5")))},
         landed=13, curated=13, check=lambda df: text_of(df, "wcr-80") == "Great fit & soft"),
    Case("JSON lines with bad lines", {"jsonl": ("a.jsonl", b"".join(b'{"id": %d, "body": "ok %d", "stars": 4.0}\n' % (i, i) for i in range(14))
                                                 + b'not json\n[1]\n{"id": 99, "body": "cut')},
         landed=17, curated=14, reasons={"malformed_record": 3}),
    Case("gzip JSON lines", {"jsonl": ("b.jsonl.gz", gzip.compress(b"".join(b'{"id": %d, "body": "text %d"}\n' % (i, i) for i in range(50))))},
         landed=50, curated=50),
    Case("truncated gzip", {"reviews": ("cut.csv.gz", cut_gzip())}, landed=None,
         blocked_by="an unknown number of the landed records are lost"),
    Case("parquet", {"parquet": ("c.parquet", parquet_bytes())}, landed=6, curated=5, reasons={"text_empty": 1}),
    Case("half-written parquet beside a good file", {"parquet": ("c.parquet", parquet_bytes()[:-100]), "jsonl": (
        "j.jsonl", b"".join(b'{"id": %d, "body": "fine %d"}\n' % (i, i) for i in range(9)))},
         landed=10, blocked_by="c.parquet (no readable Parquet footer"),
    Case("parquet whose data is damaged, footer intact", {"parquet": ("d.parquet", parquet_with_damaged_data())},
         landed=7, blocked_by="6 (85.7%) of the landed records are lost"),
    Case("JSON lines with a line separator inside a string", {"jsonl": ("u.jsonl", '{"id": 1, "body": "a\u2028b"}\n'
                                                             '{"id": 2, "body": "c"}\n'.encode())},
         landed=2, curated=2, check=lambda df: text_of(df, "j-1") == "a b"),
    Case("mixed sources in one batch", {"reviews": ("r.csv", reviews(*GOOD[:3])), "jsonl": ("j.jsonl", b'{"id": 1, "body": "one"}\n')},
         landed=4, curated=4),
]


@pytest.fixture(scope="module")
def sources_file(tmp_path_factory):
    sources = yaml.safe_load((PROJECT_ROOT / "conf" / "sources.yml").read_text())
    sources["semicolon"] = {"format": "csv", "options": {"delimiter": ";"}, "id_prefix": "s-",
                            "columns": {"review_id": "id", "text": "text", "rating": "stars", "title": None,
                                        "product_id": None, "department": None, "class": None}}
    cols = {"review_id": "id", "text": "body", "rating": "stars", "title": None, "product_id": None,
            "department": None, "class": None}
    sources["jsonl"] = {"format": "jsonl", "id_prefix": "j-", "columns": cols}
    sources["parquet"] = {"format": "parquet", "id_prefix": "p-", "columns": cols}
    sources["markup"] = {"format": "csv", "id_prefix": "x-", "columns": {
        "review_id": "id", "text": "body", "title": "title", "rating": "stars", "product_id": "product",
        "department": "dept", "class": "cls"}}
    path = tmp_path_factory.mktemp("conf") / "sources.yml"
    path.write_text(yaml.safe_dump(sources))
    return str(path)


def put(settings, date, files):
    for source, (name, data) in files.items():
        path = os.path.join(Lake(settings).partition("raw", date), f"source={source}", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(spark, tmp_path, sources_file, case):
    settings = make_settings(tmp_path, sources_file=sources_file)
    lake = Lake(settings)
    if case.earlier:
        put(settings, "2026-11-09", {"reviews": ("earlier.csv", case.earlier)})
        ingest.run(spark, settings, "2026-11-09")
    put(settings, DATE, case.files)

    if case.blocked_by:
        with pytest.raises(StageStopped) as stop:
            ingest.run(spark, settings, DATE)
        message = str(stop.value)
        assert stop.value.exit_code == ExitCode.BLOCKED and case.blocked_by in message
        assert "\n" not in message and "data_docs/index.html" in message
        assert DATE not in lake.dates("curated")  # nothing reaches the curated zone
        assert storage.list_files(lake.partition("raw", DATE))  # the raw files stay for re-processing
        page = open(os.path.join(lake.partition("quality", DATE), "data_docs", "index.html"), encoding="utf-8").read()
        assert "BLOCKS THE BATCH" in page or "Blocked: " in page
        assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # reads offline
        return

    rec = ingest.run(spark, settings, DATE)
    curated, quarantine, duplicates = (table_rows(settings, z, DATE) for z in ("curated", "quarantine", "duplicates"))
    assert rec.rows_in == len(curated) + len(quarantine) + len(duplicates) + (rec.rows_lost or 0)
    assert (rec.rows_out, rec.rows_rejected, rec.rows_duplicate) == (len(curated), len(quarantine), len(duplicates))
    if case.landed is not None:
        assert rec.rows_in == case.landed
    if case.curated is not None:
        assert len(curated) == case.curated
    assert len(duplicates) == case.duplicates
    assert set(duplicates.duplicate_of.dropna()) <= set(curated.review_id) | set(
        table_rows(settings, "curated").review_id)
    if case.reasons is not None:
        assert Counter(r for rs in quarantine.reasons for r in rs) == Counter(case.reasons)
    unreadable = quarantine.reasons.map(lambda rs: "unreadable" in rs)
    assert quarantine.source_file.notna().all() and (quarantine.source_line[~unreadable] > 0).all()
    assert quarantine.raw_record.notna().all()   # what was landed, for every record set aside
    if case.check:
        assert case.check(curated), curated[["review_id", "text"]].to_dict("records")


@pytest.mark.slow
def test_a_cut_gzip_accepted_by_the_setting_keeps_what_was_readable_and_says_the_loss_is_unknown(
        spark, tmp_path, sources_file):
    """400 reviews gzipped and cut to 1,500 bytes: the census counts what can be read, the cut-off rest
    stands as one unreadable row in quarantine, and the loss is recorded as unknown (rows_lost null)."""
    settings = make_settings(tmp_path, sources_file=sources_file, max_lost_share=1.0)
    put(settings, DATE, {"reviews": ("cut.csv.gz", cut_gzip())})
    rec = ingest.run(spark, settings, DATE)
    quarantine = table_rows(settings, "quarantine", DATE)
    (damage,) = rec.outputs["damaged_files"]
    assert damage["file"] == "cut.csv.gz" and damage["lost"] is None and "cut before its end" in damage["why"]
    assert 0 < rec.rows_out < 400 and rec.rows_lost is None
    assert rec.rows_in == rec.rows_out + rec.rows_rejected + rec.rows_duplicate
    assert [list(r) for r in quarantine.reasons].count(["unreadable"]) == 1
    assert "gzip stream truncated" in " ".join(rec.outputs["read_notes"])


@pytest.mark.slow
def test_a_damaged_parquet_accepted_by_the_setting_counts_its_lost_rows(spark, tmp_path, sources_file):
    """Its footer says 6 rows; none can be read. Landed 6 + 9 (a good file beside it) + 1 unreadable row."""
    settings = make_settings(tmp_path, sources_file=sources_file, max_lost_share=1.0)
    put(settings, DATE, {"parquet": ("d.parquet", parquet_with_damaged_data()),
                         "jsonl": ("j.jsonl", b"".join(b'{"id": %d, "body": "fine %d"}\n' % (i, i) for i in range(9)))})
    rec = ingest.run(spark, settings, DATE)
    assert (rec.rows_in, rec.rows_out, rec.rows_rejected, rec.rows_lost) == (16, 9, 1, 6)
    assert rec.outputs["damaged_files"] == [{"file": "d.parquet", "bytes": 1085, "lost": 6,
                                             "why": "its data cannot be read; its footer declares 6 rows"}]


@pytest.mark.slow
def test_when_two_readers_count_a_file_differently_nothing_is_curated(spark, tmp_path, sources_file):
    """A file ending in an unterminated quote: the parser reads an empty line there, Arrow's CSV reader
    a record. Which one is right cannot be known from the bytes: the batch stops, naming the file."""
    settings = make_settings(tmp_path, sources_file=sources_file)
    put(settings, DATE, {"reviews": ("odd.csv", reviews(*GOOD) + b'"')})
    with pytest.raises(StageStopped) as stop:
        ingest.run(spark, settings, DATE)
    assert stop.value.exit_code == ExitCode.BLOCKED
    assert "odd.csv: 13 records counted by the census, 12 parsed" in str(stop.value) and "\n" not in str(stop.value)
    assert DATE not in Lake(settings).dates("curated")


@pytest.mark.slow
def test_real_tweets_map_through_their_own_source(spark, tmp_path):
    need(TWEETS)
    settings = make_settings(tmp_path)
    sample = pd.read_csv(TWEETS, dtype=str).head(300)
    put(settings, DATE, {"tweets": ("tweets.csv", sample.to_csv(index=False).encode())})
    rec = ingest.run(spark, settings, DATE)
    curated = table_rows(settings, "curated", DATE)
    assert rec.rows_in == 300 == rec.rows_out + rec.rows_rejected + rec.rows_duplicate
    assert curated.review_id.str.startswith("tw-").all() and curated.rating.isna().all()
    assert not curated.text.str.contains("&amp;").any()  # HTML entities decoded
    # tweets have no title: the source maps none, so the title expectation does not count their rows
    assert not any("(title)" in w for w in rec.outputs.get("warnings", []))

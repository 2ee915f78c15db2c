"""Landed file bytes -> canonical document records -> cleaned records. Arrow and Python, no Spark.

`parse_file` turns one landed file (CSV, JSONL or Parquet, optionally gzip) into canonical records,
each with the line (or row offset) it came from and, when it could not be read as a record, a
`parse_error`. Damage is handled, not fatal: a BOM, CRLF, NUL bytes, invalid UTF-8 (replaced; a file
that is not UTF-8 at all is read as cp1252), a truncated last line. Bytes that hold no readable
record (a gzip stream cut before its end, a Parquet file that cannot be read) become one placeholder
row with `unreadable` set: it is quarantined and the census (census.py) tells how much was lost.
`clean_table` normalises the text fields. The ingest job runs both inside Spark (mapInArrow), one file
per task, through `read_file`, which hands Spark Arrow record batches.

Most files need no repair, and those are read a column at a time: a CSV file whose bytes are clean
UTF-8 goes through Arrow's CSV reader (`_parse_csv_arrow`), and `clean_table` calls the per-value
cleaner only on the values Arrow finds it may change: the others never become Python strings. Both
give exactly what the per-record path gives; a file the fast reader cannot vouch for goes to the
forgiving parser whole (its records become Arrow after it).
"""
from __future__ import annotations

import csv
import functools
import html
import io
import json
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CANONICAL = ("review_id", "text", "title", "rating_raw", "product_id", "department", "class")
META = ("source_file", "source_line", "parse_error", "missing_columns", "raw_record", "decode_note", "unreadable")
# The parsed records in Arrow, as they leave the reader, and cleaned, as Spark takes them (the parsed
# columns and the cleaning's). Large strings (64-bit offsets): a batch's texts or raw records may pass
# 2 GiB (50,000 records of 10,000 characters of four bytes each), and Spark takes them as they are.
PARSED_ARROW = pa.schema([*((c, pa.large_string()) for c in CANONICAL), ("source_file", pa.large_string()),
                          ("source_line", pa.int64()), *((c, pa.large_string()) for c in META[2:])])
CLEANED_ARROW = pa.schema([*PARSED_ARROW, ("text_truncated", pa.bool_()), ("text_hash", pa.large_string())])
_SPARK_TYPES = {pa.large_string(): "string", pa.int64(): "long", pa.bool_(): "boolean"}
CLEANED_SCHEMA = ", ".join(f"`{f.name}` {_SPARK_TYPES[f.type]}" for f in CLEANED_ARROW)   # the same, as Spark DDL
csv.field_size_limit(2**31 - 1)  # a review may be long; the cleaner cuts it, the reader must not fail
RAW_RECORD_MAX = 20_000  # chars of the original record kept in quarantine
CHUNK = 50_000  # records cleaned at a time
SPARK_BATCH = 10_000  # records per Arrow batch handed to Spark (what its own Arrow conversion sends)


@dataclass
class Decoded:
    text: str
    notes: list[str] = field(default_factory=list)


def inflate(data: bytes) -> tuple[bytes, bool]:
    """gunzips every member of a gzip file; (what could be read, whether the stream ended cleanly).
    Bytes that are not gzip come back as they are."""
    if data[:2] != b"\x1f\x8b":
        return data, True
    out, rest = [], data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(rest))
        except zlib.error:
            return b"".join(out), False
        if not d.eof:
            return b"".join(out), False
        rest = d.unused_data.lstrip(b"\x00")  # members may be padded with NULs
        if rest and rest[:2] != b"\x1f\x8b":
            return b"".join(out), False  # trailing bytes that are no gzip member
    return b"".join(out), True


CUT_STREAM = "compressed stream cut before its end: the records that followed are lost"


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def decode(data: bytes) -> Decoded:
    """UTF-8 (BOM stripped); invalid sequences replaced; cp1252 for files with no UTF-8 at all."""
    notes = []
    nuls = data.count(b"\x00")
    if nuls:
        notes.append(f"{nuls} NUL bytes removed")
        data = data.replace(b"\x00", b"")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if _UTF8_MULTIBYTE.search(data):
            text = data.decode("utf-8-sig", errors="replace")
            notes.append(f"{text.count(chr(0xFFFD))} invalid UTF-8 sequences replaced")
        else:
            text = data.decode("cp1252", errors="replace")
            notes.append("not UTF-8: read as cp1252")
    return Decoded(text, notes)


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", str(name).replace("\ufeff", "")).strip().lower()


def _resolve(columns: list[str], mapping: dict) -> tuple[dict[str, int | str], list[str]]:
    """canonical -> index/name in the file (matched case- and whitespace-insensitively; `_cN` is
    the N-th column), and the mapped source columns the file lacks."""
    by_key = {_key(c): c for c in columns}
    found, missing = {}, []
    for canonical, source in mapping.items():
        if source is None:
            continue
        m = re.fullmatch(r"_c(\d+)", str(source))
        if m and int(m.group(1)) < len(columns):
            found[canonical] = columns[int(m.group(1))]
        elif _key(source) in by_key:
            found[canonical] = by_key[_key(source)]
        else:
            missing.append(str(source))
    return found, missing


def _frame(records: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records, columns=[*CANONICAL, *META])
    return df.astype({"source_line": "int64"})


def _as_str(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _record(values: dict, found: dict, missing: list[str], path: str, line: int, error: str | None,
            raw: str, notes: str | None, unreadable: str | None = None) -> dict:
    rec = {c: None for c in CANONICAL}
    for canonical, src in found.items():
        rec["rating_raw" if canonical == "rating" else canonical] = _as_str(values.get(src))
    rec.update(source_file=path, source_line=line, parse_error=error, missing_columns=", ".join(missing) or None,
               raw_record=raw[:RAW_RECORD_MAX], decode_note=notes, unreadable=unreadable)
    return rec


def parse_file(path: str, data: bytes, spec: dict):
    """Yields pandas frames of canonical records (strings) for one landed file, each record with its
    raw form (`raw_record`)."""
    for table, raw_of in _parsed(path, data, spec):
        if raw_of is not None:
            table = table.set_column(table.schema.get_field_index("raw_record"), "raw_record",
                                     raw_of(np.arange(table.num_rows)))
        yield table.to_pandas()


def read_file(path: str, data: bytes, spec: dict, max_text_chars: int,
              needs_raw: Callable[[pa.Table], np.ndarray]):
    """Arrow record batches (CLEANED_ARROW, what the ingest hands Spark) of parse_file's records
    cleaned (`clean_table`), with the raw record only of the records `needs_raw` marks on the cleaned
    table (ingest: those the gate may quarantine, the only ones that keep it). The column-at-a-time
    reader builds the raw records last, for those rows alone: building them for every record of a
    clean file cost as much as a copy of its texts, all the way into Spark's cache. The values stay
    in Arrow from reader to Spark: only those the cleaner may change become Python strings."""
    for table, raw_of in _parsed(path, data, spec):
        out = clean_table(table, max_text_chars)
        if raw_of is not None:
            needed = np.asarray(needs_raw(out), dtype=bool)
            if needed.any():
                raw = pc.replace_with_mask(out.column("raw_record").combine_chunks(), pa.array(needed),
                                           raw_of(np.flatnonzero(needed)))
                out = out.set_column(out.schema.get_field_index("raw_record"), "raw_record", raw)
        yield from out.cast(CLEANED_ARROW).to_batches(max_chunksize=SPARK_BATCH)


def _parsed(path: str, data: bytes, spec: dict):
    """(table, raw_of) for each part of the file (PARSED_ARROW): raw_of(rows) gives the raw records of
    the table's rows at those positions, or is None when the table holds its raw records already."""
    prefix = spec.get("id_prefix") or ""
    for table, raw_of in _parse(path, data, spec):
        if prefix:  # ids from different sources must not collide; a blank id stays blank
            table = table.set_column(0, "review_id", _prefixed(table.column("review_id").combine_chunks(), prefix))
        yield table, raw_of


def _prefixed(ids: pa.Array, prefix: str) -> pa.Array:
    """prefix + the id stripped, for every id that is not blank. An id no whitespace can start or end
    (one the cleaner leaves as it is, _MAY_CHANGE) gets it in Arrow; the others in Python."""
    plain = pc.invert(pc.match_substring_regex(ids, _MAY_CHANGE)).fill_null(False)
    out = pc.if_else(plain, pc.binary_join_element_wise(_large(prefix), ids, _large("")), ids)
    odd = np.flatnonzero(pc.and_(pc.invert(plain), pc.is_valid(ids)).to_numpy(zero_copy_only=False))
    if not len(odd):
        return out
    fixed = [v if v.strip() == "" else prefix + v.strip() for v in ids.take(pa.array(odd)).to_pylist()]
    return pc.replace_with_mask(out, _mask(len(ids), odd), pa.array(fixed, pa.large_string()))


def _mask(length: int, positions: np.ndarray) -> pa.Array:
    mask = np.zeros(length, dtype=bool)
    mask[positions] = True
    return pa.array(mask)


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, schema=PARSED_ARROW, preserve_index=False)


def _parse(path: str, data: bytes, spec: dict):
    size = len(data)
    data, complete = inflate(data)
    notes = [] if complete else ["gzip stream truncated"]
    fmt = spec["format"]
    if fmt == "parquet":
        yield from ((_arrow(frame), None) for frame in _parse_parquet(path, data, spec, notes))
    else:
        decoded = decode(data)
        note = "; ".join(notes + decoded.notes) or None
        if fmt == "csv" and note is None:  # bytes that needed no repair: try Arrow's reader first
            read = _parse_csv_arrow(path, data, decoded.text, spec)
            if read is not None:
                table, raw_of = read
                for start in range(0, table.num_rows, CHUNK):
                    yield table.slice(start, CHUNK), (lambda rows, start=start: raw_of(rows + start))
                return
        parser = _parse_csv if fmt == "csv" else _parse_jsonl
        batch = []
        for rec in parser(path, decoded.text, spec, note):
            batch.append(rec)
            if len(batch) >= CHUNK:
                yield _arrow(_frame(batch)), None
                batch = []
        if batch:
            yield _arrow(_frame(batch)), None
    if not complete:  # the cut-off rest of the file stands as one unreadable row
        yield _arrow(_frame([_record({}, {}, [], path, 0, None, f"<{size:,} compressed bytes; {len(data):,} bytes "
                                     "readable before the cut>", None, unreadable=CUT_STREAM)])), None


def csv_dialect(spec: dict) -> tuple[str, str]:
    """(delimiter, quote character) of a CSV source, from its options."""
    opts = spec.get("options") or {}
    return opts.get("delimiter") or opts.get("sep") or ",", opts.get("quote", '"')


def _parse_csv(path: str, text: str, spec: dict, note: str | None):
    delimiter, quote = csv_dialect(spec)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote)
    lines_before, header = 0, None
    rows = []
    for fields in reader:
        start = lines_before + 1
        lines_before = reader.line_num
        if not fields or fields == [""]:
            continue  # blank line
        if header is None:
            header = [f.replace("\ufeff", "") for f in fields]
            continue
        rows.append((start, fields))
    if header is None:
        return
    found, missing = _resolve(header, spec["columns"])
    # A file that stops without a final line break inside a quoted field, or short of fields,
    # was cut off: its last record is incomplete.
    cut = not text.endswith(("\n", "\r"))
    odd_quotes = text.count(quote) % 2 == 1
    for i, (start, fields) in enumerate(rows):
        error = None
        if i == len(rows) - 1 and cut and (odd_quotes or len(fields) < len(header)):
            error = "truncated_record"
        elif len(fields) != len(header):
            error = f"malformed_row: {len(fields)} fields, header has {len(header)}"
        values = dict(zip(header, fields))
        raw = json.dumps(values if error is None else fields, ensure_ascii=False)
        yield _record(values, found, missing, path, start, error, raw, note)


def _line_breaks(values: pa.Array, carriage_returns: bool) -> pa.Array | int:
    """Line breaks in each value as Python's universal newlines count them (\\r\\n is one)."""
    data = values.buffers()[2]   # most columns hold none: a look at their bytes says so quicker than Arrow
    found = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    newlines, returns = (found == ord("\n")).any(), carriage_returns and (found == ord("\r")).any()
    if not returns:
        return pc.count_substring(values, pattern="\n") if newlines else 0
    n, r, rn = (pc.count_substring(values, pattern=p) for p in ("\n", "\r", "\r\n"))
    return pc.subtract(pc.add(n, r), rn)


def _parse_csv_arrow(path: str, data: bytes, text: str, spec: dict) -> tuple[pa.Table, Callable] | None:
    """The records `_parse_csv` gives, read by Arrow's CSV reader (vectorised, C++), for a file that
    needs no repair (`data` its bytes, `text` their decoded text), as one table (PARSED_ARROW) without
    its raw records, and the function that builds them for the rows at given positions (`_parsed`);
    None sends the file to the forgiving parser: a row of the wrong width, a cut or unterminated last
    record, a blank line (its line numbers), a header that repeats a name. Line numbers are counted
    from the line breaks inside the values, and the sum is checked against the file's own: a file
    split any other way than the forgiving parser would split it goes there."""
    import pyarrow.csv as pacsv

    delimiter, quote = csv_dialect(spec)
    if (len(delimiter) != 1 or len(quote) != 1 or not text.endswith(("\n", "\r")) or text.count(quote) % 2
            or text.startswith(("\n", "\r"))):
        return None
    # The header from the file's first bytes (a StringIO of the whole text would copy it): one cut short
    # differs from the first record Arrow reads, and the check below sends the file to the forgiving parser.
    header = next(csv.reader(io.StringIO(text[:1 << 16], newline=""), delimiter=delimiter, quotechar=quote), None)
    header = [f.replace("\ufeff", "") for f in header or []]
    if len(header) < 2 or len(set(header)) != len(header):
        return None  # one column: a blank line would be a record to Arrow; repeated names: last one wins
    names = [f"f{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data.removeprefix(b"\xef\xbb\xbf")),   # the BOM decode() dropped from `text`
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False,
                                           block_size=max(len(data) + 1, 1 << 20)),   # no record straddles blocks
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=quote, newlines_in_values=True,
                                              ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                 auto_dict_encode=False))
    except pa.ArrowInvalid:
        return None
    columns = [pc.cast(table.column(n), pa.large_string()).combine_chunks() for n in names]
    carriage_returns = "\r" in text
    breaks = functools.reduce(pc.add, (_line_breaks(c, carriage_returns) for c in columns),
                              pa.array(np.ones(table.num_rows, dtype="int64")))   # each record's own line end
    total = text.count("\n") + (text.count("\r") - text.count("\r\n") if carriage_returns else 0)
    if pc.sum(breaks).as_py() != total or [c[0].as_py().replace("\ufeff", "") for c in columns] != header:
        return None
    lines = np.cumsum(breaks.to_numpy())          # line number of each record's last line
    first_lines = (lines - breaks.to_numpy() + 1)[1:]   # each record's first line, the header left out
    found, missing = _resolve(header, spec["columns"])
    body = [c.slice(1) for c in columns]
    position = {name: i for i, name in enumerate(header)}
    rows = len(first_lines)
    source = {"rating_raw" if canonical == "rating" else canonical: body[position[name]]
              for canonical, name in found.items()}
    nulls = pa.nulls(rows, pa.large_string())
    values = {c: source.get(c, nulls) for c in CANONICAL} | {
        "source_file": pa.repeat(_large(path), rows), "source_line": pa.array(first_lines.astype("int64")),
        "parse_error": nulls, "missing_columns": pa.repeat(_large(", ".join(missing) or None), rows),
        "raw_record": nulls, "decode_note": nulls, "unreadable": nulls}

    def raw_of(rows: np.ndarray) -> pa.Array:
        picked = pa.array(rows, pa.int64())
        return _json_objects(header, [c.take(picked) for c in body])

    return pa.table(values, schema=PARSED_ARROW), raw_of


def _json_objects(keys: list[str], columns: list[pa.Array]) -> pa.Array:
    """json.dumps(dict(zip(keys, row)), ensure_ascii=False)[:RAW_RECORD_MAX] for every row of the
    string columns, built a column at a time."""
    parts = []
    for i, (key, column) in enumerate(zip(keys, columns)):
        parts += [_large(("{" if i == 0 else ", ") + _ENCODE(key) + ": "), _json_strings(column)]
    objects = pc.binary_join_element_wise(*parts, _large("}"), _large(""))
    return pc.utf8_slice_codeunits(objects, 0, RAW_RECORD_MAX)


_ENCODE = json.encoder.encode_basestring   # what json.dumps(ensure_ascii=False) writes for a string


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _json_strings(column: pa.Array) -> pa.Array:
    """Each value as a JSON string literal; Python's encoder only for the values with a character
    to escape (a quote, a backslash, a control character)."""
    quoted = pc.binary_join_element_wise(_large('"'), column, _large('"'), _large(""))
    escape = np.flatnonzero(pc.match_substring_regex(column, r'["\\\x00-\x1f]').to_numpy(zero_copy_only=False))
    if not len(escape):
        return quoted
    values = quoted.to_numpy(zero_copy_only=False)
    values[escape] = [_ENCODE(v) for v in column.take(pa.array(escape)).to_pylist()]
    return pa.array(values, type=pa.large_string())


def _parse_jsonl(path: str, text: str, spec: dict, note: str | None):
    # Lines end at \n alone: str.splitlines() would also split inside a string at U+2028, U+0085, ...
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            error = None if isinstance(obj, dict) else "malformed_json: not an object"
        except json.JSONDecodeError as exc:
            obj, error = None, f"malformed_json: {exc.msg}"
        if error:
            yield _record({}, {}, [], path, number, error, line, note)
            continue
        # JSON omits null fields: a key a line lacks is a null value, not a missing column.
        found, _ = _resolve(list(obj), spec["columns"])
        yield _record(obj, found, [], path, number, None, line, note)


def _parse_parquet(path: str, data: bytes, spec: dict, notes: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    note = "; ".join(notes) or None
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        # A half-copied or corrupt file has no rows to recover: it stands as one unreadable row, so
        # it is quarantined and counted; the census says how many rows it declared, if it can tell.
        why = f"not readable as Parquet: {str(exc).splitlines()[0][:200]}"
        yield _frame([_record({}, {}, [], path, 0, None, f"<{len(data):,} bytes>", note, unreadable=why)])
        return
    found, missing = _resolve(table.column_names, spec["columns"])
    offset = 0
    for batch in table.to_batches(max_chunksize=CHUNK):
        records = []
        for i, values in enumerate(batch.to_pylist()):
            raw = json.dumps({k: _as_str(v) for k, v in values.items()}, ensure_ascii=False)
            records.append(_record(values, found, missing, path, offset + i + 1, None, raw, note))
        offset += batch.num_rows
        yield _frame(records)


# --- cleaning --------------------------------------------------------------------------------------

# Anything a browser would read as markup: a tag of any length (a "<" right before a name, "/", "!"
# or "?"), one never closed running to the end of the text, and comments. "I <3 it" and "a < b" are
# text, not tags, and stay.
_TAG = re.compile(r"<!--.*?(?:-->|$)|<[/!?]?[A-Za-z][^>]*(?:>|$)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_SPACE = re.compile(r"\s+")


def clean_text(value: str | None) -> str | None:
    """NFC, HTML entities decoded, then tags removed, control characters dropped, whitespace collapsed;
    blank becomes None. Entities go first: decoding after the tags are gone would turn a landed
    "&lt;img src=x onerror=...&gt;" into a live tag (and "&amp;lt;" is decoded until nothing changes)."""
    if value is None:
        return None
    t = unicodedata.normalize("NFC", value)
    for _ in range(5):
        decoded = html.unescape(t)
        if decoded == t:
            break
        t = decoded
    t = _TAG.sub(" ", t)
    t = _SPACE.sub(" ", _CONTROL.sub("", t)).strip()
    return t or None


# Most values are already clean: clean_text would return them unchanged. These are the ones it may
# change: entities (&), markup (<), the control and format characters it drops, any whitespace but a
# single space between words (Python's \s and str.strip know more of it than tab and line breaks),
# an empty value; and, for a non-ASCII value, NFC.
_MAY_CHANGE = (r"[&<\x{0}-\x{1f}\x{7f}-\x{a0}\x{1680}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}"
               r"\x{3000}\x{feff}]|  |^ | $|^$")   # RE2 syntax (Arrow)


# Of those, the values whose only change is their spacing: no character _MAY_CHANGE finds but tab, line
# breaks and space, and not blank. clean_text would only collapse their [\t\n\r ] runs and strip them.
_BEYOND_SPACING = (r"[&<\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{a0}\x{1680}\x{2000}-\x{200b}\x{2028}\x{2029}"
                   r"\x{202f}\x{205f}\x{3000}\x{feff}]|^[\t\n\r ]*$")


def clean_array(values: pa.Array) -> pa.Array:
    """clean_text over a column, called only where it may change something: Arrow finds those
    values a column at a time and respaces those that need nothing else; Python's NFC quick check
    clears the non-ASCII ones it did not find."""
    may = pc.match_substring_regex(values, _MAY_CHANGE).fill_null(False).to_numpy(zero_copy_only=False)
    non_ascii = pc.invert(pc.string_is_ascii(values)).fill_null(False).to_numpy(zero_copy_only=False)
    if not (may.any() or non_ascii.any()):
        return values
    found = np.flatnonzero(may)   # the second look reads these values only
    beyond = np.zeros(len(values), dtype=bool)
    beyond[found] = pc.match_substring_regex(values.take(pa.array(found)), _BEYOND_SPACING).to_numpy(
        zero_copy_only=False)
    not_nfc = np.zeros(len(values), dtype=bool)
    unsure = np.flatnonzero(non_ascii & ~beyond)
    not_nfc[unsure] = [not unicodedata.is_normalized("NFC", v) for v in values.take(pa.array(unsure)).to_pylist()]
    out = values
    spacing = may & ~beyond & ~not_nfc
    if spacing.any():
        mask = pa.array(spacing)
        respaced = pc.utf8_trim(pc.replace_substring_regex(values.filter(mask), r"[\t\n\r ]+", " "), " ")
        out = pc.replace_with_mask(out, mask, respaced)
    python = np.flatnonzero(beyond | not_nfc)
    if len(python):
        new = [clean_text(v) for v in values.take(pa.array(python)).to_pylist()]
        out = pc.replace_with_mask(out, _mask(len(values), python), pa.array(new, values.type))
    return out


def clean_column(values: pd.Series) -> np.ndarray:
    """clean_array over a pandas column (None and NaN are nulls)."""
    column = pa.array(values.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    return clean_array(column).to_numpy(zero_copy_only=False)


def text_fingerprint(text: str | None) -> str | None:
    """sha256 of the normalised text (case-folded), so re-posted copies of a text collide."""
    import hashlib

    if text is None:
        return None
    return hashlib.sha256(text.casefold().encode("utf-8")).hexdigest()


def text_fingerprints(texts: pa.Array) -> pa.Array:
    """text_fingerprint of each value, hashed from Arrow's buffer: an ASCII text's case fold is
    Arrow's ASCII lower case, and only the others go through Python's casefold."""
    import hashlib

    folded = pc.ascii_lower(texts)
    other = np.flatnonzero(pc.invert(pc.string_is_ascii(texts)).fill_null(False).to_numpy(zero_copy_only=False))
    if len(other):
        folds = [v.casefold() for v in texts.take(pa.array(other)).to_pylist()]
        folded = pc.replace_with_mask(folded, _mask(len(texts), other), pa.array(folds, texts.type))
    folded = folded.cast(pa.large_string())
    ends = np.frombuffer(folded.buffers()[1], dtype=np.int64)[folded.offset: folded.offset + len(folded) + 1].tolist()
    data = memoryview(folded.buffers()[2] or b"")
    valid = folded.is_valid().to_numpy(zero_copy_only=False).tolist()
    sha256 = hashlib.sha256
    return pa.array([sha256(data[a:b]).hexdigest() if v else None for a, b, v in zip(ends, ends[1:], valid)],
                    pa.large_string())


def clean_table(table: pa.Table, max_text_chars: int) -> pa.Table:
    """Cleaned text fields, texts cut to max_text_chars (flagged), and the text hash (PARSED_ARROW in,
    its columns and text_truncated, text_hash out)."""
    for name in CANONICAL:
        table = table.set_column(table.schema.get_field_index(name), name,
                                 clean_array(table.column(name).combine_chunks()))
    text = table.column("text").combine_chunks()
    too_long = pc.greater(pc.utf8_length(text), max_text_chars).fill_null(False)
    cut = np.flatnonzero(too_long.to_numpy(zero_copy_only=False))
    if len(cut):
        shorter = [v[:max_text_chars].rstrip() for v in text.take(pa.array(cut)).to_pylist()]
        text = pc.replace_with_mask(text, too_long, pa.array(shorter, text.type))
        table = table.set_column(table.schema.get_field_index("text"), "text", text)
    return table.append_column("text_truncated", too_long).append_column("text_hash", text_fingerprints(text))


def clean(df: pd.DataFrame, max_text_chars: int) -> pd.DataFrame:
    """clean_table over a pandas frame of parsed records."""
    return clean_table(_arrow(df), max_text_chars).to_pandas()

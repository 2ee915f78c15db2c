"""An independent count of what landed: how many records each raw file holds, counted without the
parser that reads them (documents.py), and whether every byte of the file could be read.

The ingest reconciliation compares the two: if the counts differ, one of the readers is wrong about the
file and nothing is curated. What the census counts, per format:
- CSV: records as Apache Arrow's CSV reader (a second, C++ parser) splits them, header excluded.
  A clean file is read by Arrow too (documents._parse_csv_arrow), so for those the independent
  check is the reader's own: its records' line breaks must add up to the file's;
- JSON lines: the non-blank lines;
- Parquet: the row count its footer declares (a file cut before its footer declares nothing);
and for a gzip file, whether its stream (every member) reached its end marker. Damage the census finds
(a cut stream, a missing footer) means records are lost whose number may be unknown: the batch is then
blocked unless the setting max_lost_share allows it.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import pandas as pd

from .documents import csv_dialect, decode, inflate

CENSUS_SCHEMA = "path string, bytes long, records long, complete boolean, damage string"


@dataclass(frozen=True)
class FileCensus:
    path: str
    bytes: int
    records: int           # records found in what could be read
    complete: bool         # every byte was read: the stream ended cleanly, the Parquet footer is there
    damage: str | None     # why not, in words

    def as_dict(self) -> dict:
        return asdict(self)


def count_csv(text: str | bytes, delimiter: str, quote: str) -> int:
    """Records as Arrow's CSV reader splits them (quoted line breaks kept in their field), header
    excluded; rows with the wrong number of fields count too. `text` as str, or as its UTF-8 bytes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    data = text.encode("utf-8") if isinstance(text, str) else text
    if not data or data.isspace():
        return 0
    invalid = []
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=quote, newlines_in_values=True,
                                              invalid_row_handler=lambda row: invalid.append(1) or "skip"),
            # the records are counted, not their values: only the first column is converted
            convert_options=pacsv.ConvertOptions(include_columns=["f0"], column_types={"f0": pa.string()},
                                                 strings_can_be_null=False, auto_dict_encode=False))
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return 0
        raise
    return max(table.num_rows + len(invalid) - 1, 0)  # the first record is the header


def count_jsonl(text: str) -> int:
    """Lines with anything but white space on them (JSON lines are separated by \\n alone)."""
    return sum(1 for line in text.split("\n") if line.strip())


def census_of(path: str, data: bytes, spec: dict) -> FileCensus:
    """The census of one landed file."""
    raw_size = len(data)
    data, complete = inflate(data)
    damage = None if complete else "compressed stream cut before its end: what followed is lost"
    fmt = spec["format"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            records = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        except Exception as exc:  # no footer: not written to its end
            return FileCensus(path, raw_size, 0, False, f"no readable Parquet footer ({type(exc).__name__}): "
                              "the file was not written to its end; how many rows it had is unknown")
        return FileCensus(path, raw_size, records, complete, damage)
    decoded = decode(data)
    if fmt == "csv":
        # bytes that needed no repair are their text's UTF-8 (less a BOM): not encoded again
        plain = data.removeprefix(b"\xef\xbb\xbf") if not decoded.notes else decoded.text
        records = count_csv(plain, *csv_dialect(spec))
    else:
        records = count_jsonl(decoded.text)
    return FileCensus(path, raw_size, records, complete, damage)


def census_frame(files: list[tuple[str, bytes]], spec: dict) -> pd.DataFrame:
    """mapInPandas body: (path, bytes) of some files -> one census row per file."""
    rows = [census_of(path, data, spec).as_dict() for path, data in files]
    return pd.DataFrame(rows, columns=["path", "bytes", "records", "complete", "damage"])


@dataclass
class Accounting:
    """What the census and the parser say together about a batch."""
    found: int = 0                      # records counted, plus one per unreadable row (the parser's placeholders)
    lost: int = 0                       # records known lost (declared by a Parquet footer, not readable)
    lost_unknown: list[str] = None      # files whose losses nobody can count
    damaged: list[dict] = None          # {file, bytes, why, lost}: every file with unreadable bytes
    disagreements: list[str] = None     # files where the census and the parser count differently

    def lost_share(self) -> float:
        """Known lost records over records found and lost; 1.0 when some loss cannot be counted."""
        if self.lost_unknown:
            return 1.0
        total = self.found + self.lost
        return self.lost / total if total else 0.0


def reconcile(census: list[dict], parsed: dict[str, tuple[int, int]]) -> Accounting:
    """census: census rows; parsed: file -> (records the parser produced, its unreadable rows).

    A file the parser read whole must hold exactly the records the census counted. Where the parser
    found unreadable bytes, the census tells how many records are lost: the footer's count less what
    was read (a Parquet file whose data is damaged), or nobody knows (a cut stream, no footer)."""
    acc = Accounting(lost_unknown=[], damaged=[], disagreements=[])
    for c in sorted(census, key=lambda c: c["path"]):
        records, unreadable = parsed.get(c["path"], (0, 0))
        name = c["path"].rsplit("/", 1)[-1]
        acc.found += c["records"] + unreadable
        if unreadable and c["complete"]:  # every byte there, but the data pages do not decode
            lost = c["records"] - records
            acc.found -= lost
            acc.lost += lost
            acc.damaged.append({"file": name, "bytes": c["bytes"], "lost": lost,
                                "why": f"its data cannot be read; its footer declares {c['records']:,} rows"})
            continue
        if not c["complete"]:
            acc.lost_unknown.append(name)
            acc.damaged.append({"file": name, "bytes": c["bytes"], "lost": None, "why": c["damage"]})
        if records != c["records"]:
            acc.disagreements.append(f"{name}: {c['records']:,} records counted by the census, {records:,} parsed")
    return acc

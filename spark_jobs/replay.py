"""Corpus replay: lands the review corpus as a handful of daily batches.

Each corpus row keeps its stable id (the corpus' row index) and goes to the day chosen by a hash of
that id, so the split is the same on every machine and every run. Without a corpus at hand a small
deterministic synthetic generator stands in, and says so.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import zlib

import pandas as pd

from .landing import land
from .lake import Lake
from .settings import Settings
from . import storage

REVIEW_COLUMNS = ["", "Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND",
                  "Positive Feedback Count", "Division Name", "Department Name", "Class Name"]


def replay_dates(settings: Settings) -> list[str]:
    start = dt.date.fromisoformat(settings.replay_start)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(settings.replay_days)]


def day_of(row_id: int, days: int) -> int:
    return zlib.crc32(str(row_id).encode()) % days


def read_corpus(path: str) -> pd.DataFrame:
    # A real CSV parser: quoted fields in this corpus contain line breaks.
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = df.columns[0]
    if first.startswith("Unnamed"):
        df = df.rename(columns={first: ""})
    return df


def synthetic_corpus(rows_per_day: int, days: int, seed: int) -> pd.DataFrame:
    """Review-like rows with the corpus' columns; the wording follows the rating so a model can learn."""
    rng = random.Random(seed)
    words = {
        1: ["awful", "cheap fabric", "fell apart", "returned it", "very disappointed"],
        2: ["runs small", "not flattering", "itchy", "poor quality", "would not buy again"],
        3: ["okay", "fits fine", "average quality", "nothing special", "colour slightly off"],
        4: ["nice fit", "comfortable", "good value", "pretty colour", "would recommend"],
        5: ["love it", "perfect fit", "gorgeous", "excellent quality", "my new favourite"],
    }
    departments = {"Dresses": "Dresses", "Tops": "Knits", "Bottoms": "Pants", "Jackets": "Outerwear"}
    out = []
    for i in range(rows_per_day * days):
        rating = rng.choices([1, 2, 3, 4, 5], weights=[4, 7, 12, 22, 55])[0]
        dept = rng.choice(sorted(departments))
        phrases = rng.sample(words[rating], 3)
        out.append({
            "": str(i), "Clothing ID": str(1000 + rng.randrange(40)), "Age": str(rng.randrange(18, 80)),
            "Title": phrases[0].capitalize(),
            "Review Text": f"The {departments[dept].lower()} is {phrases[0]}. {phrases[1].capitalize()}, "
                           f"{phrases[2]}. Order {100000 + i}.",  # real reviews are unique texts
            "Rating": str(rating), "Recommended IND": str(int(rating >= 4)), "Positive Feedback Count": "0",
            "Division Name": "General", "Department Name": dept, "Class Name": departments[dept],
        })
    return pd.DataFrame(out, columns=REVIEW_COLUMNS)


def replay(settings: Settings, log=print) -> list[str]:
    """Lands every replay day that the raw zone does not have yet; returns the dates landed."""
    lake = Lake(settings)
    dates = replay_dates(settings)
    pending = [d for d in dates if not storage.list_files(lake.partition("raw", d))]
    if not pending:
        return []
    if os.path.isfile(settings.corpus_path):
        corpus, name = read_corpus(settings.corpus_path), "reviews"
        log(f"replay: corpus {settings.corpus_path} ({len(corpus):,} rows) -> {len(dates)} daily batches")
    else:
        corpus, name = synthetic_corpus(settings.synthetic_rows, len(dates), settings.seed), "synthetic_reviews"
        log(f"replay: no corpus at {settings.corpus_path}; using the built-in synthetic generator "
            f"({len(corpus):,} rows). Set NLP_CORPUS_PATH to use your own copy.")
    if settings.replay_limit:
        corpus = corpus.head(settings.replay_limit)
    ids = corpus[""].astype(int)
    day = ids.map(lambda i: day_of(i, len(dates)))
    with tempfile.TemporaryDirectory() as tmp:
        for idx, date in enumerate(dates):
            if date not in pending:
                continue
            path = os.path.join(tmp, f"{name}_{date}.csv.gz")
            # mtime=0 keeps the gzip bytes identical across runs.
            corpus[day == idx].to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
            land(settings, path, date, "reviews")
            log(f"replay: landed {int((day == idx).sum()):,} rows for {date}")
    return pending

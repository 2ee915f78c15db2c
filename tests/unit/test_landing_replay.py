"""Landing keeps bytes; the replay split is deterministic; the generator stands in without a corpus."""
import hashlib

import pandas as pd
import pytest

from spark_jobs import landing, replay, storage
from spark_jobs.lake import Lake
from spark_jobs.settings import SettingsError
from tests.conftest import CORPUS, need


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_land_copies_bytes_unchanged(settings, tmp_path):
    src = tmp_path / "batch.csv"
    src.write_bytes(b",Review Text,Rating\r\n1,caf\xc3\xa9 \xff,5\r\n")
    dest = landing.land(settings, str(src), "2026-11-05", "reviews")
    assert dest.endswith("raw/ingest_date=2026-11-05/source=reviews/batch.csv")
    assert sha(dest) == sha(src)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: None, "no such file"),
])
def test_land_refuses_empty_or_missing_files(settings, tmp_path, make, message):
    src = tmp_path / "x.csv"
    make(src)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        landing.land(settings, str(src), "2026-11-05")


def test_land_refuses_unknown_source_and_bad_date(settings, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("a\n1\n")
    with pytest.raises(SettingsError, match="source 'nope'"):
        landing.land(settings, str(src), "2026-11-05", "nope")
    with pytest.raises(SettingsError, match="date"):
        landing.land(settings, str(src), "05/11/2026")


def test_replay_of_the_real_corpus_is_deterministic_and_idempotent(settings, tmp_path):
    need(CORPUS)
    s = settings.replace(replay_limit=300, replay_days=3)
    assert replay.replay(s, log=lambda *_: None) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    files = [storage.list_files(Lake(s).partition("raw", d))[0] for d in replay.replay_dates(s)]
    first = [sha(f) for f in files]
    assert replay.replay(s, log=lambda *_: None) == []  # nothing pending: nothing landed again
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]
    ids = pd.concat(frames)["Unnamed: 0"]
    assert len(ids) == 300 and ids.is_unique  # every row landed exactly once
    # a second lake gets byte-identical batches
    other = s.replace(lake_root=str(tmp_path / "other"))
    replay.replay(other, log=lambda *_: None)
    again = [sha(storage.list_files(Lake(other).partition("raw", d))[0]) for d in replay.replay_dates(other)]
    assert again == first


def test_replay_without_a_corpus_uses_the_generator_and_says_so(settings, tmp_path):
    s = settings.replace(corpus_path=str(tmp_path / "absent.csv"), replay_days=2, synthetic_rows=25)
    said = []
    replay.replay(s, log=said.append)
    assert "synthetic generator" in said[0] and "NLP_CORPUS_PATH" in said[0]
    landed = [pd.read_csv(f) for d in replay.replay_dates(s) for f in storage.list_files(Lake(s).partition("raw", d))]
    total = pd.concat(landed)
    assert len(total) == 50 and set(total["Rating"]) <= {1, 2, 3, 4, 5}
    assert replay.synthetic_corpus(25, 2, 42).equals(replay.synthetic_corpus(25, 2, 42))

"""Values given to make (FILE, SOURCE, VERSION, DATE, ...) reach the command line as data, never as
shell or make code: a file name with backticks, $(...), quotes or a newline lands under its own name
and nothing in it runs. (An automation that lands uploaded files by name hands make such names.)"""
from __future__ import annotations

import os
import subprocess

import pytest

from spark_jobs.settings import PROJECT_ROOT

DATE = "2026-11-01"


def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("name", [
    "rev`touch {pwned}`.csv", "rev$(touch {pwned}).csv", "$(shell touch {pwned}).csv",
    "rev\"q'uote.csv", "rev\nnewline;touch {pwned}.csv", "rev$$HOME.csv",
], ids=["backticks", "command substitution", "make function", "quotes", "newline", "dollars"])
def test_a_hostile_file_name_lands_under_its_own_name_and_runs_nothing(tmp_path, name):
    marker = f"pwned-{tmp_path.name}"  # a file name (no /): make and the shell run in the project root
    pwned = PROJECT_ROOT / marker
    name = name.replace("{pwned}", marker)
    source = tmp_path / "in" / name
    source.parent.mkdir()
    source.write_text(",Title,Review Text,Rating\n1,t,a review,5\n")
    done = make("land", f"FILE={source}", f"DATE={DATE}", "SOURCE=reviews",
                env={"NLP_LAKE_ROOT": str(tmp_path / "lake")})
    assert done.returncode == 0, done.stderr
    landed = tmp_path / "lake" / "raw" / f"ingest_date={DATE}" / "source=reviews"
    assert [p.name for p in landed.iterdir()] == [name]
    assert not pwned.exists()
    assert (landed / name).read_text() == source.read_text()


@pytest.mark.parametrize("target, variable", [
    ("land", "FILE"), ("land", "SOURCE"), ("unland", "FILE"), ("promote", "VERSION"), ("infer", "RESCORE"),
    ("promote", "FORCE"), ("run", "DATE"), ("run", "TARGET"), ("run", "DRY_RUN"),
])
def test_no_recipe_spells_a_value_into_the_shell(tmp_path, target, variable):
    """`make -n` prints the commands a target would run: the value is never in them (it travels in
    the environment), and make itself runs none of it."""
    pwned = tmp_path / "pwned"
    evil = f"x`touch {pwned}`$(shell touch {pwned})$(touch {pwned})"
    done = make("-n", target, f"{variable}={evil}", "DATE=2026-11-01")
    assert "touch" not in done.stdout, done.stdout
    assert not pwned.exists()

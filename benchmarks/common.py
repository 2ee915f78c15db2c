"""What the benchmarks share: the run's provenance and results file, peak memory, the input rows
(real reviews from the corpus, or the project's synthetic generator), and timing helpers.

Every results file is written whole by one run of one script (`write_result`), with the script, its
arguments, the git commit, the date, the machine and the load average at the start and the end.
Ratios are computed by the scripts from figures of the same run; `render.py` only formats them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
WORK = os.path.join(ROOT, "benchmarks", ".work")
HARNESS = 2  # results files without this key come from the previous harness


def machine() -> dict:
    """The machine; cloud CPUs sold under one name differ by generation (family, model) and by the
    vector instructions ONNX Runtime's kernels use (int8 gains most with VNNI)."""
    info: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor is enough
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    return {"cpu": info.get("model name", "unknown"), "cpu_family": info.get("cpu family"),
            "cpu_model": info.get("model"),
            "vector_extensions": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}),
            "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "os": platform.platform()}


def git_commit() -> dict:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


class Run:
    """The provenance of one run of one script; `write` puts it and the results in one file."""

    def __init__(self, script: str, args, results_dir: str | None = None):
        self.script = os.path.relpath(os.path.abspath(script), ROOT)
        self.args = {k: v for k, v in vars(args).items() if k != "results_dir"}
        self.results_dir = results_dir or RESULTS
        self.started = dt.datetime.now(dt.timezone.utc)
        self.load_at_start = round(os.getloadavg()[0], 2)
        self.clock = time.monotonic()

    def write(self, name: str, results: dict) -> str:
        document = {
            "harness": HARNESS, "benchmark": name, "script": self.script, "args": self.args, "git": git_commit(),
            "measured_at": self.started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "load_average": {"start": self.load_at_start, "end": round(os.getloadavg()[0], 2)},
            "run_seconds": round(time.monotonic() - self.clock, 1), **results,
        }
        os.makedirs(self.results_dir, exist_ok=True)
        path = os.path.join(self.results_dir, f"{name}.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(document, f, indent=2)  # in the order the run wrote them (steps, stages)
            f.write("\n")
        os.replace(tmp, path)
        print(f"written to {os.path.relpath(path, ROOT)}", flush=True)
        return path


def run_of(script: str, args) -> Run:
    """The Run of this script; a partial run (`--only`) never lands among the results: its file goes to
    benchmarks/.work/results unless --results-dir says where."""
    if getattr(args, "only", None) and args.results_dir == RESULTS:
        args.results_dir = os.path.join(WORK, "results")
    return Run(script, args, args.results_dir)


def add_configuration_args(parser, names: list[str], what: str) -> None:
    """--only (a partial run of some of `names`), the hidden --one (one of them, in this process: what
    run_isolated calls) and --results-dir."""
    parser.add_argument("--only", help=f"comma list of {what} (default: all); a partial run")
    parser.add_argument("--one", choices=names, help=argparse.SUPPRESS)
    add_results_dir(parser)


def add_results_dir(parser) -> None:
    parser.add_argument("--results-dir", default=RESULTS,
                        help="where the results file goes (default benchmarks/results; small trial runs: elsewhere)")


class PeakMemory:
    """Samples the RSS of this process and all its children (the Spark JVM, Python workers, dbt)."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_gib(self) -> float:
        return round(self.peak / 2**30, 2)


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else float("nan")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# --- the one-configuration-per-process harness -----------------------------------------------------
def run_isolated(script: str, *args: str, env: dict | None = None) -> dict:
    """Runs `python script *args` in a fresh process (its own memory, its own JVM) and returns the dict
    it printed on its last `RESULT {json}` line, or {"error": its last stderr lines}."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {})})
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode == 0 and line:
        return json.loads(line[-1][len("RESULT "):])
    return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-3:]}


def print_result(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


# --- input rows -------------------------------------------------------------------------------------
def settings(**overrides):
    """The project's settings, from the environment (NLP_* variables apply) and the overrides."""
    from spark_jobs import settings as settings_mod

    return settings_mod.load(env=os.environ, **overrides)


def corpus(path: str | None = None):
    """The review corpus in its landed form (replay.read_corpus), rows with an empty text left out."""
    from spark_jobs import replay

    df = replay.read_corpus(path or settings().corpus_path)
    return df[df["Review Text"].str.strip() != ""].reset_index(drop=True)


def model_text(title: str, text: str) -> str:
    """nlp.MODEL_TEXT_SQL in Python: concat_ws('. ', nullif(trim(title), ''), text); Spark's trim
    removes spaces only. inference_benchmark checks the two agree on its rows."""
    title = (title or "").strip(" ")
    return f"{title}. {text}" if title else text


def documents(rows: int, offset: int = 0):
    """`rows` real reviews as the pipelines read them: review_id, title, text, label, model_text.
    Rows `offset` .. `offset + rows` of the corpus (empty texts left out), cycled through the corpus
    again when it has fewer (each copy keeps the text, and gets an id of its own)."""
    import pandas as pd

    from spark_jobs.vocabulary import LABELS

    df = corpus()
    at = [(offset + i) % len(df) for i in range(rows)]
    part = df.iloc[at]
    rating = part["Rating"].astype(int)
    out = pd.DataFrame({
        "review_id": [f"wcr-{rid}" + (f"-copy{(offset + i) // len(df)}" if offset + i >= len(df) else "")
                      for i, rid in enumerate(part[""])],
        "title": part["Title"].to_numpy(), "text": part["Review Text"].to_numpy(),
        "label": [LABELS[0] if r <= 2 else LABELS[1] if r == 3 else LABELS[2] for r in rating]})
    out["model_text"] = [model_text(t, x) for t, x in zip(out["title"], out["text"])]
    return out


def landable_reviews(rows: int, texts: str, seed: int = 7, damaged: float = 0.0, id_offset: int = 0):
    """`rows` reviews in the corpus' own columns, ready to land as files of the `reviews` source.

    texts="synthetic": the project's generator (replay.synthetic_corpus: short texts, unique).
    texts="corpus": real reviews drawn with replacement from the corpus (seeded); each copy gets an
    id of its own and a text made unique by a suffix " (ref N)", so that ingest does not drop it as a
    duplicate of another copy.
    `damaged`: that share of the rows is broken so that quarantine has work: half get an empty text,
    half a rating of 9."""
    from spark_jobs import replay

    if texts == "synthetic":
        df = replay.synthetic_corpus(rows, 1, seed=seed)
    elif texts == "corpus":
        df = corpus().sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
        df["Review Text"] = [f"{t} (ref {i})" for i, t in enumerate(df["Review Text"])]
    else:
        raise ValueError(f"texts={texts!r}: expected synthetic or corpus")
    df[""] = [str(id_offset + i) for i in range(rows)]
    if damaged:
        broken = df.sample(frac=damaged, random_state=seed).index
        df.loc[broken[: len(broken) // 2], "Review Text"] = ""
        df.loc[broken[len(broken) // 2:], "Rating"] = "9"
    return df


def write_csv_parts(df, folder: str, files: int, stem: str = "part") -> list[str]:
    """`df` as `files` CSV files of about equal size under folder; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    size = -(-len(df) // files)
    paths = []
    for i, start in enumerate(range(0, len(df), size)):
        path = os.path.join(folder, f"{stem}-{i:02d}.csv")
        df.iloc[start: start + size].to_csv(path, index=False)
        paths.append(path)
    return paths


def mib(paths: list[str]) -> float:
    return round(sum(os.path.getsize(p) for p in paths) / 2**20, 1)


# --- timing helpers -----------------------------------------------------------------------------------
def spark_seconds(df) -> float:
    """Seconds to compute every row and column of df (Spark's noop sink: nothing is written)."""
    start = time.monotonic()
    df.write.format("noop").mode("overwrite").save()
    return time.monotonic() - start


@contextmanager
def timing_calls(module, name: str, into: dict):
    """Adds to into[name] the seconds spent in calls of module.name while the block runs (calls made
    through the module attribute, as the project's jobs make them); into[name] stays None if the
    function no longer exists there."""
    original = getattr(module, name, None)
    into[name] = None
    if original is None:
        yield
        return

    def timed(*a, **kw):
        start = time.monotonic()
        try:
            return original(*a, **kw)
        finally:
            into[name] = round((into[name] or 0) + time.monotonic() - start, 2)

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def json_default(value):
    return str(value)

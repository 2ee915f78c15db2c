"""Rewrites the tables of benchmarks/README.md from the results files, and checks them.

    .venv/bin/python benchmarks/render.py            # rewrite the blocks between the markers
    .venv/bin/python benchmarks/render.py --check    # exit 1 if the README is not what the results say

Every block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` is replaced by what the
results files of that section say: where they come from (script, arguments, commit, date, machine)
and their figures in tables. Nothing is computed here: every figure in a table is a value of a
results file (rounded for display; shares shown as percentages), so that no figure lacks a run of a
committed script behind it. `--check` fails when a table stands outside the markers, when a block
differs from what the results render to, or when a number in a table is no value of a results file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
RESULTS = os.path.join(HERE, "results")
MARKER = re.compile(r"<!-- bench:(\w+) -->\n.*?<!-- /bench:\1 -->", re.S)


# --- formatting (display only: rounding, thousands separators, shares as percentages) ------------------
def num(v, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def per_s(v) -> str:
    return num(v, 0 if v is not None and v >= 100 else 1)


def pct(share) -> str:
    return "—" if share is None else f"{share * 100:.1f} %"


def signed(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(line) + " |" for line in (header, rule, *rows)]


def command(doc: dict) -> str:
    args = []
    for k, v in sorted(doc.get("args", {}).items()):
        if v is None or v is False or k == "work":
            continue
        args.append(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}"))
    return " ".join([doc["script"], *args])


def generation(m: dict) -> str:
    """CPU family, model and vector instructions, where the results file records them."""
    if m.get("cpu_family") is None:
        return ""
    return f" (family {m['cpu_family']}, model {m['cpu_model']}; {', '.join(m['vector_extensions']) or 'no AVX2'})"


def provenance(name: str, doc: dict) -> str:
    m, git = doc["machine"], doc["git"]
    return (f"`results/{name}.json`: `{command(doc)}`, commit {git['commit'][:10]}{' (uncommitted changes)' if git['dirty'] else ''}, "
            f"{doc['measured_at']}, {m['cpu']}{generation(m)}, {m['cores']} cores, {m['memory_gib']} GiB; load average "
            f"{doc['load_average']['start']} at the start, {doc['load_average']['end']} at the end; "
            f"the whole run {num(doc['run_seconds'], 0)} s.")


# --- sections ------------------------------------------------------------------------------------------
def inference(docs: dict) -> list[str]:
    doc = docs["inference"]
    res, cmp = doc["results"], doc["comparisons"]
    best = {c["best_plain_ort"] for c in cmp.values() if isinstance(c, dict)}

    def what(name, r):
        if r["kind"] == "ort":
            batching = "batch 1" if r["batch"] == 1 else f"length-sorted batches of {r['batch']}"
            label = (f"plain ONNX Runtime {'int8' if r['int8'] else 'fp32'}, {r['processes']} process(es) × "
                     f"{r['threads']} thread(s), {batching}")
            return f"**{label}** (best)" if name in best else label
        tasks = f"{r.get('tasks', '?')} tasks × {r.get('onnx_threads_per_task', '?')} ONNX thread(s)"
        if r["kind"] == "embeddings":
            return f"Spark NLP embeddings stage {'int8' if r['int8'] else 'fp32'} ({tasks}, batch 1)"
        return f"pipeline `{r['pipeline']}`{' int8' if r['int8'] else ''} end to end ({tasks})"

    rows = [[f"`{n}`", what(n, r), per_s(r.get("rows_per_second")), num(r.get("peak_memory_gib"), 2),
             num(r.get("seconds"))] if "error" not in r else [f"`{n}`", f"failed: {' '.join(r['error'])[:120]}",
                                                             "—", "—", "—"] for n, r in res.items()]
    out = [provenance("inference", doc), ""]
    out += table(["configuration", "what runs", "rows/s", "peak memory (GiB)", "seconds"], rows, "llrrr")
    comp = []
    for precision in ("fp32", "int8"):
        c = cmp.get(f"embeddings_{precision}", {})
        comp.append([f"Spark NLP embeddings {precision}", per_s(c.get("sparknlp_rows_per_second")),
                     f"`{c.get('best_plain_ort')}`", per_s(c.get("best_plain_ort_rows_per_second")),
                     f"**{num(c.get('ratio'), 2)}**"])
    out += ["", *table(["", "Spark NLP rows/s", "best plain ONNX Runtime of the same precision", "its rows/s",
                        "ratio"], comp, "lrlrr")]
    out += ["", *table(["", "ratio"], [["Spark NLP embeddings int8 over fp32", num(cmp.get("sparknlp_int8_over_fp32"), 2)]])]
    return out


def model_quality(docs: dict) -> list[str]:
    doc = docs["model_quality"]
    split = doc["split"]
    counts = split["counts"]
    out = [provenance("model_quality", doc), ""]
    out += table(["split (frozen rule)", "train", "validation", "test"],
                 [["rows", num(c.get("train")), num(c.get("validation")), num(c.get("test"))] for c in counts])
    rows = []
    for name, v in doc["variants"].items():
        if "error" in v:
            rows.append([f"`{name}`", f"failed: {' '.join(v['error'])[:120]}", *["—"] * 6])
            continue
        predicted = ", ".join(f"{k} {num(n)}" for k, n in sorted(v.get("predicted", {}).items()))
        rows.append([f"`{name}`", f"**{num(v['macro_f1'], 3)}**", num(v["accuracy"], 3),
                     *[num(v[f"f1_{c}"], 3) for c in ("negative", "neutral", "positive")], predicted,
                     num(v["fit_seconds"])])
    out += ["", *table(["variant", "test macro-F1", "accuracy", "F1 negative", "F1 neutral", "F1 positive",
                        "labels predicted on the test split", "fit seconds"], rows, "lrrrrrlr")]
    cmp = doc["comparisons"]
    out += ["", *table(["difference on the same test documents", "macro-F1"], [
        ["minilm_logreg: int8 − fp32", signed(cmp.get("minilm_macro_f1_int8_minus_fp32"))],
        ["tfidf_logreg: with standardisation − without", signed(cmp.get("tfidf_macro_f1_standardized_minus_not"))],
        ["MiniLM vectors: ClassifierDL − logistic regression",
         signed(cmp.get("minilm_macro_f1_classifierdl_minus_logreg"))]])]
    cos = doc.get("int8_cosine_to_fp32")
    if cos and "error" not in cos:
        out += ["", *table(["int8 vectors against fp32 vectors", "test texts", "mean cosine", "5th percentile",
                            "minimum"], [["plain ONNX Runtime, mean-pooled, unit length", num(cos["rows"]),
                                          num(cos["mean"], 4), num(cos["p5"], 4), num(cos["min"], 4)]])]
    return out


def scoring(docs: dict) -> list[str]:
    doc = docs["scoring"]
    sp, sk = doc["spark"], doc["sklearn"]
    out = [provenance("scoring", doc), ""]
    rows = [["Spark, `tfidf_logreg` + prediction rows", num(sp["cores"]), per_s(sp["rows_per_second"]),
             per_s(sp["rows_per_second_per_core"]), num(sp["vocabulary"]), "—", num(sp["peak_memory_gib"], 2)]]
    strongest = doc["comparisons"].get("sklearn_strongest")
    if "error" in sk:
        rows.append(["scikit-learn", f"failed: {' '.join(sk['error'])[:120]}", "—", "—", "—", "—", "—"])
    else:
        for name, side in sk.items():
            label = f"scikit-learn, same classifier, tokens: `{name}`"
            rows.append([f"**{label}** (strongest)" if name == strongest else label, num(side["cores"]),
                         per_s(side["rows_per_second"]), per_s(side["rows_per_second"]), num(side["vocabulary"]),
                         pct(side.get("same_label_as_spark")), "—"])
    out += table(["side", "cores", "rows/s", "rows/s per core", "vocabulary", "same label as Spark",
                  "peak memory (GiB)"], rows)
    out += ["", *table(["", "value"], [
        ["Spark per core over the strongest scikit-learn per core",
         f"**{num(doc['comparisons']['spark_per_core_over_sklearn_one_core'], 2)}**"]])]
    stages = doc["profile"]["stages"]
    if stages:
        out += ["", f"Where the Spark scoring time goes ({num(doc['profile']['rows'])} rows; a stage's cost is "
                    "its prefix's time less the previous prefix's, so small negative values are noise):", ""]
        out += table(["stage", "prefix seconds", "stage seconds", "share"],
                     [[st["stage"], num(st["prefix_seconds"], 2), num(st["seconds"], 2), pct(st["share"])]
                      for st in stages])
    return out


def ingest(docs: dict) -> list[str]:
    doc = docs["ingest"]
    ing, arrow, inp = doc["ingest"], doc["arrow_csv_one_thread"], doc["input"]
    out = [provenance("ingest", doc), ""]
    out += table(["side", "rows", "cores", "seconds", "rows/s", "rows/s per core", "peak memory (GiB)"], [
        ["ingest job, Great Expectations on", num(ing["rows"]), num(ing["cores"]), num(ing["seconds"]),
         per_s(ing["rows_per_second"]), per_s(ing["rows_per_second_per_core"]), num(ing["peak_memory_gib"], 2)],
        ["Arrow's CSV reader alone, one thread", num(arrow["rows"]), num(arrow["threads"]), num(arrow["seconds"], 2),
         per_s(arrow["rows_per_second"]), per_s(arrow["rows_per_second"]), "—"]])
    out += ["", *table(["", "value"], [
        ["ingest per core over Arrow on one thread", f"**{num(doc['comparisons']['ingest_per_core_over_arrow_one_thread'], 3)}**"],
        ["input: files, MiB", f"{num(inp['files'])} files, {num(inp['mib'])} MiB"],
        ["curated, quarantined, duplicates, lost", ", ".join(num(ing[k]) for k in ("curated", "quarantined", "duplicates", "lost"))]])]
    steps = sorted(ing["seconds_by_step"].items(), key=lambda kv: _step_order(kv[0]))
    out += ["", *table(["step", "seconds", "share of the ingest"],
                       [[step.replace("_", " "), num(s, 2), pct(ing["share_by_step"].get(step))]
                        for step, s in steps])]
    if "profile" in ing:
        prof = ing["profile"]
        parse = prof["parse_clean_one_core"]
        out += ["", f"Each part alone on the same date, after the timed run (best of {prof['repeats']}):", "",
                *table(["part", "seconds", "rows/s"], [
                    ["parse + clean (documents.read_file), every file, one core", num(parse["seconds"], 2),
                     per_s(parse["rows_per_second"])],
                    ["the gate (Great Expectations) alone, on the cached batch", num(prof["gate_alone_seconds"], 2), "—"],
                    ["the duplicates' search alone, on the cached batch", num(prof["duplicates_alone_seconds"], 2),
                     "—"]])]
    return out


# The ingest's steps in the order they run, each one's parts after it (they overlap it, or run beside it)
INGEST_STEPS = ("read", "census_beside_read", "validate", "gate_in_validate", "duplicates_beside_gate",
                "split_write", "curated_write", "quarantine_write", "duplicates_write", "labels_write")


def _step_order(step: str) -> int:
    return INGEST_STEPS.index(step) if step in INGEST_STEPS else len(INGEST_STEPS)


DAYS = ("day_100k", "day_1m")


def day(docs: dict) -> list[str]:
    present = [n for n in DAYS if n in docs]
    out = [provenance(n, docs[n]) for n in present]
    out = [line for p in out for line in (p, "")]
    d = {n: docs[n]["day"] for n in present}
    order = sorted({s for n in present for s in d[n]["stages"]},
                   key=lambda s: min(d[n]["stages"][s]["order"] for n in present if s in d[n]["stages"]))

    def row(label, cell):
        return [label, *[cell(n) for n in present]]

    def stage_label(stage):
        pipes = {r.get("pipeline") for n in present for r in d[n]["stages"].get(stage, {}).get("runs", []) if r.get("pipeline")}
        return f"{stage} ({', '.join(sorted(pipes))})" if pipes else stage

    def stage_cell(n, stage):
        st = d[n]["stages"].get(stage)
        return "—" if st is None else f"{num(st['seconds'])} s ({pct(st['share'])})"

    rows = [row("reviews landed", lambda n: num(docs[n]["landing"]["rows"])),
            row("texts", lambda n: docs[n]["landing"]["texts"]),
            row("mean text length (characters)", lambda n: num(docs[n]["landing"]["mean_text_chars"])),
            row("wall time of `nlp-batch run` (s)", lambda n: f"**{num(d[n]['seconds'])}**"),
            row("rows/s, whole chain", lambda n: per_s(d[n]["rows_per_second"])),
            row("peak memory (GiB)", lambda n: num(d[n]["peak_memory_gib"], 2)),
            row("settings from the environment", lambda n: ", ".join(
                f"`{k}={v}`" for k, v in (docs[n].get("settings") or {}).items()) or "none"),
            row("exit code", lambda n: num(d[n]["exit_code"])),
            *[row(stage_label(s), lambda n, s=s: stage_cell(n, s)) for s in order],
            row("other (process and Spark start, checks, summary)",
                lambda n: f"{num(d[n]['other']['seconds'])} s ({pct(d[n]['other']['share'])})"),
            row("share of the wall time outside inference", lambda n: f"**{pct(d[n]['non_inference_share'])}**")]
    out += table(["", *[f"`{n}`" for n in present]], rows)
    return out


LAKES = {"parquet_folders": "Parquet folders", "iceberg": "Iceberg"}


def two_sides(name: str, steps_key: str, docs: dict) -> list[str]:
    """A run of a baseline commit against this tree (lake_format, fresh_run): each side's best run,
    every run, the best run's seconds per step, the script's ratio, and whether the sides' counts
    (and the champion's metrics, where recorded) are the same."""
    doc = docs[name]
    before, after = doc.get("sides") or list(LAKES)
    steps = list(dict.fromkeys(k for side in (before, after) for k in ((doc["best"].get(side) or {}).get(steps_key) or {})))

    def row(side):
        best = doc["best"].get(side) or {}
        return [f"{LAKES.get(side, side)} ({'baseline ' + doc['baseline_commit'] if side == before else 'the commit above'})",
                f"**{num(best.get('seconds'))}**", ", ".join(num(r.get("seconds")) for r in doc["runs"][side]),
                *[num((best.get(steps_key) or {}).get(k)) for k in steps]]

    ratio = doc["comparisons"][f"{after}_seconds_over_{before}"]
    same = [f"the same {what} on both sides: {'yes' if doc[key] else '**no**'}"
            for key, what in (("same_counts", "counts"), ("same_champion_metrics", "champion's test metrics"))
            if key in doc]
    return [provenance(name, doc), "",
            *table(["side", "best (s)", "every run (s)", *[f"{k} (s)" for k in steps]], [row(before), row(after)]),
            "", f"{LAKES.get(after, after)} over {LAKES.get(before, before)}, best against best: **{num(ratio, 3)}**"
            + "".join(f"; {s}" for s in same) + "."]


RUN_HEADERS = ["results file", "commit", "machine", "load average"]


def run_cells(name: str, doc: dict) -> list[str]:
    """Which run a row of a before-and-after table is: its results file, commit, machine (rows of two
    machines compare the machines as much as the commits) and load average."""
    m = doc["machine"]
    machine = m["cpu"] + (f" ({m['cpu_family']}/{m['cpu_model']})" if m.get("cpu_family") is not None else "")
    return [f"`results/{name}.json`", f"`{doc['git']['commit'][:7]}`{' (dirty)' if doc['git']['dirty'] else ''}",
            machine, f"{doc['load_average']['start']}–{doc['load_average']['end']}"]


def ingest_before_after(docs: dict) -> list[str]:
    """The ingest benchmark's runs at an earlier commit (results/before/) next to the current results.
    Runs whose census came after the parse timed the two apart (read parse clean, census); since the
    census runs beside the parse, `read` holds both."""
    steps = ("read_parse_clean", "census", "read", "validate", "split_write")
    rows = []
    for name, doc in docs.items():
        ing = doc["ingest"]
        rows.append([*run_cells(name, doc), num(ing["seconds"]), *[num(ing["seconds_by_step"].get(k), 2) for k in steps]])
    return table([*RUN_HEADERS, "seconds", *[f"{k.replace('_', ' ')} (s)" for k in steps]], rows, "llllrrrrrr")


def scoring_before_after(docs: dict) -> list[str]:
    """The scoring benchmark's runs at an earlier commit (results/before/) next to the current results."""
    rows = []
    for name, doc in docs.items():
        sp, cmp = doc["spark"], doc["comparisons"]
        strongest = doc["sklearn"].get(cmp.get("sklearn_strongest") or "", {})
        rows.append([*run_cells(name, doc), num(sp["seconds"], 2), per_s(sp["rows_per_second_per_core"]),
                     per_s(strongest.get("rows_per_second")), f"**{num(cmp.get('spark_per_core_over_sklearn_one_core'), 3)}**"])
    return table([*RUN_HEADERS, "Spark seconds", "Spark rows/s per core",
                  "strongest scikit-learn rows/s (one core)", "ratio"], rows, "llllrrrr")


def day_before_after(docs: dict) -> list[str]:
    """A day's runs at earlier commits (results/before/) next to the current results: the
    seconds of each stage, so that what a change did to one stage shows beside the others' noise."""
    stages = list(dict.fromkeys(s for doc in docs.values() for s in doc["day"]["stages"]))
    rows = []
    for name, doc in docs.items():
        d = doc["day"]
        rows.append([*run_cells(name, doc), num(d["seconds"]),
                     *[num(d["stages"][s]["seconds"]) if s in d["stages"] else "—" for s in stages],
                     num(d["other"]["seconds"]), f"**{pct(d['non_inference_share'])}**"])
    return table([*RUN_HEADERS, "wall (s)", *[f"{s} (s)" for s in stages], "other (s)",
                  "outside inference"], rows, "llll" + "r" * (len(stages) + 3))


def before_and(current: str):
    """The names of a section: the results files under results/before/ of this benchmark, oldest run
    first, then the current one."""
    return lambda docs: tuple(sorted((n for n in docs if n.startswith(f"before/{current}-")),
                                     key=lambda n: docs[n]["measured_at"])) + (current,)


SECTIONS = {"inference": (("inference",), inference), "model_quality": (("model_quality",), model_quality),
            "scoring": (("scoring",), scoring), "ingest": (("ingest",), ingest), "day": (DAYS, day),
            "lake_format": (("lake_format",), lambda docs: two_sides("lake_format", "seconds_by_step", docs)),
            "fresh_run": (("fresh_run",), lambda docs: two_sides("fresh_run", "stages", docs)),
            "fresh_run_before_after": (("fresh_run_before_after",),
                                       lambda docs: two_sides("fresh_run_before_after", "stages", docs)),
            "ingest_before_after": (before_and("ingest"), ingest_before_after),
            "scoring_before_after": (before_and("scoring"), scoring_before_after),
            "day_1m_before_after": (before_and("day_1m"), day_before_after),
            "day_100k_before_after": (before_and("day_100k"), day_before_after)}


def load(results_dir: str) -> dict:
    """Every results file, by name; those under before/ (runs of a script at an earlier commit, kept
    for a before-and-after comparison) as before/NAME."""
    docs = {}
    for sub in ("", "before"):
        folder = os.path.join(results_dir, sub)
        for path in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if path.endswith(".json"):
                with open(os.path.join(folder, path)) as f:
                    docs[os.path.join(sub, path[:-5])] = json.load(f)
    return docs


def block(section: str, docs: dict) -> list[str]:
    names, render = SECTIONS[section]
    names = names(docs) if callable(names) else names
    have = {n: docs[n] for n in names if n in docs}
    if not have:
        return [f"Not measured yet by this harness: `make bench` writes {', '.join(f'`results/{n}.json`' for n in names)}."]
    old = [n for n, d in have.items() if "harness" not in d]
    if old:  # the previous harness's files are all replaced; one that comes back is not rendered as if comparable
        raise SystemExit(f"results/{old[0]}.json has no harness key (a previous harness's file): rerun its script")
    return render(have)


def render(text: str, docs: dict) -> str:
    def replace(m):
        section = m.group(1)
        if section not in SECTIONS:
            raise SystemExit(f"README marker bench:{section}: no such section (known: {', '.join(SECTIONS)})")
        return f"<!-- bench:{section} -->\n" + "\n".join(block(section, docs)) + f"\n<!-- /bench:{section} -->"

    return MARKER.sub(replace, text)


# --- the check -------------------------------------------------------------------------------------------
NUMBER = re.compile(r"(?<![\w.`/-])[+-]?\d[\d,]*(?:\.\d+)?(?![\w`/])(\s?%)?")


def leaves(value, prefix: str = "", skip=()):
    """(dotted key, number) for every number in a results document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                yield from leaves(v, f"{prefix}{k}.", skip)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{prefix}{i}.", skip)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix[:-1], value


def untraced(text: str, docs: dict) -> list[str]:
    """Numbers in the tables of `text` that are no value of any results document (as displayed:
    rounded to the digits shown; a percentage is a share times 100)."""
    values = [v for d in docs.values() for _, v in leaves(d)]
    missing = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        for m in NUMBER.finditer(line):
            shown = m.group(0).rstrip("% ").replace(",", "")
            digits = len(shown.split(".")[1]) if "." in shown else 0
            x, tolerance = float(shown), 0.5 * 10 ** -digits + 1e-9
            scale = 100 if m.group(1) else 1
            if not any(abs(v * scale - x) <= tolerance for v in values):
                missing.append(f"{m.group(0).strip()} in: {line.strip()}")
    return missing


def problems(text: str, docs: dict) -> list[str]:
    out = []
    outside = MARKER.sub("", text)
    out += [f"a table outside the bench markers: {line.strip()}" for line in outside.splitlines() if line.startswith("|")]
    if render(text, docs) != text:
        out.append("the README's tables are not what the results files render to: run benchmarks/render.py")
    out += [f"not a value of any results file: {m}" for m in untraced(text, docs)]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if the README is not in order")
    p.add_argument("--readme", default=README)
    p.add_argument("--results-dir", default=RESULTS)
    args = p.parse_args(argv)
    docs = load(args.results_dir)
    with open(args.readme) as f:
        text = f.read()
    if args.check:
        found = problems(text, docs)
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    new = render(text, docs)
    if new != text:
        with open(args.readme, "w") as f:
            f.write(new)
    print(f"{os.path.relpath(args.readme)}: {len(MARKER.findall(new))} blocks from {len(docs)} results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

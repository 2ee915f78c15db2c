"""The benchmarks' bookkeeping: a results file carries its provenance, and the README's tables are
rendered from the results files (no figure typed by hand). Nothing here measures anything."""
from __future__ import annotations

import argparse
import json

from benchmarks import common, render


def test_a_results_file_says_which_run_of_which_script_on_which_machine(tmp_path):
    args = argparse.Namespace(rows=10, only=None, results_dir=str(tmp_path))
    path = common.run_of("benchmarks/ingest_benchmark.py", args).write("ingest", {"figure": 1.5})
    doc = json.loads(open(path).read())
    assert doc["script"] == "benchmarks/ingest_benchmark.py" and doc["args"] == {"rows": 10, "only": None}
    assert set(doc["machine"]) >= {"cpu", "cores", "memory_gib"} and len(doc["git"]["commit"]) == 40
    assert set(doc["load_average"]) == {"start", "end"} and doc["figure"] == 1.5
    # the CPU's generation is written down and shown: machines sold under one name differ
    cpu = doc["machine"]
    assert cpu["cpu_family"] and cpu["cpu_model"] is not None and isinstance(cpu["vector_extensions"], list)
    assert f"(family {cpu['cpu_family']}, model {cpu['cpu_model']};" in render.provenance("ingest", doc)


def test_a_partial_run_never_lands_among_the_results():
    args = argparse.Namespace(only="a,b", results_dir=common.RESULTS)
    assert common.run_of("benchmarks/inference_benchmark.py", args).results_dir != common.RESULTS


def test_the_readme_tables_are_what_the_results_files_say():
    text = open(render.README).read()
    assert render.problems(text, render.load(render.RESULTS)) == []


def test_a_typed_table_or_figure_is_caught():
    text, docs = open(render.README).read(), render.load(render.RESULTS)
    assert any("outside the bench markers" in p for p in render.problems(text + "\n| typed | 1.19 |\n", docs))
    table_line = next(line for block in render.MARKER.finditer(text) for line in block.group(0).splitlines()
                      if line.startswith("| `"))
    edited = text.replace(table_line, table_line.rstrip(" |") + " | 123456.7 |")
    found = render.problems(edited, docs)
    assert any("not what the results files render to" in p for p in found)
    assert any("123456.7" in p for p in found)

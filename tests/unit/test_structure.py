"""The package's shape: no import cycles (at module level or hidden inside functions), and the
settings module imports no pipeline code."""
import ast

from spark_jobs.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "spark_jobs"
MODULES = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports anywhere in its body, functions included."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spark_jobs."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("spark_jobs.")}
    return found & MODULES


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_has_no_import_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    assert graph["train"] and graph["cli"]  # the walk sees imports, function-level ones included
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_settings_imports_only_the_vocabulary():
    assert imports_of("settings") == {"vocabulary"}
    assert imports_of("vocabulary") == set()

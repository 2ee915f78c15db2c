"""DuckDB with the extensions the lake needs, loaded from their PyPI wheels (duckdb-extension-*,
pinned with duckdb): DuckDB would otherwise download them, and these machines reach no extension
repository."""
from __future__ import annotations

import importlib
import os

EXTENSIONS = ("avro", "iceberg")  # iceberg reads its manifests with avro


def extension_files() -> list[str]:
    import duckdb

    version = "v" + duckdb.__version__
    files = []
    for name in EXTENSIONS:
        package = importlib.import_module(f"duckdb_extension_{name}")
        files.append(os.path.join(os.path.dirname(package.__file__), "extensions", version, f"{name}.duckdb_extension"))
    return files


def load_extensions(con) -> None:
    for path in extension_files():
        con.execute("LOAD '" + path.replace("'", "''") + "'")  # LOAD takes no parameters; the path is ours


def extension_directory() -> str:
    """A folder laid out as DuckDB's extension directory (<dir>/v<version>/<platform>/), linking the
    wheels' files: dbt-duckdb's `settings: {extension_directory: ...}` then autoloads them by name."""
    import duckdb

    from .settings import PROJECT_ROOT

    platform = duckdb.execute("PRAGMA platform").fetchone()[0]
    folder = os.path.join(PROJECT_ROOT, ".cache", "duckdb_extensions")
    target = os.path.join(folder, "v" + duckdb.__version__, platform)
    os.makedirs(target, exist_ok=True)
    for path in extension_files():
        link = os.path.join(target, os.path.basename(path))
        if os.path.realpath(link) != os.path.realpath(path):
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(path, link)
    return folder


def connect(path: str = ":memory:", read_only: bool = False):
    import duckdb

    con = duckdb.connect(path, read_only=read_only, config={"autoinstall_known_extensions": "false"})
    load_extensions(con)
    return con

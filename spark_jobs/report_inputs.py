"""Everything the monitoring report reads, in one place: the warehouse through the connection its dbt
target names, the lake's quality zone, the MLflow registry, and the price files.

The warehouse (marts, and the staging/intermediate views they are built from) is read with the SQL of
QUERIES. Each statement is written once and runs unchanged on DuckDB (target `local`), Athena
(PyAthena) and Redshift (redshift_connector); tests/dbt/test_report_sql.py parses it in each
dialect with sqlglot and runs it on DuckDB and, for Redshift's dialect, on PostgreSQL. Parameters are
`:name` placeholders filled with literals (dates YYYY-MM-DD and numbers only), so the text a test
proves is the text an engine runs.

The connection comes from dbt's own profiles.yml, rendered for the target with the environment the
dbt stage gives dbt (warehouse.dbt_env): the report reads what `make dbt` built, wherever that is.
Passwords are never rendered into the notebook's parameters: redshift_connector reads
NLP_REDSHIFT_PASSWORD (or IAM credentials from the AWS chain) when it connects.
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import monitoring, storage
from .lake import Lake
from .settings import Settings

# name -> (SQL, column types). {marts} is the schema of the marts; :name a parameter.
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "scored_dates": (
        "select distinct cast(ingest_date as varchar) as d from {marts}.fct_predictions "
        "where is_current order by d", {"d": "str"}),
    "model_version": (
        "select max(model_version) as v from {marts}.fct_predictions "
        "where is_current and ingest_date = cast(:run_date as date)", {"v": "int"}),
    "data_quality": (
        "select cast(ingest_date as varchar) as d, landed, curated, quarantined, duplicates, top_reasons "
        "from {marts}.mart_data_quality "
        "where ingest_date between cast(:first_date as date) and cast(:run_date as date)",
        {"d": "str", "landed": "int", "curated": "int", "quarantined": "int", "duplicates": "int",
         "top_reasons": "str"}),
    "predictions": (
        "select cast(ingest_date as varchar) as d, source, department, product_id, predicted_label as label, "
        "confidence from {marts}.fct_predictions "
        "where is_current and ingest_date between cast(:first_date as date) and cast(:run_date as date)",
        {"d": "str", "source": "str", "department": "str", "product_id": "str", "label": "str",
         "confidence": "float"}),
    # At most :per_date texts of each date, the first by text hash: a sample that is the same on every
    # run and engine, and a read that does not grow with the day (a week of million-row days would not
    # fit in the report's memory).
    "documents": (
        "select d, text, text_hash from ("
        "select cast(ingest_date as varchar) as d, text, text_hash, "
        "row_number() over (partition by ingest_date order by text_hash, review_id) as n "
        "from {marts}.stg_documents "
        "where ingest_date between cast(:first_date as date) and cast(:last_date as date)) as ranked "
        "where n <= :per_date order by d, text_hash",
        {"d": "str", "text": "str", "text_hash": "str"}),
    "flags": (
        "select metric, value from {marts}.mart_monitoring_metrics "
        "where producer = 'infer' and section = 'outputs' and ingest_date = cast(:run_date as date) "
        "and model_version = :version", {"metric": "str", "value": "float"}),
    "model_performance": (
        "select cast(ingest_date as varchar) as d, model_version, scored_as, n_labelled, accuracy, macro_f1 "
        "from {marts}.mart_model_performance "
        "where ingest_date between cast(:first_date as date) and cast(:run_date as date)",
        {"d": "str", "model_version": "int", "scored_as": "str", "n_labelled": "int", "accuracy": "float",
         "macro_f1": "float"}),
    "confusion": (
        "select true_label, predicted_label, count(*) as n from {marts}.int_labelled_predictions "
        "where scored_as = 'champion' and ingest_date = cast(:run_date as date) and model_version = :version "
        "group by true_label, predicted_label", {"true_label": "str", "predicted_label": "str", "n": "int"}),
    "champion_challenger": (
        "select cast(ingest_date as varchar) as d, challenger_version, agreement_rate, n_compared, "
        "champion_accuracy, challenger_accuracy from {marts}.mart_champion_challenger "
        "where champion_version = :version "
        "and ingest_date between cast(:first_date as date) and cast(:run_date as date) "
        "order by d, challenger_version",
        {"d": "str", "challenger_version": "int", "agreement_rate": "float", "n_compared": "int",
         "champion_accuracy": "float", "challenger_accuracy": "float"}),
    "pipeline_runs": (
        "select stage, cast(batch_date as varchar) as d, status, is_failure, attempt, seconds, rows_out, "
        "rows_per_second, message from {marts}.mart_pipeline_runs "
        "where batch_date between cast(:first_date as date) and cast(:run_date as date) order by started_at",
        {"stage": "str", "d": "str", "status": "str", "is_failure": "bool", "attempt": "int", "seconds": "float",
         "rows_out": "float", "rows_per_second": "float", "message": "str"}),
}
DIALECTS = {"duckdb": "duckdb", "athena": "athena", "redshift": "redshift"}   # connection type -> sqlglot dialect
_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_TEXT = re.compile(r"[0-9A-Za-z_.:-]*")


def literal(value: Any) -> str:
    """A parameter as SQL: whole numbers as they are, short plain strings (dates, names) quoted. Anything
    else is refused: the report only ever binds dates and model versions."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"report query parameter {value!r}: only whole numbers and plain strings are bound")
    if isinstance(value, int):
        return str(value)
    if not _SAFE_TEXT.fullmatch(value):
        raise ValueError(f"report query parameter {value!r}: only letters, digits and _ . : - are bound")
    return f"'{value}'"


def statement(name: str, marts: str, **params: Any) -> str:
    """The SQL of QUERIES[name] with its schema and parameters filled in, as it is sent."""
    if not _IDENTIFIER.fullmatch(marts):
        raise ValueError(f"marts schema {marts!r} is not a plain identifier")
    sql = QUERIES[name][0].format(marts=marts)
    missing = sorted(set(_PLACEHOLDER.findall(sql)) - set(params))
    if missing:
        raise ValueError(f"report query {name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: literal(params[m.group(1)]), sql)


def typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """The same column types whichever engine answered (drivers differ: Decimal, date objects, None)."""
    out = frame.copy()
    for column, kind in types.items():
        values = out[column]
        if kind == "str":
            values = values.astype(object).where(values.notna(), None)
            # str() one value at a time only where the driver returned something else: a day's texts,
            # a million of them, usually come as strings already
            if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
                values = values.map(lambda v: v if v is None else str(v))
            out[column] = values
        elif kind == "float":
            out[column] = pd.to_numeric(values, errors="coerce").astype(float)
        elif kind == "int":
            out[column] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif kind == "bool":
            out[column] = values.map(lambda v: None if v is None or v is pd.NA else str(v).lower() in ("true", "1"))
            out[column] = out[column].astype("boolean")
    return out


# --- the connection of a dbt target ----------------------------------------------------------------------
def dbt_profile(settings: Settings) -> dict:
    """The output of dbt/profiles.yml for settings.dbt_target, rendered as dbt renders it (env_var with
    its default, `~`, `as_number`) with the environment the dbt stage gives dbt."""
    import jinja2
    import yaml

    from .warehouse import dbt_env

    env = dbt_env(settings)
    with open(os.path.join(settings.path("dbt_project_dir"), "profiles.yml"), encoding="utf-8") as f:
        profiles = yaml.safe_load(f)
    outputs = next(iter(profiles.values()))["outputs"]
    if settings.dbt_target not in outputs:
        raise ValueError(f"dbt target {settings.dbt_target!r} is not in dbt/profiles.yml ({', '.join(outputs)})")
    jinja = jinja2.Environment()
    jinja.globals["env_var"] = lambda name, default=None: env.get(name, default)
    jinja.filters["as_number"] = lambda v: int(v) if str(v).isdigit() else float(v)
    rendered = {}
    for key, value in outputs[settings.dbt_target].items():
        if isinstance(value, str) and "{{" in value:
            value = jinja.from_string(value).render()
            value = int(value) if key == "port" else value
        rendered[key] = value
    rendered["lake_schema"] = env.get("NLP_LAKE_SCHEMA", "nlp_lake")
    return rendered


def connection_of(settings: Settings) -> dict:
    """What the notebook needs to connect (no secrets): the `warehouse` parameter."""
    profile = dbt_profile(settings)
    kind = profile["type"]
    if kind == "duckdb":
        return {"type": "duckdb", "path": settings.path("warehouse_path")}
    if kind == "athena":
        return {"type": "athena", "region_name": profile["region_name"], "s3_staging_dir": profile["s3_staging_dir"],
                "work_group": profile["work_group"], "schema": profile["schema"]}
    if kind == "redshift":
        return {"type": "redshift", "host": profile["host"], "port": profile["port"], "user": profile["user"],
                "database": profile["dbname"], "schema": profile["schema"], "method": profile["method"],
                "cluster_id": profile.get("cluster_id") or None, "region": profile["region"]}
    raise ValueError(f"dbt target {settings.dbt_target!r} is a {kind} warehouse; the report reads duckdb "
                     "(local), athena or redshift")


@dataclass
class Warehouse:
    """A DB-API connection to the marts, and the statements sent on it (in order)."""
    kind: str
    connection: Any
    marts: str
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return DIALECTS[self.kind]

    def frame(self, name: str, **params: Any) -> pd.DataFrame:
        sql = statement(name, self.marts, **params)
        self.history.append((name, sql))
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            if self.kind == "duckdb":  # columnar: a day's million texts without a Python tuple per row
                frame = cursor.fetch_df()
            else:
                columns = [d[0] for d in cursor.description]
                frame = pd.DataFrame.from_records(list(cursor.fetchall()), columns=columns)
        finally:
            cursor.close()
        return typed(frame, QUERIES[name][1])

    def close(self) -> None:
        self.connection.close()


def connect(warehouse: dict) -> Warehouse:
    """Opens the connection `connection_of` described."""
    kind = warehouse["type"]
    if kind == "duckdb":
        import duckdb

        if not os.path.exists(warehouse["path"]):
            raise FileNotFoundError(f"no warehouse at {warehouse['path']}; build it with `make dbt`")
        return Warehouse(kind, duckdb.connect(warehouse["path"], read_only=True), "main")
    if kind == "athena":
        from pyathena import connect as athena

        return Warehouse(kind, athena(s3_staging_dir=warehouse["s3_staging_dir"], work_group=warehouse["work_group"],
                                      region_name=warehouse["region_name"], schema_name=warehouse["schema"]),
                         warehouse["schema"])
    if kind == "redshift":
        import redshift_connector

        iam = warehouse["method"] == "iam"
        con = redshift_connector.connect(
            host=warehouse["host"], port=int(warehouse["port"]), database=warehouse["database"],
            user="" if iam else warehouse["user"], password="" if iam else os.environ.get("NLP_REDSHIFT_PASSWORD", ""),
            iam=iam, db_user=warehouse["user"] if iam else None, cluster_identifier=warehouse.get("cluster_id"),
            region=warehouse.get("region"))
        return Warehouse(kind, con, warehouse["schema"])
    raise ValueError(f"warehouse type {kind!r}: the report reads duckdb, athena or redshift")


# --- what the report reads -------------------------------------------------------------------------------
@dataclass
class Window:
    """The day reported and the earlier scored days it is compared with."""
    run_date: str
    baseline: list[str]

    @property
    def dates(self) -> list[str]:
        return self.baseline + [self.run_date]


def window_of(scored: list[str], run_date: str, baseline_days: int) -> Window:
    if run_date not in scored:
        raise ValueError(f"no predictions for run_date {run_date} in the warehouse "
                         f"(dates scored: {', '.join(scored) or 'none'})")
    return Window(run_date, [d for d in scored if d < run_date][-baseline_days:] if baseline_days > 0 else [])


@dataclass
class Lineage:
    """What the registry says about the version that scored the day, and the latest retraining."""
    model_name: str
    version: int
    tags: dict
    retrained: dict | None   # version, trigger date, reason, alias of the newest retrained version

    @property
    def training_dates(self) -> list[str]:
        return sorted(d for d in self.tags.get("training_dates", "").split(",") if d)

    @property
    def test_macro_f1(self) -> float | None:
        return float(self.tags["test_macro_f1"]) if "test_macro_f1" in self.tags else None


def lineage(mlflow_uri: str, model_name: str, version: int) -> Lineage:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    tags = dict(client.get_model_version(model_name, str(version)).tags)
    retrained = []
    for mv in client.search_model_versions(f"name='{model_name}'"):
        if mv.tags.get("retrain_trigger_date"):
            retrained.append({"version": int(mv.version), "trigger_date": mv.tags["retrain_trigger_date"],
                              "reason": mv.tags.get("retrain_reason", ""), "aliases": sorted(mv.aliases)})
    return Lineage(model_name, int(version), tags, max(retrained, key=lambda r: r["version"]) if retrained else None)


def validation(lake_root: str, date: str) -> dict | None:
    """The ingest gate's Great Expectations result of the date (lake quality zone), if there is one."""
    uri = storage.join(Lake(Settings(lake_root=lake_root)).partition("quality", date), "validation.json")
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def cluster_price(pricing_file: str, profile: str) -> tuple[float, float]:
    """(dollars per hour, typical hours per run) of an EMR profile: emr/pricing.json and the
    profiles.json beside it, priced by monitoring.profile_price."""
    with open(pricing_file, encoding="utf-8") as f:
        pricing = json.load(f)
    profiles_file = os.path.join(os.path.dirname(pricing_file), "profiles.json")
    with open(profiles_file, encoding="utf-8") as f:
        profiles = json.load(f)
    try:
        return monitoring.profile_price(pricing, profiles, profile)
    except KeyError:
        raise ValueError(f"emr_profile={profile!r} is not in {profiles_file}") from None


@dataclass
class ReportData:
    window: Window
    lineage: Lineage
    quality: pd.DataFrame
    predictions: pd.DataFrame
    documents: pd.DataFrame
    training_documents: pd.DataFrame
    flags: dict
    validation: dict | None
    performance: pd.DataFrame
    confusion: pd.DataFrame
    pairs: pd.DataFrame
    runs: pd.DataFrame


def load(wh: Warehouse, run_date: str, baseline_days: int, mlflow_uri: str, model_name: str,
         lake_root: str, text_sample: int) -> ReportData:
    """Everything the report's sections compute from, read once, in a fixed order. The texts are a
    sample: at most `text_sample` of each date (QUERIES["documents"])."""
    window = window_of(wh.frame("scored_dates").d.tolist(), run_date, baseline_days)
    version = int(wh.frame("model_version", run_date=run_date).v[0])
    span = {"first_date": window.dates[0], "run_date": run_date}
    # The registry's client takes seconds to import: it does while the warehouse answers.
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(lineage, mlflow_uri, model_name, version)
        docs = wh.frame("documents", first_date=window.dates[0], last_date=run_date, per_date=text_sample)
        predictions = wh.frame("predictions", **span)
        lin = asked.result()
    training = lin.training_dates
    train_docs = (wh.frame("documents", first_date=training[0], last_date=training[-1], per_date=text_sample)
                  if training else pd.DataFrame(columns=["d", "text", "text_hash"]))
    flags = wh.frame("flags", run_date=run_date, version=version)
    return ReportData(
        window=window, lineage=lin,
        quality=wh.frame("data_quality", **span),
        predictions=predictions,
        documents=docs[docs.d.isin(window.dates)].reset_index(drop=True),
        training_documents=train_docs[train_docs.d.isin(training)].reset_index(drop=True),
        flags={m.removeprefix("flagged_"): int(v) for m, v in zip(flags.metric, flags.value) if v},
        validation=validation(lake_root, run_date),
        performance=wh.frame("model_performance", **span),
        confusion=wh.frame("confusion", run_date=run_date, version=version),
        pairs=wh.frame("champion_challenger", version=version, **span),
        runs=wh.frame("pipeline_runs", **span))

"""The one settings object: every path, name, threshold and Spark knob lives here.

Values come from, in increasing priority: the defaults below, environment variables
(`NLP_<FIELD>` upper-cased, e.g. `NLP_LAKE_ROOT`), and CLI flags (`--lake-root`).
Jobs, notebooks (through papermill parameters) and dbt (through env vars the
orchestrator sets) all read from this object, never from literals of their own.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .vocabulary import PIPELINES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------------
    target: str = _doc("local (embedded stack) or emr", default="local")
    lake_root: str = _doc("root of the data lake: a folder or an s3a:// URI", default="lake")
    lake_catalog: str = _doc("catalog of the lake's Iceberg tables: local (Iceberg's JDBC catalog on a SQLite file) "
                             "or glue (the Glue Data Catalog; Athena and Redshift read the same tables)", default="local")
    lake_catalog_db: str = _doc("the local catalog's SQLite file (empty: catalog.db in a local lake_root)", default="")
    lake_schema: str = _doc("namespace (Glue database) of the lake's tables", default="nlp_lake")
    snapshot_retention_days: int = _doc("`make maintain` expires table snapshots older than this (time travel "
                                        "reaches back that far)", default=14)
    orphan_file_days: int = _doc("`make maintain` deletes files no snapshot references once older than this",
                                 default=3)
    mlflow_tracking_uri: str = _doc("MLflow tracking/registry store", default="sqlite:///mlflow.db")
    mlflow_artifact_root: str = _doc("where MLflow keeps model artifacts", default="mlartifacts")
    warehouse_path: str = _doc("DuckDB file the dbt `local` target builds", default="warehouse/nlp.duckdb")
    reports_dir: str = _doc("monitoring reports, one folder per run date", default="reports")
    expectations_dir: str = _doc("Great Expectations suites (JSON)", default="expectations")
    sources_file: str = _doc("source mappings to the canonical document schema", default="conf/sources.yml")
    dbt_project_dir: str = _doc("the dbt project", default="dbt")
    dbt_target: str = _doc("dbt target: local (duckdb), athena or redshift", default="local")
    notebooks_dir: str = _doc("report notebooks", default="notebooks")
    log_dir: str = _doc("where a command that fails unexpectedly writes its trace", default="logs")

    # --- inputs you may point at your own copies ----------------------------------------
    corpus_path: str = _doc(
        "review corpus the replay lands (CSV, optionally .gz)",
        default=str(SHARED / "data" / "womens_clothing_ecommerce_reviews.csv.gz"),
    )
    embeddings_model_dir: str = _doc(
        "sentence-embedding model folder: model.onnx + assets/vocab.txt",
        default=str(SHARED / "models" / "all-MiniLM-L6-v2-onnx"),
    )

    # --- replay ----------------------------------------------------------------------------
    replay_start: str = _doc("first ingest_date of the replay", default="2026-11-01")
    replay_days: int = _doc("how many daily batches the replay splits the corpus into", default=5)
    replay_limit: int = _doc("land at most this many corpus rows (0 = all)", default=0)
    synthetic_rows: int = _doc("rows per day the synthetic generator makes without a corpus", default=200)

    # --- ingest gate ---------------------------------------------------------------------------
    source: str = _doc("source mapping used when landing a file", default="reviews")
    max_text_chars: int = _doc("texts longer than this are cut to it at ingest (and flagged)", default=10000)
    max_lost_share: float = _doc(
        "a batch is blocked when more than this share of its records is lost in unreadable bytes (a cut gzip "
        "stream, a Parquet file without its footer: losses nobody can count are a share of 1)", default=0.0)
    critical_max_failing_share: float = _doc(
        "a critical row-level expectation blocks the batch when more than this share of rows fails it",
        default=0.2,
    )

    # --- model -----------------------------------------------------------------------------------
    model_name: str = _doc("registered model name", default="review_sentiment")
    embeddings_batch_size: int = _doc(
        "rows per ONNX call in the embeddings annotator (1 = exact mean pooling in Spark NLP 5.5)",
        default=1,
    )
    max_sentence_length: int = _doc("word pieces per text fed to the encoder", default=256)
    onnx_int8: bool = _doc(
        "encode with a dynamically int8-quantised copy of the ONNX model, made once under .cache/models (CPU: "
        "nearly twice the rate with VNNI, the same macro-F1 on the frozen split, benchmarks/README.md); false: "
        "the fp32 model as it is (needed with gpu)",
        default=True,
    )
    embeddings_store: bool = _doc(
        "keep each text's sentence embedding in the lake's embeddings table (about 1.5 KB a document) so that "
        "training, shadow scoring, retraining and the promotion gate encode a text once per encoder",
        default=True,
    )
    onnx_threads: int = _doc(
        "ONNX Runtime intra-op threads per Spark task (1 with one task per core measured fastest; 0 = Spark NLP's default)",
        default=1,
    )
    scoring_partitions: int = _doc("partitions to score in parallel (0 = one per Spark core)", default=0)
    train_pipelines: str = _doc("pipelines `make train` fits, in order, each through the promotion gate "
                                "(tfidf_logreg, minilm_logreg)", default="tfidf_logreg,minilm_logreg")
    train_max_iter: int = _doc("logistic regression iterations", default=200)
    tfidf_reg_param: float = _doc("L2 regularisation of the TF-IDF pipeline's logistic regression", default=0.0001)
    minilm_reg_param: float = _doc("L2 regularisation of the MiniLM pipeline's logistic regression", default=0.01)
    class_weighting: str = _doc("balanced (weight classes by inverse frequency) or none", default="balanced")
    promotion_margin: float = _doc("macro-F1 a candidate must gain over the champion, on the same test set, "
                                   "to replace it", default=0.005)
    shadow_share: float = _doc("share of each day's rows the shadow challenger scores: a deterministic sample by "
                               "review id (the same documents for every challenger), 1 = all, 0 = none; its "
                               "agreement and quality figures are measured on that sample", default=1.0)
    shadow_max_rows: int = _doc("most rows of a day the shadow challenger scores: above it, the sample by review "
                                "id shrinks to about this many (0 = no cap)", default=20_000)
    shadow_skip_margin: float = _doc("the challenger scores nothing when the promotion gate measured its macro-F1 "
                                     "this far below the champion's (negative: never skip)", default=-1.0)
    model_version: str = _doc("model version for `make promote` (empty = the challenger)", default="")
    train_max_rows: int = _doc("cap on training rows, sampled deterministically (0 = all)", default=0)
    test_fraction: float = _doc("share of labelled rows held out for testing (by a hash of review_id)", default=0.2)
    validation_fraction: float = _doc("share of labelled rows held out for validation", default=0.1)
    seed: int = _doc("seed for every random choice", default=42)

    # --- Spark -------------------------------------------------------------------------------------
    spark_master: str = _doc("Spark master", default="local[*]")
    spark_driver_memory: str = _doc("driver memory (local mode runs everything in the driver)", default="6g")
    spark_shuffle_partitions: int = _doc("spark.sql.shuffle.partitions", default=4)
    jars_dir: str = _doc("folder of resolved JVM jars (make setup fills it)", default=".cache/jars")
    jvm_class_archive_dir: str = _doc("local runs: folder of the JVM's class-data archive (the classes a first run "
                                      "loaded, which later runs map instead of loading them again; one per Java "
                                      "and jar set); empty = none", default=".cache/jvm")
    gpu: bool = _doc("ask Spark for GPU resources (the spark-nlp-gpu jar comes with the EMR gpu profile)",
                     default=False)
    gpu_task_amount: float = _doc("share of a GPU one task takes (1/8: eight tasks share an executor's GPU, "
                                  "so CPU-bound stages still use every core)", default=0.125)

    # --- AWS deployment: emr/ (the stack, the launcher `python -m nlp_emr`, `make deploy|run|preflight TARGET=emr`) --
    aws_region: str = _doc("AWS region of the deployment", default="us-east-1")
    aws_bucket: str = _doc("S3 bucket of the lake, code artifacts, logs and reports (make deploy needs it; later "
                           "commands read it from the stack)", default="")
    aws_stack_name: str = _doc("CloudFormation stack, and prefix of every AWS resource name", default="nlp-batch")
    aws_schedule: str = _doc("EventBridge schedule that starts the pipeline (it processes that day's landings)",
                             default="cron(30 23 * * ? *)")
    aws_maintain_after_run: bool = _doc("every pipeline run on EMR ends with `maintain` on its cluster (compaction, "
                                        "snapshot expiry, orphan files)", default=True)
    aws_notify_email: str = _doc("e-mail address subscribed to the failure notifications (empty = none)", default="")
    aws_vpc_id: str = _doc("VPC of the clusters and the registry database (make deploy)", default="")
    aws_db_subnet_ids: str = _doc("comma-separated subnets, in two or more availability zones, of the registry "
                                  "database (make deploy)", default="")
    emr_profile: str = _doc("EMR cluster profile from emr/profiles.json: gpu or cpu", default="gpu")
    emr_subnet_id: str = _doc("private subnet of the clusters, tagged for-use-with-amazon-emr-managed-policies=true",
                              default="")
    emr_tls_certificates: str = _doc("s3:// URI of the PEM zip for EMR in-transit encryption (empty = off)",
                                     default="")
    emr_wheelhouse_dir: str = _doc("wheels of emr/requirements-*.lock that make deploy uploads for the cluster "
                                   "nodes (make emr-artifacts fills it)", default=".cache/emr/wheelhouse")
    emr_jars_dir: str = _doc("jar bundles (cpu/, gpu/) of jars/pom.xml that make deploy uploads (make "
                             "emr-artifacts fills it)", default=".cache/emr/jars")
    emr_poll_seconds: int = _doc("seconds between status checks of a running step, cluster or execution", default=30)
    sfn_retry_interval_seconds: int = _doc("seconds between the attempts (3 at most) of a failed stage", default=60)
    emr_stage_timeout_seconds: int = _doc("a stage (all its attempts) running longer fails the run", default=7200)
    emr_cluster_start_polls: int = _doc("status checks a cluster may take to start before the run fails",
                                        default=60)
    athena_workgroup: str = _doc("Athena workgroup dbt runs in (on EMR: the stack's)", default="primary")
    athena_schema: str = _doc("Glue database dbt builds the marts in (on EMR: the stack's)", default="nlp_marts")

    # --- monitoring report: spark_jobs/report.py, spark_jobs/monitoring.py, notebooks/monitoring_report.ipynb --
    # Each threshold crossed becomes an alert of that severity in reports/<date>/alerts.json; a critical
    # one makes `report` exit 9. Calibrated on review days (well below) against a tweet day (far above).
    report_baseline_days: int = _doc("earlier ingest dates the report compares a day with (its baseline window)",
                                     default=7)
    report_sample_size: int = _doc("texts per day, and from the champion's training dates, embedded for the "
                                   "embedding drift", default=128)
    report_text_sample: int = _doc("texts of each date the report reads for its text statistics (token, length "
                                   "and embedding drift, out-of-vocabulary rate): the first by text hash, the "
                                   "same on every run; a day with fewer is read whole", default=20_000)
    report_sns_topic_arn: str = _doc("SNS topic the report publishes its alerts to (empty = none)", default="")
    report_pricing_file: str = _doc("instance prices for the cost estimate; the cluster profile is emr_profile "
                                    "in profiles.json beside it", default="emr/pricing.json")
    low_confidence: float = _doc("a prediction below this confidence counts as low-confidence", default=0.5)
    batch_size_change_warning: float = _doc("warn when the batch size differs from the baseline median by more "
                                            "than this share of it", default=0.5)
    quarantine_share_warning: float = _doc("warn above this share of the batch quarantined", default=0.1)
    quarantine_share_critical: float = _doc("critical above this share of the batch quarantined", default=0.2)
    duplicate_share_warning: float = _doc("warn above this share of the batch dropped as duplicates", default=0.05)
    low_confidence_share_warning: float = _doc("warn above this share of low-confidence predictions", default=0.3)
    low_confidence_share_critical: float = _doc("critical above this share of low-confidence predictions",
                                                default=0.6)
    psi_warning: float = _doc("warn above this PSI of confidence or text length (0.1: moderate shift)", default=0.1)
    psi_critical: float = _doc("critical above this PSI of confidence or text length (0.2: significant shift)",
                               default=0.2)
    label_js_warning: float = _doc("warn above this Jensen-Shannon distance of the label mix", default=0.1)
    label_js_critical: float = _doc("critical above this Jensen-Shannon distance of the label mix", default=0.2)
    token_js_warning: float = _doc("warn above this Jensen-Shannon distance of the token distribution", default=0.2)
    token_js_critical: float = _doc("critical above this Jensen-Shannon distance of the token distribution",
                                    default=0.3)
    oov_rate_warning: float = _doc("warn above this share of tokens outside the training vocabulary", default=0.1)
    oov_rate_critical: float = _doc("critical above this share of tokens outside the training vocabulary",
                                    default=0.2)
    embedding_distance_warning: float = _doc("warn above this cosine distance of the day's mean embedding from "
                                             "the training centroid", default=0.05)
    embedding_distance_critical: float = _doc("critical above this cosine distance of the day's mean embedding "
                                              "from the training centroid", default=0.1)
    macro_f1_drop_warning: float = _doc("warn when the day's macro-F1 is this far below the champion's test "
                                        "macro-F1", default=0.05)
    macro_f1_drop_critical: float = _doc("critical when the day's macro-F1 is this far below the champion's "
                                         "test macro-F1", default=0.15)
    challenger_agreement_warning: float = _doc("warn when champion and shadow challenger agree on fewer than this "
                                               "share of the day's texts", default=0.8)
    run_seconds_warning: float = _doc("warn when a batch's stage runs took longer than this in all (seconds): the "
                                      "run's duration budget", default=7200.0)
    dollars_per_million_texts_warning: float = _doc("warn when scoring on the EMR profile would cost more than this "
                                                    "many dollars per million texts at the measured throughput",
                                                    default=50.0)
    report_segment_min_rows: int = _doc("drift per department and per product is computed for segments with at "
                                        "least this many predictions on the day and in the baseline", default=30)
    # --- end of the monitoring report block --------------------------------------------------------------

    # --- metrics out: spark_jobs/metrics.py (every stage run and report) ----------------------------------
    cloudwatch_metrics: bool = _doc("also publish every stage run's and report's metrics to CloudWatch "
                                    "(PutMetricData; on EMR the launcher turns it on); they always land in the "
                                    "lake's metrics zone", default=False)
    cloudwatch_namespace: str = _doc("CloudWatch namespace of the metrics (on EMR: the stack's name, which its "
                                     "alarms and dashboard read)", default="nlp-batch")

    # --- retraining: spark_jobs/retrain.py (`make retrain DATE=D`, and `make run` after a critical report) --
    retrain_on: str = _doc("metrics whose critical alert in a report starts a retraining (comma-separated rule "
                           "metrics of spark_jobs/monitoring.py)", default="macro_f1_drop,oov_rate,embedding_distance")
    retrain_auto: bool = _doc("`make run` retrains after a report whose critical alerts the policy accepts "
                              "(false: only `make retrain` does)", default=True)
    retrain_window_days: int = _doc("the recent labelled dates a retraining takes: those within this many days "
                                    "up to the alerted date", default=7)
    retrain_history_days: int = _doc("labelled dates before the window that a retraining adds as history "
                                     "(0 = every earlier date)", default=0)
    retrain_min_labelled_rows: int = _doc("a retraining needs at least this many labelled rows in its window",
                                          default=100)
    retrain_cooldown_days: int = _doc("no retraining for an alerted date less than this many days after the one "
                                      "that caused the last retraining", default=7)

    # --- per run ---------------------------------------------------------------------------------------
    date: str = _doc("ingest_date to process (YYYY-MM-DD); empty = every pending date", default="")

    # ------------------------------------------------------------------------------------------------------
    def resolve(self, value: str) -> str:
        """A local path relative to the project root becomes absolute; URIs stay as they are."""
        if "://" in value:
            return value
        p = Path(value)
        return str(p if p.is_absolute() else (PROJECT_ROOT / p).resolve())

    def path(self, name: str) -> str:
        return self.resolve(getattr(self, name))

    @property
    def mlflow_uri(self) -> str:
        uri = self.mlflow_tracking_uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            return "sqlite:///" + self.resolve(uri[len("sqlite:///"):])
        return uri

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> "Settings":
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self.model_name):
            raise SettingsError(f"setting model_name={self.model_name!r}: letters, digits, '_', '.' and '-' only")
        if self.lake_catalog not in ("local", "glue"):
            raise SettingsError(f"setting lake_catalog={self.lake_catalog!r}: expected 'local' or 'glue'")
        if self.lake_catalog == "local" and "://" in self.lake_root and not self.lake_catalog_db:
            raise SettingsError(f"setting lake_catalog_db: a local catalog of a lake at {self.lake_root} needs its "
                                "SQLite file named (or lake_catalog=glue)")
        if self.target not in ("local", "emr"):
            raise SettingsError(f"setting target={self.target!r}: expected 'local' or 'emr'")
        if self.date:
            _check_date("date", self.date)
        _check_date("replay_start", self.replay_start)
        if not 0 <= self.shadow_share <= 1:
            raise SettingsError(f"setting shadow_share={self.shadow_share}: expected a share between 0 and 1")
        if self.shadow_max_rows < 0:
            raise SettingsError(f"setting shadow_max_rows={self.shadow_max_rows}: expected 0 (no cap) or more rows")
        if not 0 <= self.max_lost_share <= 1:
            raise SettingsError("setting max_lost_share must be between 0 and 1")
        if not 0 <= self.critical_max_failing_share <= 1:
            raise SettingsError("setting critical_max_failing_share must be between 0 and 1")
        if not 0 < self.test_fraction < 1:
            raise SettingsError("setting test_fraction must be between 0 and 1 (exclusive)")
        if not 0 < self.test_fraction + self.validation_fraction < 1:
            raise SettingsError("settings test_fraction + validation_fraction must be between 0 and 1")
        for name in self.pipelines:
            if name not in PIPELINES:
                raise SettingsError(f"setting train_pipelines: unknown pipeline {name!r} (known: {', '.join(PIPELINES)})")
        if self.class_weighting not in ("balanced", "none"):
            raise SettingsError(f"setting class_weighting={self.class_weighting!r}: expected 'balanced' or 'none'")
        if self.report_text_sample < self.report_sample_size:
            raise SettingsError(f"setting report_text_sample={self.report_text_sample}: expected at least "
                                f"report_sample_size={self.report_sample_size} (the texts embedded come from it)")
        for name in ("retrain_window_days", "retrain_cooldown_days"):
            if getattr(self, name) < 1:
                raise SettingsError(f"setting {name} must be at least 1")
        if self.retrain_history_days < 0 or self.retrain_min_labelled_rows < 1 or self.report_segment_min_rows < 1:
            raise SettingsError("settings retrain_history_days >= 0, retrain_min_labelled_rows >= 1 and "
                                "report_segment_min_rows >= 1 are required")
        if self.gpu and self.onnx_int8:
            raise SettingsError("setting onnx_int8=true with gpu=true: the int8 copy's quantised operators run on "
                                "the CPU; set NLP_ONNX_INT8=false to encode with the fp32 model on the GPU")
        if self.embeddings_batch_size < 1 or self.max_sentence_length < 8:
            raise SettingsError("settings embeddings_batch_size >= 1 and max_sentence_length >= 8 are required")
        return self

    @property
    def retrain_metrics(self) -> list[str]:
        return [m.strip() for m in self.retrain_on.split(",") if m.strip()]

    @property
    def pipelines(self) -> list[str]:
        return [p.strip() for p in self.train_pipelines.split(",") if p.strip()]

    def reg_param(self, pipeline: str) -> float:
        return self.minilm_reg_param if pipeline.startswith("minilm") else self.tfidf_reg_param

    def as_env(self) -> dict[str, str]:
        """The settings as NLP_* variables, for child processes (dbt, papermill kernels)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[env_name(f.name)] = str(v).lower() if isinstance(v, bool) else str(v)
        return out


def env_name(field_name: str) -> str:
    return "NLP_" + field_name.upper()


# NLP_* variables that are not settings: read by dbt's profiles and models (`env_var('NLP_...')`; the
# warehouse targets' connections) and by the EMR step wrapper. tests/unit/test_settings.py checks the
# dbt part against dbt/ itself. Any other NLP_* variable is refused: a typo must not run the job with
# a default in its place.
EXTERNAL_ENV = frozenset({
    "NLP_ATHENA_S3_STAGING_DIR", "NLP_ATHENA_S3_DATA_DIR", "NLP_ATHENA_S3_TMP_TABLE_DIR",
    "NLP_REDSHIFT_METHOD", "NLP_REDSHIFT_HOST",
    "NLP_REDSHIFT_PORT", "NLP_REDSHIFT_USER", "NLP_REDSHIFT_PASSWORD", "NLP_REDSHIFT_CLUSTER_ID",
    "NLP_REDSHIFT_DATABASE", "NLP_REDSHIFT_SCHEMA", "NLP_PG_HOST", "NLP_PG_PORT",
    "NLP_PG_USER", "NLP_PG_PASSWORD", "NLP_PG_DATABASE", "NLP_PG_SCHEMA",
    "NLP_DUCKDB_EXTENSIONS",  # dbt's DuckDB profile: the extension folder warehouse.py lays out
    "NLP_LAKE_TABLES",        # dbt's lake_source macro on DuckDB: the metadata files warehouse.py reads
    "NLP_CODE_VERSION",   # runlog: the code version when there is no git checkout (set on EMR)
    "NLP_BATCH_HOME",     # emr/run_stage.sh: where the project is installed on a node
})


def unknown_env(env: dict[str, str]) -> list[str]:
    """One line per NLP_* variable that is neither a setting nor read by dbt or EMR."""
    known = {env_name(f.name) for f in fields(Settings)}
    lines = []
    for name in sorted(k for k in env if k.startswith("NLP_") and k not in known and k not in EXTERNAL_ENV):
        close = difflib.get_close_matches(name, sorted(known | EXTERNAL_ENV), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "no setting has a similar name"
        lines.append(f"unknown setting {name}: {hint} (settings: spark_jobs/settings.py, "
                     f"or `python -m spark_jobs run --help`)")
    return lines


def _check_date(name: str, value: str) -> None:
    """Exactly YYYY-MM-DD: Python also reads 20261101 and 2026-W44-7 as dates, and those would name
    other partitions (and locks) for the same day."""
    import datetime as dt
    import re

    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        dt.date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"setting {name}={value!r}: expected a date YYYY-MM-DD") from None


def _convert(name: str, typ: Any, raw: str) -> Any:
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return typ(raw)
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r}: expected {typ.__name__}") from None


def load(argv: list[str] | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults <- environment <- CLI flags <- keyword overrides (tests)."""
    env = os.environ if env is None else env
    problems = unknown_env(env)
    if problems:
        raise SettingsError(problems[0])
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if env_name(f.name) in env:
            values[f.name] = _convert(env_name(f.name), hints[f.name], env[env_name(f.name)])
    if argv:
        parser = add_arguments(argparse.ArgumentParser(add_help=False))
        ns, _ = parser.parse_known_args(argv)
        for k, v in vars(ns).items():
            if v is not None:
                values[k] = _convert("--" + k.replace("_", "-"), hints[k], v)
    values.update(overrides)
    return Settings(**values).validated()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One --flag per setting, so every job accepts the same overrides."""
    for f in fields(Settings):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            help=f"{f.metadata.get('help', '')} (env {env_name(f.name)})")
    return parser

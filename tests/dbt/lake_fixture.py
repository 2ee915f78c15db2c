"""A small lake of Iceberg tables with exactly the columns and types the Spark jobs write (in the
lake's local catalog, through pyiceberg: no Spark), for the dbt tests.

Three batches of reviews (2026-11-01..03, the last with two airline tweets from a second source)
plus a fourth whose ingest was blocked: curated documents, quarantined rows with their reasons,
labels for the first two dates only, predictions from model version 1 on every date (fitted on 6
documents of 2026-11-01) and version 2 rescoring 2026-11-01, a shadow challenger (version 3) on
2026-11-02 and 03, and run records including a failed and a blocked ingest, a skipped re-run, a
report that raised a critical alert and a stop message longer than 256 bytes. The curated rows of
2026-11-01 have no `source` (written before the column existed). Every date's rows carry the batch_id
of its succeeded ingest run. The returned `Lake` keeps the frames so tests compute their expectations
from the same rows independently of dbt.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

DATES = ["2026-11-01", "2026-11-02", "2026-11-03"]
BLOCKED_DATE = "2026-11-04"
LABELS = ("negative", "neutral", "positive")

# Spark's Parquet types for each zone (see spark_jobs/ingest.py and infer.py).
CURATED = pa.schema([("review_id", pa.string()), ("text", pa.string()), ("title", pa.string()),
                     ("rating", pa.int32()), ("product_id", pa.string()), ("department", pa.string()),
                     ("class", pa.string()), ("source", pa.string()), ("source_file", pa.string()),
                     ("text_hash", pa.string())])
QUARANTINE = pa.schema([("review_id", pa.string()), ("text", pa.string()), ("title", pa.string()),
                        ("rating_raw", pa.string()), ("product_id", pa.string()),
                        ("department", pa.string()), ("class", pa.string()), ("source", pa.string()),
                        ("source_file", pa.string()), ("reasons", pa.list_(pa.string())), ("detail", pa.string())])
# A stop line longer than Redshift's default VARCHAR (256 bytes), with multi-byte characters.
LONG_MESSAGE = ("report 2026-11-03: 3 critical alert(s): drift psi_text_length=2.1 (limit 0.2), oov_rate=0.41 "
                "(limit 0.2), embedding_distance=0.27 (limit 0.1); see reports/2026-11-03/monitoring.html — "
                "« résumé » of the day: texts unlike the training data " + "é" * 120)
LABELS_SCHEMA = pa.schema([("review_id", pa.string()), ("rating", pa.int32()), ("label", pa.string())])
PREDICTIONS = pa.schema([("review_id", pa.string()), ("label", pa.string()), ("confidence", pa.float64()),
                         ("score_negative", pa.float64()), ("score_neutral", pa.float64()),
                         ("score_positive", pa.float64()), ("model_name", pa.string()), ("run_id", pa.string()),
                         ("seen_in_training", pa.bool_())])

# product_id -> (department, class); product 1002 is once filed under another class.
PRODUCTS = {"1078": ("Dresses", "Dresses"), "862": ("Tops", "Knits"), "1094": ("Dresses", "Dresses"),
            "1002": ("Bottoms", "Jeans"), "868": ("Tops", "Knits")}
QUARANTINED = [("", "", ["text_empty"]), ("Lovely fit", "7", ["rating_out_of_range"]),
               ("", "five", ["rating_not_integer", "text_empty"])]
TEXTS = {1: "Fell apart after one wash, returning it.", 2: "Poor fabric and the seams are crooked.",
         3: "It is fine, nothing special.", 4: "Nice dress, fits well.", 5: "Love it, perfect for summer!"}


@dataclass
class Lake:
    root: Path
    curated: pd.DataFrame = field(default_factory=pd.DataFrame)
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    labels: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    shadow: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: list[dict] = field(default_factory=list)
    metrics: list = field(default_factory=list)   # spark_jobs.metrics.MetricRow, as published


def lake_settings(root: Path):
    """The project's settings for a lake at root (its local catalog: root/catalog.db)."""
    from spark_jobs import settings

    return settings.load(env={}, lake_root=str(root))


def write_table(root: Path, zone: str, frame: pd.DataFrame, schema: pa.Schema, date: str, batch_id: str,
                model_version: int | None = None) -> None:
    """Appends frame's rows of one date (and model version) to a lake table, created on first use with
    the partitioning the Spark jobs give it (spark_jobs/tables.py)."""
    from spark_jobs import tables

    keys = [("ingest_date", pa.string()), ("batch_id", pa.string())]
    if model_version is not None:
        keys.append(("model_version", pa.int32()))
    full = pa.schema(list(schema) + [pa.field(n, t) for n, t in keys])
    rows = frame.assign(ingest_date=date, batch_id=batch_id,
                        **({} if model_version is None else {"model_version": model_version}))
    data = pa.Table.from_pandas(rows[full.names], schema=full, preserve_index=False)
    settings = lake_settings(root)
    table = tables.load_table(settings, zone)
    if table is None:
        catalog = tables.python_catalog(settings)
        catalog.create_namespace_if_not_exists(settings.lake_schema)
        table = catalog.create_table((settings.lake_schema, zone), schema=full,
                                     location=f"{tables.warehouse(settings)}/{settings.lake_schema}/{zone}")
        with table.update_spec() as spec:
            for column in tables.partition_columns(zone):
                spec.add_identity(column)
    table.append(data)


def write_run(root: Path, stage: str, date: str, started: dt.datetime, seconds: float, status: str = "succeeded",
              **fields) -> dict:
    """A run record appended by the project's own runlog (ISO timestamps with offset)."""
    from spark_jobs.runlog import RunRecord, write

    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    record = {"code_version": "0.1.0", "ended_at": (started + dt.timedelta(seconds=seconds)).isoformat(),
              "ingest_date": date, "message": "", "model_name": None, "model_version": None, "outputs": {},
              "rows_duplicate": None, "rows_lost": None, "rows_in": None, "rows_out": None, "rows_rejected": None,
              "run_id": run_id, "seconds": seconds, "stage": stage, "started_at": started.isoformat(),
              "status": status}
    record.update(fields)
    write(lake_settings(root), RunRecord(**record))
    return record


def label_of(rating: int) -> str:
    return "negative" if rating <= 2 else "neutral" if rating == 3 else "positive"


def scores(rng: random.Random, rating: int | None, accuracy: float) -> tuple[str, dict[str, float]]:
    """A prediction that is right with probability `accuracy` (any label without a rating), with
    softmax-like scores."""
    truth = rng.choice(LABELS) if pd.isna(rating) else label_of(rating)
    label = truth if rng.random() < accuracy else rng.choice([x for x in LABELS if x != truth])
    top = round(rng.uniform(0.45, 0.95), 4)
    rest = round((1 - top) * rng.uniform(0.2, 0.8), 4)
    others = [x for x in LABELS if x != label]
    return label, {label: top, others[0]: rest, others[1]: round(1 - top - rest, 4)}


def predict(rng: random.Random, docs: pd.DataFrame, version: int, run_id: str, accuracy: float,
            fitted_on: int = 0) -> pd.DataFrame:
    """The first `fitted_on` documents are ones the model was trained on (seen_in_training)."""
    rows = []
    for i, doc in enumerate(docs.itertuples()):
        label, s = scores(rng, doc.rating, accuracy)
        rows.append({"review_id": doc.review_id, "label": label, "confidence": s[label],
                     "score_negative": s["negative"], "score_neutral": s["neutral"], "score_positive": s["positive"],
                     "model_name": "review_sentiment", "model_version": str(version), "run_id": run_id,
                     "seen_in_training": i < fitted_on})
    return pd.DataFrame(rows)


def write_lake(root: Path, *, seed: int = 7) -> Lake:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    lake = Lake(root)
    # microseconds, as older run records have them: every warehouse must show the same milliseconds
    clock = dt.datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=dt.timezone.utc)
    curated, quarantine, labels, predictions, shadow = [], [], [], [], []

    for day, date in enumerate(DATES):
        source_file = f"raw/ingest_date={date}/source=reviews/reviews_{date}.csv"
        docs = []
        for i in range(12):
            product = list(PRODUCTS)[(i + day) % len(PRODUCTS)]
            department, product_class = PRODUCTS[product]
            if product == "1002" and i == 3 and day == 0:
                product_class = "Pants"
            rating = rng.randint(1, 5)
            text = TEXTS[rating] + f" (#{day}{i})"
            docs.append({"review_id": f"r{day}{i:02d}", "text": text, "title": f"Review {i}", "rating": rating,
                         "product_id": product, "department": department, "class": product_class,
                         "source": "reviews", "source_file": source_file,
                         "text_hash": hashlib.sha256(text.encode()).hexdigest()})
        # one review without a product, department or class
        docs.append({"review_id": f"r{day}99", "text": TEXTS[5] + f" (#{day}99)", "title": None, "rating": 5,
                     "product_id": None, "department": None, "class": None, "source": "reviews",
                     "source_file": source_file, "text_hash": hashlib.sha256(f"{day}99".encode()).hexdigest()})
        if day == 2:  # two tweets about an airline: a product of another source, no rating, no department
            for n, text in enumerate(["@united lost my bag again", "@united thanks, great crew today"]):
                docs.append({"review_id": f"tw-{day}{n}", "text": text, "title": None, "rating": None,
                             "product_id": "United", "department": None, "class": None, "source": "tweets",
                             "source_file": f"raw/ingest_date={date}/source=tweets/tweets_{date}.csv",
                             "text_hash": hashlib.sha256(text.encode()).hexdigest()})
        docs = pd.DataFrame(docs).astype({"rating": "Int32"})
        rejected = pd.DataFrame([
            {"review_id": f"q{day}{i}", "text": text, "title": None, "rating_raw": rating_raw, "product_id": "862",
             "department": "Tops", "class": "Knits", "source": "reviews", "source_file": source_file,
             "reasons": reasons, "detail": None}
            for i, (text, rating_raw, reasons) in enumerate(QUARANTINED[: 1 + day])])
        duplicates = 1 if day == 1 else 0

        if day == 2:  # a first attempt that crashed before writing anything
            write_run(root, "ingest", date, clock, 1.5, status="failed", rows_in=len(docs) + len(rejected),
                      message="Py4JJavaError: simulated executor loss")
            clock += dt.timedelta(minutes=5)
        ingest = write_run(root, "ingest", date, clock, 4.0, rows_in=len(docs) + len(rejected) + duplicates,
                  rows_out=len(docs), rows_rejected=len(rejected), rows_duplicate=duplicates)
        clock += dt.timedelta(minutes=1)
        batch = ingest["run_id"]
        # the first day's rows were written before curated had a source: staging reads it from source_file
        write_table(root, "curated", docs.assign(source=None) if day == 0 else docs, CURATED, date, batch)
        write_table(root, "quarantine", rejected, QUARANTINE, date, batch)
        curated.append(docs.assign(ingest_date=date))
        quarantine.append(rejected.assign(ingest_date=date))
        if date != DATES[-1]:  # labels of the last batch have not arrived yet
            lab = docs[["review_id", "rating"]].assign(label=docs.rating.map(label_of)).astype({"rating": int})
            write_table(root, "labels", lab, LABELS_SCHEMA, date, batch)
            labels.append(lab.assign(ingest_date=date))
        if day == 0:
            write_run(root, "train", date, clock, 30.0, rows_in=len(docs), model_name="review_sentiment",
                      model_version="1")
            clock += dt.timedelta(minutes=1)

        for version, accuracy in [(1, 0.7)] + ([(2, 0.85)] if day == 0 else []):
            run = write_run(root, "infer", date, clock, 6.0, rows_in=len(docs), rows_out=len(docs),
                            model_name="review_sentiment", model_version=str(version))
            clock += dt.timedelta(minutes=1)
            # version 1 was trained on the first batch: 6 of its documents were in the train split
            preds = predict(rng, docs, version, run["run_id"], accuracy, fitted_on=6 if (version, day) == (1, 0) else 0)
            write_table(root, "predictions", preds, PREDICTIONS, date, batch, model_version=version)
            predictions.append(preds.assign(ingest_date=date, model_version=version))
        if day >= 1:
            run = write_run(root, "shadow", date, clock, 5.0, rows_in=len(docs), rows_out=len(docs),
                            model_name="review_sentiment_doc2vec", model_version="3")
            clock += dt.timedelta(minutes=1)
            preds = predict(rng, docs, 3, run["run_id"], 0.6).assign(model_name="review_sentiment_doc2vec")
            write_table(root, "predictions_shadow", preds, PREDICTIONS, date, batch, model_version=3)
            shadow.append(preds.assign(ingest_date=date, model_version=3))

    write_run(root, "ingest", BLOCKED_DATE, clock, 2.0, status="blocked", rows_in=9, rows_out=0, rows_rejected=9,
              message="blocked: 100% of rows fail expect_column_values_to_not_be_null(text) (critical)")
    write_run(root, "dbt", "all", clock + dt.timedelta(minutes=1), 7.5, message="PASS=90")
    for day, date in enumerate(DATES):  # the third day's report raised a critical alert
        write_run(root, "report", date, clock + dt.timedelta(minutes=2 + day), 9.0,
                  status="alerted" if day == 2 else "succeeded", message=LONG_MESSAGE if day == 2 else "")
    write_run(root, "infer", DATES[1], clock + dt.timedelta(minutes=6), 0.0, status="skipped",
              model_name="review_sentiment", model_version="1", message="already scored by review_sentiment v1")

    lake.metrics = write_metrics(root, clock + dt.timedelta(hours=1))
    lake.curated, lake.quarantine = pd.concat(curated), pd.concat(quarantine)
    lake.labels, lake.predictions, lake.shadow = pd.concat(labels), pd.concat(predictions), pd.concat(shadow)
    from spark_jobs.runlog import records

    lake.runs = records(lake_settings(root))
    return lake


def write_metrics(root: Path, clock: dt.datetime) -> list:
    """The metrics table as the stage runs and reports publish it (spark_jobs.metrics, the project's own
    writer): a report per date (the first one superseded by a re-run), per-label shares, drift per
    department and product, a critical alert and a Great Expectations warning on the third date, the
    infer runs' flag counts, and the dbt stage's undated figures."""
    from spark_jobs import metrics
    from spark_jobs.runlog import RunRecord
    from spark_jobs.settings import Settings

    rows = []
    for day, date in enumerate(DATES):
        for attempt in ((0, 1) if day == 0 else (1,)):
            at = (clock + dt.timedelta(minutes=10 * day + attempt)).isoformat(timespec="milliseconds")
            figures = {"run_date": date, "model_name": "review_sentiment", "model_version": 2 if day == 0 else 1,
                       "integrity": {"landed": 13 + day, "quarantine_share": round(0.07 * (day + 1), 6)},
                       "outputs": {"n_predictions": 13, "mean_confidence": 0.7 + attempt / 10,
                                   "label_shares": {"negative": 0.3, "neutral": 0.2, "positive": 0.5}},
                       "drift": {"psi_confidence": 0.05 * (day + 1), "oov_rate": 0.1 * day + 0.01,
                                 "segments": [{"segment": "department", "source": "reviews", "value": value,
                                               "n_documents": 5, "n_baseline_documents": 5, "label_js": js,
                                               "psi_confidence": js / 2}
                                              for value, js in (("Tops", 0.3 - 0.1 * attempt), ("Dresses", 0.4))]
                                 + [{"segment": "product", "source": "reviews", "value": "1078", "n_documents": 3,
                                     "n_baseline_documents": 3, "label_js": 0.25, "psi_confidence": 0.2}]},
                       "quality": {"macro_f1": 0.5, "macro_f1_drop": 0.1, "f1": {"positive": 0.8}},
                       "pipeline": {"run_seconds": 40.0 + day, "emr_dollars_per_million_texts": 12.5}}
            alerts = [] if day < 2 else [
                {"severity": "critical", "section": "drift", "metric": "oov_rate", "value": 0.21, "threshold": 0.2,
                 "message": "out-of-vocabulary rate 0.21 > 0.2"},
                {"severity": "warning", "section": "integrity", "metric": "gx_warning", "value": 2.0,
                 "threshold": None, "message": "Great Expectations warning expect_column_values_to_not_be_null"
                                               "(title): 2 of 15 rows"}]
            rows += metrics.of_report(figures, {"alerts": alerts}, f"report-{day}-{attempt}", at)
        infer = RunRecord(stage="infer", ingest_date=date, run_id=f"infer-{day}", status="succeeded", seconds=6.0,
                          ended_at=clock.isoformat(timespec="milliseconds"), rows_in=13, rows_out=13,
                          model_name="review_sentiment", model_version="1", outputs={"flags": {"long_text": day}})
        rows += metrics.of_record(infer)
    rows += metrics.of_record(RunRecord(stage="dbt", ingest_date="all", run_id="dbt-1", status="succeeded",
                                        seconds=7.5, ended_at=clock.isoformat(timespec="milliseconds")))
    metrics.write_table(Settings(lake_root=str(root)), rows)
    return rows

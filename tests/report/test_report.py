"""The report stage on a real small lake: three days of reviews and a day of airline tweets, run
through the whole pipeline (GX ingest, Spark NLP training, MLflow, inference, dbt, papermill),
with the alerts published to SNS on a moto server on 127.0.0.1."""
import base64
import json
import os
import re
import shutil
import subprocess

import duckdb
import pandas as pd
import pytest

from spark_jobs import cli, landing, monitoring, runlog
from spark_jobs.orchestrator import run_pipeline
from spark_jobs.runlog import StageStopped
from spark_jobs.vocabulary import ExitCode
from tests.conftest import CORPUS, MODEL_DIR, TWEETS, make_settings, need, table_rows, missing

REVIEW_DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
TWEET_DAY = "2026-11-04"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def sns_inbox():
    """A moto server on 127.0.0.1, an SNS topic and an SQS queue subscribed to it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.get_host_and_port()[1]}")
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(key, "testing")
        env.delenv("AWS_PROFILE", raising=False)
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="nlp-batch-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield topic, sqs, queue
    server.stop()


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, sns_inbox):
    """Reviews for three days, then 300 tweets landed as a fourth day; each run ends with its reports.
    The tweet day's report raises critical drift alerts, which stop the second run with exit 9."""
    for path in (CORPUS, TWEETS, MODEL_DIR):
        need(path)
    root = tmp_path_factory.mktemp("report")
    settings = make_settings(root, replay_limit=900, replay_days=3, train_pipelines="tfidf_logreg",
                             report_sns_topic_arn=sns_inbox[0])
    run_pipeline(settings, log=lambda *_: None)
    tweets = root / "tweets_sample.csv"
    pd.read_csv(TWEETS, dtype=str, keep_default_na=False).sample(300, random_state=7).to_csv(tweets, index=False)
    landing.land(settings, str(tweets), TWEET_DAY, "tweets")
    try:
        run_pipeline(settings.replace(date=TWEET_DAY), log=lambda *_: None)
        stop = None
    except StageStopped as exc:
        stop = exc
    return settings, stop


def report_file(settings, date, name):
    return os.path.join(settings.path("reports_dir"), date, name)


def read_json(settings, date, name):
    with open(report_file(settings, date, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
def test_the_tweet_day_raises_drift_alerts_and_the_review_days_do_not(pipeline):
    settings, stop = pipeline
    for day in REVIEW_DAYS:
        alerts = read_json(settings, day, "alerts.json")
        assert not [a for a in alerts["alerts"] if a["section"] == "drift"], (day, alerts)
        assert alerts["status"] != "critical"
    tweets = read_json(settings, TWEET_DAY, "alerts.json")
    drift = {a["metric"]: a for a in tweets["alerts"] if a["section"] == "drift"}
    assert tweets["status"] == "critical" and tweets["run_date"] == TWEET_DAY
    # the texts themselves changed: length, words the model never saw, where they sit in embedding space
    for metric in ("psi_text_length", "oov_rate", "embedding_distance", "token_js"):
        assert drift[metric]["severity"] == "critical" and drift[metric]["value"] > drift[metric]["threshold"]
    # the orchestrator stops with the report's exit code, naming the alerts and where to look
    assert stop is not None and stop.exit_code == 9
    assert f"report {TWEET_DAY}" in str(stop) and "drift oov_rate=" in str(stop) and "monitoring.html" in str(stop)


@pytest.mark.slow
def test_metrics_match_the_lake(pipeline):
    settings, _ = pipeline
    day = REVIEW_DAYS[2]
    metrics = read_json(settings, day, "metrics.json")
    preds = table_rows(settings, "predictions", day)
    (version,) = set(preds.model_version)
    assert metrics["n_predictions"] == len(preds) and metrics["model_version"] == int(version)
    assert metrics["mean_confidence"] == pytest.approx(preds.confidence.mean())
    assert metrics["label_shares"] == pytest.approx(preds.label.value_counts(normalize=True).to_dict(), abs=1e-6)
    assert metrics["share_low_confidence"] == pytest.approx((preds.confidence < settings.low_confidence).mean())

    (record,) = runlog.records(settings, "ingest", day)
    integrity = metrics["integrity"]
    quarantined = len(table_rows(settings, "quarantine", day))
    assert (integrity["landed"], integrity["quarantined"]) == (record["rows_in"], quarantined)
    assert integrity["quarantine_share"] == pytest.approx(quarantined / record["rows_in"], abs=1e-6)

    assert metrics["baseline_dates"] == REVIEW_DAYS[:2] and metrics["training_dates"] == REVIEW_DAYS
    curated = {d: table_rows(settings, "curated", d).text.str.len() for d in REVIEW_DAYS}
    psi = monitoring.psi(pd.concat([curated[d] for d in REVIEW_DAYS[:2]]), curated[day])
    assert metrics["drift"]["psi_text_length"] == pytest.approx(psi, abs=1e-6)
    assert metrics["drift"]["oov_rate"] == 0  # the day was part of the training data

    con = duckdb.connect(settings.path("warehouse_path"), read_only=True)
    accuracy = con.execute("select accuracy from mart_model_performance where ingest_date = cast(? as date) "
                           "and scored_as = 'champion'", [day]).fetchone()[0]
    con.close()
    assert metrics["quality"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["pipeline"]["emr_dollars_per_million_texts"] > 0


@pytest.mark.slow
def test_alerts_reach_the_sns_topic(pipeline, sns_inbox):
    settings, _ = pipeline
    _, sqs, queue = sns_inbox
    notes = []
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        notes += [json.loads(m["Body"]) for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    with_alerts = {d for d in REVIEW_DAYS + [TWEET_DAY] if read_json(settings, d, "alerts.json")["alerts"]}
    by_day = {n["MessageAttributes"]["run_date"]["Value"]: n for n in notes}
    assert len(notes) == len(by_day) and set(by_day) == with_alerts and TWEET_DAY in by_day
    note = by_day[TWEET_DAY]
    assert note["MessageAttributes"]["severity"]["Value"] == "critical"
    assert note["Subject"].startswith(f"nlp-batch report {TWEET_DAY}: critical")
    assert json.loads(note["Message"])["alerts"] == read_json(settings, TWEET_DAY, "alerts.json")["alerts"]


@pytest.mark.slow
def test_the_html_is_small_offline_and_without_code(pipeline):
    settings, _ = pipeline
    for day in REVIEW_DAYS + [TWEET_DAY]:
        path = report_file(settings, day, "monitoring.html")
        html = open(path, encoding="utf-8").read()
        assert os.path.getsize(path) < 5_000_000
        images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)
        assert len(images) >= 5 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
        assert not re.search(r"<script[^>]+src=", html) and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)  # no fonts or styles fetched either
        assert "import duckdb" not in html and "def verdict" not in html and "Traceback" not in html
        for section in ("1. Data integrity", "2. Outputs", "3. Drift", "4. Model quality", "5. Pipeline health"):
            assert section in html
        assert html.count("border-left: 6px solid") >= 6  # the summary and a verdict per section


def chromium() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium(pipeline, tmp_path):
    browser = chromium()
    if browser is None:
        missing("no chromium on this machine (`make test` installs Debian's as root with apt-get)")
    from PIL import Image

    settings, _ = pipeline
    shot = tmp_path / f"report-{TWEET_DAY}.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2400",
                    "file://" + report_file(settings, TWEET_DAY, "monitoring.html")],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    top = image.crop((0, 0, 1280, 600))
    colours = top.getcolors(maxcolors=1 << 20)
    assert len(colours) > 100  # text and styles rendered, not a blank page
    # the critical summary badge (#c62828) is at the top of the page
    assert any(r > 180 and g < 60 and b < 60 for _, (r, g, b) in colours)


@pytest.mark.slow
def test_a_failing_cell_is_named_and_the_executed_notebook_kept(pipeline, tmp_path, capsys):
    settings, _ = pipeline
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--mlflow-artifact-root", settings.mlflow_artifact_root, "--warehouse-path", settings.warehouse_path,
             "--reports-dir", str(tmp_path), "--date", REVIEW_DAYS[1]]
    assert cli.main(["report", "--emr-profile", "tpu", *flags]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'section "5. Pipeline health"' in err[0], err
    assert "ValueError: emr_profile='tpu' is not in" in err[0] and "profiles.json" in err[0]
    executed = tmp_path / REVIEW_DAYS[1] / "monitoring.ipynb"
    assert str(executed) in err[0] and "emr_profile='tpu'" in executed.read_text()
    assert not (tmp_path / REVIEW_DAYS[1] / "monitoring.html").exists()


@pytest.mark.slow
def test_a_date_without_predictions_is_refused_before_the_notebook_starts(pipeline, tmp_path, capsys):
    settings, _ = pipeline
    flags = ["--lake-root", settings.lake_root, "--mlflow-tracking-uri", settings.mlflow_tracking_uri,
             "--warehouse-path", settings.warehouse_path, "--reports-dir", str(tmp_path / "reports")]
    assert cli.main(["report", "--date", "2026-12-24", *flags]) == ExitCode.BAD_SETTING
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no predictions for 2026-12-24" in err[0] and "make infer DATE=2026-12-24" in err[0]
    assert ", ".join(REVIEW_DAYS) in err[0]  # the dates that can be reported
    assert not (tmp_path / "reports").exists()  # papermill never started, nothing written


# Last in the module: it lands a fifth day into the shared lake.
NEXT_DAY = "2026-11-05"


@pytest.fixture(scope="module")
def day_after_the_alert(pipeline, tmp_path_factory):
    """`make run DATE=2026-11-05` the day after the tweet day's critical alert: more reviews."""
    settings, _ = pipeline
    reviews = tmp_path_factory.mktemp("next_day") / "reviews_next_day.csv"
    pd.read_csv(CORPUS, dtype=str, keep_default_na=False).iloc[900:1100].to_csv(reviews, index=False)
    landing.land(settings, str(reviews), NEXT_DAY, "reviews")
    try:
        run_pipeline(settings.replace(date=NEXT_DAY), log=lambda *_: None)
        return settings, None
    except StageStopped as exc:
        return settings, exc


@pytest.mark.slow
def test_the_day_after_a_critical_alert_builds_every_mart(day_after_the_alert):
    """The alerted report's run record (status `alerted`) is input to the next dbt build: it must pass."""
    settings, stop = day_after_the_alert
    assert stop is None or stop.exit_code == 9, stop  # an alert of its own may stop it; dbt (7) may not
    records = runlog.records(settings)
    (build,) = [r for r in records if r["stage"] == "dbt" and r["started_at"] > max(
        r["started_at"] for r in records if r["stage"] == "report" and r["ingest_date"] == TWEET_DAY)]
    assert build["status"] == "succeeded", build["message"]
    con = duckdb.connect(settings.path("warehouse_path"), read_only=True)
    try:
        runs = con.sql("select stage, cast(batch_date as varchar) as d, status, started_at from mart_pipeline_runs").df()
        # the mart holds the alerted report's record: a build ran after the alert, and the file
        # analysts read is that build's (a failed build leaves the previous one in place)
        alerted = runs[(runs.stage == "report") & (runs.d == TWEET_DAY)]
        assert alerted.status.tolist() == ["alerted"]
        for mart in ("fct_predictions", "dim_products", "mart_daily_sentiment", "mart_daily_product_sentiment",
                     "mart_model_performance", "mart_data_quality", "mart_pipeline_runs"):
            days = {str(d) for (d,) in con.sql(f"select distinct ingest_date from {mart}").fetchall()} \
                if mart != "dim_products" else {str(d) for (d,) in con.sql(f"select max(last_seen_date) from {mart}").fetchall()}
            assert NEXT_DAY in days, (mart, days)
        built = {t for (t,) in con.sql("select table_name from information_schema.tables").fetchall()}
        assert "mart_champion_challenger" in built  # built, empty: no challenger in this lake
        tweets = con.sql("select count(*) from dim_products where source = 'tweets'").fetchall()[0][0]
        assert tweets > 0  # the airlines, kept apart from the clothing
    finally:
        con.close()


def athena_result(frame: pd.DataFrame) -> dict:
    """A DuckDB answer as Athena's GetQueryResults gives it: a header row, then every value as text
    (a null has no VarCharValue), the columns typed varchar."""
    def cell(value):
        if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
            return {}
        return {"VarCharValue": repr(value) if isinstance(value, float) else str(value)}

    header = {"Data": [{"VarCharValue": c} for c in frame.columns]}
    return {"rows": [header] + [{"Data": [cell(v) for v in row]} for row in frame.itertuples(index=False)],
            "column_info": [{"Name": c, "Label": c, "Type": "varchar", "Nullable": "UNKNOWN", "CaseSensitive": True,
                             "Precision": 0, "Scale": 0, "CatalogName": "hive", "SchemaName": "", "TableName": ""}
                            for c in frame.columns]}


@pytest.mark.slow
def test_the_report_on_the_athena_target_reads_through_pyathena_and_gives_the_same_figures(pipeline, tmp_path,
                                                                                           monkeypatch):
    """moto runs no SQL: each statement the report sends is answered with what the DuckDB build answers
    to it (Athena's canned results, in the order sent). The report then runs whole on the Athena target
    (PyAthena over moto's Athena, the workgroup and staging dir of dbt's athena profile) and writes the
    same figures as on DuckDB, and its HTML."""
    import boto3
    import requests

    from spark_jobs import report, report_inputs

    settings, _ = pipeline
    day = REVIEW_DAYS[2]
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):  # the profile's region, where the canned results are
        monkeypatch.setenv(name, REGION)
    on_duckdb = settings.replace(reports_dir=str(tmp_path / "duckdb"), report_sns_topic_arn="")
    try:
        report.run(on_duckdb, day)
    except StageStopped as stop:
        assert stop.exit_code == ExitCode.CRITICAL_ALERT
    wh = report_inputs.connect(report_inputs.connection_of(on_duckdb))
    report_inputs.load(wh, day, settings.report_baseline_days, settings.mlflow_uri, settings.model_name,
                       settings.path("lake_root"), settings.report_text_sample)
    sent_on_duckdb = [sql.replace("main.", "nlp_marts.") for _, sql in wh.history]
    answers = []
    for _, sql in wh.history:
        cursor = wh.connection.cursor()
        cursor.execute(sql)
        answers.append(athena_result(pd.DataFrame.from_records(cursor.fetchall(),
                                                               columns=[d[0] for d in cursor.description])))
    wh.close()
    endpoint = os.environ["AWS_ENDPOINT_URL"]  # the module's moto server (sns_inbox)
    assert requests.post(f"{endpoint}/moto-api/static/athena/query-results",
                         json={"region": REGION, "results": answers}).status_code == 201
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="athena-bucket")

    on_athena = settings.replace(dbt_target="athena", aws_bucket="athena-bucket", aws_region=REGION,
                                 reports_dir=str(tmp_path / "athena"), report_sns_topic_arn="")
    assert report_inputs.connection_of(on_athena) == {
        "type": "athena", "region_name": REGION, "s3_staging_dir": "s3://athena-bucket/athena-results/",
        "work_group": "primary", "schema": "nlp_marts"}
    try:
        report.run(on_athena, day)
    except StageStopped as stop:
        assert stop.exit_code == ExitCode.CRITICAL_ALERT
    athena = boto3.client("athena", region_name=REGION)
    ids = athena.list_query_executions(WorkGroup="primary")["QueryExecutionIds"]
    sent = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"] for i in ids]
    assert sorted(sent) == sorted(sent_on_duckdb)  # the same statements, in the Athena schema
    figures = [json.load(open(os.path.join(tmp_path, kind, day, "metrics.json"))) for kind in ("duckdb", "athena")]
    assert figures[0] == figures[1]
    html = open(os.path.join(tmp_path, "athena", day, "monitoring.html"), encoding="utf-8").read()
    assert "data:image/png;base64" in html and "Traceback" not in html

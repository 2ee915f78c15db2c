"""Report stage: run the monitoring notebook with papermill, publish it, raise the alarms.

Outputs in reports/<run_date>/:
    monitoring.html    the executed notebook without code; opens offline (inline images, no CDN scripts)
    monitoring.ipynb   the executed notebook, kept also when a cell fails
    kernel.log         what the notebook kernel printed to stderr
    metrics.json       the day's figures, section by section (written by the notebook)
    alerts.json        every crossed threshold with its severity, and the worst one as `status`

The notebook reads the warehouse through the connection of the dbt target (report_inputs: DuckDB,
Athena or Redshift) and computes with report_sections. Its figures and alerts are then published
(metrics.publish): to the lake's metrics table, and to CloudWatch when that is on.

Stops (runlog.StageStopped) with exit code 6 when a notebook cell fails (the message names the cell
and its section), and 9 when the report raised a critical alert: the report is published first,
and the alerts go to SNS when `report_sns_topic_arn` is set.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import fields

from . import metrics, nlp, report_inputs
from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings, SettingsError
from .vocabulary import ExitCode, RunStatus

NOTEBOOK = "monitoring_report.ipynb"
TEMPLATE = os.path.join("templates", "offline_report.html.j2")
OUTPUTS = ("monitoring.html", "metrics.json", "alerts.json")


def thresholds_of(settings: Settings) -> dict[str, float]:
    """The alert thresholds (every *_warning / *_critical setting) and the low-confidence cut."""
    names = [f.name for f in fields(Settings) if f.name.endswith(("_warning", "_critical"))]
    return {name: getattr(settings, name) for name in names + ["low_confidence"]}


def parameters(settings: Settings, date: str, out_dir: str) -> dict:
    """The notebook's `parameters` cell, filled from the settings."""
    return {
        "run_date": date,
        "baseline_days": settings.report_baseline_days,
        "warehouse": report_inputs.connection_of(settings),
        "lake_root": settings.path("lake_root"),
        "mlflow_uri": settings.mlflow_uri,
        "model_name": settings.model_name,
        # the file the encoder loads (the int8 copy by default): the drift's vectors are the pipeline's kind
        "embeddings_model_dir": nlp.embeddings_model_folder(settings),
        "sample_size": settings.report_sample_size,
        "text_sample": settings.report_text_sample,
        "segment_min_rows": settings.report_segment_min_rows,
        "pricing_file": settings.path("report_pricing_file"),
        "emr_profile": settings.emr_profile,
        "pipeline_target": settings.target,
        "thresholds": thresholds_of(settings),
        "output_dir": out_dir,
    }


def to_html(executed_notebook: str, html_path: str, template: str) -> None:
    """Publishes the executed notebook without code, prompts, stderr (kernel warnings stay in the .ipynb)
    or cells tagged remove_cell; the template drops the CDN scripts so the page needs no network."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(executed_notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    exporter = HTMLExporter(template_file=template, exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={"remove_cell"}), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(body)


def failed_cell(executed_notebook: str, exc) -> str:
    """'cell 7 (section "3. Drift")' for the cell papermill reports, from the executed notebook."""
    import nbformat

    nb = nbformat.read(executed_notebook, as_version=4)
    index = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.get("execution_count") == exc.exec_count), None)
    if index is None:
        return f"cell [{exc.exec_count}]"
    sections = [c.source.strip().splitlines()[0].lstrip("# ") for c in nb.cells[:index]
                if c.cell_type == "markdown" and c.source.strip().startswith("## ")]
    return f"cell {index} (In [{exc.exec_count}], section \"{sections[-1] if sections else 'setup'}\")"


def brief(alerts: list[dict]) -> str:
    """'drift psi_confidence=2.75 (limit 0.2), ...': alerts short enough for one line."""
    return ", ".join(f"{a['section']} {a['metric']}={a['value']:.3g} (limit {a['threshold']:g})"
                     if a["threshold"] is not None else a["message"] for a in alerts)


def publish_alerts(settings: Settings, payload: dict, html: str) -> str | None:
    """Sends the day's alerts to the SNS topic when one is configured; returns the message id."""
    if not settings.report_sns_topic_arn or not payload["alerts"]:
        return None
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    counts = {s: sum(a["severity"] == s for a in payload["alerts"]) for s in ("critical", "warning")}
    subject = (f"nlp-batch report {payload['run_date']}: {payload['status']} "
               f"({counts['critical']} critical, {counts['warning']} warning)")
    message = {**payload, "report": html}
    try:
        response = boto3.client("sns", region_name=settings.aws_region).publish(
            TopicArn=settings.report_sns_topic_arn, Subject=subject[:100], Message=json.dumps(message, indent=2),
            MessageAttributes={"severity": {"DataType": "String", "StringValue": payload["status"]},
                               "run_date": {"DataType": "String", "StringValue": payload["run_date"]}})
    except (BotoCoreError, ClientError) as exc:
        raise StageStopped(f"report {payload['run_date']}: could not publish {len(payload['alerts'])} alerts to "
                           f"SNS topic {settings.report_sns_topic_arn}: {exc}", exit_code=ExitCode.UNEXPECTED, status=RunStatus.FAILED) from None
    return response["MessageId"]


@contextlib.contextmanager
def kernel_stderr_to(path: str):
    """The kernel process inherits our stderr; its start-up and shutdown chatter ("KeyboardInterrupt
    caught in kernel") goes to a log file beside the report instead of the operator's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def check_inputs(settings: Settings, date: str) -> None:
    """Before papermill starts: the warehouse holds current predictions for the date (DuckDB target;
    on the other targets the notebook's own first cell says so)."""
    if settings.dbt_target != "local":
        return
    path = settings.path("warehouse_path")
    if not os.path.exists(path):
        raise SettingsError(f"report {date}: no warehouse at {path}; build it with `make dbt`")
    import duckdb

    with duckdb.connect(path, read_only=True) as con:
        try:
            scored = [d for (d,) in con.execute(
                "select distinct cast(ingest_date as varchar) from fct_predictions where is_current order by 1").fetchall()]
        except duckdb.CatalogException:
            raise SettingsError(f"report {date}: the warehouse {path} has no fct_predictions; build it with "
                                "`make dbt`") from None
    if date not in scored:
        raise SettingsError(f"report {date}: no predictions for {date} in {path} (dates scored: "
                            f"{', '.join(scored) or 'none'}); run `make infer DATE={date}`, then `make dbt`")


def alerts_of(settings: Settings, date: str) -> dict:
    """The alerts.json the report of `date` wrote (what `retrain` decides on)."""
    path = os.path.join(settings.path("reports_dir"), date, "alerts.json")
    if not os.path.exists(path):
        raise SettingsError(f"no monitoring report for {date} ({path} is missing); run `make report DATE={date}` first")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run(settings: Settings, date: str) -> RunRecord:
    """Executes, publishes and checks the report of one ingest date (see the module docstring)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir = os.path.join(settings.path("reports_dir"), date)
    os.makedirs(out_dir, exist_ok=True)
    for name in OUTPUTS:  # a failed re-run must not leave the previous run's report looking current
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    executed = os.path.join(out_dir, "monitoring.ipynb")
    html = os.path.join(out_dir, "monitoring.html")
    notebooks = settings.path("notebooks_dir")
    with stage_run(settings, "report", date) as rec:
        try:
            with kernel_stderr_to(os.path.join(out_dir, "kernel.log")):
                pm.execute_notebook(os.path.join(notebooks, NOTEBOOK), executed,
                                    parameters=parameters(settings, date, out_dir),
                                    progress_bar=False, cwd=notebooks)
        except PapermillExecutionError as exc:
            raise StageStopped(
                f"report {date}: notebook {failed_cell(executed, exc)} failed with {exc.ename}: "
                f"{exc.evalue.splitlines()[0] if exc.evalue else ''} (executed notebook kept at {executed})",
                exit_code=ExitCode.REPORT_FAILED, status=RunStatus.FAILED) from None
        to_html(executed, html, os.path.join(notebooks, TEMPLATE))
        alerts_file = os.path.join(out_dir, "alerts.json")
        with open(alerts_file, encoding="utf-8") as f:
            payload = json.load(f)
        rec.outputs.update({"html": html, "metrics": os.path.join(out_dir, "metrics.json"), "alerts": alerts_file,
                            "status": payload["status"], "n_alerts": len(payload["alerts"])})
        with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as f:
            figures = json.load(f)
        try:
            rec.outputs.update(metrics.publish(settings, metrics.of_report(figures, payload, rec.run_id,
                                                                           rec.started_at)))
        except Exception as exc:  # the report is written; say that its metrics are missing
            print(f"warning: report {date}: metrics not published: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:300] if str(exc) else ''}", file=sys.stderr)
        message_id = publish_alerts(settings, payload, html)
        if message_id:
            rec.outputs["sns_message_id"] = message_id
        rec.message = f"{payload['status']}: {len(payload['alerts'])} alerts" if payload["alerts"] else ""
        critical = [a for a in payload["alerts"] if a["severity"] == "critical"]
        if critical:
            raise StageStopped(f"report {date}: {len(critical)} critical alert(s): {brief(critical)}; see {html}",
                               exit_code=ExitCode.CRITICAL_ALERT, status=RunStatus.ALERTED)
    return rec

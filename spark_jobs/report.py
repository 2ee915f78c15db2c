"""Report job: execute the monitoring notebook with papermill, publish HTML without code.

Outputs in reports/<run_date>/: monitoring.html, monitoring.ipynb (the executed notebook, kept
also when a cell fails), metrics.json (written by the notebook).
"""
from __future__ import annotations

import os

from .runlog import RunRecord, StageStopped, stage_run
from .settings import Settings

EXIT_REPORT_FAILED = 6
NOTEBOOK = "monitoring_report.ipynb"


def to_html(executed_notebook: str, html_path: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed_notebook, as_version=4))
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(body)


def run(settings: Settings, date: str) -> RunRecord:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir = os.path.join(settings.path("reports_dir"), date)
    os.makedirs(out_dir, exist_ok=True)
    executed = os.path.join(out_dir, "monitoring.ipynb")
    html = os.path.join(out_dir, "monitoring.html")
    with stage_run(settings, "report", date) as rec:
        try:
            pm.execute_notebook(
                os.path.join(settings.path("notebooks_dir"), NOTEBOOK), executed,
                parameters={"run_date": date, "warehouse_path": settings.path("warehouse_path"), "output_dir": out_dir},
                progress_bar=False, cwd=settings.path("notebooks_dir"),
            )
        except PapermillExecutionError as exc:
            raise StageStopped(
                f"report {date}: notebook cell {exc.exec_count} failed with {exc.ename}: {exc.evalue} "
                f"(executed notebook kept at {executed})", exit_code=EXIT_REPORT_FAILED, status="failed") from None
        to_html(executed, html)
        rec.outputs.update({"html": html, "metrics": os.path.join(out_dir, "metrics.json")})
    return rec

"""The monitoring report's sections as functions: data frames in, figures, alerts and a one-line
verdict out (a `Section`), plus the few HTML snippets the notebook displays.

notebooks/monitoring_report.ipynb reads its inputs with report_inputs.load, calls one function per
section (integrity, outputs, drift, quality, health), plots what `Section.plot` holds and shows the
verdicts; it holds no SQL, no paths and no threshold logic. Every function here is pure (the sentence
embedder comes in as a callable) and unit-tested on tiny frames (tests/report/test_sections.py).

Every value that comes from data or configuration (model names and tags, alert and run messages,
expectation names, words) is HTML-escaped before it is put into markup.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import monitoring as M
from .report_inputs import Lineage, Window
from .vocabulary import LABELS, REPORT_SECTIONS, SEGMENTS

TITLES = {"integrity": "Data integrity", "outputs": "Outputs", "drift": "Drift", "quality": "Model quality",
          "pipeline": "Pipeline health"}
STATUS = {"ok": ("OK", "#1a7f37", "#e8f5ec"), "warning": ("WARNING", "#9a6700", "#fff6d6"),
          "critical": ("CRITICAL", "#c62828", "#fdecea")}
DRIFT_STATISTICS = {"psi_confidence": "PSI confidence", "psi_text_length": "PSI text length",
                    "label_js": "JS label mix", "token_js": "JS tokens", "oov_rate": "OOV rate",
                    "embedding_distance": "embedding distance"}
assert set(TITLES) == set(REPORT_SECTIONS)


@dataclass
class Section:
    name: str               # one of REPORT_SECTIONS
    metrics: dict           # the section's part of metrics.json
    alerts: list            # monitoring.Alert, the crossed thresholds and events of the section
    verdict: str            # the one line shown when nothing crossed a threshold (plain text)
    plot: dict = field(default_factory=dict)   # what the notebook plots

    @property
    def status(self) -> str:
        return M.worst(self.alerts)


def num(x, digits: int = 6) -> float | None:
    return None if x is None or pd.isna(x) else round(float(x), digits)


def _alerts(section: str, values: Mapping, rules: Sequence[M.Rule], extra: Iterable[M.Alert] = ()) -> list:
    return M.evaluate(values, [r for r in rules if r.section == section]) + list(extra)


def _in(frame: pd.DataFrame, dates: Sequence[str]) -> pd.DataFrame:
    return frame[frame.d.isin(list(dates))]


# --- 1. data integrity --------------------------------------------------------------------------------------
def gx_warnings(validation: Mapping | None, landed: int) -> list[M.Alert]:
    """Failed Great Expectations expectations of severity `warning` (critical ones either blocked the
    batch or sent rows to quarantine), one event alert each."""
    found = []
    for result in (validation or {}).get("results", []):
        cfg = result.get("expectation_config") or {}
        if result.get("success") or cfg.get("severity") != "warning":
            continue
        name = f"{cfg.get('type')}({(cfg.get('kwargs') or {}).get('column', '')})"
        rows = (result.get("result") or {}).get("unexpected_count")
        found.append(M.Alert("warning", "integrity", "gx_warning", float(rows or 0), None,
                             f"Great Expectations warning {name}: {rows} of {landed} rows"))
    return found


def integrity(quality: pd.DataFrame, window: Window, validation: Mapping | None, rules: Sequence[M.Rule]) -> Section:
    """Batch size against the baseline median, quarantined and duplicate shares, GX warnings."""
    dq = _in(quality, window.dates).drop_duplicates("d").set_index("d").reindex(window.dates)
    run_date = window.run_date
    if pd.isna(dq.loc[run_date, "landed"]):
        raise ValueError(f"mart_data_quality has no ingest run for {run_date}: was the batch ingested?")
    today = dq.loc[run_date]
    landed = int(today.landed)
    norm = num(dq.loc[window.baseline, "landed"].median()) if window.baseline else None
    metrics = {
        "landed": landed, "curated": int(today.curated), "quarantined": int(today.quarantined),
        "duplicates": int(today.duplicates), "baseline_median_landed": norm,
        "batch_size_change": num(abs(landed - norm) / norm) if norm else None,
        "quarantine_share": num(today.quarantined / landed) if landed else None,
        "duplicate_share": num(today.duplicates / landed) if landed else None,
        "top_reasons": today.top_reasons if isinstance(today.top_reasons, str) else None,
    }
    events = gx_warnings(validation, landed)
    metrics["gx_warnings"] = [a.message for a in events]
    change = f"{(landed - norm) / norm:+.0%} against the baseline median of {norm:,.0f}" if norm else "no baseline yet"
    verdict = (f"{landed:,} rows landed ({change}); {metrics['quarantine_share'] or 0:.1%} quarantined "
               f"(top reasons: {metrics['top_reasons'] or 'none'}), {metrics['duplicates']:,} duplicates; "
               "no Great Expectations warnings.")
    return Section("integrity", metrics, _alerts("integrity", metrics, rules, events), verdict,
                   {"batches": dq, "baseline_median": norm})


# --- 2. outputs ------------------------------------------------------------------------------------------
def label_order(labels: Iterable[str]) -> list[str]:
    return list(LABELS) + sorted(set(labels) - set(LABELS))


def outputs(predictions: pd.DataFrame, window: Window, flags: Mapping[str, int], rules: Sequence[M.Rule],
            low_confidence: float) -> Section:
    """The day's label mix against the baseline, its confidence and low-confidence share, flags."""
    preds = _in(predictions, window.dates)
    day, base = preds[preds.d == window.run_date], _in(preds, window.baseline)
    labels = label_order(preds.label)
    shares = (preds.groupby("d").label.value_counts(normalize=True).unstack(fill_value=0)
              .reindex(columns=labels, fill_value=0))
    if len(base):
        shares.loc["baseline"] = base.label.value_counts(normalize=True).reindex(labels, fill_value=0)
    shares = shares.reindex(window.baseline + (["baseline"] if len(base) else []) + [window.run_date]).fillna(0)
    low_share = float((day.confidence < low_confidence).mean()) if len(day) else None
    metrics = {
        "n_predictions": int(len(day)), "mean_confidence": num(day.confidence.mean(), 12),
        "low_confidence_share": num(low_share, 12), "label_shares": shares.loc[window.run_date].round(6).to_dict(),
        "baseline_label_shares": shares.loc["baseline"].round(6).to_dict() if len(base) else None,
        "baseline_mean_confidence": num(base.confidence.mean()) if len(base) else None,
        "flags": {k: int(v) for k, v in sorted(flags.items())},
    }
    mix = ", ".join(f"{metrics['label_shares'][label]:.0%} {label}" for label in labels)
    was = ", ".join(f"{metrics['baseline_label_shares'][label]:.0%}" for label in labels) if len(base) else None
    verdict = (f"{len(day):,} predictions: {mix}{f' (baseline {was})' if was else ''}; mean confidence "
               f"{day.confidence.mean():.2f}; {low_share or 0:.1%} below {low_confidence:g}"
               + (f"; flagged: {', '.join(f'{k} {v}' for k, v in metrics['flags'].items())}." if flags else "."))
    lows = preds.assign(low=preds.confidence < low_confidence).groupby("d").low.mean().reindex(window.dates)
    return Section("outputs", metrics, _alerts("outputs", metrics, rules), verdict,
                   {"shares": shares, "labels": labels, "day": day, "baseline": base, "low_shares": lows})


# --- 3. drift --------------------------------------------------------------------------------------------
def sample(docs: pd.DataFrame, size: int) -> list[str]:
    """A fixed-size sample, the same on every run: the texts first by their hash (sorted by Arrow: a
    day may hold a million)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    order = pc.sort_indices(pa.array(docs.text_hash.to_numpy(), pa.string()))  # nulls last, as pandas
    return docs.text.iloc[order[:size].to_numpy()].tolist()


def segment_drift(predictions: pd.DataFrame, window: Window, min_rows: int) -> list[dict]:
    """Drift of the label mix (JS distance) and of the confidence (PSI) per department and per product
    of each source, for segments with at least `min_rows` predictions on the day and in the baseline;
    most drifted first. Products without an id are no segment; a missing department is `(none)`."""
    # Row positions grouped by (source, value), the two key columns only: a day has a million rows,
    # and neither the frame nor a group is copied unless the segment is big enough to be measured.
    dates = predictions.d.to_numpy()
    day_at = np.flatnonzero(dates == window.run_date)
    base_at = np.flatnonzero(np.isin(dates, list(window.baseline)))
    labels, confidence = predictions.label.to_numpy(), predictions.confidence.to_numpy(dtype=float)
    found = []
    for segment, column in zip(SEGMENTS, ("department", "product_id")):
        keys = predictions[column].fillna("(none)") if segment == "department" else predictions[column]
        pairs = pd.DataFrame({"source": predictions.source.to_numpy(), "value": keys.to_numpy()})
        # positions within the day's (the baseline's) rows, mapped back to the frame's; no key, no group
        base_groups = pairs.iloc[base_at].groupby(["source", "value"]).indices
        for (source, value), rows in pairs.iloc[day_at].groupby(["source", "value"]).indices.items():
            before = base_at[base_groups.get((source, value), [])]
            if len(rows) < min_rows or len(before) < min_rows:
                continue
            after = day_at[rows]
            found.append({"segment": segment, "source": source, "value": value, "n_documents": int(len(after)),
                          "n_baseline_documents": int(len(before)),
                          "label_js": round(M.js_distance(pd.Series(labels[before]).value_counts().to_dict(),
                                                          pd.Series(labels[after]).value_counts().to_dict()), 6),
                          "psi_confidence": round(M.psi(confidence[before], confidence[after]), 6)})
    return sorted(found, key=lambda s: (-s["label_js"], s["segment"], s["source"], s["value"]))


def drift(predictions: pd.DataFrame, documents: pd.DataFrame, training_documents: pd.DataFrame, window: Window,
          rules: Sequence[M.Rule], embed: Callable[[list[str]], np.ndarray] | None = None, sample_size: int = 128,
          segment_min_rows: int = 30) -> Section:
    """The day against the baseline (PSI of confidence and text length, JS distance of the label mix
    and the tokens) and against the model's training data (out-of-vocabulary rate; cosine distance of
    the day's mean sentence embedding from the training centroid, when `embed` is given). The text
    statistics use the texts given, which may be a sample of each date (report_inputs.load): the
    metrics say how many of the day's were read (`n_texts_read`)."""
    preds = _in(predictions, window.dates)
    day, base = preds[preds.d == window.run_date], _in(preds, window.baseline)
    day_docs, base_docs = documents[documents.d == window.run_date], _in(documents, window.baseline)
    day_tokens = M.token_counts(day_docs.text)
    stats: dict = dict.fromkeys(DRIFT_STATISTICS)
    if len(base) and len(day):
        stats.update(psi_confidence=M.psi(base.confidence, day.confidence),
                     label_js=M.js_distance(base.label.value_counts().to_dict(), day.label.value_counts().to_dict()))
    if len(base_docs) and len(day_docs):
        stats.update(psi_text_length=M.psi(base_docs.text.str.len(), day_docs.text.str.len()))
        base_tokens = M.token_counts(base_docs.text)
        if sum(base_tokens.values()) and sum(day_tokens.values()):
            stats["token_js"] = M.token_js_distance(base_tokens, day_tokens)
    unseen, projection = [], None
    if len(training_documents) and sum(day_tokens.values()):
        vocabulary = M.token_counts(training_documents.text)
        stats["oov_rate"] = M.oov_rate(day_tokens, vocabulary)
        unseen = M.unseen_tokens(day_tokens, vocabulary, 12)
    if embed is not None and len(training_documents) and len(day_docs):
        train_vectors = embed(sample(training_documents, sample_size))
        day_vectors = embed(sample(day_docs, sample_size))
        stats["embedding_distance"] = M.cosine_distance(M.centroid(day_vectors), M.centroid(train_vectors))
        mean = train_vectors.mean(0)   # a 2-D map: both samples on the training sample's two main directions
        axes = np.linalg.svd(train_vectors - mean, full_matrices=False)[2][:2]
        projection = ((train_vectors - mean) @ axes.T, (day_vectors - mean) @ axes.T)
    metrics = {k: num(v) for k, v in stats.items()}
    metrics["unseen_tokens"] = [w for w, _ in unseen]
    metrics["unseen_token_counts"] = [n for _, n in unseen]
    metrics["segments"] = segment_drift(preds, window, segment_min_rows)
    metrics["n_texts_read"] = len(day_docs)
    measured = ", ".join(f"{DRIFT_STATISTICS[k]} {v:.3g}" for k, v in metrics.items()
                         if k in DRIFT_STATISTICS and v is not None)
    verdict = (f"No drift: every statistic below its warning threshold ({measured})."
               + ("" if window.baseline else " PSI and JS distances start with the next date (no earlier date yet)."))
    return Section("drift", metrics, _alerts("drift", metrics, rules), verdict,
                   {"day_lengths": day_docs.text.str.len(), "baseline_lengths": base_docs.text.str.len(),
                    "projection": projection, "unseen": unseen, "texts": (len(day_docs), len(day))})


# --- 4. model quality --------------------------------------------------------------------------------------
def per_class(confusion: pd.DataFrame, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of each class from (true_label, predicted_label, n) counts; a class
    never predicted (or never true) has no precision (recall)."""
    out: dict[str, dict[str, float]] = {"precision": {}, "recall": {}, "f1": {}}
    if not len(confusion):
        return out
    for label in labels:
        tp = float(confusion[(confusion.true_label == label) & (confusion.predicted_label == label)].n.sum())
        predicted = float(confusion[confusion.predicted_label == label].n.sum())
        true = float(confusion[confusion.true_label == label].n.sum())
        if predicted:
            out["precision"][label] = round(tp / predicted, 6)
        if true:
            out["recall"][label] = round(tp / true, 6)
        if predicted and true:
            p, r = tp / predicted, tp / true
            out["f1"][label] = round(2 * p * r / (p + r), 6) if p + r else 0.0
    return out


def confusion_matrix(confusion: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    classes = [label for label in labels if label in set(confusion.true_label) | set(confusion.predicted_label)]
    return (confusion.pivot_table(index="true_label", columns="predicted_label", values="n", aggfunc="sum",
                                  fill_value=0).reindex(index=classes, columns=classes, fill_value=0).astype(int))


def quality(performance: pd.DataFrame, confusion: pd.DataFrame, pairs: pd.DataFrame, window: Window, version: int,
            test_macro_f1: float | None, rules: Sequence[M.Rule], n_scored: int | None = None) -> Section:
    """Accuracy and macro-F1 of the version that scored the day against its test macro-F1, per-class
    precision and recall, agreement with the shadow challenger (on the rows it scored: of `n_scored`,
    the day's predictions, when it scored a sample)."""
    perf = _in(performance, window.dates)
    mine = perf[(perf.d == window.run_date) & (perf.scored_as == "champion") & (perf.model_version == version)]
    pairs = _in(pairs, window.dates)
    today = pairs[pairs.d == window.run_date].tail(1)
    labels = label_order(set(confusion.true_label) | set(confusion.predicted_label))
    metrics = {"n_labelled": int(mine.n_labelled.iloc[0]) if len(mine) else 0,
               "accuracy": num(mine.accuracy.iloc[0]) if len(mine) else None,
               "macro_f1": num(mine.macro_f1.iloc[0]) if len(mine) else None, "test_macro_f1": test_macro_f1,
               "challenger_version": int(today.challenger_version.iloc[0]) if len(today) else None,
               "challenger_agreement": num(today.agreement_rate.iloc[0]) if len(today) else None,
               **per_class(confusion, labels)}
    metrics["macro_f1_drop"] = (num(test_macro_f1 - metrics["macro_f1"])
                                if test_macro_f1 is not None and metrics["macro_f1"] is not None else None)
    if metrics["macro_f1"] is not None:
        said = (f"v{version} on {metrics['n_labelled']:,} labelled texts: accuracy {metrics['accuracy']:.2f}, "
                f"macro-F1 {metrics['macro_f1']:.2f}" + (f" (test {test_macro_f1:.2f})" if test_macro_f1 is not None
                                                          else ""))
    else:
        said = f"no labels for {window.run_date} yet: quality is measured when they arrive"
    if metrics["challenger_agreement"] is not None:
        compared = int(today.n_compared.iloc[0])
        said += (f"; challenger v{metrics['challenger_version']} agrees on {metrics['challenger_agreement']:.0%} "
                 f"of {compared:,} texts")
        if n_scored and compared < n_scored:
            metrics["challenger_sample_share"] = num(compared / n_scored)
            said += (f" (the {compared / n_scored:.0%} of the day it scored in shadow: settings shadow_share, "
                     "shadow_max_rows)")
    else:
        said += "; no challenger in shadow"
    return Section("quality", metrics, _alerts("quality", metrics, rules), said + ".",
                   {"performance": perf, "matrix": confusion_matrix(confusion, labels) if len(confusion) else None,
                    "pairs": pairs})


# --- 5. pipeline health ------------------------------------------------------------------------------------
def health(runs: pd.DataFrame, window: Window, price: tuple[float, float], emr_profile: str,
           pipeline_target: str, rules: Sequence[M.Rule]) -> Section:
    """Stage durations and the run's total against its budget, inference throughput, failures and
    retries, and what scoring costs on the EMR profile at the measured throughput (`price`: dollars per
    hour and typical hours per run, report_inputs.cluster_price)."""
    runs = _in(runs, window.dates)
    failure = runs.is_failure.fillna(False).astype(bool)
    retried = runs.attempt.fillna(1) > 1
    durations = (runs.pivot_table(index="d", columns="stage", values="seconds", aggfunc="sum")
                 .reindex(window.dates).fillna(0) if len(runs) else pd.DataFrame(index=window.dates))
    infer = runs[(runs.stage == "infer") & (runs.status == "succeeded")].groupby("d").tail(1).set_index("d")
    throughput = infer.rows_per_second.reindex(window.dates)
    today = runs.d == window.run_date
    failed_today = runs[today & failure]
    per_hour, run_hours = price
    speed = num(throughput.get(window.run_date), 2)
    metrics = {"stage_seconds": {k: num(v, 2) for k, v in durations.loc[window.run_date].items()},
               "run_seconds": num(durations.loc[window.run_date].sum(), 2),
               "infer_rows_per_second": speed, "failed_runs": int(len(failed_today)),
               "retries": int((today & retried).sum()), "emr_profile": emr_profile,
               "emr_dollars_per_hour": num(per_hour, 4),
               "emr_dollars_per_million_texts": num(M.dollars_per_million(per_hour, speed), 2) if speed else None,
               "emr_dollars_per_run_overhead": num(per_hour * run_hours, 2)}
    events = ([M.Alert("warning", "pipeline", "failed_runs", float(len(failed_today)), None,
                       f"{len(failed_today)} failed stage run(s) for this batch: "
                       + "; ".join(f"{r.stage} ({(r.message or r.status)[:120]})" for r in failed_today.itertuples()))]
              if len(failed_today) else [])
    where = "measured on EMR" if pipeline_target == "emr" else "measured locally: a rough proxy for an EMR core node"
    cost = (f"scoring on the EMR {emr_profile} profile (${per_hour:.2f}/h) would cost about "
            f"${metrics['emr_dollars_per_million_texts']:,.2f} per million texts at {speed:,.0f} texts/s ({where}), "
            f"plus ~${metrics['emr_dollars_per_run_overhead']:.2f} per run for start-up and bootstrap"
            if metrics["emr_dollars_per_million_texts"] is not None else "no inference throughput measured for this batch")
    retries = f" ({metrics['retries']} after a retry)" if metrics["retries"] else ""
    verdict = (f"Every stage of {window.run_date} succeeded{retries}, {metrics['run_seconds'] or 0:,.0f} s in all; "
               f"{cost}.")
    return Section("pipeline", metrics, _alerts("pipeline", metrics, rules, events), verdict,
                   {"durations": durations, "throughput": throughput,
                    "troubles": runs[failure | retried][["d", "stage", "status", "attempt", "seconds", "message"]]})


# --- the day as a whole ------------------------------------------------------------------------------------
def alerts_of(sections: Iterable[Section]) -> list[M.Alert]:
    """Every alert of the day, critical first (in section order within a severity)."""
    found = [a for s in sections for a in s.alerts]
    return sorted(found, key=lambda a: a.severity != "critical")


def headline(alerts: Sequence[M.Alert]) -> str:
    status = M.worst(alerts)
    return {"ok": "Results can be trusted: no threshold crossed.",
            "warning": f"Usable with care: {len(alerts)} warning(s).",
            "critical": f"Do not trust this batch without a look: "
                        f"{sum(a.severity == 'critical' for a in alerts)} critical alert(s)."}[status]


def figures(window: Window, lineage: Lineage, sections: Sequence[Section]) -> dict:
    """metrics.json: the day, the model, and each section's figures (a few outputs at the top level too,
    as before the sections existed)."""
    by_name = {s.name: s for s in sections}
    out = {"run_date": window.run_date, "model_name": lineage.model_name, "model_version": lineage.version,
           "baseline_dates": window.baseline, "training_dates": lineage.training_dates,
           "retraining": lineage.retrained}
    out.update({s.name: s.metrics for s in sections})
    if "outputs" in by_name:
        o = by_name["outputs"].metrics
        out.update({"n_predictions": o["n_predictions"], "mean_confidence": o["mean_confidence"],
                    "share_low_confidence": o["low_confidence_share"], "label_shares": o["label_shares"]})
    return out


def payload(window: Window, lineage: Lineage, alerts: Sequence[M.Alert]) -> dict:
    """alerts.json."""
    return {"run_date": window.run_date, "status": M.worst(alerts), "model_name": lineage.model_name,
            "model_version": lineage.version, "alerts": [a.as_dict() for a in alerts]}


def write_results(output_dir: str, metrics: Mapping, alerts: Mapping) -> None:
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    with open(os.path.join(output_dir, "alerts.json"), "w", encoding="utf-8") as f:
        json.dump(alerts, f, indent=2)


# --- HTML (every value escaped) ---------------------------------------------------------------------------
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def badge(status: str, text: str, bold: bool = False) -> str:
    label, fg, bg = STATUS[status]
    body = f"<b>{esc(text)}</b>" if bold else esc(text)
    return (f'<div style="border-left: 6px solid {fg}; background: {bg}; padding: 8px 12px; margin: 6px 0; '
            f'font-size: 14px"><b style="color: {fg}">{label}</b> &nbsp;{body}</div>')


def verdict_html(section: Section) -> str:
    """The section's badge: its alerts' messages, or its verdict when none."""
    text = "; ".join(a.message for a in section.alerts) if section.alerts else section.verdict
    return badge(section.status, text)


def header_html(window: Window, lineage: Lineage) -> str:
    training = ", ".join(lineage.training_dates) or "unknown dates"
    text = (f"{lineage.model_name} v{lineage.version} ({lineage.tags.get('pipeline', '?')}); baseline: "
            f"{', '.join(window.baseline) or 'none (first scored date)'}; trained on {training}.")
    out = f"<h1>Monitoring report {esc(window.run_date)}</h1><p>{esc(text)}</p>"
    retrained = lineage.retrained
    if retrained:
        role = (", ".join(retrained["aliases"]) or "not promoted, no alias")
        out += (f"<p>Last retraining: v{esc(retrained['version'])} ({esc(role)}), started by the report of "
                f"{esc(retrained['trigger_date'])}: {esc(retrained['reason'])}.</p>")
    return out


def summary_html(sections: Sequence[Section]) -> str:
    """The summary at the top: the day's status, one row per section, the alerts."""
    alerts = alerts_of(sections)
    rows = "".join(f"<tr><td>{TITLES[s.name]}</td><td style='color:{STATUS[s.status][1]}'><b>{STATUS[s.status][0]}"
                   f"</b></td></tr>" for s in sections)
    items = "".join(f"<li><b style='color:{STATUS[a.severity][1]}'>{a.severity}</b> {TITLES[a.section]}: "
                    f"{esc(a.message)}</li>" for a in alerts)
    return (badge(M.worst(alerts), headline(alerts), bold=True) + f"<table>{rows}</table>"
            + (f"<ul>{items}</ul>" if alerts else ""))


def table_html(frame: pd.DataFrame) -> str:
    """A frame as an HTML table, every cell escaped."""
    return frame.to_html(index=False, na_rep="", escape=True)


def alerts_html(alerts: Sequence[M.Alert]) -> str:
    if not alerts:
        return badge("ok", "No alerts.")
    frame = pd.DataFrame([a.as_dict() for a in alerts]).assign(section=lambda f: f.section.map(TITLES))
    return table_html(frame[["severity", "section", "metric", "value", "threshold", "message"]])


def text_sample_html(read: int, scored: int) -> str:
    """Says that the text statistics come from a sample, when they do."""
    if read >= scored:
        return ""
    return (f"<p>Text statistics from {read:,} of the day's {scored:,} texts: the first by text hash, the same "
            "texts on every run (setting report_text_sample).</p>")


def words_html(unseen: Sequence[tuple[str, int]]) -> str:
    if not unseen:
        return ""
    return ("<p>Most frequent words the training data never saw: "
            + ", ".join(f"<i>{esc(w)}</i> ({int(n)})" for w, n in unseen) + "</p>")


def segments_html(segments: Sequence[Mapping], top: int = 5) -> str:
    if not segments:
        return ""
    frame = (pd.DataFrame(list(segments)[:top])
             [["segment", "source", "value", "n_documents", "n_baseline_documents", "label_js", "psi_confidence"]]
             .round(3).rename(columns={"value": "department or product", "n_documents": "texts",
                                       "n_baseline_documents": "baseline texts", "label_js": "JS label mix",
                                       "psi_confidence": "PSI confidence"}))
    return "<p>Most drifted segments (label mix against the baseline):</p>" + table_html(frame)

"""Data Docs of one batch: a single HTML page rendered from the Great Expectations validation result.

Great Expectations' own Data Docs site loads Bootstrap, jQuery, Vega and fonts from CDNs: offline, or in
a VPC without internet access, it shows unstyled and with its status column empty. This page has its
styles inline and no script, so it reads the same from a laptop, an S3 download or an air-gapped node.
Every value on it is HTML-escaped, and it shows counts and shares, never the rows' values: the failing
rows themselves are in the quarantine zone, with their reasons.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .quality import GateResult

_STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } p.sub { color: #666; margin: 0 0 16px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 3px; font-weight: 600; font-size: 12px; }
.pass { background: #e8f5ec; color: #1a7f37; } .warn { background: #fff6d6; color: #9a6700; }
.fail { background: #fdecea; color: #c62828; } .block { background: #c62828; color: #fff; }
table { border-collapse: collapse; margin-top: 12px; } th, td { padding: 5px 10px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top; } th { background: #f5f5f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.summary { border-left: 6px solid; padding: 8px 12px; margin: 8px 0 0; } .notes { color: #555; font-size: 12px; }
"""


def _status(outcome) -> tuple[str, str]:
    if outcome.blocking:
        return "block", "BLOCKS THE BATCH"
    if outcome.success:
        return "pass", "passed"
    return ("fail", "failed (rows quarantined)") if outcome.severity == "critical" else ("warn", "warning")


def render(gate: "GateResult", title: str, notes: dict[str, str] | None = None, lost: str | None = None) -> str:
    """The page for one validation: a verdict, then one row per expectation (and the lost-records
    rule when it blocks: `lost` says why)."""
    e = html.escape
    notes = notes or {}
    failed = [o for o in gate.outcomes if not o.success]
    if lost:
        verdict, colour = f"Blocked: {lost}", "#c62828"
    elif gate.blocked:
        verdict, colour = f"Blocked: {len(gate.blocking_failures)} critical expectation(s) failed.", "#c62828"
    elif failed:
        verdict, colour = f"Passed with {len(failed)} failed expectation(s) below the blocking share.", "#9a6700"
    else:
        verdict, colour = "Passed: every expectation met.", "#1a7f37"
    rows = []
    for o in gate.outcomes:
        kind, label = _status(o)
        share = (f"{o.unexpected_count / o.element_count:.1%}" if o.element_count and o.unexpected_count is not None
                 else "")
        counted = "" if o.unexpected_count is None else f"{o.unexpected_count:,} / {o.element_count or 0:,}"
        note = notes.get(f"{o.expectation}({o.column or ''})", "")
        rows.append(
            f"<tr><td>{e(o.expectation)}</td><td>{e(o.column or '')}</td><td>{e(o.severity)}</td>"
            f"<td><span class='badge {kind}'>{e(label)}</span></td><td class='n'>{e(counted)}</td>"
            f"<td class='n'>{e(share)}</td><td class='notes'>{e(note)}</td></tr>")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{e(title)}</h1><p class='sub'>Great Expectations suite <b>{e(gate.suite)}</b>; critical "
        "expectations block the batch above the failing share the settings allow, warnings never do.</p>"
        f"<div class='summary' style='border-color: {colour}'><b style='color: {colour}'>{e(verdict)}</b></div>"
        "<table><tr><th>expectation</th><th>column</th><th>severity</th><th>result</th><th>unexpected / rows</th>"
        "<th>share</th><th>about</th></tr>" + "".join(rows) + "</table></body></html>\n")

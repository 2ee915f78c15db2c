"""Great Expectations gate for a batch, and the row-level reasons that feed the quarantine.

The suite is JSON under expectations/. Each row-level expectation names a `meta.reason`; the same
predicate is computed here in Spark (ROW_CHECKS) so every rejected row carries its reasons without
collecting GX's per-row results to the driver. tests/unit/test_quality.py checks the two agree.
"""
from __future__ import annotations

import functools
import json
import logging
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .vocabulary import MAX_FIELD_CHARS

INTEGER_PATTERN = r"^\s*-?[0-9]+(\.0+)?\s*$"  # 4 and 4.0 are whole numbers; 4.5 is not
# Ids and names a warehouse column must hold; `longest_field` is the longest of them in a row.
BOUNDED_FIELDS = ("review_id", "product_id", "department", "class")

# reason -> predicate that is TRUE for a row that fails (built lazily: Columns need a session). Every
# reason but `unreadable` has its expectation in the suite; `unreadable` rows are no records (bytes
# that held none) and are judged by the lost-records rule (census.py), not by the suite.
ROW_CHECKS: dict[str, Callable[[], Column]] = {
    "source_columns_missing": lambda: F.col("missing_columns").isNotNull(),
    "unreadable": lambda: F.col("unreadable").isNotNull(),
    "malformed_record": lambda: F.col("parse_error").isNotNull(),
    "review_id_missing": lambda: F.col("review_id").isNull(),
    "text_empty": lambda: F.col("text").isNull(),
    "field_too_long": lambda: F.col("longest_field") > MAX_FIELD_CHARS,
    "rating_not_integer": lambda: F.col("rating_raw").isNotNull() & ~F.col("rating_raw").rlike(INTEGER_PATTERN),
    "rating_out_of_range": lambda: F.col("rating").isNotNull() & ((F.col("rating") < 1) | (F.col("rating") > 5)),
}


def may_fail(records: pa.Table) -> np.ndarray:
    """True for each cleaned record (documents.clean_table's table, before Spark) that ROW_CHECKS may
    fail: a superset, loose on purpose (a rating other than a bare 1 to 5 counts), so that a record it
    clears passes them for certain. The parse builds the raw record, which only quarantine keeps, for
    these records alone. tests/unit/test_quality.py checks, on the edge of every check, that every
    record it clears passes."""
    checks = [pc.is_valid(records.column(c)) for c in ("missing_columns", "unreadable", "parse_error")]
    checks += [pc.is_null(records.column(c)) for c in ("review_id", "text")]
    checks += [pc.greater(pc.utf8_length(records.column(c)), MAX_FIELD_CHARS).fill_null(False) for c in BOUNDED_FIELDS]
    rating = records.column("rating_raw")
    bare = pc.is_in(rating, pa.array(["1", "2", "3", "4", "5"], rating.type))
    checks.append(pc.and_(pc.is_valid(rating), pc.invert(bare)))
    return functools.reduce(pc.or_, checks).to_numpy(zero_copy_only=False)


def longest_field() -> Column:
    """Characters of the longest bounded field of a row (null when all are null)."""
    return F.greatest(*[F.length(F.col(c)) for c in BOUNDED_FIELDS])


def fails_a_check() -> Column:
    """True for a row that fails any row check, false otherwise (never null): whether `with_reasons`
    gives it reasons, as one boolean expression Spark compiles, where the reasons array goes through
    a lambda it interprets row by row."""
    return functools.reduce(operator.or_, [F.coalesce(pred(), F.lit(False)) for pred in ROW_CHECKS.values()])


def with_reasons(df: DataFrame) -> DataFrame:
    """Adds `reasons`: array of the reasons a row fails (empty when it passes). Bytes that held no
    record, and a record that could not be read, get that one reason only: their fields are not what
    the source meant."""
    checks = [F.when(pred(), F.lit(reason)) for reason, pred in ROW_CHECKS.items()]
    reasons = F.filter(F.array(*checks), lambda r: r.isNotNull())
    return df.withColumn("reasons", F.when(ROW_CHECKS["unreadable"](), F.array(F.lit("unreadable")))
                         .when(ROW_CHECKS["malformed_record"](), F.array(F.lit("malformed_record")))
                         .otherwise(reasons))


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    element_count: int | None
    examples: list[str] = field(default_factory=list)
    blocking: bool = False

    def describe(self) -> str:
        where = f"({self.column})" if self.column else ""
        if self.unexpected_count is None:
            return f"{self.expectation}{where}"
        share = self.unexpected_count / self.element_count if self.element_count else 0.0
        seen = f", e.g. {', '.join(repr(e) for e in self.examples)}" if self.examples else ""
        return f"{self.expectation}{where}: {self.unexpected_count}/{self.element_count} rows ({share:.1%}{seen})"


@dataclass
class GateResult:
    suite: str
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    result_json: dict = field(default_factory=dict)    # without the failing values (scrubbed)
    notes: dict[str, str] = field(default_factory=dict)  # "type(column)" -> the suite's meta.notes

    @property
    def blocked(self) -> bool:
        return any(o.blocking for o in self.outcomes)

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.blocking]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


# The only columns whose failing values may be quoted in messages, run records and the validation
# record: they hold the source's column names and the parser's notes, never a review's text. Every
# other column's values are personal data and stay in the lake's tables (quarantine).
QUOTABLE_COLUMNS = ("missing_columns", "parse_error", "unreadable")
_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "unexpected_list", "unexpected_index_list",
               "partial_unexpected_index_list")


def scrubbed(result_json: dict) -> dict:
    """The validation result without the failing rows' values (kept for QUOTABLE_COLUMNS only)."""
    out = dict(result_json)
    out["results"] = []
    for r in result_json.get("results", []):
        r = dict(r)
        column = (r.get("expectation_config") or {}).get("kwargs", {}).get("column")
        if column not in QUOTABLE_COLUMNS and isinstance(r.get("result"), dict):
            r["result"] = {k: v for k, v in r["result"].items() if k not in _VALUE_KEYS}
        out["results"].append(r)
    return out


NOT_RECORDS = ("unreadable",)  # reasons of rows that are no records: the suite never sees them


# GX's result formats for the gate: the counts only, then, for the failing expectations whose values
# may be quoted, up to this many of their failing values. Asking GX for examples of every expectation
# costs one scan of the batch per expectation (a search for failing rows that finds none on a clean day).
COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
EXAMPLES = {"result_format": "BASIC", "partial_unexpected_count": 20}


def _key(type_: str, kwargs: dict) -> tuple[str, str | None]:
    return type_, kwargs.get("column")


def validate(df: DataFrame, suite_path: str | Path, max_failing_share: float) -> GateResult:
    """Runs the suite on df's records (rows that are none, `unreadable`, are left out). A critical
    expectation blocks when it is table-level and fails, or when more than max_failing_share of the
    rows fail it."""
    df = df.where(F.col("unreadable").isNull())
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # our own progress lines suffice
    spec = json.loads(Path(suite_path).read_text(encoding="utf-8"))
    # persist=False: the caller's batch is cached already; GX would cache a second copy of its records
    batch_definition = (context.data_sources.add_spark(name="lake", persist=False)
                        .add_dataframe_asset(name="batch").add_batch_definition_whole_dataframe("whole"))

    def run(suite_spec: dict, result_format: dict):
        suite = context.suites.add(gx.ExpectationSuite(**suite_spec))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite))
        return definition.run(batch_parameters={"dataframe": df}, result_format=result_format)

    result = run(spec, COUNTS_ONLY)
    quotable = {_key(r.expectation_config.type, r.expectation_config.kwargs) for r in result.results
                if not r.success and r.expectation_config.kwargs.get("column") in QUOTABLE_COLUMNS}
    examples = {}
    if quotable:  # a second look, at those expectations only, for values the messages may quote
        again = run({**spec, "name": f"{spec['name']}-examples", "expectations": [
            e for e in spec["expectations"] if _key(e["type"], e["kwargs"]) in quotable]}, EXAMPLES)
        examples = {_key(r.expectation_config.type, r.expectation_config.kwargs):
                    (r.result or {}).get("partial_unexpected_list") or [] for r in again.results}

    gate = GateResult(suite=spec["name"], result_json=scrubbed(result.to_json_dict()),
                      notes={f"{e['type']}({e['kwargs'].get('column', '')})": e.get("meta", {}).get("notes", "")
                             for e in spec["expectations"]})
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        unexpected = res.get("unexpected_count")
        elements = res.get("element_count")
        column = cfg.kwargs.get("column")
        outcome = ExpectationOutcome(
            expectation=cfg.type,
            column=column,
            severity=str(getattr(cfg.severity, "value", cfg.severity)),
            success=bool(r.success),
            unexpected_count=unexpected,
            element_count=elements,
            examples=list(dict.fromkeys(str(v) for v in examples.get(_key(cfg.type, cfg.kwargs), [])
                                        if v is not None))[:3],
        )
        if outcome.severity == "critical" and not outcome.success:
            if r.exception_info and r.exception_info.get("raised_exception"):
                outcome.blocking = True  # could not even evaluate: the column is missing
            elif unexpected is None or not elements:
                outcome.blocking = True  # table-level expectation
            else:
                outcome.blocking = unexpected / elements > max_failing_share
        gate.outcomes.append(outcome)
    return gate

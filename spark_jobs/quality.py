"""Great Expectations gate for a batch, and the row-level reasons that feed the quarantine.

The suite is JSON under expectations/. Each row-level expectation names a `meta.reason`; the same
predicate is computed here in Spark (ROW_CHECKS) so every rejected row carries its reasons without
collecting GX's per-row results to the driver. tests/unit/test_quality.py checks the two agree.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .vocabulary import MAX_FIELD_CHARS

INTEGER_PATTERN = r"^\s*-?[0-9]+(\.0+)?\s*$"  # 4 and 4.0 are whole numbers; 4.5 is not
# Ids and names a warehouse column must hold; `longest_field` is the longest of them in a row.
BOUNDED_FIELDS = ("review_id", "product_id", "department", "class")

# reason -> predicate that is TRUE for a row that fails (built lazily: Columns need a session).
ROW_CHECKS: dict[str, Callable[[], Column]] = {
    "source_columns_missing": lambda: F.col("missing_columns").isNotNull(),
    "malformed_record": lambda: F.col("parse_error").isNotNull(),
    "review_id_missing": lambda: F.col("review_id").isNull(),
    "text_empty": lambda: F.col("text").isNull(),
    "field_too_long": lambda: F.col("longest_field") > MAX_FIELD_CHARS,
    "rating_not_integer": lambda: F.col("rating_raw").isNotNull() & ~F.col("rating_raw").rlike(INTEGER_PATTERN),
    "rating_out_of_range": lambda: F.col("rating").isNotNull() & ((F.col("rating") < 1) | (F.col("rating") > 5)),
}


def longest_field() -> Column:
    """Characters of the longest bounded field of a row (null when all are null)."""
    return F.greatest(*[F.length(F.col(c)) for c in BOUNDED_FIELDS])


def with_reasons(df: DataFrame) -> DataFrame:
    """Adds `reasons`: array of the reasons a row fails (empty when it passes). A record that could
    not be read gets that one reason only: its fields are not what the source meant."""
    checks = [F.when(pred(), F.lit(reason)) for reason, pred in ROW_CHECKS.items()]
    reasons = F.filter(F.array(*checks), lambda r: r.isNotNull())
    return df.withColumn("reasons", F.when(ROW_CHECKS["malformed_record"](), F.array(F.lit("malformed_record")))
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
    result_json: dict = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return any(o.blocking for o in self.outcomes)

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.blocking]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


def load_suite(path: str | Path):
    import great_expectations as gx

    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    return gx.ExpectationSuite(**spec)


def validate(df: DataFrame, suite_path: str | Path, max_failing_share: float,
             docs_dir: str | None = None) -> GateResult:
    """Runs the suite on df. A critical expectation blocks when it is table-level and fails, or
    when more than max_failing_share of the rows fail it. With docs_dir, GX Data Docs (HTML) for
    this validation are built there."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # our own progress lines suffice
    actions = []
    if docs_dir:
        context.add_data_docs_site("batch", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=["batch"]))
    suite = context.suites.add(load_suite(suite_path))
    batch_definition = (context.data_sources.add_spark(name="lake")
                        .add_dataframe_asset(name="batch").add_batch_definition_whole_dataframe("whole"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="gate", data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="ingest_gate", validation_definitions=[definition], actions=actions, result_format="SUMMARY"))
    result = next(iter(checkpoint.run(batch_parameters={"dataframe": df}).run_results.values()))

    gate = GateResult(suite=suite.name, result_json=result.to_json_dict())
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        unexpected = res.get("unexpected_count")
        elements = res.get("element_count")
        outcome = ExpectationOutcome(
            expectation=cfg.type,
            column=cfg.kwargs.get("column"),
            severity=str(getattr(cfg.severity, "value", cfg.severity)),
            success=bool(r.success),
            unexpected_count=unexpected,
            element_count=elements,
            examples=list(dict.fromkeys(str(v) for v in res.get("partial_unexpected_list") or [] if v is not None))[:3],
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

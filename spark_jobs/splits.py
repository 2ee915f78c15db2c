"""The frozen split of labelled documents, and a model scored on it.

A review's split is fixed by a hash of its review_id (buckets 0..99: test, validation, then train),
so it is in the same split on every machine, run and retraining: two models are always compared on
the same documents, and inference can tell which documents a model was fitted on. Training,
promotion and inference all read the rule from here.
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import tables
from .nlp import LABELS, predictions_from
from .settings import Settings
from .spark import scoring_partitions


def split_bucket(review_id) -> F.Column:
    """0..99, fixed per review_id on every machine and run: the split never drifts."""
    return F.pmod(F.xxhash64(review_id), F.lit(100))


def split_cuts(test_fraction: float, validation_fraction: float) -> tuple[int, int]:
    """Buckets [0, test_cut) are test, [test_cut, train_cut) validation, the rest train."""
    test_cut = int(round(test_fraction * 100))
    return test_cut, test_cut + int(round(validation_fraction * 100))


def in_train_split(review_id, test_fraction: float, validation_fraction: float) -> F.Column:
    return split_bucket(review_id) >= split_cuts(test_fraction, validation_fraction)[1]


def frozen_split(labelled: DataFrame, test_fraction: float, validation_fraction: float):
    """-> (train, validation, test), by bucket."""
    bucket = split_bucket(F.col("review_id"))
    test_cut, train_cut = split_cuts(test_fraction, validation_fraction)
    return (labelled.where(bucket >= train_cut), labelled.where((bucket >= test_cut) & (bucket < train_cut)),
            labelled.where(bucket < test_cut))


def labelled_documents(spark: SparkSession, settings: Settings, dates: list[str]) -> DataFrame:
    """The committed curated documents of the dates that have a label (with their ingest_date: where
    the embeddings table keeps their vectors)."""
    batches = tables.committed(settings)
    curated = tables.read(spark, settings, "curated", dates, batches)
    labels = tables.read(spark, settings, "labels", dates, batches)
    return (curated.select("review_id", "ingest_date", "title", "text")
            .join(labels.select("review_id", "ingest_date", "label"), ["review_id", "ingest_date"]))


def scored_frame(model, labelled: DataFrame, max_pieces: int) -> pd.DataFrame:
    """The model's predictions on labelled rows, collected: review_id, truth, label, confidence, scores."""
    preds = predictions_from(model.transform(labelled), "", "", "", max_pieces)
    return (preds.join(labelled.select("review_id", F.col("label").alias("truth")), "review_id")
            .select("review_id", "truth", "label", "confidence", *[f"score_{c}" for c in LABELS])
            .toPandas().sort_values("review_id", ignore_index=True))


class Splits:
    """The frozen splits of every labelled document up to a date, cached once for all pipelines."""

    def __init__(self, spark: SparkSession, settings: Settings, dates: list[str]):
        self.dates = dates
        data = labelled_documents(spark, settings, dates)
        train, validation, test = frozen_split(data, settings.test_fraction, settings.validation_fraction)
        if settings.train_max_rows:
            train = train.orderBy(F.xxhash64("review_id")).limit(settings.train_max_rows)
        parts = scoring_partitions(spark, settings)
        self.train, self.validation, self.test = (
            d.repartition(parts, "review_id").cache() for d in (train, validation, test))
        self.counts = {n: d.count() for n, d in (("train", self.train), ("validation", self.validation), ("test", self.test))}
        self.test_texts = self.test.select("review_id", "text").toPandas().set_index("review_id")["text"]

    def release(self) -> None:
        for d in (self.train, self.validation, self.test):
            d.unpersist()

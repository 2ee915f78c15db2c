"""The embeddings table: each text's sentence embedding, computed once per encoder.

The MiniLM encoder is the costly part of a run (benchmarks/README.md), and the same texts reach it
again and again: training embeds every labelled document, then the challenger's shadow scores the
same days, a retrain fits on them once more, and the promotion gate scores the test split. A model
whose pipeline holds an encoder is therefore applied in two halves:

1. its encoder stages run only on the texts the table does not hold for that encoder yet, and
   their vectors are appended to the table (float32, as the annotator gives them);
2. its head (the classifier) runs on the vectors read back from the table for every document.

The vectors are the same numbers either way, so the predictions are the same (tests/unit/
test_embedding_store.py). Setting `embeddings_store` off applies models whole, as before.

    embeddings  (table, partitioned by encoder, ingest_date)
        encoder      which model file and settings made the vector (`encoder_id`)
        ingest_date  the date of the document: a day's scoring reads that day's rows only
        text_key     sha256 of the text the model reads (model_text): the same text, the same vector
        embedding    array<float>, 384 values (about 1.5 KB a document)

Concurrent runs may both append a text's vector: readers take one per key, and they are equal.
"""
from __future__ import annotations

import hashlib
import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import registry, tables
from .nlp import ENCODER_STAGES, FEATURES_SQL, embeddings_model_folder
from .runlog import progress
from .settings import Settings, SettingsError
from .spark import scoring_partitions

ZONE = "embeddings"
KEY = ("ingest_date", "text_key")


def encoder_id(settings: Settings) -> str:
    """What makes a vector: the bytes of the ONNX file the annotator loads (the int8 copy when
    onnx_int8) and the settings that change its output."""
    digest = hashlib.sha256()
    with open(os.path.join(embeddings_model_folder(settings), "model.onnx"), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"|max_sentence_length={settings.max_sentence_length}"
                  f"|batch_size={settings.embeddings_batch_size}".encode())
    return digest.hexdigest()[:16]


def encoder_span(stages: list) -> tuple[int, int] | None:
    """(first, last) positions of the stages that turn model_text into `features` through an
    encoder, or None when the pipeline has no encoder (TF-IDF) or not the layout nlp.py builds."""
    from pyspark.ml.feature import SQLTransformer

    encoders = [i for i, s in enumerate(stages) if type(s).__name__ in ENCODER_STAGES]
    if not encoders:
        return None
    ends = [i for i, s in enumerate(stages) if i > encoders[0] and isinstance(s, SQLTransformer)
            and s.getStatement() == FEATURES_SQL]
    if not ends or encoders[0] < 2:
        return None
    return 1, ends[0]  # stage 0 composes model_text; stage 1 on is the encoder's own


class StoredEncoderModel:
    """A fitted pipeline (or its feature stages alone) applied with the embeddings table between
    its encoder and its head; `transform` gives the columns the whole pipeline would."""

    def __init__(self, spark: SparkSession, settings: Settings, model, encoder: str, run_id: str,
                 span: tuple[int, int]):
        self.spark, self.settings, self.model, self.encoder, self.run_id = spark, settings, model, encoder, run_id
        self.span = span
        self.encoded = 0  # texts this model sent to the encoder (the others' vectors came from the table)

    @property
    def stages(self) -> list:
        return self.model.stages

    def transform(self, docs: DataFrame) -> DataFrame:
        from pyspark.ml import PipelineModel

        first, last = self.span
        compose, encode, head = self.stages[:first], self.stages[first:last + 1], self.stages[last + 1:]
        keyed = PipelineModel(stages=compose).transform(docs).withColumn("text_key", F.sha2("model_text", 256))
        dates = sorted(r[0] for r in keyed.select("ingest_date").distinct().collect())
        self._store_missing(keyed, PipelineModel(stages=encode), dates)
        vectors = stored(self.spark, self.settings, self.encoder, dates)
        if vectors is None:  # no documents, and no table yet: nothing to encode or read
            return self.model.transform(docs)
        # left join: a key the table lacks would give a null vector and fail the head loudly, not drop a row
        featured = keyed.join(vectors, list(KEY), "left").withColumn("features", _vector(F.col("embedding")))
        return PipelineModel(stages=head).transform(featured.drop("embedding")) if head else featured.drop("embedding")

    def _store_missing(self, keyed: DataFrame, encode, dates: list[str]) -> None:
        from pyspark.ml.functions import vector_to_array

        texts = keyed.select(*KEY, "model_text").dropDuplicates(list(KEY))
        known = stored(self.spark, self.settings, self.encoder, dates)
        if known is not None:
            texts = texts.join(known.select(*KEY), list(KEY), "left_anti")
        texts = texts.repartition(scoring_partitions(self.spark, self.settings), "text_key").cache()
        try:
            count = texts.count()
            self.encoded += count
            if not count:
                return
            span = dates[0] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
            progress("embed", span, f"encoding {count:,} texts not in the {ZONE} table")
            vectors = encode.transform(texts).select(
                F.lit(self.encoder).alias("encoder"), *KEY,
                vector_to_array("features", "float32").alias("embedding"))
            tables.append(self.spark, self.settings, ZONE, vectors, self.run_id)
        finally:
            texts.unpersist()


def stored(spark: SparkSession, settings: Settings, encoder: str, dates: list[str]) -> DataFrame | None:
    """The table's vectors of one encoder on some dates, one per key; None while there is no table."""
    df = tables.read(spark, settings, ZONE, dates)
    if df is None:
        return None
    return df.where(F.col("encoder") == encoder).select(*KEY, "embedding").dropDuplicates(list(KEY))


def with_store(spark: SparkSession, settings: Settings, model, encoder: str | None, run_id: str):
    """The model applied through the embeddings table when it has an encoder, the table is on and
    the encoder is known (a version registered before the table has no encoder tag: applied whole)."""
    span = encoder_span(model.stages) if encoder and settings.embeddings_store else None
    return StoredEncoderModel(spark, settings, model, encoder, run_id, span) if span else model


def prune(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, int]:
    """Deletes the vectors of every encoder no run reads any more (`make maintain`): kept are the
    champion's and the challenger's (their registry tags) and the one the settings make now (what the
    next training encodes with). -> encoder: rows deleted. Always safe: a model whose vectors are gone
    encodes its texts again. Their files go when the snapshots before the delete expire."""
    if not tables.exists(spark, settings, ZONE):
        return {}
    keep = registry.aliased_encoders(settings)
    try:
        keep.add(encoder_id(settings))
    except (OSError, SettingsError):  # no model folder on this machine: no run here encodes with it either
        pass
    name = tables.table(spark, settings, ZONE)
    # from the table's metadata (its partitions), not its files: encoder is a partition column
    per_encoder = (spark.table(f"{name}.partitions").groupBy(F.col("partition.encoder").alias("encoder"))
                   .agg(F.sum("record_count").alias("rows")).collect())
    stale = {r["encoder"]: int(r["rows"]) for r in per_encoder if r["encoder"] not in keep}
    if stale:
        nothing = spark.createDataFrame([], spark.table(name).schema)
        tables.write_partitions(spark, settings, ZONE, nothing, F.col("encoder").isin(sorted(stale)), run_id,
                                tables.current_snapshot(settings, ZONE))
    return stale


def load_version(spark: SparkSession, settings: Settings, ref: registry.ModelRef, run_id: str):
    """A registered version's fitted pipeline, applied through the table when it has an encoder."""
    return with_store(spark, settings, registry.load_pipeline(settings, ref), registry.encoder_of(settings, ref), run_id)


def _vector(col):
    from pyspark.ml.functions import array_to_vector

    return F.when(col.isNotNull(), array_to_vector(col))

"""Builds small cleaned batches (the shape ingest's parser produces) for Spark-side tests."""
import pandas as pd
from pyspark.sql import functions as F

from spark_jobs import documents, ingest


def batch(spark, rows: list[dict], source_file: str = "f.csv", source: str = "reviews"):
    records = []
    for line, row in enumerate(rows, start=2):
        rec = {c: None for c in [*documents.CANONICAL, *documents.META]}
        rec.update(source_file=source_file, source_line=line, raw_record=str(row))
        rec.update(row)
        records.append(rec)
    pdf = documents.clean(pd.DataFrame(records).astype({"source_line": "int64"}), max_text_chars=10_000)
    frame = (spark.createDataFrame(pdf, schema=ingest.CLEANED_SCHEMA).withColumn("source", F.lit(source))
             .withColumn("title_mapped", F.lit(True)))
    return ingest.with_derived(frame)

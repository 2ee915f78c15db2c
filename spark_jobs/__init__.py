"""Batch NLP analytics on Spark: ingest gate, Spark NLP inference, MLflow registry, run records."""

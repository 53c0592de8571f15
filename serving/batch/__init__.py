"""Offline scoring engines: a config's customers (files), streamed Parquet, Spark, and batch simulation."""

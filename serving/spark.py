"""Scoring on Apache Spark: the registered pyfunc model as a Spark UDF over Parquet, Parquet out.

The same bundle the in-process engine uses runs inside `mlflow.pyfunc.spark_udf`, so moving from
one machine to a cluster changes `--master`, not the code. pyspark is the optional extra `spark`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pyarrow.parquet as pq

from features.build import DATE
from features.config import CxConfig
from features.load import DataError
from models.bundle import LoadedBundle
from serving.stream import MISSING_ID, REJECTS_DIR, StreamSummary, input_files

SPARK_TYPES = {"string": "string", "double": "double", "float": "double", "long": "long", "integer": "long",
               "boolean": "boolean", "datetime": "timestamp", "binary": "binary"}


def spark_session(master: str, app_name: str = "cxpredict-score") -> Any:
    """A Spark session whose Python workers run this interpreter (same packages as the driver)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:  # the extra is optional: say how to get it
        raise DataError("--engine spark needs pyspark: pip install 'cxpredict[spark]'") from err
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        # pandas writes nanosecond timestamps, which Spark cannot read as timestamps: read them as
        # longs (nanoseconds since the epoch) and convert them in `typed_columns`.
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .getOrCreate()
    )


def signature_casts(loaded: LoadedBundle, tracking_uri: str) -> dict[str, str | None]:
    """Every input column of the model signature, with the Spark type to cast it to.

    Columns the signature declares `Any` (integer-like numbers, dates) are kept as they are
    (None), except dates, which become timestamps so nanosecond longs are read as dates.
    """
    mlflow.set_tracking_uri(tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{loaded.model_name}/{loaded.version}")
    if info.signature is None or info.signature.inputs is None:
        return {}
    kinds = {spec.name: spec.kind for spec in loaded.bundle.pipeline.specs_}
    casts: dict[str, str | None] = {}
    for spec in info.signature.inputs.inputs:
        if spec.name is None:
            continue
        kind = getattr(spec.type, "name", str(spec.type))
        casts[spec.name] = SPARK_TYPES.get(kind, "timestamp" if kinds.get(spec.name) == DATE else None)
    return casts


def parquet_rows(folder: Path) -> int:
    """Rows in a folder of Parquet parts, from their footers."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("part-*.parquet"))


def typed_columns(frame: Any, inputs: list[str], casts: dict[str, str | None]) -> list[Any]:
    """Columns cast to the signature's types (Parquet may hold int32 where it says long, or nanos)."""
    from pyspark.sql import functions as F

    dtypes = dict(frame.dtypes)
    columns = []
    for name in inputs:
        target = casts.get(name)
        if target == "timestamp" and dtypes[name] == "bigint":  # nanoseconds read as longs
            columns.append(F.timestamp_micros(F.floor(F.col(name) / 1000)).alias(name))
        elif target is not None:
            columns.append(F.col(name).cast(target).alias(name))
        else:
            columns.append(F.col(name))
    return columns


def score_spark(
    config: CxConfig, loaded: LoadedBundle, input_path: Path, out_dir: Path, master: str = "local[2]"
) -> StreamSummary:
    """Score a Parquet file or folder on Spark through the registered model's pyfunc UDF.

    Args:
        config: the dataset config (tracking store).
        loaded: the registered version to run (its pyfunc is what the UDF loads).
        input_path: Parquet file or folder of customer rows.
        out_dir: output folder of Parquet parts (rejects under `_rejects/`), replaced when the job commits.
        master: the Spark master, e.g. local[2] or spark://host:7077.
    Returns:
        Counts of input, scored and rejected rows (rows with a missing id are rejected).
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    files = input_files(input_path)
    bundle = loaded.bundle
    id_column = bundle.id_column
    spark = spark_session(master)
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    frame = spark.read.parquet(*[str(f) for f in files])
    if id_column not in frame.columns:
        raise DataError(f"{input_path}: column '{id_column}' (the id column) not found")
    casts = signature_casts(loaded, config.tracking_uri)
    inputs = [c for c in casts if c in frame.columns] or frame.columns
    typed = frame.select(*typed_columns(frame, inputs, casts))
    id_text = F.trim(F.col(id_column).cast("string"))
    missing = F.col(id_column).isNull() | (id_text == "")
    result_type = ", ".join([f"`{id_column}` string", *[f"`{c}` double" for c in bundle.output_columns]])
    udf = mlflow.pyfunc.spark_udf(
        spark, f"models:/{loaded.model_name}/{loaded.version}", result_type=result_type, env_manager="local"
    )
    scorable = typed.where(~missing).withColumn(id_column, id_text)
    scored = scorable.select(udf(F.struct(*[F.col(c) for c in inputs])).alias("s")).select("s.*")
    scored = scored.withColumn("model_version", F.lit(loaded.version))
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-spark")  # no leading dot: Spark skips hidden paths
    shutil.rmtree(tmp, ignore_errors=True)
    scored.write.mode("overwrite").parquet(str(tmp))
    rejects = typed.where(missing).select(F.col(id_column).cast("string").alias(id_column),
                                          F.lit(MISSING_ID).alias("reason"))
    rejects.write.mode("overwrite").parquet(str(tmp / REJECTS_DIR))
    n_scored, n_rejected = parquet_rows(tmp), parquet_rows(tmp / REJECTS_DIR)
    n_input = frame.count()
    if n_scored + n_rejected != n_input:
        raise DataError(f"{out_dir}: scored {n_scored} + rejected {n_rejected} != input rows {n_input}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)  # the finished folder appears under its name at once
    return StreamSummary(
        input_rows=n_input, scored=n_scored, rejected=n_rejected, parts=len(list(out_dir.glob("part-*"))),
        parts_resumed=0, seconds=round(time.perf_counter() - started, 3), out=str(out_dir),
        model_version=loaded.version, rejects_by_reason={MISSING_ID: n_rejected} if n_rejected else {},
    )

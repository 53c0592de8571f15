"""Scoring on Apache Spark: the registered pyfunc model as a Spark UDF over Parquet, Parquet out.

The same bundle the in-process engine uses runs inside `mlflow.pyfunc.spark_udf`, so moving from
one machine to a cluster changes `--master`, not the code. pyspark is the optional extra `spark`.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cxpredict.features.build import DATE, FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.io import MANIFEST, read_manifest, write_manifest
from cxpredict.features.load import DataError
from cxpredict.features.validation import IMPLAUSIBLE, REJECT, check_required_columns, row_verdicts
from cxpredict.models.bundle import ScoringBundle
from cxpredict.models.drift import DriftCounts, drift_counts
from cxpredict.models.registry import LoadedBundle, download_checked_model, use_tracking_store
from cxpredict.models.scoring import CustomerScorer, ScoringOptions, params_from_options
from cxpredict.serving.batch.files import add_survey_columns
from cxpredict.serving.batch.stream import (
    DUPLICATE_ID,
    MISSING_ID,
    NO_FEATURES,
    REJECTS_DIR,
    UNREADABLE,
    StreamSummary,
    input_files,
    job_fingerprint,
)

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


def signature_casts(loaded: LoadedBundle, model_dir: Path) -> dict[str, str | None]:
    """Every input column of the model signature, with the Spark type to cast it to.

    Columns the signature declares `Any` (integer-like numbers, dates) are kept as they are
    (None), except dates, which become timestamps so nanosecond longs are read as dates.
    """
    info = mlflow.models.get_model_info(str(model_dir))
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


def typed_columns(frame: Any, inputs: list[str], casts: dict[str, str | None], cast_values: bool = True) -> list[Any]:
    """Columns cast to the signature's types (Parquet may hold int32 where it says long, or nanos).

    Casts use `try_cast`: a value that does not convert becomes null instead of failing the job
    (Spark's ANSI mode), and the row is rejected by `unreadable_values` on the uncast columns
    (`cast_values=False`: nanosecond dates converted, everything else as read).
    """
    from pyspark.sql import functions as F

    dtypes = dict(frame.dtypes)
    columns = []
    for name in inputs:
        target = casts.get(name)
        if target == "timestamp" and dtypes[name] == "bigint":  # nanoseconds read as longs
            columns.append(F.timestamp_micros(F.floor(F.col(name) / 1000)).alias(name))
        elif target is not None and cast_values:
            columns.append(F.col(name).try_cast(target).alias(name))
        else:
            columns.append(F.col(name))
    return columns


def unreadable_values_udf(pipeline: FeaturePipeline, plausibility: str = REJECT) -> Any:
    """A pandas UDF: per row, the gate's verdict (`row_verdicts`: reason and the value's text, null
    when scorable), as the streaming engine says it."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("reason string, detail string, warned boolean")  # type: ignore[call-overload]
    def unreadable(rows: pd.DataFrame) -> pd.DataFrame:
        verdicts = row_verdicts(pipeline, rows, plausibility=plausibility)
        flagged = verdicts.reasons != ""
        warned = verdicts.warned if verdicts.warned is not None else np.zeros(len(rows), bool)
        return pd.DataFrame({"reason": np.where(flagged, verdicts.reasons, None),
                             "detail": np.where(flagged, verdicts.details, None),
                             "warned": warned.astype(bool)}).astype({"reason": object, "detail": object})

    return unreadable


SPARK_RESULT_TYPES = {"float64": "double", "int64": "long", "bool": "boolean"}
INPUT_ROW, FIRST_ROW, FILE_PATH = "__input_row", "__first_row", "__file_path"


def spark_result_type(table: pd.DataFrame) -> str:
    """The UDF's struct type from an (empty) score table: floats double, ints long, text string."""
    return ", ".join(f"`{name}` {SPARK_RESULT_TYPES.get(str(dtype), 'string')}" for name, dtype in table.dtypes.items())


def file_offsets(spark_paths: list[str], files: list[Path]) -> dict[str, int]:
    """Each Spark file path (a URI) with the input row its file starts at, in `input_files` order."""
    starts, offset = {}, 0
    for f in files:
        starts[str(f.resolve())] = offset
        offset += pq.ParquetFile(f).metadata.num_rows
    found = {}
    for uri in spark_paths:
        local = str(Path(unquote(urlparse(uri).path)).resolve())
        if local not in starts:
            raise DataError(f"{uri}: Spark read a file that is not among the input's Parquet files")
        found[uri] = starts[local]
    return found


def spark_drift_counts(frame: Any, bundle: ScoringBundle) -> DriftCounts | None:
    """Drift bin counts of the scored rows, counted where they are (one row of counts per task)."""
    if bundle.drift_reference is None:
        return None
    reference, pipeline = bundle.drift_reference, bundle.pipeline

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        total: DriftCounts | None = None
        for batch in batches:
            counts = drift_counts(reference, pipeline, batch)
            total = counts if total is None else total + counts
        if total is not None:
            yield pd.DataFrame({"counts": [json.dumps(total.to_json())]})

    parts = [DriftCounts.from_json(json.loads(row[0])) for row in frame.mapInPandas(count, "counts string").collect()]
    return functools.reduce(operator.add, parts) if parts else None


def _spark_job_check(out_dir: Path, job: dict[str, Any]) -> dict[str, Any] | None:
    """The finished manifest of this very job in `out_dir` (then there is nothing to do), else None."""
    manifest = read_manifest(out_dir)
    if manifest is not None and manifest["job"]["id"] != job["id"]:
        raise DataError(
            f"{out_dir}: holds the output of a different job (input, options or model differ); "
            "use another --out or remove it"
        )
    if manifest is None and out_dir.exists() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir}: not empty and has no {MANIFEST}; use an empty or new folder")
    return manifest if manifest is not None and manifest.get("complete") else None


def with_input_rows(frame: Any, files: list[Path]) -> Any:
    """Add each row's input row number as the streaming engine counts it (files in name order)."""
    from pyspark.sql import functions as F

    frame = frame.select("*", F.col("_metadata.file_path").alias(FILE_PATH),
                         F.col("_metadata.row_index").alias("__row_in_file"))
    spark_paths = [row[0] for row in frame.select(FILE_PATH).distinct().collect()]
    offsets = file_offsets(spark_paths, files)
    start_of = F.create_map(*[F.lit(x) for uri, start in offsets.items() for x in (uri, start)])
    return frame.withColumn(INPUT_ROW, start_of[F.col(FILE_PATH)] + F.col("__row_in_file"))


def with_reject_reasons(frame: Any, inputs: list[str], casts: dict[str, str | None], bundle: ScoringBundle,
                        plausibility: str = REJECT) -> Any:
    """The typed model inputs plus `__id`, the input row, the first row of the id, `__problem`
    and `__reason` (null when the row is scored), by the streaming engine's rules and order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    id_text = F.trim(F.col(bundle.id_column).cast("string"))
    as_read = F.struct(*typed_columns(frame, inputs, casts, cast_values=False))
    typed = frame.select(*typed_columns(frame, inputs, casts), id_text.alias("__id"), F.col(INPUT_ROW),
                         unreadable_values_udf(bundle.pipeline, plausibility)(as_read).alias("__gate"))
    typed = typed.withColumn("__problem", F.col("__gate.detail")).withColumn("__problem_reason", F.col("__gate.reason"))
    typed = typed.withColumn(FIRST_ROW, F.min(INPUT_ROW).over(Window.partitionBy("__id")))
    missing = F.col("__id").isNull() | (F.col("__id") == "")
    duplicate = ~missing & (F.col(INPUT_ROW) != F.col(FIRST_ROW))
    no_features = F.lit(True)
    for column in inputs:
        if column != bundle.id_column:
            no_features = no_features & F.col(column).isNull()
    reason = (F.when(missing, F.lit(MISSING_ID)).when(duplicate, F.lit(DUPLICATE_ID))
              .when(F.col("__problem").isNotNull(), F.col("__problem_reason")).when(no_features, F.lit(NO_FEATURES)))
    return typed.withColumn("__reason", reason)


def reject_rows(typed: Any, id_column: str) -> Any:
    """The rejects table: input row, id, reason, first row of a duplicate id, unreadable value."""
    from pyspark.sql import functions as F

    return typed.where(F.col("__reason").isNotNull()).select(
        F.col(INPUT_ROW).cast("long").alias("input_row"), F.col("__id").alias(id_column),
        F.col("__reason").alias("reason"),
        F.when(F.col("__reason") == DUPLICATE_ID, F.col(FIRST_ROW)).cast("long").alias("duplicate_of_row"),
        F.when(F.col("__reason").isin(UNREADABLE, IMPLAUSIBLE), F.col("__problem")).alias("detail"),
    )


def score_spark(
    config: CxConfig, loaded: LoadedBundle, input_path: Path, out_dir: Path, master: str = "local[2]",
    options: ScoringOptions | None = None, observed: pd.Series | None = None, plausibility: str = REJECT,
) -> StreamSummary:
    """Score a Parquet file or folder on Spark through the registered model's pyfunc UDF.

    The UDF runs the model's own code (MLflow loads it), so the model folder is downloaded once
    and its code and bundle checked against the training run's digests first
    (`download_checked_model`); Spark gets that checked copy.

    The same rows are rejected as by the in-process engine (missing id, an id seen earlier in the
    input, an unreadable value, no feature values), with the same global input row numbers, and
    the scores carry the same columns. The job writes to a temporary folder that is renamed into
    place with its manifest when complete: a killed run leaves no partial output, and running the
    same command again recomputes it (Spark retries failed tasks itself) or, once complete, does
    nothing.

    Args:
        config: the dataset config (tracking store, score column).
        loaded: the registered version to run (its pyfunc is what the UDF loads).
        input_path: Parquet file or folder of customer rows.
        out_dir: output folder of Parquet parts, rejects under `_rejects/`, `_manifest.json`.
        master: the Spark master, e.g. local[2] or spark://host:7077.
        options: uncertainty, level and top-k drivers (default: uncertainty only).
        observed: the survey's observed scores by id (adds the survey columns).
        plausibility: `scoring.plausibility`: implausible rows are rejected, or scored (warn).
    Returns:
        Counts of input, scored and rejected rows.
    """
    for file in input_files(input_path):  # before Spark starts: a missing feature column stops the job
        check_required_columns(loaded.bundle.pipeline, pq.ParquetFile(file).schema_arrow.names, str(file))
    with tempfile.TemporaryDirectory(prefix="cxpredict-model-") as tmp:
        model_dir = download_checked_model(config.tracking_uri, loaded, Path(tmp))
        return _score_on_spark(config, loaded, model_dir, input_path, out_dir, master, options, observed,
                               plausibility)


def _score_on_spark(
    config: CxConfig, loaded: LoadedBundle, model_dir: Path, input_path: Path, out_dir: Path, master: str,
    options: ScoringOptions | None, observed: pd.Series | None, plausibility: str = REJECT,
) -> StreamSummary:
    from pyspark.sql import functions as F

    started = time.perf_counter()
    options = options or ScoringOptions()
    files = input_files(input_path)
    bundle = loaded.bundle
    id_column = bundle.id_column
    job = job_fingerprint(files, 0, loaded, {**options.describe(), "survey_columns": observed is not None,
                                             "engine": "spark"})
    finished = _spark_job_check(out_dir, job)
    if finished is not None:
        summary = StreamSummary(**{**finished["summary"], "seconds": round(time.perf_counter() - started, 3)})
        summary.parts_resumed = summary.parts
        return summary
    spark = spark_session(master)
    use_tracking_store(config.tracking_uri)
    frame = spark.read.parquet(*[str(f) for f in files])
    if id_column not in frame.columns:
        raise DataError(f"{input_path}: column '{id_column}' (the id column) not found")
    frame = with_input_rows(frame, files)
    casts = signature_casts(loaded, model_dir)
    inputs = [c for c in casts if c in frame.columns] or [c for c in frame.columns if not c.startswith("__")]
    typed = with_reject_reasons(frame, inputs, casts, bundle, plausibility).cache()

    # The table's columns and types, from the same scorer on no rows; the UDF returns all but
    # the columns added here.
    empty = CustomerScorer(bundle, options).score_matrix(
        np.empty(0, dtype=object), np.empty((0, len(bundle.pipeline.feature_names_))), model_version=loaded.version)
    if observed is not None:
        empty = add_survey_columns(empty, id_column, observed, config.score.column)
    added = ("model_version", "surveyed", f"observed_{config.score.column}")
    udf = mlflow.pyfunc.spark_udf(
        spark, str(model_dir),
        result_type=spark_result_type(empty[[c for c in empty.columns if c not in added]]),
        env_manager="local", params=params_from_options(options),
    )
    scorable = typed.where(F.col("__reason").isNull()).withColumn(id_column, F.col("__id"))
    scored = scorable.select(udf(F.struct(*[F.col(c) for c in inputs])).alias("s")).select("s.*")
    scored = scored.withColumn("model_version", F.lit(loaded.version))
    if observed is not None:
        survey = spark.createDataFrame(pd.DataFrame({
            "__survey_id": observed.index.astype(str), "__observed": observed.astype("int64").to_numpy(),
        }))
        scored = (scored.join(F.broadcast(survey), scored[id_column] == survey["__survey_id"], "left")
                  .withColumn("surveyed", F.col("__survey_id").isNotNull())
                  .withColumn(f"observed_{config.score.column}", F.col("__observed")))

    tmp = out_dir.with_name(f"{out_dir.name}.tmp-spark")  # no leading dot: Spark skips hidden paths
    shutil.rmtree(tmp, ignore_errors=True)
    scored.select(*[F.col(f"`{c}`") for c in empty.columns]).write.mode("overwrite").parquet(str(tmp))
    reject_rows(typed, id_column).write.mode("overwrite").parquet(str(tmp / REJECTS_DIR))
    drift = spark_drift_counts(scorable.select(*inputs), bundle)
    by_reason = {row["__reason"]: int(row["count"]) for row in
                 typed.where(F.col("__reason").isNotNull()).groupBy("__reason").count().collect()}
    warned = typed.where(F.col("__reason").isNull() & F.col("__gate.warned")).count()
    typed.unpersist()
    n_scored, n_rejected = parquet_rows(tmp), parquet_rows(tmp / REJECTS_DIR)
    n_input = job["input_rows"]
    if n_scored + n_rejected != n_input:
        raise DataError(f"{out_dir}: scored {n_scored} + rejected {n_rejected} != input rows {n_input}")
    summary = StreamSummary(
        input_rows=n_input, scored=n_scored, rejected=n_rejected, parts=len(list(tmp.glob("part-*"))),
        parts_resumed=0, seconds=round(time.perf_counter() - started, 3), out=str(out_dir),
        model_version=loaded.version, rejects_by_reason=by_reason, implausible_scored=int(warned),
    )
    manifest = {"job": job, "engine": "spark", "master": master, "complete": True, "summary": asdict(summary),
                **({"drift": drift.to_json()} if drift is not None else {})}
    write_manifest(manifest, tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)  # the finished folder appears under its name at once, with its manifest
    return summary

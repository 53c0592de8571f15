"""Streaming batch scoring: Parquet in, partitioned Parquet out, bounded memory, resumable.

The input (one Parquet file or a folder of them) is read in record batches of `chunk_rows`;
each batch is scored with every model and written as one part under a temporary name, then
renamed. A manifest records the finished parts, so a killed job run again skips what is done
and rewrites at most the part it was writing: exactly one score row per scorable input row.
Rows that cannot be scored go to rejects parts with the reason. A first pass over the id column
finds ids repeated anywhere in the input (one 64-bit hash per row, exact ids compared only where
hashes collide), so each customer id gets one score row however the input is chunked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cxpredict.features.io import (
    MANIFEST,
    clean_temporaries,
    read_manifest,
    write_bytes_atomic,
    write_manifest,
    write_table_atomic,
)
from cxpredict.features.load import DataError
from cxpredict.features.validation import IMPLAUSIBLE, REJECT, check_required_columns, row_verdicts
from cxpredict.models.drift import DriftCounts, drift_counts
from cxpredict.models.registry import LoadedBundle
from cxpredict.models.scoring import CustomerScorer, ScoringOptions
from cxpredict.serving.batch.files import add_survey_columns

SUCCESS = "_SUCCESS"
REJECTS_DIR = "_rejects"  # underscore: Parquet readers of the folder (pyarrow, Spark) skip it
DEFAULT_CHUNK_ROWS = 200_000
HASHES_IN_MEMORY_ROWS = 25_000_000  # 200 MB of id hashes; larger inputs spill them to disk by bucket
SPILL_DIR = "_dedup"
MISSING_ID, DUPLICATE_ID, NO_FEATURES = "missing id", "duplicate id", "no feature values"
UNREADABLE = "unreadable value"  # a number, yes/no or date the model cannot read (named in `detail`)
# IMPLAUSIBLE ("implausible value"): outside the plausible range learned at training (features/validation.py)

ProgressCallback = Callable[[int], None]


@dataclass
class StreamSummary:
    """What one streaming run did; `scored + rejected == input_rows` when complete."""

    input_rows: int
    scored: int
    rejected: int
    parts: int
    parts_resumed: int
    seconds: float
    out: str
    model_version: str
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    implausible_scored: int = 0  # rows scored despite an implausible value (`scoring.plausibility: warn`)

    @property
    def rows_per_second(self) -> float:
        return (self.scored + self.rejected) / self.seconds if self.seconds > 0 else float("nan")


def input_files(path: Path) -> list[Path]:
    """The Parquet files of an input: the file itself, or a folder's files in name order."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(
            p for p in path.rglob("*.parquet")
            if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not files:
            raise DataError(f"{path}: no Parquet files in this folder")
    else:
        raise DataError(f"{path}: input not found")
    for file in files:  # footers only: a file that is not Parquet fails here, before any part
        try:
            pq.ParquetFile(file)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{file}: not a readable Parquet file ({err})") from None
    return files


def job_fingerprint(
    files: list[Path], chunk_rows: int, loaded: LoadedBundle, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What makes two runs the same job: the input files (names, sizes, rows), chunking, model and
    the output options (explain, level, survey columns), which change the parts' columns."""
    entries = [
        {"file": str(f.resolve()), "bytes": f.stat().st_size, "rows": pq.ParquetFile(f).metadata.num_rows}
        for f in files
    ]
    options = options or {}
    key = json.dumps({"files": entries, "chunk_rows": chunk_rows, "model": [loaded.model_name, loaded.version],
                      "options": options}, sort_keys=True)
    return {
        "id": hashlib.sha256(key.encode()).hexdigest()[:16],
        "files": entries,
        "chunk_rows": chunk_rows,
        "model_name": loaded.model_name,
        "model_version": loaded.version,
        "options": options,
        "input_rows": sum(e["rows"] for e in entries),
    }


def iter_chunks(files: list[Path], columns: list[str], chunk_rows: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first input row, batch) over every file in order; the same input always chunks the same way."""
    offset = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        batches = parquet.iter_batches(batch_size=chunk_rows, columns=present, use_threads=True)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as err:  # a damaged row group: name the file and row
                raise DataError(f"{path}: cannot read the rows after input row {offset} ({err})") from None
            yield offset, batch
            offset += batch.num_rows


def id_text(values: pa.Array | pa.ChunkedArray | pd.Series) -> pd.Series:
    """Ids as stripped text (missing stays missing): how every engine compares and writes them."""
    series = values if isinstance(values, pd.Series) else values.to_pandas()
    return series.astype("string").str.strip()


@dataclass
class DuplicateRows:
    """Input rows whose id appeared earlier in the input, sorted, with the row of that first occurrence."""

    rows: np.ndarray
    first: np.ndarray

    def within(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The duplicates among input rows [start, stop): positions relative to `start`, first rows."""
        low, high = np.searchsorted(self.rows, [start, stop])
        return self.rows[low:high] - start, self.first[low:high]


def _id_hashes(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(positions of rows with an id, 64-bit hashes of those ids)."""
    present = (text.notna() & text.ne("")).to_numpy(bool)
    positions = np.flatnonzero(present)
    return positions, pd.util.hash_array(text.to_numpy(dtype=object)[positions], categorize=False)


def iter_id_chunks(files: list[Path], id_column: str, chunk_rows: int) -> Iterator[tuple[int, pd.Series]]:
    """(first input row, ids as text) over the files that have the id column, reading only that column."""
    offset = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        if id_column in parquet.schema_arrow.names:
            start = offset
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=[id_column]):
                yield start, id_text(batch.column(0))
                start += batch.num_rows
        offset += parquet.metadata.num_rows


def repeated_hashes(hashes: np.ndarray) -> np.ndarray:
    """The hash values that occur more than once (sorts `hashes` in place)."""
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def find_duplicate_rows(
    files: list[Path], id_column: str, chunk_rows: int, spill_dir: Path | None = None,
    max_memory_rows: int = HASHES_IN_MEMORY_ROWS,
) -> DuplicateRows:
    """Every later occurrence of an id anywhere in the input (the first occurrence is the one scored).

    One 64-bit hash per row with an id; only rows whose hash occurs twice are read a second time
    and compared as text, so a hash collision never rejects a customer. Up to `max_memory_rows`
    rows the hashes are sorted in memory (80 MB for 10 million rows); beyond, they are spilled
    to files under `spill_dir` by their top bits and each file is sorted on its own, so memory
    stays bounded whatever the input size (disk: 8 bytes per row, removed afterwards).
    """
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    n_spills = 1 if total <= max_memory_rows or spill_dir is None else -(-total // max_memory_rows)
    if n_spills == 1:
        hashes = np.empty(total, np.uint64)
        filled = 0
        for _, text in iter_id_chunks(files, id_column, chunk_rows):
            _, chunk_hashes = _id_hashes(text)
            hashes[filled:filled + len(chunk_hashes)] = chunk_hashes
            filled += len(chunk_hashes)
        repeated = repeated_hashes(hashes[:filled])
        del hashes
    else:
        assert spill_dir is not None
        spill_dir.mkdir(parents=True, exist_ok=True)
        paths = [spill_dir / f"hashes-{k:04d}.u64" for k in range(n_spills)]
        handles = [open(path, "wb") for path in paths]  # noqa: SIM115 - closed below, all together
        try:
            for _, text in iter_id_chunks(files, id_column, chunk_rows):
                _, chunk_hashes = _id_hashes(text)
                bucket = (chunk_hashes % np.uint64(n_spills)).astype(np.int64)
                for k in np.unique(bucket):
                    handles[k].write(chunk_hashes[bucket == k].tobytes())
        finally:
            for handle in handles:
                handle.close()
        repeated = np.concatenate([repeated_hashes(np.fromfile(path, dtype=np.uint64)) for path in paths])
        shutil.rmtree(spill_dir, ignore_errors=True)
    empty = np.empty(0, np.int64)
    if not len(repeated):
        return DuplicateRows(empty, empty)
    ids, rows = [], []
    for offset, text in iter_id_chunks(files, id_column, chunk_rows):
        positions, chunk_hashes = _id_hashes(text)
        hit = np.isin(chunk_hashes, repeated)
        ids.append(text.to_numpy(dtype=object)[positions[hit]])
        rows.append(offset + positions[hit])
    candidates = pd.DataFrame({"id": np.concatenate(ids), "row": np.concatenate(rows)})
    first = candidates.groupby("id", sort=False)["row"].transform("min").to_numpy()
    later = candidates["row"].to_numpy() != first
    order = np.argsort(candidates["row"].to_numpy()[later], kind="stable")
    return DuplicateRows(candidates["row"].to_numpy()[later][order].astype(np.int64), first[later][order])


def split_rejects(
    frame: pd.DataFrame, X: np.ndarray, id_column: str, duplicate_positions: np.ndarray | None = None,
    problems: np.ndarray | None = None, ids: pd.Series | None = None, problem_reasons: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A keep mask and a reason per row ('' when kept).

    Reasons, first match wins: missing id, duplicate id, unreadable value (or implausible value),
    no feature values.

    Args:
        frame: the chunk's rows.
        X: their encoded features.
        id_column: the id column.
        duplicate_positions: rows of the chunk whose id occurred earlier in the whole input (from
            `find_duplicate_rows`); None checks repeats within the chunk only.
        problems: per row, a value the model cannot read (`FeaturePipeline.unreadable_values`).
        ids: `id_text` of the id column when the caller has it already.
        problem_reasons: per row, the reason of `problems` (`row_verdicts`); default unreadable value.
    """
    n = len(frame)
    reasons = np.full(n, "", dtype=object)
    if id_column not in frame.columns:
        reasons[:] = MISSING_ID
        return np.zeros(n, bool), reasons
    text = id_text(frame[id_column]) if ids is None else ids
    missing = (text.isna() | text.eq("")).to_numpy(bool)
    if duplicate_positions is None:
        duplicate = (text.duplicated(keep="first") & ~pd.Series(missing, index=frame.index)).to_numpy(bool)
    else:
        duplicate = np.zeros(n, bool)
        duplicate[duplicate_positions] = True
    empty = np.isnan(X).all(axis=1) if X.shape[1] else np.ones(n, bool)
    reasons[empty] = NO_FEATURES
    if problems is not None:
        flagged = problems != ""
        reasons[flagged] = UNREADABLE if problem_reasons is None else problem_reasons[flagged]
    reasons[duplicate] = DUPLICATE_ID
    reasons[missing] = MISSING_ID
    return reasons == "", reasons


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """A score or rejects frame as Arrow with stable types: every part of a job has one schema."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field_ in enumerate(table.schema):
        if pa.types.is_null(field_.type) or pa.types.is_large_string(field_.type):
            table = table.set_column(i, field_.name, table.column(i).cast(pa.string()))
    return table.replace_schema_metadata(None)


@dataclass
class ChunkScorer:
    """Scores record batches: the model's score table plus survey columns; rejects with reasons."""

    scorer: CustomerScorer
    model_version: str
    observed: pd.Series | None = None
    score_column: str = "score"
    duplicates: DuplicateRows | None = None
    plausibility: str = REJECT  # `scoring.plausibility`: reject or warn on implausible values
    implausible_warned: int = 0  # rows scored despite an implausible value (warn)

    def score(self, batch: pa.RecordBatch, first_row: int) -> tuple[pa.Table, pa.Table, DriftCounts | None]:
        """(scores, rejects, drift counts of the scored rows) of one record batch starting at input row `first_row`."""
        bundle = self.scorer.bundle
        frame = batch.to_pandas()
        X = bundle.pipeline.transform(frame)
        positions, first_rows = (None, np.empty(0, np.int64)) if self.duplicates is None else \
            self.duplicates.within(first_row, first_row + len(frame))
        verdicts = row_verdicts(bundle.pipeline, frame, X, self.plausibility)  # the one gate (features/validation.py)
        problems = np.where(verdicts.reasons != "", verdicts.details, "").astype(object)
        self.implausible_warned += verdicts.implausible_warned
        ids = id_text(frame[bundle.id_column]) if bundle.id_column in frame.columns else \
            pd.Series([None] * len(frame), dtype="string")
        keep, reasons = split_rejects(frame, X, bundle.id_column, positions, problems, ids, verdicts.reasons)
        everyone = bool(keep.all())  # the usual chunk: no copies of its rows
        kept_X, kept_frame = (X, frame) if everyone else (X[keep], frame[keep])
        scores = self.scorer.score_matrix(ids[keep].to_numpy(dtype=object), kept_X, self.model_version)
        if self.observed is not None:
            scores = add_survey_columns(scores, bundle.id_column, self.observed, self.score_column)
        rejected = np.flatnonzero(~keep)
        duplicate_of = np.full(len(frame), -1, np.int64)
        if positions is not None:
            duplicate_of[positions] = first_rows
        rejects = pd.DataFrame({
            "input_row": (first_row + rejected).astype(np.int64),
            bundle.id_column: ids.iloc[rejected].reset_index(drop=True),
            "reason": pd.Series(reasons[rejected].astype(str), dtype="string"),
            "duplicate_of_row": pd.array(np.where(duplicate_of[rejected] >= 0, duplicate_of[rejected], None),
                                         dtype="Int64"),
            "detail": pd.Series(np.where(np.isin(reasons[rejected], [UNREADABLE, IMPLAUSIBLE]),
                                         problems[rejected], None), dtype="string"),
        })
        drift = None
        if bundle.drift_reference is not None:
            drift = drift_counts(bundle.drift_reference, bundle.pipeline, kept_frame, kept_X)
        return arrow_table(scores), arrow_table(rejects), drift


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def score_stream(
    loaded: LoadedBundle,
    input_path: Path,
    out_dir: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    on_part: Callable[[int], None] | None = None,
    options: ScoringOptions | None = None,
    observed: pd.Series | None = None,
    score_column: str = "score",
    plausibility: str = REJECT,
) -> StreamSummary:
    """Score a Parquet file or folder chunk by chunk into `out_dir`, resuming a finished-part manifest.

    Args:
        loaded: the bundle and its registry version.
        input_path: one Parquet file or a folder of Parquet files (customer rows).
        out_dir: the output folder: part-*.parquet, _rejects/part-*.parquet, _manifest.json, _SUCCESS.
        chunk_rows: rows per record batch (memory grows with it, not with the input).
        threads: LightGBM threads per predict.
        progress: called with the number of input rows each finished (or skipped) chunk covered.
        on_part: called with the part index after its files and the manifest are written.
        options: uncertainty, level and top-k drivers of the score table (default: uncertainty only).
        observed: the survey's observed scores by id: adds `surveyed` and `observed_<score_column>`.
        score_column: the survey's score column name (for the observed column's name).
        plausibility: `scoring.plausibility`: implausible rows are rejected, or scored (warn).
    Returns:
        The counts: input rows, scored, rejected (they add up), parts written and resumed.
    Raises:
        MissingColumnError: a file lacks a required feature column (before any part is written).
    """
    if chunk_rows < 1:
        raise DataError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    started = time.perf_counter()
    bundle = loaded.bundle
    options = options or ScoringOptions()
    files = input_files(input_path)
    for file in files:  # footers only: a whole missing feature column is not drift, it stops the job
        check_required_columns(bundle.pipeline, pq.ParquetFile(file).schema_arrow.names, str(file))
    job = job_fingerprint(files, chunk_rows, loaded, {**options.describe(), "survey_columns": observed is not None})
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out_dir)
    if manifest is not None and manifest["job"]["id"] != job["id"]:
        raise DataError(
            f"{out_dir}: holds the output of a different job (input, --chunk-rows or model differ); "
            "use another --out or remove it"
        )
    if manifest is None:
        if any(out_dir.iterdir()):
            raise DataError(f"{out_dir}: not empty and has no {MANIFEST}; use an empty or new folder")
        manifest = {"job": job, "parts": {}, "complete": False}
        # Claim the folder before the first part: a run killed right after it can still resume.
        write_manifest(manifest, out_dir)
    clean_temporaries(out_dir, out_dir / REJECTS_DIR)
    (out_dir / SUCCESS).unlink(missing_ok=True)
    done: dict[str, dict[str, Any]] = manifest["parts"]
    resumed = len(done)
    columns = [bundle.id_column, *bundle.pipeline.feature_names_]
    schema = pq.ParquetFile(files[0]).schema_arrow.names
    if bundle.id_column not in schema:
        raise DataError(f"{files[0]}: column '{bundle.id_column}' (the id column) not found")
    chunks = ChunkScorer(CustomerScorer(bundle, options, threads), loaded.version, observed, score_column,
                         find_duplicate_rows(files, bundle.id_column, chunk_rows, out_dir / SPILL_DIR),
                         plausibility)
    index = -1
    for index, (first_row, batch) in enumerate(iter_chunks(files, columns, chunk_rows)):
        key = f"{index:05d}"
        if key in done:
            if progress:
                progress(batch.num_rows)
            continue
        warned_before = chunks.implausible_warned
        scores, rejects, drift = chunks.score(batch, first_row)
        write_table_atomic(scores, out_dir / part_name(index))
        write_table_atomic(rejects, out_dir / REJECTS_DIR / part_name(index))
        reasons = rejects.column("reason").to_pandas().value_counts().to_dict()
        done[key] = {
            "rows": batch.num_rows, "scored": scores.num_rows, "rejected": rejects.num_rows,
            "first_row": first_row, "rejects_by_reason": {str(k): int(v) for k, v in reasons.items()},
            "implausible_scored": chunks.implausible_warned - warned_before,
            **({"drift": drift.to_json()} if drift is not None else {}),
        }
        write_manifest(manifest, out_dir)
        if progress:
            progress(batch.num_rows)
        if on_part:
            on_part(index)
    summary = _summarise(manifest, index + 1, resumed, time.perf_counter() - started, out_dir)
    manifest["complete"] = True
    manifest["summary"] = asdict(summary)
    write_manifest(manifest, out_dir)
    write_bytes_atomic(b"", out_dir / SUCCESS)
    return summary


def _summarise(manifest: dict[str, Any], n_parts: int, resumed: int, seconds: float, out_dir: Path) -> StreamSummary:
    parts = manifest["parts"].values()
    by_reason: dict[str, int] = {}
    for part in parts:
        for reason, count in part["rejects_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    summary = StreamSummary(
        input_rows=manifest["job"]["input_rows"],
        scored=sum(p["scored"] for p in parts),
        rejected=sum(p["rejected"] for p in parts),
        parts=n_parts,
        parts_resumed=resumed,
        seconds=round(seconds, 3),
        out=str(out_dir),
        model_version=manifest["job"]["model_version"],
        rejects_by_reason=by_reason,
        implausible_scored=sum(int(p.get("implausible_scored", 0)) for p in parts),
    )
    if summary.scored + summary.rejected != summary.input_rows:
        raise DataError(
            f"{out_dir}: scored {summary.scored} + rejected {summary.rejected} != input rows {summary.input_rows}"
        )
    return summary


def stream_drift_counts(out_dir: Path) -> DriftCounts | None:
    """The drift counts of a scoring job's output: its parts' counts summed, or the Spark job's."""
    manifest = read_manifest(out_dir)
    if manifest is not None and "drift" in manifest:
        return DriftCounts.from_json(manifest["drift"])
    parts = [] if manifest is None else [p["drift"] for p in manifest.get("parts", {}).values() if "drift" in p]
    if not parts:
        return None
    return functools.reduce(operator.add, (DriftCounts.from_json(p) for p in parts))


def count_input_rows(input_path: Path) -> int:
    """Rows of a Parquet file or folder, from the file footers (no data read)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in input_files(input_path))


@contextmanager
def terminal_progress(total: int, description: str = "scoring") -> Iterator[ProgressCallback]:
    """A rich progress bar (rows done, rows/s, ETA) on a terminal; silent when stderr is not one."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total, rate="-")

        def advance(rows: int) -> None:
            bar.advance(task, rows)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.0f}" if speed else "-")

        yield advance

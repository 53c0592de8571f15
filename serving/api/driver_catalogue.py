"""Driver tables for the API: the analyst's SHAP key-driver analysis of the model being served.

`cxpredict explain` computes the global and per-segment tables on a stratified sample and logs
them as artifacts of an `explain-<name>` MLflow run tagged with the explained model's name and
version. The API serves the latest such run for the served version (and the asked segment
column), so the analyst's report and the API show the same numbers; serving never recomputes them.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd

from cxpredict.models.registry import (
    DRIVERS_GLOBAL_ARTIFACT,
    DRIVERS_KEY_ARTIFACT,
    DRIVERS_SEGMENTS_ARTIFACT,
    DRIVERS_SURVEY_TREND_ARTIFACT,
    PARAM_SEGMENT,
    explain_runs_filter,
    tracking_client,
)

NOTE = (
    "SHAP drivers describe how the model's predictions move with each customer column: associations "
    "learned from the data, not proven causes. Test an action (a randomised campaign) before attributing "
    "an effect to it."
)
GLOBAL_FILE = DRIVERS_GLOBAL_ARTIFACT
SEGMENTS_FILE = DRIVERS_SEGMENTS_ARTIFACT
KEY_DRIVERS_FILE = DRIVERS_KEY_ARTIFACT
SURVEY_TREND_FILE = DRIVERS_SURVEY_TREND_ARTIFACT
SEGMENT_COLUMNS_TTL_S = 60.0
MAX_RUNS = 200  # explain runs of one model version searched for the asked segment column


class DriversNotFound(LookupError):
    """No driver analysis of the served model (for that segment column): 404 with what to run."""


@dataclass
class DriverTables:
    run_id: str
    computed_at: datetime
    segment_column: str | None
    table: pd.DataFrame  # the global table, or the per-segment table when a segment column was asked


@dataclass
class DriverCatalogue:
    """Driver tables of one served model version, fetched from MLflow once and kept."""

    tracking_uri: str
    experiment_name: str
    model_name: str
    model_version: str
    _cache: dict[tuple[str | None, str], DriverTables] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _columns: tuple[float, list[str]] | None = None

    def get(self, segment: str | None) -> DriverTables:
        """The SHAP driver table: global, or per segment value of the `segment` column."""
        return self.artifact(segment, SEGMENTS_FILE if segment is not None else GLOBAL_FILE)

    def key_drivers(self, segment: str | None) -> DriverTables:
        """The key-driver table of the rated attributes (rows for `all` and, by segment, each value)."""
        return self.artifact(segment, KEY_DRIVERS_FILE)

    def segment_columns(self) -> list[str]:
        """The segment columns the explain runs of this version were made with (for the console's choice).

        Kept for a minute: a page load should not search MLflow, and a new explain run still shows up soon.
        """
        now = time.monotonic()
        with self._lock:
            if self._columns is not None and now - self._columns[0] < SEGMENT_COLUMNS_TTL_S:
                return self._columns[1]
        columns = self._search_segment_columns()
        with self._lock:
            self._columns = (now, columns)
        return columns

    def _search_segment_columns(self) -> list[str]:
        client = tracking_client(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], self._filter(), max_results=MAX_RUNS)
        return sorted({r.data.params[PARAM_SEGMENT] for r in runs if r.data.params.get(PARAM_SEGMENT)})

    def _filter(self) -> str:
        return explain_runs_filter(self.model_name, self.model_version)

    def artifact(self, segment: str | None, path: str) -> DriverTables:
        """A CSV table of the latest explain run of the served version (for that segment column), kept."""
        with self._lock:
            if (segment, path) not in self._cache:
                self._cache[(segment, path)] = self._fetch(segment, path)
            return self._cache[(segment, path)]

    def _fetch(self, segment: str | None, path: str) -> DriverTables:
        client = tracking_client(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment_name)
        wanted = self._filter()
        # The segment is matched here, not in the filter string: a user's text never becomes MLflow syntax.
        runs = [] if experiment is None else client.search_runs(
            [experiment.experiment_id], wanted, order_by=["attributes.start_time DESC"], max_results=MAX_RUNS)
        runs = [r for r in runs if r.data.params.get(PARAM_SEGMENT) == segment or segment is None][:1]
        if not runs:
            how = f" --segment-by {segment}" if segment else ""
            raise DriversNotFound(
                f"no driver analysis of {self.model_name} version {self.model_version}"
                f"{f' by {segment!r}' if segment else ''}: run `cxpredict explain --config ...{how}`")
        run = runs[0]
        folder, name = path.rsplit("/", 1)
        if name not in {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run.info.run_id, folder)}:
            raise DriversNotFound(f"the driver analysis (run {run.info.run_id}) has no {name}: the survey has no "
                                  "rated attributes or dates to analyse, or the run predates them")
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=path, dst_path=tmp,
                                                        tracking_uri=self.tracking_uri)
            # Segment values stay text ("1" is a label, not a number), as in the explain run's table.
            table = pd.read_csv(Path(local), dtype={"segment": str})
        return DriverTables(run.info.run_id, datetime.fromtimestamp(run.info.start_time / 1000, UTC), segment, table)

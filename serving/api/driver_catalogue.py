"""Driver tables for the API: the analyst's SHAP key-driver analysis of the model being served.

`cxpredict explain` computes the global and per-segment tables on a stratified sample and logs
them as artifacts of an `explain-<name>` MLflow run tagged with the explained model's name and
version. The API serves the latest such run for the served version (and the asked segment
column), so the analyst's report and the API show the same numbers; serving never recomputes them.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd

from cxpredict.models.registry import (
    DRIVERS_GLOBAL_ARTIFACT,
    DRIVERS_SEGMENTS_ARTIFACT,
    PARAM_SEGMENT,
    explain_runs_filter,
    tracking_client,
)

NOTE = (
    "SHAP drivers describe how the model's predictions move with each customer column: associations "
    "learned from the data, not proven causes. Test an action (a randomised campaign) before attributing "
    "an effect to it."
)
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
    _cache: dict[str | None, DriverTables] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, segment: str | None) -> DriverTables:
        with self._lock:
            if segment not in self._cache:
                self._cache[segment] = self._fetch(segment)
            return self._cache[segment]

    def _fetch(self, segment: str | None) -> DriverTables:
        client = tracking_client(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment_name)
        wanted = explain_runs_filter(self.model_name, self.model_version)
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
        path = DRIVERS_SEGMENTS_ARTIFACT if segment is not None else DRIVERS_GLOBAL_ARTIFACT
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=path, dst_path=tmp,
                                                        tracking_uri=self.tracking_uri)
            table = pd.read_csv(Path(local))
        return DriverTables(run.info.run_id, datetime.fromtimestamp(run.info.start_time / 1000, UTC), segment, table)

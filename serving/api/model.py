"""The model the API serves: loaded once, checked against the store, swapped atomically on reload.

A request takes `ModelManager.current` once and uses that object to the end, so a swap never
mixes two models inside one request: in-flight requests finish on the old model. Loading,
checking and ranking the alerts happen in a background thread; the new model goes live only when
all of it succeeded, otherwise the old one keeps serving and the failure is reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric, String
from sqlalchemy.types import TypeEngine

from cxpredict.features.build import BOOLEAN, DATE, NUMERIC, FeaturePipeline
from cxpredict.features.config import ConfigError, CxConfig
from cxpredict.features.records import RecordEncoder
from cxpredict.features.strategies import Strategy, validate_strategies
from cxpredict.models.bundle import ScoringBundle
from cxpredict.models.bundle_files import BundleError
from cxpredict.models.explain import DriverExplainer
from cxpredict.models.registry import (
    CHAMPION,
    LoadedBundle,
    RegisteredModelError,
    load_registered_bundle,
    tracking_client,
)
from cxpredict.serving.api.alerts import AlertList, rank_alerts
from cxpredict.serving.api.driver_catalogue import DriverCatalogue
from cxpredict.serving.api.explaining import warm_up
from cxpredict.serving.api.store import CustomerStore

logger = logging.getLogger(__name__)

_COMPATIBLE: dict[str, tuple[type[TypeEngine], ...]] = {
    NUMERIC: (Integer, Float, Numeric, Boolean),
    BOOLEAN: (Boolean, Integer, String),
    DATE: (DateTime, Date, String),
}


class ModelNotReady(RuntimeError):
    """No model is loaded (yet): the API answers 503."""


def schema_problems(pipeline: FeaturePipeline, columns: Mapping[str, TypeEngine]) -> list[str]:
    """Why a model cannot score the store's rows: features missing from it or stored with an unusable type."""
    problems = []
    for spec in pipeline.specs_:
        if spec.name not in columns:
            problems.append(f"feature '{spec.name}' is not a column of the customer store")
            continue
        allowed = _COMPATIBLE.get(spec.kind)
        if allowed and not isinstance(columns[spec.name], allowed):
            problems.append(f"feature '{spec.name}' ({spec.kind}) is stored as {columns[spec.name]}")
    return problems


@dataclass
class ServingModel:
    """One loaded bundle with everything derived from it that requests need."""

    loaded: LoadedBundle
    encoder: RecordEncoder
    threads: int
    alerts: AlertList | None = None
    catalogue_error: str | None = None  # why the strategy catalogue cannot be simulated with this model
    explainer: DriverExplainer | None = None
    drivers: DriverCatalogue | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def bundle(self) -> ScoringBundle:
        return self.loaded.bundle

    @property
    def version(self) -> str:
        return self.loaded.version

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Predictions for customer records (dicts of raw feature values), from arrays."""
        return self.bundle.predict_matrix(self.encoder.encode(records), self.threads)


@dataclass
class ReloadStatus:
    state: str = "idle"  # idle | loading | failed
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None  # swapped | unchanged | refused | failed
    version: str | None = None  # the version the last attempt looked at
    error: str | None = None


Loader = Callable[[str, str, str], LoadedBundle]


def _registry_loader(tracking_uri: str, name: str, alias: str) -> LoadedBundle:
    return load_registered_bundle(tracking_uri, name, alias=alias)


class ModelManager:
    """Holds the current model; loads, checks and swaps in new ones.

    Args:
        config: the dataset config (tracking URI, model name, value column).
        store: the customer store the model must fit.
        alias: registry alias to serve.
        threads: LightGBM threads per prediction.
        alerts_pool: how many ranked silent customers to keep.
        on_swap: called with the new model after every swap (metrics).
        on_reload: called with the outcome of every reload attempt (metrics).
        loader: loads a bundle (tracking_uri, name, alias); the registry by default.
        strategies: the catalogue, checked against each model before it goes live.
        on_change: called with (old, new) after a swap to a different version than the one served
            (not at the first load): the app runs the alert rules from it, off the request path.
    """

    def __init__(
        self, config: CxConfig, store: CustomerStore, alias: str = CHAMPION, threads: int = 1,
        alerts_pool: int = 10_000, on_swap: Callable[[ServingModel], None] | None = None,
        on_reload: Callable[[str], None] | None = None, loader: Loader = _registry_loader,
        strategies: Sequence[Strategy] = (),
        on_change: Callable[[ServingModel, ServingModel], None] | None = None,
    ):
        self.config = config
        self.store = store
        self.strategies = list(strategies)
        self.alias = alias
        self.threads = threads
        self.alerts_pool = alerts_pool
        self.on_swap = on_swap
        self.on_reload = on_reload
        self.loader = loader
        self.on_change = on_change
        self.current: ServingModel | None = None
        self.status = ReloadStatus()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed_version: str | None = None

    def get(self) -> ServingModel:
        model = self.current
        if model is None:
            raise ModelNotReady(self.status.error or "no model loaded yet")
        return model

    def alias_version(self) -> str:
        """The version the alias points to now (a cheap registry call)."""
        client = tracking_client(self.config.tracking_uri)
        return str(client.get_model_version_by_alias(self.config.registered_model_name, self.alias).version)

    def prepare(self, loaded: LoadedBundle) -> ServingModel:
        """Check a loaded bundle against the store and rank its alerts; raises ValueError when refused."""
        store_ready = self.store.refresh()
        if store_ready:
            problems = schema_problems(loaded.bundle.pipeline, self.store.columns)
            if problems:
                raise ValueError(f"model version {loaded.version} refused: " + "; ".join(problems))
        encoder = RecordEncoder(loaded.bundle.pipeline, self.config.scoring.plausibility)
        model = ServingModel(loaded, encoder, self.threads)
        model.explainer = DriverExplainer(loaded.bundle, threads=self.threads)
        warm_up(model.explainer, len(model.encoder.names))
        model.drivers = DriverCatalogue(self.config.tracking_uri, self.config.experiment_name, loaded.model_name,
                                        loaded.version)
        if self.strategies:
            try:
                validate_strategies(self.strategies, feature_schema=loaded.bundle.pipeline.schema(),
                                    source=str(self.config.strategies))
            except ConfigError as err:  # scores still work; only simulations are refused
                model.catalogue_error = f"strategy catalogue does not fit model version {loaded.version}: {err}"
                logger.warning(model.catalogue_error)
        if store_ready:
            started = time.perf_counter()
            model.alerts = rank_alerts(loaded.bundle, self.store, self.config.value_column, self.alerts_pool,
                                       self.threads)
            logger.info("alerts ranked for version %s: %d silent customers in %.1fs", loaded.version,
                        model.alerts.n_silent, time.perf_counter() - started)
        return model

    def reload(self, force: bool = False) -> ReloadStatus:
        """Load what the alias points to and swap it in (synchronously); keeps the old model on failure."""
        status = ReloadStatus(state="loading", requested_at=datetime.now(UTC))
        self.status = status
        outcome = "failed"
        try:
            version = self.alias_version()
            status.version = version
            current = self.current
            if not force and current is not None and current.version == version and self.store.ready:
                outcome = "unchanged"
            else:
                loaded = self.loader(self.config.tracking_uri, self.config.registered_model_name, self.alias)
                model = self.prepare(loaded)
                self.current = model  # the swap: one reference assignment
                self._failed_version = None
                outcome = "swapped"
                logger.info("serving %s version %s", loaded.model_name, loaded.version)
                if self.on_swap is not None:
                    self.on_swap(model)
                if self.on_change is not None and current is not None and current.version != model.version:
                    self.on_change(current, model)
            status.state = "idle"
        except RegisteredModelError as err:  # a version that does not exist or cannot load: keep the old model
            status.state, status.error = "failed", str(err)
            self._failed_version = status.version
            logger.error("model reload failed: %s", status.error)
        except (ValueError, BundleError) as err:  # a model that does not fit, or whose files changed
            status.state, status.error, outcome = "failed", str(err), "refused"
            self._failed_version = status.version
            logger.error("model reload refused: %s", err)
        except Exception as err:  # registry down, broken artifact: keep serving the old model
            status.state, status.error = "failed", f"{type(err).__name__}: {err}"
            self._failed_version = status.version
            logger.error("model reload failed: %s", status.error)
        status.outcome = outcome
        status.finished_at = datetime.now(UTC)
        if self.on_reload is not None:
            self.on_reload(outcome)
        return status

    def reload_in_background(self, force: bool = False) -> tuple[bool, ReloadStatus]:
        """Start a reload unless one is running; returns (started, status)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False, self.status
            self.status = ReloadStatus(state="loading", requested_at=datetime.now(UTC))
            self._thread = threading.Thread(target=self.reload, kwargs={"force": force}, name="model-reload",
                                            daemon=True)
            self._thread.start()
            return True, self.status

    def poll_once(self) -> bool:
        """Reload in the background when the alias moved to a version not yet tried; True if started."""
        try:
            version = self.alias_version()
        except Exception as err:
            logger.warning("alias check failed: %s", type(err).__name__)
            return False
        current = self.current
        if (current is not None and current.version == version) or version == self._failed_version:
            return False
        started, _ = self.reload_in_background()
        return started

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

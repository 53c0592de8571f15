"""The API application: `create_app` builds it; the lifespan loads the config, store and model once.

Run it with `cxpredict serve --config ...`, or `uvicorn --factory cxpredict.serving.api.app:create_app` with
CXPREDICT_CONFIG set. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from cxpredict.features.config import ConfigError, CxConfig, load_config
from cxpredict.features.strategies import config_strategies
from cxpredict.serving.api.access_log import hide_access_log_ids
from cxpredict.serving.api.alerting import BackgroundAlerts, load_alert_setup
from cxpredict.serving.api.console.docs import install_docs
from cxpredict.serving.api.console.routes import install_console
from cxpredict.serving.api.errors import SafeErrorsMiddleware, install_error_handlers
from cxpredict.serving.api.metrics import ApiMetrics, BodySizeLimitMiddleware, MetricsMiddleware
from cxpredict.serving.api.model import ModelManager, ServingModel
from cxpredict.serving.api.routes import (
    admin,
    alerts,
    campaigns,
    customers,
    drivers,
    health,
    model,
    scores,
    simulations,
    strategies,
)
from cxpredict.serving.api.routes import (
    tasks as task_routes,
)
from cxpredict.serving.api.settings import ServingSettings, read_settings, store_url
from cxpredict.serving.api.store import CustomerStore
from cxpredict.serving.api.tasks import TaskStore

logger = logging.getLogger(__name__)


class SettingsError(ValueError):
    """Server settings that cannot be used; one line that never quotes the settings' values."""

DESCRIPTION = """
Experience scores, dissatisfaction causes, driver ratings and churn risk for every customer,
one by one or in batches, from the `champion` model in the MLflow registry.

When API keys are configured every `/v1` route needs one (header `X-API-Key` or
`Authorization: Bearer`), with the scope its tag names: `score`, `simulate` or `admin`.
"""


async def _poll_alias(manager: ModelManager, every_s: float) -> None:
    """Check the registry alias every `every_s` seconds and reload when it moved."""
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(manager.poll_once)


def _background_alerts(config: CxConfig, settings: ServingSettings, store: CustomerStore,
                       tasks: TaskStore) -> BackgroundAlerts | None:
    """The alert runner for champion changes, or None (no `alerts` key, switched off, or rules that do not load)."""
    try:
        tasks.create()
    except Exception as err:  # an unreachable store: /readyz says so; task routes answer 503
        logger.error("task tables not created: %s", type(err).__name__)
    if not config.alerts or not settings.alerts_on_change:
        return None
    try:
        load_alert_setup(config)  # checked once here, so a broken catalogue is reported at start
    except ConfigError as err:
        logger.error("alert rules not loaded, alerts will not run on model changes: %s", err)
        return None
    return BackgroundAlerts(settings.config.resolve(), store.url, settings.store_table, settings.predict_threads)


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: server settings; read from CXPREDICT_* environment variables when omitted.
    Returns:
        The FastAPI app (the model is loaded when it starts, in its lifespan).
    """
    if settings is None:
        try:  # pydantic's own text quotes the input: the API keys
            settings = read_settings()  # config comes from the environment
        except ValueError as err:
            raise SettingsError(str(err)) from None
    if not settings.access_log_ids:
        hide_access_log_ids()
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = load_config(settings.config)
        store = CustomerStore(store_url(settings, config), settings.store_table, config.id_column)

        def on_swap(served: ServingModel) -> None:
            metrics.set_model(served.loaded.model_name, served.version, served.loaded_at.timestamp())

        catalogue = config_strategies(config)[0] if config.strategies else []
        tasks = TaskStore(store.url, settings.store_table, engine=store.engine)
        background = _background_alerts(config, settings, store, tasks)

        def on_change(old: ServingModel, new: ServingModel) -> None:
            if background is not None:
                background.start(new.version)

        manager = ModelManager(
            config, store, alias=settings.model_alias, threads=settings.predict_threads,
            alerts_pool=settings.alerts_pool, on_swap=on_swap,
            on_reload=lambda outcome: metrics.reloads.labels(outcome=outcome).inc(), strategies=catalogue,
            on_change=on_change,
        )
        app.state.config, app.state.store, app.state.models = config, store, manager
        app.state.tasks, app.state.background_alerts = tasks, background
        metrics.watch_tasks(tasks)
        app.state.strategies = catalogue
        status = await asyncio.to_thread(manager.reload)
        if manager.current is None:
            logger.error("no model loaded at startup (%s); /readyz reports not ready", status.error)
        poller = asyncio.create_task(_poll_alias(manager, settings.reload_poll_s)) if settings.reload_poll_s else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            manager.wait(timeout=30)
            if background is not None:
                background.wait(timeout=60)
            store.close()

    # docs_url/redoc_url off: install_docs serves both from the package's assets (no CDN).
    app = FastAPI(title="cxpredict", version="1", description=DESCRIPTION, lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in (health.router, scores.router, customers.router, simulations.router, strategies.router,
                   drivers.router, alerts.router, model.router, admin.router, campaigns.router,
                   task_routes.router, task_routes.rules_router):
        app.include_router(router)
    install_console(app)
    install_docs(app)
    # Added last = outermost: metrics see every response, 413s and 500s included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SafeErrorsMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app

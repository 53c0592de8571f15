"""Prometheus metrics and the two ASGI middlewares around the app: request metrics and body size limit.

Metrics live in a registry per app (tests build many apps in one process). Routes are labelled
by their template (`/v1/customers/{customer_id}/score`), never by the raw path, so customer ids
cannot blow up the number of series. Both middlewares are plain ASGI: no per-request task or
body copy, which matters at a few hundred microseconds per request.
"""

from __future__ import annotations

import json
import time
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"


class ApiMetrics:
    """The server's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cxpredict_http_requests", "HTTP requests by route template and status code",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "cxpredict_http_request_duration_seconds", "Request latency by route template",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.model_version = Gauge(
            "cxpredict_model_version", "Registered version number of the model being served",
            ["model_name"], registry=self.registry,
        )
        self.model_loaded_at = Gauge(
            "cxpredict_model_loaded_timestamp_seconds", "When the served model went live (unix time)",
            registry=self.registry,
        )
        self.reloads = Counter(
            "cxpredict_model_reloads", "Model reload attempts by outcome (swapped, unchanged, refused, failed)",
            ["outcome"], registry=self.registry,
        )
        self.customers_scored = Counter(
            "cxpredict_customers_scored", "Customers scored through the API", registry=self.registry,
        )

    def watch_tasks(self, tasks: Any) -> None:
        """Report open tasks by level and owner and their age, read from the task store at each scrape."""
        self.registry.register(TaskCollector(tasks))

    def set_model(self, model_name: str, version: str, loaded_at: float) -> None:
        self.model_version.clear()
        try:
            self.model_version.labels(model_name=model_name).set(float(version))
        except ValueError:
            self.model_version.labels(model_name=model_name).set(float("nan"))
        self.model_loaded_at.set(loaded_at)


class TaskCollector:
    """Open tasks by level and owner, and the age of the oldest, queried when Prometheus scrapes.

    Read at scrape time (one GROUP BY over the indexed state column) so every worker process
    reports the same figures, whoever changed the tasks.
    """

    def __init__(self, tasks: Any):
        self.tasks = tasks

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("cxpredict_open_tasks", "Tasks not yet closed, by level and owner",
                              labels=["level", "owner"]),
            GaugeMetricFamily("cxpredict_open_task_oldest_age_seconds",
                              "Age of the oldest task not yet closed, by level and owner", labels=["level", "owner"]),
        )

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> list[GaugeMetricFamily]:
        count, oldest = self._families()
        try:
            rows = self.tasks.open_summary()
        except Exception:  # store unreachable or not created yet: report no series rather than fail the scrape
            rows = []
        now = time.time()
        for row in rows:
            labels = [str(row["level"]), str(row["owner_id"])]
            count.add_metric(labels, float(row["n"]))
            created = row["oldest"]
            if created is not None:
                if created.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
                    created = created.replace(tzinfo=UTC)
                oldest.add_metric(labels, max(now - created.timestamp(), 0.0))
        return [count, oldest]


class MetricsMiddleware:
    """Counts and times every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, template, str(status)).inc()


class BodySizeLimitMiddleware:
    """413 for request bodies above `max_bytes`, whether declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False  # the server rejects a malformed length itself
            if too_big:
                await self._reject(send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # Streamed (chunked) body: read it up to the limit, then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None

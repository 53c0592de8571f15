"""Webhooks (optional, off by default): new tasks of the configured levels posted as JSON, off the scoring path.

Each `webhooks` entry of the config gets the tasks a run opened at its levels (critical by
default). Posting happens on a background thread with a queue: an `alerts run` (or a model swap
in the API) only enqueues. A failed post is retried with exponential back-off; after the last
attempt the payload goes to the store's dead-letter table, never lost and never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from cxpredict.features.config import CxConfig, WebhookConfig
from cxpredict.features.secrets import mask_url
from cxpredict.serving.api.tasks import TaskStore

logger = logging.getLogger(__name__)
PAYLOAD_FIELDS = ("task_id", "customer_id", "rule_id", "level", "basis", "owner_id", "reason", "strategy_id",
                  "strategy_name", "expected_value", "model_version")


@dataclass(frozen=True)
class _Delivery:
    hook: WebhookConfig
    tasks: TaskStore
    task_id: int | None
    body: str


def task_payload(task: dict[str, Any]) -> dict[str, Any]:
    """The JSON body posted for one task."""
    payload = {k: task.get(k) for k in PAYLOAD_FIELDS}
    created = task.get("created_at")
    payload["created_at"] = created.isoformat() if hasattr(created, "isoformat") else created
    payload["event"] = "task.created"
    return payload


class Notifier:
    """Posts new tasks to the configured webhooks from one background thread.

    Args:
        hooks: the config's `webhooks`.
        client: an HTTP client (default: one of its own).
    """

    def __init__(self, hooks: list[WebhookConfig], client: httpx.Client | None = None):
        self.hooks = hooks
        self.client = client or httpx.Client()
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="webhooks", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.dead = 0

    def notify_created(self, tasks: TaskStore, run_id: str) -> None:
        """Enqueue the tasks a run opened, for every hook whose levels include theirs (never raises)."""
        try:
            t = tasks.tasks
            with tasks.engine.connect() as conn:
                rows = [dict(r) for r in conn.execute(
                    select(t).where(t.c.created_run == run_id).order_by(t.c.task_id)).mappings().all()]
            for hook in self.hooks:
                for row in rows:
                    if row["level"] in hook.levels:
                        self._queue.put(_Delivery(hook, tasks, row["task_id"],
                                                  json.dumps(task_payload(row), default=str)))
        except Exception as err:  # notifications must never break a run
            logger.error("webhooks: could not enqueue the new tasks: %s", type(err).__name__)

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                self._deliver(delivery)
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: _Delivery) -> None:
        hook = delivery.hook
        error = ""
        attempts = 0
        for attempt in range(hook.retries + 1):
            attempts = attempt + 1
            try:
                response = self.client.post(hook.url, content=delivery.body, timeout=hook.timeout_s,
                                            headers={"content-type": "application/json"})
                if response.status_code < 300:
                    self.delivered += 1
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                error = type(err).__name__
            if attempt < hook.retries:
                time.sleep(hook.backoff_s * (2 ** attempt))
        self.dead += 1
        logger.warning("webhook %s: task %s dead-lettered after %d attempts (%s)", mask_url(hook.url), delivery.task_id,
                       attempts, error)
        try:
            delivery.tasks.dead_letter(hook.url, delivery.task_id, delivery.body, attempts, error)
        except Exception as err:
            logger.error("webhooks: could not write the dead letter: %s", type(err).__name__)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is done (the CLI, before it exits); True when drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self.client.close()


def notifier_for(config: CxConfig) -> Notifier | None:
    """A notifier for the config's webhooks, or None when none are configured."""
    return Notifier(list(config.webhooks)) if config.webhooks else None

"""Webhooks: new critical tasks posted to a local receiver, retried with back-off, dead-lettered at the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from cxpredict.features.config import WebhookConfig
from cxpredict.serving.api.notify import Notifier
from cxpredict.serving.api.tasks import TASK_COLUMNS, TaskStore
from tests.serving.conftest import free_port

pytestmark = pytest.mark.api


class Receiver:
    """An HTTP server on 127.0.0.1 that fails the first `fail_first` posts (500) and records the rest."""

    def __init__(self, fail_first: int):
        self.fail_first = fail_first
        self.attempts: list[float] = []
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts.append(time.monotonic())
                if len(receiver.attempts) <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.stop()


def _matches(levels: list[str]) -> pd.DataFrame:
    rows = [{"customer_id": f"C{i}", "rule_id": "rule", "level": level, "basis": "predicted", "owner_id": "north",
             "reason": "predicted detractor (0.81): network quality 31", "strategy_id": None, "strategy_name": None,
             "expected_value": None, "p_bottom_band": 0.81, "churn_probability": 0.2, "value": 100.0,
             "model_version": "1"} for i, level in enumerate(levels)]
    return pd.DataFrame(rows, columns=list(TASK_COLUMNS))


def test_webhook_posts_new_critical_tasks_with_retries(tmp_path: Path, receiver: Receiver) -> None:
    tasks = TaskStore(f"sqlite:///{tmp_path / 'store.db'}")
    dead_port = free_port()  # nothing listens here: every attempt fails
    notifier = Notifier([
        WebhookConfig(url=receiver.url, retries=3, backoff_s=0.2),
        WebhookConfig(url=f"http://127.0.0.1:{dead_port}/hook", retries=2, backoff_s=0.05, timeout_s=1),
    ])
    try:
        started = time.perf_counter()
        report = tasks.sync(_matches(["critical", "medium", "critical"]), "test", "run1")
        notifier.notify_created(tasks, report.run_id)
        enqueue_s = time.perf_counter() - started
        assert notifier.drain(timeout=60)
    finally:
        notifier.stop()
    assert enqueue_s < 2.0  # the run only enqueues; posting and back-off happen on the webhook thread
    # Two failures, then both critical tasks delivered; the medium one is not posted.
    assert sorted(b["customer_id"] for b in receiver.bodies) == ["C0", "C2"]
    assert all(b["level"] == "critical" and b["event"] == "task.created" for b in receiver.bodies)
    gaps = [b - a for a, b in zip(receiver.attempts, receiver.attempts[1:], strict=False)][:2]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # back-off 0.2 s, then 0.4 s
    dead = tasks.dead_letter_frame()
    assert sorted(dead["url"].unique()) == [f"http://127.0.0.1:{dead_port}/hook"]
    assert len(dead) == 2 and (dead["attempts"] == 3).all()
    assert sorted(json.loads(p)["customer_id"] for p in dead["payload"]) == ["C0", "C2"]
    # A second run with the same matches opens nothing, so nothing is posted again.
    again = tasks.sync(_matches(["critical", "medium", "critical"]), "test", "run2")
    assert again.created == 0 and again.kept_open == 3
    tasks.dispose()

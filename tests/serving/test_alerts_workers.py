"""`serve --workers N`: every worker sees the champion change, one of them runs the alert rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cxpredict.serving.api.alerting import BackgroundAlerts

pytestmark = pytest.mark.unit


class _CountingAlerts(BackgroundAlerts):
    """The real runner with a child that only records that it ran (a real `alerts run` takes minutes)."""

    def __init__(self, ran: Path, lock_dir: Path):
        super().__init__(Path("cxpredict.yaml"), "sqlite:///store.db", "customers", lock_dir=lock_dir)
        self.ran = ran

    def command(self, version: str) -> list[str]:
        return [sys.executable, "-c", f"open({str(self.ran)!r}, 'a').write({version!r} + '\\n')"]


def test_one_alerts_run_per_version_across_workers(tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    workers = [_CountingAlerts(ran, tmp_path) for _ in range(3)]  # three processes' runners, one lock file
    for thread in [w.start("2") for w in workers]:
        thread.join(60)
    assert ran.read_text().split() == ["2"]
    for thread in [w.start("3") for w in workers]:  # the next change runs again, once
        thread.join(60)
    assert ran.read_text().split() == ["2", "3"]
    assert all(w.last_error is None for w in workers)
    assert "store.db" not in workers[0].lock_path.name  # the URL (a password in it) never names the file

"""Browser fixtures: the system's headless Chromium (Debian package `chromium`) driven by Playwright.

Playwright only drives the browser here: `executable_path` points at the system's Chromium, and
no browser build is ever downloaded (`playwright install` is never run). The server is a real
`cxpredict serve` on 127.0.0.1 over a copy of the session's trained small company, with a driver
analysis (`cxpredict explain --segment segment`) logged first so every chart has data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tests.serving.conftest import (  # noqa: F401  (fixtures shared with the serving tests)
    Company,
    Server,
    company,
    company_copy_factory,
    keyed_env,
    start_server,
    stop_server,
)

CHROMIUM = Path(os.environ.get("CXPREDICT_CHROMIUM", "/usr/bin/chromium"))
# Screenshots are test artifacts: kept after the run (ignored by git), one PNG per page.
ARTIFACTS = Path(os.environ.get("CXPREDICT_ARTIFACTS", REPO_ROOT / "artifacts")) / "browser"


@dataclass
class Console:
    server: Server
    company: Company


@pytest.fixture(scope="session")
def console_server(company_copy_factory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:  # noqa: ANN001, F811
    """A keyed server over its own copy of the company (its own MLflow store), explained by segment."""
    copy = company_copy_factory()
    done = run_cli("explain", "--config", str(copy.config_path), "--out", str(copy.folder / "explain"),
                   "--segment", "segment", "--sample", "1000", "--target", "detractor", "--target", "churn",
                   cwd=copy.folder)
    assert done.returncode == 0, done.stderr
    server = start_server(copy.config_path, tmp_path_factory.mktemp("console") / "server.log", keyed_env())
    yield Console(server, copy)
    stop_server(server)


@pytest.fixture(scope="session")
def browser():  # noqa: ANN201
    """One headless Chromium for the session."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` (or set CXPREDICT_CHROMIUM)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

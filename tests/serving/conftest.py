"""Serving fixtures: one trained champion per session, its customer store, and real uvicorn servers.

Servers are started through the real `cxpredict serve` command in a subprocess on a free loopback
port, and stopped by their own process id.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.load import Dataset, load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from tests.conftest import TrainedCompany, run_cli

SCORE_KEY = "score-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
SIMULATE_KEY = "simulate-key-0123456789abcdef"
API_KEYS = {SCORE_KEY: ["score"], ADMIN_KEY: ["admin"], SIMULATE_KEY: ["simulate", "score"]}


@dataclass
class Company:
    """A generated company with a trained champion and a loaded SQLite customer store."""

    folder: Path
    config_path: Path
    config: CxConfig
    dataset: Dataset


MODEL_NAME = "cxpredict-small"


@pytest.fixture(scope="session")
def company(small_training: TrainedCompany) -> Company:
    """The session's trained small company (4,000 customers, champion v1) with its customer store loaded.

    The server reads its config from a file, so the training's MLflow store is written into a
    config file of its own beside the data (the data's own cxpredict.yaml is left alone).
    """
    config = small_training.config
    folder = config.base_dir
    raw = yaml.safe_load((folder / "cxpredict.yaml").read_text())
    raw["mlflow"] = {"tracking_uri": config.tracking_uri, "artifact_location": config.artifact_location}
    config_path = folder / "serving.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = run_cli("store", "load", "--config", str(config_path), cwd=folder)
    assert done.returncode == 0, done.stderr
    config = load_config(config_path)
    return Company(folder, config_path, config, load_dataset(config))


@pytest.fixture(scope="session")
def company_copy_factory(company: Company, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Independent copies of the company folder (own MLflow registry and store) for tests that change them."""

    def copy() -> Company:
        """The data, the MLflow store (its artifacts stay shared, read-only) and the customer store."""
        target = tmp_path_factory.mktemp("company_copy")
        shutil.copytree(company.folder, target / "data")
        store = Path(company.config.tracking_uri.removeprefix("sqlite:///"))
        shutil.copy(store, target / store.name)
        shutil.copy(store.parent / "cxstore.db", target / "cxstore.db")
        raw = yaml.safe_load(company.config_path.read_text())
        raw["mlflow"]["tracking_uri"] = f"sqlite:///{target / store.name}"
        config_path = target / "data" / "serving.yaml"
        config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return Company(target / "data", config_path, load_config(config_path), company.dataset)

    return copy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(config_path: Path, log: Path, env: dict[str, str] | None = None, timeout: float = 180,
                 expect_ready: bool = True) -> Server:
    """`cxpredict serve` in a subprocess; returns once /healthz answers (and /readyz when expected)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cxpredict.cli", "serve", "--config", str(config_path), "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=config_path.parent, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    path = "/readyz" if expect_ready else "/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.logs()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


def keyed_env(**extra: str) -> dict[str, str]:
    return {"CXPREDICT_API_KEYS": json.dumps(API_KEYS), **extra}


@pytest.fixture(scope="session")
def api_server(company: Company, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The company's API with API keys configured (read-only tests share it)."""
    server = start_server(company.config_path, tmp_path_factory.mktemp("server") / "server.log",
                          keyed_env(CXPREDICT_MAX_BODY_BYTES="200000"))
    yield server
    stop_server(server)


@pytest.fixture()
def client(api_server: Server) -> Iterator[httpx.Client]:
    """An HTTP client holding a key with the `score` scope."""
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": SCORE_KEY}, timeout=60) as http:
        yield http


SCALE_CUSTOMERS = 3000


@dataclass
class ScaleCompany:
    """A synthetic company folder with a champion model in its own MLflow store (scale tests)."""

    folder: Path
    config: Path
    customers: Path


@pytest.fixture(scope="session")
def scale_company(tmp_path_factory: pytest.TempPathFactory) -> ScaleCompany:
    """3,000 customers, 25 % surveyed, every model trained with 2 trials on 1 thread."""
    folder = tmp_path_factory.mktemp("scale_company")
    config = write_company(generate_company(SCALE_CUSTOMERS, 0.25, seed=3), folder, name="scale")
    text = config.read_text()
    config.write_text(text.replace("bias_correction: true}", "bias_correction: true, threads: 1}"))
    assert "threads: 1" in config.read_text()
    done = run_cli("train", "--config", str(config), "--tune-trials", "2", cwd=folder)
    assert done.returncode == 0, done.stderr
    return ScaleCompany(folder, config, folder / "customers.parquet")

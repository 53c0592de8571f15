"""Commands started by `mlflow run`: detach from the launcher's run, log in the config's store, link both."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import pytest

from cxpredict.training.project import (
    PROJECT_RUN_ENV,
    PROJECT_STORE_ENV,
    TAG_PROJECT_RUN,
    TAG_PROJECT_STORE,
    TAG_RUN,
    TAG_STORE,
    detach_project_run,
    link_project_run,
    project_run,
)

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty (and restored afterwards) whatever detach_project_run writes into the environment."""
    for name in (PROJECT_RUN_ENV, PROJECT_STORE_ENV, "MLFLOW_RUN_ID"):
        monkeypatch.setenv(name, "")


def make_run(store: str, experiment: str) -> str:
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment_id = client.create_experiment(experiment)
    return client.create_run(experiment_id).info.run_id


def test_outside_mlflow_run_nothing_happens() -> None:
    assert detach_project_run() is None
    assert link_project_run("any-run", "sqlite:///unused.db") is None


def test_launched_run_is_detached_and_linked_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher_store = f"sqlite:///{tmp_path / 'project.db'}"
    own_store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    launcher_run = make_run(launcher_store, "launcher")
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher_run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", launcher_store)

    detached = detach_project_run()
    assert detached is not None and detached.run_id == launcher_run and detached.tracking_uri == launcher_store
    assert "MLFLOW_RUN_ID" not in os.environ  # so mlflow.start_run opens a new run
    assert project_run() == detached  # still known after the variable is gone

    mlflow.set_tracking_uri(own_store)
    experiment_id = mlflow.MlflowClient(tracking_uri=own_store).create_experiment("cxpredict-acme")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        assert run.info.run_id != launcher_run
        link_project_run(run.info.run_id, own_store)

    own = mlflow.MlflowClient(tracking_uri=own_store).get_run(run.info.run_id)
    assert own.data.tags[TAG_PROJECT_RUN] == launcher_run and own.data.tags[TAG_PROJECT_STORE] == launcher_store
    theirs = mlflow.MlflowClient(tracking_uri=launcher_store).get_run(launcher_run)
    assert theirs.data.tags[TAG_RUN] == run.info.run_id and theirs.data.tags[TAG_STORE] == own_store


def test_unreachable_launcher_store_costs_only_the_back_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    own_store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    own_run = make_run(own_store, "cxpredict-acme")
    monkeypatch.setenv(PROJECT_RUN_ENV, "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # has no such run
    with caplog.at_level(logging.WARNING, logger="cxpredict.training.project"):
        link_project_run(own_run, own_store)
    assert "could not tag the mlflow run" in caplog.text
    tags = mlflow.MlflowClient(tracking_uri=own_store).get_run(own_run).data.tags
    assert tags[TAG_PROJECT_RUN] == "0123456789abcdef0123456789abcdef"

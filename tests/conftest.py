"""Shared fixtures: small generated datasets, written once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.synthetic import generate_company, write_company

if TYPE_CHECKING:
    from cxpredict.models.bundle import ScoringBundle
    from cxpredict.training.train import TrainResult

# Compiled trees (models/compiled.py) take ~1 min per model: off for the suite, also in the CLI
# subprocesses (they inherit the environment); tests/model/test_compiled.py turns it on itself.
os.environ.setdefault("CXPREDICT_COMPILE", "0")

SMALL_CUSTOMERS = 4000
# 1,000 respondents: ~200 held out, so test metrics (cause AUCs above all) are not too noisy.
SMALL_SURVEY_RATE = 0.25


@pytest.fixture(scope="session")
def small_company_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4,000-customer synthetic company with 25 % surveyed (enough rows for every model)."""
    out = tmp_path_factory.mktemp("small_company")
    write_company(generate_company(SMALL_CUSTOMERS, SMALL_SURVEY_RATE, seed=7), out, name="small")
    return out


def with_store(config: CxConfig, folder: Path) -> CxConfig:
    """The config with its MLflow store (SQLite) and artifacts in `folder`."""
    return config.model_copy(update={"mlflow": config.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_location": (folder / "artifacts").as_uri(),
    })})


@pytest.fixture()
def small_config(small_company_dir: Path, tmp_path: Path) -> CxConfig:
    """The small company's config with its own MLflow store, so tests do not share registries."""
    return with_store(load_config(small_company_dir / "cxpredict.yaml"), tmp_path)


HIDDEN_FRACTION = 0.2


@dataclass
class TrainedCompany:
    """One real training of the small company (train(), tune_trials=2) and the config it used.

    A fifth of the respondents and of the churn outcomes were removed from the files before
    training (`hidden_survey`, `hidden_outcomes`): truth the whole training run never saw.
    """

    config: CxConfig
    result: TrainResult
    hidden_survey: pd.DataFrame
    hidden_outcomes: pd.DataFrame

    @property
    def bundle(self) -> ScoringBundle:
        return self.result.bundle


@pytest.fixture(scope="session")
def small_training(small_company_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedCompany:
    """The small company, minus hidden rows, trained once per session into its own MLflow store."""
    from cxpredict.training.train import train

    folder = tmp_path_factory.mktemp("trained")
    data = folder / "data"
    shutil.copytree(small_company_dir, data)
    rng = np.random.default_rng(11)
    hidden: dict[str, pd.DataFrame] = {}
    for table in ("survey", "outcomes"):
        frame = pd.read_csv(data / f"{table}.csv")
        is_hidden = np.zeros(len(frame), bool)
        is_hidden[rng.permutation(len(frame))[: int(HIDDEN_FRACTION * len(frame))]] = True
        frame[~is_hidden].to_csv(data / f"{table}.csv", index=False)
        hidden[table] = frame[is_hidden].reset_index(drop=True)
    config = with_store(load_config(data / "cxpredict.yaml"), folder)
    result = train(config, tune_trials=2)
    return TrainedCompany(config, result, hidden["survey"], hidden["outcomes"])


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the `cxpredict` command (cli:app) in a subprocess, from this checkout's code."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "cxpredict.cli", *args], cwd=cwd, capture_output=True, text=True, env=env,
        timeout=timeout,
    )


# What the CLI's progress bars draw (escape codes, elapsed time, stage texts; not the bar's line, which
# rich tables draw too): none of it may reach captured output.
PROGRESS_MARKS = ("\x1b[", "0:00:", "repeat 1/", "SHAP values for", "effects of ", "logging to MLflow", "budget plan (")


def assert_no_progress(done: subprocess.CompletedProcess[str]) -> None:
    """Off a terminal (captured, piped, in CI) a command prints its results and nothing of its progress."""
    for mark in PROGRESS_MARKS:
        assert mark not in done.stdout and mark not in done.stderr, f"progress output {mark!r} off a terminal"


@pytest.fixture(scope="session")
def trained_company(small_company_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small company copied to its own folder and trained once (2 trials): its cxpredict.yaml.

    The champion is registered in that folder's own MLflow store, so CLI tests can explain,
    score and report against a real registry without training again.
    """
    import shutil

    from cxpredict.training.train import train

    out = tmp_path_factory.mktemp("trained_company") / "company"
    shutil.copytree(small_company_dir, out)
    config_path = out / "cxpredict.yaml"
    train(load_config(config_path), tune_trials=2)
    return config_path


@pytest.fixture(scope="session")
def small_bundle(small_training: TrainedCompany) -> tuple:
    """(bundle, dataset): the session's `small_training` bundle and the small company's whole dataset.

    Reuses that one training (a fifth of the respondents and outcomes hidden from it) rather than
    fitting the models again; explanation tests need a trained bundle and every customer row.
    """
    from cxpredict.features.load import load_dataset

    return small_training.bundle, load_dataset(small_training.config)


POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture()
def postgres_database() -> Iterator[str]:
    """A new, empty database on the real server, dropped afterwards (fails, never skips, if unreachable)."""
    import psycopg2

    try:
        admin = psycopg2.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as err:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({str(err).strip()}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
            pytrace=False,
        )
    admin.autocommit = True
    name = f"cxpredict_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

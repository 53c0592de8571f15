"""Shared fixtures: small generated datasets, written once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from features.config import CxConfig, load_config
from features.synthetic import generate_company, write_company

SMALL_CUSTOMERS = 4000
SMALL_SURVEY_RATE = 0.15


@pytest.fixture(scope="session")
def small_company_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4,000-customer synthetic company with 15 % surveyed (enough rows for every model)."""
    out = tmp_path_factory.mktemp("small_company")
    write_company(generate_company(SMALL_CUSTOMERS, SMALL_SURVEY_RATE, seed=7), out, name="small")
    return out


@pytest.fixture()
def small_config(small_company_dir: Path, tmp_path: Path) -> CxConfig:
    """The small company's config with its own MLflow store, so tests do not share registries."""
    config = load_config(small_company_dir / "cxpredict.yaml")
    return config.model_copy(update={"mlflow": config.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "artifact_location": (tmp_path / "artifacts").as_uri(),
    })})


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the `cxpredict` command (cli:app) in a subprocess, from this checkout's code."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="session")
def trained_company(small_company_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small company copied to its own folder and trained once (2 trials): its cxpredict.yaml.

    The champion is registered in that folder's own MLflow store, so CLI tests can explain,
    score and report against a real registry without training again.
    """
    import shutil

    from training.train import train

    out = tmp_path_factory.mktemp("trained_company") / "company"
    shutil.copytree(small_company_dir, out)
    config_path = out / "cxpredict.yaml"
    train(load_config(config_path), tune_trials=2)
    return config_path


@pytest.fixture(scope="session")
def small_bundle(small_company_dir: Path) -> tuple:
    """(bundle, dataset): every model of the small company fitted in-process (2 trials, no MLflow)."""
    from features.load import load_dataset
    from training.train import Trainer

    config = load_config(small_company_dir / "cxpredict.yaml")
    dataset = load_dataset(config)
    return Trainer(config, dataset, tune_trials=2, log_trials=False).fit(), dataset

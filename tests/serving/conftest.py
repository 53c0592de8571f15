"""A small trained company shared by the scoring-at-scale tests (trained once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from features.synthetic import generate_company, write_company
from tests.conftest import run_cli

SCALE_CUSTOMERS = 3000


@dataclass
class TrainedCompany:
    """A synthetic company folder with a champion model in its own MLflow store."""

    folder: Path
    config: Path
    customers: Path


@pytest.fixture(scope="session")
def trained_company(tmp_path_factory: pytest.TempPathFactory) -> TrainedCompany:
    """3,000 customers, 25 % surveyed, every model trained with 2 trials on 1 thread."""
    folder = tmp_path_factory.mktemp("scale_company")
    config = write_company(generate_company(SCALE_CUSTOMERS, 0.25, seed=3), folder, name="scale")
    text = config.read_text()
    config.write_text(text.replace("bias_correction: true}", "bias_correction: true, threads: 1}"))
    assert "threads: 1" in config.read_text()
    done = run_cli("train", "--config", str(config), "--tune-trials", "2", cwd=folder)
    assert done.returncode == 0, done.stderr
    return TrainedCompany(folder, config, folder / "customers.parquet")

"""score (prediction sets, intervals, low_support) and segments through the real `cxpredict` command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3,000-customer company trained with 2 trials on one thread; returns its config path."""
    tmp = tmp_path_factory.mktemp("trust_cli")
    data = tmp / "company"
    done = run_cli("generate", "--customers", "3000", "--survey-rate", "0.2", "--seed", "5", "--out", str(data),
                   cwd=tmp)
    assert done.returncode == 0, done.stderr
    config = data / "cxpredict.yaml"
    # One LightGBM thread: on this small data more threads only add start-up cost.
    config.write_text(config.read_text().replace("bias_correction: true}", "bias_correction: true, threads: 1}"))
    assert "threads: 1" in config.read_text()
    done = run_cli("train", "--config", str(config), "--tune-trials", "2", cwd=tmp)
    assert done.returncode == 0, done.stderr
    return config


def test_score_output_has_sets_intervals_and_support(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    done = run_cli("score", "--config", str(trained), "--out", str(out), "--level", "0.8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = pd.read_parquet(out)
    for column in ("prediction_set", "set_size", "expected_score_low", "expected_score_high", "low_support",
                   "response_propensity"):
        assert column in scores.columns
    assert scores["set_size"].between(1, 3).all()
    assert (scores["expected_score_low"] <= scores["expected_score"] + 1e-9).all()
    assert (scores["expected_score_high"] >= scores["expected_score"] - 1e-9).all()
    bands = scores["prediction_set"].str.split(";")
    assert (bands.str.len() == scores["set_size"]).all()
    assert set().union(*bands) <= {"detractor", "passive", "promoter"}
    # Drift on each scoring run: the scored customers are the training customers, so no warning.
    drift = pd.read_csv(tmp_path / "scores.drift.csv")
    assert drift["psi"].max() < 0.01 and "warning: drift" not in done.stderr


def test_segments_by_column_writes_table(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "segments.csv"
    done = run_cli("segments", "--config", str(trained), "--by", "segment", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert table["n_customers"].sum() == 3000
    assert (table["index_ci_low"] <= table["index_dr"]).all() and (table["index_dr"] <= table["index_ci_high"]).all()
    assert {"index_respondents", "n_respondents", "reliable", "p_promoter"} <= set(table.columns)


def test_segments_unknown_column_is_one_line(trained: Path, tmp_path: Path) -> None:
    done = run_cli("segments", "--config", str(trained), "--by", "no_such_column", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no_such_column" in done.stderr

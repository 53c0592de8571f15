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
    done = run_cli("segments", "--config", str(trained), "--segment-by", "segment", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    everyone = pd.read_csv(out)
    whole = everyone[everyone["segment"] == "whole population"]
    table = everyone[everyone["segment"] != "whole population"]
    assert table["n_customers"].sum() == 3000 and whole["n_customers"].tolist() == [3000]
    # the whole-population row is the population figure: between its segments' extremes
    assert table["index_dr"].min() <= float(whole["index_dr"].iloc[0]) <= table["index_dr"].max()
    assert (table["index_ci_low"] <= table["index_dr"]).all() and (table["index_dr"] <= table["index_ci_high"]).all()
    assert {"index_respondents", "n_respondents", "reliable", "p_promoter"} <= set(table.columns)
    # Sensitivity to unobserved selection (issue 17): ranges that contain the figure and widen with Λ,
    # and the Λ at which the reliable segments' ranking could change, on every row and in the output.
    low, high = everyone["index_dr_lambda_1.5_low"], everyone["index_dr_lambda_1.5_high"]
    assert (low <= everyone["index_dr"] + 1e-9).all() and (everyone["index_dr"] <= high + 1e-9).all()
    assert (everyone["index_dr_lambda_2.0_high"] - everyone["index_dr_lambda_2.0_low"] >= high - low - 1e-9).all()
    lam = everyone["ranking_flip_lambda"]
    assert lam.nunique(dropna=False) == 1 and "the ranking of the reliable segments" in done.stdout
    if lam.notna().all():
        assert lam.iloc[0] >= 1.0 and f"{lam.iloc[0]:.2f}" in done.stdout


def test_segments_unknown_column_is_one_line(trained: Path, tmp_path: Path) -> None:
    done = run_cli("segments", "--config", str(trained), "--by", "no_such_column", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no_such_column" in done.stderr


def _wave(trained: Path, out: Path, seed: int, flip: bool) -> Path:
    """400 silent customers 'answer' with their true score (or its mirror 10 − score)."""
    data = trained.parent
    truth = pd.read_parquet(data / "truth.parquet")
    surveyed = set(pd.read_csv(data / "survey.csv")["customer_id"].astype(str))
    silent = truth[~truth["customer_id"].astype(str).isin(surveyed)].sample(400, random_state=seed)
    score = 10 - silent["true_nps"] if flip else silent["true_nps"]
    pd.DataFrame({"customer_id": silent["customer_id"], "nps": score}).to_csv(out, index=False)
    return out


def test_feedback_waves_build_history_and_flag_degradation(trained: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    good = _wave(trained, tmp_path / "wave_2026_10.csv", 1, flip=False)
    done = run_cli("feedback", "--config", str(trained), "--survey", str(good), "--history", str(history),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no retrain needed" in done.stdout
    bad = _wave(trained, tmp_path / "wave_2026_11.csv", 2, flip=True)  # the world turned upside down
    done = run_cli("feedback", "--config", str(trained), "--survey", str(bad), "--history", str(history),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ": retrain" in done.stdout
    table = pd.read_csv(history)
    assert table["wave"].tolist() == ["wave_2026_10", "wave_2026_11"]
    assert table["retrain_advised"].tolist() == [False, True]
    assert table["log_loss"].iloc[1] > table["log_loss"].iloc[0]
    assert (tmp_path / "feedback_history.png").stat().st_size > 0


def test_feedback_unknown_id_is_one_line(trained: Path, tmp_path: Path) -> None:
    wave = tmp_path / "wave.csv"
    pd.DataFrame({"customer_id": ["nobody"], "nps": [7]}).to_csv(wave, index=False)
    done = run_cli("feedback", "--config", str(trained), "--survey", str(wave), cwd=tmp_path)
    assert done.returncode == 2 and "nobody" in done.stderr
    assert "Traceback" not in done.stderr


def test_survey_plan_writes_importable_csv(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.csv"
    done = run_cli("survey-plan", "--config", str(trained), "--budget", "50", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = pd.read_csv(out)
    surveyed = set(pd.read_csv(trained.parent / "survey.csv")["customer_id"].astype(str))
    assert len(plan) == 50 and plan["customer_id"].is_unique
    assert not set(plan["customer_id"].astype(str)) & surveyed  # only silent customers
    assert plan["reason"].notna().all() and plan["priority"].is_monotonic_decreasing
    too_many = run_cli("survey-plan", "--config", str(trained), "--budget", "999999", cwd=tmp_path)
    assert too_many.returncode == 2 and "silent customers" in too_many.stderr
    precise = tmp_path / "precise.csv"
    done = run_cli("survey-plan", "--config", str(trained), "--budget", "50", "--goal", "precision",
                   "--out", str(precise), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = pd.read_csv(precise)
    assert len(plan) == 50 and plan["customer_id"].is_unique and not set(plan["customer_id"].astype(str)) & surveyed
    assert plan["inclusion_probability"].between(0, 1).all() and plan["reason"].notna().all()
    bad_goal = run_cli("survey-plan", "--config", str(trained), "--budget", "5", "--goal", "speed", cwd=tmp_path)
    assert bad_goal.returncode == 2 and "Traceback" not in bad_goal.stderr


def test_score_stops_on_a_value_the_model_cannot_read(trained: Path, tmp_path: Path) -> None:
    """A number the model cannot read is named with its file, column and row, not scored as missing."""
    import shutil

    import yaml

    data = tmp_path / "company"
    shutil.copytree(trained.parent, data, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    customers = pd.read_parquet(data / "customers.parquet")
    customers["monthly_charge"] = customers["monthly_charge"].astype("string")
    customers.loc[41, "monthly_charge"] = "12,50"
    customers.to_parquet(data / "customers.parquet", index=False)
    raw = yaml.safe_load((data / "cxpredict.yaml").read_text())
    raw["mlflow"] = {"tracking_uri": f"sqlite:///{trained.parent / 'mlflow.db'}"}  # the trained champion
    (data / "cxpredict.yaml").write_text(yaml.safe_dump(raw))
    expected = f"error: {data / 'customers.parquet'}: monthly_charge: '12,50' is not a finite number in rows 42"
    config = str(data / "cxpredict.yaml")
    done = run_cli("score", "--config", config, "--out", str(tmp_path / "s.parquet"), cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert done.stderr.strip() == expected
    assert not (tmp_path / "s.parquet").exists()
    # The same stop wherever the config's customers are scored.
    for command in (["segments", "--by", "segment"], ["survey-plan", "--budget", "10"],
                    ["simulate", "--out", str(tmp_path / "sim")]):
        done = run_cli(*command, "--config", config, cwd=tmp_path)
        assert (done.returncode, done.stderr.strip()) == (2, expected), command

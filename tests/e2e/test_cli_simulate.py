"""generate → train → simulate through the real `cxpredict` command: learned effects travel with the champion."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import assert_no_progress, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3,000-customer company trained through the CLI (score, propensity and churn models only)."""
    root = tmp_path_factory.mktemp("simulate_cli")
    data = root / "company"
    done = run_cli("generate", "--customers", "3000", "--survey-rate", "0.25", "--seed", "3", "--out", str(data),
                   cwd=root)
    assert done.returncode == 0, done.stderr
    config_path = data / "cxpredict.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.pop("causes")
    config["drivers"] = []
    config["training"]["threads"] = 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("train", "--config", str(config_path), "--tune-trials", "2", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "campaign_ate_contract_upgrade" in done.stdout
    return config_path


def test_simulate_segment_filter_with_budget(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    done = run_cli("simulate", "--config", str(trained), "--segment-filter", "contract=month_to_month,one_year",
                   "--budget", "5000", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_progress(done)
    customers = pd.read_parquet(trained.parent / "customers.parquet")
    selected = customers[customers["contract"].isin(["month_to_month", "one_year"])]

    effects = pd.read_parquet(out / "effects.parquet")
    assert set(effects["customer_id"]) <= set(selected["customer_id"])
    assert set(effects["method"]) == {"simulated", "learned"}  # learned effects came back from MLflow
    assert (effects.loc[effects["strategy"] == "contract_upgrade", "method"] == "learned").all()
    assert (effects.loc[effects["strategy"] == "network_upgrade", "method"] == "simulated").all()
    expected_value = -effects["delta_churn"] * effects["value"] - effects["cost"]
    assert (expected_value - effects["expected_value"]).abs().max() < 1e-9
    for column in ("churn_baseline", "churn_strategy", "p_top_baseline", "p_top_strategy"):
        assert effects[column].between(0, 1).all(), column

    best = pd.read_csv(out / "best_strategy.csv")
    assert len(best) == len(selected) and best["customer_id"].is_unique
    strategies = yaml.safe_load((trained.parent / "strategies.yaml").read_text())
    assert set(best["best_strategy"]) <= {s["id"] for s in strategies} | {"none"}
    assert (best.loc[best["best_strategy"] != "none", "expected_value"] > 0).all()

    segments = pd.read_csv(out / "segments.csv")
    overall = segments[segments["segment"] == "all"].set_index("strategy")
    assert overall.loc["none", "n_customers"] == len(selected)
    assert overall.loc["contract_upgrade", "n_eligible"] == (selected["contract"] == "month_to_month").sum()
    assert set(segments["segment"]) == {"all", *selected["segment"].unique()}

    assignment = pd.read_csv(out / "assignment.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert assignment["cost"].sum() <= 5000 + 1e-6 and assignment["customer_id"].is_unique
    assert summary["budget_plan"]["spent"] == pytest.approx(assignment["cost"].sum())
    assert summary["budget_plan"]["total_gain"] <= summary["budget_plan"]["lp_bound"] + 1e-6
    uplift = pd.read_csv(out / "uplift.csv").set_index("strategy")
    assert {"ate", "ate_ci_low", "ate_ci_high", "qini", "qini_random", "auuc", "auuc_random", "ineffective"} <= set(
        uplift.columns
    )
    assert bool(uplift.loc["app_promo", "ineffective"])


def test_simulate_listed_customers_simulated_only(trained: Path, tmp_path: Path) -> None:
    customers = pd.read_parquet(trained.parent / "customers.parquet")
    ids = tmp_path / "ids.csv"
    customers[["customer_id"]].iloc[:25].to_csv(ids, index=False)
    done = run_cli("simulate", "--config", str(trained), "--customers", str(ids), "--objective", "churn",
                   "--simulated-only", "--out", str(tmp_path / "sim"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    best = pd.read_csv(tmp_path / "sim" / "best_strategy.csv")
    assert best["customer_id"].tolist() == customers["customer_id"].iloc[:25].tolist()
    assert (best["objective"] == "churn").all()
    assert (best.loc[best["best_strategy"] != "none", "delta_churn"] < 0).all()
    assert set(pd.read_parquet(tmp_path / "sim" / "effects.parquet")["method"]) == {"simulated"}
    assert not (tmp_path / "sim" / "assignment.csv").exists()


def test_simulate_bad_input_is_one_line(trained: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("customer_id\nC9999999\n")
    done = run_cli("simulate", "--config", str(trained), "--customers", str(ids), "--out", str(tmp_path / "o"),
                   cwd=tmp_path)
    assert done.returncode == 2 and "unknown customer ids, first 'C9999999'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    catalogue = yaml.safe_load((trained.parent / "strategies.yaml").read_text())
    catalogue[1]["apply"] = {"monthly_fee": {"add": -5.0}}
    (trained.parent / "bad_strategies.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    config = yaml.safe_load(trained.read_text())
    config["strategies"] = "bad_strategies.yaml"
    bad_config = trained.parent / "bad.yaml"
    bad_config.write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("simulate", "--config", str(bad_config), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "bad_strategies.yaml: strategy 'voice_half_price': key 'apply.monthly_fee.add'" in line
    assert "'monthly_fee' not found" in line

    done = run_cli("simulate", "--config", str(trained), "--segment-filter", "plan_type=basic",
                   "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2 and "column 'plan_type' not found" in done.stderr

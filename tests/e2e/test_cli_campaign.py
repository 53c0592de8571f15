"""generate → train → campaign plan → results → report → train → history through the real `cxpredict` command.

Every bad input of the issue is a named one-line error (exit 2) that leaves the customer store's
plan tables and the campaigns history byte for byte as they were.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxpredict.features.synthetic import campaign_outcomes
from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3,000-customer company (cause models kept: problem groups) trained once through the CLI."""
    root = tmp_path_factory.mktemp("campaign_cli")
    data = root / "company"
    done = run_cli("generate", "--customers", "3000", "--survey-rate", "0.2", "--seed", "4", "--out", str(data),
                   cwd=root)
    assert done.returncode == 0, done.stderr
    config_path = data / "cxpredict.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["drivers"] = []
    config["training"]["threads"] = 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("train", "--config", str(config_path), "--tune-trials", "1", cwd=root)
    assert done.returncode == 0, done.stderr
    return config_path


def _state(config_path: Path) -> tuple[bytes, list]:
    """The campaigns history's bytes and every row of the store's campaign tables."""
    store = config_path.parent / "cxstore.db"
    rows: list = []
    if store.exists():
        with sqlite3.connect(store) as conn:
            for table in ("campaign_index", "campaign_plans"):
                rows += conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
    return (config_path.parent / "campaigns.csv").read_bytes(), rows


def _results(config_path: Path, plan_path: Path, seed: int = 0) -> pd.DataFrame:
    data = config_path.parent
    strategies = yaml.safe_load((data / "strategies.yaml").read_text())
    return campaign_outcomes(pd.read_parquet(data / "customers.parquet"), pd.read_parquet(data / "truth.parquet"),
                             pd.read_csv(plan_path), strategies, seed=seed)


def test_campaign_loop_through_the_cli(trained: Path, tmp_path: Path) -> None:
    config = str(trained)
    plan_dir = tmp_path / "spring"
    done = run_cli("campaign", "plan", "--config", config, "--name", "spring", "--budget", "8000", "--holdout", "0.3",
                   "--out", str(plan_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "campaign 'spring' (wave 2)" in done.stdout  # the generated history holds wave 1
    plan = pd.read_csv(plan_dir / "plan.csv")
    assert {"campaign", "customer_id", "strategy", "strategy_name", "group", "rank", "expected_value",
            "problem_group", "reason"} <= set(plan.columns)
    assert set(plan["group"]) == {"treated", "control"}
    share = (plan["group"] == "control").mean()
    assert abs(share - 0.3) < 0.05
    assert plan["reason"].str.startswith("problem group ").all() and plan["reason"].str.contains("top driver").any()
    summary = json.loads((plan_dir / "plan_summary.json").read_text())
    assert summary["balance"]["max_smd"] < 0.1 and summary["seed"] == 42

    results = _results(trained, plan_dir / "plan.csv")
    results_path = tmp_path / "results.csv"
    results.to_csv(results_path, index=False)
    before = (trained.parent / "campaigns.csv").read_text().count("\n")
    done = run_cli("campaign", "results", "--config", config, "--name", "spring", "--results", str(results_path),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    history = pd.read_csv(trained.parent / "campaigns.csv")
    assert len(history) == before - 1 + len(plan)  # earlier rows kept, one new row per planned customer
    assert set(history.loc[history["campaign"] == "spring", "wave"]) == {2}
    assert (history.loc[history["campaign"] == "past_campaign", "wave"] == 1).all()

    done = run_cli("campaign", "report", "--config", config, "--name", "spring", "--out", str(tmp_path / "r.json"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    strategies = report["evaluation"]["strategies"]
    assert {s["strategy"] for s in strategies} == set(plan["strategy"])
    for row in strategies:
        assert row["verdict"] in ("works", "not proven", "ineffective", "harmful")
        assert row["n_treated"] + row["n_control"] == int((plan["strategy"] == row["strategy"]).sum())
    assert report["verdicts"] and all(line.split(":")[0] in set(plan["strategy"]) for line in report["verdicts"])
    done = run_cli("campaign", "report", "--config", config, "--name", "spring", "--out", str(tmp_path / "r.html"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r.html").read_text()
    assert "Did it make a difference?" in page and "data:image/png;base64," in page

    # A new training run logs, per wave, how the champion that planned it did; `campaign history` reads it.
    done = run_cli("train", "--config", config, "--tune-trials", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_cli("campaign", "history", "--config", config, "--out", str(tmp_path / "h.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "accuracy and value over iterations" in done.stdout and (tmp_path / "h.png").stat().st_size > 1000
    (wave2,) = [line for line in done.stdout.splitlines() if re.match(r"│\s+2 │", line)]
    cells = [c.strip() for c in wave2.strip("│ ").split("│")]
    assert 0.0 < float(cells[3]) < 1.0 and float(cells[5]) > 0.5  # band accuracy, churn AUC of the planner
    assert cells[7] != "nan"  # value realised by its plan


def test_campaign_bad_input_is_named_and_changes_nothing(trained: Path, tmp_path: Path) -> None:
    config = str(trained)
    plan_dir = tmp_path / "autumn"
    done = run_cli("campaign", "plan", "--config", config, "--name", "autumn", "--budget", "3000",
                   "--out", str(plan_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = pd.read_csv(plan_dir / "plan.csv")
    good = _results(trained, plan_dir / "plan.csv")
    outsider = sorted(set(pd.read_parquet(trained.parent / "customers.parquet")["customer_id"])
                      - set(plan["customer_id"]))[0]
    cases = {
        "unknown campaign": (["results", "--name", "nope"], good, "unknown campaign 'nope'"),
        "outside the plan": (["results", "--name", "autumn"],
                             pd.concat([good, good.head(1).assign(customer_id=outsider)]),
                             f"customer '{outsider}' is not in the plan of campaign 'autumn' in rows {len(good) + 1}"),
        "unknown customer": (["results", "--name", "autumn"], good.head(3).assign(customer_id=["X1", "X2", "X3"]),
                             "unknown customer 'X1'"),
        "both outcomes missing": (["results", "--name", "autumn"], good[["customer_id", "date"]],
                                  "both outcomes missing"),
        "score off the scale": (["results", "--name", "autumn"], good.assign(nps=11, churned=0),
                                "column 'nps': score 11 is outside the scale 0..10"),
    }
    state = _state(trained)
    for label, (args, frame, message) in cases.items():
        path = tmp_path / f"{label.replace(' ', '_')}.csv"
        frame.to_csv(path, index=False)
        done = run_cli("campaign", *args, "--config", config, "--results", str(path), cwd=tmp_path)
        assert done.returncode == 2, (label, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (label, lines)
        assert _state(trained) == state, label
    for label, extra, message in (
        ("name exists", ["--name", "autumn"],
         "campaign 'autumn' already exists; choose another --name or pass --replace"),
        ("holdout too big", ["--name", "other", "--holdout", "0.95"], "--holdout must be between 0 and 0.9"),
        ("holdout negative", ["--name", "other", "--holdout", "-0.1"], "--holdout must be between 0 and 0.9"),
    ):
        done = run_cli("campaign", "plan", "--config", config, *extra, "--out", str(tmp_path / "x"), cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, label
        assert _state(trained) == state, label
    # --replace redraws under the same name (same wave); --holdout 0 says its results cannot teach.
    done = run_cli("campaign", "plan", "--config", config, "--name", "autumn", "--budget", "3000", "--holdout", "0",
                   "--replace", "--out", str(plan_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no control group" in done.stdout and "cannot teach" in done.stdout
    assert set(pd.read_csv(plan_dir / "plan.csv")["group"]) == {"treated"}


def test_problem_groups_in_segments_and_eligibility_on_predictions(trained: Path, tmp_path: Path) -> None:
    from cxpredict.features.config import load_config
    from cxpredict.features.synthetic import strategy_catalogue
    from cxpredict.models.problems import with_predicted_columns
    from cxpredict.models.registry import load_champion
    from cxpredict.models.simulate import simulate_effects

    config = str(trained)
    done = run_cli("simulate", "--config", config, "--segment-by", "problem_group", "--out", str(tmp_path / "sim"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    segments = pd.read_csv(tmp_path / "sim" / "segments.csv")
    groups = set(segments["segment"]) - {"all"}
    assert "none" in groups and len(groups) >= 3
    done = run_cli("segments", "--config", config, "--by", "problem_group", "--out", str(tmp_path / "seg.csv"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = pd.read_csv(tmp_path / "seg.csv")
    assert set(figures["segment"]) == groups | {"whole population"}
    assert figures.loc[figures["segment"] != "whole population", "n_customers"].sum() == 3000

    cfg = load_config(trained)
    bundle = load_champion(cfg).bundle
    customers = pd.read_parquet(trained.parent / "customers.parquet")
    targeted = {"id": "price_rescue", "name": "Price rescue", "cost": 10.0,
                "eligible": [{"column": "problem_group", "op": "==", "value": "price"},
                             {"column": "churn_probability", "op": ">=", "value": 0.2}],
                "apply": {"monthly_charge": {"multiply": 0.9}}}
    simulation = simulate_effects(bundle, customers, [*strategy_catalogue(), targeted], "clv", threads=1)
    chosen = set(simulation.effects.loc[simulation.effects["strategy"] == "price_rescue", "customer_id"])
    predicted = with_predicted_columns(bundle, customers, threads=1)
    expected = set(predicted.loc[(predicted["problem_group"] == "price") & (predicted["churn_probability"] >= 0.2),
                                 "customer_id"])
    assert chosen == expected and len(chosen) > 10
    bad = tmp_path / "strategies.yaml"
    bad.write_text(yaml.safe_dump([{**targeted, "eligible": [{"column": "problem_group", "op": "==",
                                                              "value": "prize"}]}]))
    raw = yaml.safe_load(trained.read_text())
    raw["strategies"] = str(bad)
    raw["mlflow"] = {"tracking_uri": cfg.tracking_uri}
    other = trained.parent / "bad_strategies.yaml"
    other.write_text(yaml.safe_dump(raw))
    done = run_cli("simulate", "--config", str(other), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert done.returncode == 2 and "key 'eligible.0.value': column 'problem_group': value 'prize'" in done.stderr

"""Benchmark: strategy simulation of 100,000 customers x 10 strategies next to plain scoring of 1,000,000 rows.

Both run in the same process on the same bundle, so their ratio is visible. The bundle is trained
on a separate 20,000-customer synthetic company (every model: score, causes, drivers, churn) with a
small tuning budget; tuning does not change the cost of a prediction much, the number of trees does.

    python bench/bench_simulate.py [--customers 100000] [--score-rows 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, strategy_catalogue, write_company
from cxpredict.models.simulate import assign_with_budget, best_strategy, segment_table, simulate_effects
from cxpredict.training.train import fit_models
from cxpredict.training.uplift import fit_campaign_uplift


def ten_strategies() -> list[dict]:
    """The synthetic catalogue (6) plus 4 variants, as data."""
    extra = [
        {"id": "price_discount_10", "name": "10% discount", "cost": 20.0,
         "eligible": [{"column": "monthly_charge", "op": ">=", "value": 40.0}],
         "apply": {"monthly_charge": {"multiply": 0.9}}},
        {"id": "network_upgrade_lite", "name": "Small network upgrade", "cost": 30.0,
         "eligible": [{"column": "network_quality", "op": "<", "value": 70.0}],
         "apply": {"network_quality": {"add": 8.0}}},
        {"id": "contract_two_year", "name": "Two-year contract with a bonus", "cost": 45.0,
         "eligible": [{"column": "contract", "op": "in", "value": ["month_to_month", "one_year"]}],
         "apply": {"contract": {"set": "two_year"}}},
        {"id": "premium_upgrade", "name": "Free upgrade to premium", "cost": 50.0,
         "eligible": [{"column": "plan", "op": "!=", "value": "premium"}],
         "apply": {"plan": {"set": "premium"}}},
    ]
    return strategy_catalogue() + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-customers", type=int, default=20_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        config = load_config(write_company(generate_company(args.train_customers, 0.10, seed=1), Path(tmp)))
        config = config.model_copy(update={"training": config.training.model_copy(update={"threads": 1})})
        dataset = load_dataset(config)
        bundle = fit_models(config, dataset, tune_trials=2, log_trials=False).bundle
        bundle.uplift = fit_campaign_uplift(config, dataset, bundle.pipeline)
        train_s = time.perf_counter() - started

    customers = generate_company(args.customers, 0.03, seed=2).customers
    strategies = ten_strategies()

    started = time.perf_counter()
    simulation = simulate_effects(bundle, customers, strategies, "clv", "segment", threads=args.threads)
    simulate_s = time.perf_counter() - started
    started = time.perf_counter()
    best_strategy(simulation, "value")
    segment_table(simulation, "value")
    rank_s = time.perf_counter() - started
    started = time.perf_counter()
    plan = assign_with_budget(simulation, 100_000.0, "value")
    budget_s = time.perf_counter() - started

    repeats = -(-args.score_rows // len(customers))
    rows = pd.concat([customers] * repeats, ignore_index=True).iloc[: args.score_rows]
    started = time.perf_counter()
    scores = bundle.predict(rows, threads=args.threads)
    score_s = time.perf_counter() - started

    pairs = len(simulation.effects)
    result = {
        "customers": len(customers),
        "strategies": len(strategies),
        "eligible_pairs": pairs,
        "simulate_s": round(simulate_s, 2),
        "simulate_pairs_per_s": round(pairs / simulate_s),
        "simulate_customer_strategies_per_s": round(len(customers) * len(strategies) / simulate_s),
        "rank_and_segment_s": round(rank_s, 2),
        "budget_plan_s": round(budget_s, 2),
        "budget_plan_targeted": len(plan.assignment),
        "score_rows": len(scores),
        "score_s": round(score_s, 2),
        "score_rows_per_s": round(len(scores) / score_s),
        "score_models": 1 + len(bundle.cause_boosters) + len(bundle.driver_boosters) + 1,
        "simulate_models": 2,
        "threads": args.threads,
        "train_s": round(train_s, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

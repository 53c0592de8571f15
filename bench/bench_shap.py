"""Benchmark: per-customer SHAP rows/s, our TreeSHAP vs LightGBM `pred_contrib`, per model.

Models: churn (binary), score (multiclass over the bands) and expected score (regression).

Trains the real model set (training.train.Trainer, no MLflow) on a synthetic company, then
explains 1,000,000 generated customers in chunks (each chunk a repeat), interleaving the two engines
chunk by chunk so that load from other processes hits both alike. Our engine explains every row;
`pred_contrib`, whose cost per row does not depend on the batch size, explains the first
`--baseline-rows` rows of each chunk (all 1M rows would take hours on 2 cores). Reports the median
rows/s over the chunks, the ratio of medians and the largest absolute difference between the engines.

    python bench/bench_shap.py --customers 1000000 --chunk 100000 --threads 2 --out bench/results_shap.json

Not a test: it takes tens of minutes (pred_contrib is the slow part).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.models.bundle import ScoringBundle, band_column, load_bundle, save_bundle
from cxpredict.models.treeshap import TreeShap
from cxpredict.training.train import Trainer


def train_bundle(train_customers: int, survey_rate: float, tune_trials: int, seed: int,
                 threads: int) -> ScoringBundle:
    """The bundle the real training pipeline fits on a synthetic company (no MLflow)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_company(generate_company(train_customers, survey_rate, seed), Path(tmp), name="bench")
        config = load_config(path)
        config = config.model_copy(update={"training": config.training.model_copy(update={"threads": threads})})
        trainer = Trainer(config, load_dataset(config), tune_trials=tune_trials, log_trials=False)
        return trainer.fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to explain")
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per timed chunk (a repeat)")
    parser.add_argument("--baseline-rows", type=int, default=5_000,
                        help="rows of each chunk that pred_contrib also explains (0: the whole chunk)")
    parser.add_argument("--bundle", type=Path, default=None, help="reuse (or save) the trained bundle folder here")
    parser.add_argument("--train-customers", type=int, default=100_000)
    parser.add_argument("--survey-rate", type=float, default=0.05)
    parser.add_argument("--tune-trials", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results_shap.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    if args.bundle is not None and args.bundle.is_dir():
        bundle = load_bundle(args.bundle)
    else:
        bundle = train_bundle(args.train_customers, args.survey_rate, args.tune_trials, args.seed, args.threads)
        if args.bundle is not None:
            save_bundle(bundle, args.bundle)
    print(f"trained in {time.perf_counter() - started:.0f}s: score {bundle.score_booster.num_trees()} trees, "
          f"churn {bundle.churn_booster.num_trees()} trees", flush=True)
    customers = generate_company(args.customers, 0.03, args.seed + 1).customers
    X = bundle.pipeline.transform(customers)
    predicted = bundle.predict_matrix(X, args.threads, causes=False, drivers=False)
    expected, p_bottom = predicted["expected_score"], predicted[band_column(bundle.bottom_band)]
    models = {
        "churn": (bundle.churn_booster, bundle.churn_matrix(X, expected, p_bottom)),
        "score": (bundle.score_booster, X),  # multiclass over the bands
        "expected_score": (bundle.expected_score_booster, X),  # regression
    }
    results: dict[str, dict] = {}
    for name, (booster, matrix) in models.items():
        fit_started = time.perf_counter()
        engine = TreeShap().fit(booster)
        engine.shap_values(matrix[:64], args.threads)  # compile / load the numba kernels once
        fit_seconds = time.perf_counter() - fit_started
        ours, lgb_rates, max_diff = [], [], 0.0
        for start in range(0, len(matrix), args.chunk):
            rows = matrix[start:start + args.chunk]
            t = time.perf_counter()
            mine = engine.shap_values(rows, args.threads)
            ours.append(len(rows) / (time.perf_counter() - t))
            # pred_contrib costs the same per row whatever the batch size, so it times the chunk's first
            # rows only (the 1M-row run would take hours); both engines see the same rows.
            some = rows[:args.baseline_rows] if args.baseline_rows else rows
            t = time.perf_counter()
            reference = booster.predict(some, pred_contrib=True, num_threads=args.threads)
            lgb_rates.append(len(some) / (time.perf_counter() - t))
            max_diff = max(max_diff, float(np.abs(mine[:len(some)].reshape(reference.shape) - reference).max()))
            print(f"{name} rows {start + len(rows):>9,}: ours {ours[-1]:>9,.0f} rows/s, "
                  f"pred_contrib {lgb_rates[-1]:>7,.0f} rows/s", flush=True)
        results[name] = {
            "trees": booster.num_trees(), "outputs": engine.n_outputs_, "features": engine.n_features_,
            "rows": len(matrix), "chunks": len(ours), "baseline_rows_per_chunk": args.baseline_rows or args.chunk,
            "ours_rows_per_s_median": float(np.median(ours)),
            "pred_contrib_rows_per_s_median": float(np.median(lgb_rates)),
            "ratio_of_medians": float(np.median(ours) / np.median(lgb_rates)),
            "ours_rows_per_s": ours, "pred_contrib_rows_per_s": lgb_rates, "max_abs_difference": max_diff,
            "engine_setup_seconds": fit_seconds, "table_bytes": engine.table_bytes_,
        }
    payload = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "threads": args.threads}, "args": {k: str(v) for k, v in vars(args).items()},
               "results": results, "wall_seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print("| model | trees | rows | ours rows/s (median) | pred_contrib rows/s (median) | ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['trees']} | {r['rows']:,} | {r['ours_rows_per_s_median']:,.0f} | "
              f"{r['pred_contrib_rows_per_s_median']:,.0f} | {r['ratio_of_medians']:.1f}× | "
              f"{r['max_abs_difference']:.1e} |")


if __name__ == "__main__":
    main()

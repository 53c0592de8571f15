"""Benchmark compiled trees (models/compiled.py) against `Booster.predict`: compile time and the floor.

Not a test: run by hand and copy the printed figures into bench/README.md.

    python bench/bench_compiled.py --work /tmp/cxcompiled [--customers 20000] [--rows 1000000] [--repeats 3]

Trains the demo bundle in process (no MLflow: only the boosters matter), compiles every LightGBM
booster of it (timed, one after the other, with the module's flags), then times, on the same
encoded rows, raw `Booster.predict` of all models vs the compiled libraries alone, interleaved
(booster, compiled, booster, ...) so load changes hit both; medians. Encoding is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np


def _boosters(bundle) -> list[tuple[str, lgb.Booster, str]]:
    """(name, booster, input) of every LightGBM booster in the bundle; input 'X' or 'churn'."""
    from cxpredict.models.ensemble import is_ensemble

    out: list[tuple[str, object, str]] = [("band", bundle.score_booster, "X"),
                                          ("expected_score", bundle.expected_score_booster, "X")]
    out += [(f"cause:{c}", b, "X") for c, b in bundle.cause_boosters.items()]
    out += [(f"driver:{d}", b, "X") for d, b in bundle.driver_boosters.items()]
    if bundle.propensity_booster is not None:
        out.append(("propensity", bundle.propensity_booster, "X"))
    if bundle.churn_booster is not None:
        out.append(("churn", bundle.churn_booster, "churn"))
    flat: list[tuple[str, lgb.Booster, str]] = []
    for name, model, kind in out:
        if is_ensemble(model):  # the ensemble's LightGBM members; CatBoost/linear stay as they are
            flat += [(f"{name}[{i}]", m.booster, kind) for i, m in enumerate(model.members) if hasattr(m, "booster")]
        elif isinstance(model, lgb.Booster):
            flat.append((name, model, kind))
    return flat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tune-trials", type=int, default=0)
    args = parser.parse_args()

    from cxpredict.features.config import load_config
    from cxpredict.features.load import load_dataset
    from cxpredict.features.synthetic import generate_company, write_company
    from cxpredict.models import compiled
    from cxpredict.training.train import fit_models

    args.work.mkdir(parents=True, exist_ok=True)
    company = args.work / "company"
    if not (company / "cxpredict.yaml").exists():
        write_company(generate_company(args.customers, 0.15, seed=42), company, name="bench")
    config = load_config(company / "cxpredict.yaml")
    started = time.perf_counter()
    bundle = fit_models(config, load_dataset(config), tune_trials=args.tune_trials, log_trials=False).bundle
    print(json.dumps({"step": "train", "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    customers = generate_company(100_000, 0.03, seed=7).customers
    X1 = bundle.pipeline.transform(customers)
    X = np.ascontiguousarray(np.resize(X1, (args.rows, X1.shape[1])))  # rows repeated up to --rows
    inputs = {"X": X}
    if bundle.churn_booster is not None:
        inputs["churn"] = np.ascontiguousarray(bundle.churn_matrix(X, np.zeros(len(X)), np.zeros(len(X))))

    cache = args.work / "compiled"
    models = []
    for name, booster, kind in _boosters(bundle):
        t = time.perf_counter()
        model = compiled.compile_booster(booster, cache, inputs[kind][:2000], threads=args.threads)
        seconds = time.perf_counter() - t
        print(json.dumps({"step": "compile", "model": name, "trees": booster.num_trees(),
                          "seconds": round(seconds, 1), "cached": model is not None and model.compile_seconds is None,
                          "ok": model is not None}), flush=True)
        if model is None:
            raise SystemExit(f"{name}: compilation failed (see the warning)")
        full = inputs[kind][:200_000]
        diff = float(np.max(np.abs(model.predict(full, args.threads) - booster.predict(full, raw_score=True))))
        models.append((name, booster, model, kind, diff))

    def run_boosters() -> float:
        t = time.perf_counter()
        for _, booster, _, kind, _ in models:
            booster.predict(inputs[kind], raw_score=True, num_threads=args.threads)
        return time.perf_counter() - t

    def run_compiled() -> float:
        t = time.perf_counter()
        for _, _, model, kind, _ in models:
            model.predict(inputs[kind], args.threads)
        return time.perf_counter() - t

    booster_s, compiled_s = [], []
    for _ in range(args.repeats):
        booster_s.append(run_boosters())
        compiled_s.append(run_compiled())
    b, c = statistics.median(booster_s), statistics.median(compiled_s)
    print(json.dumps({"step": "floor", "rows": args.rows, "models": len(models), "threads": args.threads,
                      "booster_s": [round(s, 2) for s in booster_s], "compiled_s": [round(s, 2) for s in compiled_s],
                      "booster_median_s": round(b, 2), "compiled_median_s": round(c, 2), "speedup": round(b / c, 2),
                      "booster_rows_per_s": round(args.rows / b), "compiled_rows_per_s": round(args.rows / c),
                      "max_abs_diff": max(m[4] for m in models), "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()

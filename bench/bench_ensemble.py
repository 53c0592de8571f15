"""Benchmark the ensemble's cost (issue 15): demo training time and scoring floor, single LightGBM vs ensemble.

Not a test: run by hand and copy the printed figures into bench/README.md. The two variants are the same
demo company (100,000 customers, 3 % surveyed, seed 42) with `training.ensemble` false / true; training
runs are interleaved (single, ensemble, single, ...) so a change in the machine's load hits both, and
training is compared by the child process's CPU seconds as well as wall time.

    python bench/bench_ensemble.py train --work /tmp/cxens [--repeats 2]
    python bench/bench_ensemble.py floor --work /tmp/cxens [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {"single": "false", "ensemble": "true"}


def _company(work: Path, variant: str) -> Path:
    from cxpredict.features.synthetic import generate_company, write_company

    config = work / variant / "cxpredict.yaml"
    if not config.exists():
        write_company(generate_company(100_000, 0.03, seed=42), work / variant, name=f"bench_{variant}")
        text = config.read_text().replace("bias_correction: true}",
                                          f"bias_correction: true, ensemble: {VARIANTS[variant]}}}")
        config.write_text(text)
    return config


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(work: Path, repeats: int) -> None:
    """`cxpredict train` of each variant, interleaved; medians of wall and CPU seconds and their ratio."""
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant in VARIANTS:
            config = _company(work, variant)
            cpu, started = _children_cpu(), time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "cxpredict.cli", "train", "--config", str(config)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            results[variant].append((time.perf_counter() - started, _children_cpu() - cpu))
            print(json.dumps({"variant": variant, "wall_s": round(results[variant][-1][0], 1),
                              "cpu_s": round(results[variant][-1][1], 1), "load": os.getloadavg()[0]}), flush=True)
    medians = {v: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for v, r in results.items()}
    print(json.dumps({"step": "train", **{f"{v}_{k}": round(m[i], 1) for v, m in medians.items()
                                          for i, k in enumerate(("wall_s", "cpu_s"))},
                      "ratio_wall": round(medians["ensemble"][0] / medians["single"][0], 2),
                      "ratio_cpu": round(medians["ensemble"][1] / medians["single"][1], 2)}))


def floor(work: Path, rows: int, repeats: int) -> None:
    """predict_raw of every model of each champion bundle on the same encoded rows (encoding not timed)."""
    from cxpredict.features.config import load_config
    from cxpredict.features.synthetic import generate_company
    from cxpredict.models.estimators import predict_raw
    from cxpredict.models.registry import load_champion

    customers = generate_company(rows, 0.03, seed=7).customers
    bundles = {v: load_champion(load_config(_company(work, v))).bundle for v in VARIANTS}
    prepared = {}
    for variant, bundle in bundles.items():
        X = bundle.pipeline.transform(customers)
        models = [(bundle.score_booster, X), (bundle.expected_score_booster, X),
                  *((b, X) for b in bundle.cause_boosters.values()), *((b, X) for b in bundle.driver_boosters.values()),
                  *([(bundle.propensity_booster, X)] if bundle.propensity_booster else [])]
        if bundle.churn_booster is not None:
            models.append((bundle.churn_booster, bundle.churn_matrix(X, np.zeros(len(X)), np.zeros(len(X)))))
        prepared[variant] = models
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant, models in prepared.items():
            started = time.perf_counter()
            for model, matrix in models:
                predict_raw(model, matrix, 2)
            seconds[variant].append(time.perf_counter() - started)
    medians = {v: statistics.median(s) for v, s in seconds.items()}
    print(json.dumps({"step": "floor", "rows": rows, "load": os.getloadavg()[0],
                      **{f"{v}_rows_per_s": round(rows / m) for v, m in medians.items()},
                      "ratio": round(medians["ensemble"] / medians["single"], 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "floor"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cxens"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "train":
        train(args.work, args.repeats)
    else:
        floor(args.work, args.rows, args.repeats)


if __name__ == "__main__":
    main()

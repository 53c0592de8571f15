"""Compile time and predict speed of tl2cgen's options on one ~900-tree booster (categorical splits).

Not a test: `python bench/bench_compile_options.py [--trees 900] [--rows 200000]`. For each variant
(parallel_comp, branch annotation, -O level) it compiles once and times predict (median of 3,
interleaved with Booster.predict on the same rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import tl2cgen
import treelite


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", type=int, default=900)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 30))
    X[:, 5] = rng.integers(0, 20, len(X))
    y = X[:, 0] + np.isin(X[:, 5], [1, 3, 9, 12]) + 0.3 * X[:, 1] * X[:, 2] + rng.normal(size=len(X))
    booster = lgb.train({"objective": "regression", "num_leaves": 15, "verbosity": -1, "learning_rate": 0.02,
                         "num_threads": args.threads, "seed": 1},
                        lgb.Dataset(X, label=y, categorical_feature=[5]), num_boost_round=args.trees)
    rows = np.ascontiguousarray(np.resize(X, (args.rows, X.shape[1])))
    model = treelite.frontend.from_lightgbm(booster)
    variants = [("parallel_comp=0, -O2", 0, False, "-O2"), ("parallel_comp=4, -O2", 4, False, "-O2"),
                ("parallel_comp=4, -O2, annotated", 4, True, "-O2"),
                ("parallel_comp=4, -O3, annotated", 4, True, "-O3")]
    with tempfile.TemporaryDirectory() as tmp:
        annotation = Path(tmp) / "annotation.json"
        tl2cgen.annotate_branch(model, tl2cgen.DMatrix(rows[:2000], dtype="float64"), path=str(annotation))
        for name, parallel, annotate, level in variants:
            params = {"parallel_comp": parallel} | ({"annotate_in": str(annotation)} if annotate else {})
            lib = Path(tmp) / f"{len(os.listdir(tmp))}.so"
            t = time.perf_counter()
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(lib), params=params,
                               options=[level, "-march=native", "-fPIC", "-std=c11"], nthread=args.threads)
            compile_s = time.perf_counter() - t
            predictor = tl2cgen.Predictor(str(lib), nthread=args.threads)
            booster_s, compiled_s = [], []
            for _ in range(3):
                t = time.perf_counter()
                expected = booster.predict(rows, raw_score=True, num_threads=args.threads)
                booster_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                got = predictor.predict(tl2cgen.DMatrix(rows, dtype="float64"), pred_margin=True).reshape(-1)
                compiled_s.append(time.perf_counter() - t)
            b, c = statistics.median(booster_s), statistics.median(compiled_s)
            print(json.dumps({"variant": name, "trees": booster.num_trees(), "compile_s": round(compile_s, 1),
                              "booster_s": round(b, 3), "compiled_s": round(c, 3), "speedup": round(b / c, 2),
                              "max_abs_diff": float(np.max(np.abs(got - expected))),
                              "loadavg": [round(v, 1) for v in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()

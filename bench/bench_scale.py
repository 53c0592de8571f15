"""Benchmark scoring at scale: the LightGBM floor vs `cxpredict score` end to end, peak memory, Spark.

Not a test: run by hand, once, and copy the printed figures into bench/README.md.

    python bench/bench_scale.py prepare --work /tmp/cxbench            # demo model + 1M-row input
    python bench/bench_scale.py floor   --work /tmp/cxbench            # Booster.predict, every model
    python bench/bench_scale.py stream  --work /tmp/cxbench [--copies 10] [--explain 3]  # CLI end to end, RSS
    python bench/bench_scale.py spark   --work /tmp/cxbench            # --engine spark local[2]
    python bench/bench_scale.py train   --work /tmp/cxbench --respondents 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]

MODEL_CUSTOMERS = 20_000  # the demo model: 20,000 customers, 3 % surveyed would be too few; 15 %
INPUT_ROWS = 1_000_000


def _cli(*args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cxpredict.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - started, done.stdout


def _set_threads(config: Path, threads: int) -> None:
    text = config.read_text().replace("bias_correction: true}", f"bias_correction: true, threads: {threads}}}")
    config.write_text(text)


def prepare(work: Path, threads: int, trials: int) -> None:
    """Train the demo model and write the 1M-row input (the demo company's customers, repeated, new ids)."""
    from cxpredict.features.synthetic import generate_company, write_company

    company = work / "company"
    config = write_company(generate_company(MODEL_CUSTOMERS, 0.15, seed=42), company, name="bench")
    _set_threads(config, threads)
    seconds, _ = _cli("train", "--config", str(config), "--tune-trials", str(trials))
    print(f"trained the demo model ({MODEL_CUSTOMERS} customers, {trials} trials) in {seconds:.0f}s")
    customers = generate_company(100_000, 0.03, seed=7).customers
    frames = []
    for copy in range(INPUT_ROWS // len(customers)):
        frame = customers.copy()
        frame["customer_id"] = f"R{copy:02d}-" + frame["customer_id"]
        frames.append(frame)
    pd.concat(frames, ignore_index=True).to_parquet(work / "input_1m.parquet", index=False, row_group_size=200_000)
    print(f"wrote {INPUT_ROWS} rows -> {work / 'input_1m.parquet'}")


def _bundle(work: Path):
    from cxpredict.features.config import load_config
    from cxpredict.models.registry import load_champion

    return load_champion(load_config(work / "company" / "cxpredict.yaml")).bundle


def floor(work: Path, threads: int) -> None:
    """Raw `Booster.predict` of every model on the encoded 1M rows (encoding not timed): the floor."""
    bundle = _bundle(work)
    X = bundle.pipeline.transform(pd.read_parquet(work / "input_1m.parquet"))
    # The propensity model is part of every score row (response propensity, prediction sets).
    boosters = [bundle.score_booster, bundle.expected_score_booster, *bundle.cause_boosters.values(),
                *bundle.driver_boosters.values(), *([bundle.propensity_booster] if bundle.propensity_booster else [])]
    total = 0.0
    from cxpredict.models.estimators import predict_raw  # an ensemble (issue 15) predicts through it too

    for booster in boosters:
        started = time.perf_counter()
        predict_raw(booster, X, threads)
        total += time.perf_counter() - started
    if bundle.churn_booster is not None:
        churn_X = bundle.churn_matrix(X, np.zeros(len(X)), np.zeros(len(X)))
        started = time.perf_counter()
        predict_raw(bundle.churn_booster, churn_X, threads)
        total += time.perf_counter() - started
        boosters.append(bundle.churn_booster)
    print(json.dumps({"step": "floor", "rows": len(X), "models": len(boosters), "seconds": round(total, 1),
                      "rows_per_s": round(len(X) / total)}))


def stream(work: Path, threads: int, copies: int, chunk_rows: int, explain: int = 0) -> None:
    """`cxpredict score --input` end to end (process start to exit) and the child's peak RSS."""
    source = work / "input_1m.parquet"
    if copies == 1:
        input_path = source
    else:
        input_path = work / f"input_{copies}x"
        input_path.mkdir(exist_ok=True)
        for copy in range(copies):  # new ids per copy: ids repeated across files would be rejected
            target = input_path / f"part-{copy:03d}.parquet"
            if not target.exists():
                table = pq.read_table(source)
                ids = pc.binary_join_element_wise(f"X{copy:03d}-", table.column("customer_id").cast(pa.string()), "")
                table = table.set_column(table.schema.get_field_index("customer_id"), "customer_id", ids)
                pq.write_table(table, target, row_group_size=200_000)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in ([source] if copies == 1 else input_path.glob("*")))
    out = work / f"scores_{copies}x_explain{explain}"
    shutil.rmtree(out, ignore_errors=True)
    seconds, stdout = _cli("score", "--config", str(work / "company" / "cxpredict.yaml"), "--input", str(input_path),
                           "--out", str(out), "--chunk-rows", str(chunk_rows), "--threads", str(threads),
                           "--explain", str(explain))
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(stdout.strip())
    print(json.dumps({"step": "stream", "rows": rows, "chunk_rows": chunk_rows, "explain": explain,
                      "wall_s": round(seconds, 1), "rows_per_s": round(rows / seconds),
                      "peak_rss_mib": round(peak_mib)}), flush=True)


def spark(work: Path, master: str) -> None:
    """`cxpredict score --engine spark` on the same 1M rows (Spark start-up included)."""
    out = work / "scores_spark"
    seconds, stdout = _cli("score", "--config", str(work / "company" / "cxpredict.yaml"), "--input",
                           str(work / "input_1m.parquet"), "--out", str(out), "--engine", "spark", "--master", master)
    print(stdout.strip())
    print(json.dumps({"step": "spark", "master": master, "rows": INPUT_ROWS, "wall_s": round(seconds, 1),
                      "rows_per_s": round(INPUT_ROWS / seconds)}))


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(work: Path, respondents: list[int], trials: int, threads: int) -> None:
    """Training wall time for companies with the given numbers of respondents (survey rate 50 %)."""
    from cxpredict.features.synthetic import generate_company, write_company

    for n in respondents:
        folder = work / f"train_{n}"
        config = write_company(generate_company(2 * n, 0.5, seed=11), folder, name=f"train{n}")
        _set_threads(config, threads)
        cpu_before = _children_cpu_seconds()
        seconds, stdout = _cli("train", "--config", str(config), "--tune-trials", str(trials))
        stages = {m[1]: round(float(m[2]), 1) for m in re.finditer(r"train_seconds_(\w+)\W+([0-9.]+)", stdout)}
        print(json.dumps({"step": "train", "respondents": n, "customers": 2 * n, "trials": trials,
                          "wall_s": round(seconds, 1), "cpu_s": round(_children_cpu_seconds() - cpu_before, 1),
                          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
                          "stages_s": stages}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prepare", "floor", "stream", "spark", "train"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cxbench"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--explain", type=int, default=0, help="stream: top-k drivers per target (0: none)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--respondents", type=int, nargs="*", default=[10_000, 100_000])
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "prepare":
        prepare(args.work, args.threads, args.trials)
    elif args.step == "floor":
        floor(args.work, args.threads)
    elif args.step == "stream":
        stream(args.work, args.threads, args.copies, args.chunk_rows, args.explain)
    elif args.step == "spark":
        spark(args.work, args.master)
    else:
        train(args.work, args.respondents, args.trials, args.threads)


if __name__ == "__main__":
    main()

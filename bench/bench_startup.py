"""Wall time of a small `cxpredict score --input` job end to end (issue 20: start-up), interleaved.

Usage:
    python bench/bench_startup.py --config demo/cxpredict.yaml --input rows1000.parquet \
        [--baseline-path DIR] [--repeats 5] [--out bench/results_startup.json]

Each repeat runs the job once with this checkout's code and, with --baseline-path (a folder
holding a `cxpredict` symlink to another checkout, e.g. main), once with that code, alternately,
so both see the same load. Reports medians and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(config: Path, rows: Path, pythonpath: str | None) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-startup-")) / "scores"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = "import sys; from cxpredict.cli import app; sys.argv[0] = 'cxpredict'; app()"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "score", "--config", str(config), "--input", str(rows),
                           "--out", str(out)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    shutil.rmtree(out.parent, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--baseline-path")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"branch": [], "baseline": []}
    run_once(args.config, args.input, None)  # warm: the local bundle copy, the OS file cache
    for _ in range(args.repeats):
        times["branch"].append(run_once(args.config, args.input, None))
        if args.baseline_path:
            times["baseline"].append(run_once(args.config, args.input, args.baseline_path))
    result = {name: {"median_s": round(statistics.median(v), 3), "runs_s": [round(x, 3) for x in v]}
              for name, v in times.items() if v}
    if args.baseline_path:
        result["speedup"] = round(result["baseline"]["median_s"] / result["branch"]["median_s"], 2)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

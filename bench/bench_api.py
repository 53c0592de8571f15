"""Benchmark of the serving API against `mlflow models serve` on the same registered bundle (loopback only).

One run measures, for both servers where it applies:
  1. one customer per request, sequential: p50 / p99 latency (ours also with ?explain=3 when the
     bundle can explain, and by id from the customer store);
  2. 8 concurrent clients for 30 s: requests/s, p99 and error count;
  3. a 1,000-customer batch request: customers/s, against in-process batch scoring (the floor).

Usage:
  python bench/bench_api.py [--config DIR/cxpredict.yaml] [--customers 20000] [--tune-trials 3]
                            [--workers 1] [--duration 30] [--out bench/results_api.json]
                            [--baseline-src /work/main --rounds 3]
Without --config a synthetic company is generated and trained into a temporary folder. Both
servers run with the same number of worker processes. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pandas as pd

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.models.registry import load_registered_bundle

ROOT = Path(__file__).resolve().parents[1]

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run(cmd: list[str], **kwargs: Any) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run(cmd, check=True, env=env, **kwargs)


def start(cmd: list[str], log: Path, ready_url: str, env: dict[str, str], timeout: float = 600) -> subprocess.Popen:
    handle = log.open("w")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONWARNINGS": "ignore", **env})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"{cmd[:3]} not ready after {timeout}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: ISO dates, null for missing."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def percentiles(latencies: list[float]) -> dict[str, float]:
    a = np.asarray(latencies) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(a)}


def sequential(url: str, bodies: list[Any], params: dict | None = None) -> dict[str, float]:
    with httpx.Client(timeout=60) as http:
        for body in bodies[:20]:  # warm-up
            http.post(url, json=body, params=params)
        latencies, errors = [], 0
        for body in bodies:
            started = time.perf_counter()
            response = http.post(url, json=body, params=params)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200
    return {**percentiles(latencies), "errors": errors}


def sequential_get(urls: list[str]) -> dict[str, float]:
    with httpx.Client(timeout=60) as http:
        for u in urls[:20]:
            http.get(u)
        latencies, errors = [], 0
        for u in urls:
            started = time.perf_counter()
            response = http.get(u)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200
    return {**percentiles(latencies), "errors": errors}


async def _load(send: Callable[[aiohttp.ClientSession, int], Any], clients: int,
                duration: float) -> dict[str, float]:
    """`clients` concurrent loops of requests for `duration` s; `send(session, i)` makes the i-th request."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                async with send(session, i) as response:
                    await response.read()
                    errors += response.status != 200
            except aiohttp.ClientError:
                errors += 1
            i += clients
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(k, session) for k in range(clients)))
        elapsed = time.perf_counter() - began
    return {**percentiles(latencies), "requests_per_s": len(latencies) / elapsed, "errors": errors,
            "clients": clients, "seconds": elapsed}


def concurrent(url: str, bodies: list[Any], clients: int, duration: float) -> dict[str, float]:
    return asyncio.run(_load(lambda session, i: session.post(url, json=bodies[i % len(bodies)]), clients, duration))


async def _concurrent_get(urls: list[str], clients: int, duration: float, headers: dict[str, str]) -> dict[str, float]:
    return await _load(lambda session, i: session.get(urls[i % len(urls)], headers=headers), clients, duration)


def concurrent_get(urls: list[str], clients: int, duration: float,
                   headers: dict[str, str] | None = None) -> dict[str, float]:
    """8 clients on GET /v1/customers/{id}/score (the by-id path: store lookup + predict)."""
    return asyncio.run(_concurrent_get(urls, clients, duration, headers or {}))


def median_series(runs: list[dict[str, float]]) -> dict[str, Any]:
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    return {**{k: float(np.median([r[k] for r in runs])) for k in keys},
            "errors": int(sum(r["errors"] for r in runs)), "runs": runs}


def compare_sources(args: argparse.Namespace, config_path: Path, work: Path, ours_one: list[Any],
                    by_id_urls: list[str]) -> dict[str, Any]:
    """The same concurrent series (by id, inline) against a server run from another source tree
    (`--baseline-src`, e.g. main) and from this one, interleaved round by round; medians."""
    link = work / "baseline_src"
    link.mkdir()
    (link / "cxpredict").symlink_to(Path(args.baseline_src).resolve())
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for name, env in (("baseline", {"PYTHONPATH": str(link)}), ("this", {})):
            port = free_port()
            process = start([sys.executable, "-m", "cxpredict.cli", "serve", "--config", str(config_path), "--host",
                             HOST, "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
                            work / f"{name}.log", f"http://{HOST}:{port}/readyz", env)
            servers[name] = (process, f"http://{HOST}:{port}")
        runs: dict[str, list[dict[str, float]]] = {f"{n}_{k}": [] for n in servers for k in ("by_id", "inline")}
        for _ in range(args.rounds):
            for name, (_, base) in servers.items():
                urls = [u.replace("{base}", base) for u in by_id_urls]
                runs[f"{name}_by_id"].append(concurrent_get(urls, args.clients, args.duration))
                runs[f"{name}_inline"].append(concurrent(f"{base}/v1/scores", ours_one, args.clients, args.duration))
    finally:
        for process, _ in servers.values():
            stop(process)
    out: dict[str, Any] = {k: median_series(v) for k, v in runs.items()}
    for kind in ("by_id", "inline"):
        out[f"ratio_{kind}_this_over_baseline"] = (out[f"this_{kind}"]["requests_per_s"]
                                                   / out[f"baseline_{kind}"]["requests_per_s"])
    return out


def batch(url: str, body: Any, n: int, repeats: int = 5, params: dict | None = None) -> dict[str, float]:
    with httpx.Client(timeout=300) as http:
        http.post(url, json=body, params=params)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = http.post(url, json=body, params=params)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:500]
    best = float(np.median(times))
    return {"seconds": best, "customers_per_s": n / best}


def prepare(args: argparse.Namespace, work: Path) -> Path:
    if args.config:
        config_path = Path(args.config).resolve()
    else:
        data = work / "company"
        run([sys.executable, "-m", "cxpredict.cli", "generate", "--customers", str(args.customers), "--survey-rate",
             str(args.survey_rate), "--seed", "42", "--out", str(data)], cwd=work)
        config_path = data / "cxpredict.yaml"
        run([sys.executable, "-m", "cxpredict.cli", "train", "--config", str(config_path), "--tune-trials",
             str(args.tune_trials)], cwd=work)
    run([sys.executable, "-m", "cxpredict.cli", "store", "load", "--config", str(config_path)], cwd=work)
    return config_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--survey-rate", type=float, default=0.05)
    parser.add_argument("--tune-trials", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per series")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_api.json"))
    parser.add_argument("--baseline-src", help="another source tree of cxpredict (e.g. /work/main): also run "
                        "the concurrent by-id and inline series against it, interleaved with this tree's")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --baseline-src")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config_path = prepare(args, work)
        config = load_config(config_path)
        loaded = load_registered_bundle(config.tracking_uri, config.registered_model_name)
        bundle = loaded.bundle
        customers = load_dataset(config).customers
        rng = np.random.default_rng(0)
        sample = customers.iloc[rng.choice(len(customers), size=min(len(customers), 2000), replace=False)]
        features = [s.name for s in bundle.pipeline.specs_]
        ours_one = [{"customers": [{"customer_id": r[config.id_column], "features": {f: r[f] for f in features}}]}
                    for r in json_rows(sample)]
        mlflow_one = [{"dataframe_records": [r]} for r in json_rows(sample)]
        thousand = sample.head(1000)
        ours_batch = {"customers": [{"customer_id": r[config.id_column], "features": {f: r[f] for f in features}}
                                    for r in json_rows(thousand)]}
        ours_batch_ids = {"customers": [{"customer_id": i} for i in thousand[config.id_column]]}
        mlflow_batch = {"dataframe_records": json_rows(thousand)}

        results: dict[str, Any] = {
            "machine": {"cores": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
            "bundle": {"customers": len(customers), "version": loaded.version,
                       "trees": {"score": bundle.score_booster.num_trees(),
                                 "churn": bundle.churn_booster.num_trees() if bundle.churn_booster else 0,
                                 "causes": sum(b.num_trees() for b in bundle.cause_boosters.values()),
                                 "drivers": sum(b.num_trees() for b in bundle.driver_boosters.values())},
                       "models": 1 + len(bundle.cause_boosters) + len(bundle.driver_boosters)
                       + (bundle.churn_booster is not None)},
            "workers": args.workers,
        }
        # The floor: in-process batch scoring of the same 1,000 customers.
        bundle.predict(thousand, threads=1)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            bundle.predict(thousand, threads=1)
            times.append(time.perf_counter() - started)
        results["in_process_batch_1000"] = {"seconds": float(np.median(times)),
                                            "customers_per_s": 1000 / float(np.median(times))}

        port = free_port()
        ours = start([sys.executable, "-m", "cxpredict.cli", "serve", "--config", str(config_path), "--host", HOST,
                      "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
                     work / "ours.log", f"http://{HOST}:{port}/readyz", {})
        base = f"http://{HOST}:{port}"
        try:
            probe = httpx.post(f"{base}/v1/scores", json=ours_one[0], params={"explain": 3})
            explain_ok = probe.status_code == 200 and probe.json()["scores"][0].get("explanations") is not None
            n = args.requests
            results["ours"] = {
                "sequential_inline": sequential(f"{base}/v1/scores", ours_one[:n]),
                "sequential_by_id": sequential_get(
                    [f"{base}/v1/customers/{i}/score" for i in sample[config.id_column].head(n)]),
            }
            if explain_ok:
                results["ours"]["sequential_inline_explain3"] = sequential(f"{base}/v1/scores", ours_one[:n],
                                                                           {"explain": 3})
            results["ours"]["concurrent"] = concurrent(f"{base}/v1/scores", ours_one, args.clients, args.duration)
            results["ours"]["concurrent_by_id"] = concurrent_get(
                [f"{base}/v1/customers/{i}/score" for i in sample[config.id_column]], args.clients, args.duration)
            results["ours"]["batch_1000_inline"] = batch(f"{base}/v1/scores", ours_batch, 1000)
            results["ours"]["batch_1000_by_id"] = batch(f"{base}/v1/scores", ours_batch_ids, 1000)
        finally:
            stop(ours)

        if args.baseline_src:
            results["compare_sources"] = compare_sources(
                args, config_path, work, ours_one,
                ["{base}" + f"/v1/customers/{i}/score" for i in sample[config.id_column]])

        port = free_port()
        baseline = start(["mlflow", "models", "serve", "-m", f"models:/{config.registered_model_name}@champion",
                          "--env-manager", "local", "-h", HOST, "-p", str(port), "-w", str(args.workers)],
                         work / "mlflow.log", f"http://{HOST}:{port}/ping",
                         {"MLFLOW_TRACKING_URI": config.tracking_uri})
        base = f"http://{HOST}:{port}"
        try:
            results["mlflow"] = {
                "sequential_inline": sequential(f"{base}/invocations", mlflow_one[:args.requests]),
                "concurrent": concurrent(f"{base}/invocations", mlflow_one, args.clients, args.duration),
                "batch_1000_inline": batch(f"{base}/invocations", mlflow_batch, 1000),
            }
        finally:
            stop(baseline)

    ours_c, mlflow_c = results["ours"]["concurrent"], results["mlflow"]["concurrent"]
    results["ratios"] = {
        "throughput_ours_over_mlflow": ours_c["requests_per_s"] / mlflow_c["requests_per_s"],
        "p99_mlflow_over_ours": mlflow_c["p99_ms"] / ours_c["p99_ms"],
    }
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

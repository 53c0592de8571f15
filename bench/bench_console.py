"""Benchmark of the console's pages: server-side load time per page at 8 concurrent clients (loopback only).

One run: a synthetic company (100,000 customers by default) is generated, trained, loaded into the
customer store and explained by segment; `cxpredict serve` starts with an API key; then for each
console page (and `GET /v1/customers/{id}/score` in the same run, for comparison) 8 clients request
it for `--duration` seconds and the p50 / p99 of the response times are recorded. The first load of
each page (which fills the per-model caches: the predicted band mix over every silent customer, the
strategy ranking) is timed apart. It also times the key-driver analysis of 50,000 respondents
(3 rated attributes, 200 bootstrap draws) in-process.

Usage:
  python bench/bench_console.py [--customers 100000] [--duration 20] [--clients 8] [--out bench/results_console.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import HOST, free_port, percentiles, run, start, stop  # noqa: E402

from cxpredict.features.synthetic import DRIVERS, generate_company  # noqa: E402
from cxpredict.models.key_drivers import key_drivers  # noqa: E402

KEY = "bench-console-key-0123456789"


async def _load(url: str, paths: list[str], clients: int, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    cookies = {"cxpredict_key": KEY}

    async def client(i: int) -> None:
        nonlocal errors
        async with aiohttp.ClientSession(cookies=cookies, headers={"X-API-Key": KEY}) as session:
            j = i
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url + paths[j % len(paths)]) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)
                j += clients

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {**percentiles(latencies), "requests": len(latencies), "errors": errors,
            "requests_per_s": len(latencies) / duration}


def time_key_drivers(respondents: int, seed: int = 1) -> dict[str, float]:
    company = generate_company(int(respondents / 0.5), 0.5, seed=seed)
    survey = company.survey.head(respondents)
    started = time.perf_counter()
    key_drivers(survey, "nps", [f"rating_{d}" for d in DRIVERS], bootstrap=200, seed=seed)
    return {"respondents": len(survey), "attributes": len(DRIVERS), "bootstrap": 200,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--survey-rate", type=float, default=0.03)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results_console.json")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cxpredict.cli"]
    result: dict = {"customers": args.customers, "clients": args.clients, "duration_s": args.duration}
    result["key_drivers"] = time_key_drivers(50_000)
    print(json.dumps(result["key_drivers"]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run(cli + ["generate", "--out", str(work / "co"), "--customers", str(args.customers), "--survey-rate",
                   str(args.survey_rate), "--name", "bench"])
        config = work / "co" / "cxpredict.yaml"
        run(cli + ["train", "--config", str(config), "--tune-trials", "1"], stdout=subprocess.DEVNULL)
        run(cli + ["store", "load", "--config", str(config)])
        run(cli + ["explain", "--config", str(config), "--out", str(work / "ex"), "--segment", "segment",
                   "--sample", "5000", "--target", "detractor", "--target", "churn"], stdout=subprocess.DEVNULL)
        port = free_port()
        url = f"http://{HOST}:{port}"
        server = start(cli + ["serve", "--config", str(config), "--host", HOST, "--port", str(port)],
                       work / "server.log", f"{url}/readyz", {"CXPREDICT_API_KEYS": json.dumps({KEY: ["score",
                                                                                                 "simulate"]})})
        try:
            ids = [f"C{i:07d}" for i in np.random.default_rng(0).integers(0, args.customers, 200)]
            pages = {
                "overview": ["/ui"], "drivers": ["/ui/drivers?segment=segment"],
                "drivers_waterfall": [f"/ui/drivers?customer={i}" for i in ids],
                "customers": [f"/ui/customers?id={i}" for i in ids], "alerts": ["/ui/alerts"],
                "strategies": ["/ui/strategies"], "api_customer_score": [f"/v1/customers/{i}/score" for i in ids],
            }
            result["first_load_s"] = {}
            for name, paths in pages.items():
                started = time.perf_counter()
                response = httpx.get(url + paths[0], headers={"X-API-Key": KEY}, cookies={"cxpredict_key": KEY},
                                     timeout=600)
                assert response.status_code == 200, (name, response.status_code)
                result["first_load_s"][name] = time.perf_counter() - started
            result["pages"] = {name: asyncio.run(_load(url, paths, args.clients, args.duration))
                               for name, paths in pages.items()}
        finally:
            stop(server)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark alerts and tasks: `alerts run` over 1M customers vs plain scoring; GET /v1/tasks p99 over 1M tasks.

Not a test: run by hand and copy the printed figures into bench/README.md.

    python bench/bench_tasks.py prepare --work /tmp/cxtasks              # model (20k customers) + 1M-customer store
    python bench/bench_tasks.py alerts  --work /tmp/cxtasks              # plain scoring vs alerts run (wall, RSS)
    python bench/bench_tasks.py api     --work /tmp/cxtasks [--store-url postgresql+psycopg2://...]
                                                                          # 1M tasks; GET /v1/tasks vs /score, 8 clients

Every timed step runs in its own process, so peak RSS is that step's alone (os.wait4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
MODEL_CUSTOMERS = 20_000
HOST = "127.0.0.1"


def _timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a process to the end: wall seconds, its peak RSS and the last lines of its output."""
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(out[-3000:])
    # CPU seconds beside wall time: on a shared machine the wall time mostly measures the neighbours.
    return {"seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 0),
            "output": out.strip().splitlines()[-3:]}


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    return _timed([sys.executable, "-m", "cxpredict.cli", *args], cwd, env)


def prepare(work: Path, customers: int, trials: int) -> None:
    """Train on a 20k-customer company, then write a `customers`-sized copy of it (new ids) and load its store."""
    from cxpredict.features.synthetic import generate_company, write_company

    company = work / "company"
    config = write_company(generate_company(MODEL_CUSTOMERS, 0.15, seed=42), company, name="bench")
    config.write_text(config.read_text().replace("bias_correction: true}", "bias_correction: true, threads: 2}"))
    print("train:", _cli("train", "--config", str(config), "--tune-trials", str(trials), cwd=work))
    base = pd.read_parquet(company / "customers.parquet")
    survey = pd.read_csv(company / "survey.csv")
    copies = -(-customers // len(base))
    big = pd.concat([base.assign(customer_id=base["customer_id"] + f"-{k:03d}") for k in range(copies)],
                    ignore_index=True).head(customers)
    big_survey = pd.concat([survey.assign(customer_id=survey["customer_id"] + f"-{k:03d}") for k in range(copies)],
                           ignore_index=True)
    big_survey = big_survey[big_survey["customer_id"].isin(big["customer_id"])]
    big.to_parquet(company / "customers_big.parquet", index=False)
    big_survey.to_csv(company / "survey_big.csv", index=False)
    raw = yaml.safe_load(config.read_text())
    raw["data"] = {**raw["data"], "customers": "customers_big.parquet", "survey": "survey_big.csv"}
    raw["data"].pop("outcomes", None)
    raw["data"].pop("campaigns", None)
    raw["mlflow"] = {"tracking_uri": f"sqlite:///{company / 'mlflow.db'}",
                     "artifact_location": (company / "mlartifacts").resolve().as_uri()}
    (company / "big.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    print("store load:", _cli("store", "load", "--config", str(company / "big.yaml"), "--no-alerts", cwd=work))


SCORE_STORE = """
import sys, time
from cxpredict.features.config import load_config
from cxpredict.models.registry import load_champion
from cxpredict.models.scoring import CustomerScorer
from cxpredict.serving.api.settings import default_store_url
from cxpredict.serving.api.store import CustomerStore
config = load_config(sys.argv[1])
loaded = load_champion(config)
store = CustomerStore(default_store_url(config), "customers", config.id_column)
store.refresh()
scorer = CustomerScorer(loaded.bundle, threads=config.training.threads)
started, n = time.perf_counter(), 0
for chunk in store.iter_customers(50_000):
    scorer.score(chunk)
    n += len(chunk)
print(f"scored {n} customers from the store in {time.perf_counter() - started:.1f}s")
"""


def alerts(work: Path) -> dict[str, Any]:
    """Plain scoring of the store's customers, then `alerts run` twice (first: opens; second: idempotent)."""
    config = work / "company" / "big.yaml"
    results = {
        "plain_scoring": _timed([sys.executable, "-c", SCORE_STORE, str(config)], work),
        "alerts_run_first": _cli("alerts", "run", "--config", str(config), cwd=work),
        "alerts_run_again": _cli("alerts", "run", "--config", str(config), cwd=work),
    }
    plain = results["plain_scoring"]["seconds"]
    plain_cpu = results["plain_scoring"]["cpu_seconds"]
    for run in ("first", "again"):
        results[f"ratio_{run}"] = round(results[f"alerts_run_{run}"]["seconds"] / plain, 2)
        results[f"cpu_ratio_{run}"] = round(results[f"alerts_run_{run}"]["cpu_seconds"] / plain_cpu, 2)
    return results


def _fill_tasks(url: str, ids: np.ndarray, n: int) -> float:
    """n synthetic open tasks over the store's customers: 5 rules, 5 owners, through TaskStore.sync."""
    from cxpredict.serving.api.tasks import TASK_COLUMNS, TaskStore

    rng = np.random.default_rng(0)
    rules = np.array(["r1", "r2", "r3", "r4", "r5"], dtype=object)
    pairs = pd.DataFrame({"customer_id": np.repeat(ids, 5)[:n], "rule_id": np.tile(rules, len(ids))[:n]})
    frame = pairs.assign(
        level=rng.choice(["critical", "high", "medium"], n), basis="predicted",
        owner_id=rng.choice(["north", "south", "east_west", "central", "retention_desk"], n),
        reason="predicted detractor (0.71): network quality 37.2, dropped calls per month 2.7",
        strategy_id="loyalty_bonus", strategy_name="One-year contract with a loyalty bonus",
        expected_value=np.round(rng.uniform(0, 500, n), 2), p_bottom_band=rng.uniform(0, 1, n),
        churn_probability=rng.uniform(0, 1, n), value=rng.uniform(200, 10_000, n), model_version="1", campaign=None,
    )[list(TASK_COLUMNS)]
    tasks = TaskStore(url)
    started = time.perf_counter()
    tasks.sync(frame, "bench")
    seconds = time.perf_counter() - started
    tasks.dispose()
    return seconds


async def _load(urls: list[str], clients: int, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                async with session.get(urls[i % len(urls)]) as response:
                    await response.read()
                    errors += response.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            i += clients

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(k, session) for k in range(clients)))
        elapsed = time.perf_counter() - began
    a = np.asarray(latencies) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "requests_per_s": round(len(a) / elapsed, 1), "errors": errors, "clients": clients}


def api(work: Path, store_url: str | None, n_tasks: int, clients: int, duration: float) -> dict[str, Any]:
    """Fill n_tasks tasks, start `cxpredict serve`, and load GET /v1/tasks and GET /v1/customers/{id}/score."""
    import httpx

    from cxpredict.features.config import load_config
    from cxpredict.serving.api.settings import default_store_url
    from cxpredict.serving.api.store import CustomerStore
    from cxpredict.serving.api.tasks import encode_cursor
    from tests.serving.conftest import free_port

    config_path = work / "company" / "big.yaml"
    config = load_config(config_path)
    url = store_url or default_store_url(config)
    if store_url:
        print("store load (pg):", _cli("store", "load", "--config", str(config_path), "--store-url", store_url,
                                       "--no-alerts", cwd=work))
    store = CustomerStore(url, "customers", config.id_column)
    store.refresh()
    ids = np.concatenate([c[config.id_column].to_numpy(object) for c in store.iter_customers(200_000)])
    store.close()
    engine_name = url.split(":", 1)[0].split("+")[0]
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean task table: the bench's own 1M tasks only
        for table in ("customers_tasks", "customers_task_events"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    fill_s = _fill_tasks(url, ids, n_tasks)
    port = free_port()
    log = (work / f"serve-{engine_name}.log").open("w")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CXPREDICT_ALERTS_ON_CHANGE": "false",
           **({"CXPREDICT_STORE_URL": store_url} if store_url else {})}
    server = subprocess.Popen([sys.executable, "-m", "cxpredict.cli", "serve", "--config", str(config_path),
                               "--host", HOST, "--port", str(port), "--log-level", "warning"], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        rng = np.random.default_rng(1)
        owners = ["north", "south", "east_west", "central", "retention_desk"]
        # A page of 100 for one owner and level, from a random position in the million.
        task_urls = [f"{base}/v1/tasks?owner={rng.choice(owners)}&state=open&limit=100&cursor="
                     f"{encode_cursor(int(rng.integers(0, n_tasks)))}" for _ in range(2000)]
        score_urls = [f"{base}/v1/customers/{i}/score" for i in rng.choice(ids, 2000)]
        asyncio.run(_load(task_urls[:50] + score_urls[:50], clients, 3))  # warm-up
        results = {
            "store": engine_name, "tasks": n_tasks, "fill_seconds": round(fill_s, 1),
            "get_tasks": asyncio.run(_load(task_urls, clients, duration)),
            "get_customer_score": asyncio.run(_load(score_urls, clients, duration)),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prepare", "alerts", "api"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cxtasks"))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--tune-trials", type=int, default=2)
    parser.add_argument("--store-url", default=None, help="PostgreSQL URL for the api step (default: SQLite)")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    machine = {"cores": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    if args.step == "prepare":
        prepare(args.work, args.customers, args.tune_trials)
        return
    result = alerts(args.work) if args.step == "alerts" else api(args.work, args.store_url, args.tasks,
                                                                  args.clients, args.duration)
    print(json.dumps({"machine": machine, **result}, indent=2))


if __name__ == "__main__":
    main()

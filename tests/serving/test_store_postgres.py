"""The customer store on the real PostgreSQL server (127.0.0.1:5432, database `test`).

Each test writes uniquely named tables and drops them. An unreachable server fails these tests:
they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from cxpredict.features.records import RecordEncoder
from cxpredict.models.registry import load_registered_bundle
from cxpredict.serving.api.store import CustomerStore, respondents_table_name
from tests.conftest import run_cli
from tests.serving.conftest import MODEL_NAME, Company, keyed_env, start_server, stop_server

pytestmark = [pytest.mark.postgres, pytest.mark.api]
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture()
def pg_table() -> Iterator[str]:
    """A fresh table name; the table and its respondents table are dropped afterwards."""
    name = f"cx_test_{uuid.uuid4().hex[:10]}"
    yield name
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        # `store load` also runs the alert rules: their task tables go too.
        for table in (name, respondents_table_name(name), f"{name}_tasks", f"{name}_task_events",
                      f"{name}_webhook_dead_letters", f"{name}_alert_scores"):
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


def test_store_load_postgres_lookups_match_parquet(company: Company, pg_table: str) -> None:
    done = run_cli("store", "load", "--config", str(company.config_path), "--store-url", PG_URL,
                   "--table", pg_table, cwd=company.folder)
    assert done.returncode == 0, done.stderr
    assert f"stored {len(company.dataset.customers)} customers" in done.stdout
    engine = create_engine(PG_URL)
    assert inspect(engine).get_pk_constraint(pg_table)["constrained_columns"] == ["customer_id"]
    engine.dispose()

    store = CustomerStore(PG_URL, pg_table, "customer_id")
    assert store.refresh() and store.count() == len(company.dataset.customers)
    customers = company.dataset.customers
    ids = customers["customer_id"].sample(300, random_state=3).tolist()
    found = store.get(ids)
    assert set(found) == set(ids) and store.get(["nobody"]) == {}
    bundle = load_registered_bundle(company.config.tracking_uri, MODEL_NAME).bundle
    expected = bundle.pipeline.transform(customers.set_index("customer_id").loc[ids].reset_index())
    assert np.array_equal(RecordEncoder(bundle.pipeline).encode([found[i] for i in ids]), expected, equal_nan=True)

    survey = company.dataset.survey.set_index("customer_id")["nps"]
    observed = store.observed(ids)
    assert observed == {i: int(survey[i]) for i in ids if i in survey.index}
    silent = pd.concat(list(store.iter_silent(chunk_size=500)))
    assert len(silent) == len(customers) - len(survey)
    assert not silent["customer_id"].isin(survey.index).any()
    store.close()


def test_score_customer_from_postgres_store(company: Company, pg_table: str, client: httpx.Client,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    done = run_cli("store", "load", "--config", str(company.config_path), "--store-url", PG_URL,
                   "--table", pg_table, cwd=company.folder)
    assert done.returncode == 0, done.stderr
    server = start_server(company.config_path, tmp_path_factory.mktemp("pg") / "server.log",
                          keyed_env(CXPREDICT_STORE_URL=PG_URL, CXPREDICT_STORE_TABLE=pg_table))
    try:
        ids = company.dataset.customers["customer_id"].sample(30, random_state=4).tolist()
        payload = {"customers": [{"customer_id": i} for i in ids]}
        from_pg = httpx.post(f"{server.url}/v1/scores", json=payload, headers=client.headers).json()["scores"]
        from_sqlite = client.post("/v1/scores", json=payload).json()["scores"]
        assert from_pg == from_sqlite
        alerts_pg = httpx.get(f"{server.url}/v1/alerts", headers=client.headers).json()
        alerts_sqlite = client.get("/v1/alerts").json()
        assert alerts_pg["alerts"] == alerts_sqlite["alerts"]
    finally:
        stop_server(server)

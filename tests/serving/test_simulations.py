"""Strategy simulations over HTTP: the batch simulation's numbers, ranked per customer, and bad input is a 4xx."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from cxpredict.features.strategies import config_strategies
from cxpredict.models.registry import load_registered_bundle
from cxpredict.models.simulate import simulate_effects
from tests.serving.conftest import MODEL_NAME, SIMULATE_KEY, Company, Server

pytestmark = pytest.mark.api


@pytest.fixture()
def simulator(api_server: Server) -> httpx.Client:
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": SIMULATE_KEY}, timeout=120) as http:
        yield http


def test_simulate_strategies_matches_batch_simulation(simulator: httpx.Client, company: Company) -> None:
    customers = company.dataset.customers.sample(60, random_state=5)
    ids = customers["customer_id"].tolist()
    response = simulator.post("/v1/simulations", json={"customers": [{"customer_id": i} for i in ids]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and body["objective"] == "value" and len(body["customers"]) == 60

    bundle = load_registered_bundle(company.config.tracking_uri, MODEL_NAME).bundle
    expected = simulate_effects(bundle, customers, config_strategies(company.config)[0], value_column="clv")
    effects = expected.effects.set_index(["customer_id", "strategy"])
    scores = {s["customer_id"]: s["predictions"] for s in
              simulator.post("/v1/scores", json={"customers": [{"customer_id": i} for i in ids]}).json()["scores"]}
    n_effects = 0
    for item in body["customers"]:
        cid = item["customer_id"]
        assert item["baseline"]["churn_probability"] == pytest.approx(scores[cid]["churn_probability"], abs=1e-12)
        assert item["value"] == pytest.approx(customers.set_index("customer_id").loc[cid, "clv"])
        gains = [e["gain"] for e in item["strategies"]]
        assert gains == sorted(gains, reverse=True)
        positive = [e["strategy"] for e in item["strategies"] if e["gain"] > 0]
        assert item["best_strategy"] == (positive[0] if positive else "none")
        for effect in item["strategies"]:
            row = effects.loc[(cid, effect["strategy"])]
            assert effect["method"] == row["method"] and effect["method"] in ("simulated", "learned")
            assert effect["expected_value"] == pytest.approx(row["expected_value"], abs=1e-9)
            assert effect["delta_churn"] == pytest.approx(row["delta_churn"], abs=1e-12)
            n_effects += 1
    assert n_effects == len(expected.effects) > 0
    summary = {row["strategy"]: row for row in body["summary"]}
    assert summary["none"]["n_customers"] == 60
    for strategy, row in summary.items():
        if strategy != "none":
            assert row["n_eligible"] == int((expected.effects["strategy"] == strategy).sum())


def test_simulate_strategies_chosen_subset(simulator: httpx.Client, company: Company) -> None:
    ids = company.dataset.customers["customer_id"].head(20).tolist()
    response = simulator.post("/v1/simulations", json={
        "customers": [{"customer_id": i} for i in ids], "strategies": ["contract_upgrade"], "objective": "churn"})
    assert response.status_code == 200, response.text
    strategies = {e["strategy"] for c in response.json()["customers"] for e in c["strategies"]}
    assert strategies <= {"contract_upgrade"}
    for customer in response.json()["customers"]:
        for effect in customer["strategies"]:
            assert effect["gain"] == pytest.approx(-effect["delta_churn"])


def test_simulate_strategies_unknown_strategy(simulator: httpx.Client) -> None:
    response = simulator.post("/v1/simulations", json={
        "customers": [{"customer_id": "C0000001"}], "strategies": ["price_discount", "free_pony"]})
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["detail"]] == ["strategies[1]"]


@pytest.mark.parametrize("body", [{"customers": []}, {"customers": [{"customer_id": "C0000001"}], "strategies": []},
                                  {"customers": [{"customer_id": "C0000001"}], "objective": "fame"}])
def test_simulate_strategies_bad_request(simulator: httpx.Client, body: dict) -> None:
    assert simulator.post("/v1/simulations", json=body).status_code == 422


def test_simulate_strategies_unknown_customer(simulator: httpx.Client) -> None:
    response = simulator.post("/v1/simulations", json={"customers": [{"customer_id": "ghost"}]})
    assert response.status_code == 404 and response.json()["customer_ids"] == ["ghost"]


def test_simulate_strategies_inline_value(simulator: httpx.Client, company: Company) -> None:
    model = simulator.get("/v1/model").json()
    names = [f["name"] for f in model["features"]]
    row = company.dataset.customers.iloc[3]
    features = {n: (None if pd.isna(row[n]) else (row[n].isoformat() if isinstance(row[n], pd.Timestamp)
                                                   else row[n].item() if hasattr(row[n], "item") else row[n]))
                for n in names}
    response = simulator.post("/v1/simulations", json={"customers": [{"features": features}]})
    assert response.status_code == 422 and response.json()["detail"][0]["path"] == "customers[0].features.clv"
    churn = simulator.post("/v1/simulations", json={"customers": [{"features": features}], "objective": "churn"})
    assert churn.status_code == 200 and churn.json()["customers"][0]["value"] == 1.0
    valued = simulator.post("/v1/simulations", json={"customers": [{"features": {**features, "clv": 1234.5}}]})
    assert valued.status_code == 200 and valued.json()["customers"][0]["value"] == 1234.5


def test_simulate_strategies_score_key_forbidden(api_server: Server) -> None:
    from tests.serving.conftest import SCORE_KEY

    response = httpx.post(f"{api_server.url}/v1/simulations", json={"customers": [{"customer_id": "C0000001"}]},
                          headers={"X-API-Key": SCORE_KEY})
    assert response.status_code == 403

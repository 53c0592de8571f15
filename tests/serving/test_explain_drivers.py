"""Explanations in scores (?explain=k) and the driver tables of the served model, over HTTP."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from cxpredict.models.registry import load_champion
from cxpredict.serving.batch.files import score_customers
from tests.conftest import run_cli
from tests.serving.conftest import Company

pytestmark = pytest.mark.api


def test_score_customers_explain_matches_batch(client: httpx.Client, company: Company) -> None:
    ids = company.dataset.customers["customer_id"].sample(15, random_state=8).tolist()
    response = client.post("/v1/scores", params={"explain": 3}, json={"customers": [{"customer_id": i} for i in ids]})
    assert response.status_code == 200, response.text
    dataset = company.dataset
    subset = type(dataset)(customers=dataset.customers[dataset.customers["customer_id"].isin(ids)],
                           survey=dataset.survey)
    batch = score_customers(company.config, load_champion(company.config), subset, explain=3).set_index("customer_id")
    for item in response.json()["scores"]:
        explanations = item["explanations"]
        assert set(explanations) == {"detractor", "expected_score", "churn"}
        row = batch.loc[item["customer_id"]]
        for target, explained in explanations.items():
            contributions = explained["contributions"]
            assert len(contributions) == 3
            sizes = [abs(c["contribution"]) for c in contributions]
            assert sizes == sorted(sizes, reverse=True)
            for rank, c in enumerate(contributions, start=1):
                assert c["feature"] == row[f"driver{rank}_{target}_feature"]
                assert c["contribution"] == pytest.approx(row[f"driver{rank}_{target}_contribution"], abs=1e-9)
                expected_value = row[f"driver{rank}_{target}_value"]
                assert c["value"] == (None if expected_value == "missing" else expected_value)


def test_score_customer_explain_one(client: httpx.Client) -> None:
    body = client.get("/v1/customers/C0000009/score", params={"explain": 2}).json()
    assert {len(e["contributions"]) for e in body["explanations"].values()} == {2}
    assert body["explanations"]["churn"]["space"] == "log-odds"
    assert client.get("/v1/customers/C0000009/score").json()["explanations"] is None


@pytest.mark.parametrize("k", [-1, 11, 500])
def test_score_customers_explain_out_of_range(client: httpx.Client, k: int) -> None:
    response = client.post("/v1/scores", params={"explain": k}, json={"customers": [{"customer_id": "C0000009"}]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "explain"]


def test_get_drivers_from_explain_run(client: httpx.Client, company: Company, tmp_path) -> None:  # noqa: ANN001
    missing = client.get("/v1/drivers")
    assert missing.status_code == 404 and "cxpredict explain" in missing.json()["detail"]
    assert client.get("/v1/drivers/key").status_code == 404
    out = tmp_path / "drivers"
    done = run_cli("explain", "--config", str(company.config_path), "--out", str(out), "--segment", "segment",
                   "--sample", "1500", "--target", "detractor", "--target", "churn", cwd=company.folder)
    assert done.returncode == 0, done.stderr

    response = client.get("/v1/drivers")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and "not proven causes" in body["note"]
    expected = pd.read_csv(out / "drivers_global.csv")
    assert [(d["target"], d["feature"], d["rank"]) for d in body["drivers"]] == list(
        zip(expected["target"], expected["feature"], expected["rank"], strict=True))

    churn = client.get("/v1/drivers", params={"target": "churn"}).json()["drivers"]
    assert churn and {d["target"] for d in churn} == {"churn"}
    assert [d["rank"] for d in churn] == list(range(1, len(churn) + 1))

    by_segment = client.get("/v1/drivers", params={"segment": "segment", "target": "detractor"}).json()
    assert by_segment["segment_column"] == "segment"
    assert {d["segment"] for d in by_segment["drivers"]} == set(company.dataset.customers["segment"])
    assert client.get("/v1/drivers", params={"target": "expected_score"}).status_code == 404  # not explained
    assert client.get("/v1/drivers", params={"segment": "region"}).status_code == 404
    unknown = client.get("/v1/drivers", params={"target": "happiness"})
    assert unknown.status_code == 422 and "detractor" in unknown.json()["detail"][0]["msg"]

    # The key-driver table of the rated attributes: the explain run's numbers, to the last digit.
    key = client.get("/v1/drivers/key")
    assert key.status_code == 200, key.text
    logged = pd.read_csv(out / "key_drivers.csv", dtype={"segment": str})
    everyone = logged[logged["segment"] == "all"]
    assert [(k["attribute"], k["rank"], k["importance"], k["performance"], k["quadrant"])
            for k in key.json()["key_drivers"]] == list(zip(
                everyone["attribute"], everyone["rank"], everyone["importance"], everyone["performance"],
                everyone["quadrant"], strict=True))
    assert sorted(k["attribute"] for k in key.json()["key_drivers"]) == sorted(company.config.drivers)
    assert sum(k["importance"] for k in key.json()["key_drivers"]) == pytest.approx(1.0)
    by_segment = client.get("/v1/drivers/key", params={"segment": "segment"}).json()["key_drivers"]
    assert {k["segment"] for k in by_segment} == {"all", *company.dataset.customers["segment"].astype(str)}


def test_get_drivers_quoted_segment_is_not_a_server_error(client: httpx.Client) -> None:
    """A segment name with quotes is data, never MLflow filter syntax (found by schemathesis)."""
    response = client.get("/v1/drivers", params={"segment": "=\'\":"})
    assert response.status_code == 404
    assert "cxpredict explain" in response.json()["detail"]

"""Scores over HTTP against a real uvicorn server: same numbers as batch scoring, and bad input is a 4xx."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from cxpredict.models.registry import load_champion
from cxpredict.serving.batch.files import score_customers
from tests.serving.conftest import MODEL_NAME, Company, Server

pytestmark = pytest.mark.api


def _json_features(row: pd.Series, names: list[str]) -> dict[str, Any]:
    """A customer row as a client would send it: plain JSON values, ISO dates, null for missing."""
    out: dict[str, Any] = {}
    for name in names:
        value = row[name]
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            out[name] = None
        elif isinstance(value, pd.Timestamp):
            out[name] = value.isoformat()
        elif isinstance(value, np.generic):
            out[name] = value.item()
        else:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def batch_scores(company: Company) -> pd.DataFrame:
    """`cxpredict score`'s numbers for every customer, computed in-process from the parquet file."""
    return score_customers(company.config, load_champion(company.config), company.dataset).set_index("customer_id")


@pytest.fixture(scope="module")
def feature_names(api_server: Server) -> list[str]:
    from tests.serving.conftest import SCORE_KEY

    model = httpx.get(f"{api_server.url}/v1/model", headers={"X-API-Key": SCORE_KEY}).json()
    return [f["name"] for f in model["features"]]


def _inline(company: Company, ids: list[str], names: list[str]) -> list[dict[str, Any]]:
    customers = company.dataset.customers.set_index("customer_id")
    return [{"customer_id": i, "features": _json_features(customers.loc[i], names)} for i in ids]


def test_score_customers_by_id_matches_batch_scoring(client: httpx.Client, company: Company,
                                                     batch_scores: pd.DataFrame) -> None:
    surveyed = company.dataset.survey["customer_id"].head(3).tolist()
    ids = surveyed + company.dataset.customers["customer_id"].sample(40, random_state=1).tolist()
    response = client.post("/v1/scores", json={"customers": [{"customer_id": i} for i in ids]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and len(body["scores"]) == len(ids)
    for item in body["scores"]:
        expected = batch_scores.loc[item["customer_id"]]
        assert item["model_version"] == expected["model_version"]
        assert item["surveyed"] == bool(expected["surveyed"])
        observed = expected["observed_nps"]
        assert item["observed_score"] == (None if pd.isna(observed) else int(observed))
        assert set(item["predictions"]) == {c for c in expected.index if c.startswith(("p_", "pred_"))} | {
            "expected_score", "churn_probability"}
        for name, value in item["predictions"].items():
            assert value == pytest.approx(expected[name], abs=1e-12), name
        uncertainty = item["uncertainty"]
        assert ";".join(uncertainty["prediction_set"]) == expected["prediction_set"]
        assert uncertainty["low_support"] == bool(expected["low_support"])
        for name in ("expected_score_low", "expected_score_high", "response_propensity"):
            assert uncertainty[name] == pytest.approx(expected[name], abs=1e-12), name


def test_score_customers_inline_matches_by_id(client: httpx.Client, company: Company, feature_names: list[str],
                                              batch_scores: pd.DataFrame) -> None:
    ids = company.dataset.customers["customer_id"].sample(25, random_state=2).tolist()
    response = client.post("/v1/scores", json={"customers": _inline(company, ids, feature_names)})
    assert response.status_code == 200, response.text
    for item in response.json()["scores"]:
        assert item["surveyed"] is None and item["observed_score"] is None  # inline: the store is not asked
        for name, value in item["predictions"].items():
            assert value == pytest.approx(batch_scores.loc[item["customer_id"], name], abs=1e-12), name


def test_score_customer_by_id(client: httpx.Client, company: Company, batch_scores: pd.DataFrame) -> None:
    customer_id = company.dataset.survey["customer_id"].iloc[0]
    response = client.get(f"/v1/customers/{customer_id}/score")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer_id and body["surveyed"] is True
    assert body["observed_score"] == int(company.dataset.survey["nps"].iloc[0])
    assert body["model_name"] == MODEL_NAME and body["model_version"] == "1"
    assert body["predictions"]["churn_probability"] == pytest.approx(
        batch_scores.loc[customer_id, "churn_probability"], abs=1e-12)


def test_score_customer_by_id_get_matches_batch_scoring(client: httpx.Client, company: Company,
                                                        batch_scores: pd.DataFrame) -> None:
    """GET by id reads the store through the single-id fast path: every figure equals batch scoring."""
    ids = company.dataset.survey["customer_id"].head(2).tolist() + \
        company.dataset.customers["customer_id"].sample(6, random_state=4).tolist()
    for customer_id in ids:
        response = client.get(f"/v1/customers/{customer_id}/score")
        assert response.status_code == 200, response.text
        body, expected = response.json(), batch_scores.loc[customer_id]
        assert body["surveyed"] == bool(expected["surveyed"])
        observed = expected["observed_nps"]
        assert body["observed_score"] == (None if pd.isna(observed) else int(observed))
        for name, value in body["predictions"].items():
            assert value == pytest.approx(expected[name], abs=1e-12), name
        assert ";".join(body["uncertainty"]["prediction_set"]) == expected["prediction_set"]
        assert body["uncertainty"]["expected_score_low"] == pytest.approx(expected["expected_score_low"], abs=1e-12)


def test_score_customer_unknown_id(client: httpx.Client) -> None:
    response = client.get("/v1/customers/NOT-A-CUSTOMER/score")
    assert response.status_code == 404
    assert response.json()["customer_ids"] == ["NOT-A-CUSTOMER"]
    assert "NOT-A-CUSTOMER" in response.json()["detail"]


def test_score_customers_unknown_ids_listed(client: httpx.Client, company: Company) -> None:
    known = company.dataset.customers["customer_id"].iloc[0]
    response = client.post("/v1/scores", json={"customers": [
        {"customer_id": known}, {"customer_id": "ghost-1"}, {"customer_id": "ghost-2"}]})
    assert response.status_code == 404
    assert response.json()["customer_ids"] == ["ghost-1", "ghost-2"]


def _error_paths(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["path"]: e["type"] for e in response.json()["detail"]}


def test_score_customers_missing_feature(client: httpx.Client, company: Company, feature_names: list[str]) -> None:
    item = _inline(company, ["C0000001"], feature_names)[0]
    del item["features"]["tenure_months"]
    paths = _error_paths(client.post("/v1/scores", json={"customers": [item, item]}))
    assert paths == {"customers[0].features.tenure_months": "missing",
                     "customers[1].features.tenure_months": "missing"}


def test_score_customers_mistyped_feature(client: httpx.Client, company: Company, feature_names: list[str]) -> None:
    item = _inline(company, ["C0000001"], feature_names)[0]
    item["features"].update({"monthly_charge": "eighty", "signup_date": "yesterday", "paperless_billing": "maybe"})
    paths = _error_paths(client.post("/v1/scores", json={"customers": [item]}))
    assert paths == {f"customers[0].features.{n}": "wrong_type"
                     for n in ("monthly_charge", "signup_date", "paperless_billing")}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_score_customers_non_finite_feature(client: httpx.Client, company: Company, feature_names: list[str],
                                            literal: str) -> None:
    item = _inline(company, ["C0000001"], feature_names)[0]
    item["features"]["age"] = "__X__"
    body = json.dumps({"customers": [item]}).replace('"__X__"', literal)
    response = client.post("/v1/scores", content=body, headers={"content-type": "application/json"})
    assert "customers[0].features.age" in _error_paths(response)


def test_score_customers_out_of_range_value(client: httpx.Client, company: Company,
                                            feature_names: list[str]) -> None:
    item = _inline(company, ["C0000001"], feature_names)[0]
    item["features"].update({"monthly_charge": 8_950.0, "tenure_months": -3, "signup_date": "1900-01-01"})
    paths = _error_paths(client.post("/v1/scores", json={"customers": [item]}))
    assert paths == {f"customers[0].features.{n}": "out_of_range"
                     for n in ("monthly_charge", "tenure_months", "signup_date")}


def test_score_customers_unseen_category_scores_as_missing(client: httpx.Client, company: Company,
                                                          feature_names: list[str]) -> None:
    unseen, missing = _inline(company, ["C0000001"], feature_names) * 2
    unseen = json.loads(json.dumps(unseen))
    unseen["features"]["region"] = "atlantis"
    missing = json.loads(json.dumps(missing))
    missing["features"]["region"] = None
    response = client.post("/v1/scores", json={"customers": [unseen, missing]})
    assert response.status_code == 200, response.text
    first, second = (s["predictions"] for s in response.json()["scores"])
    assert first == second


def test_score_customers_empty_list(client: httpx.Client) -> None:
    assert "customers" in _error_paths(client.post("/v1/scores", json={"customers": []}))


def test_score_customers_too_many(client: httpx.Client) -> None:
    response = client.post("/v1/scores", json={"customers": [{"customer_id": f"x{i}"} for i in range(1001)]})
    assert _error_paths(response) == {"customers": "too_long"}


def test_score_customers_neither_id_nor_features(client: httpx.Client) -> None:
    assert "customers[0]" in _error_paths(client.post("/v1/scores", json={"customers": [{}]}))


def test_score_customers_not_json(client: httpx.Client) -> None:
    response = client.post("/v1/scores", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_score_customers_body_too_large(client: httpx.Client) -> None:
    big = {"customers": [{"customer_id": "x" * 90} for _ in range(3000)]}  # about 300 kB > 200 kB limit
    response = client.post("/v1/scores", json=big)
    assert response.status_code == 413

    def chunks():  # noqa: ANN202 - streamed without Content-Length
        yield json.dumps(big).encode()

    response = client.post("/v1/scores", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_get_model_describes_champion(client: httpx.Client, company: Company) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["version"], body["alias"]) == (MODEL_NAME, "1", "champion")
    assert body["has_churn"] and body["bottom_band"] == "detractor"
    assert "test_macro_f1" in body["metrics"]
    # the population score's honesty (issue 17): headline interval, sensitivity range and words
    assert body["metrics"]["population_index_headline_low"] <= body["metrics"]["population_index"]
    assert "population_index_dr_lambda_1_5_low" in body["metrics"]
    # this fixture hides some customers' churn: no shadow estimate, the sensitivity band still stands
    assert "population_index_shadow" not in body["metrics"]
    assert any("sign holds for unobserved selection" in note for note in body["population_notes"])
    names = {f["name"] for f in body["features"]}
    assert "clv" not in names and "customer_id" not in names and "tenure_months" in names
    kinds = {f["name"]: f["kind"] for f in body["features"]}
    assert kinds["signup_date"] == "date" and kinds["region"] == "categorical"


def test_get_strategies_lists_catalogue(client: httpx.Client) -> None:
    response = client.get("/v1/strategies")
    assert response.status_code == 200
    ids = [s["id"] for s in response.json()["strategies"]]
    assert "price_discount" in ids and "app_promo" in ids


def test_get_alerts_ranked_by_priority(client: httpx.Client, company: Company,
                                       batch_scores: pd.DataFrame) -> None:
    response = client.get("/v1/alerts", params={"limit": 20})
    assert response.status_code == 200, response.text
    body = response.json()
    alerts = body["alerts"]
    silent = batch_scores[~batch_scores["surveyed"]]
    assert body["n_silent"] == len(silent) and len(alerts) == 20
    # The same ranking computed independently from batch scores and the value column.
    value = company.dataset.customers.set_index("customer_id")["clv"].reindex(silent.index)
    risk = np.maximum(silent["p_detractor"], silent["churn_probability"])
    expected = (risk * value).sort_values(ascending=False, kind="stable").head(20)
    assert [a["customer_id"] for a in alerts] == expected.index.tolist()
    for a in alerts:
        assert a["priority"] == pytest.approx(a["risk"] * a["value"], rel=1e-12)
        assert a["risk"] == pytest.approx(max(a["p_bottom_band"], a["churn_probability"]), rel=1e-12)
        probabilities = [c["probability"] for c in a["top_causes"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    rich = client.get("/v1/alerts", params={"limit": 5, "min_value": 9000}).json()["alerts"]
    assert rich and all(a["value"] >= 9000 for a in rich)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"min_value": -5},
                                    {"min_value": "nan"}])
def test_get_alerts_bad_query(client: httpx.Client, params: dict[str, Any]) -> None:
    assert client.get("/v1/alerts", params=params).status_code == 422


def test_get_metrics_counts_routes(client: httpx.Client, api_server: Server) -> None:
    client.get("/v1/customers/C0000001/score")
    client.get("/v1/customers/C0000002/score")
    text = httpx.get(f"{api_server.url}/metrics").text
    assert 'cxpredict_http_requests_total{method="GET",route="/v1/customers/{customer_id}/score",status="200"}' \
        in text
    assert 'cxpredict_http_request_duration_seconds_bucket{le="0.005",method="GET",' \
        'route="/v1/customers/{customer_id}/score"}' in text
    assert f'cxpredict_model_version{{model_name="{MODEL_NAME}"}} 1.0' in text
    assert "C0000001" not in text  # ids never become labels


def test_health_and_readiness(api_server: Server) -> None:
    assert httpx.get(f"{api_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["model_version"] == "1"


def test_logs_hold_no_feature_values(client: httpx.Client, company: Company, feature_names: list[str],
                                     api_server: Server) -> None:
    item = _inline(company, ["C0000001"], feature_names)[0]
    item["features"].update({"region": "SENTINEL-REGION-7731", "monthly_charge": 77.3177})
    assert client.post("/v1/scores", json={"customers": [item]}).status_code == 200
    item["features"]["plan"] = "SENTINEL-PLAN-5519"
    item["features"]["age"] = "SENTINEL-AGE-8842"
    assert client.post("/v1/scores", json={"customers": [item]}).status_code == 422
    logs = api_server.logs()
    assert "POST /v1/scores" in logs  # the access log is captured...
    for sentinel in ("SENTINEL-REGION-7731", "77.3177", "SENTINEL-PLAN-5519", "SENTINEL-AGE-8842"):
        assert sentinel not in logs  # ...and holds no feature value

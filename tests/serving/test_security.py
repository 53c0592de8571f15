"""API keys and scopes: 401 without or with an unknown key, 403 with the wrong scope; health stays open."""

from __future__ import annotations

import httpx
import pytest

from tests.serving.conftest import ADMIN_KEY, SCORE_KEY, SIMULATE_KEY, Server

pytestmark = pytest.mark.api

V1_GETS = ["/v1/model", "/v1/strategies", "/v1/alerts", "/v1/customers/C0000001/score", "/v1/admin/reload"]


@pytest.mark.parametrize("path", V1_GETS)
def test_get_v1_without_key_unauthorized(api_server: Server, path: str) -> None:
    response = httpx.get(api_server.url + path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_score_customers_without_key_unauthorized(api_server: Server) -> None:
    response = httpx.post(f"{api_server.url}/v1/scores", json={"customers": [{"customer_id": "C0000001"}]})
    assert response.status_code == 401


def test_get_model_unknown_key_unauthorized(api_server: Server) -> None:
    response = httpx.get(f"{api_server.url}/v1/model", headers={"X-API-Key": SCORE_KEY + "x"})
    assert response.status_code == 401


def test_reload_model_score_key_forbidden(api_server: Server) -> None:
    response = httpx.post(f"{api_server.url}/v1/admin/reload", headers={"X-API-Key": SCORE_KEY})
    assert response.status_code == 403 and "admin" in response.json()["detail"]


def test_get_model_admin_only_key_forbidden(api_server: Server) -> None:
    assert httpx.get(f"{api_server.url}/v1/model", headers={"X-API-Key": ADMIN_KEY}).status_code == 403


def test_get_reload_status_admin_key(api_server: Server) -> None:
    response = httpx.get(f"{api_server.url}/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200 and response.json()["serving_version"] == "1"


def test_score_customer_bearer_key(api_server: Server) -> None:
    response = httpx.get(f"{api_server.url}/v1/customers/C0000001/score",
                         headers={"Authorization": f"Bearer {SIMULATE_KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_get_health_open_without_key(api_server: Server, path: str) -> None:
    assert httpx.get(api_server.url + path).status_code == 200


def test_get_docs_open_and_schema_declares_key(api_server: Server) -> None:
    assert httpx.get(f"{api_server.url}/docs").status_code == 200
    schema = httpx.get(f"{api_server.url}/openapi.json").json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert "/v1/scores" in schema["paths"] and "/v1/customers/{customer_id}/score" in schema["paths"]

"""API keys and scopes: 401 without or with an unknown key, 403 with the wrong scope; health stays open."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.serving.conftest import ADMIN_KEY, SCORE_KEY, SIMULATE_KEY, Company, Server, start_server, stop_server

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


def test_hashed_key_file_readable_by_others_and_ids_kept_out_of_access_log(
    company: Company, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A key given only as its SHA-256 opens the API; a world-readable key file is warned about;
    with access_log_ids false the access log names no customer id."""
    folder = tmp_path_factory.mktemp("hashed_keys")
    secret = "hashed-secret-key-0123456789"
    keys = folder / "keys.yaml"
    keys.write_text(yaml.safe_dump({"front desk": {"scopes": ["score"],
                                                   "key_sha256": hashlib.sha256(secret.encode()).hexdigest()}}))
    keys.chmod(0o644)
    customer = str(company.dataset.customers[company.config.id_column].iloc[0])
    server = start_server(company.config_path, folder / "server.log",
                          {"CXPREDICT_API_KEYS_FILE": str(keys), "CXPREDICT_ACCESS_LOG_IDS": "false"})
    try:
        scored = httpx.get(f"{server.url}/v1/customers/{customer}/score", headers={"X-API-Key": secret})
        assert scored.status_code == 200, scored.text
        wrong = httpx.get(f"{server.url}/v1/model", headers={"X-API-Key": hashlib.sha256(secret.encode()).hexdigest()})
        assert wrong.status_code == 401  # the hash itself is not a key
    finally:
        stop_server(server)
    logs = server.logs()
    assert "is readable by other users" in logs and "chmod 600" in logs
    assert "/v1/customers/{id}/score" in logs and customer not in logs
    assert secret not in logs


@pytest.mark.parametrize("keys", [
    '{"short-key-3x9q": ["score"], "another-key-0123456789-3x9q": ["nope"]}',
    '{"another-key-0123456789-3x9q": ["score"],}',  # JSON syntax: pydantic-settings' own error
], ids=["invalid-keys", "not-json"])
def test_settings_error_under_uvicorn_factory_never_quotes_a_key(tmp_path: Path, keys: str) -> None:
    """The server as `uvicorn --factory` runs it: its settings error names the field, never a key."""
    env = {**os.environ, "CXPREDICT_CONFIG": str(tmp_path / "cxpredict.yaml"), "CXPREDICT_API_KEYS": keys}
    done = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "cxpredict.serving.api.app:create_app",
                           "--port", "0"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "SettingsError: server settings: api_keys: " in output, output
    assert "3x9q" not in output and "another-key" not in output

"""The console's and the docs' assets ship in the package and the pages point only at them (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cxpredict.serving.api.app import create_app
from cxpredict.serving.api.settings import ServingSettings


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    # No lifespan (no `with`): only the static routes are exercised, no model or store is needed.
    return TestClient(create_app(ServingSettings(config=tmp_path / "cxpredict.yaml")))


@pytest.mark.unit
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_their_assets_from_the_server(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text) + re.findall(r"""Url: ['"]([^'"]+)""", page.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        if asset.startswith("/ui/static/"):
            assert client.get(asset).status_code == 200, asset
    assert "fonts.googleapis" not in page.text and "cdn.jsdelivr" not in page.text


@pytest.mark.unit
@pytest.mark.parametrize("asset", ["vendor/chartjs/chart.umd.min.js", "vendor/swagger-ui/swagger-ui-bundle.js",
                                   "vendor/redoc/redoc.standalone.js", "console.js", "console.css"])
def test_static_assets_are_served(client: TestClient, asset: str) -> None:
    response = client.get(f"/ui/static/{asset}")
    assert response.status_code == 200 and len(response.content) > 500
    assert "cdn.redoc.ly" not in response.text  # ReDoc's logo is the server's own


@pytest.mark.unit
def test_docs_are_not_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/drivers/key" in paths
    assert not any(p.startswith(("/ui", "/docs", "/redoc")) for p in paths)

"""The OpenAPI document promises every status a route can answer with.

FastAPI itself answers 400 when a body's bytes are not JSON/UTF-8, before any route code runs; an
operation that takes a body and does not document 400 breaks clients generated from the spec (and
schemathesis' ST103 check, which found the gap on POST /v1/campaigns/{name}/results).
"""

from __future__ import annotations

from pathlib import Path

from cxpredict.serving.api.app import create_app
from cxpredict.serving.api.settings import ServingSettings

METHODS = ("get", "post", "put", "patch", "delete")


def _operations(tmp_path: Path) -> list[tuple[str, str, dict]]:
    spec = create_app(ServingSettings(config=tmp_path / "cxpredict.yaml")).openapi()
    return [(method.upper(), path, op) for path, item in spec["paths"].items()
            for method, op in item.items() if method in METHODS]


def test_every_operation_with_a_body_documents_400_and_422(tmp_path: Path) -> None:
    with_body = [(m, p, op) for m, p, op in _operations(tmp_path) if "requestBody" in op]
    assert len(with_body) >= 4, "the API has scores, simulations, campaign results and task close bodies"
    missing = [f"{m} {p}: {code}" for m, p, op in with_body for code in ("400", "422") if code not in op["responses"]]
    assert not missing, missing


def test_every_api_operation_documents_auth_errors(tmp_path: Path) -> None:
    api = [(m, p, op) for m, p, op in _operations(tmp_path) if p.startswith("/v1/")]
    missing = [f"{m} {p}" for m, p, op in api if not {"401", "403"} <= set(op["responses"])]
    assert not missing, missing

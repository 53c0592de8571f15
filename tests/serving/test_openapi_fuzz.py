"""Schemathesis against the live server's OpenAPI schema: whatever it sends, no 5xx (bounded examples).

Besides "no server error", responses must match their documented status codes, content types and
schemas. Positive-data acceptance is not checked: which features a customer needs is known only
once the model is loaded, so a schema-valid inline customer can rightly get a 422.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import SCORE_KEY, SIMULATE_KEY, Server

pytestmark = pytest.mark.api


@pytest.fixture()
def api_schema(api_server: Server):  # noqa: ANN201
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=35, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])
def test_call_api_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": SIMULATE_KEY}, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])


HOSTILE_BODIES = {
    "number beyond float range": b'{"customers": [{"features": {"tenure_months": 1' + b"0" * 400 + b'}}]}',
    "integer with 5000 digits": b'{"customers": [{"features": {"tenure_months": 1' + b"0" * 5000 + b'}}]}',
    "float beyond range": b'{"customers": [{"features": {"monthly_charge": 1e999}}]}',
    "deeply nested": ('{"customers": [{"features": {"plan": ' + "[" * 5000 + "]" * 5000 + "}}]}").encode(),
    "huge array": ('{"customers": [' + ",".join(['{"customer_id": "x"}'] * 20000) + "]}").encode(),
    "control characters": b'{"customers": [{"customer_id": "a\\u0000b\\u001f"}]}',
    "unicode": br'{"customers": [{"features": {"plan": "\ud800", "region": "\u65e5\u672c \u2713 \u202e"}}]}',
    "not JSON": b"\xff\xfe{",
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_score_hostile_body_never_server_error(api_server: Server, name: str) -> None:
    response = httpx.post(f"{api_server.url}/v1/scores", content=HOSTILE_BODIES[name], timeout=60,
                          headers={"X-API-Key": SCORE_KEY, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])

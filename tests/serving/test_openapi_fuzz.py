"""Schemathesis against the live server's OpenAPI schema: whatever it sends, no 5xx (bounded examples).

Besides "no server error", responses must match their documented status codes, content types and
schemas. Positive-data acceptance is not checked: which features a customer needs is known only
once the model is loaded, so a schema-valid inline customer can rightly get a 422.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import SIMULATE_KEY, Server

pytestmark = pytest.mark.api


@pytest.fixture()
def api_schema(api_server: Server):  # noqa: ANN201
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])
def test_call_api_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": SIMULATE_KEY}, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])

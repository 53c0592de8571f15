"""Shapes shared by every resource: errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorResponse(BaseModel):
    """A request that cannot be served (401, 403, 404, 413, 503)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": "unknown customer_id: 'C9999999'", "customer_ids": ["C9999999"]}]})

    detail: str
    customer_ids: list[str] | None = Field(None, description="the unknown ids, on 404")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where in the request: body / query / path, then field names")
    path: str = Field(description="the same, readable: customers[0].features.tenure_months")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """422: what is wrong with the request, one entry per field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": [{
        "loc": ["body", "customers", 0, "features", "tenure_months"], "path": "customers[0].features.tenure_months",
        "msg": "feature is required (send null when the value is unknown)", "type": "missing"}]}]})

    detail: list[FieldError]


AUTH_ERRORS: dict[int | str, dict] = {
    401: {"model": ErrorResponse, "description": "API key missing or unknown (when keys are configured)"},
    403: {"model": ErrorResponse, "description": "the API key lacks the route's scope"},
    503: {"model": ErrorResponse, "description": "model or customer store not loaded"},
}

# FastAPI answers 400 itself when a body's bytes are not UTF-8/JSON, before any route code runs; every
# operation that takes a body documents it (tests/unit/test_openapi_contract.py checks).
BAD_BODY: dict[int | str, dict] = {
    400: {"model": ErrorResponse, "description": "the body cannot be decoded (not JSON / not UTF-8)"},
}

"""Health and readiness."""

from __future__ import annotations

from pydantic import BaseModel


class HealthResponse(BaseModel):
    status: str


class ReadinessResponse(BaseModel):
    ready: bool
    model_version: str | None
    model_error: str | None
    store_loaded: bool
    store_error: str | None

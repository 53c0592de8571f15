"""Health and readiness."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HealthResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class ReadinessResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ready": True, "model_version": "3", "model_error": None, "store_loaded": True, "store_error": None}]})

    ready: bool
    model_version: str | None
    model_error: str | None
    store_loaded: bool
    store_error: str | None

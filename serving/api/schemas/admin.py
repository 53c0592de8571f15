"""Admin: model reloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class ReloadStatusModel(BaseModel):
    state: Literal["idle", "loading", "failed"]
    requested_at: datetime | None
    finished_at: datetime | None
    outcome: Literal["swapped", "unchanged", "refused", "failed"] | None
    version: str | None
    error: str | None


class ReloadResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "started": True, "serving_version": "3",
        "status": {"state": "loading", "requested_at": "2026-11-24T10:05:04Z", "finished_at": None,
                   "outcome": None, "version": None, "error": None},
    }]})

    started: bool
    serving_version: str | None
    status: ReloadStatusModel

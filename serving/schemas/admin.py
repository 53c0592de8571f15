"""Admin: model reloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class ReloadStatusModel(BaseModel):
    state: Literal["idle", "loading", "failed"]
    requested_at: datetime | None
    finished_at: datetime | None
    outcome: Literal["swapped", "unchanged", "refused", "failed"] | None
    version: str | None
    error: str | None


class ReloadResponse(BaseModel):
    started: bool
    serving_version: str | None
    status: ReloadStatusModel

"""Model: what is being served."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FeatureSchema(BaseModel):
    name: str
    kind: str = Field(description="numeric | categorical | boolean | date")
    categories: list[str] | None = None
    observed_range: list[float] | None = Field(None, description="min and max at training (days for dates)")


class ModelResponse(BaseModel):
    name: str
    version: str
    alias: str | None
    run_id: str
    loaded_at: datetime
    metrics: dict[str, float] = Field(description="training metrics (test_* on held-out rows)")
    features: list[FeatureSchema]
    outputs: list[str] = Field(description="the prediction names of a score")
    bands: dict[str, list[int]]
    top_band: str
    bottom_band: str
    causes: list[str]
    drivers: list[str]
    has_churn: bool

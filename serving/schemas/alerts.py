"""Alerts: silent customers most likely to be detractors or to churn, ranked by risk × value."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class CauseProbability(BaseModel):
    cause: str
    probability: float


class AlertItem(BaseModel):
    customer_id: str
    priority: float = Field(description="risk × value")
    risk: float = Field(description="max(P(bottom band), P(churn))")
    p_bottom_band: float
    churn_probability: float | None
    expected_score: float
    value: float
    top_causes: list[CauseProbability]


class AlertsResponse(BaseModel):
    model_name: str
    model_version: str
    computed_at: datetime
    risk_definition: str
    bottom_band: str
    value_column: str | None
    n_silent: int = Field(description="silent customers scored")
    alerts: list[AlertItem]

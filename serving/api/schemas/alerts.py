"""Alerts: silent customers most likely to be detractors or to churn, ranked by risk × value."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "cxpredict-demo", "model_version": "3", "computed_at": "2026-11-24T10:05:04Z",
        "risk_definition": "risk = max(P(bottom band), P(churn)); priority = risk × value",
        "bottom_band": "detractor", "value_column": "clv", "n_silent": 97012,
        "alerts": [{"customer_id": "C0001858", "priority": 4789.3, "risk": 0.479, "p_bottom_band": 0.479,
                    "churn_probability": 0.041, "expected_score": 6.1, "value": 10000.0,
                    "top_causes": [{"cause": "network", "probability": 0.49}, {"cause": "price", "probability": 0.31},
                                   {"cause": "coverage", "probability": 0.23}]}],
    }]})

    model_name: str
    model_version: str
    computed_at: datetime
    risk_definition: str
    bottom_band: str
    value_column: str | None
    n_silent: int = Field(description="silent customers scored")
    alerts: list[AlertItem]

"""Campaigns: recorded plans, their evaluation, and results posted back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CampaignSummary(BaseModel):
    name: str
    wave: int = Field(description="the campaign's wave in the campaigns history")
    created_at: str
    objective: str | None
    holdout: float | None = Field(description="share of the chosen customers kept as the control group")
    n_treated: int
    n_control: int
    expected_value_treated: float | None = Field(description="what the plan expected its treated customers to yield")
    usable_for_learning: bool = Field(description="false for a plan without a control group (holdout 0)")


class CampaignListResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"campaigns": [{
        "name": "winter", "wave": 2, "created_at": "2026-12-01T09:00:00", "objective": "value", "holdout": 0.1,
        "n_treated": 900, "n_control": 100, "expected_value_treated": 41250.0, "usable_for_learning": True}]}]})

    campaigns: list[CampaignSummary]


class CampaignResponse(BaseModel):
    """A plan's summary and, once results exist, the evaluation (`cxpredict campaign report --out x.json`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "winter", "wave": 2, "created_at": "2026-12-01T09:00:00",
        "settings": {"objective": "value", "holdout": 0.1, "seed": 42, "n_treated": 900, "n_control": 100},
        "evaluation": {"strategies": [{"strategy": "contract_upgrade", "verdict": "works", "n_treated": 300,
                                       "n_control": 33}], "groups": [], "totals": {"realised_value": 39100.0}},
        "verdicts": ["contract_upgrade: works; churn 11.0% treated vs 30.3% control (effect -0.193, ...)"],
    }]})

    name: str
    wave: int
    created_at: str
    settings: dict[str, Any] = Field(description="holdout, seed, objective, counts, balance (SMD per feature)")
    evaluation: dict[str, Any] | None = Field(
        description="per strategy and per (strategy, problem group): treated vs control churn and score with 95 % "
        "intervals, Qini / AUUC, expected vs realised value, verdict; null until results are posted",
    )
    verdicts: list[str] = Field(description="one plain-language line per strategy")


class CampaignResult(BaseModel):
    """What happened to one planned customer (at least one of churned / score)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1)
    churned: int | None = Field(None, ge=0, le=1, description="1 = left, 0 = stayed")
    score: int | None = Field(None, description="the follow-up survey score, on the config's scale")
    date: dt.date | None = Field(None, description="when the outcome was observed (default: today)")


class CampaignResultsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"results": [
        {"customer_id": "C0000042", "churned": 0, "score": 9, "date": "2026-12-20"}]}]})

    results: list[CampaignResult] = Field(min_length=1)


class CampaignResultsResponse(BaseModel):
    campaign: str
    wave: int
    rows: int
    treated: int
    control: int
    with_churn: int
    with_score: int
    contacted: dict[str, int] = Field(default_factory=dict,
                                      description="treated customers by the outcome of their front-line task")

"""Simulations: customers × retention strategies, ranked per customer, with a per-strategy summary."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cxpredict.serving.api.schemas.scores import CustomerInput

StrategyId = Annotated[str, Field(min_length=1, max_length=100)]


class SimulationRequest(BaseModel):
    """Customers (ids or inline features) and the strategies to try (the whole catalogue when omitted).

    Inline customers may carry the config's `value_column` among their features; without it their
    value is the median of the request's other customers (or 1 when no customer has one and the
    objective is not `value`).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "customers": [{"customer_id": "C0000042"}, {"customer_id": "C0000043"}],
        "strategies": ["price_discount", "contract_upgrade"], "objective": "value",
    }]})

    customers: list[CustomerInput] = Field(min_length=1, max_length=100_000)
    strategies: list[StrategyId] | None = Field(
        None, min_length=1, max_length=200, description="strategy ids of the catalogue; omit for all",
    )
    objective: Literal["value", "churn", "score"] = Field(
        "value", description="rank by expected value (ΔP(retained)·value − cost), fall in churn, or rise in score",
    )
    use_learned: bool = Field(True, description="use effects learned from randomised campaigns where they exist")


class StrategyEffect(BaseModel):
    """One strategy for one customer: the figures under it, their changes, and how they were obtained."""

    strategy: str
    method: Literal["simulated", "learned"] = Field(description="how the churn effect was obtained (= churn_method)")
    churn_method: Literal["simulated", "learned"] = Field(description="how the churn effect was obtained")
    score_method: Literal["simulated", "learned"] = Field(
        description="how the score effects were obtained: learned from follow-up scores of a campaign's two arms",
    )
    cost: float
    churn_probability: float
    delta_churn: float
    delta_churn_simulated: float = Field(description="the model's what-if, even where a learned effect is used")
    expected_score: float
    delta_expected_score: float
    p_top_band: float
    delta_p_top_band: float
    expected_value: float = Field(description="ΔP(retained) × value − cost")
    gain: float = Field(description="what the objective ranks by")


class Baseline(BaseModel):
    churn_probability: float
    expected_score: float
    p_top_band: float


class CustomerSimulation(BaseModel):
    customer_id: str | None
    value: float
    baseline: Baseline
    best_strategy: str = Field(description="the first ranked strategy with a positive gain, or `none`")
    strategies: list[StrategyEffect] = Field(description="eligible strategies, best first")


class StrategySummary(BaseModel):
    """One strategy over the request's customers (`none`: nobody targeted, the baseline)."""

    strategy: str
    method: str
    n_customers: int
    n_eligible: int
    cost: float
    expected_score_baseline: float
    expected_score_strategy: float
    delta_expected_score: float
    p_top_baseline: float
    p_top_strategy: float
    churn_baseline: float
    churn_strategy: float
    delta_churn: float
    delta_churn_simulated: float
    expected_total_value: float
    n_positive: int = Field(description="customers with a positive gain")
    n_best: int = Field(description="customers for whom it is the best strategy")


class SimulationResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "cxpredict-demo", "model_version": "3", "objective": "value", "top_band": "promoter",
        "notes": [],
        "customers": [{
            "customer_id": "C0000042", "value": 2400.0, "best_strategy": "contract_upgrade",
            "baseline": {"churn_probability": 0.31, "expected_score": 6.2, "p_top_band": 0.18},
            "strategies": [{
                "strategy": "contract_upgrade", "method": "learned", "churn_method": "learned",
                "score_method": "simulated", "cost": 30.0,
                "churn_probability": 0.22, "delta_churn": -0.09, "delta_churn_simulated": -0.12,
                "expected_score": 6.4, "delta_expected_score": 0.2, "p_top_band": 0.2, "delta_p_top_band": 0.02,
                "expected_value": 186.0, "gain": 186.0,
            }],
        }],
        "summary": [],
    }]})

    model_name: str
    model_version: str
    objective: str
    top_band: str
    notes: list[str]
    customers: list[CustomerSimulation]
    summary: list[StrategySummary]

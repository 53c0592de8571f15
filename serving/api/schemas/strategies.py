"""Strategies: the retention offer catalogue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in"]


class EligibilityRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    op: Op
    value: Any = None


class StrategyResponse(BaseModel):
    """One offer: who may get it and what it changes (set / multiply / add on feature columns)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "voice_half_price", "name": "Half-price domestic voice package", "cost": 5.0,
        "eligible": [{"column": "phone_service", "op": "==", "value": "Yes"}],
        "apply": {"monthly_charge": {"add": -5.0}},
    }]})

    id: str
    name: str
    cost: float = Field(ge=0)
    eligible: list[EligibilityRule] = Field(default_factory=list)
    apply: dict[str, dict[Literal["set", "multiply", "add"], Any]]


class StrategiesResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "strategies": StrategyResponse.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
    }]})

    strategies: list[StrategyResponse]

"""Tasks: alert-rule matches routed to an owner, tracked from open to closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["critical", "high", "medium"]
State = Literal["open", "acked", "closed"]
Outcome = Literal["contacted", "offer_accepted", "offer_declined", "unreachable", "not_needed"]


class TaskEvent(BaseModel):
    event_id: int
    at: datetime
    actor: str = Field(description="the API key's name, or the command that made the change")
    action: str = Field(description="created | acked | closed | resolved_by_model")
    from_state: str | None
    to_state: str | None
    outcome: str | None
    note: str | None


class Task(BaseModel):
    task_id: int
    customer_id: str
    rule_id: str
    level: Level
    basis: Literal["observed", "predicted"] = Field(description="observed: from the survey answer; predicted: model")
    owner_id: str
    reason: str = Field(description="why, in words: the rule's values, top drivers and likely causes")
    strategy_id: str | None
    strategy_name: str | None = Field(description="the suggested offer by name")
    expected_value: float | None = Field(description="of the suggested offer, in value_column units")
    p_bottom_band: float | None
    churn_probability: float | None
    value: float | None
    model_version: str | None
    state: State
    outcome: str | None = Field(description="set on close; resolved_by_model when the customer no longer matched")
    note: str | None
    created_at: datetime
    updated_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    version: int = Field(description="incremented by every change")


class TaskDetail(Task):
    events: list[TaskEvent] = Field(description="append-only history, oldest first")


class TaskPageResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tasks": [], "next_cursor": "dDEwMA"}]})

    tasks: list[Task]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class CloseTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "offer_accepted", "note": "took the one-year contract"}]})

    outcome: Outcome
    note: str | None = Field(None, max_length=2000)


class RuleCondition(BaseModel):
    column: str
    op: str
    value: Any


class AlertRuleItem(BaseModel):
    id: str
    name: str
    level: Level
    when: list[RuleCondition]
    population: str | None
    route_by: str | None
    owner: str | None
    basis: Literal["observed", "predicted"]
    applies_to: Literal["all", "surveyed", "silent"]


class OwnerItem(BaseModel):
    owner_id: str
    name: str
    contact: str
    covers: list[str]


class AlertRulesResponse(BaseModel):
    source: str = Field(description="the rules file")
    rules: list[AlertRuleItem]
    owners: list[OwnerItem]

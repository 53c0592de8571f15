"""Drivers: the SHAP key-driver tables of the served model (global, or per segment value)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DriverRow(BaseModel):
    """One feature's weight as a driver of one target (and segment), from a stratified sample."""

    model_config = ConfigDict(extra="allow")

    target: str
    feature: str
    rank: int
    mean_abs_shap: float
    se_mean_abs_shap: float | None = None
    share: float
    direction: str | None = None
    space: str | None = None
    segment: str | None = None
    highlight: bool | None = Field(None, description="its rank differs most between segments")


class DriversResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "cxpredict-demo", "model_version": "3", "run_id": "4be1c0", "computed_at": "2026-11-24T10:05Z",
        "segment_column": None, "target": "detractor",
        "note": "SHAP drivers describe how the model's predictions move with each customer column...",
        "drivers": [{"target": "detractor", "feature": "network_quality", "rank": 1, "mean_abs_shap": 0.41,
                     "se_mean_abs_shap": 0.01, "share": 0.23, "direction": "higher → lower", "space": "log-odds"}],
    }]})

    model_name: str
    model_version: str
    run_id: str = Field(description="the `explain` MLflow run the tables come from")
    computed_at: datetime
    segment_column: str | None
    target: str | None
    note: str
    drivers: list[DriverRow]


class KeyDriverRow(BaseModel):
    """One rated attribute's importance for the score and its performance, in one segment ("all": everyone)."""

    segment: str
    attribute: str
    rank: int
    importance: float = Field(description="Shapley share of the R² of the score on the ratings (sums to 1)")
    importance_low: float | None = Field(None, description="2.5th bootstrap percentile of the importance")
    importance_high: float | None = Field(None, description="97.5th bootstrap percentile of the importance")
    r2_contribution: float
    performance: float = Field(description="mean rating")
    performance_low: float | None = None
    performance_high: float | None = None
    quadrant: str = Field(description="fix first | maintain | lower priority | over-invested")
    respondents: int
    r2: float


class KeyDriversResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "cxpredict-demo", "model_version": "3", "run_id": "4be1c0", "computed_at": "2026-11-24T10:05Z",
        "segment_column": None, "method": "Shapley decomposition of R² ...", "quadrants": {"fix first": "..."},
        "key_drivers": [{"segment": "all", "attribute": "rating_price", "rank": 1, "importance": 0.52,
                         "importance_low": 0.49, "importance_high": 0.55, "r2_contribution": 0.21,
                         "performance": 5.1, "performance_low": 5.0, "performance_high": 5.2,
                         "quadrant": "fix first", "respondents": 2900, "r2": 0.4}],
    }]})

    model_name: str
    model_version: str
    run_id: str = Field(description="the `explain` MLflow run the table comes from")
    computed_at: datetime
    segment_column: str | None
    method: str
    quadrants: dict[str, str]
    key_drivers: list[KeyDriverRow]

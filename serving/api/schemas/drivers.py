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

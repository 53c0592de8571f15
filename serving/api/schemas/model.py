"""Model: what is being served."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cxpredict.models.registry import CHAMPION


class FeatureSchema(BaseModel):
    name: str
    kind: str = Field(description="numeric | categorical | boolean | date")
    categories: list[str] | None = None
    observed_range: list[float] | None = Field(None, description="min and max at training (days for dates)")


class ModelResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "cxpredict-demo", "version": "3", "alias": CHAMPION, "run_id": "a9e720e731d74a2f",
        "loaded_at": "2026-11-24T10:05:04Z", "metrics": {"test_macro_f1": 0.52, "test_churn_roc_auc": 0.81},
        "features": [{"name": "contract", "kind": "categorical", "categories": ["month_to_month", "one_year"]},
                     {"name": "tenure_months", "kind": "numeric", "observed_range": [0, 72]}],
        "outputs": ["p_detractor", "p_passive", "p_promoter", "expected_score", "churn_probability"],
        "bands": {"detractor": [0, 6], "passive": [7, 8], "promoter": [9, 10]}, "top_band": "promoter",
        "bottom_band": "detractor", "causes": ["network", "price"], "drivers": ["rating_network"],
        "has_churn": True,
    }]})

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
    population_notes: list[str] = Field(
        default_factory=list, description="the population score's diagnostics in words: shadow-variable "
        "identification, respondents vs silent on churn, sign-flip odds ratio, headline interval basis "
        "(figures under `metrics`: population_index_headline_*, population_index_shadow*, "
        "population_index_dr_lambda_*)")

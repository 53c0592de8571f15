"""Scores: per-customer predictions, inline features or customers from the store."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.functional_validators import BeforeValidator
from pydantic.json_schema import WithJsonSchema

MAX_TEXT = 200


def _feature_value(value: Any) -> Any:
    """A raw feature value: number, text, boolean or null (NaN and infinities are not values)."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ValueError(f"text longer than {MAX_TEXT} characters")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinite numbers are not allowed (send null for a missing value)")
        return value
    raise ValueError("a feature value must be a number, text, a boolean or null")


FeatureValue = Annotated[
    Any,
    BeforeValidator(_feature_value),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "maxLength": MAX_TEXT},
                              {"type": "boolean"}, {"type": "null"}]}),
]
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters
CustomerId = Annotated[str, Field(min_length=1, max_length=100, pattern=ID_PATTERN)]

EXAMPLE_FEATURES = {
    "segment": "consumer", "region": "north", "plan": "standard", "contract": "month_to_month",
    "internet_type": "fiber", "phone_service": "Yes", "payment_method": "electronic_check",
    "paperless_billing": True, "app_user": "No", "tenure_months": 7, "monthly_charge": 89.5,
    "data_usage_gb": 42.0, "dropped_calls_per_month": 2.1, "network_quality": 55.0,
    "support_tickets_90d": 2, "unresolved_tickets": 1, "age": 38, "signup_date": "2026-03-30",
    "last_ticket_date": "2026-10-02",
}


class CustomerInput(BaseModel):
    """One customer: a `customer_id` to look up in the store, or inline `features` (id then only echoed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"customer_id": "C0000042"}, {"customer_id": "new-1", "features": EXAMPLE_FEATURES}],
        "anyOf": [{"required": ["customer_id"]}, {"required": ["features"]}],
    })

    customer_id: CustomerId | None = None
    features: dict[Annotated[str, Field(max_length=MAX_TEXT)], FeatureValue] | None = Field(
        None, description="every model feature by name (null when unknown); unknown categories score as unseen",
    )

    @model_validator(mode="after")
    def _id_or_features(self) -> CustomerInput:
        if self.customer_id is None and self.features is None:
            raise ValueError("give a customer_id (looked up in the store) or inline features")
        return self


class ScoreRequest(BaseModel):
    """1 to N customers (N is the server's max_customers, 1,000 by default)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"customers": [{"customer_id": "C0000042"}, {"features": EXAMPLE_FEATURES}]}],
    })

    customers: list[CustomerInput] = Field(min_length=1, max_length=100_000)


class Contribution(BaseModel):
    """One feature's SHAP contribution to a target, in the target's additive space."""

    feature: str
    value: str | None = Field(description="the customer's value, as text (null when missing)")
    contribution: float


class TargetExplanation(BaseModel):
    """The k largest contributions to one target; base + all contributions = the prediction in `space`."""

    explains: str = Field(description="the prediction explained (a name of `predictions`)")
    space: str = Field(description="log-odds, score points or rating points")
    base: float = Field(description="the model's average output in that space")
    contributions: list[Contribution]


class Uncertainty(BaseModel):
    """How sure the scores are (propensity-weighted conformal calibration), as in `cxpredict score`."""

    prediction_set: list[str] = Field(description="bands that cannot be ruled out at the model's coverage level")
    set_size: int
    expected_score_low: float
    expected_score_high: float
    low_support: bool = Field(description="the customer looks unlike the survey respondents: trust less")
    response_propensity: float | None = Field(description="P(answering the survey | operational data)")


class CustomerScore(BaseModel):
    """The same figures as a row of `cxpredict score`, plus where they came from."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "customer_id": "C0000042", "surveyed": False, "observed_score": None, "model_version": "3",
        "predictions": {"p_detractor": 0.41, "p_passive": 0.37, "p_promoter": 0.22, "expected_score": 6.8,
                        "p_cause_network": 0.32, "pred_rating_network": 6.1, "churn_probability": 0.18},
        "problem_group": "network", "problem_lift": 2.1,
        "uncertainty": {"prediction_set": ["detractor", "passive"], "set_size": 2, "expected_score_low": 4.1,
                        "expected_score_high": 9.0, "low_support": False, "response_propensity": 0.04},
    }]})

    customer_id: str | None
    surveyed: bool | None = Field(description="answered the survey (null for inline customers)")
    observed_score: int | None = Field(description="the survey score, when surveyed")
    model_version: str
    predictions: dict[str, float] = Field(
        description="p_<band>, expected_score, p_cause_<code>, pred_<driver>, churn_probability",
    )
    problem_group: str | None = Field(
        None, description="the cause most raised over its base rate among respondents, or 'none' (null without "
        "cause models)",
    )
    problem_lift: float | None = Field(None, description="P(cause) / the cause's share among respondents")
    uncertainty: Uncertainty | None = Field(None, description="null for models trained without calibration")
    explanations: dict[str, TargetExplanation] | None = Field(
        None, description="with ?explain=k: per target (bottom band, expected_score, churn) the k largest drivers",
    )


class ScoreResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "cxpredict-demo", "model_version": "3",
        "scores": CustomerScore.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
    }]})

    model_name: str
    model_version: str
    scores: list[CustomerScore]


class CustomerScoreResponse(CustomerScore):
    """One stored customer's score."""

    model_name: str

"""Campaigns: GET /v1/campaigns, GET /v1/campaigns/{name}, POST /v1/campaigns/{name}/results (scope admin).

The same checks as `cxpredict campaign results` (features/campaigns.py): an unknown campaign is a
404, a bad row a 422 naming the field (`results[3].score`), and nothing is appended unless every
row is good.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError

from cxpredict.features.campaigns import (
    CampaignError,
    PlanStore,
    append_campaign_results,
    churn_column,
)
from cxpredict.models.campaigns import campaign_evaluation, verdict_sentence
from cxpredict.serving.api.alerting import campaign_contact_outcomes
from cxpredict.serving.api.deps import ConfigDep, SettingsDep, StoreDep
from cxpredict.serving.api.errors import field_error
from cxpredict.serving.api.schemas.campaigns import (
    CampaignListResponse,
    CampaignResponse,
    CampaignResultsRequest,
    CampaignResultsResponse,
    CampaignSummary,
)
from cxpredict.serving.api.schemas.common import AUTH_ERRORS, BAD_BODY, ErrorResponse, ValidationErrorResponse
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope, store_url

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=AUTH_ERRORS)
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no campaign of that name"}}


def _not_found(err: CampaignError) -> HTTPException:
    return HTTPException(status_code=404, detail=str(err).split(": ", 1)[-1])


@router.get("", response_model=CampaignListResponse, dependencies=[Depends(require_scope(Scope.score))],
            summary="Recorded campaign plans, oldest wave first")
def list_campaigns(config: ConfigDep, settings: SettingsDep) -> CampaignListResponse:
    store = PlanStore(store_url(settings, config))
    try:
        campaigns = store.campaigns()
    finally:
        store.close()
    return CampaignListResponse(campaigns=[CampaignSummary(
        name=c.name, wave=c.wave, created_at=c.created_at.isoformat(), objective=c.settings.get("objective"),
        holdout=c.settings.get("holdout"), n_treated=int(c.settings.get("n_treated", 0)),
        n_control=int(c.settings.get("n_control", 0)), expected_value_treated=c.settings.get("expected_value_treated"),
        usable_for_learning=bool(c.settings.get("usable_for_learning", True)),
    ) for c in campaigns])


@router.get("/{name}", response_model=CampaignResponse, dependencies=[Depends(require_scope(Scope.score))],
            responses=NOT_FOUND, summary="A plan's summary and, when results exist, its evaluation")
def get_campaign(name: str, config: ConfigDep, settings: SettingsDep) -> CampaignResponse:
    try:
        document = campaign_evaluation(config, name, store_url(settings, config))
    except CampaignError as err:
        if err.unknown_campaign:
            raise _not_found(err) from None
        raise
    evaluation = document["evaluation"]
    verdicts = [verdict_sentence(r) for r in evaluation["strategies"]] if evaluation else []
    return CampaignResponse(**document, verdicts=verdicts)


@router.post("/{name}/results", response_model=CampaignResultsResponse, status_code=201,
             dependencies=[Depends(require_scope(Scope.admin))],
             responses={**NOT_FOUND, **BAD_BODY,
                        422: {"model": ValidationErrorResponse, "description": "a bad result row"}},
             summary="Append what happened to planned customers to the campaigns history (all rows or none)")
async def post_results(
    name: str, body: CampaignResultsRequest, config: ConfigDep, settings: SettingsDep, store: StoreDep,
) -> CampaignResultsResponse:
    churn, score = churn_column(config), config.score.column
    frame = pd.DataFrame({
        config.id_column: [r.customer_id for r in body.results],
        churn: pd.array([r.churned for r in body.results], dtype="Int64"),
        score: pd.array([r.score for r in body.results], dtype="Int64"),
        "date": [r.date.isoformat() if r.date else None for r in body.results],
    })
    known = None
    if store.ready:  # tell an unknown customer from one outside the plan, as the CLI does
        ids = list(dict.fromkeys(frame[config.id_column]))
        found = await asyncio.to_thread(store.get, ids)
        known = set(found)
    fields = {config.id_column: "customer_id", churn: "churned", score: "score", "date": "date"}
    url = store_url(settings, config)
    try:
        outcomes = await asyncio.to_thread(campaign_contact_outcomes, url, name, settings.store_table)
        report = await asyncio.to_thread(append_campaign_results, config, name, frame, url, "request body", known,
                                         outcomes)
    except CampaignError as err:
        if err.unknown_campaign:
            raise _not_found(err) from None
        field = fields.get(err.column or "", "results")
        message = str(err).split(": ", 1)[-1]
        locations = [("body", "results", row, field) for row in err.rows[:10]] or [("body", "results")]
        raise RequestValidationError([field_error(loc, message, "value_error") for loc in locations]) from None
    return CampaignResultsResponse(**{k: v for k, v in asdict(report).items() if k != "path"})

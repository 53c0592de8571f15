"""Scores: POST /v1/scores for 1..N customers, inline features or ids from the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from cxpredict.serving.api.deps import ModelDep, SettingsDep, StoreDep
from cxpredict.serving.api.schemas.common import AUTH_ERRORS, BAD_BODY, ErrorResponse, ValidationErrorResponse
from cxpredict.serving.api.schemas.scores import ScoreRequest, ScoreResponse
from cxpredict.serving.api.scoring import check_explain, resolve_customers, score_rows
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/scores", tags=["scores"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)

ExplainQuery = Annotated[int, Query(ge=0, le=50, description="add the k largest SHAP drivers per target "
                                    "(at most the server's explain_max, 10 by default)")]

ERRORS = {
    **BAD_BODY,
    404: {"model": ErrorResponse, "description": "a customer_id is not in the store"},
    422: {"model": ValidationErrorResponse, "description": "bad input, with the field path"},
    413: {"model": ErrorResponse, "description": "request body above the server's limit"},
}


@router.post("", response_model=ScoreResponse, responses=ERRORS, summary="Score 1..N customers")
def score_customers(body: ScoreRequest, request: Request, model: ModelDep, store: StoreDep,
                    settings: SettingsDep, explain: ExplainQuery = 0) -> ScoreResponse:
    """Per customer: band probabilities, expected score, cause probabilities, driver ratings, churn,
    the prediction set and interval; with `?explain=k` the k largest SHAP drivers per headline target."""
    check_explain(explain, settings.explain_max)
    customers = resolve_customers(body.customers, model, store, settings.max_customers)
    rows = score_rows(model, customers, explain)
    request.app.state.metrics.customers_scored.inc(len(rows))
    return ScoreResponse.model_validate(
        {"model_name": model.loaded.model_name, "model_version": model.version, "scores": rows}
    )

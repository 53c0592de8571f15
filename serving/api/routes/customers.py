"""Customers: GET /v1/customers/{customer_id}/score for one stored customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from cxpredict.serving.api.deps import ModelDep, SettingsDep, StoreDep
from cxpredict.serving.api.routes.scores import ERRORS, ExplainQuery
from cxpredict.serving.api.schemas.common import AUTH_ERRORS
from cxpredict.serving.api.schemas.scores import ID_PATTERN, CustomerInput, CustomerScoreResponse
from cxpredict.serving.api.scoring import check_explain, resolve_customers, score_rows
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)


@router.get("/{customer_id}/score", response_model=CustomerScoreResponse, responses=ERRORS,
            summary="Score one stored customer")
def score_customer(customer_id: Annotated[str, Path(min_length=1, max_length=100, pattern=ID_PATTERN)],
                   request: Request, model: ModelDep, store: StoreDep, settings: SettingsDep,
                   explain: ExplainQuery = 0) -> CustomerScoreResponse:
    check_explain(explain, settings.explain_max)
    customers = resolve_customers([CustomerInput(customer_id=customer_id)], model, store, 1, loc=("path",))
    row = score_rows(model, customers, explain)[0]
    request.app.state.metrics.customers_scored.inc()
    return CustomerScoreResponse.model_validate({**row, "model_name": model.loaded.model_name})

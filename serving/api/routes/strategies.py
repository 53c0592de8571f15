"""Strategies: GET /v1/strategies, the retention offer catalogue."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from cxpredict.serving.api.schemas.common import AUTH_ERRORS
from cxpredict.serving.api.schemas.strategies import StrategiesResponse
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/strategies", tags=["strategies"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)


@router.get("", response_model=StrategiesResponse, summary="The strategy catalogue")
async def list_strategies(request: Request) -> StrategiesResponse:
    return StrategiesResponse.model_validate({"strategies": [s.model_dump() for s in request.app.state.strategies]})

"""Admin: POST /v1/admin/reload loads what the alias points to in the background and swaps it in."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from cxpredict.serving.api.deps import ManagerDep
from cxpredict.serving.api.schemas.admin import ReloadResponse
from cxpredict.serving.api.schemas.common import AUTH_ERRORS
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_scope(Scope.admin))],
                   responses=AUTH_ERRORS)


def _response(manager: ManagerDep, started: bool) -> ReloadResponse:
    current = manager.current
    return ReloadResponse.model_validate({
        "started": started, "serving_version": current.version if current else None,
        "status": asdict(manager.status),
    })


@router.post("/reload", response_model=ReloadResponse, status_code=202,
             responses={409: {"model": ReloadResponse, "description": "a reload is already running"}},
             summary="Reload the model the alias points to (background; the old one serves meanwhile)")
async def reload_model(
    manager: ManagerDep,
    force: Annotated[bool, Query(description="reload even when the alias still points to the served version")]
    = False,
) -> JSONResponse:
    started, _ = manager.reload_in_background(force=force)
    body = _response(manager, started)
    return JSONResponse(body.model_dump(mode="json"), status_code=202 if started else 409)


@router.get("/reload", response_model=ReloadResponse, summary="Status of the last reload")
async def reload_status(manager: ManagerDep) -> ReloadResponse:
    return _response(manager, False)

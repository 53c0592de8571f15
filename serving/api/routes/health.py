"""Liveness, readiness and Prometheus metrics: open even when API keys are configured."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cxpredict.serving.api.deps import ManagerDep, StoreDep
from cxpredict.serving.api.schemas.health import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="The process is up")
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadinessResponse, summary="Model and customer store are loaded",
            responses={503: {"model": ReadinessResponse, "description": "not ready"}})
async def readyz(manager: ManagerDep, store: StoreDep) -> JSONResponse:
    model = manager.current
    body = ReadinessResponse(
        ready=model is not None and store.ready,
        model_version=model.version if model else None,
        model_error=None if model else (manager.status.error or "model not loaded"),
        store_loaded=store.ready,
        store_error=store.error,
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

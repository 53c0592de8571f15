"""Alerts: GET /v1/alerts, silent customers to call first (risk × value), with their top causes."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cxpredict.serving.api.alerts import RISK_DEFINITION, top_causes
from cxpredict.serving.api.deps import ConfigDep, ModelDep, SettingsDep
from cxpredict.serving.api.model import ModelNotReady
from cxpredict.serving.api.schemas.alerts import AlertsResponse
from cxpredict.serving.api.schemas.common import AUTH_ERRORS, ErrorResponse
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)


@router.get("", response_model=AlertsResponse, summary="Silent customers most at risk, by risk × value",
            responses={503: {"model": ErrorResponse, "description": "store not loaded"}})
def list_alerts(
    model: ModelDep, config: ConfigDep, settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="how many (at most the server's alerts_pool)")] = 100,
    min_value: Annotated[float | None, Query(ge=0, le=1e15, description="only customers worth at least this")]
    = None,
) -> AlertsResponse:
    """Computed once per loaded model over every silent customer of the store; recomputed on swap."""
    alerts = model.alerts
    if alerts is None:
        raise ModelNotReady("alerts need the customer store; run `cxpredict store load` and reload")
    rows = alerts.top(min(limit, settings.alerts_pool), min_value)
    codes = list(model.bundle.cause_boosters)
    items = [
        {
            **{k: row[k] for k in ("customer_id", "priority", "risk", "p_bottom_band", "expected_score", "value")},
            "churn_probability": None if math.isnan(row["churn_probability"]) else row["churn_probability"],
            "top_causes": [{"cause": c, "probability": p} for c, p in top_causes(row, codes)],
        }
        for row in rows.to_dict("records")
    ]
    return AlertsResponse.model_validate({
        "model_name": model.loaded.model_name, "model_version": model.version, "computed_at": alerts.computed_at,
        "risk_definition": RISK_DEFINITION, "bottom_band": model.bundle.bottom_band,
        "value_column": config.value_column, "n_silent": alerts.n_silent, "alerts": items,
    })

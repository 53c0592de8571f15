"""Drivers: GET /v1/drivers?target=&segment=, the served model's SHAP key-driver tables."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cxpredict.models.explain import available_targets
from cxpredict.serving.api.deps import ModelDep
from cxpredict.serving.api.driver_catalogue import NOTE, DriversNotFound
from cxpredict.serving.api.errors import field_error
from cxpredict.serving.api.schemas.common import AUTH_ERRORS, ErrorResponse
from cxpredict.serving.api.schemas.drivers import DriversResponse
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/drivers", tags=["drivers"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)

Name = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.get("", response_model=DriversResponse, summary="Key drivers of the served model (global or per segment)",
            responses={404: {"model": ErrorResponse, "description": "no driver analysis of this model yet"}})
def list_drivers(model: ModelDep, target: Name = None, segment: Name = None) -> DriversResponse | JSONResponse:
    """The tables of the latest `cxpredict explain` run for the served version; `segment` names the
    segment column (`cxpredict explain --segment-by COLUMN`)."""
    targets = [t.name for t in available_targets(model.bundle)]
    if target is not None and target not in targets:
        raise RequestValidationError([field_error(("query", "target"), f"unknown target; targets are {targets}",
                                                  "unknown_target")])
    assert model.drivers is not None
    try:
        tables = model.drivers.get(segment)
    except DriversNotFound as err:
        return JSONResponse({"detail": str(err)}, status_code=404)
    table = tables.table if target is None else tables.table[tables.table["target"] == target]
    if table.empty:
        return JSONResponse({"detail": f"the driver analysis (run {tables.run_id}) did not explain '{target}'"},
                            status_code=404)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]
    return DriversResponse.model_validate({
        "model_name": model.loaded.model_name, "model_version": model.version, "run_id": tables.run_id,
        "computed_at": tables.computed_at, "segment_column": tables.segment_column, "target": target,
        "note": NOTE, "drivers": rows,
    })

"""Model: GET /v1/model, what is being served (version, metrics, feature schema)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cxpredict.serving.api.deps import ModelDep
from cxpredict.serving.api.schemas.common import AUTH_ERRORS
from cxpredict.serving.api.schemas.model import ModelResponse
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope

router = APIRouter(prefix="/v1/model", tags=["model"], dependencies=[Depends(require_scope(Scope.score))],
                   responses=AUTH_ERRORS)


@router.get("", response_model=ModelResponse, summary="The model being served")
async def describe_model(model: ModelDep) -> ModelResponse:
    bundle = model.bundle
    ranges = getattr(bundle.pipeline, "ranges_", {})  # pipelines fitted before ranges were kept have none
    features = [{**f, **({"observed_range": list(ranges[f["name"]])} if f["name"] in ranges else {})}
                for f in bundle.pipeline.schema()]
    return ModelResponse.model_validate({
        "name": model.loaded.model_name, "version": model.version, "alias": model.loaded.alias,
        "run_id": model.loaded.run_id, "loaded_at": model.loaded_at,
        "metrics": bundle.metadata.get("metrics", {}), "features": features,
        "outputs": bundle.output_columns, "bands": {k: list(v) for k, v in bundle.bands.items()},
        "top_band": bundle.top_band, "bottom_band": bundle.bottom_band,
        "causes": list(bundle.cause_boosters), "drivers": list(bundle.driver_boosters),
        "has_churn": bundle.churn_booster is not None,
        "population_notes": bundle.metadata.get("population_notes", []),  # bundles before issue 17 have none
    })

"""Simulations: POST /v1/simulations, customers × strategies ranked per customer, plus a per-strategy summary."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from cxpredict.features.config import ConfigError
from cxpredict.serving.api.deps import ConfigDep, ModelDep, SettingsDep, StoreDep
from cxpredict.serving.api.model import ModelNotReady
from cxpredict.serving.api.routes.scores import ERRORS
from cxpredict.serving.api.schemas.common import AUTH_ERRORS
from cxpredict.serving.api.schemas.simulations import SimulationRequest, SimulationResponse
from cxpredict.serving.api.scoring import resolve_customers
from cxpredict.serving.api.security import require_scope
from cxpredict.serving.api.settings import Scope
from cxpredict.serving.api.simulating import choose_strategies, simulate_request

router = APIRouter(prefix="/v1/simulations", tags=["simulations"],
                   dependencies=[Depends(require_scope(Scope.simulate))], responses=AUTH_ERRORS)


@router.post("", response_model=SimulationResponse, responses=ERRORS,
             summary="Rank retention strategies for 1..N customers")
def simulate_strategies(body: SimulationRequest, request: Request, model: ModelDep, store: StoreDep,
                        settings: SettingsDep, config: ConfigDep) -> SimulationResponse:
    """For each customer and each eligible strategy: the figures under the strategy, their change, the
    expected value ΔP(retained)·value − cost, and whether the effect was `simulated` (the model's
    what-if, an association) or `learned` from a randomised campaign."""
    if model.catalogue_error is not None:
        raise ModelNotReady(model.catalogue_error)
    strategies = choose_strategies(request.app.state.strategies, body.strategies)
    customers = resolve_customers(body.customers, model, store, settings.max_customers)
    try:
        result = simulate_request(model, customers, strategies, body.objective, config.value_column,
                                  body.use_learned)
    except ConfigError as err:  # the model or catalogue cannot simulate (e.g. no churn model)
        raise ModelNotReady(str(err)) from None
    return SimulationResponse.model_validate(result)

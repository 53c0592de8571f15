"""Dependencies as Annotated aliases: what a route needs, taken from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cxpredict.features.config import CxConfig
from cxpredict.serving.api.model import ModelManager, ServingModel
from cxpredict.serving.api.settings import ServingSettings
from cxpredict.serving.api.store import CustomerStore


# async: trivial look-ups that should not cost a thread-pool hop per request.
async def get_settings(request: Request) -> ServingSettings:
    return request.app.state.settings


async def get_config(request: Request) -> CxConfig:
    return request.app.state.config


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.models


async def get_model(request: Request) -> ServingModel:
    """The model current when the request arrived; it serves the whole request even if a swap happens."""
    return request.app.state.models.get()


async def get_store(request: Request) -> CustomerStore:
    return request.app.state.store


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
ConfigDep = Annotated[CxConfig, Depends(get_config)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ModelDep = Annotated[ServingModel, Depends(get_model)]
StoreDep = Annotated[CustomerStore, Depends(get_store)]

"""API keys with scopes. With no key configured the API is open; with keys every /v1 route needs one."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cxpredict.serving.api.settings import Scope, ServingSettings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (or Authorization: Bearer)")
bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def find_scopes(settings: ServingSettings, presented: str) -> list[Scope] | None:
    """Scopes of a presented key, comparing in constant time against every configured key."""
    found: list[Scope] | None = None
    for key, scopes in settings.api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = scopes
    return found


def require_scope(scope: Scope) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through only with a key holding `scope` (when keys are configured)."""

    async def check(
        request: Request,
        header_key: Annotated[str | None, Depends(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        settings: ServingSettings = request.app.state.settings
        if not settings.auth_enabled:
            return
        presented = header_key or (bearer_key.credentials if bearer_key else None)
        if not presented:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "API key required (X-API-Key header)",
                                headers={"WWW-Authenticate": "Bearer"})
        scopes = find_scopes(settings, presented)
        if scopes is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        if scope not in scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the '{scope.value}' scope")

    return check

"""API keys with scopes. With no key configured the API is open; with keys every /v1 route needs one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cxpredict.serving.api.settings import ApiKeyEntry, Scope, ServingSettings, key_entry

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (or Authorization: Bearer)")
bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's name (never the key) and the owner it is restricted to, if any."""

    name: str
    owner: str | None = None


ANONYMOUS = Caller("anonymous")


def key_name(key: str, entry: ApiKeyEntry) -> str:
    """The name written into task events: the configured one, else a short hash (the key itself never).

    For a key given as `key_sha256` the mapping's key is a label, not a secret: it is the name.
    """
    if entry.name:
        return entry.name
    return key if entry.key_sha256 else f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def find_key(settings: ServingSettings, presented: str) -> tuple[str, ApiKeyEntry] | None:
    """The configured key matching a presented one, comparing in constant time against every key
    (plain keys against the key, `key_sha256` entries against the presented key's SHA-256)."""
    found: tuple[str, ApiKeyEntry] | None = None
    digest = hashlib.sha256(presented.encode()).hexdigest().encode()
    for key, value in settings.api_keys.items():
        entry = key_entry(value)
        hashed = entry.key_sha256 is not None
        expected, given = (entry.key_sha256.encode(), digest) if hashed else (key.encode(), presented.encode())
        if hmac.compare_digest(expected, given):
            found = (key, entry)
    return found


def find_scopes(settings: ServingSettings, presented: str) -> list[Scope] | None:
    """Scopes of a presented key (with the scopes they imply)."""
    found = find_key(settings, presented)
    return None if found is None else sorted(found[1].granted())


def _authorise(request: Request, scope: Scope, header_key: str | None,
               bearer_key: HTTPAuthorizationCredentials | None) -> Caller:
    settings: ServingSettings = request.app.state.settings
    if not settings.auth_enabled:
        return ANONYMOUS
    presented = header_key or (bearer_key.credentials if bearer_key else None)
    if not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "API key required (X-API-Key header)",
                            headers={"WWW-Authenticate": "Bearer"})
    found = find_key(settings, presented)
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    key, entry = found
    if scope not in entry.granted():
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the '{scope.value}' scope")
    return Caller(key_name(key, entry), entry.owner)


def require_scope(scope: Scope) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through only with a key holding `scope` (when keys are configured)."""

    async def check(
        request: Request,
        header_key: Annotated[str | None, Depends(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _authorise(request, scope, header_key, bearer_key)

    return check


def require_caller(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    """Like `require_scope`, and hands the route the caller (name for events, owner restriction)."""

    async def check(
        request: Request,
        header_key: Annotated[str | None, Depends(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        return _authorise(request, scope, header_key, bearer_key)

    return check

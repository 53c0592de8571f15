"""Exception handlers: bad input is a 4xx with the field path, never a 500; logs carry no feature values."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxpredict.serving.api.model import ModelNotReady
from cxpredict.serving.api.store import StoreError

logger = logging.getLogger(__name__)


class UnknownCustomers(LookupError):
    """Customer ids that are not in the store (404)."""

    def __init__(self, ids: Sequence[str]):
        super().__init__(f"unknown customer_id: {', '.join(repr(i) for i in ids[:20])}")
        self.ids = list(ids)


def field_error(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One 422 entry in FastAPI's shape (loc / msg / type)."""
    return {"loc": tuple(loc), "msg": msg, "type": kind}


def readable_path(loc: Sequence[Any]) -> str:
    """('body', 'customers', 0, 'features', 'age') -> 'customers[0].features.age'."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or (str(loc[0]) if loc else "")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The submitted input is not echoed back ("input" in FastAPI's default): requests carry customer data.
    detail = [
        {"loc": list(e.get("loc", ())), "path": readable_path(e.get("loc", ())), "msg": e.get("msg", ""),
         "type": e.get("type", "value_error")}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _unknown_customers(request: Request, exc: UnknownCustomers) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc), "customer_ids": exc.ids})


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


class SafeErrorsMiddleware:
    """Turns an unhandled exception into a 500 and logs it without its message.

    Exception messages can quote input (pydantic's `input_value`, pandas errors), and the server's
    default handler logs them whole; here only the type and the frames are logged, and the
    exception does not travel further up.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", "<unmatched>")
            frames = "".join(traceback.format_tb(exc.__traceback__))
            logger.error("unhandled %s on %s %s\n%s", type(exc).__name__, scope.get("method"), route, frames)
            if not started:
                response = JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__})"})
                await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownCustomers, _unknown_customers)  # type: ignore[arg-type]
    app.add_exception_handler(ModelNotReady, _not_ready)
    app.add_exception_handler(StoreError, _not_ready)

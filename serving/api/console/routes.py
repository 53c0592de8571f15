"""The console's pages at /ui: server-rendered Jinja2 templates, charts drawn in the browser from embedded JSON.

The API key is entered once on /ui/login and kept in an HttpOnly, SameSite=Strict cookie; every
page checks the key's scopes on the server (pages need `score`; the best offer and the strategy
ranking need `simulate`), exactly as the /v1 routes do. The pages call the same functions as the
API, so nothing shown here can differ from the JSON. Every table has a CSV download at
`/ui/<page>.csv?table=<name>` built from the same page data.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cxpredict.serving.api.console.pages import (
    ConsoleCache,
    Page,
    alerts_page,
    customer_page,
    customer_tasks_table,
    drivers_page,
    overview_page,
    strategies_page,
    tasks_tables,
)
from cxpredict.serving.api.deps import ConfigDep, ModelDep, StoreDep
from cxpredict.serving.api.errors import UnknownCustomers
from cxpredict.serving.api.model import ModelNotReady
from cxpredict.serving.api.security import find_key, find_scopes
from cxpredict.serving.api.settings import Scope, ServingSettings
from cxpredict.serving.api.store import StoreError

COOKIE = "cxpredict_key"
HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
Name = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
NAV = (("overview", "/ui", "Overview"), ("drivers", "/ui/drivers", "Drivers"),
       ("customers", "/ui/customers", "Customers"), ("alerts", "/ui/alerts", "Alerts & tasks"),
       ("strategies", "/ui/strategies", "Strategies"))


class ConsoleLogin(Exception):
    """No (valid) key in the cookie: the browser is sent to the login page."""

    def __init__(self, next_url: str, message: str | None = None):
        self.next_url, self.message = next_url, message


class ConsoleForbidden(Exception):
    """The key lacks the page's scope: a 403 page that says which scope."""

    def __init__(self, scope: Scope):
        self.scope = scope


def console_scopes(request: Request) -> set[Scope]:
    """The scopes of the key in the cookie (every scope when the server has no keys); login when none."""
    settings: ServingSettings = request.app.state.settings
    if not settings.auth_enabled:
        return set(Scope)
    key = request.cookies.get(COOKIE)
    next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not key:
        raise ConsoleLogin(next_url)
    scopes = find_scopes(settings, key)
    if scopes is None:
        raise ConsoleLogin(next_url, "that API key is not valid")
    return set(scopes)


def require(scope: Scope) -> Callable[[Request], Awaitable[set[Scope]]]:
    async def check(request: Request) -> set[Scope]:
        scopes = console_scopes(request)
        if scope not in scopes:
            raise ConsoleForbidden(scope)
        return scopes

    return check


ScoreScopes = Annotated[set[Scope], Depends(require(Scope.score))]
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)


def _render(request: Request, template: str, active: str, page: Page | None = None, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    page = page or Page()
    charts = json.dumps(page.charts, allow_nan=False).replace("</", "<\\/")  # no </script> break-out
    return templates.TemplateResponse(request, template, {
        "nav": NAV, "active": active, "static": STATIC_URL, "page": page, "charts_json": charts,
        "auth": request.app.state.settings.auth_enabled, "query": request.url.query,
        "logged_in": COOKIE in request.cookies, **context,
    }, status_code=status_code)


def _csv(page: Page, table: str, filename: str) -> Response:
    if table not in page.tables:
        raise RequestValidationError([{"loc": ("query", "table"), "type": "unknown_table",
                                       "msg": f"unknown table; tables are {sorted(page.tables)}", "input": table}])
    shown = page.tables[table]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(shown.columns))
    for row in shown.rows:
        writer.writerow(["" if row[c] is None else row[c] for c in shown.columns])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}-{table}.csv"'})


def _cache(request: Request) -> ConsoleCache:
    return request.app.state.console_cache


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: Annotated[str, Query(max_length=2000)] = "/ui") -> HTMLResponse:
    return _render(request, "login.html", "", next_url=_safe_next(next), message=None)


def _safe_next(url: str) -> str:
    """Only a path of this console: a login link must not send the key's holder elsewhere."""
    return url if url.startswith("/ui") and not url.startswith("//") else "/ui"


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, api_key: Annotated[str, Form(max_length=500)],
                next: Annotated[str, Form(max_length=2000)] = "/ui") -> Response:
    settings: ServingSettings = request.app.state.settings
    if settings.auth_enabled and find_scopes(settings, api_key) is None:
        return _render(request, "login.html", "", status_code=401, next_url=_safe_next(next),
                       message="that API key is not valid")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, api_key, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/ui")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("", response_class=HTMLResponse)
def overview(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep,
             config: ConfigDep) -> HTMLResponse:
    return _render(request, "overview.html", "overview", overview_page(model, store, config, _cache(request)))


@router.get("/overview.csv")
def overview_csv(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
                 table: Annotated[str, Query(max_length=50)]) -> Response:
    return _csv(overview_page(model, store, config, _cache(request)), table, "overview")


def _drivers(model: ModelDep, store: StoreDep, config: ConfigDep, target: str | None, segment: str | None,
             value: str | None, customer: str | None) -> Page:
    return drivers_page(model, store, config, target, segment, value, customer)


@router.get("/drivers", response_class=HTMLResponse)
def drivers(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
            target: Name = None, segment: Name = None, value: Name = None, customer: Name = None) -> HTMLResponse:
    return _render(request, "drivers.html", "drivers", _drivers(model, store, config, target, segment, value,
                                                                customer))


@router.get("/drivers.csv")
def drivers_csv(scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
                table: Annotated[str, Query(max_length=50)], target: Name = None, segment: Name = None,
                value: Name = None, customer: Name = None) -> Response:
    return _csv(_drivers(model, store, config, target, segment, value, customer), table, "drivers")


def console_owner(request: Request) -> str | None:
    """The owner the cookie's key is restricted to (None: every owner), as the task routes apply it."""
    settings: ServingSettings = request.app.state.settings
    key = request.cookies.get(COOKIE)
    if not settings.auth_enabled or not key:
        return None
    found = find_key(settings, key)
    return None if found is None else found[1].owner


def _customer(request: Request, scopes: set[Scope], model: ModelDep, store: StoreDep, config: ConfigDep,
              customer_id: str) -> Page:
    strategies = request.app.state.strategies if Scope.simulate in scopes and model.catalogue_error is None else None
    page = customer_page(model, store, config, customer_id, strategies)
    if Scope.tasks_read in scopes:
        page.tables["tasks"] = customer_tasks_table(request.app.state.tasks, customer_id, console_owner(request))
    return page


@router.get("/customers", response_class=HTMLResponse)
def customers(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
              id: Name = None) -> HTMLResponse:
    if not id:
        return _render(request, "customers.html", "customers", customer_id=None, error=None)
    try:
        page = _customer(request, scopes, model, store, config, id.strip())
    except UnknownCustomers:  # the search page says so, with the id
        return _render(request, "customers.html", "customers", status_code=404, customer_id=id,
                       error=f"no customer with id {id!r} in the store")
    except RequestValidationError as err:
        detail = err.errors()[0].get("msg", "not a valid customer id")
        return _render(request, "customers.html", "customers", status_code=404, customer_id=id, error=detail)
    return _render(request, "customers.html", "customers", page, customer_id=id, error=None,
                   may_simulate=Scope.simulate in scopes)


@router.get("/customers.csv")
def customers_csv(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
                  id: Annotated[str, Query(min_length=1, max_length=100)],
                  table: Annotated[str, Query(max_length=50)]) -> Response:
    return _csv(_customer(request, scopes, model, store, config, id), table, f"customer-{quote(id)}")


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request, scopes: ScoreScopes, model: ModelDep,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> HTMLResponse:
    return _render(request, "alerts.html", "alerts", _alerts(request, scopes, model, limit), limit=limit,
                   may_read_tasks=Scope.tasks_read in scopes)


def _alerts(request: Request, scopes: set[Scope], model: ModelDep, limit: int) -> Page:
    page = alerts_page(model, limit)
    if Scope.tasks_read in scopes:
        page.tables.update(tasks_tables(request.app.state.tasks, console_owner(request), limit))
    return page


@router.get("/alerts.csv")
def alerts_csv(request: Request, scopes: ScoreScopes, model: ModelDep, table: Annotated[str, Query(max_length=50)],
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return _csv(_alerts(request, scopes, model, limit), table, "alerts")


def _strategies(request: Request, scopes: set[Scope], model: ModelDep, store: StoreDep, config: ConfigDep) -> Page:
    return strategies_page(model, store, config, request.app.state.strategies, Scope.simulate in scopes,
                           _cache(request))


@router.get("/strategies", response_class=HTMLResponse)
def strategies(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep,
               config: ConfigDep) -> HTMLResponse:
    return _render(request, "strategies.html", "strategies", _strategies(request, scopes, model, store, config))


@router.get("/strategies.csv")
def strategies_csv(request: Request, scopes: ScoreScopes, model: ModelDep, store: StoreDep, config: ConfigDep,
                   table: Annotated[str, Query(max_length=50)]) -> Response:
    return _csv(_strategies(request, scopes, model, store, config), table, "strategies")


def install_console(app: FastAPI) -> None:
    """Add the console's pages, its static files (vendored, package data) and its error pages to `app`."""
    app.state.console_cache = ConsoleCache()
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(ConsoleLogin)
    async def _login(request: Request, exc: ConsoleLogin) -> Response:
        if exc.message:
            return _render(request, "login.html", "", status_code=401, next_url=_safe_next(exc.next_url),
                           message=exc.message)
        return RedirectResponse(f"/ui/login?next={quote(exc.next_url)}", status_code=303)

    @app.exception_handler(ConsoleForbidden)
    async def _forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return _render(request, "error.html", "", status_code=403, title="Not allowed",
                       message=f"this API key lacks the '{exc.scope.value}' scope the console's pages need")

    # Console pages answer a missing model or store with a page, not JSON.
    original_not_ready = app.exception_handlers.get(ModelNotReady)

    @app.exception_handler(ModelNotReady)
    async def _not_ready(request: Request, exc: ModelNotReady) -> Response:
        if request.url.path.startswith("/ui") or original_not_ready is None:
            return _render(request, "error.html", "", status_code=503, title="Not ready", message=str(exc))
        return await original_not_ready(request, exc)

    original_store = app.exception_handlers.get(StoreError)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        if request.url.path.startswith("/ui") or original_store is None:
            return _render(request, "error.html", "", status_code=503, title="Not ready", message=str(exc))
        return await original_store(request, exc)

"""Tasks: GET /v1/tasks (paged), GET /v1/tasks/{id}, POST /v1/tasks/{id}/ack and /close.

GET /v1/alert-rules (scope `admin`) shows the rules and owners the server runs.
Scopes: `tasks:read` to list and read, `tasks:write` to ack and close (`admin` implies both). A
key restricted to an owner (`{"owner": "north"}` in CXPREDICT_API_KEYS) sees and changes only
that owner's tasks. Handlers are sync: they wait on the database, so they run in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from cxpredict.features.config import ConfigError
from cxpredict.serving.api.alerting import load_alert_setup
from cxpredict.serving.api.errors import field_error
from cxpredict.serving.api.schemas.common import AUTH_ERRORS, BAD_BODY, ErrorResponse
from cxpredict.serving.api.schemas.tasks import (
    AlertRulesResponse,
    CloseTaskRequest,
    Level,
    State,
    TaskDetail,
    TaskPageResponse,
)
from cxpredict.serving.api.security import Caller, require_caller
from cxpredict.serving.api.settings import Scope
from cxpredict.serving.api.tasks import TaskError, TaskStore

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=AUTH_ERRORS)
ReadCaller = Annotated[Caller, Depends(require_caller(Scope.tasks_read))]
WriteCaller = Annotated[Caller, Depends(require_caller(Scope.tasks_write))]
TaskId = Annotated[int, Path(ge=1, le=2**62, description="the task id")]
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no such task"}}
CONFLICT = {409: {"model": ErrorResponse, "description": "the task's state does not allow it (or another client won)"}}


def _tasks(request: Request) -> TaskStore:
    return request.app.state.tasks


def _fail(err: TaskError, field: tuple[str, ...] | None = None) -> HTTPException:
    if field is not None:  # a bad query value: 422 in the validation shape, naming the field
        return HTTPException(422, detail=[{**field_error(field, str(err), "value_error"), "path": field[-1]}])
    return HTTPException(err.status, detail=str(err))


@router.get("", response_model=TaskPageResponse, summary="Tasks, filtered and paged (cursor)")
def list_tasks(
    request: Request, caller: ReadCaller,
    owner: Annotated[str | None, Query(max_length=200, description="owner id")] = None,
    level: Annotated[Level | None, Query()] = None,
    state: Annotated[State | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    try:
        page = _tasks(request).list(owner, level, state, limit, cursor, restrict_owner=caller.owner)
    except TaskError as err:
        raise _fail(err, ("query", "cursor") if err.status == 400 else None) from None
    return {"tasks": page.tasks, "next_cursor": page.next_cursor}


@router.get("/{task_id}", response_model=TaskDetail, summary="One task with its event history",
            responses=NOT_FOUND)
def get_task(request: Request, caller: ReadCaller, task_id: TaskId) -> dict[str, Any]:
    try:
        return _tasks(request).get(task_id, restrict_owner=caller.owner)
    except TaskError as err:
        raise _fail(err) from None


@router.post("/{task_id}/ack", response_model=TaskDetail, summary="Acknowledge an open task",
             responses={**NOT_FOUND, **CONFLICT})
def ack_task(request: Request, caller: WriteCaller, task_id: TaskId) -> dict[str, Any]:
    try:
        return _tasks(request).ack_task(task_id, caller.name, restrict_owner=caller.owner)
    except TaskError as err:
        raise _fail(err) from None


@router.post("/{task_id}/close", response_model=TaskDetail, summary="Close a task with its outcome",
             responses={**NOT_FOUND, **CONFLICT, **BAD_BODY})
def close_task(request: Request, caller: WriteCaller, task_id: TaskId, body: CloseTaskRequest) -> dict[str, Any]:
    try:
        return _tasks(request).close_task(task_id, caller.name, body.outcome, body.note,
                                          restrict_owner=caller.owner)
    except TaskError as err:
        raise _fail(err) from None


rules_router = APIRouter(prefix="/v1/alert-rules", tags=["tasks"], responses=AUTH_ERRORS)
AdminCaller = Annotated[Caller, Depends(require_caller(Scope.admin))]


@rules_router.get("", response_model=AlertRulesResponse, summary="The alert rules and owners the server runs",
                  responses={404: {"model": ErrorResponse, "description": "no `alerts` key in the config"}})
def list_alert_rules(request: Request, caller: AdminCaller) -> dict[str, Any]:
    config = request.app.state.config
    if not config.alerts:
        raise HTTPException(404, detail="config key 'alerts' is not set: no alert rules")
    try:
        setup = load_alert_setup(config)
    except ConfigError as err:
        raise HTTPException(409, detail=str(err)) from None
    return {
        "source": setup.source,
        "rules": [{**rule.model_dump(), "basis": rule.basis, "applies_to": rule.applies_to} for rule in setup.rules],
        "owners": [{"owner_id": o.owner_id, "name": o.name, "contact": o.contact, "covers": list(o.covers)}
                   for o in setup.owners.owners],
    }

"""Unhandled errors become a 500 whose log line names the error type, never its message (it may quote input)."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cxpredict.serving.api.errors import SafeErrorsMiddleware, readable_path

pytestmark = pytest.mark.unit


def test_unhandled_error_logged_without_message(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/boom")
    def boom(value: str) -> None:
        raise ValueError(f"customer value {value} broke it")

    app.add_middleware(SafeErrorsMiddleware)
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=True) as http:
        response = http.get("/boom", params={"value": "SECRET-4411"})
    assert response.status_code == 500 and response.json() == {"detail": "internal error (ValueError)"}
    assert "ValueError" in caplog.text and "/boom" in caplog.text
    assert "SECRET-4411" not in caplog.text


def test_readable_path() -> None:
    assert readable_path(("body", "customers", 0, "features", "age")) == "customers[0].features.age"
    assert readable_path(("query", "limit")) == "limit"
    assert readable_path(("body",)) == "body"

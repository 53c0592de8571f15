"""The console in a real browser: pages load cleanly, charts draw their points and bars, search, CSV, scopes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.browser.conftest import Console
from tests.serving.conftest import ADMIN_KEY, SCORE_KEY, SIMULATE_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class PageLog:
    """Console errors, uncaught exceptions and any request that tried to leave 127.0.0.1."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []


@pytest.fixture()
def session(browser, console_server: Console) -> Iterator[tuple]:  # noqa: ANN001
    """A fresh browser context (its own cookies) that blocks the network beyond the server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    log = PageLog()

    def gate(route) -> None:  # noqa: ANN001
        if route.request.url.startswith(console_server.server.url) or route.request.url.startswith("data:"):
            route.continue_()
        else:  # offline: nothing may come from anywhere else
            log.external.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda message: log.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    yield context, page, log
    context.close()


def login(page, url: str, key: str, next_path: str = "/ui") -> None:  # noqa: ANN001
    page.goto(f"{url}{next_path}")
    assert "/ui/login" in page.url  # no key yet: sent to the login page
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def table_rows(page, name: str) -> list[list[str]]:  # noqa: ANN001
    return page.eval_on_selector_all(
        f"table[data-table='{name}'] tbody tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))")


def chart_points(page, name: str) -> int:  # noqa: ANN001
    """How many elements (points or bars) the chart actually drew in its first dataset."""
    return page.evaluate(f"window.cxCharts['{name}'].getDatasetMeta(0).data.length")


def test_every_page_loads_without_errors_and_offline(session: tuple, console_server: Console,
                                                     artifacts: Path) -> None:
    context, page, log = session
    url = console_server.server.url
    customer = console_server.company.dataset.customers["customer_id"].iloc[5]
    login(page, url, SIMULATE_KEY)
    pages = {"overview": "/ui", "drivers": f"/ui/drivers?segment=segment&customer={customer}",
             "customers": f"/ui/customers?id={customer}", "alerts": "/ui/alerts", "strategies": "/ui/strategies",
             "docs": "/docs", "redoc": "/redoc"}
    for name, path in pages.items():
        response = page.goto(url + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        if name == "docs":
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # Swagger UI rendered the routes
            assert page.locator(".swagger-ui .opblock").count() >= 10
        elif name == "redoc":
            page.locator("h2", has_text="Score 1..N customers").first.wait_for(timeout=30_000)
        else:
            page.wait_for_selector("body[data-charts-ready=true]")
            assert page.locator("h1").first.text_content()
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    assert log.errors == [] and log.external == []
    overview = page.goto(url + "/ui")
    assert overview is not None
    assert page.locator("#model-version").text_content() == "1"
    assert chart_points(page, "band_mix") == len(table_rows(page, "band_mix")) == 3  # one bar per band


def test_key_driver_chart_and_waterfall_draw_their_points(session: tuple, console_server: Console) -> None:
    _, page, log = session
    url = console_server.server.url
    customer = console_server.company.dataset.customers["customer_id"].iloc[11]
    login(page, url, SCORE_KEY, f"/ui/drivers?customer={customer}")
    page.wait_for_selector("body[data-charts-ready=true]")
    attributes = console_server.company.config.drivers
    assert page.locator("canvas#chart-key_drivers").bounding_box()["height"] > 100
    assert chart_points(page, "key_drivers") == len(table_rows(page, "key_drivers")) == len(attributes)
    shown = [row[2] for row in table_rows(page, "key_drivers")]
    logged = pd.read_csv(console_server.company.folder / "explain" / "key_drivers.csv", dtype={"segment": str})
    assert shown == logged[logged["segment"] == "all"].sort_values("rank")["attribute"].tolist()
    assert chart_points(page, "waterfall") == len(table_rows(page, "waterfall")) == 8
    assert chart_points(page, "drivers") == min(12, len(table_rows(page, "drivers")))
    # Per segment: the chosen segment's own key drivers.
    page.goto(f"{url}/ui/drivers?segment=segment&value=enterprise")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert "segment: enterprise" in page.locator("#table-key_drivers h2").text_content()
    assert chart_points(page, "key_drivers") == len(attributes)
    assert log.errors == []


def test_customer_search_finds_the_customer(session: tuple, console_server: Console) -> None:
    _, page, log = session
    url = console_server.server.url
    customers = console_server.company.dataset.customers
    survey = console_server.company.dataset.survey
    wanted = str(survey["customer_id"].iloc[3])  # a respondent: the last answer is shown
    login(page, url, SCORE_KEY, "/ui/customers")
    page.fill("#customer-search", wanted)
    page.click("form[role=search] button")
    page.wait_for_selector("#customer-profile")
    assert page.get_attribute("#customer-profile", "data-customer") == wanted
    answer = int(survey.loc[survey["customer_id"] == wanted, "nps"].iloc[0])
    assert page.locator("#customer-profile").text_content().count(str(answer)) >= 1
    assert "needs a key with the simulate scope" in page.content()  # score-only key: no offer shown
    profile = dict(table_rows(page, "profile"))
    assert profile["plan"] == str(customers.loc[customers["customer_id"] == wanted, "plan"].iloc[0])
    assert log.errors == []
    page.fill("#customer-search", "C9999999")
    page.click("form[role=search] button")  # a 404 page that says so (the browser logs the 404 itself)
    assert "no customer with id 'C9999999'" in page.locator(".error").text_content()


def test_csv_download_has_the_rows_the_table_shows(session: tuple, console_server: Console) -> None:
    _, page, _ = session
    login(page, console_server.server.url, SCORE_KEY, "/ui/alerts?limit=40")
    shown = table_rows(page, "alerts")
    assert len(shown) == 40
    with page.expect_download() as downloaded:
        page.click("a.csv[data-table=alerts]")
    rows = list(csv.DictReader(io.StringIO(Path(downloaded.value.path()).read_text())))
    assert [r["customer_id"] for r in rows] == [r[0] for r in shown]
    assert [f"{100 * float(r['risk']):.1f} %" for r in rows] == [r[2] for r in shown]


def test_a_key_without_the_scope_is_refused(session: tuple, console_server: Console) -> None:
    context, page, _ = session
    url = console_server.server.url
    customer = console_server.company.dataset.customers["customer_id"].iloc[0]
    login(page, url, ADMIN_KEY, f"/ui/customers?id={customer}")
    assert "lacks the 'score' scope" in page.locator(".error").text_content()
    assert customer not in page.content()  # nothing of the customer is on the page
    response = page.goto(f"{url}/ui/alerts.csv?table=alerts")
    assert response is not None and response.status == 403
    cookie = next(c for c in context.cookies() if c["name"] == "cxpredict_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the key
    page.click("form.logout button")
    page.goto(f"{url}/ui/login")
    page.fill("#api_key", "not-a-key-0123456789")
    page.click("button[type=submit]")
    assert "not valid" in page.locator(".error").text_content()
    assert page.goto(f"{url}/ui/alerts") is not None and "/ui/login" in page.url

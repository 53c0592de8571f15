"""Alerts and tasks end to end: `alerts run` on the real store, the lifecycle routes on uvicorn, PostgreSQL races.

The session company's `store load` already ran the default rules once (the load hook), so its
store holds open tasks; tests that change tasks work on copies or on their own PostgreSQL database.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import IntegrityError

from cxpredict.features.synthetic import strategy_catalogue
from cxpredict.serving.api.tasks import TaskStore
from tests.conftest import run_cli
from tests.serving.conftest import Company, Server, start_server, stop_server

pytestmark = pytest.mark.api

NORTH_KEY = "north-reader-0123456789abcdef"
WRITER_KEY = "ops-writer-0123456789abcdef"
SCORE_ONLY_KEY = "score-only-0123456789abcdef"
RULES_ADMIN_KEY = "rules-admin-0123456789abcdef"
TASK_KEYS = {
    RULES_ADMIN_KEY: ["admin"],
    NORTH_KEY: {"scopes": ["tasks:read"], "name": "north desk", "owner": "north"},
    WRITER_KEY: {"scopes": ["tasks:write"], "name": "ops lead"},
    SCORE_ONLY_KEY: ["score"],
}


def _tasks(url: str) -> pd.DataFrame:
    store = TaskStore(url)
    try:
        return store.frame()
    finally:
        store.dispose()


def _events(url: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        return pd.read_sql("SELECT * FROM customers_task_events", engine)
    finally:
        engine.dispose()


def _sqlite_url(company: Company) -> str:
    return f"sqlite:///{company.folder.parent / 'cxstore.db'}"


def test_alerts_run_cli_opens_tasks_once(company_copy_factory) -> None:  # noqa: ANN001
    company = company_copy_factory()
    url = _sqlite_url(company)
    done = run_cli("alerts", "run", "--config", str(company.config_path), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    assert " 0 opened" in done.stdout  # the load hook already opened them: a re-run duplicates nothing
    tasks = _tasks(url)
    open_tasks = tasks[tasks["state"] != "closed"]
    assert len(open_tasks) > 50
    assert not open_tasks.duplicated(["customer_id", "rule_id"]).any()
    # Surveyed detractors (observed) and silent predicted detractors are both covered, with reasons in words.
    assert set(open_tasks["basis"]) == {"observed", "predicted"}
    observed = open_tasks[open_tasks["rule_id"] == "surveyed_detractor"]
    survey = company.dataset.survey.set_index("customer_id")["nps"]
    assert (observed["customer_id"].map(survey) <= 6).all()
    assert observed["reason"].str.contains("in the last survey").all()
    predicted = open_tasks[open_tasks["rule_id"] == "predicted_detractor"]
    assert len(predicted) and not predicted["customer_id"].isin(survey.index).any()
    assert predicted["reason"].str.match(r"predicted detractor \(0\.\d\d\)").all()
    # Offers by name, expected values rounded to cents, routing per region.
    names = {s["name"] for s in strategy_catalogue()}
    offered = open_tasks[open_tasks["strategy_name"].notna()]
    assert len(offered) and set(offered["strategy_name"]) <= names
    assert (offered["expected_value"].round(2) == offered["expected_value"]).all()
    region = company.dataset.customers.set_index("customer_id")["region"]
    north = open_tasks[(open_tasks["rule_id"] == "surveyed_detractor") & (open_tasks["owner_id"] == "north")]
    assert len(north) and (north["customer_id"].map(region) == "north").all()
    assert (open_tasks.loc[open_tasks["rule_id"] == "valuable_churn_risk", "owner_id"] == "retention_desk").all()


def test_alerts_run_resolves_customers_no_longer_matching(company_copy_factory) -> None:  # noqa: ANN001
    company = company_copy_factory()
    url = _sqlite_url(company)
    before = _tasks(url)
    rules_path = company.folder / "alerts.yaml"
    rules = yaml.safe_load(rules_path.read_text())
    for rule in rules:
        if rule["id"] == "surveyed_detractor":
            rule["when"][0]["value"] = 4  # detractors scoring 5-6 no longer match
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = run_cli("alerts", "run", "--config", str(company.config_path), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    after = _tasks(url)
    assert len(after) == len(before)  # closed, never deleted
    resolved = after[after["outcome"] == "resolved_by_model"]
    survey = company.dataset.survey.set_index("customer_id")["nps"]
    assert len(resolved) > 0 and set(resolved["rule_id"]) == {"surveyed_detractor"}
    assert resolved["customer_id"].map(survey).between(5, 6).all()
    assert (resolved["state"] == "closed").all()
    events = _events(url)
    assert set(events.loc[events["action"] == "resolved_by_model", "task_id"]) == set(resolved["task_id"])
    assert f"{len(resolved)} resolved_by_model" in done.stdout


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rules, owners: rules[0]["when"][0].update(column="nps_last"),
     "rule 'surveyed_detractor_critical': key 'when.0.column': unknown column 'nps_last'"),
    (lambda rules, owners: rules[3].update(owner="nobody"), "rule 'valuable_churn_risk': key 'owner': unknown owner"),
    (lambda rules, owners: owners.drop(index=[0], inplace=True),
     "owners.csv: column 'covers': no owner covers region value(s) ['north']"),
])
def test_alerts_run_bad_rules_one_line(company_copy_factory, edit, message: str) -> None:  # noqa: ANN001
    company = company_copy_factory()
    rules = yaml.safe_load((company.folder / "alerts.yaml").read_text())
    owners = pd.read_csv(company.folder / "owners.csv")
    edit(rules, owners)
    (company.folder / "alerts.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    owners.to_csv(company.folder / "owners.csv", index=False)
    before = _tasks(_sqlite_url(company))
    done = run_cli("alerts", "run", "--config", str(company.config_path), cwd=company.folder)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert _tasks(_sqlite_url(company)).equals(before)  # nothing half-written


def test_alerts_export_handoff_per_owner(company_copy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    company = company_copy_factory()
    url = _sqlite_url(company)
    tasks = TaskStore(url)
    offered = tasks.frame(state="open")
    offered = offered[offered["strategy_id"].notna()].iloc[0]
    tasks.close_task(int(offered["task_id"]), "test", "offer_accepted")
    tasks.dispose()
    out = tmp_path / "handoff"
    done = run_cli("alerts", "export", "--config", str(company.config_path), "--all", "--out", str(out),
                   cwd=company.folder)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.glob("*.csv")} == {"north.csv", "south.csv", "east_west.csv", "central.csv",
                                                 "retention_desk.csv", "_campaign_results.csv"}
    sheet = pd.read_csv(out / "east_west.csv")
    assert sheet["rank"].tolist() == list(range(1, len(sheet) + 1))
    levels = sheet["level"].map({"critical": 0, "high": 1, "medium": 2})
    assert levels.is_monotonic_increasing
    assert set(sheet["suggested_offer"].dropna()) <= {s["name"] for s in strategy_catalogue()}
    assert sheet.columns[:6].tolist() == ["rank", "customer_id", "level", "basis", "reason", "suggested_offer"]
    exported = pd.concat([pd.read_csv(p) for p in out.glob("*.csv") if not p.name.startswith("_")])
    open_now = _tasks(url).query("state != 'closed'")
    assert sorted(exported["task_id"]) == sorted(open_now["task_id"])  # every open task once, the closed one not
    assert int(offered["task_id"]) not in set(exported["task_id"])
    results = pd.read_csv(out / "_campaign_results.csv")
    assert results[["customer_id", "strategy", "treated", "outcome"]].values.tolist() == [
        [offered["customer_id"], offered["strategy_id"], 1, "offer_accepted"]]
    bad = run_cli("alerts", "export", "--config", str(company.config_path), "--owner", "mars", "--out", str(out),
                  cwd=company.folder)
    assert bad.returncode == 2 and "--owner 'mars'" in bad.stderr


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the database refuses duplicates, two runs at once, the lifecycle on uvicorn
# ---------------------------------------------------------------------------------------------


def _load_pg(company: Company, url: str, alerts: bool) -> None:
    args = ["store", "load", "--config", str(company.config_path), "--store-url", url]
    done = run_cli(*args, *([] if alerts else ["--no-alerts"]), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    assert ("alerts:" in done.stdout) == alerts


@pytest.mark.postgres
def test_alerts_run_twice_at_once_postgres(company: Company, postgres_database: str) -> None:
    url = postgres_database
    _load_pg(company, url, alerts=False)
    command = [sys.executable, "-m", "cxpredict.cli", "alerts", "run", "--config", str(company.config_path),
               "--store-url", url]
    runs = [subprocess.Popen(command, cwd=company.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    tasks = _tasks(url)
    open_tasks = tasks[tasks["state"] != "closed"]
    assert len(open_tasks) > 50 and not open_tasks.duplicated(["customer_id", "rule_id"]).any()
    opened = [int(out.split(" opened")[0].rsplit(" ", 1)[-1]) for out, _ in outputs]
    assert sum(opened) == len(open_tasks)  # between them they opened each task exactly once
    events = _events(url)
    assert (events["action"] == "created").sum() == len(open_tasks)
    # The database itself refuses a second open task for the same customer and rule.
    store = TaskStore(url)
    row = open_tasks.iloc[0].to_dict()
    duplicate = {k: row[k] for k in ("customer_id", "rule_id", "level", "basis", "owner_id", "reason", "created_at",
                                     "updated_at")}
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(store.tasks).values(**duplicate, state="open"))
    with store.engine.begin() as conn:  # ... but a closed one may coexist with a new open one
        conn.execute(text("UPDATE customers_tasks SET state = 'closed' WHERE task_id = :id"), {"id": row["task_id"]})
        conn.execute(insert(store.tasks).values(**duplicate, state="open"))
    store.dispose()


@pytest.fixture()
def pg_task_server(company: Company, postgres_database: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    _load_pg(company, postgres_database, alerts=True)
    import json

    env = {"CXPREDICT_API_KEYS": json.dumps(TASK_KEYS), "CXPREDICT_STORE_URL": postgres_database}
    server = start_server(company.config_path, tmp_path / "server.log", env)
    yield server, postgres_database
    stop_server(server)


@pytest.mark.postgres
def test_tasks_lifecycle_postgres_uvicorn(pg_task_server: tuple[Server, str]) -> None:
    server, url = pg_task_server
    north = {"X-API-Key": NORTH_KEY}
    writer = {"X-API-Key": WRITER_KEY}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        # Paging: every task exactly once, in id order, across pages.
        seen: list[int] = []
        cursor = None
        while True:
            page = http.get("/v1/tasks", params={"limit": 50, **({"cursor": cursor} if cursor else {})},
                            headers=writer).json()
            seen += [t["task_id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everything = _tasks(url)
        assert seen == sorted(everything["task_id"].tolist())
        # Row level: the north key sees only the north's tasks, and is refused the south's.
        mine = http.get("/v1/tasks", params={"limit": 1000}, headers=north).json()["tasks"]
        assert mine and {t["owner_id"] for t in mine} == {"north"}
        assert len(mine) == (everything["owner_id"] == "north").sum()
        south = everything[everything["owner_id"] == "south"].iloc[0]
        refused = http.get(f"/v1/tasks/{south['task_id']}", headers=north)
        assert refused.status_code == 403 and "restricted to owner 'north'" in refused.json()["detail"]
        assert http.get("/v1/tasks", params={"owner": "south"}, headers=north).status_code == 403
        assert http.post(f"/v1/tasks/{mine[0]['task_id']}/ack", headers=north).status_code == 403  # read only
        assert http.get("/v1/tasks", headers={"X-API-Key": SCORE_ONLY_KEY}).status_code == 403
        assert http.get("/v1/tasks").status_code == 401
        # Bad input: unknown outcome names the field; unknown task is 404; bad cursor names the query field.
        task_id = int(south["task_id"])
        bad = http.post(f"/v1/tasks/{task_id}/close", json={"outcome": "won"}, headers=writer)
        assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "outcome"
        assert http.post("/v1/tasks/999999999/ack", headers=writer).status_code == 404
        bad_cursor = http.get("/v1/tasks", params={"cursor": "nope"}, headers=writer)
        assert bad_cursor.status_code == 422 and bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]

        # Concurrent acks of one task, then concurrent closes of another: exactly one wins, the rest 409.
        def post(path: str, body: dict | None = None) -> int:
            with httpx.Client(base_url=server.url, timeout=60) as own:
                return own.post(path, json=body, headers=writer).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            acks = list(pool.map(lambda _: post(f"/v1/tasks/{task_id}/ack"), range(8)))
        assert sorted(acks) == [200] + [409] * 7
        other = int(everything[everything["state"] == "open"].iloc[-1]["task_id"])
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            closes = list(pool.map(lambda i: post(f"/v1/tasks/{other}/close",
                                                  {"outcome": "contacted", "note": f"client {i}"}), range(8)))
        assert sorted(closes) == [200] + [409] * 7
        closed = http.post(f"/v1/tasks/{task_id}/close", json={"outcome": "offer_declined"}, headers=writer).json()
        assert closed["state"] == "closed" and closed["closed_by"] == "ops lead"
        assert [(e["action"], e["actor"]) for e in closed["events"]] == [
            ("created", "store load (cli)"), ("acked", "ops lead"), ("closed", "ops lead")]
        again = http.post(f"/v1/tasks/{task_id}/ack", headers=writer)
        assert again.status_code == 409 and "is closed" in again.json()["detail"]
        detail = http.get(f"/v1/tasks/{other}", headers=writer).json()
        assert [e["action"] for e in detail["events"]] == ["created", "closed"]  # one close, not eight
        # The rules the server runs, for admins only.
        rules = http.get("/v1/alert-rules", headers={"X-API-Key": RULES_ADMIN_KEY}).json()
        assert {r["id"]: r["basis"] for r in rules["rules"]}["predicted_detractor"] == "predicted"
        assert {o["owner_id"] for o in rules["owners"]} >= {"north", "retention_desk"}
        assert http.get("/v1/alert-rules", headers=writer).status_code == 403
        # /metrics: open tasks by level and owner, from the same database.
        metrics = http.get("/metrics").text
        open_now = _tasks(url)
        n_north_high = ((open_now["state"] != "closed") & (open_now["owner_id"] == "north")
                        & (open_now["level"] == "high")).sum()
        assert f'cxpredict_open_tasks{{level="high",owner="north"}} {float(n_north_high)}' in metrics
        assert 'cxpredict_open_task_oldest_age_seconds{level="critical",owner="retention_desk"}' in metrics


def test_champion_change_runs_alerts_in_api(company_copy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    from tests.serving.test_reload import move_champion, register_copy_of_champion

    company = company_copy_factory()
    url = _sqlite_url(company)
    engine = create_engine(url)
    with engine.begin() as conn:  # start from an empty task store: whatever appears comes from the API's run
        conn.execute(text("DELETE FROM customers_tasks"))
        conn.execute(text("DELETE FROM customers_task_events"))
    engine.dispose()
    server = start_server(company.config_path, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/v1/tasks").json()["tasks"] == []  # the first load runs nothing
            version = register_copy_of_champion(company)
            move_champion(company, version)
            assert http.post("/v1/admin/reload").status_code == 202
            deadline = time.monotonic() + 180
            page: dict = {"tasks": []}
            while time.monotonic() < deadline and not page["tasks"]:
                time.sleep(1)
                page = http.get("/v1/tasks", params={"limit": 1000}).json()
            assert page["tasks"], server.logs()
            assert {t["model_version"] for t in page["tasks"]} == {version}
            # Scoring went on meanwhile, from the new model.
            customer = page["tasks"][0]["customer_id"]
            assert http.get(f"/v1/customers/{customer}/score").json()["model_version"] == version
            detail = http.get(f"/v1/tasks/{page['tasks'][0]['task_id']}").json()
            assert detail["events"][0]["actor"] == f"model change to v{version} (api)"
    finally:
        stop_server(server)


def test_campaign_plan_decides_task_offers_and_outcomes_reach_history(company_copy_factory,  # noqa: ANN001
                                                                       tmp_path: Path) -> None:
    """Tasks opened before a campaign take its decision; what the front line records reaches the history."""
    from cxpredict.features.synthetic import campaign_outcomes

    company = company_copy_factory()
    url = _sqlite_url(company)
    done = run_cli("campaign", "plan", "--config", str(company.config_path), "--name", "spring", "--budget", "20000",
                   "--holdout", "0.4", "--out", str(tmp_path), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    plan = pd.read_csv(tmp_path / "plan.csv").set_index("customer_id")
    done = run_cli("alerts", "run", "--config", str(company.config_path), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    tasks = _tasks(url)
    active = tasks[tasks["state"] != "closed"]
    assert not active.duplicated(["customer_id", "rule_id"]).any()
    in_plan = active[active["customer_id"].isin(plan.index)]
    group = in_plan["customer_id"].map(plan["group"])
    treated, control = in_plan[group == "treated"], in_plan[group == "control"]
    assert len(treated) and len(control), "the plan must overlap the open tasks in both groups"
    assert (in_plan["campaign"] == "spring").all()
    assert (treated["strategy_id"] == treated["customer_id"].map(plan["strategy"])).all()
    assert treated["reason"].str.contains("planned offer of campaign 'spring'").all()
    assert control["strategy_id"].isna().all() and control["strategy_name"].isna().all()
    assert control["reason"].str.contains("control group of campaign 'spring': make no offer").all()
    assert (active.loc[~active["customer_id"].isin(plan.index), "campaign"].isna()).all()
    replanned = _events(url).query("action == 'replanned'")
    assert set(replanned["task_id"]) == set(in_plan["task_id"])  # they were open before the plan: changed, logged

    store = TaskStore(url)
    try:
        reached = treated.drop_duplicates("customer_id").head(3)
        for task_id in reached["task_id"]:
            store.close_task(int(task_id), "north desk", "offer_accepted")
        store.close_task(int(control["task_id"].iloc[0]), "north desk", "contacted")
    finally:
        store.dispose()
    strategies = yaml.safe_load((company.folder / "strategies.yaml").read_text())
    outcomes = campaign_outcomes(company.dataset.customers, pd.read_parquet(company.folder / "truth.parquet"),
                                 plan.reset_index(), strategies, seed=3)
    results = tmp_path / "results.csv"
    outcomes.to_csv(results, index=False)
    done = run_cli("campaign", "results", "--config", str(company.config_path), "--name", "spring",
                   "--results", str(results), cwd=company.folder)
    assert done.returncode == 0, done.stderr
    assert f"front-line outcomes: {len(reached)} offer_accepted" in done.stdout
    history = pd.read_csv(company.folder / "campaigns.csv")
    spring = history[history["campaign"] == "spring"].set_index("customer_id")
    assert set(spring.index[spring["contact_outcome"] == "offer_accepted"]) == set(reached["customer_id"])
    # The control customer's task outcome is no treatment: it never appears as a contact outcome.
    assert spring["contact_outcome"].dropna().eq("offer_accepted").all()


def test_console_lists_tasks_for_task_readers_by_owner(company_copy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    """/ui/alerts and /ui/customers show the tasks, most urgent first, and an owner's key only its own."""
    import csv
    import io
    import json

    company = company_copy_factory()
    everyone, north = "console-ops-0123456789abcdef", "console-north-0123456789abcdef"
    keys = {everyone: {"scopes": ["score", "tasks:read"], "name": "ops"},
            north: {"scopes": ["score", "tasks:read"], "name": "north desk", "owner": "north"},
            SCORE_ONLY_KEY: ["score"]}
    server = start_server(company.config_path, tmp_path / "server.log", {"CXPREDICT_API_KEYS": json.dumps(keys)})
    tasks = _tasks(_sqlite_url(company))
    active = tasks[tasks["state"] != "closed"]

    def rows(key: str, path: str) -> list[dict[str, str]]:
        with httpx.Client(base_url=server.url, timeout=120, cookies={"cxpredict_key": key}) as http:
            answer = http.get(path)
        assert answer.status_code == 200, answer.text
        return list(csv.DictReader(io.StringIO(answer.text)))

    try:
        listed = rows(everyone, "/ui/alerts.csv?limit=50&table=tasks")
        assert len(listed) == 50
        levels = [r["level"] for r in listed]
        rank = {"critical": 0, "high": 1, "medium": 2}
        assert levels == sorted(levels, key=rank.__getitem__)  # critical first
        assert {int(r["task_id"]) for r in listed} <= set(active["task_id"])
        summary = rows(everyone, "/ui/alerts.csv?table=tasks_by_owner")
        assert sum(int(r["n"]) for r in summary) == len(active)
        mine = rows(north, "/ui/alerts.csv?limit=1000&table=tasks")
        assert mine and {r["owner_id"] for r in mine} == {"north"}
        assert len(mine) == (active["owner_id"] == "north").sum()
        assert {r["owner_id"] for r in rows(north, "/ui/alerts.csv?table=tasks_by_owner")} == {"north"}
        south = active[active["owner_id"] == "south"].iloc[0]
        customer = rows(everyone, f"/ui/customers.csv?id={south['customer_id']}&table=tasks")
        assert int(south["task_id"]) in {int(r["task_id"]) for r in customer}
        seen_by_north = rows(north, f"/ui/customers.csv?id={south['customer_id']}&table=tasks")
        assert int(south["task_id"]) not in {int(r["task_id"]) for r in seen_by_north}
        assert all(r["owner_id"] == "north" for r in seen_by_north)
        with httpx.Client(base_url=server.url, timeout=120, cookies={"cxpredict_key": SCORE_ONLY_KEY}) as http:
            page = http.get("/ui/alerts")
            assert page.status_code == 200 and "tasks need a key with the tasks:read scope" in page.text
            assert str(south["reason"]) not in page.text
            assert http.get("/ui/alerts.csv?table=tasks").status_code == 422
    finally:
        stop_server(server)

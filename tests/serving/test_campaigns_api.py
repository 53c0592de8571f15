"""GET /v1/campaigns, GET /v1/campaigns/{name}, POST /v1/campaigns/{name}/results against a real uvicorn server.

The plan is made by the real `cxpredict campaign plan` in a copy of the session's company (own
MLflow registry and customer store); results come from the generator's true mechanism.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from cxpredict.features.synthetic import campaign_outcomes
from tests.conftest import run_cli
from tests.serving.conftest import ADMIN_KEY, SCORE_KEY, Company, Server, keyed_env, start_server, stop_server

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def planned(company_copy_factory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Company, Server, Path]]:  # noqa: ANN001
    copy: Company = company_copy_factory()
    out = tmp_path_factory.mktemp("api_plan")
    done = run_cli("campaign", "plan", "--config", str(copy.config_path), "--name", "spring", "--budget", "6000",
                   "--holdout", "0.4", "--out", str(out), cwd=copy.folder)
    assert done.returncode == 0, done.stderr
    server = start_server(copy.config_path, out / "server.log", keyed_env())
    yield copy, server, out / "plan.csv"
    stop_server(server)


def _outcomes(copy: Company, plan_path: Path) -> pd.DataFrame:
    data = copy.folder
    strategies = yaml.safe_load((data / "strategies.yaml").read_text())
    return campaign_outcomes(copy.dataset.customers, pd.read_parquet(data / "truth.parquet"), pd.read_csv(plan_path),
                             strategies, seed=3)


def _body(frame: pd.DataFrame) -> dict:
    return {"results": [
        {"customer_id": r.customer_id, "churned": int(r.churned), "score": None if pd.isna(r.nps) else int(r.nps),
         "date": r.date} for r in frame.itertuples(index=False)]}


def test_campaigns_list_get_and_post_results(planned: tuple[Company, Server, Path]) -> None:
    copy, server, plan_path = planned
    plan = pd.read_csv(plan_path)
    history_file = copy.folder / "campaigns.csv"
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": SCORE_KEY}) as http:
        listed = http.get("/v1/campaigns")
        assert listed.status_code == 200, listed.text
        (campaign,) = [c for c in listed.json()["campaigns"] if c["name"] == "spring"]
        assert campaign["n_treated"] + campaign["n_control"] == len(plan) and campaign["holdout"] == 0.4
        one = http.get("/v1/campaigns/spring")
        assert one.status_code == 200 and one.json()["evaluation"] is None
        assert http.get("/v1/campaigns/nope").status_code == 404
        outcomes = _outcomes(copy, plan_path)
        # Posting needs the admin scope.
        assert http.post("/v1/campaigns/spring/results", json=_body(outcomes)).status_code == 403

    before = history_file.read_bytes()
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": ADMIN_KEY}) as admin:
        outsider = sorted(set(copy.dataset.customers["customer_id"]) - set(plan["customer_id"]))[0]
        bad = _body(outcomes)
        bad["results"][4]["customer_id"] = outsider
        answer = admin.post("/v1/campaigns/spring/results", json=bad)
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert error["loc"] == ["body", "results", 4, "customer_id"] and "not in the plan" in error["msg"]
        off_scale = _body(outcomes)
        off_scale["results"][2]["score"] = 11
        answer = admin.post("/v1/campaigns/spring/results", json=off_scale)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "results", 2, "score"]
        neither = {"results": [{"customer_id": plan["customer_id"].iloc[0]}]}
        answer = admin.post("/v1/campaigns/spring/results", json=neither)
        assert answer.status_code == 422 and "both outcomes missing" in answer.json()["detail"][0]["msg"]
        assert admin.post("/v1/campaigns/nope/results", json=_body(outcomes)).status_code == 404
        assert history_file.read_bytes() == before  # nothing half-appended

        answer = admin.post("/v1/campaigns/spring/results", json=_body(outcomes))
        assert answer.status_code == 201, answer.text
        assert answer.json()["rows"] == len(plan) and answer.json()["wave"] == 2
        again = admin.post("/v1/campaigns/spring/results", json=_body(outcomes.head(5)))
        assert again.status_code == 422 and "already has results" in again.json()["detail"][0]["msg"]

    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": SCORE_KEY}) as http:
        evaluated = http.get("/v1/campaigns/spring").json()
        strategies = evaluated["evaluation"]["strategies"]
        assert {s["strategy"] for s in strategies} == set(plan["strategy"])
        assert all(s["verdict"] in ("works", "not proven", "ineffective", "harmful") for s in strategies)
        assert len(evaluated["verdicts"]) == len(strategies)
        # The scores carry the problem group.
        customer = plan["customer_id"].iloc[0]
        score = http.get(f"/v1/customers/{customer}/score").json()
        assert score["problem_group"] in {*copy.dataset.cause_codes, "none"} and score["problem_lift"] > 0

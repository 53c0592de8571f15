"""Alert rules and owners as data: shape, validation against columns and owners, evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cxpredict.features.alerts import (
    AlertError,
    load_alert_rules,
    parse_alert_rules,
    parse_owners,
    rule_mask,
    validate_alert_rules,
)
from cxpredict.features.config import load_config
from cxpredict.features.synthetic import alert_catalogue, owner_table

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
KINDS = {"observed_score": "numeric", "surveyed": "boolean", "p_bottom_band": "numeric", "value": "numeric",
         "churn_probability": "numeric", "expected_score_drop": "numeric", "region": "categorical"}


def test_default_catalogue_covers_observed_and_predicted_detractors() -> None:
    rules = parse_alert_rules(alert_catalogue())
    by_id = {r.id: r for r in rules}
    assert by_id["surveyed_detractor"].basis == "observed" and by_id["surveyed_detractor"].applies_to == "surveyed"
    assert by_id["predicted_detractor"].basis == "predicted" and by_id["predicted_detractor"].applies_to == "silent"
    owners = parse_owners(owner_table())
    validate_alert_rules(rules, KINDS, owners, {"region": ["north", "south", "east", "west", "central"]})


def test_telco_config_ships_rules_and_owners() -> None:
    config = load_config(REPO / "data" / "telco" / "cxpredict.yaml")
    rules = load_alert_rules(config.resolve(config.alerts))
    owners = parse_owners(pd.read_csv(config.resolve(config.data.owners)))
    assert {r.level for r in rules} == {"critical", "high", "medium"}
    assert owners.catch_all == "california" and owners.route(pd.Series(["San Jose", "Fresno"])).tolist() == [
        "bay_area", "california"]


def test_rule_unknown_column_named() -> None:
    rules = parse_alert_rules([{"id": "r1", "level": "high", "when": [{"column": "nps_typo", "op": "<=", "value": 6}],
                                "route_by": "region"}])
    with pytest.raises(AlertError, match=r"rule 'r1': key 'when.0.column': unknown column 'nps_typo'"):
        validate_alert_rules(rules, KINDS, parse_owners(owner_table()))


def test_rule_unknown_owner_named() -> None:
    rules = parse_alert_rules([{"id": "r1", "level": "critical", "owner": "nobody",
                                "when": [{"column": "value", "op": ">=", "value": 1}]}])
    with pytest.raises(AlertError, match=r"rule 'r1': key 'owner': unknown owner 'nobody'"):
        validate_alert_rules(rules, KINDS, parse_owners(owner_table()))


def test_owner_table_missing_routing_values_named() -> None:
    rules = parse_alert_rules(alert_catalogue())
    owners = parse_owners(owner_table().iloc[:2], source="owners.csv")
    with pytest.raises(AlertError, match=r"owners.csv: column 'covers': no owner covers region value\(s\) "
                                         r"\['central', 'east', 'west'\]"):
        validate_alert_rules(rules, KINDS, parse_owners(owner_table().iloc[:2], "owners.csv"),
                             {"region": ["north", "south", "east", "west", "central"]})
    assert owners.uncovered(["north"]) == []


@pytest.mark.parametrize(("raw", "message"), [
    ([{"id": "r", "level": "urgent", "when": [{"column": "value", "op": ">", "value": 1}], "owner": "x"}],
     "key 'level'"),
    ([{"id": "r", "level": "high", "when": [], "owner": "x"}], "key 'when'"),
    ([{"id": "r", "level": "high", "when": [{"column": "value", "op": ">", "value": 1}]}], "exactly one of"),
    ([{"id": "r", "level": "high", "when": [{"column": "value", "op": "~", "value": 1}], "owner": "x"}],
     "unknown op"),
    ([{"id": "r", "level": "high", "when": [{"column": "v", "op": ">", "value": 1}], "owner": "x", "colour": 1}],
     "unknown key"),
])
def test_rule_shape_errors_named(raw: list, message: str) -> None:
    with pytest.raises(AlertError, match=message):
        parse_alert_rules(raw, "alerts.yaml")


def test_rule_duplicate_id_and_owner_value_twice() -> None:
    rule = {"id": "r", "level": "high", "when": [{"column": "value", "op": ">", "value": 1}], "owner": "x"}
    with pytest.raises(AlertError, match="duplicate rule id 'r'"):
        parse_alert_rules([rule, rule])
    owners = owner_table()
    owners.loc[1, "covers"] = "south;north"
    with pytest.raises(AlertError, match=r"column 'covers', row 3: value 'north' is also covered by owner 'north'"):
        parse_owners(owners)


def test_rule_mask_problem_group_and_population() -> None:
    # problem_group comes from the scores once the strategy loop adds it; any column present works.
    frame = pd.DataFrame({
        "surveyed": [True, False, False, True],
        "observed_score": [3, np.nan, np.nan, 9],
        "problem_group": ["network", "network", "price", "network"],
        "p_bottom_band": [0.9, 0.8, 0.2, 0.1],
    })
    rules = parse_alert_rules([
        {"id": "net", "level": "high", "route_by": "region", "population": "silent",
         "when": [{"column": "problem_group", "op": "==", "value": "network"}]},
        {"id": "obs", "level": "high", "route_by": "region", "when": [{"column": "observed_score", "op": "<=",
                                                                        "value": 6}]},
        {"id": "pred", "level": "medium", "route_by": "region", "when": [{"column": "p_bottom_band", "op": ">=",
                                                                           "value": 0.7}]},
    ])
    assert rule_mask(frame, rules[0]).tolist() == [False, True, False, False]
    assert rule_mask(frame, rules[1]).tolist() == [True, False, False, False]  # a silent customer never matches
    assert rule_mask(frame, rules[2]).tolist() == [True, True, False, False]


def test_generated_company_writes_alert_defaults(tmp_path: Path) -> None:
    from cxpredict.features.synthetic import generate_company, write_company

    config = load_config(write_company(generate_company(200, 0.2, seed=1), tmp_path))
    assert config.alerts == "alerts.yaml" and config.data.owners == "owners.csv"
    assert [r["id"] for r in yaml.safe_load((tmp_path / "alerts.yaml").read_text())] == [
        r["id"] for r in alert_catalogue()]


def test_handoff_sheet_ranks_rounds_and_adds_contacts() -> None:
    from cxpredict.serving.api.handoff import contact_columns, handoff_table

    tasks = pd.DataFrame({
        "task_id": [1, 2, 3, 4], "customer_id": ["A", "B", "C", "D"], "level": ["medium", "critical", "high", "high"],
        "basis": ["predicted", "observed", "observed", "predicted"], "reason": ["r1", "r2", "r3", "r4"],
        "strategy_name": ["Half-price voice", None, "Loyalty bonus", "Loyalty bonus"],
        "expected_value": [10.0, np.nan, 12.3456, 99.999], "value": [1.0, 2.0, 3.0, 4.0],
        "state": ["open", "acked", "open", "closed"], "created_at": pd.Timestamp("2026-12-01", tz="UTC"),
    })
    contacts = pd.DataFrame({"customer_id": ["A", "C"], "email": ["a@example.com", "c@example.com"]})
    sheet = handoff_table(tasks, contacts)
    assert sheet["customer_id"].tolist() == ["B", "C", "A"]  # critical, high, medium; the closed task is gone
    assert sheet["rank"].tolist() == [1, 2, 3]
    assert sheet["expected_value"].tolist()[1] == 12.35 and sheet["suggested_offer"].tolist() == [
        "", "Loyalty bonus", "Half-price voice"]
    assert sheet["email"].fillna("").tolist() == ["", "c@example.com", "a@example.com"]
    assert contact_columns(["customer_id", "Email", "mobile_phone", "region"]) == ["Email", "mobile_phone"]

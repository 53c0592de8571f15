"""The strategy catalogue: shape checks on load, checks against the data, eligibility and interventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.strategies import (
    Strategy,
    StrategyError,
    apply_interventions,
    apply_strategy,
    eligible_mask,
    load_strategies,
    parse_strategies,
    validate_strategies,
)
from cxpredict.features.synthetic import strategy_catalogue

pytestmark = pytest.mark.unit


@pytest.fixture()
def customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "contract": ["month_to_month", "one_year", "month_to_month", None],
        "monthly_charge": [80.0, 40.0, 55.0, 90.0],
        "unresolved_tickets": [2, 0, 1, 3],
        "phone_service": ["Yes", "No", "Yes", "Yes"],
        "paperless": [True, False, True, False],
        "clv": [1000.0, 500.0, np.nan, 2000.0],
    })


def _write(tmp_path: Path, catalogue: object) -> Path:
    path = tmp_path / "strategies.yaml"
    path.write_text(yaml.safe_dump(catalogue, sort_keys=False))
    return path


def _one(**overrides: object) -> dict:
    base = {
        "id": "discount",
        "name": "Discount",
        "cost": 10.0,
        "eligible": [{"column": "monthly_charge", "op": ">=", "value": 50.0}],
        "apply": {"monthly_charge": {"multiply": 0.8}},
    }
    return {**base, **overrides}


# --- loading: shape -----------------------------------------------------------------------


def test_load_synthetic_catalogue_round_trips(tmp_path: Path) -> None:
    strategies = load_strategies(_write(tmp_path, strategy_catalogue()))
    assert [s.id for s in strategies] == [s["id"] for s in strategy_catalogue()]
    discount = strategies[0]
    assert discount.cost == 40.0 and discount.intervention == [("monthly_charge", "multiply", 0.8)]


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_one(eligible=[{"column": "monthly_charge", "op": "=~", "value": 1}]), "key 'eligible.0.op': unknown op '=~'"),
        (_one(apply={"monthly_charge": {"divide": 2}}), "key 'apply'"),
        (_one(apply={"monthly_charge": {"multiply": "half"}}), "multiply needs a number"),
        (_one(apply={}), "needs at least one intervention"),
        (_one(eligible=[{"column": "contract", "op": "in", "value": "one_year"}]), "needs a list value"),
        (_one(eligible=[{"column": "contract", "op": "=="}]), "needs a value"),
        (_one(cost=-1), "key 'cost'"),
        (_one(code="import os"), "key 'code'"),  # no expression is ever evaluated: unknown keys are refused
    ],
)
def test_bad_shape_names_file_strategy_and_key(tmp_path: Path, strategy: dict, message: str) -> None:
    path = _write(tmp_path, [strategy])
    with pytest.raises(StrategyError) as err:
        load_strategies(path)
    assert str(path) in str(err.value) and "strategy 'discount'" in str(err.value)
    assert message in str(err.value)


def test_duplicate_ids_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="duplicate strategy id 'discount'"):
        parse_strategies([_one(), _one()], "s.yaml")
    with pytest.raises(StrategyError, match="non-empty list"):
        parse_strategies([], "s.yaml")
    with pytest.raises(StrategyError, match="strategies file not found"):
        load_strategies(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: [unclosed\n")
    with pytest.raises(StrategyError, match="not valid YAML"):
        load_strategies(broken)


# --- validation against the data ---------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_one(eligible=[{"column": "monthly_fee", "op": ">", "value": 1}]),
         "key 'eligible.0.column': eligible column 'monthly_fee' not found in the customers table"),
        (_one(apply={"monthly_fee": {"add": -5}}), "key 'apply.monthly_fee.add': apply column 'monthly_fee' not found"),
        (_one(eligible=[{"column": "monthly_charge", "op": ">", "value": "high"}]),
         "column 'monthly_charge': needs a number for a numeric column, got 'high'"),
        (_one(eligible=[{"column": "contract", "op": "<", "value": "one_year"}]),
         "op '<' needs an ordered column; 'contract' is categorical"),
        (_one(apply={"contract": {"add": 1}}), "'add' needs a numeric column; 'contract' is categorical"),
        (_one(apply={"contract": {"set": "one_yr"}}), "value 'one_yr' is not a known category"),
        (_one(apply={"monthly_charge": {"set": "cheap"}}), "needs a number for a numeric column"),
        (_one(apply={"phone_service": {"set": "maybe"}}), "needs a yes/no value for a boolean column"),
    ],
)
def test_checks_against_the_customers_table(customers: pd.DataFrame, strategy: dict, message: str) -> None:
    strategies = parse_strategies([strategy], "s.yaml")
    with pytest.raises(StrategyError) as err:
        validate_strategies(strategies, customers, source="s.yaml")
    assert str(err.value).startswith("s.yaml: strategy 'discount': ")
    assert message in str(err.value)


def test_checks_against_the_model_features(customers: pd.DataFrame) -> None:
    schema = FeaturePipeline("customer_id", exclude=["clv"]).fit(customers).schema()
    ok = parse_strategies(
        [_one(eligible=[{"column": "clv", "op": ">", "value": 100}], apply={"contract": {"set": "one_year"}})], "s.yaml"
    )
    validate_strategies(ok, customers, schema, source="s.yaml")  # eligibility may use a non-feature column
    on_value = parse_strategies([_one(apply={"clv": {"multiply": 2}})], "s.yaml")
    validate_strategies(on_value, customers, source="s.yaml")  # a customers column...
    with pytest.raises(StrategyError, match="apply column 'clv' not found in the model's features"):
        validate_strategies(on_value, customers, schema, source="s.yaml")  # ...but the model never reads it


# --- eligibility and interventions --------------------------------------------------------


def test_eligibility_is_and_of_conditions_and_missing_never_holds(customers: pd.DataFrame) -> None:
    strategy = _one(eligible=[
        {"column": "contract", "op": "==", "value": "month_to_month"},
        {"column": "monthly_charge", "op": ">", "value": 60},
    ])
    assert eligible_mask(customers, strategy).tolist() == [True, False, False, False]
    not_in = _one(eligible=[{"column": "contract", "op": "not_in", "value": ["one_year"]}])
    assert eligible_mask(customers, not_in).tolist() == [True, False, True, False]  # None is never eligible
    boolean = _one(eligible=[{"column": "paperless", "op": "==", "value": "yes"}])
    assert eligible_mask(customers, boolean).tolist() == [True, False, True, False]


def test_apply_changes_eligible_rows_only_and_is_pure(customers: pd.DataFrame) -> None:
    snapshot = customers.copy()
    changes = {"monthly_charge": {"multiply": 0.5}, "unresolved_tickets": {"set": 0}}
    strategy = Strategy.model_validate(_one(apply=changes))
    changed = apply_strategy(customers, strategy)
    pd.testing.assert_frame_equal(customers, snapshot)
    assert changed["monthly_charge"].tolist() == [40.0, 40.0, 27.5, 45.0]
    assert changed["unresolved_tickets"].tolist() == [0, 0, 0, 0]
    assert pd.api.types.is_integer_dtype(changed["unresolved_tickets"])
    every_row = apply_interventions(customers.iloc[[1]], strategy)  # the caller chose the rows
    assert every_row["monthly_charge"].tolist() == [20.0]
    added = apply_strategy(customers, _one(apply={"monthly_charge": {"add": -5}}))
    assert added["monthly_charge"].tolist() == [75.0, 40.0, 50.0, 85.0]
    flags = apply_strategy(customers, _one(eligible=[], apply={"paperless": {"set": "Yes"}}))
    assert flags["paperless"].tolist() == [True, True, True, True]


def test_synthetic_catalogue_is_valid_against_its_customers_and_model_features() -> None:
    from cxpredict.features.synthetic import generate_company

    company = generate_company(1_000, 0.1, seed=1)
    strategies = parse_strategies(company.strategies, "synthetic")
    schema = FeaturePipeline("customer_id", exclude=["clv"]).fit(company.customers).schema()
    validate_strategies(strategies, company.customers, schema, source="synthetic")
    assert all(eligible_mask(company.customers, s).any() for s in strategies)


@pytest.mark.parametrize("body", [b"- id: a\n  name: [unclosed\n", b"- id: caf\xe9\n"], ids=["syntax", "not-utf8"])
def test_every_catalogue_file_fails_in_one_line_with_its_place(tmp_path: Path, body: bytes) -> None:
    """Strategies, alert rules and the codeframe read YAML like the config: file, line (and column), one line."""
    from cxpredict.features.alerts import AlertError, load_alert_rules
    from cxpredict.features.config import CxConfig
    from cxpredict.features.load import DataError
    from cxpredict.features.texts import load_codeframe

    path = tmp_path / "catalogue.yaml"
    path.write_bytes(body)
    config = CxConfig.model_validate({
        "name": "t", "id_column": "id", "data": {"customers": "c.csv", "survey": "s.csv"},
        "score": {"column": "nps", "scale": [0, 10], "bands": {"d": [0, 6], "p": [7, 8], "q": [9, 10]}},
        "codeframe": "catalogue.yaml", "base_dir": tmp_path})
    loaders = [(StrategyError, lambda: load_strategies(path)), (AlertError, lambda: load_alert_rules(path)),
               (DataError, lambda: load_codeframe(config))]
    for error, load in loaders:
        with pytest.raises(error) as caught:
            load()
        message = str(caught.value)
        assert "\n" not in message
        if b"\xe9" in body:
            assert message.startswith(f"{path}: line 1: not UTF-8 text (byte 0xe9)")
        else:
            assert message.startswith(f"{path}: line 3, column 1: not valid YAML")

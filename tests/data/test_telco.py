"""The shipped IBM Telco sample loads through its config, and its strategy catalogue fits its columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.strategies import config_strategies, validate_strategies

pytestmark = pytest.mark.data
TELCO = Path(__file__).resolve().parents[2] / "data" / "telco" / "cxpredict.yaml"


def test_load_telco_maps_every_table() -> None:
    config = load_config(TELCO)
    dataset = load_dataset(config, require_outcomes=True)
    assert len(dataset.customers) == 7043 and dataset.customers["customer_id"].is_unique
    assert len(dataset.survey) == 7043
    assert set(dataset.survey["satisfaction"]) == {1, 2, 3, 4, 5}
    assert dataset.cause_codes == ["Attitude", "Competitor", "Dissatisfaction", "Other", "Price"]
    assert dataset.outcomes is not None and dataset.outcomes["churned"].mean() == pytest.approx(0.2654, abs=1e-3)
    # the zip-code lookup joined on its own key, and CLTV came in as the value column only
    assert dataset.customers["population"].notna().all()
    assert "cltv" in dataset.customers.columns and "Churn Score" not in dataset.customers.columns


def test_validate_telco_strategies_against_its_customers() -> None:
    config = load_config(TELCO)
    strategies, path = config_strategies(config)
    validate_strategies(strategies, customers=load_dataset(config).customers, source=path)
    assert {s.id for s in strategies} >= {"contract_one_year", "monthly_discount_20"}

"""The record fast path must give exactly what FeaturePipeline.transform gives, and name bad inline values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.records import RecordEncoder
from cxpredict.features.synthetic import generate_company

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_company(1500, 0.2, seed=5).customers


@pytest.fixture(scope="module")
def pipeline(customers: pd.DataFrame) -> FeaturePipeline:
    return FeaturePipeline("customer_id", exclude=["clv"]).fit(customers)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


def test_encode_records_matches_transform_on_typed_rows(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    records = customers.to_dict("records")  # Timestamps, NaT, numpy bools, NaN
    _same(RecordEncoder(pipeline).encode(records), pipeline.transform(customers))


def test_encode_records_matches_transform_on_json_rows(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    as_json = customers.copy()
    for column in ("signup_date", "last_ticket_date"):
        as_json[column] = customers[column].map(lambda t: None if pd.isna(t) else t.isoformat())
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
               for r in as_json.astype(object).to_dict("records")]
    encoder = RecordEncoder(pipeline)
    _same(encoder.encode(records), pipeline.transform(customers))
    checked, problems = encoder.encode_checked(records)  # the strict path the API uses for inline features
    assert problems == {}
    _same(checked, pipeline.transform(customers))


def test_encode_records_matches_transform_after_sqlite_round_trip(customers: pd.DataFrame, pipeline: FeaturePipeline,
                                                                 tmp_path: Path) -> None:
    from cxpredict.features.config import parse_config
    from cxpredict.features.load import Dataset
    from cxpredict.serving.api.store import CustomerStore, load_store

    config = parse_config({
        "name": "t", "id_column": "customer_id", "data": {"customers": "c.parquet", "survey": "s.csv"},
        "score": {"column": "nps", "scale": [0, 10], "bands": {"low": [0, 6], "mid": [7, 8], "high": [9, 10]}},
    }, tmp_path)
    survey = pd.DataFrame({"customer_id": customers["customer_id"].head(10), "nps": 5})
    url = f"sqlite:///{tmp_path / 'store.db'}"
    load_store(config, Dataset(customers=customers, survey=survey), url)
    store = CustomerStore(url, "customers", "customer_id")
    assert store.refresh()
    ids = customers["customer_id"].tolist()
    found = store.get(ids)
    records = [found[i] for i in ids]  # datetimes, bools and None as the DB driver returns them
    _same(RecordEncoder(pipeline).encode(records), pipeline.transform(customers))
    silent = pd.concat(list(store.iter_silent(chunk_size=400)))
    assert len(silent) == len(customers) - 10
    _same(pipeline.transform(silent), pipeline.transform(customers.iloc[10:]))
    store.close()


def test_encode_records_matches_transform_on_odd_values(pipeline: FeaturePipeline) -> None:
    rows = [
        {"region": "atlantis", "tenure_months": "12", "paperless_billing": "YES ", "app_user": 1,
         "signup_date": "2024-02-29T13:30:00+02:00", "age": None, "plan": 3},
        {"region": None, "tenure_months": np.inf, "paperless_billing": "n", "app_user": "maybe",
         "signup_date": dt.date(2020, 1, 1), "age": np.float32(41.5), "plan": True},
        {"segment": "consumer", "last_ticket_date": "not a date", "monthly_charge": np.int64(70)},
        {"signup_date": "20240131", "last_ticket_date": "2024-1-5", "plan": 3.0, "region": np.str_("north")},
        {"signup_date": "2024-01-31 10:00", "last_ticket_date": "2024-01-31T10:00:00.123456Z", "plan": 2.5},
        {},
    ]
    frame = pd.DataFrame(rows, dtype=object)
    _same(RecordEncoder(pipeline).encode(rows), pipeline.transform(frame))


def test_check_record_names_problems(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    encoder = RecordEncoder(pipeline)
    record = {name: customers[name].iloc[0] for name in encoder.names}
    record["signup_date"] = "2025-01-31"
    record["last_ticket_date"] = None
    assert encoder.check_record(record) == {}
    # Numeric text reads as a file's text column does ('80' yes, '80,5' no), as in every batch path.
    assert encoder.check_record({**record, "monthly_charge": "80"}) == {}
    bad = {**record, "monthly_charge": "80,5", "app_user": "perhaps", "signup_date": 20240131, "age": 10_000,
           "region": "unknown-but-fine"}
    del bad["plan"]
    problems = encoder.check_record(bad)
    assert {k: p.kind for k, p in problems.items()} == {
        "monthly_charge": "wrong_type", "app_user": "wrong_type", "signup_date": "wrong_type",
        "age": "out_of_range", "plan": "missing"}
    assert "10000" not in problems["age"].message  # messages state the rule, not the value


def test_allowed_range_keeps_non_negative_columns_non_negative(pipeline: FeaturePipeline) -> None:
    encoder = RecordEncoder(pipeline)
    low, high = encoder.allowed_range("tenure_months")
    observed_low, observed_high = pipeline.ranges_["tenure_months"]
    assert observed_low >= 0
    assert low == 0.0 and high == observed_high + max(observed_high - observed_low, observed_high)
    assert encoder.allowed_range("region") is None

"""The validation gate's rules on their own: training stops, implausible rows, required columns,
old bundles, URL masking, and a property test of the record encoder (no input raises)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.load import DataError
from cxpredict.features.records import FeatureProblem, RecordEncoder
from cxpredict.features.secrets import mask_url
from cxpredict.features.synthetic import generate_company
from cxpredict.features.validation import (
    IMPLAUSIBLE,
    UNREADABLE,
    WARN,
    ImplausibleValueError,
    MissingColumnError,
    UnreadableColumnError,
    check_required_columns,
    check_rows,
    check_training_columns,
    feature_rules,
    row_verdicts,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_company(800, 0.2, seed=5).customers


@pytest.fixture(scope="module")
def pipeline(customers: pd.DataFrame) -> FeaturePipeline:
    return FeaturePipeline("customer_id", exclude=["clv"]).fit(customers)


def _csv(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return pd.read_csv(path, low_memory=False)


def test_training_stops_on_one_unreadable_number(customers: pd.DataFrame, tmp_path: Path) -> None:
    frame = customers.copy()
    frame["monthly_charge"] = frame["monthly_charge"].astype(object)
    frame.loc[[3, 9], "monthly_charge"] = "12,50"
    read = _csv(frame, tmp_path)
    with pytest.raises(UnreadableColumnError) as caught:
        check_training_columns(read, "customers.csv", ["customer_id"])
    assert str(caught.value) == ("customers.csv: column 'monthly_charge': '12,50' is not a finite number in rows 4, 10 "
                                 "(a column of numeric values; list it under features.text to read it as text)")
    check_training_columns(read, "customers.csv", ["customer_id", "monthly_charge"])  # marked as text: no stop


def test_training_stops_on_infinite_numbers_and_bad_dates(customers: pd.DataFrame, tmp_path: Path) -> None:
    frame = customers.copy()
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[5, "tenure_months"] = "inf"
    with pytest.raises(UnreadableColumnError, match=r"column 'tenure_months': inf is not a finite number in rows 6"):
        check_training_columns(_csv(frame, tmp_path), "c.csv", [])
    frame = customers.copy()
    frame["signup_date"] = frame["signup_date"].astype(str)
    frame.loc[0, "signup_date"] = "31/01/2024"
    with pytest.raises(UnreadableColumnError, match=r"column 'signup_date': '31/01/2024' is not an ISO 8601 date"):
        check_training_columns(_csv(frame, tmp_path), "c.csv", [])


def test_text_columns_are_not_checked(customers: pd.DataFrame, tmp_path: Path) -> None:
    check_training_columns(_csv(customers, tmp_path), "c.csv", [])  # the generator's own data passes


def test_implausible_rows_are_rejected_or_warned(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    rows = customers.head(4).copy()
    rows["monthly_charge"] = rows["monthly_charge"].astype(object)
    rows.loc[1, "monthly_charge"] = 1e9
    rows.loc[2, "monthly_charge"] = "12,50"
    verdicts = row_verdicts(pipeline, rows)
    assert verdicts.reasons.tolist() == ["", IMPLAUSIBLE, UNREADABLE, ""]
    assert verdicts.details[1].startswith("monthly_charge: 1000000000.0: value outside the plausible range 0..")
    warned = row_verdicts(pipeline, rows, plausibility=WARN)
    assert warned.reasons.tolist() == ["", "", UNREADABLE, ""] and warned.implausible_warned == 1
    with pytest.raises(DataError, match=r"c\.csv: monthly_charge: '12,50' is not a finite number in rows 3"):
        check_rows(pipeline, rows, "c.csv")
    with pytest.raises(ImplausibleValueError, match=r"c\.csv: implausible value: monthly_charge: .* in rows 2$"):
        check_rows(pipeline, rows.drop(index=2), "c.csv")
    assert check_rows(pipeline, rows.drop(index=2), "c.csv", plausibility=WARN) == 1


def test_missing_required_column_names_it(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    with pytest.raises(MissingColumnError, match=r"^in\.parquet: column 'age' \(a model feature\) not found$"):
        check_required_columns(pipeline, [c for c in customers.columns if c != "age"], "in.parquet")
    check_required_columns(pipeline, customers.columns, "in.parquet")


def test_bundles_without_ranges_or_required_columns_check_neither(customers: pd.DataFrame) -> None:
    old = FeaturePipeline("customer_id", exclude=["clv"]).fit(customers)
    del old.ranges_, old.required_  # as pipelines fitted before these were kept
    assert all(r.plausible is None and not r.required for r in feature_rules(old))
    rows = customers.head(2).copy()
    rows.loc[0, "monthly_charge"] = 1e9
    assert row_verdicts(old, rows).reasons.tolist() == ["", ""]
    check_required_columns(old, ["customer_id"], "in.parquet")
    assert RecordEncoder(old).check_record({n: None for n in RecordEncoder(old).names}) == {}


def test_feature_schema_records_the_rules(pipeline: FeaturePipeline) -> None:
    by_name = {entry["name"]: entry for entry in pipeline.schema()}
    tenure = by_name["tenure_months"]
    assert tenure["required"] is True
    assert tenure["observed_range"] == list(pipeline.ranges_["tenure_months"])
    rule = next(r for r in feature_rules(pipeline) if r.name == "tenure_months")
    assert tuple(tenure["plausible_range"]) == rule.plausible
    assert "plausible_range" not in by_name["plan"]


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://scott:tiger@db:5432/cx", "postgresql://scott:***@db:5432/cx"),
    ("postgresql+psycopg://u:p%40ss@127.0.0.1/test?sslmode=require",
     "postgresql+psycopg://u:***@127.0.0.1/test?sslmode=require"),
    ("https://user:s3cret@mlflow.example/", "https://user:***@mlflow.example/"),
    ("mysql://u@h/db?password=s3cret&charset=utf8", "mysql://u@h/db?password=***&charset=utf8"),
    ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
    ("/plain/path/mlruns", "/plain/path/mlruns"),
])
def test_mask_url_hides_passwords(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "tiger" not in mask_url(url) and "s3cret" not in mask_url(url)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["", " ", "1e999", "-0", "2024-02-30", "NaN", "\x00", "١٢", "12,50", "yes"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(JSON_VALUES, min_size=1, max_size=25))
def test_record_encoder_never_raises(values: list, pipeline: FeaturePipeline) -> None:
    """Any JSON value in any feature: a number or a named problem, never an exception (a 500)."""
    encoder = RecordEncoder(pipeline)
    record = {name: values[j % len(values)] for j, name in enumerate(encoder.names)}
    X, problems = encoder.encode_checked([record])
    loose = encoder.encode([record])
    for j, name in enumerate(encoder.names):
        problem = problems.get(0, {}).get(name)
        assert problem is None or isinstance(problem, FeatureProblem)
        if problem is None:  # an accepted value encodes as the lenient path encodes it
            assert X[0, j] == loose[0, j] or (math.isnan(X[0, j]) and math.isnan(loose[0, j]))
    assert np.isfinite(X[np.isfinite(X)]).all()


def test_readme_table_is_the_modules() -> None:
    from cxpredict.features.validation import rules_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = "<!-- bad-input-rules:start -->\n", "\n<!-- bad-input-rules:end -->"
    assert readme[readme.index(start) + len(start): readme.index(end)] == rules_markdown()


def test_documented_messages_are_the_real_ones(customers: pd.DataFrame, pipeline: FeaturePipeline,
                                               tmp_path: Path) -> None:
    """Each rule's documented message, against the message the code prints for that mistake."""
    from cxpredict.features.config import ConfigError, load_config, parse_config
    from cxpredict.features.load import not_utf8
    from cxpredict.features.validation import RULES, message_matches

    rules = {r.name: r for r in RULES}
    real: dict[str, str] = {}

    def caught(name: str, call: object, *args: object) -> None:
        with pytest.raises((DataError, ConfigError)) as err:
            call(*args)  # type: ignore[operator]
        real[name] = str(err.value)

    rows = customers.head(3).copy()
    rows["monthly_charge"] = rows["monthly_charge"].astype(object)
    rows.loc[1, "monthly_charge"] = "12,50"
    caught(UNREADABLE, check_rows, pipeline, rows, "c.csv")
    rows.loc[1, "monthly_charge"] = 1e9
    caught(IMPLAUSIBLE, check_rows, pipeline, rows, "c.csv")
    caught("missing column", check_required_columns, pipeline, [c for c in customers if c != "age"], "in.parquet")
    frame = customers.copy()
    frame["monthly_charge"] = frame["monthly_charge"].astype(object)
    frame.loc[3, "monthly_charge"] = "12,50"
    caught("unreadable training column", check_training_columns, _csv(frame, tmp_path), "c.csv", [])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,name\n1,caf\u00e9\n".encode("latin-1"))
    real["data file not UTF-8"] = not_utf8(latin)
    config = tmp_path / "c.yaml"
    config.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    caught("config not UTF-8", load_config, config)
    config.write_text("name: [x\n")
    caught("config YAML syntax", load_config, config)
    config.write_text("# " + "x" * 1_000_001)
    caught("config size", load_config, config)
    raw = {"name": "a", "id_column": "id", "data": {"customers": "../x.csv", "survey": "s.csv"},
           "score": {"column": "s", "scale": [0, 1], "bands": {"low": [0, 0], "high": [1, 1]}}}
    caught("data path outside the config's folder", parse_config, raw, tmp_path)
    for name, message in real.items():
        assert message_matches(rules[name], message), (name, message)
    assert "\n" not in "".join(real.values())


def test_urls_inside_free_text_lose_their_password() -> None:
    from cxpredict.features.secrets import mask_urls_in

    text = "could not connect to 'postgresql://scott:tiger@db:5432/cx' (retry https://u:p4ss@host/x?token=abc)"
    masked = mask_urls_in(text)
    assert "tiger" not in masked and "p4ss" not in masked and "abc" not in masked
    assert "postgresql://scott:***@db:5432/cx" in masked and masked.startswith("could not connect to '")


def test_missing_spellings_are_pandas_csv_ones() -> None:
    """'NaN' in a Parquet or JSON text means what it means in a CSV: the list is pandas' own."""
    from pandas._libs.parsers import STR_NA_VALUES

    from cxpredict.features.build import MISSING_TEXTS

    assert set(STR_NA_VALUES) == MISSING_TEXTS


def test_booleans_in_a_numeric_column_are_unreadable(customers: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    """A typed yes/no column (Parquet bool) or a Python True where numbers were learned is not 1."""
    typed = customers.head(3).copy()
    typed["tenure_months"] = [True, False, True]
    with pytest.raises(DataError, match=r"^in\.parquet: tenure_months: True is not a finite number in rows 1, 2, 3$"):
        check_rows(pipeline, typed, "in.parquet")
    mixed = customers.head(3).copy()
    mixed["tenure_months"] = pd.Series([12, True, None], dtype=object)
    assert list(row_verdicts(pipeline, mixed).reasons) == ["", UNREADABLE, ""]
    encoder = RecordEncoder(pipeline)
    j = encoder.names.index("tenure_months")
    assert math.isnan(encoder.encode_value(j, True)) and encoder.encode_value(j, 12) == 12.0
    assert encoder.check_record({**customers.iloc[0].to_dict(), "tenure_months": True})["tenure_months"].kind == (
        "wrong_type")


def test_a_text_column_of_numbers_is_a_number_feature_as_in_a_csv() -> None:
    """A Parquet string column of numbers is read as a CSV reads the same values (issue 16's parity)."""
    from cxpredict.features.build import CATEGORICAL, NUMERIC, infer_kind

    as_text = pd.Series([" 12", "89.5", "NA", None, "1e3", "-4"], dtype="string")
    assert infer_kind(as_text) == NUMERIC
    assert infer_kind(as_text.astype(object)) == NUMERIC
    assert infer_kind(pd.Series(["12", "twelve", "3"] * 100, dtype="string")) == CATEGORICAL
    assert infer_kind(pd.Series(["NA", None], dtype="string")) == CATEGORICAL  # nothing given: no evidence

"""The fitted feature pipeline: column kinds, frozen categories and robust encoding of messy batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.build import (
    BOOLEAN,
    CATEGORICAL,
    DATE,
    MAX_CATEGORIES,
    NUMERIC,
    FeaturePipeline,
    infer_kind,
    to_boolean,
    to_days,
)

pytestmark = pytest.mark.unit


def customers(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A small customers table with every kind of column, including missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "plan": rng.choice(["basic", "standard", "premium"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "tenure_months": rng.integers(1, 72, n),
        "monthly_charge": rng.uniform(10, 120, n).round(2),
        "paperless": rng.choice([True, False], n),
        "phone_service": rng.choice(["Yes", "No"], n),
        "signup_date": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        "last_contact": [f"2024-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n),
                                                                  strict=True)],
        "clv": rng.uniform(100, 5000, n),
    })
    frame.loc[[3, 11], "plan"] = None
    frame.loc[[5], "monthly_charge"] = np.nan
    frame.loc[[7], "last_contact"] = None
    return frame


def fitted(frame: pd.DataFrame | None = None, **kwargs: list[str]) -> FeaturePipeline:
    frame = customers() if frame is None else frame
    return FeaturePipeline("customer_id", exclude=kwargs.get("exclude", ["clv"]),
                           categorical=kwargs.get("categorical", [])).fit(frame)


def column(pipeline: FeaturePipeline, matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, pipeline.feature_names_.index(name)]


# --- kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (pd.Series([1, 2, 3, 40]), NUMERIC),
        (pd.Series([1.5, np.nan, 3.0]), NUMERIC),
        (pd.Series([0, 1, 1, 0]), NUMERIC),  # 0/1 integers stay numeric (counts, flags alike)
        (pd.Series(["a", "b", None]), CATEGORICAL),
        (pd.Series(["a", "b"], dtype="category"), CATEGORICAL),
        (pd.Series([True, False, True]), BOOLEAN),
        (pd.Series(["Yes", "No", None, "yes"]), BOOLEAN),
        (pd.Series(["true", "false"]), BOOLEAN),
        (pd.Series(pd.to_datetime(["2024-01-31", None])), DATE),
        (pd.Series(pd.to_datetime(["2024-01-31", "2024-02-01"], utc=True)), DATE),
        (pd.Series(["2024-01-31", "2023-12-01", None]), DATE),
        (pd.Series(["2024-01-31T08:30:00", "2023-12-01 10:00"]), DATE),
        (pd.Series(["31/01/2024", "01/12/2023"]), CATEGORICAL),  # not ISO: not guessed as a date
    ],
)
def test_infer_kind(values: pd.Series, kind: str) -> None:
    assert infer_kind(values) == kind


def test_infer_kind_forced_categorical_wins_over_numbers() -> None:
    assert infer_kind(pd.Series([94110, 94111]), forced_categorical=True) == CATEGORICAL


def test_pipeline_kinds_of_a_customers_table() -> None:
    pipeline = fitted()
    kinds = {s.name: s.kind for s in pipeline.specs_}
    assert kinds == {
        "plan": CATEGORICAL, "region": CATEGORICAL, "tenure_months": NUMERIC, "monthly_charge": NUMERIC,
        "paperless": BOOLEAN, "phone_service": BOOLEAN, "signup_date": DATE, "last_contact": DATE,
    }
    assert pipeline.categorical_indices_ == [0, 1]
    schema = {s["name"]: s for s in pipeline.schema()}
    assert schema["plan"] == {"name": "plan", "kind": CATEGORICAL, "categories": ["basic", "premium", "standard"],
                              "required": True}
    assert schema["tenure_months"]["kind"] == NUMERIC and schema["tenure_months"]["required"] is True


# --- what is (not) a feature ----------------------------------------------------------------


def test_id_and_excluded_columns_are_never_features() -> None:
    frame = customers()
    frame["customer_id"] = np.arange(len(frame))  # a numeric id would otherwise look like a feature
    pipeline = fitted(frame, exclude=["clv", "tenure_months"])
    assert "customer_id" not in pipeline.feature_names_
    assert "clv" not in pipeline.feature_names_ and "tenure_months" not in pipeline.feature_names_
    assert pipeline.transform(frame).shape == (len(frame), len(pipeline.feature_names_))
    assert not {"customer_id", "clv", "tenure_months"} & set(pipeline.skipped_)


def test_identifier_like_text_is_skipped_and_reported() -> None:
    frame = customers(n=MAX_CATEGORIES + 50)
    frame["email"] = [f"user{i}@example.com" for i in range(len(frame))]
    frame["empty"] = np.nan
    pipeline = fitted(frame)
    assert "email" not in pipeline.feature_names_ and "empty" not in pipeline.feature_names_
    assert pipeline.skipped_["email"] == f"{MAX_CATEGORIES + 50} distinct text values (looks like an identifier)"
    assert pipeline.skipped_["empty"] == "all values missing"
    # Forcing a column categorical keeps it, however many values it has.
    forced = fitted(frame, categorical=["email"])
    assert "email" in forced.feature_names_ and "email" not in forced.skipped_


def test_no_usable_column_is_an_error() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b"], "clv": [1.0, 2.0]})
    with pytest.raises(ValueError, match="no usable feature column"):
        fitted(frame)


# --- frozen categories ----------------------------------------------------------------------


def test_codes_do_not_depend_on_batch_row_order() -> None:
    frame = customers()
    pipeline = fitted(frame)
    encoded = pipeline.transform(frame)
    order = np.random.default_rng(1).permutation(len(frame))
    shuffled = pipeline.transform(frame.iloc[order].reset_index(drop=True))
    np.testing.assert_array_equal(shuffled, encoded[order])


def test_codes_do_not_depend_on_which_categories_a_batch_holds() -> None:
    frame = customers()
    pipeline = fitted(frame)
    only_premium = frame[frame["plan"] == "premium"]
    codes = column(pipeline, pipeline.transform(only_premium), "plan")
    assert set(codes) == {float(pipeline.specs_[0].categories.index("premium"))}
    single = column(pipeline, pipeline.transform(frame.iloc[[0]]), "region")
    np.testing.assert_array_equal(single, column(pipeline, pipeline.transform(frame), "region")[[0]])


def test_categories_do_not_depend_on_training_row_order() -> None:
    frame = customers()
    reversed_fit = fitted(frame.iloc[::-1].reset_index(drop=True))
    assert reversed_fit.specs_ == fitted(frame).specs_
    np.testing.assert_array_equal(reversed_fit.transform(frame), fitted(frame).transform(frame))


def test_unseen_and_missing_categories_become_nan() -> None:
    pipeline = fitted()
    batch = pd.DataFrame({"plan": ["basic", "platinum", None, np.nan], "region": ["north", "north", "mars", ""]})
    encoded = pipeline.transform(batch)
    plan, region = column(pipeline, encoded, "plan"), column(pipeline, encoded, "region")
    assert plan[0] == pipeline.specs_[0].categories.index("basic")
    assert np.isnan(plan[1:]).all()
    assert not np.isnan(region[:2]).any() and np.isnan(region[2:]).all()


def test_integer_categories_match_whether_they_arrive_as_int_float_or_text() -> None:
    # An int column with a missing value is read as float (94110.0): still category 94110.
    train = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "zip_code": [94110, 94111, np.nan, 94110]})
    pipeline = FeaturePipeline("customer_id", categorical=["zip_code"]).fit(train)
    assert pipeline.specs_[0].categories == ("94110", "94111")
    as_int = pipeline.transform(pd.DataFrame({"zip_code": [94111, 94110]}))
    as_text = pipeline.transform(pd.DataFrame({"zip_code": ["94111", "94110"]}))
    as_float = pipeline.transform(pd.DataFrame({"zip_code": [94111.0, np.nan]}))
    np.testing.assert_array_equal(as_int[:, 0], [1.0, 0.0])
    np.testing.assert_array_equal(as_text[:, 0], [1.0, 0.0])
    np.testing.assert_array_equal(as_float[:, 0], [1.0, np.nan])


def test_decode_gives_the_category_text_back() -> None:
    frame = customers()
    pipeline = fitted(frame)
    decoded = pipeline.decode(pipeline.transform(frame))
    assert decoded["plan"].fillna("<missing>").tolist() == frame["plan"].fillna("<missing>").tolist()
    np.testing.assert_allclose(decoded["tenure_months"], frame["tenure_months"])


# --- robust values --------------------------------------------------------------------------


def test_infinite_and_non_numeric_values_become_nan() -> None:
    pipeline = fitted()
    batch = pd.DataFrame({"monthly_charge": [np.inf, -np.inf, 42.5, np.nan], "tenure_months": ["12", "n/a", 3, None]})
    encoded = pipeline.transform(batch)
    np.testing.assert_array_equal(column(pipeline, encoded, "monthly_charge"), [np.nan, np.nan, 42.5, np.nan])
    np.testing.assert_array_equal(column(pipeline, encoded, "tenure_months"), [12.0, np.nan, 3.0, np.nan])
    assert encoded.dtype == np.float64


def test_absent_columns_become_nan_and_are_reported() -> None:
    pipeline = fitted()
    batch = pd.DataFrame({"plan": ["basic", "premium"], "tenure_months": [3, 40]})
    encoded = pipeline.transform(batch)
    assert encoded.shape == (2, len(pipeline.feature_names_))
    present = [pipeline.feature_names_.index(c) for c in ("plan", "tenure_months")]
    absent = [j for j in range(encoded.shape[1]) if j not in present]
    assert np.isnan(encoded[:, absent]).all() and not np.isnan(encoded[:, present]).any()
    assert set(pipeline.missing_columns(batch)) == set(pipeline.feature_names_) - {"plan", "tenure_months"}


def test_booleans_from_any_spelling() -> None:
    values = pd.Series([True, False, "Yes", "no", "TRUE", "f", "1", None, "maybe"])
    np.testing.assert_array_equal(to_boolean(values), [1, 0, 1, 0, 1, 0, 1, np.nan, np.nan])


def test_dates_are_days_since_epoch_whatever_their_form() -> None:
    stamps = pd.Series(pd.to_datetime(["1970-01-02", "2024-01-31", None]))
    np.testing.assert_array_equal(to_days(stamps), [1.0, 19753.0, np.nan])
    np.testing.assert_array_equal(to_days(stamps.dt.tz_localize("UTC")), [1.0, 19753.0, np.nan])
    text = pd.Series(["1970-01-02", "2024-01-31T12:00:00", None, "not a date"])
    np.testing.assert_array_equal(to_days(text), [1.0, 19753.5, np.nan, np.nan])


def test_iso_date_strings_parse_the_same_in_any_row_order() -> None:
    # A format guessed from the first row would turn the other form into NaN in one order only.
    text = pd.Series(["2024-01-31T12:00:00", "2023-06-01"])
    np.testing.assert_array_equal(to_days(text), to_days(text.iloc[::-1].reset_index(drop=True))[::-1])
    assert not np.isnan(to_days(text)).any()

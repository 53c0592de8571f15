"""The registered pyfunc model (`models:/<name>@champion`) scores like the bundle, on tables as loaded.

MLflow enforces the logged signature before our code runs, so these tests go through
`mlflow.pyfunc.load_model` exactly as `mlflow models serve` or a Spark UDF would.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.types.schema import AnyType, DataType

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.models.registry import load_registered_bundle
from tests.conftest import TrainedCompany

pytestmark = pytest.mark.model

INTEGER_COLUMNS = ["tenure_months", "support_tickets_90d", "unresolved_tickets"]


@pytest.fixture(scope="module")
def champion(small_training: TrainedCompany) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(small_training.config.tracking_uri)
    mlflow.set_registry_uri(small_training.config.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{small_training.config.registered_model_name}@champion")


def assert_same_scores(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    text = [c for c in ("customer_id", "problem_group") if c in expected.columns]
    for column in text:
        assert got[column].tolist() == expected[column].tolist()
    np.testing.assert_allclose(
        got.drop(columns=text).to_numpy(float), expected.drop(columns=text).to_numpy(float), rtol=0, atol=1e-12,
    )


def test_champion_scores_loaded_customers_like_the_bundle(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel
) -> None:
    customers = load_dataset(small_training.config).customers.head(300)
    assert_same_scores(champion.predict(customers), small_training.bundle.predict(customers))


def test_champion_accepts_missing_values_in_integer_columns(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel
) -> None:
    customers = load_dataset(small_training.config).customers.head(300).copy()
    assert all(pd.api.types.is_integer_dtype(customers[c]) for c in INTEGER_COLUMNS)
    for k, column in enumerate(INTEGER_COLUMNS):
        customers.loc[k * 20: k * 20 + 24, column] = np.nan  # the column becomes float, as pandas does
    customers = customers.astype({"paperless_billing": object})  # a bool column with gaps is object
    customers.loc[100:110, ["segment", "signup_date", "paperless_billing"]] = None
    scores = champion.predict(customers)
    assert_same_scores(scores, small_training.bundle.predict(customers))
    assert np.isfinite(scores["churn_probability"]).all()


def test_champion_scores_a_customers_csv_as_loaded(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel, tmp_path: Path
) -> None:
    """Integer columns with gaps arrive as float and dates as text when the table is a CSV."""
    parquet = load_dataset(small_training.config).customers.copy()
    parquet.loc[0:30, "unresolved_tickets"] = np.nan
    parquet.loc[10:40, "tenure_months"] = np.nan
    parquet.to_csv(tmp_path / "customers.csv", index=False)
    source = small_training.config.base_dir
    raw = yaml.safe_load((source / "cxpredict.yaml").read_text())
    raw["data"] = {"customers": "customers.csv", "survey": str(source / "survey.csv")}
    (tmp_path / "cxpredict.yaml").write_text(yaml.safe_dump(raw))
    customers = load_dataset(load_config(tmp_path / "cxpredict.yaml")).customers
    assert customers["tenure_months"].dtype == np.float64
    assert not pd.api.types.is_datetime64_any_dtype(customers["signup_date"])
    scores = champion.predict(customers)
    assert_same_scores(scores, small_training.bundle.predict(customers))
    # and the same numbers as the Parquet rows they came from
    assert_same_scores(scores, small_training.bundle.predict(parquet))


def test_champion_signature_lists_the_features_and_declares_integer_columns_any(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel
) -> None:
    schema = {spec.name: spec for spec in champion.metadata.get_input_schema().inputs}
    assert list(schema) == ["customer_id", *small_training.bundle.pipeline.feature_names_]
    assert "clv" not in schema  # excluded (value) column: not a model input
    assert schema["customer_id"].required and schema["customer_id"].type == DataType.string
    for column in INTEGER_COLUMNS:
        assert schema[column].type == AnyType()
    assert schema["monthly_charge"].type == DataType.double
    assert schema["plan"].type == DataType.string
    assert not any(spec.required for name, spec in schema.items() if name != "customer_id")


def test_champion_scores_a_batch_without_an_optional_column(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel
) -> None:
    customers = load_dataset(small_training.config).customers.head(50).drop(columns=["network_quality", "clv"])
    assert_same_scores(champion.predict(customers), small_training.bundle.predict(customers))


def test_loading_the_champion_ignores_mlflow_global_stores(
    small_training: TrainedCompany, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cxpredict score` in a shell (or a process) whose MLflow globals point at another store."""
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    try:
        loaded = load_registered_bundle(small_training.config.tracking_uri, small_training.config.registered_model_name)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert loaded.version == "1" and loaded.run_id == small_training.result.run_id
    customers = load_dataset(small_training.config).customers.head(20)
    assert_same_scores(loaded.bundle.predict(customers), small_training.bundle.predict(customers))


def test_champion_params_give_the_full_score_table(
    small_training: TrainedCompany, champion: mlflow.pyfunc.PyFuncModel
) -> None:
    """With params the pyfunc returns what `cxpredict score` writes: sets, intervals and drivers."""
    from cxpredict.models.bundle import predict_uncertainty
    from cxpredict.models.explain import explain_top_k

    customers = load_dataset(small_training.config).customers.head(200)
    bundle = small_training.bundle
    table = champion.predict(customers, params={"uncertainty": True, "level": 0.8, "explain": 2,
                                                "explain_targets": "churn, expected_score"})
    plain = bundle.predict(customers)
    uncertainty = predict_uncertainty(bundle, customers, plain, level=0.8)
    drivers = explain_top_k(bundle, customers, 2, ["churn", "expected_score"])
    assert list(table.columns) == [*plain.columns, *uncertainty.columns, *drivers.columns]
    assert table["prediction_set"].tolist() == uncertainty["prediction_set"].tolist()
    np.testing.assert_allclose(table["expected_score_low"], uncertainty["expected_score_low"], rtol=0, atol=1e-12)
    assert table["driver1_churn_feature"].tolist() == drivers["driver1_churn_feature"].tolist()
    np.testing.assert_allclose(table["driver2_expected_score_contribution"],
                               drivers["driver2_expected_score_contribution"], rtol=0, atol=1e-12)
    wider = champion.predict(customers, params={"uncertainty": True, "level": 0.95})
    assert (wider["set_size"] >= table["set_size"]).all() and (wider["set_size"] > table["set_size"]).any()
    assert_same_scores(champion.predict(customers, params={}), plain)  # no params: the plain predictions

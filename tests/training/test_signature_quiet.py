"""The model signature is built without MLflow's integer-column hint, which means nothing to a user here."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.types.schema import AnyType

from cxpredict.training.registry import model_signature

pytestmark = pytest.mark.model

HINT = "Inferred schema contains integer column"


def _hints(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if HINT in str(w.message)]


def test_signature_of_integer_columns_without_the_hint(small_bundle: tuple) -> None:
    bundle, dataset = small_bundle
    sample = dataset.customers.head(200)
    integers = [c for c in sample.columns if pd.api.types.is_integer_dtype(sample[c])]
    assert integers, "the small company has integer columns (tenure, counts): the case the hint is about"

    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("always")
        infer_signature(sample)
    assert _hints(plain), "MLflow itself warns about these columns (else this test shows nothing)"

    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        signature = model_signature(bundle, sample)
    assert _hints(ours) == []
    # The hint's advice is already followed: integer-like feature columns are declared `Any`.
    declared = {spec.name: spec.type for spec in signature.inputs.inputs}
    features = [c for c in integers if c in declared and c != bundle.id_column]
    assert features and all(isinstance(declared[c], AnyType) for c in features)

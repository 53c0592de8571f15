"""The bundle is read from a local copy checked against the run's SHA-256, not through MLflow each time."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from cxpredict.features.load import load_dataset
from cxpredict.models import registry
from cxpredict.models.registry import BUNDLE_CACHE_ENV, load_registered_bundle
from tests.conftest import TrainedCompany

pytestmark = pytest.mark.model


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("went through MLflow")


def test_local_copy_is_used_verified_and_refetched_when_tampered(
    small_training: TrainedCompany, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = small_training.config
    monkeypatch.setenv(BUNDLE_CACHE_ENV, str(tmp_path / "cache"))
    customers = load_dataset(config).customers.head(40)
    expected = small_training.bundle.predict(customers)
    first = load_registered_bundle(config.tracking_uri, config.registered_model_name)  # fetched, then kept
    copies = list((tmp_path / "cache").glob(f"*/{first.version}/*/manifest.json"))
    assert len(copies) == 1
    folder = copies[0].parent

    # Second load: neither MLflow's client nor its artifact download runs (SQLite read + local copy).
    with monkeypatch.context() as patched:
        patched.setattr(registry, "tracking_client", _refuse)
        patched.setattr(mlflow.artifacts, "download_artifacts", _refuse)
        again = load_registered_bundle(config.tracking_uri, config.registered_model_name)
    assert (again.version, again.run_id, again.alias) == (first.version, first.run_id, "champion")
    pd.testing.assert_frame_equal(again.bundle.predict(customers), expected)

    # A changed file in the copy is refused and the copy dropped: the load goes back to the store.
    booster = next((folder / "boosters").glob("*.txt"))
    original = booster.read_bytes()
    booster.write_bytes(original.replace(b"leaf_value=", b"leaf_value=9", 1))
    with monkeypatch.context() as patched:
        patched.setattr(mlflow.artifacts, "download_artifacts", _refuse)
        with pytest.raises(AssertionError, match="went through MLflow"):
            load_registered_bundle(config.tracking_uri, config.registered_model_name)
    assert not folder.exists()
    # ... and with the store there, the copy is fetched again, checked, and scores as trained.
    fetched = load_registered_bundle(config.tracking_uri, config.registered_model_name)
    pd.testing.assert_frame_equal(fetched.bundle.predict(customers), expected)
    assert booster.read_bytes() == original

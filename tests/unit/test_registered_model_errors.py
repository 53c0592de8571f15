"""A missing or broken registered model version is one line naming it (a user error, exit 2), not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxpredict.models.bundle_files import BundleError
from cxpredict.models.registry import CHAMPION, RegisteredModelError, load_registered_bundle, tracking_client

pytestmark = pytest.mark.unit


def test_missing_and_broken_versions_are_named(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RegisteredModelError, match=r"^cxpredict-x@champion: no such registered model version"):
        load_registered_bundle(uri, "cxpredict-x")
    client = tracking_client(uri)
    client.create_registered_model("cxpredict-x")
    version = client.create_model_version("cxpredict-x", source=str(tmp_path / "deleted-model"))
    client.set_registered_model_alias("cxpredict-x", CHAMPION, version.version)
    with pytest.raises(RegisteredModelError) as caught:
        load_registered_bundle(uri, "cxpredict-x")
    message = str(caught.value)
    assert message.startswith("cxpredict-x version 1: its model files cannot be read (")
    assert message.endswith("register a working version or move the alias") and "\n" not in message
    assert isinstance(caught.value, BundleError)  # the CLI's user errors: exit 2 and this one line
    with pytest.raises(RegisteredModelError, match=r"^cxpredict-x version 7: no such registered model version"):
        load_registered_bundle(uri, "cxpredict-x", version="7")

"""Server settings: environment prefix, API keys from env or file, default store location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cxpredict.features.config import parse_config
from cxpredict.serving.api.settings import Scope, ServingSettings, default_store_url

pytestmark = pytest.mark.unit

MINIMAL = {
    "name": "t", "id_column": "id", "data": {"customers": "c.csv", "survey": "s.csv"},
    "score": {"column": "nps", "scale": [0, 10], "bands": {"low": [0, 6], "high": [7, 10]}},
}


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXPREDICT_CONFIG", str(tmp_path / "cxpredict.yaml"))
    monkeypatch.setenv("CXPREDICT_MAX_CUSTOMERS", "50")
    monkeypatch.setenv("CXPREDICT_API_KEYS", json.dumps({"k" * 20: ["score", "admin"]}))
    settings = ServingSettings()  # type: ignore[call-arg]
    assert settings.max_customers == 50 and settings.auth_enabled
    assert settings.api_keys == {"k" * 20: [Scope.score, Scope.admin]}
    assert settings.reload_poll_s == 0.0 and settings.store_url is None


def test_settings_merge_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("file-key-0123456789: [simulate]\n")
    settings = ServingSettings(config=tmp_path / "c.yaml", api_keys_file=keys,
                               api_keys={"env-key-0123456789": ["score"]})
    assert settings.api_keys == {"file-key-0123456789": [Scope.simulate], "env-key-0123456789": [Scope.score]}


@pytest.mark.parametrize("bad", [{"api_keys": {"short": ["score"]}}, {"api_keys": {"k" * 20: ["root"]}},
                                 {"max_customers": 0}, {"store_table": "x; drop table y"}])
def test_settings_reject_bad_values(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValidationError):
        ServingSettings(config=tmp_path / "c.yaml", **bad)


def test_default_store_beside_mlflow_store(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path)
    assert default_store_url(config) == f"sqlite:///{(tmp_path / 'cxstore.db').resolve()}"
    remote = parse_config({**MINIMAL, "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/ml/m.db"}}, tmp_path)
    assert default_store_url(remote) == f"sqlite:///{(tmp_path / 'ml' / 'cxstore.db').resolve()}"

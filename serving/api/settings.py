"""Typed settings of the API server, read from CXPREDICT_* environment variables (never at import time).

The dataset config (`cxpredict.yaml`) says what the data and models are; these settings say how
this server runs: where the customer store is, who may call it, and its limits.
"""

from __future__ import annotations

import json
import logging
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from cxpredict.features.campaigns import default_store_url as campaign_store_default
from cxpredict.features.config import CxConfig
from cxpredict.models.registry import CHAMPION

logger = logging.getLogger(__name__)
SHA256_HEX = r"^[0-9a-f]{64}$"


class Scope(StrEnum):
    """What an API key may do."""

    score = "score"  # scores, customers, model, strategies, drivers, alerts
    simulate = "simulate"  # strategy simulations
    admin = "admin"  # model reload, alert rules; implies tasks:read and tasks:write
    tasks_read = "tasks:read"  # list and read tasks
    tasks_write = "tasks:write"  # acknowledge and close tasks; implies tasks:read


IMPLIED_SCOPES: dict[Scope, frozenset[Scope]] = {
    Scope.admin: frozenset({Scope.tasks_read, Scope.tasks_write}),
    Scope.tasks_write: frozenset({Scope.tasks_read}),
}


class ApiKeyEntry(BaseModel):
    """One API key: its scopes, a name (who, in task events) and optionally the one owner it may see."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scopes: list[Scope]
    name: str | None = Field(None, min_length=1, max_length=80)
    owner: str | None = None  # row-level restriction: only this owner's tasks
    # The key's SHA-256 (hex) instead of the key: no plain key sits in a file or the environment.
    # The mapping's key is then only a label (the key's name when `name` is not given).
    key_sha256: str | None = Field(None, pattern=SHA256_HEX)

    def granted(self) -> frozenset[Scope]:
        return frozenset(self.scopes).union(*(IMPLIED_SCOPES.get(s, frozenset()) for s in self.scopes))


def key_entry(value: list[Scope] | ApiKeyEntry) -> ApiKeyEntry:
    """A key's value as configured, a list of scopes (the original form) or a mapping, as one entry."""
    return value if isinstance(value, ApiKeyEntry) else ApiKeyEntry(scopes=list(value))


# A key maps to its scopes (the original form, kept as given) or to {scopes, name, owner}.
ApiKeys = dict[str, list[Scope] | ApiKeyEntry]


class ServingSettings(BaseSettings):
    """How the server runs. Every field can be set as CXPREDICT_<NAME> (dicts and lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="CXPREDICT_", extra="ignore")

    config: Annotated[Path, Field(description="path of cxpredict.yaml")]
    store_url: str | None = Field(
        None, description="SQLAlchemy URL of the customer store; default: SQLite file beside the MLflow store"
    )
    store_table: str = Field("customers", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
    model_alias: str = CHAMPION
    api_keys: ApiKeys = Field(default_factory=dict, description='{"<key>": ["score", "simulate", "admin"]} or '
                              '{"<key>": {"scopes": ["tasks:read"], "name": "north desk", "owner": "north"}}')
    api_keys_file: Path | None = Field(None, description="YAML or JSON file with the same mapping as api_keys")
    max_customers: int = Field(1000, ge=1, le=100_000, description="customers per request")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="request bodies above this get 413")
    access_log_ids: bool = Field(
        True, description="false: customer ids in request paths are written as {id} in the access log")
    reload_poll_s: float = Field(0.0, ge=0.0, description="check the alias every N seconds; 0 = only on request")
    predict_threads: int = Field(1, ge=1, description="LightGBM threads per prediction (1 is fastest per row)")
    alerts_pool: int = Field(10_000, ge=1, description="silent customers kept, ranked, for /v1/alerts")
    alerts_on_change: bool = Field(
        True, description="run the alert rules (config key `alerts`) when the served champion changes")
    explain_max: int = Field(10, ge=1, le=50, description="largest k accepted by ?explain=k")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _merge_key_file(self) -> ServingSettings:
        if self.api_keys_file is not None:
            if not self.api_keys_file.is_file():
                raise ValueError(f"api_keys_file {self.api_keys_file} not found")
            if self.api_keys_file.stat().st_mode & 0o077:  # group or others may read (or write) the keys
                logger.warning("api_keys_file %s is readable by other users (mode %o); chmod 600 it",
                               self.api_keys_file, self.api_keys_file.stat().st_mode & 0o777)
            try:
                raw = yaml.safe_load(self.api_keys_file.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError):  # the parser's message would quote the file's keys
                raise ValueError(f"api_keys_file {self.api_keys_file}: not valid YAML or JSON") from None
            if not isinstance(raw, dict):
                raise ValueError(f"api_keys_file {self.api_keys_file}: expected a mapping key -> [scopes]")
            merged = {**{str(k): ApiKeyEntry.model_validate(v) if isinstance(v, dict) else [Scope(s) for s in v]
                         for k, v in raw.items()}, **self.api_keys}
            object.__setattr__(self, "api_keys", merged)
        for key, value in self.api_keys.items():
            if len(key) < 16 and not (isinstance(value, ApiKeyEntry) and value.key_sha256):
                raise ValueError("API keys must be at least 16 characters long")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)


def settings_error_line(err: ValidationError) -> str:
    """A settings error as one line: the field and the message, never the input (it may hold API keys)."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    # Below api_keys the location's parts are the keys themselves: name the field only.
    if first["loc"] and first["loc"][0] == "api_keys":
        where = "api_keys"
    return f"server settings: {where or '<root>'}: {str(first['msg']).removeprefix('Value error, ')}"


def source_error_line(err: SourceError) -> str:
    """A CXPREDICT_* value pydantic-settings cannot parse (JSON syntax) as one line without the value."""
    match = re.search(r'field "([^"]+)"', str(err))
    field = match.group(1) if match else "<root>"
    cause = err.__cause__
    why = (f"not valid JSON ({cause.msg} at character {cause.pos})" if isinstance(cause, json.JSONDecodeError)
           else "cannot be read")
    return f"server settings: {field}: the value of CXPREDICT_{field.upper()} is {why}"


def read_settings(**values: object) -> ServingSettings:
    """Settings from the environment and `values`; any problem is a `ValueError` of one line without the input.

    pydantic's and pydantic-settings' own messages quote the input, which holds the API keys.
    """
    try:
        return ServingSettings(**values)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ValueError(settings_error_line(err)) from None
    except SourceError as err:
        raise ValueError(source_error_line(err)) from None


def default_store_url(config: CxConfig) -> str:
    """SQLite file `cxstore.db` beside the MLflow store (or beside the config when MLflow is remote)."""
    return campaign_store_default(config)  # one definition: the CLI's campaign commands use it too


def store_url(settings: ServingSettings, config: CxConfig) -> str:
    return settings.store_url or default_store_url(config)

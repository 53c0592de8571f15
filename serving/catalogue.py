"""The strategy catalogue named by the config's `strategies` key, read once at startup."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from features.config import ConfigError, CxConfig
from serving.schemas.strategies import StrategyResponse


def read_strategies(config: CxConfig) -> list[dict[str, Any]]:
    """The catalogue as a list of strategy mappings (empty when the config names none).

    Raises:
        ConfigError: the file is missing, not YAML, or a strategy breaks the format (named by id).
    """
    if not config.strategies:
        return []
    path = config.resolve(config.strategies)
    if not path.is_file():
        raise ConfigError(f"{path}: strategies file not found (config key 'strategies')")
    try:
        raw = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a list of strategies")
    adapter = TypeAdapter(StrategyResponse)
    strategies = []
    for i, item in enumerate(raw):
        label = item.get("id", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            strategies.append(adapter.validate_python(item).model_dump())
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: strategy '{label}': {where}: {first['msg']}") from None
    ids = [s["id"] for s in strategies]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"{path}: duplicate strategy id '{duplicated[0]}'")
    return strategies

"""Parsing of the YAML catalogues users write (strategies, alert rules): a list of mappings with unique ids.

Each catalogue has its own pydantic model; what they share is how a list is walked, how an item is named in
an error (`strategy 'x'` or `rule #3`) and how pydantic's first error becomes one readable line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cxpredict.features.config import ConfigError

Item = TypeVar("Item", bound=BaseModel)


def item_label(raw: Any, index: int, noun: str) -> str:
    """How an error names a catalogue item: by its id when it has one, else by its position (1-based)."""
    if isinstance(raw, Mapping) and raw.get("id"):
        return f"{noun} '{raw['id']}'"
    return f"{noun} #{index + 1}"


def validation_message(source: str, label: str, err: ValidationError, unknown_key: str | None = None) -> str:
    """One line for pydantic's deepest error: file, item, key path and message."""
    first = max(err.errors(), key=lambda e: len(e["loc"]))
    where = ".".join(str(p) for p in first["loc"]) or "<root>"
    message = str(first["msg"]).removeprefix("Value error, ")
    if unknown_key and first["type"] == "extra_forbidden":
        message = unknown_key
    return f"{source}: {label}: key '{where}': {message}"


def parse_catalogue(
    raw: Any,
    *,
    source: str,
    model: type[Item],
    error: type[ConfigError],
    noun: str,
    plural: str,
    expected_keys: str,
    unknown_key: str | None = None,
    check: Callable[[Item, str], None] | None = None,
) -> list[Item]:
    """Validate a non-empty list of mappings into `model` items with unique `id`s, in file order.

    Args:
        raw: the parsed YAML.
        source: the file name for error messages.
        model: the item's pydantic model (it has an `id`).
        error: the ConfigError subclass raised, one line each.
        noun: what an item is called in messages ("strategy", "rule").
        plural: what the list is called ("strategies", "alert rules").
        expected_keys: the keys named when an item is not a mapping.
        unknown_key: the message for a key the contract does not know (pydantic's own if None).
        check: a further check of a validated item, given its label; raises `error`.
    Returns:
        The validated items.
    """
    if not isinstance(raw, list) or not raw:
        raise error(f"{source}: expected a non-empty list of {plural}")
    items: list[Item] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        label = item_label(entry, index, noun)
        if not isinstance(entry, Mapping):
            raise error(f"{source}: {label}: expected a mapping with {expected_keys}")
        try:
            item = model.model_validate(dict(entry))
        except ValidationError as err:
            raise error(validation_message(source, label, err, unknown_key)) from None
        if check is not None:
            check(item, label)
        item_id = item.id  # type: ignore[attr-defined]
        if item_id in seen:
            raise error(f"{source}: {label}: key 'id': duplicate {noun} id '{item_id}'")
        seen.add(item_id)
        items.append(item)
    return items

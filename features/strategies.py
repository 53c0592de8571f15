"""Retention strategies as data: the catalogue model, loading and validation, eligibility and interventions.

A strategy is never code. `eligible` is a list of structured conditions (all must hold) and
`apply` maps a column to exactly one of `set`, `multiply` or `add`. Loading checks the shape
(pydantic); `validate_strategies` checks the catalogue against the customers table and/or a
model's feature schema (unknown columns, operators that do not fit the column's kind, values of
the wrong type, unknown categories), and every error names the file, the strategy and the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cxpredict.features.build import BOOLEAN, CATEGORICAL, DATE, NUMERIC, infer_kind, to_boolean
from cxpredict.features.catalogue import item_label, parse_catalogue, validation_message
from cxpredict.features.config import ConfigError, CxConfig, read_yaml_text

COMPARE_OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in")
APPLY_OPS: tuple[str, ...] = ("set", "multiply", "add")
ORDER_OPS = ("<", "<=", ">", ">=")
LIST_OPS = ("in", "not_in")


class StrategyError(ConfigError):
    """A strategy catalogue that breaks the contract; the message names the file, strategy and key."""


class Condition(BaseModel):
    """One eligibility condition: `column op value` (a missing value never satisfies it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    op: str
    value: Any = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str) -> str:
        if op not in COMPARE_OPS:
            raise ValueError(f"unknown op '{op}', use one of {list(COMPARE_OPS)}")
        return op

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.value is None:
            raise ValueError(f"condition on '{self.column}' needs a value")
        if self.op in LIST_OPS and not isinstance(self.value, list | tuple):
            raise ValueError(f"op '{self.op}' needs a list value, got {self.value!r}")
        if self.op not in LIST_OPS and isinstance(self.value, list | tuple | dict):
            raise ValueError(f"op '{self.op}' needs a single value, got {self.value!r}")
        return self

    @property
    def values(self) -> list[Any]:
        """The condition's value(s) as a list."""
        return list(self.value) if isinstance(self.value, list | tuple) else [self.value]


class Strategy(BaseModel):
    """One retention offer of the catalogue (`strategies.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    cost: float = Field(0.0, ge=0.0)  # per targeted customer, in value_column units
    eligible: list[Condition] = Field(default_factory=list)
    apply: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("apply")
    @classmethod
    def _one_known_op_per_column(cls, apply: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for column, change in apply.items():
            if len(change) != 1 or next(iter(change)) not in APPLY_OPS:
                raise ValueError(f"apply.{column} must be exactly one of {{set|multiply|add: value}}, got {change!r}")
            op, value = next(iter(change.items()))
            if op in ("multiply", "add") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"apply.{column}.{op} needs a number, got {value!r}")
            if value is None or isinstance(value, list | dict):
                raise ValueError(f"apply.{column}.{op} needs a single value, got {value!r}")
        return apply

    @property
    def intervention(self) -> list[tuple[str, str, Any]]:
        """The interventions as (column, op, value) triples."""
        return [(column, *next(iter(change.items()))) for column, change in self.apply.items()]


def as_strategy(strategy: Strategy | Mapping[str, Any], source: str = "strategies") -> Strategy:
    """A validated Strategy from a model or a plain mapping (the catalogue format).

    Args:
        strategy: a Strategy, or a mapping with id, name, cost, eligible, apply.
        source: where it came from, for the error message.
    Returns:
        The validated strategy.
    """
    if isinstance(strategy, Strategy):
        return strategy
    try:
        return Strategy.model_validate(dict(strategy))
    except ValidationError as err:
        raise StrategyError(validation_message(source, item_label(strategy, 0, "strategy"), err)) from None


def parse_strategies(raw: Any, source: str = "strategies") -> list[Strategy]:
    """Validate the shape of a catalogue (a list of strategy mappings) and that ids are unique.

    Args:
        raw: the parsed YAML (a list of mappings).
        source: the file name for error messages.
    Returns:
        The strategies in file order.
    """
    return parse_catalogue(
        raw,
        source=source,
        model=Strategy,
        error=StrategyError,
        noun="strategy",
        plural="strategies",
        expected_keys="id, name, cost, eligible, apply",
        check=lambda strategy, label: _check_has_interventions(strategy, label, source),
    )


def _check_has_interventions(strategy: Strategy, label: str, source: str) -> None:
    if not strategy.apply:
        raise StrategyError(
            f"{source}: {label}: key 'apply': needs at least one intervention (column: {{set|multiply|add: value}})"
        )


def load_strategies(path: str | Path) -> list[Strategy]:
    """Read and validate the shape of `strategies.yaml` (columns are checked by `validate_strategies`).

    Args:
        path: the YAML file.
    Returns:
        The strategies in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise StrategyError(f"{path}: strategies file not found")
    try:
        raw = read_yaml_text(path)  # one line for bad YAML (line and column), non-UTF-8 bytes, a huge file
    except ConfigError as err:
        raise StrategyError(str(err)) from None
    return parse_strategies(raw, str(path))


def config_strategies(config: CxConfig) -> tuple[list[Strategy], str]:
    """The catalogue named by the config key `strategies`, and its resolved path.

    Args:
        config: the dataset config.
    Returns:
        (strategies, path as text).
    """
    if not config.strategies:
        raise StrategyError(f"{config.base_dir / 'cxpredict.yaml'}: config key 'strategies' is not set")
    path = config.resolve(config.strategies)
    return load_strategies(path), str(path)


# ---------------------------------------------------------------------------------------------
# Validation against the data
# ---------------------------------------------------------------------------------------------


def column_kinds(customers: pd.DataFrame) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Kind and (for categoricals) observed categories of every column of a customers table.

    Args:
        customers: customer rows.
    Returns:
        column -> (kind, categories).
    """
    kinds: dict[str, tuple[str, tuple[str, ...]]] = {}
    for column in customers.columns:
        kind = infer_kind(customers[column])
        categories = tuple(sorted(customers[column].dropna().astype(str).unique())) if kind == CATEGORICAL else ()
        kinds[column] = (kind, categories)
    return kinds


def schema_kinds(schema: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Kind and frozen categories of every model input, from a bundle's feature schema.

    Args:
        schema: `FeaturePipeline.schema()` entries (name, kind, categories).
    Returns:
        feature -> (kind, categories).
    """
    return {s["name"]: (s["kind"], tuple(s.get("categories", ()))) for s in schema}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problem(kind: str, categories: tuple[str, ...], value: Any) -> str | None:
    """Why `value` cannot be compared with / written into a column of this kind (None when it can)."""
    if kind == NUMERIC and not _is_number(value):
        return f"needs a number for a numeric column, got {value!r}"
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return None
        if np.isnan(to_boolean(pd.Series([str(value)]))[0]):
            return f"needs a yes/no value for a boolean column, got {value!r}"
    if kind == DATE and pd.isna(pd.to_datetime(str(value), errors="coerce")):
        return f"needs a date (YYYY-MM-DD) for a date column, got {value!r}"
    if kind == CATEGORICAL and categories and str(value) not in categories:
        shown = list(categories[:10]) + (["..."] if len(categories) > 10 else [])
        return f"value {value!r} is not a known category (known: {shown})"
    return None


def _check_against(
    strategy: Strategy,
    kinds: Mapping[str, tuple[str, tuple[str, ...]]],
    what: str,
    label: str,
    eligible_must_exist: bool,
) -> None:
    """Check one strategy's columns, ops and values against one table of column kinds.

    With `eligible_must_exist=False` an eligibility column absent from `kinds` is skipped: a
    model's features are not every customers column (the value column is excluded from them).
    """
    for i, condition in enumerate(strategy.eligible):
        key = f"eligible.{i}"
        if condition.column not in kinds:
            if eligible_must_exist:
                raise StrategyError(
                    f"{label}: key '{key}.column': eligible column '{condition.column}' not found in {what}"
                )
            continue
        kind, categories = kinds[condition.column]
        if condition.op in ORDER_OPS and kind in (CATEGORICAL, BOOLEAN):
            raise StrategyError(
                f"{label}: key '{key}.op': op '{condition.op}' needs an ordered column; "
                f"'{condition.column}' is {kind}"
            )
        for value in condition.values:
            problem = _value_problem(kind, categories, value)
            if problem:
                raise StrategyError(f"{label}: key '{key}.value': column '{condition.column}': {problem}")
    for column, op, value in strategy.intervention:
        key = f"apply.{column}.{op}"
        if column not in kinds:
            raise StrategyError(f"{label}: key '{key}': apply column '{column}' not found in {what}")
        kind, categories = kinds[column]
        if op in ("multiply", "add") and kind != NUMERIC:
            raise StrategyError(f"{label}: key '{key}': '{op}' needs a numeric column; '{column}' is {kind}")
        if op == "set":
            problem = _value_problem(kind, categories, value)
            if problem:
                raise StrategyError(f"{label}: key '{key}': column '{column}': {problem}")


def validate_strategies(
    strategies: Sequence[Strategy],
    customers: pd.DataFrame | None = None,
    feature_schema: Iterable[Mapping[str, Any]] | None = None,
    source: str = "strategies",
    predicted: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> None:
    """Check a catalogue against the customers table and/or a model's feature schema.

    Eligibility may use any customers column (e.g. the value column); interventions must change
    a column the model reads, otherwise their simulated effect would be zero by construction.
    Categories are checked against the table's observed values and the model's frozen ones.

    Args:
        strategies: the parsed catalogue.
        customers: the customers table (columns, kinds and observed categories).
        feature_schema: the bundle's feature schema (`FeaturePipeline.schema()`).
        source: the catalogue's file name for error messages.
        predicted: kinds of the model's prediction columns (`models.problems.problem_kinds`):
            eligibility may use them (`p_cause_price >= 0.3`, `problem_group == price`), checked
            like any customers column; an intervention may not (a prediction is not changed by an offer).
    Returns:
        None; raises StrategyError naming the file, strategy and key on the first problem.
    """
    table = column_kinds(customers) if customers is not None else None
    schema = schema_kinds(feature_schema) if feature_schema is not None else None
    predicted = dict(predicted or {})
    if table is not None:
        table = {**predicted, **table}
    for strategy in strategies:
        label = f"{source}: strategy '{strategy.id}'"
        for column, op, _ in strategy.intervention:
            if column in predicted and (table is None or column not in column_kinds_names(customers)):
                raise StrategyError(
                    f"{label}: key 'apply.{column}.{op}': '{column}' is a prediction; "
                    "strategies change customer columns"
                )
        if predicted and table is None:
            _check_eligible_only(strategy, predicted, label)
        if table is not None:
            _check_against(strategy, table, "the customers table", label, eligible_must_exist=True)
        if schema is not None:
            _check_against(strategy, schema, "the model's features", label, eligible_must_exist=False)


def column_kinds_names(customers: pd.DataFrame | None) -> set[str]:
    return set() if customers is None else set(customers.columns)


def _check_eligible_only(strategy: Strategy, kinds: Mapping[str, tuple[str, tuple[str, ...]]], label: str) -> None:
    """Check the eligibility rules that name a column of `kinds` (the interventions are checked elsewhere)."""
    subset = strategy.model_copy(update={
        "eligible": [c for c in strategy.eligible if c.column in kinds], "apply": {},
    })
    offset = {id(c): i for i, c in enumerate(strategy.eligible)}
    for condition in subset.eligible:
        single = subset.model_copy(update={"eligible": [condition]})
        try:
            _check_against(single, kinds, "the model's predictions", label, eligible_must_exist=True)
        except StrategyError as err:
            raise StrategyError(str(err).replace("eligible.0", f"eligible.{offset[id(condition)]}")) from None


# ---------------------------------------------------------------------------------------------
# Eligibility and interventions
# ---------------------------------------------------------------------------------------------


def _compare(series: pd.Series, op: str, values: list[Any]) -> np.ndarray:
    """`series op value` as a boolean array; missing values never hold."""
    if op in LIST_OPS:
        holds = series.isin(values)
        holds = holds if op == "in" else ~holds
    else:
        value = values[0]
        if pd.api.types.is_bool_dtype(series) and not isinstance(value, bool):
            value = bool(to_boolean(pd.Series([str(value)]))[0] == 1.0)
        holds = {
            "==": series.__eq__,
            "!=": series.__ne__,
            "<": series.__lt__,
            "<=": series.__le__,
            ">": series.__gt__,
            ">=": series.__ge__,
        }[op](value)
    return np.asarray(pd.Series(holds).fillna(False), dtype=bool) & series.notna().to_numpy()


def condition_holds(series: pd.Series, condition: Condition) -> np.ndarray:
    """Where one condition holds on a column (missing values never do); shared with the alert rules."""
    return _compare(series, condition.op, condition.values)


def eligible_mask(customers: pd.DataFrame, strategy: Strategy | Mapping[str, Any]) -> np.ndarray:
    """Which customers a strategy may target: every `eligible` condition holds (AND).

    A missing value never satisfies a condition (an unknown customer is not targeted).

    Args:
        customers: customer rows.
        strategy: a Strategy or a mapping in the catalogue format.
    Returns:
        A boolean array, one entry per customer row.
    """
    s = as_strategy(strategy)
    mask = np.ones(len(customers), dtype=bool)
    for condition in s.eligible:
        if condition.column not in customers.columns:
            raise StrategyError(f"strategy '{s.id}': eligible column '{condition.column}' not found")
        mask &= _compare(customers[condition.column], condition.op, condition.values)
    return mask


def apply_interventions(customers: pd.DataFrame, strategy: Strategy | Mapping[str, Any]) -> pd.DataFrame:
    """Every given row as it would be under the strategy (the caller chose the eligible rows).

    Pure: the input frame is not modified. Only the intervention columns present are changed.

    Args:
        customers: customer rows (all assumed eligible).
        strategy: a Strategy or a mapping in the catalogue format.
    Returns:
        A new frame with the same rows and columns.
    """
    return _apply(customers, as_strategy(strategy), None)


def apply_strategy(customers: pd.DataFrame, strategy: Strategy | Mapping[str, Any]) -> pd.DataFrame:
    """The customers as they would be under a strategy: eligible rows changed per `apply`.

    Pure: the input frame is not modified; ineligible rows are returned unchanged.

    Args:
        customers: customer rows.
        strategy: a Strategy or a mapping (`apply` maps a column to {set | multiply | add: value}).
    Returns:
        A new frame with the same rows and columns.
    """
    s = as_strategy(strategy)
    return _apply(customers, s, eligible_mask(customers, s))


def _apply(customers: pd.DataFrame, strategy: Strategy, mask: np.ndarray | None) -> pd.DataFrame:
    out = customers.copy()
    for column, op, value in strategy.intervention:
        if column not in out.columns:
            raise StrategyError(f"strategy '{strategy.id}': apply column '{column}' not found")
        current = out[column]
        if op == "set":
            changed = pd.Series(value, index=current.index)
            if pd.api.types.is_bool_dtype(current) and not isinstance(value, bool):
                changed = pd.Series(to_boolean(changed.astype(str)) == 1.0, index=current.index)
        elif op == "multiply":
            changed = current * value
        else:
            changed = current + value
        out[column] = changed if mask is None else current.where(~mask, changed)
    return out

"""Alert rules and the owners table as data: the rule catalogue model, loading, validation and evaluation.

An alert rule is never code, like a strategy: `when` is a list of structured conditions (all must
hold) over the columns of the alert frame, i.e. the customers' own columns, the model's score
columns (`p_<band>`, `expected_score`, `churn_probability`, `p_cause_<code>`, `problem_group` when
the scores carry it) and a few derived ones (ALERT_COLUMNS). A rule routes its tasks either by a
customers column (`route_by: region`, mapped to owners by the owners table) or to one fixed owner
(`owner: retention_desk`). Rules that look at the survey answer (`observed_score`, `surveyed`)
are `observed`; every other rule is `predicted`.

Loading checks the shape (pydantic); `validate_alert_rules` checks the catalogue against the
alert frame's columns and the owners table, and every error names the file, the rule and the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cxpredict.features.catalogue import parse_catalogue
from cxpredict.features.config import ConfigError, CxConfig, read_yaml_text
from cxpredict.features.strategies import ORDER_OPS, Condition, condition_holds

LEVELS: tuple[str, ...] = ("critical", "high", "medium")  # most urgent first
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}
OBSERVED, PREDICTED = "observed", "predicted"
POPULATIONS: tuple[str, ...] = ("all", "surveyed", "silent")

# Derived columns of the alert frame (beside the customers' and the score table's own columns).
OBSERVED_SCORE = "observed_score"  # the customer's score in the last survey; missing when silent
SURVEYED = "surveyed"  # answered the survey
P_BOTTOM = "p_bottom_band"  # P(bottom band) whatever the band is called (p_detractor on NPS)
VALUE = "value"  # value_column as a number (1 when the config has none)
SCORE_DROP = "expected_score_drop"  # last scoring's expected score minus this one (missing: never scored)
ALERT_COLUMNS: tuple[str, ...] = (OBSERVED_SCORE, SURVEYED, P_BOTTOM, VALUE, SCORE_DROP)
OBSERVED_COLUMNS = frozenset({OBSERVED_SCORE, SURVEYED})
CATCH_ALL = "*"  # an owner covering every value no other owner covers
OWNER_COLUMNS: tuple[str, ...] = ("owner_id", "name", "contact", "covers")


class AlertError(ConfigError):
    """An alert catalogue or owners table that breaks the contract; the message names file, rule and key."""


class AlertRule(BaseModel):
    """One rule of the catalogue (`alerts.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = ""
    level: Literal["critical", "high", "medium"]
    when: list[Condition] = Field(min_length=1)
    # Who the rule looks at; default: surveyed customers for observed rules, everyone otherwise.
    population: Literal["all", "surveyed", "silent"] | None = None
    route_by: str | None = None  # a customers column mapped to owners by the owners table
    owner: str | None = None  # or one fixed owner id

    @model_validator(mode="after")
    def _one_route(self) -> AlertRule:
        if (self.route_by is None) == (self.owner is None):
            raise ValueError("needs exactly one of `route_by` (a customers column) or `owner` (an owner id)")
        return self

    @property
    def basis(self) -> str:
        """`observed` when the rule reads the survey answer, `predicted` otherwise."""
        return OBSERVED if any(c.column in OBSERVED_COLUMNS for c in self.when) else PREDICTED

    @property
    def applies_to(self) -> str:
        return self.population or ("surveyed" if self.basis == OBSERVED else "all")

    @property
    def columns(self) -> list[str]:
        return [c.column for c in self.when]


def parse_alert_rules(raw: Any, source: str = "alerts") -> list[AlertRule]:
    """Validate the shape of a catalogue (a list of rule mappings) and that ids are unique.

    Args:
        raw: the parsed YAML (a list of mappings).
        source: the file name for error messages.
    Returns:
        The rules in file order.
    """
    return parse_catalogue(
        raw,
        source=source,
        model=AlertRule,
        error=AlertError,
        noun="rule",
        plural="alert rules",
        expected_keys="id, level, when, route_by or owner",
        unknown_key="unknown key (not part of the alert rule contract)",
    )


def load_alert_rules(path: str | Path) -> list[AlertRule]:
    """Read and validate the shape of `alerts.yaml` (columns and owners are checked by `validate_alert_rules`)."""
    path = Path(path)
    if not path.is_file():
        raise AlertError(f"{path}: alert rules file not found")
    try:
        raw = read_yaml_text(path)  # one line for bad YAML (line and column), non-UTF-8 bytes, a huge file
    except ConfigError as err:
        raise AlertError(str(err)) from None
    return parse_alert_rules(raw, str(path))


def config_alert_rules(config: CxConfig) -> tuple[list[AlertRule], str]:
    """The catalogue named by the config key `alerts`, and its resolved path."""
    if not config.alerts:
        raise AlertError(f"{config.base_dir / 'cxpredict.yaml'}: config key 'alerts' is not set")
    path = config.resolve(config.alerts)
    return load_alert_rules(path), str(path)


# ---------------------------------------------------------------------------------------------
# Owners
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """A person or team tasks are routed to."""

    owner_id: str
    name: str
    contact: str
    covers: tuple[str, ...]


@dataclass(frozen=True)
class OwnerTable:
    """The owners and which routing value each covers (`*`: every value nobody else covers)."""

    owners: tuple[Owner, ...]
    source: str = "owners"

    @property
    def ids(self) -> set[str]:
        return {o.owner_id for o in self.owners}

    @property
    def by_value(self) -> dict[str, str]:
        return {value: o.owner_id for o in self.owners for value in o.covers if value != CATCH_ALL}

    @property
    def catch_all(self) -> str | None:
        return next((o.owner_id for o in self.owners if CATCH_ALL in o.covers), None)

    def get(self, owner_id: str) -> Owner | None:
        return next((o for o in self.owners if o.owner_id == owner_id), None)

    def uncovered(self, values: Iterable[Any]) -> list[str]:
        """Routing values no owner covers (none when a catch-all owner exists)."""
        if self.catch_all is not None:
            return []
        covered = self.by_value
        return sorted({str(v) for v in values if not _missing(v)} - set(covered))

    def route(self, values: pd.Series) -> np.ndarray:
        """The owner id of each routing value (missing values go to the catch-all owner, else None)."""
        owners = values.astype(object).where(values.notna(), None).map(
            lambda v: None if v is None else self.by_value.get(str(v))
        )
        return owners.where(owners.notna(), self.catch_all).to_numpy(object)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def parse_owners(frame: pd.DataFrame, source: str = "owners") -> OwnerTable:
    """Check an owners table (owner_id, name, contact, covers: `;`-separated routing values).

    Args:
        frame: the table as read.
        source: its file name for error messages.
    Returns:
        The owners.
    """
    missing = [c for c in OWNER_COLUMNS if c not in frame.columns]
    if missing:
        raise AlertError(f"{source}: missing column '{missing[0]}' (an owners table has {list(OWNER_COLUMNS)})")
    owners: list[Owner] = []
    seen_values: dict[str, str] = {}
    for row_number, row in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        owner_id = "" if _missing(row["owner_id"]) else str(row["owner_id"]).strip()
        if not owner_id:
            raise AlertError(f"{source}: column 'owner_id', row {row_number}: empty owner id")
        if owner_id in {o.owner_id for o in owners}:
            raise AlertError(f"{source}: column 'owner_id', row {row_number}: duplicate owner id '{owner_id}'")
        covers = tuple(v.strip() for v in ("" if _missing(row["covers"]) else str(row["covers"])).split(";")
                       if v.strip())
        for value in covers:
            if value in seen_values:
                raise AlertError(f"{source}: column 'covers', row {row_number}: value '{value}' is also covered "
                                 f"by owner '{seen_values[value]}'")
            seen_values[value] = owner_id
        owners.append(Owner(owner_id, "" if _missing(row["name"]) else str(row["name"]),
                            "" if _missing(row["contact"]) else str(row["contact"]), covers))
    if not owners:
        raise AlertError(f"{source}: the owners table is empty")
    return OwnerTable(tuple(owners), source)


def load_owners(config: CxConfig) -> OwnerTable:
    """The owners table named by `data.owners` (CSV, Parquet or SQL like every table)."""
    from cxpredict.features.load import read_table, source_label

    if config.data.owners is None:
        raise AlertError(f"{config.base_dir / 'cxpredict.yaml'}: config key 'data.owners' is not set "
                         "(alert rules route tasks to owners)")
    frame = read_table(config, config.data.owners)
    return parse_owners(frame, source_label(config, config.data.owners))


# ---------------------------------------------------------------------------------------------
# Validation against the alert frame and the owners
# ---------------------------------------------------------------------------------------------


def validate_alert_rules(
    rules: Sequence[AlertRule], kinds: Mapping[str, str], owners: OwnerTable,
    route_values: Mapping[str, Iterable[Any]] | None = None, source: str = "alerts",
) -> None:
    """Check rules against the alert frame's columns (name -> kind) and the owners table.

    Args:
        rules: the parsed catalogue.
        kinds: every column a condition may use, with its kind (numeric, categorical, boolean, date).
        owners: the owners table.
        route_values: per routing column, the values it takes in the customers table (all must be covered).
        source: the catalogue's file name for error messages.
    Returns:
        None; raises AlertError on the first problem.
    """
    for rule in rules:
        label = f"{source}: rule '{rule.id}'"
        for i, condition in enumerate(rule.when):
            if condition.column not in kinds:
                known = sorted(kinds)
                shown = known[:25] + (["..."] if len(known) > 25 else [])
                raise AlertError(f"{label}: key 'when.{i}.column': unknown column '{condition.column}' "
                                 f"(neither a customers column nor a score column; known: {shown})")
            kind = kinds[condition.column]
            if condition.op in ORDER_OPS and kind in ("categorical", "boolean"):
                raise AlertError(f"{label}: key 'when.{i}.op': op '{condition.op}' needs an ordered column; "
                                 f"'{condition.column}' is {kind}")
            if kind == "numeric" and any(isinstance(v, str | bool) for v in condition.values):
                raise AlertError(f"{label}: key 'when.{i}.value': column '{condition.column}' is numeric, "
                                 f"got {condition.value!r}")
        if rule.owner is not None and rule.owner not in owners.ids:
            raise AlertError(f"{label}: key 'owner': unknown owner '{rule.owner}' (owners in {owners.source}: "
                             f"{sorted(owners.ids)})")
        if rule.route_by is not None:
            if rule.route_by not in kinds:
                raise AlertError(f"{label}: key 'route_by': unknown column '{rule.route_by}'")
            values = (route_values or {}).get(rule.route_by)
            uncovered = owners.uncovered(values) if values is not None else []
            if uncovered:
                shown = uncovered[:10] + (["..."] if len(uncovered) > 10 else [])
                raise AlertError(f"{owners.source}: column 'covers': no owner covers {rule.route_by} value(s) "
                                 f"{shown} (rule '{rule.id}' routes by '{rule.route_by}'; add them or a '*' owner)")


def column_kind(series: pd.Series) -> str:
    """numeric, boolean, date or categorical: what a condition may do with a column."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "date"
    return "categorical"


def rule_mask(frame: pd.DataFrame, rule: AlertRule) -> np.ndarray:
    """Which rows of an alert frame a rule matches: its population and every condition (a missing value never holds).

    Args:
        frame: the alert frame (customers, scores and the derived ALERT_COLUMNS).
        rule: the rule.
    Returns:
        A boolean array, one entry per row.
    """
    mask = np.ones(len(frame), dtype=bool)
    if rule.applies_to != "all":
        surveyed = frame[SURVEYED].to_numpy(bool)
        mask &= surveyed if rule.applies_to == "surveyed" else ~surveyed
    for condition in rule.when:
        if condition.column not in frame.columns:
            raise AlertError(f"rule '{rule.id}': column '{condition.column}' not found")
        mask &= condition_holds(frame[condition.column], condition)
    return mask

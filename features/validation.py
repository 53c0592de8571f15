"""The one gate every way in passes: what a readable and a plausible feature value is.

Training learns the rules (`FeaturePipeline.fit`: each feature's kind, its known categories, the
range of values seen, the required columns) and the bundle keeps them in its feature schema.
Training, file scoring, streaming, Spark, `store load` and the API all ask this module, so they
reach the same verdict on the same value:

- unreadable: a numeric, yes/no or date feature holds a value that is not one (`'12,50'`);
- implausible: a number or date further than one span outside the training range (a unit error,
  cents for euros); with `scoring.plausibility: warn` such rows are scored and counted instead;
- a required column (a model feature) absent from a batch input stops the job before any part.

An unseen category is not an error (it is drift, scored as "new"). Bundles trained before the
ranges or the required columns were kept have none: no range check, no required-column check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxpredict.features.build import (
    _FALSE,
    _TRUE,
    BOOLEAN,
    DATE,
    DATE_PATTERN,
    NUMERIC,
    FeaturePipeline,
    plausible_range,
    present_text,
    to_numeric,
)
from cxpredict.features.build import (
    UNREADABLE as UNREADABLE_KIND,
)
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, rows_text

UNREADABLE = "unreadable value"
IMPLAUSIBLE = "implausible value"
MISSING_COLUMN = "missing column"
REJECT, WARN = "reject", "warn"
# Share of a text column's non-blank values that must read as numbers (yes/no, dates) for the
# column to count as a numeric (yes/no, date) column with unreadable values, rather than text.
MOSTLY = 0.5


class ImplausibleValueError(DataError):
    """A value further outside the training range than the tolerance allows (a unit error, a typo)."""


class MissingColumnError(DataError):
    """A batch input lacks a column the model needs: every row would be scored as if it were missing."""


class UnreadableColumnError(DataError):
    """A training column of numbers (yes/no values, dates) holds values that are none."""


@dataclass(frozen=True)
class FeatureRule:
    """What one feature accepts, as the bundle's feature schema records it."""

    name: str
    kind: str
    known_categories: tuple[str, ...] = ()
    observed: tuple[float, float] | None = None  # min, max seen at training (days for dates)
    plausible: tuple[float, float] | None = None  # what scoring accepts
    required: bool = False


@dataclass(frozen=True)
class RowVerdicts:
    """Per row: the reason it is rejected ('' when it is scored) and the offending value's text."""

    reasons: np.ndarray
    details: np.ndarray
    implausible_warned: int = 0  # rows scored despite an implausible value (`scoring.plausibility: warn`)
    warned: np.ndarray | None = None  # which rows those are (warn only)


def feature_rules(pipeline: FeaturePipeline) -> tuple[FeatureRule, ...]:
    """The rules of every feature of a fitted pipeline (older pipelines: no ranges, nothing required)."""
    ranges: dict[str, tuple[float, float]] = dict(getattr(pipeline, "ranges_", {}) or {})
    required = set(getattr(pipeline, "required_", ()) or ())
    return tuple(
        FeatureRule(
            name=spec.name, kind=spec.kind, known_categories=tuple(spec.categories),
            observed=tuple(ranges[spec.name]) if spec.name in ranges else None,  # type: ignore[arg-type]
            plausible=plausible_range(ranges[spec.name]) if spec.name in ranges else None,
            required=spec.name in required,
        )
        for spec in pipeline.specs_
    )


def _shown(value: object) -> str:
    """A value as the user wrote it (numpy scalars as plain Python numbers)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _days_as_date(days: float) -> str:
    return (pd.Timestamp("1970-01-01") + pd.Timedelta(days=days)).date().isoformat()


def range_message(rule: FeatureRule) -> str:
    """Why a value of `rule`'s feature is implausible, without the value (the API names the field)."""
    assert rule.plausible is not None and rule.observed is not None
    low, high = rule.plausible
    if rule.kind == DATE:
        return f"date outside the plausible range {_days_as_date(low)}..{_days_as_date(high)}"
    seen_low, seen_high = rule.observed
    return f"value outside the plausible range {low:g}..{high:g} (training saw {seen_low:g}..{seen_high:g})"


def is_plausible(rule: FeatureRule, encoded: float) -> bool:
    """An encoded value (a number, days for dates) within the plausible range; missing is plausible."""
    if rule.plausible is None or math.isnan(encoded):
        return True
    return rule.plausible[0] <= encoded <= rule.plausible[1]


def implausible_values(rules: Iterable[FeatureRule], frame: pd.DataFrame, X: np.ndarray) -> np.ndarray:
    """Per row, the first feature value outside its plausible range ('' when none).

    Args:
        rules: `feature_rules(pipeline)`, in the pipeline's feature order (the columns of X).
        frame: the raw rows (for the value as given).
        X: `pipeline.transform(frame)`.
    """
    problems = np.full(len(X), "", dtype=object)
    for j, rule in enumerate(rules):
        if rule.plausible is None or rule.name not in frame.columns:
            continue
        column = X[:, j]
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(column) & ((column < rule.plausible[0]) | (column > rule.plausible[1]))
        bad &= problems == ""
        for row in np.flatnonzero(bad):
            problems[row] = f"{rule.name}: {_shown(frame[rule.name].iloc[row])}: {range_message(rule)}"
    return problems


def row_verdicts(
    pipeline: FeaturePipeline, frame: pd.DataFrame, X: np.ndarray | None = None, plausibility: str = REJECT,
) -> RowVerdicts:
    """The verdict on every row of a batch: unreadable first, then implausible.

    Args:
        pipeline: the model's fitted pipeline.
        frame: the raw rows.
        X: `pipeline.transform(frame)` when already computed.
        plausibility: `reject` (implausible rows are rejected) or `warn` (scored, counted).
    """
    X = pipeline.transform(frame) if X is None else X
    details = pipeline.unreadable_values(frame, X)
    reasons = np.where(details != "", UNREADABLE, "").astype(object)
    implausible = implausible_values(feature_rules(pipeline), frame, X)
    flagged = (implausible != "") & (reasons == "")
    if plausibility == WARN:
        return RowVerdicts(reasons, details, int(flagged.sum()), flagged)
    reasons[flagged] = IMPLAUSIBLE
    details = np.where(flagged, implausible, details).astype(object)
    return RowVerdicts(reasons, details)


def missing_required(pipeline: FeaturePipeline, columns: Iterable[str]) -> list[str]:
    """Required feature columns (as the bundle records them) absent from `columns`."""
    present = set(columns)
    return [rule.name for rule in feature_rules(pipeline) if rule.required and rule.name not in present]


def check_required_columns(pipeline: FeaturePipeline, columns: Iterable[str], label: str) -> None:
    """Stop a batch before any part is written when a required feature column is absent."""
    missing = missing_required(pipeline, columns)
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise MissingColumnError(f"{label}: column '{missing[0]}' (a model feature) not found{more}")


def check_rows(pipeline: FeaturePipeline, frame: pd.DataFrame, label: str, plausibility: str = REJECT) -> int:
    """In-memory scoring: stop on the first unreadable or implausible value, naming column and rows.

    Returns:
        The number of implausible rows scored anyway (`plausibility: warn`), 0 otherwise.
    """
    verdicts = row_verdicts(pipeline, frame, plausibility=plausibility)
    for reason, error in ((UNREADABLE, DataError), (IMPLAUSIBLE, ImplausibleValueError)):
        bad = verdicts.reasons == reason
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            same = bad & np.array([str(d).split(":")[0] == str(verdicts.details[first]).split(":")[0]
                                   for d in verdicts.details])
            # Unreadable values keep the message they always had; implausible ones say the reason.
            prefix = "" if reason == UNREADABLE else f"{reason}: "
            raise error(f"{label}: {prefix}{verdicts.details[first]} in {rows_text(same)}")
    return verdicts.implausible_warned


def _reads_as(kind: str, text: pd.Series) -> np.ndarray:
    if kind == NUMERIC:
        return np.isfinite(to_numeric(text))
    if kind == BOOLEAN:
        return text.str.lower().isin(list(_TRUE | _FALSE)).to_numpy(bool)
    return text.str.match(DATE_PATTERN.pattern).fillna(False).to_numpy(bool) & pd.to_datetime(
        text, errors="coerce", format="ISO8601", utc=True).notna().to_numpy(bool)


def check_training_customers(config: CxConfig, customers: pd.DataFrame, label: str) -> None:
    """`check_training_columns` on the customers table, exempting what the config marks as text or unused."""
    check_training_columns(customers, label, [
        config.id_column, *config.features.text, *config.features.categorical, *config.features.exclude,
        *([config.value_column] if config.value_column else [])])


def check_training_columns(customers: pd.DataFrame, label: str, text_columns: Iterable[str]) -> None:
    """Training stops where a column of numbers, yes/no values or dates holds a value that is none.

    Without this check one `'12,50'` turns a numeric column into text, which is then dropped as an
    identifier or learned as thousands of categories: the model trains without the feature. Columns
    the config marks as text (`features.text`, `features.categorical`, `features.exclude`) are not checked.
    """
    exempt = set(text_columns)
    for column in customers.columns:
        values = customers[column]
        if column in exempt or pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        if pd.api.types.is_numeric_dtype(values):  # a file's 'inf' is read as a number: scoring rejects it
            infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
            if infinite.any():
                first = values.iloc[int(np.flatnonzero(infinite)[0])]
                raise UnreadableColumnError(
                    f"{label}: column '{column}': {_shown(first)} is not {UNREADABLE_KIND[NUMERIC]} "
                    f"in {rows_text(infinite)}")
            continue
        text = values.astype("string").str.strip()
        present = present_text(values)
        if present.sum() == 0:
            continue
        for kind in (NUMERIC, BOOLEAN, DATE):
            reads = _reads_as(kind, text.fillna(""))
            share = reads[present].mean()
            if share < MOSTLY or share == 1.0:
                continue
            bad = present & ~reads
            first = values.iloc[int(np.flatnonzero(bad)[0])]
            raise UnreadableColumnError(
                f"{label}: column '{column}': {_shown(first)} is not {UNREADABLE_KIND[kind]} in {rows_text(bad)} "
                f"(a column of {kind} values; list it under features.text to read it as text)"
            )



@dataclass(frozen=True)
class Rule:
    """One rule of bad input as the README's "Bad input" table states it (generated from `RULES`).

    `message` is the text the user sees, with `…` where the file, value or figures go; the tests
    hold every message to what the code really prints.
    """

    name: str
    applies: str
    outcome: str
    message: str


RULES: tuple[Rule, ...] = (
    Rule(UNREADABLE, "a numeric, yes/no or date feature holds a value that is none "
         "(`'12,50'`, `maybe`, `31/01/2024`, 10**400)",
         "stream/Spark: rejects file; `score`/`store load`: exit 2; API: 422 `wrong_type`",
         "…: monthly_charge: '12,50' is not a finite number in rows …"),
    Rule(IMPLAUSIBLE, "a number or date further than one span outside the training range "
         "(`scoring.plausibility: warn` scores it)",
         "stream/Spark: rejects file; `score`/`store load`: exit 2; API: 422 `out_of_range`",
         "…: implausible value: monthly_charge: …: value outside the plausible range …..… "
         "(training saw …..…) in rows …"),
    Rule(MISSING_COLUMN, "a batch input lacks a model feature column (required columns are recorded at training)",
         "exit 2 before any part is written",
         "…: column '…' (a model feature) not found"),
    Rule("unreadable training column",
         "a training column mostly of numbers, yes/no values or dates holds other values",
         "`train`: exit 2 (list the column under `features.text` to read it as text)",
         "…: column '…': … is not a finite number in rows … (a column of numeric values; "
         "list it under features.text to read it as text)"),
    Rule("dropped column", "training skips a column (all missing, or more than 200 distinct text values)",
         "train summary row `dropped column` and a tag of the training run",
         "dropped column │ … │ …"),
    Rule("missing id / duplicate id / no feature values",
         "a batch row without an id, with an id seen earlier, or empty",
         "stream/Spark: rejects file", "missing id"),
    Rule("data file not UTF-8", "a CSV with bytes that are not UTF-8",
         "exit 2", "…: row … (line …): not UTF-8 text (byte 0x…); save the file as UTF-8"),
    Rule("config not UTF-8", "the config file has bytes that are not UTF-8",
         "exit 2", "…: line …: not UTF-8 text (byte 0x…); save the file as UTF-8"),
    Rule("config YAML syntax", "the config file is not valid YAML",
         "exit 2", "…: line …, column …: not valid YAML: …"),
    Rule("config size", "the config file above 1,000,000 bytes or 10,000 keys and list items",
         "exit 2", "…: … bytes; a config file may have at most 1,000,000 bytes"),
    Rule("data path outside the config's folder", "a relative data path leaving the config's folder "
         "(absolute paths, `allow_outside: true` and SQL tables are not restricted)",
         "exit 2", "…: key '<root>': data.…: path '…' resolves outside the config's folder …; "
         "give an absolute path or set allow_outside: true"),
    Rule("registered model version", "the alias or version does not exist, or its files cannot be read",
         "exit 2", "… version …: its model files cannot be read (…); register a working version or move the alias"),
)


def rules_markdown() -> str:
    """The README's table of every bad-input rule (tests/unit/test_validation.py keeps them equal)."""
    lines = ["| rule | applies when | outcome | message |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.applies} | {r.outcome} | `{r.message}` |".replace("\n", " ") for r in RULES]
    return "\n".join(lines)


def message_matches(rule: Rule, message: str) -> bool:
    """Whether a real message has the documented form (`…` stands for any text)."""
    pattern = ".*".join(re.escape(part) for part in rule.message.split("…"))
    return re.fullmatch(pattern, message, flags=re.DOTALL) is not None

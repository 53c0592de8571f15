"""Fast path from customer records (dicts) to the model matrix, without building a DataFrame.

`FeaturePipeline.transform` works on DataFrames, which costs milliseconds for a single row;
serving one customer per request needs microseconds. `RecordEncoder` encodes each value with
the same rules as `transform` (frozen categories, unseen -> NaN, dates as days since 1970) and
the tests hold it to identical output. `check_record` is the strict counterpart used on inline
API input: it names every missing, mistyped or implausible feature instead of turning it into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cxpredict.features.build import (
    _FALSE,
    _TRUE,
    BOOLEAN,
    CATEGORICAL,
    DATE,
    MISSING_TEXTS,
    NUMERIC,
    FeaturePipeline,
    to_days,
    to_numeric,
)
from cxpredict.features.build import _text as category_label
from cxpredict.features.validation import REJECT, WARN, feature_rules, is_plausible, range_message

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_DAY = 86_400 * 10**9


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _finite(value: int | float) -> float:
    """A Python number as a finite float, NaN when beyond float range (10**400) or not finite."""
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: unreadable, never a 500
        return math.nan
    return number if math.isfinite(number) else math.nan


def _numeric(value: Any) -> float:
    if isinstance(value, bool | np.bool_):  # a yes/no value is not a number (as in `to_numeric`)
        return math.nan
    if isinstance(value, int | float | np.integer | np.floating):
        return _finite(value)
    # Text and other objects: defer to pandas so odd spellings parse exactly as in transform.
    return float(to_numeric(pd.Series([value], dtype=object))[0])


def _boolean(value: Any) -> float:
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return math.nan


@lru_cache(maxsize=65_536)
def _days_text(value: str) -> float:
    """Days of a date written as text (cached: a customer base repeats the same dates)."""
    return _days(value)


def _days(value: Any) -> float:
    stamp: datetime | None = None
    if isinstance(value, pd.Timestamp):
        # .value is nanoseconds since the epoch in UTC (naive stamps are read as UTC, as in transform)
        return float(value.as_unit("ns").value) / float(_NS_PER_DAY)
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        stamp = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip())
        except ValueError:
            stamp = None
    if stamp is None:
        return float(to_days(pd.Series([value], dtype=object))[0])
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # transform reads naive stamps as UTC
    delta = stamp - _EPOCH
    nanoseconds = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000
    # float(int64) / float(int64), as numpy divides timedelta64 arrays in transform.
    return float(nanoseconds) / float(_NS_PER_DAY)


def _text(value: Any) -> str:
    # As the pipeline's category_text: 3 -> "3", 3.0 -> "3" (an int column with a missing value), True -> "True".
    return category_label(value.item() if isinstance(value, np.generic) else value)


class FeatureProblem(NamedTuple):
    """Why one inline feature value cannot be scored."""

    kind: str  # missing | wrong_type | out_of_range
    message: str


MISSING = FeatureProblem("missing", "feature is required (send null when the value is unknown)")
_NOT_FINITE = FeatureProblem("wrong_type", "expected a finite number")
_NOT_A_DATE = FeatureProblem("wrong_type", "expected a date as text, like 2024-01-31")


class RecordEncoder:
    """Encode records into the matrix a fitted `FeaturePipeline` would produce.

    Args:
        pipeline: the fitted pipeline (its `specs_` hold kinds and frozen categories).
        plausibility: `reject` (strict checks name implausible values) or `warn` (they are scored).
    """

    def __init__(self, pipeline: FeaturePipeline, plausibility: str = REJECT):
        self.pipeline = pipeline
        self.specs = list(pipeline.specs_)
        self.names = [s.name for s in self.specs]
        self.kinds = [s.kind for s in self.specs]
        self.lookups = [
            {c: float(i) for i, c in enumerate(s.categories)} if s.kind == CATEGORICAL else {} for s in self.specs
        ]
        self.ranges: dict[str, tuple[float, float]] = dict(getattr(pipeline, "ranges_", {}))
        self.rules = feature_rules(pipeline)  # the one gate's rules (features/validation.py)
        self.allowed = [None if plausibility == WARN else rule.plausible for rule in self.rules]

    def encode_value(self, j: int, value: Any) -> float:
        """One value of feature `j`, encoded as `transform` would (NaN for missing or unusable)."""
        kind, kind_of_value = self.kinds[j], type(value)
        # Fast paths for the types JSON and database drivers produce; the rest as pandas would.
        if kind == CATEGORICAL and kind_of_value is str:
            return self.lookups[j].get(value, math.nan)
        if kind == NUMERIC and (kind_of_value is float or kind_of_value is int):
            return _finite(value)
        if kind == DATE and kind_of_value is str:
            return _days_text(value)
        if _is_missing(value):
            return math.nan
        if kind == NUMERIC:
            return _numeric(value)
        if kind == BOOLEAN:
            return _boolean(value)
        if kind == DATE:
            return _days(value)
        return self.lookups[j].get(_text(value), math.nan)

    def encode(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """A (len(records), n_features) float64 matrix; absent keys become NaN, extra keys are ignored."""
        matrix = np.full((len(records), len(self.specs)), np.nan)
        names, encode_value = self.names, self.encode_value
        for i, record in enumerate(records):
            row = matrix[i]
            for j, name in enumerate(names):
                if name in record:
                    row[j] = encode_value(j, record[name])
        return matrix

    def encode_checked(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, dict[int, dict[str, FeatureProblem]]]:
        """Strict encoding of inline records in one pass: the matrix, and the problems by row and feature.

        A value the strict rules accept encodes exactly as in `encode`; rows with problems are left NaN.
        """
        matrix = np.full((len(records), len(self.specs)), np.nan)
        problems: dict[int, dict[str, FeatureProblem]] = {}
        names, strict_value = self.names, self._strict_value
        for i, record in enumerate(records):
            row = matrix[i]
            for j, name in enumerate(names):
                if name not in record:
                    problems.setdefault(i, {})[name] = MISSING
                    continue
                value = strict_value(j, record[name])
                if type(value) is FeatureProblem:
                    problems.setdefault(i, {})[name] = value
                else:
                    row[j] = value
        return matrix, problems

    def check_record(self, record: Mapping[str, Any]) -> dict[str, FeatureProblem]:
        """Problems of one inline record, by feature name: missing, mistyped or out of range.

        Missing values are sent as null; unknown category values are accepted (scored as unseen).
        """
        return self.encode_checked([record])[1].get(0, {})

    def _strict_value(self, j: int, value: Any) -> float | FeatureProblem:
        kind, kind_of_value = self.kinds[j], type(value)
        if value is None:
            return math.nan
        if kind == CATEGORICAL and kind_of_value is str:
            return self.lookups[j].get(value, math.nan)
        if kind == NUMERIC and (kind_of_value is float or kind_of_value is int):
            number = _finite(value)
            if math.isnan(number):
                return _NOT_FINITE
        elif kind == DATE and kind_of_value is str:
            number = _days_text(value)
            if math.isnan(number):
                return math.nan if value.strip() in MISSING_TEXTS else _NOT_A_DATE
        elif kind == BOOLEAN and kind_of_value is bool:
            return 1.0 if value else 0.0
        else:
            if isinstance(value, np.generic):
                value = value.item()
            if _is_missing(value) or (isinstance(value, str) and value.strip() in MISSING_TEXTS):
                return math.nan  # blank text or 'NaN' is a missing value, as in a CSV file
            problem = self._type_problem(kind, value)
            if problem is not None:
                return FeatureProblem("wrong_type", problem)
            number = self.encode_value(j, value)
            if kind not in (NUMERIC, DATE):
                return number
        if self.allowed[j] is not None and not is_plausible(self.rules[j], number):
            return FeatureProblem("out_of_range", range_message(self.rules[j]))
        return number

    def allowed_range(self, name: str) -> tuple[float, float] | None:
        """The plausible range of a numeric or date feature (`features/validation.py`), None when unchecked."""
        return next((r.plausible for r in self.rules if r.name == name), None)

    def _type_problem(self, kind: str, value: Any) -> str | None:
        if kind == NUMERIC:
            if isinstance(value, str):  # read as a file's text column is read ('12.5' yes, '12,50' no)
                return None if math.isfinite(_numeric(value)) else "expected a number, got text that is not one"
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected a number, got {type(value).__name__}"
            if math.isnan(_finite(value)):
                return "expected a finite number"
        elif kind == BOOLEAN:
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return None
            if not isinstance(value, str) or math.isnan(_boolean(value)):
                return f"expected true/false (or one of {sorted(_TRUE | _FALSE)})"
        elif kind == DATE:
            if not isinstance(value, str) or math.isnan(_days(value)):
                return _NOT_A_DATE.message
        elif isinstance(value, float) and not math.isfinite(value):
            return "expected a category value"
        return None

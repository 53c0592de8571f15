"""Feature building: a fitted pipeline that turns customer rows into a float matrix for LightGBM.

The pipeline is fitted once at training, saved inside the model bundle and used unchanged in
serving, so training and serving cannot drift. Categories are frozen at fit time: codes do not
depend on batch order, and unseen or missing categories become NaN (LightGBM's "missing").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}")
MAX_CATEGORIES = 200  # beyond this a text column is an identifier, not a category
NUMERIC, CATEGORICAL, BOOLEAN, DATE = "numeric", "categorical", "boolean", "date"
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
# Text that spells a missing value: what pandas' CSV reader reads as missing by default. The same
# text in a Parquet string column, a JSON string or a database text column is missing too, so a
# file's 'NaN' gets the same verdict whichever way it comes in (tests/unit/test_validation.py
# holds this list to pandas' own).
MISSING_TEXTS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


def present_text(values: pd.Series) -> np.ndarray:
    """Which values of a text (or object) column are given: not null, not blank, not a missing spelling."""
    text = values.astype("string").str.strip()
    return (text.notna() & ~text.isin(list(MISSING_TEXTS))).to_numpy(bool, na_value=False)


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its source column, kind and (for categoricals) frozen categories."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    return len(sample) > 0 and all(DATE_PATTERN.match(v) for v in sample)


def _looks_boolean(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return True
    distinct = {str(v).strip().lower() for v in values.dropna().unique()[:10]}
    return bool(distinct) and len(distinct) <= 2 and distinct <= (_TRUE | _FALSE) and not distinct <= {"0", "1"}


def _looks_numeric_text(values: pd.Series) -> bool:
    """Text whose every given value is a finite number: what a CSV reader would have read as numbers.

    A Parquet string column or a database text column of numbers is then a number feature, as the same
    data in a CSV is; otherwise it would be learned as a category of thousands of levels (or dropped).
    """
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    given = values[present_text(values)]
    if given.empty or not np.isfinite(to_numeric(given.head(200))).all():  # most text fails on the first rows
        return False
    return bool(np.isfinite(to_numeric(given)).all())


UNREADABLE = {NUMERIC: "a finite number", BOOLEAN: "a yes/no value", DATE: "an ISO 8601 date"}


def infer_kind(values: pd.Series, forced_categorical: bool = False) -> str:
    """The kind of one column: numeric, categorical, boolean or date."""
    if forced_categorical:
        return CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(values):
        return DATE
    if _looks_boolean(values):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(values) or _looks_numeric_text(values):
        return NUMERIC
    if _looks_like_dates(values):
        return DATE
    return CATEGORICAL


def to_boolean(values: pd.Series) -> np.ndarray:
    lowered = values.astype("string").str.strip().str.lower()
    out = np.full(len(values), np.nan)
    out[lowered.isin(list(_TRUE)).fillna(False).to_numpy(bool)] = 1.0
    out[lowered.isin(list(_FALSE)).fillna(False).to_numpy(bool)] = 0.0
    return out


def to_days(values: pd.Series) -> np.ndarray:
    """Dates as days since 1970-01-01: stateless, so a scoring batch needs no reference date.

    Text is parsed as ISO 8601 (what `infer_kind` recognises) rather than in a format guessed
    from the batch's first value, so a row's value does not depend on the rows around it.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
    else:  # surrounding spaces are not part of the date, as training's check and the API read it
        text = values.astype("string").str.strip() if not pd.api.types.is_numeric_dtype(values) else values
        stamps = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    days = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
    return days.to_numpy(dtype=float, na_value=np.nan)


def _one_number(value: object) -> float:
    try:
        return float(pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype(float).iloc[0])
    except OverflowError:  # an integer beyond float range (10**400) is not a finite number
        return np.nan


def to_numeric(values: pd.Series) -> np.ndarray:
    """Numbers as finite floats; anything else NaN, booleans included.

    A yes/no value where the model learned numbers is a type mistake (a shifted or renamed column),
    not the number 1: the API refuses JSON true for a number, so files do too.
    """
    if pd.api.types.is_bool_dtype(values):
        return np.full(len(values), np.nan)
    if values.dtype == object:
        flags = values.map(type).isin([bool, np.bool_]).to_numpy(bool)
        if flags.any():
            values = values.mask(flags)
    try:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
    except OverflowError:  # pandas raises instead of coercing ints beyond float range: value by value
        numbers = values.map(_one_number).astype(float)
    array = numbers.to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(array), array, np.nan)


def _text(value: object) -> str:
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))  # 94110.0 (an int column with a missing value) is the category 94110
    return str(value)


def category_text(values: pd.Series) -> pd.Series:
    """Category labels as text, the same whether a column arrives as int, float or string."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.astype("string")
    return values.map(_text, na_action="ignore").astype("string")


def to_codes(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Category codes against the frozen list; unseen and missing values become NaN."""
    lookup = {c: float(i) for i, c in enumerate(categories)}
    as_text = category_text(values)
    codes = as_text.map(lookup, na_action="ignore")
    return pd.to_numeric(codes, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _observed_ranges(specs: list[FeatureSpec], matrix: np.ndarray) -> dict[str, tuple[float, float]]:
    """(min, max) of each numeric and date feature seen at fit time (days for dates)."""
    ranges: dict[str, tuple[float, float]] = {}
    for j, spec in enumerate(specs):
        if spec.kind not in (NUMERIC, DATE):
            continue
        finite = matrix[:, j][np.isfinite(matrix[:, j])]
        if len(finite):
            ranges[spec.name] = (float(finite.min()), float(finite.max()))
    return ranges


def plausible_range(observed: tuple[float, float]) -> tuple[float, float]:
    """Values further than one span outside the training range are implausible.

    The span is the observed range, widened to the largest magnitude seen (a narrow range far
    from zero keeps room). A column never negative at training stays non-negative. The guard
    catches unit errors (cents for euros, days for months), not business rules.
    (Defined here because the feature schema records it; `features/validation.py` applies it.)
    """
    low, high = observed
    span = max(high - low, abs(high), abs(low), 1.0)
    return (0.0 if low >= 0 else low - span), high + span


class FeaturePipeline:
    """Fitted column typing and encoding (scikit-learn style: learned attributes end in `_`).

    Args:
        id_column: never a feature.
        exclude: columns never used as model input (leakage, identifiers, the value column).
        categorical: columns forced to be categorical even when numeric.
    """

    def __init__(self, id_column: str, exclude: list[str] | None = None, categorical: list[str] | None = None):
        self.id_column = id_column
        self.exclude = list(exclude or [])
        self.categorical = list(categorical or [])

    def fit(self, customers: pd.DataFrame) -> FeaturePipeline:
        specs: list[FeatureSpec] = []
        skipped: dict[str, str] = {}
        for column in customers.columns:
            if column == self.id_column or column in self.exclude:
                continue
            values = customers[column]
            if values.isna().all():
                skipped[column] = "all values missing"
                continue
            kind = infer_kind(values, column in self.categorical)
            if kind == CATEGORICAL:
                categories = tuple(sorted(category_text(values).dropna().unique()))
                if len(categories) > MAX_CATEGORIES and column not in self.categorical:
                    skipped[column] = f"{len(categories)} distinct text values (looks like an identifier)"
                    continue
                specs.append(FeatureSpec(column, kind, categories))
            else:
                specs.append(FeatureSpec(column, kind))
        if not specs:
            raise ValueError("no usable feature column in the customers table")
        self.specs_ = specs
        self.skipped_ = skipped
        # Every feature column must be in a batch input: a column absent from all rows is not drift.
        self.required_ = [s.name for s in specs]
        self.ranges_ = _observed_ranges(specs, self.transform(customers))
        return self

    @property
    def feature_names_(self) -> list[str]:
        return [s.name for s in self.specs_]

    @property
    def categorical_indices_(self) -> list[int]:
        return [i for i, s in enumerate(self.specs_) if s.kind == CATEGORICAL]

    def unreadable_values(self, customers: pd.DataFrame, X: np.ndarray | None = None) -> np.ndarray:
        """Per row, the first value a numeric, boolean or date feature cannot read ('' when none).

        `transform` turns such values into missing ones, which would lose data silently; callers
        reject the row or stop with this text, e.g. `tenure_months: 'abc' is not a finite number`.
        Blank text counts as missing; an unseen category is not an error (it is drift).

        Args:
            customers: raw rows.
            X: `transform(customers)` when already computed.
        Returns:
            An object array of problem texts, one per row.
        """
        X = self.transform(customers) if X is None else X
        problems = np.full(len(customers), "", dtype=object)
        for j, spec in enumerate(self.specs_):
            if spec.kind == CATEGORICAL or spec.name not in customers.columns:
                continue
            values = customers[spec.name]
            present = values.notna().to_numpy(bool, copy=True)
            if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_datetime64_any_dtype(values):
                present &= present_text(values)
            bad = present & np.isnan(X[:, j]) & (problems == "")
            for row in np.flatnonzero(bad):
                value = values.iloc[row]
                value = value.item() if isinstance(value, np.generic) else value  # True, not np.True_
                problems[row] = f"{spec.name}: {value!r} is not {UNREADABLE[spec.kind]}"
        return problems

    def missing_columns(self, customers: pd.DataFrame) -> list[str]:
        return [s.name for s in self.specs_ if s.name not in customers.columns]

    def transform(self, customers: pd.DataFrame) -> np.ndarray:
        """Encode rows into a (n_rows, n_features) float64 matrix; absent columns become NaN."""
        matrix = np.full((len(customers), len(self.specs_)), np.nan)
        for j, spec in enumerate(self.specs_):
            if spec.name not in customers.columns:
                continue
            values = customers[spec.name]
            if spec.kind == NUMERIC:
                matrix[:, j] = to_numeric(values)
            elif spec.kind == BOOLEAN:
                matrix[:, j] = to_boolean(values)
            elif spec.kind == DATE:
                matrix[:, j] = to_days(values)
            else:
                matrix[:, j] = to_codes(values, spec.categories)
        return matrix

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """Back from the matrix to readable columns (categories as text), for explanations."""
        frame = pd.DataFrame(matrix, columns=self.feature_names_)
        for spec in self.specs_:
            if spec.kind == CATEGORICAL:
                codes = frame[spec.name]
                lookup = dict(enumerate(spec.categories))
                frame[spec.name] = codes.map(lambda c, lk=lookup: lk.get(int(c)) if pd.notna(c) else None)
        return frame

    def schema(self) -> list[dict]:
        """The feature schema logged with the model and served by /v1/model: kinds, categories and
        the validation rules (`features/validation.py`: training range, plausible range, required)."""
        ranges = getattr(self, "ranges_", {}) or {}
        required = set(getattr(self, "required_", ()) or ())
        out = []
        for s in self.specs_:
            entry: dict = {"name": s.name, "kind": s.kind}
            if s.categories:
                entry["categories"] = list(s.categories)
            if s.name in ranges:
                low, high = ranges[s.name]
                entry["observed_range"] = [low, high]
                entry["plausible_range"] = list(plausible_range((low, high)))
            entry["required"] = s.name in required
            out.append(entry)
        return out

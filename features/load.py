"""Loading the contract's tables (files or SQL) and checking every rule of the data contract.

Errors name the file, the column and the first offending rows (1-based data rows, header excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig, FileTable, SqlTable, TableSource

MAX_ROWS_SHOWN = 5


class DataError(ValueError):
    """Input data that breaks the contract; the message is one readable line."""


@dataclass
class Dataset:
    """The contract's tables, renamed to contract names, ids as strings.

    `causes` is one 0/1 column per cause code, aligned with `survey` rows.
    """

    customers: pd.DataFrame
    survey: pd.DataFrame
    outcomes: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None
    causes: pd.DataFrame | None = None
    cause_codes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    # Set when texts were coded into customer features (`features.text_features.with_text_features`).
    text_metrics: dict[str, float] = field(default_factory=dict)
    text_notes: list[str] = field(default_factory=list)


def _rows(mask: pd.Series | np.ndarray) -> str:
    positions = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(str(int(p)) for p in positions[:MAX_ROWS_SHOWN])
    more = f" and {len(positions) - MAX_ROWS_SHOWN} more" if len(positions) > MAX_ROWS_SHOWN else ""
    return f"rows {shown}{more}"


def check_utf8(path: Path, label: str) -> None:
    """Non-UTF-8 bytes stop the load with the file and the 1-based data row (the header is row 0)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        row = data.count(b"\n", 0, err.start)
        raise DataError(f"{label}: not UTF-8 text at byte {err.start} in row {row}") from None


def source_label(config: CxConfig, source: TableSource | FileTable) -> str:
    if isinstance(source, SqlTable):
        return f"{source.table} (SQL)"
    path = source.path if isinstance(source, FileTable) else source
    return str(config.resolve(path))


def read_table(config: CxConfig, source: TableSource | FileTable) -> pd.DataFrame:
    """Read one table as given in the config and apply the `rename` map."""
    label = source_label(config, source)
    if isinstance(source, SqlTable):
        from sqlalchemy import create_engine

        engine = create_engine(source.url)
        try:
            frame = pd.read_sql_table(source.table, engine)
        except Exception as err:  # driver errors vary by backend; report them in one line
            raise DataError(f"{label}: cannot read table: {type(err).__name__}: {err}") from None
        finally:
            engine.dispose()
    else:
        path = config.resolve(source.path if isinstance(source, FileTable) else source)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        suffix = path.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            elif suffix in (".csv", ".txt"):
                frame = pd.read_csv(path, low_memory=False)
            else:
                raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv or .parquet)")
        except DataError:
            raise
        except UnicodeDecodeError:
            check_utf8(path, str(path))
            raise
        except Exception as err:
            raise DataError(f"{path}: cannot read: {type(err).__name__}: {err}") from None
    frame = frame.rename(columns=config.rename)
    if isinstance(source, FileTable) and source.columns is not None:
        keep = [config.id_column if source.key is None else source.key, *source.columns]
        keep = [config.rename.get(c, c) for c in keep]
        missing = [c for c in keep if c not in frame.columns]
        if missing:
            raise DataError(f"{label}: column '{missing[0]}' not found; columns are {list(frame.columns)}")
        frame = frame[list(dict.fromkeys(keep))]
    return frame


def check_ids(frame: pd.DataFrame, id_column: str, label: str, unique: bool = True) -> pd.DataFrame:
    """Check the id column exists, has no missing values and (optionally) no duplicates."""
    if id_column not in frame.columns:
        raise DataError(f"{label}: id column '{id_column}' not found; columns are {list(frame.columns)}")
    missing = frame[id_column].isna()
    if missing.any():
        raise DataError(f"{label}: column '{id_column}': missing id in {_rows(missing)}")
    frame = frame.copy()
    frame[id_column] = frame[id_column].astype(str)
    if unique:
        dup = frame[id_column].duplicated(keep=False)
        if dup.any():
            first = frame.loc[dup, id_column].iloc[0]
            raise DataError(f"{label}: column '{id_column}': duplicate id '{first}' in {_rows(dup)}")
    return frame


def check_readable(problems: np.ndarray, label: str) -> None:
    """Stop on values a model cannot read (`FeaturePipeline.unreadable_values`), naming the rows,
    instead of scoring them as missing."""
    bad = problems != ""
    if bad.any():
        raise DataError(f"{label}: {problems[np.flatnonzero(bad)[0]]} in {_rows(bad)}")


def load_customers(config: CxConfig) -> pd.DataFrame:
    """Read the customers table, joining a list of files on the id (or a file's own `on` key)."""
    sources = config.data.customers if isinstance(config.data.customers, list) else [config.data.customers]
    merged: pd.DataFrame | None = None
    for source in sources:
        label = source_label(config, source)
        frame = read_table(config, source)
        join_key = source.key if isinstance(source, FileTable) and source.key else None
        if join_key is None:
            frame = check_ids(frame, config.id_column, label)
        if merged is None:
            if join_key is not None:
                raise DataError(f"{label}: the first customers table must be keyed by '{config.id_column}'")
            merged = frame
            continue
        key = join_key or config.id_column
        if key not in merged.columns:
            raise DataError(f"{label}: join column '{key}' not found in the customers read so far")
        if join_key is not None:
            dup = frame[key].duplicated(keep=False)
            if dup.any():
                raise DataError(f"{label}: column '{key}': duplicate join key in {_rows(dup)}")
        # Files of one export repeat bookkeeping columns (Count, Quarter): the first file's copy wins.
        extra = [c for c in frame.columns if c == key or c not in merged.columns]
        merged = merged.merge(frame[extra], on=key, how="left", validate="many_to_one")
    assert merged is not None
    if merged.empty:
        raise DataError(f"{source_label(config, sources[0])}: the customers table is empty")
    return merged.reset_index(drop=True)


def _check_columns_exist(frame: pd.DataFrame, columns: list[str], label: str, key: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{label}: column '{column}' named in config key '{key}' not found; "
                f"columns are {list(frame.columns)}"
            )


def _missing_file(config: CxConfig, source: TableSource) -> bool:
    path = source if isinstance(source, str) else getattr(source, "path", None)
    return isinstance(path, str) and not config.resolve(path).exists()


def check_flag(frame: pd.DataFrame, column: str, label: str, what: str) -> pd.Series:
    """A 0/1 column as ints; a missing or other value names the value and the rows."""
    values = pd.to_numeric(frame[column], errors="coerce")
    missing = frame[column].isna()
    if missing.any():
        raise DataError(f"{label}: column '{column}': missing {what} in {_rows(missing)}")
    bad = ~values.isin([0, 1])
    if bad.any():
        raise DataError(
            f"{label}: column '{column}': {what} must be 0 or 1, got '{frame.loc[bad, column].iloc[0]}' in {_rows(bad)}"
        )
    return values.astype(int)


def check_known(frame: pd.DataFrame, id_column: str, known: pd.Index, label: str, what: str) -> None:
    """Every row must belong to a customer of the customers table."""
    unknown = ~frame[id_column].isin(known)
    if unknown.any():
        first = frame.loc[unknown, id_column].iloc[0]
        raise DataError(f"{label}: column '{id_column}': {what} for unknown customer '{first}' in {_rows(unknown)}")


def check_respondents(config: CxConfig, dataset: Dataset, needed: int | None = None) -> None:
    """Training needs at least `training.min_respondents` survey rows; say how many it has and needs."""
    needed = config.training.min_respondents if needed is None else needed
    have = len(dataset.survey)
    if have < needed:
        raise DataError(
            f"{dataset.sources.get('survey', 'survey')}: {have} respondents; training needs at least {needed} "
            f"(training.min_respondents)"
        )


def check_score(survey: pd.DataFrame, config: CxConfig, label: str) -> pd.DataFrame:
    """Scores must be whole numbers on the scale; missing scores are rejected, not dropped."""
    column = config.score.column
    _check_columns_exist(survey, [column], label, "score.column")
    values = pd.to_numeric(survey[column], errors="coerce")
    not_numeric = values.isna() & survey[column].notna()
    if not_numeric.any():
        bad = survey.loc[not_numeric, column].iloc[0]
        raise DataError(f"{label}: column '{column}': score '{bad}' is not numeric in {_rows(not_numeric)}")
    if values.isna().any():
        raise DataError(f"{label}: column '{column}': missing score in {_rows(values.isna())}")
    low, high = config.score.scale
    fractional = values != np.round(values)
    if fractional.any():
        bad = values[fractional].iloc[0]
        raise DataError(
            f"{label}: column '{column}': score {bad:g} is not a whole number (the scale is {low}..{high}) "
            f"in {_rows(fractional)}"
        )
    outside = (values < low) | (values > high)
    if outside.any():
        bad = values[outside].iloc[0]
        raise DataError(
            f"{label}: column '{column}': score {bad:g} is outside the scale {low}..{high} in {_rows(outside)}"
        )
    survey = survey.copy()
    survey[column] = values.astype(int)
    return survey


def extract_causes(survey: pd.DataFrame, config: CxConfig, label: str) -> tuple[pd.DataFrame, list[str]]:
    """One 0/1 column per cause code, from a coded list column or from flag columns."""
    assert config.causes is not None
    if config.causes.columns is not None:
        _check_columns_exist(survey, config.causes.columns, label, "causes.columns")
        flags = survey[config.causes.columns].apply(pd.to_numeric, errors="coerce")
        bad = ~flags.isin([0, 1]) & flags.notna()
        if bad.to_numpy().any():
            column = bad.any().idxmax()
            raise DataError(f"{label}: column '{column}': cause flags must be 0/1 in {_rows(bad[column])}")
        return flags.fillna(0).astype(np.int8).reset_index(drop=True), list(config.causes.columns)
    column = config.causes.column
    assert column is not None
    _check_columns_exist(survey, [column], label, "causes.column")
    coded = survey[column].fillna("").astype(str)
    lists = coded.map(lambda s: [c.strip() for c in s.split(config.causes.separator) if c.strip()])
    codes = sorted({c for codes in lists for c in codes})
    if not codes:
        raise DataError(f"{label}: column '{column}': no cause code appears in any survey row")
    flags = pd.DataFrame({code: lists.map(lambda cs, c=code: int(c in cs)) for code in codes}).astype(np.int8)
    return flags, codes


def load_dataset(config: CxConfig, require_outcomes: bool = False) -> Dataset:
    """Load and check every table named in the config.

    Args:
        config: the validated dataset config.
        require_outcomes: fail when the config has no outcomes table (churn training needs one).
    Returns:
        The checked tables.
    """
    customers = load_customers(config)
    customers_label = source_label(
        config,
        config.data.customers[0] if isinstance(config.data.customers, list) else config.data.customers,
    )
    _check_columns_exist(customers, config.features.exclude, customers_label, "features.exclude")
    _check_columns_exist(customers, config.features.categorical, customers_label, "features.categorical")
    if config.value_column:
        _check_columns_exist(customers, [config.value_column], customers_label, "value_column")
    known = pd.Index(customers[config.id_column])

    survey_label = source_label(config, config.data.survey)
    survey = check_ids(read_table(config, config.data.survey), config.id_column, survey_label)
    if survey.empty:
        raise DataError(f"{survey_label}: the survey is empty: no respondent to learn from")
    check_known(survey, config.id_column, known, survey_label, "survey row")
    survey = check_score(survey, config, survey_label)
    _check_columns_exist(survey, config.drivers, survey_label, "drivers")
    for driver in config.drivers:
        values = pd.to_numeric(survey[driver], errors="coerce")
        bad = values.isna() & survey[driver].notna()
        if bad.any():
            raise DataError(f"{survey_label}: column '{driver}': driver rating is not numeric in {_rows(bad)}")
        survey[driver] = values
    causes, cause_codes = (None, [])
    if config.causes is not None:
        causes, cause_codes = extract_causes(survey, config, survey_label)
    survey = survey.reset_index(drop=True)

    outcomes = None
    if config.data.outcomes is not None:
        outcomes_label = source_label(config, config.data.outcomes)
        outcomes = check_ids(read_table(config, config.data.outcomes), config.id_column, outcomes_label)
        if config.churn is None:
            raise DataError(f"{outcomes_label}: an outcomes table needs the config key 'churn.column'")
        column = config.churn.column
        _check_columns_exist(outcomes, [column], outcomes_label, "churn.column")
        outcomes[column] = check_flag(outcomes, column, outcomes_label, "churn flag")
        check_known(outcomes, config.id_column, known, outcomes_label, "outcome")
    elif require_outcomes:
        raise DataError("config: churn training needs an outcomes table (data.outcomes)")

    campaigns = None
    # A configured history file that does not exist yet is an empty history: the first
    # `cxpredict campaign results` creates it (wave 0 of the strategy loop is simulation only).
    if config.data.campaigns is not None and not _missing_file(config, config.data.campaigns):
        campaigns_label = source_label(config, config.data.campaigns)
        campaigns = check_ids(
            read_table(config, config.data.campaigns), config.id_column, campaigns_label, unique=False
        )
        _check_columns_exist(campaigns, ["strategy", "treated"], campaigns_label, "data.campaigns")
        campaigns["treated"] = check_flag(campaigns, "treated", campaigns_label, "treated flag")
        check_known(campaigns, config.id_column, known, campaigns_label, "campaign row")

    return Dataset(
        customers=customers,
        survey=survey,
        outcomes=outcomes,
        campaigns=campaigns,
        causes=causes,
        cause_codes=cause_codes,
        sources={"customers": customers_label, "survey": survey_label},
    )

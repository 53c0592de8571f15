"""The text contract (issue 18): the codeframe file, the `texts` table and the survey's free-text answers.

Pure reading and checking; coding lives in `features.text_coder`, per-customer features in
`features.text_features`. Errors are `DataError`s naming the file, the column and the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxpredict.features.config import ConfigError, CxConfig, read_yaml_text
from cxpredict.features.load import (
    DataError,
    _rows,
    check_ids,
    check_known,
    check_utf8,
    read_table,
    source_label,
)

_CODE_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Code:
    """One cause code: its id (what the survey's cause column holds), a name in words, seed phrases."""

    id: str
    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Codeframe:
    """The cause codes texts are coded into, in file order."""

    codes: tuple[Code, ...]
    source: str = "codeframe"

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.codes]

    def name_of(self, code: str) -> str:
        return next((c.name for c in self.codes if c.id == code), code)


@dataclass(frozen=True)
class TextTable:
    """The `texts` table in contract names (id, date, channel, text) and how many texts were cut."""

    frame: pd.DataFrame
    truncated: int
    source: str
    skipped: int = 0  # texts of customers outside the base (`outside="skip"`)


def parse_codeframe(raw: object, source: str) -> Codeframe:
    """A codeframe from its YAML data: a list of {id, name, keywords}; errors name the file and the entry."""
    if raw is None or (isinstance(raw, list) and not raw):
        raise DataError(f"{source}: the codeframe is empty: list at least one code with its keywords")
    if not isinstance(raw, list):
        raise DataError(f"{source}: expected a list of codes ({{id, name, keywords}}), got {type(raw).__name__}")
    codes: list[Code] = []
    for i, entry in enumerate(raw, start=1):
        where = f"{source}: code {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected a mapping with id, name and keywords")
        unknown = sorted(set(entry) - {"id", "name", "keywords"})
        if unknown:
            raise DataError(f"{where}: unknown key '{unknown[0]}' (use id, name, keywords)")
        code_id = str(entry.get("id", "")).strip()
        if not _CODE_ID.match(code_id):
            raise DataError(f"{where}: id '{code_id}' must be lower-case letters, digits and _")
        if code_id in {c.id for c in codes}:
            raise DataError(f"{where}: duplicate id '{code_id}'")
        keywords = entry.get("keywords") or []
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise DataError(f"{where} ('{code_id}'): keywords must be a list of non-empty phrases")
        codes.append(Code(code_id, str(entry.get("name") or code_id), tuple(k.strip().lower() for k in keywords)))
    return Codeframe(tuple(codes), source)


def load_codeframe(config: CxConfig) -> Codeframe:
    """Read the config's `codeframe` file."""
    if config.codeframe is None:
        raise DataError("config: text coding needs a codeframe file (config key 'codeframe')")
    path = config.resolve(config.codeframe)
    if not path.is_file():
        raise DataError(f"{path}: codeframe file not found (config key 'codeframe')")
    try:
        raw = read_yaml_text(path)  # one line for bad YAML (line and column), non-UTF-8 bytes, a huge file
    except ConfigError as err:
        raise DataError(str(err)) from None
    return parse_codeframe(raw, str(path))


def truncate_texts(texts: pd.Series, max_chars: int) -> tuple[pd.Series, int]:
    """Texts as str (missing -> ''), cut to `max_chars`; the count of cut texts goes in the summary."""
    values = texts.astype("string").fillna("").astype(str)
    long = values.str.len() > max_chars
    return values.where(~long, values.str.slice(0, max_chars)), int(long.sum())


def _check_utf8_source(config: CxConfig, source: object, label: str) -> None:
    path = source if isinstance(source, str) else getattr(source, "path", None)
    if isinstance(path, str) and config.resolve(path).suffix.lower() in (".csv", ".txt"):
        resolved = config.resolve(path)
        if resolved.is_file():
            check_utf8(resolved, label)


def load_text_table(config: CxConfig, known: pd.Index, outside: str = "error") -> TextTable | None:
    """Read and check the optional `texts` table (None when the config names none).

    Args:
        config: the dataset config.
        known: every customer id; a text for another customer is an error.
        outside: `error`, or `skip` for a base that is a part of the customers (the backtest's
            respondents): texts of the other customers are left out and counted in `skipped`.
    Returns:
        The texts (id, date as datetime, channel, text cut to `text.max_chars`) and the cut count.
    """
    source = config.data.texts
    if source is None:
        return None
    label = source_label(config, source)
    _check_utf8_source(config, source, label)
    frame = check_ids(read_table(config, source), config.id_column, label, unique=False)
    t = config.text
    for column, key in ((t.text_column, "text.text_column"), (t.date_column, "text.date_column"),
                        (t.channel_column, "text.channel_column")):
        if column not in frame.columns:
            raise DataError(
                f"{label}: column '{column}' named in config key '{key}' not found; columns are {list(frame.columns)}"
            )
    skipped = 0
    if outside == "skip":
        inside = frame[config.id_column].isin(known)
        skipped = int((~inside).sum())
        frame = frame[inside].reset_index(drop=True)
    check_known(frame, config.id_column, known, label, "text")
    dates = pd.to_datetime(frame[t.date_column], errors="coerce", format="ISO8601")
    bad = dates.isna() & frame[t.date_column].notna()
    if bad.any():
        raise DataError(
            f"{label}: column '{t.date_column}': '{frame.loc[bad, t.date_column].iloc[0]}' is not an ISO 8601 date "
            f"in {_rows(bad)}"
        )
    text, cut = truncate_texts(frame[t.text_column], t.max_chars)
    channel = frame[t.channel_column].astype("string").fillna("unknown").str.strip().str.lower()
    out = pd.DataFrame({
        config.id_column: frame[config.id_column].to_numpy(),
        "date": dates.to_numpy(),
        "channel": channel.to_numpy(dtype=object),
        "text": text.to_numpy(dtype=object),
    })
    return TextTable(out, cut, label, skipped)


def survey_text(config: CxConfig, survey: pd.DataFrame, label: str) -> tuple[pd.Series, int] | None:
    """The survey's free-text answers (cut to `text.max_chars`) and the cut count; None without `survey.text_column`."""
    column = config.survey.text_column
    if column is None:
        return None
    if column not in survey.columns:
        raise DataError(
            f"{label}: column '{column}' named in config key 'survey.text_column' not found; "
            f"columns are {list(survey.columns)}"
        )
    return truncate_texts(survey[column].reset_index(drop=True), config.text.max_chars)


def keyword_hits(codeframe: Codeframe, texts: pd.Series) -> np.ndarray:
    """(n_texts, n_codes) 0/1: a text contains one of a code's seed phrases (case-insensitive substring).

    Substrings rather than tokens so a Chinese phrase matches without segmentation.
    """
    lowered = texts.astype(str).str.lower()
    hits = np.zeros((len(texts), len(codeframe.codes)), dtype=np.int8)
    for j, code in enumerate(codeframe.codes):
        if code.keywords:
            pattern = "|".join(re.escape(k) for k in code.keywords)
            hits[:, j] = lowered.str.contains(pattern, regex=True).to_numpy(dtype=np.int8)
    return hits


def check_codes_appear(codeframe: Codeframe, hits: np.ndarray, labels: pd.DataFrame | None) -> None:
    """A code no text mentions (no seed phrase matches) and no respondent was coded with is an error:
    it could never be learned, and is usually a typo in the codeframe."""
    for j, code in enumerate(codeframe.codes):
        labelled = labels is not None and code.id in labels.columns and bool(labels[code.id].sum() > 0)
        if not labelled and not hits[:, j].any():
            raise DataError(
                f"{codeframe.source}: code '{code.id}' appears nowhere: no text contains its keywords "
                f"{list(code.keywords)[:5]} and no survey row is coded with it"
            )


def check_cause_codes(codeframe: Codeframe, cause_codes: list[str], label: str) -> None:
    """Every cause code of the survey must be in the codeframe (the coder learns the survey's codes)."""
    missing = [c for c in cause_codes if c not in codeframe.ids]
    if missing:
        raise DataError(
            f"{label}: cause code '{missing[0]}' is not in the codeframe {codeframe.source} (codes {codeframe.ids})"
        )

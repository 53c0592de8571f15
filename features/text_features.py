"""Customers' texts as model inputs (issue 18): per-code probabilities, sentiment, counts by channel and recency.

The coder learns from the survey's free-text answers (labels: the coded causes, or the
codeframe's keywords; sentiment: the score). Survey text is a target-side input only: it is
never aggregated into features, and a respondent's tickets are coded by a coder fitted on the
*other* respondents' answers (cross-fitting), so no feature carries the score its author gave.
Feature columns are named in words (`text: billing complaint (last 30 days)`), which is how
SHAP drivers, reports and the console show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset
from cxpredict.features.text_coder import ASSIGNED, CodedTexts, TextCoder, code_auc, cross_fit_codes, language_of
from cxpredict.features.texts import (
    Codeframe,
    TextTable,
    check_cause_codes,
    check_codes_appear,
    keyword_hits,
    load_codeframe,
    load_text_table,
    survey_text,
)

TEXT_PREFIX = "text: "
MAX_CHANNELS = 10  # more distinct channels are free text, not a channel list: the rest count as `other`


def code_feature(codeframe: Codeframe, code: str, recent_days: int | None) -> str:
    """The feature column of a code's highest probability over a customer's texts (all or recent ones)."""
    window = "any time" if recent_days is None else f"last {recent_days} days"
    return f"{TEXT_PREFIX}{codeframe.name_of(code)} ({window})"


@dataclass(frozen=True)
class TextFusion:
    """What the texts added: the customers' feature columns, cause labels from text, the coder's figures.

    Attributes:
        features: one row per customer (id column + feature columns named in words).
        causes: 0/1 cause labels coded from the survey's text (None when the survey had coded causes).
        metrics: the coder's held-out figures and counts (`text_*`).
        notes: what was done, in words (truncation counts among them).
    """

    features: pd.DataFrame
    causes: pd.DataFrame | None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def aggregate_texts(config: CxConfig, codeframe: Codeframe, ids: pd.Series, texts: pd.DataFrame,
                    coded: CodedTexts, reference: pd.Timestamp) -> pd.DataFrame:
    """Per customer: max P(code) over all and recent texts, mean sentiment, counts by channel, recency.

    Args:
        config: the dataset config (`text.recent_days`).
        codeframe: the codes.
        ids: every customer id (the output's rows, in this order).
        texts: the texts (id, date, channel), aligned with `coded`.
        coded: their codes and sentiment.
        reference: "today" for recency: the latest text's date, a dataset constant, not the clock.
    Returns:
        id column + feature columns; customers without texts get 0 counts and probabilities.
    """
    idc, days = config.id_column, config.text.recent_days
    age = (reference - pd.to_datetime(texts["date"])).dt.days.to_numpy(dtype=float)
    recent = age <= days
    frame = pd.DataFrame({idc: texts[idc].to_numpy()})
    for code in codeframe.ids:
        p = coded.probabilities[code].to_numpy()
        frame[code_feature(codeframe, code, None)] = p
        frame[code_feature(codeframe, code, days)] = np.where(recent, p, 0.0)
    frame[f"{TEXT_PREFIX}sentiment (mean)"] = coded.sentiment
    frame[f"{TEXT_PREFIX}texts (last {days} days)"] = recent.astype(float)
    frame[f"{TEXT_PREFIX}days since last text"] = age
    channels = texts["channel"].astype(str)
    kept = channels.value_counts().index[:MAX_CHANNELS]
    channels = channels.where(channels.isin(kept), "other")
    for channel in sorted(channels.unique()):
        frame[f"{TEXT_PREFIX}{channel.replace('_', ' ')} count"] = (channels == channel).to_numpy(float)
    grouped = frame.groupby(idc, sort=False)
    agg = {c: ("sum" if c.endswith("count") or c.startswith(f"{TEXT_PREFIX}texts") else "max")
           for c in frame.columns if c != idc}
    agg[f"{TEXT_PREFIX}sentiment (mean)"] = "mean"
    agg[f"{TEXT_PREFIX}days since last text"] = "min"
    per_customer = grouped.agg(agg)
    out = pd.DataFrame({idc: ids.astype(str).to_numpy()}).merge(
        per_customer, left_on=idc, right_index=True, how="left")
    keep_missing = {f"{TEXT_PREFIX}sentiment (mean)", f"{TEXT_PREFIX}days since last text"}
    fill = [c for c in out.columns if c != idc and c not in keep_missing]
    out[fill] = out[fill].fillna(0.0)
    return out


def _respondent_labels(dataset: Dataset, codeframe: Codeframe) -> pd.DataFrame | None:
    if dataset.causes is None:
        return None
    return dataset.causes[[c for c in codeframe.ids if c in dataset.causes.columns]].astype(np.int8)


def _negative(config: CxConfig, survey: pd.DataFrame) -> np.ndarray:
    low, high = config.score.bands[config.score.bottom_band]
    score = survey[config.score.column].to_numpy()
    return ((score >= low) & (score <= high)).astype(int)


def fuse_texts(config: CxConfig, dataset: Dataset, outside: str = "error") -> TextFusion:
    """Code the survey's answers and the `texts` table, and build every customer's text features.

    Args:
        config: the dataset config (needs `codeframe`, and `survey.text_column` or `data.texts`).
        dataset: the loaded tables.
        outside: texts of customers not in `dataset.customers`: `error`, or `skip` (counted in the notes).
    Returns:
        The features, cause labels from text (when the survey has none) and the coder's figures.
    """
    codeframe = load_codeframe(config)
    label = dataset.sources.get("survey", "survey")
    answers = survey_text(config, dataset.survey, label)
    table: TextTable | None = load_text_table(config, pd.Index(dataset.customers[config.id_column]), outside)
    if dataset.cause_codes:
        check_cause_codes(codeframe, dataset.cause_codes, label)
    labels = _respondent_labels(dataset, codeframe)
    corpus = [answers[0]] if answers is not None else []
    if table is not None:
        corpus.append(table.frame["text"])
    check_codes_appear(codeframe, keyword_hits(codeframe, pd.concat(corpus, ignore_index=True))
                       if corpus else np.zeros((0, len(codeframe.codes))), labels)
    seed, folds = config.training.seed, config.text.cross_fit_folds
    metrics: dict[str, float] = {"text_codes": float(len(codeframe.codes))}
    notes: list[str] = []
    causes = None
    if answers is not None:
        texts, cut = answers
        metrics["text_survey_answers"] = float(texts.str.strip().ne("").sum())
        metrics["text_survey_truncated"] = float(cut)
        if cut:
            notes.append(f"{cut} survey answers longer than {config.text.max_chars} characters were cut")
        negative = _negative(config, dataset.survey)
        oof = cross_fit_codes(codeframe, texts, labels, negative, folds, seed)
        if labels is not None:
            for code, auc in code_auc(labels, oof.probabilities).items():
                metrics[f"text_code_auc_{code}"] = auc
        present = ~np.isnan(oof.sentiment)
        if present.any() and 0 < negative[present].sum() < present.sum():
            from sklearn.metrics import roc_auc_score

            metrics["text_sentiment_auc"] = float(roc_auc_score(negative[present], -oof.sentiment[present]))
        if labels is None:
            # Coded text becomes the cause labels: weak (keyword) labels generalised by the coder.
            # A seed phrase in the answer is a label by itself; the coder adds answers that say it otherwise.
            coded = TextCoder(codeframe, seed).fit(texts, None, negative).code(texts)
            said = keyword_hits(codeframe, texts).astype(bool)
            causes = ((coded.probabilities >= config.text.label_threshold) | said).astype(np.int8)
            labels = causes
            notes.append(f"cause labels coded from the survey's text ({int(causes.to_numpy().sum())} codes assigned)")
    ids = dataset.customers[config.id_column].astype(str)
    if table is None:
        empty = pd.DataFrame({config.id_column: [], "date": [], "channel": [], "text": []})
        coded_table = CodedTexts(pd.DataFrame(columns=codeframe.ids, dtype=float), np.zeros(0))
        features = aggregate_texts(config, codeframe, ids, empty, coded_table, pd.Timestamp("1970-01-01"))
        features = features[[config.id_column]]  # survey text alone is never a feature
        return TextFusion(features, causes, metrics, tuple(notes))
    metrics["text_texts"] = float(len(table.frame))
    if table.skipped:
        notes.append(f"{table.skipped} texts of customers outside this base were left out")
    metrics["text_truncated"] = float(table.truncated)
    if table.truncated:
        notes.append(f"{table.truncated} texts longer than {config.text.max_chars} characters were cut")
    coded_table = code_text_table(config, codeframe, dataset, table.frame, answers, labels)
    reference = pd.to_datetime(table.frame["date"]).max()
    features = aggregate_texts(config, codeframe, ids, table.frame, coded_table, reference)
    notes.append(f"text features from {len(table.frame)} texts: {len(features.columns) - 1} columns")
    return TextFusion(features, causes, metrics, tuple(notes))


def code_text_table(config: CxConfig, codeframe: Codeframe, dataset: Dataset, texts: pd.DataFrame,
                    answers: tuple[pd.Series, int] | None, labels: pd.DataFrame | None) -> CodedTexts:
    """Code the texts table; a respondent's texts by a coder that never saw that respondent's answer."""
    seed, idc = config.training.seed, config.id_column
    if answers is None:
        # No survey text: the coder learns from the tickets' keyword hits, which carry no score.
        coder = TextCoder(codeframe, seed).fit(texts["text"], None, None)
        return coder.code(texts["text"])
    survey_texts = answers[0]
    negative = _negative(config, dataset.survey)
    respondent_ids = dataset.survey[idc].astype(str).to_numpy()
    probabilities = np.zeros((len(texts), len(codeframe.codes)))
    sentiment = np.full(len(texts), np.nan)
    writer = texts[idc].astype(str).to_numpy()

    def apply(coder: TextCoder, rows: np.ndarray) -> None:
        if len(rows):
            coded = coder.code(texts["text"].iloc[rows])
            probabilities[rows] = coded.probabilities.to_numpy()
            sentiment[rows] = coded.sentiment

    def fit(rows: np.ndarray) -> TextCoder:
        y = None if labels is None else labels.iloc[rows].reset_index(drop=True)
        return TextCoder(codeframe, seed).fit(survey_texts.iloc[rows], y, negative[rows])

    folds = KFold(n_splits=config.text.cross_fit_folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(respondent_ids):
        apply(fit(fit_rows), np.flatnonzero(np.isin(writer, respondent_ids[held_rows])))
    apply(fit(np.arange(len(survey_texts))), np.flatnonzero(~np.isin(writer, respondent_ids)))
    return CodedTexts(pd.DataFrame(probabilities, columns=codeframe.ids), sentiment)


def uses_texts(config: CxConfig) -> bool:
    """The config asks for text coding (a codeframe and some text)."""
    return config.codeframe is not None and (config.survey.text_column is not None or config.data.texts is not None)


def with_text_features(config: CxConfig, dataset: Dataset, outside: str = "error") -> Dataset:
    """The dataset with its customers' text features joined in (and text-coded causes where none were given).

    Idempotent: a dataset already fused is returned as it is. `outside` as in `fuse_texts`.
    """
    if not uses_texts(config) or dataset.text_metrics:
        return dataset
    fusion = fuse_texts(config, dataset, outside)
    customers = dataset.customers.drop(columns=[c for c in dataset.customers.columns if c.startswith(TEXT_PREFIX)])
    customers = customers.merge(fusion.features, on=config.id_column, how="left", validate="one_to_one")
    changes: dict[str, object] = {"customers": customers, "text_metrics": dict(fusion.metrics),
                                  "text_notes": list(fusion.notes)}
    if fusion.causes is not None and dataset.causes is None:
        kept = [c for c in fusion.causes.columns if fusion.causes[c].sum() > 0]
        changes.update(causes=fusion.causes[kept].reset_index(drop=True), cause_codes=kept)
    return replace(dataset, **changes)


def coded_table(config: CxConfig, codeframe: Codeframe, texts: pd.DataFrame, coded: CodedTexts,
                source: str) -> pd.DataFrame:
    """The `text code` output: one row per text with its language, P(code), top code, sentiment and evidence."""
    top = coded.probabilities.to_numpy().argmax(axis=1) if len(coded.probabilities) else np.zeros(0, int)
    best = coded.probabilities.to_numpy().max(axis=1) if len(coded.probabilities) else np.zeros(0)
    out = pd.DataFrame({
        "source": source,
        config.id_column: texts[config.id_column].astype(str).to_numpy(),
        "date": texts["date"].to_numpy() if "date" in texts else None,
        "channel": texts["channel"].to_numpy() if "channel" in texts else source,
        "language": language_of(texts["text"]),
        "text": texts["text"].to_numpy(),
    })
    for code in codeframe.ids:
        out[f"p_{code}"] = coded.probabilities[code].to_numpy().round(4)
    out["top_code"] = np.where(best >= ASSIGNED, np.asarray(codeframe.ids, dtype=object)[top], "")
    out["sentiment"] = np.round(coded.sentiment, 4)
    out["evidence"] = coded.evidence if coded.evidence is not None else ""
    return out


@dataclass(frozen=True)
class CodingResult:
    """`cxpredict text code`: every text coded (one row each), the coder's figures and notes."""

    coded: pd.DataFrame
    metrics: dict[str, float]
    notes: tuple[str, ...]
    codeframe: Codeframe


def code_dataset_texts(config: CxConfig, dataset: Dataset, evidence: bool = True) -> CodingResult:
    """Code every text of a dataset (survey answers and the texts table) with one coder fitted on all answers.

    The figures come from `fuse_texts` (held-out, cross-fitted); the coded rows are for analysts
    and downstream systems, so they use the coder fitted on every answer.
    """
    codeframe = load_codeframe(config)
    fusion = fuse_texts(config, dataset)
    label = dataset.sources.get("survey", "survey")
    answers = survey_text(config, dataset.survey, label)
    table = load_text_table(config, pd.Index(dataset.customers[config.id_column]))
    labels = _respondent_labels(dataset, codeframe)
    if labels is None:
        labels = fusion.causes
    seed, idc = config.training.seed, config.id_column
    if answers is not None:
        coder = TextCoder(codeframe, seed).fit(answers[0], labels, _negative(config, dataset.survey))
    else:
        assert table is not None
        coder = TextCoder(codeframe, seed).fit(table.frame["text"], None, None)
    parts = []
    if answers is not None:
        date_column = config.survey_date_column or next(
            (c for c in dataset.survey.columns if str(c).lower().endswith("date")), None)
        frame = pd.DataFrame({
            idc: dataset.survey[idc].astype(str).to_numpy(),
            "date": dataset.survey[date_column].to_numpy() if date_column else None,
            "channel": "survey",
            "text": answers[0].to_numpy(),
        })
        coded = coded_table(config, codeframe, frame, coder.code(frame["text"], evidence), "survey")
        coded["score"] = dataset.survey[config.score.column].to_numpy()
        parts.append(coded)
    if table is not None:
        parts.append(coded_table(config, codeframe, table.frame, coder.code(table.frame["text"], evidence), "texts"))
    return CodingResult(pd.concat(parts, ignore_index=True), dict(fusion.metrics), fusion.notes, codeframe)

"""Texts as customer features (issue 18): no leakage of a respondent's own answer, aggregation, coded output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.features.synthetic_text import write_company_texts
from cxpredict.features.text_coder import word_tokens
from cxpredict.features.text_features import TEXT_PREFIX, code_dataset_texts, fuse_texts, with_text_features

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def text_config(tmp_path_factory: pytest.TempPathFactory) -> CxConfig:
    out = tmp_path_factory.mktemp("text_features")
    company = generate_company(1500, 0.3, seed=9)
    write_company(company, out, name="features")
    write_company_texts(company, out, seed=9)
    return load_config(out / "cxpredict.yaml")


def _respondent_with_texts(config: CxConfig) -> str:
    dataset = load_dataset(config)
    texts = pd.read_csv(config.resolve("texts.csv"))
    writers = set(texts["customer_id"])
    return next(i for i in dataset.survey["customer_id"] if i in writers)


def test_a_respondents_own_answer_never_reaches_their_features(text_config: CxConfig) -> None:
    """Cross-fitting: changing what a respondent answered (text and score) leaves their text features
    unchanged, while the same change does move the features of customers the full coder codes."""
    dataset = load_dataset(text_config)
    author = _respondent_with_texts(text_config)
    before = fuse_texts(text_config, dataset).features.set_index("customer_id")
    survey = dataset.survey.copy()
    row = survey.index[survey["customer_id"] == author][0]
    their_tickets = pd.read_csv(text_config.resolve("texts.csv")).query("customer_id == @author")["text"]
    # The most leaking answer possible: their own ticket text, the lowest score, every cause.
    survey.loc[row, "comment"] = " ".join(their_tickets) * 3
    survey.loc[row, "nps"] = 0
    causes = dataset.causes.copy()
    causes.loc[row] = 1
    changed = type(dataset)(**{**dataset.__dict__, "survey": survey, "causes": causes})
    after = fuse_texts(text_config, changed).features.set_index("customer_id")
    pd.testing.assert_series_equal(before.loc[author], after.loc[author])
    silent = before.index.difference(dataset.survey["customer_id"])
    moved = (before.loc[silent] - after.loc[silent]).abs().to_numpy()
    assert np.nanmax(moved) > 0, "the change must reach the coder that codes silent customers"


def test_text_features_are_named_in_words_and_zero_without_texts(text_config: CxConfig) -> None:
    dataset = with_text_features(text_config, load_dataset(text_config))
    columns = [c for c in dataset.customers.columns if c.startswith(TEXT_PREFIX)]
    assert "text: billing complaint (last 30 days)" in columns
    assert "text: sentiment (mean)" in columns and "text: ticket count" in columns
    assert "comment" not in dataset.customers.columns
    writers = set(pd.read_csv(text_config.resolve("texts.csv"))["customer_id"])
    quiet = dataset.customers[~dataset.customers["customer_id"].isin(writers)]
    assert (quiet["text: ticket count"] == 0).all()
    assert quiet["text: sentiment (mean)"].isna().all()
    assert dataset.text_metrics["text_code_auc_macro"] > 0.8
    assert with_text_features(text_config, dataset) is dataset  # idempotent


def test_recent_window_counts_only_recent_texts(text_config: CxConfig) -> None:
    dataset = with_text_features(text_config, load_dataset(text_config)).customers.set_index("customer_id")
    texts = pd.read_csv(text_config.resolve("texts.csv"), parse_dates=["date"])
    recent = texts[(texts["date"].max() - texts["date"]).dt.days <= 30].groupby("customer_id").size()
    got = dataset.loc[recent.index, "text: texts (last 30 days)"]
    assert (got.to_numpy() == recent.to_numpy()).all()


def test_chinese_is_segmented_into_words() -> None:
    tokens = word_tokens("客服态度很差, signal drops")
    assert "客服" in tokens and "态度" in tokens and "signal" in tokens and "客服 态度" in tokens


def test_coded_output_has_codes_sentiment_and_evidence(text_config: CxConfig) -> None:
    result = code_dataset_texts(text_config, load_dataset(text_config))
    coded = result.coded
    assert {"source", "customer_id", "language", "p_billing", "top_code", "sentiment", "evidence"} <= set(coded)
    assert set(coded["language"]) >= {"en", "zh"}
    said = coded["text"].astype(str).str.contains("账单金额不对|wrong amount on my bill")
    billing, others = coded.loc[said, "p_billing"], coded.loc[~said, "p_billing"]
    assert billing.median() > 0.5 and billing.median() > 5 * others.median(), (billing.median(), others.median())
    assert coded.loc[said & (coded["top_code"] == "billing"), "evidence"].fillna("").str.len().gt(0).all()
    survey = coded[coded["source"] == "survey"]
    low, high = survey[survey["score"] <= 3]["sentiment"].mean(), survey[survey["score"] >= 9]["sentiment"].mean()
    assert low < 0 < high, (low, high)
    empty = coded["text"].fillna("").astype(str).str.strip().eq("")
    assert (coded.loc[empty, "top_code"] == "").all()


def test_survey_without_texts_table_gives_no_feature_columns(text_config: CxConfig, tmp_path: Path) -> None:
    config = text_config.model_copy(update={"data": text_config.data.model_copy(update={"texts": None})})
    dataset = with_text_features(config, load_dataset(config))
    assert not [c for c in dataset.customers.columns if c.startswith(TEXT_PREFIX)]


def test_feature_names_in_words_become_valid_mlflow_metric_names() -> None:
    from cxpredict.models.registry import metric_name

    assert metric_name("drift_psi_text: billing complaint (last 30 days)") == \
        "drift_psi_text: billing complaint _last 30 days_"
    assert metric_name("shap_mean_abs_churn_monthly_charge") == "shap_mean_abs_churn_monthly_charge"

"""Free text for the synthetic company (issue 18): survey answers and tickets in Chinese and English.

Texts are tied to each customer's true causes (truth `true_cause_*`) and band, with the noise
real text has: typos, mixed languages, irrelevant and empty answers, causes left unsaid and
the odd cause named that is not true. Silent customers write tickets too, so their text carries
information the operational columns do not (how they would have answered), without copying a label.
Kept apart from `features.synthetic` so the default generator's outputs do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cxpredict.features.synthetic import CAUSE_CODES, ID_COLUMN, REFERENCE_DATE, SyntheticCompany

# Phrases per cause and language. The codeframe's seed keywords (DEMO_CODEFRAME) hit only some
# of them, so weak labels from keywords are imperfect, as with a real codeframe.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "network": {
        "en": ("the signal keeps dropping", "calls drop all the time", "no signal indoors",
               "mobile data is so slow", "the network is unreliable in the evening", "internet keeps cutting out"),
        "zh": ("信号经常断", "打电话老是掉线", "室内没有信号", "上网速度太慢", "晚上网络很不稳定", "网速特别慢"),
    },
    "price": {
        "en": ("too expensive for what I get", "the price went up again", "cheaper plans elsewhere",
               "monthly fee is too high", "not worth the money", "competitors offer better prices"),
        "zh": ("价格太贵了", "又涨价了", "别家套餐更便宜", "月费太高", "性价比太低", "资费不合理"),
    },
    "support": {
        "en": ("customer service never helps", "waited an hour on the phone", "support was rude",
               "my ticket is still not resolved", "nobody called me back", "the agent could not fix it"),
        "zh": ("客服态度很差", "电话等了一个小时", "问题一直没有解决", "没人回电话", "客服解决不了问题", "投诉没人理"),
    },
    "billing": {
        "en": ("I was charged twice", "wrong amount on my bill", "unexpected fees on the invoice",
               "the bill is confusing", "refund never arrived", "billing error again"),
        "zh": ("被重复扣费", "账单金额不对", "发票上有莫名其妙的费用", "账单看不懂", "退款一直没到账", "又扣错钱了"),
    },
    "coverage": {
        "en": ("no coverage in my area", "dead zone at home", "coverage is bad outside the city",
               "no service on the highway", "my village has no 5g", "coverage map is a lie"),
        "zh": ("我这里没有覆盖", "家里是信号盲区", "出了城就没有服务", "高速上没有信号", "村里没有5g", "覆盖范围太小"),
    },
}
OPENERS = {
    "detractor": {"en": ("very disappointed.", "terrible.", "so frustrating,", "awful experience."),
                  "zh": ("非常失望。", "太糟糕了。", "很生气，", "体验很差。")},
    "passive": {"en": ("it is ok but", "mostly fine,", "not bad, although"),
                "zh": ("还行，但是", "总体可以，", "一般般，")},
    "promoter": {"en": ("great service!", "very happy.", "love it,"),
                 "zh": ("服务很好！", "非常满意。", "很喜欢，")},
}
GENERIC = {
    "detractor": {"en": ("I want to cancel", "will switch soon"), "zh": ("我想销户", "准备换运营商")},
    "passive": {"en": ("nothing special", "it does the job"), "zh": ("没什么特别的", "能用")},
    "promoter": {"en": ("everything works well", "would recommend to friends"), "zh": ("一切都很好", "会推荐给朋友")},
}
IRRELEVANT = {"en": ("how do I change my address", "asdf", "n/a", "please send me the app link", "test"),
              "zh": ("怎么修改地址", "无", "请发给我app下载链接", "测试", "。。。")}
CHANNELS = ("ticket", "call_note", "app_review")
CHANNEL_SHARES = (0.5, 0.3, 0.2)

DEMO_CODEFRAME: list[dict[str, Any]] = [
    {"id": "network", "name": "network quality",
     "keywords": ["signal", "drop", "slow", "network", "信号", "掉线", "网速", "网络"]},
    {"id": "price", "name": "price",
     "keywords": ["expensive", "price", "cheaper", "fee", "贵", "涨价", "便宜", "月费"]},
    {"id": "support", "name": "customer support",
     "keywords": ["customer service", "support", "agent", "resolved", "called", "客服", "没人", "投诉", "解决"]},
    {"id": "billing", "name": "billing complaint",
     "keywords": ["charged", "bill", "invoice", "refund", "扣费", "账单", "退款", "扣错"]},
    {"id": "coverage", "name": "coverage",
     "keywords": ["coverage", "dead zone", "no service", "覆盖", "盲区", "没有服务"]},
    # Not a survey cause: learned from its keywords alone (the survey never codes it).
    {"id": "leaving", "name": "intent to leave",
     "keywords": ["cancel", "switch", "销户", "换运营商"]},
]


@dataclass(frozen=True)
class SyntheticTexts:
    """The survey's free-text answers (aligned with `company.survey`) and the texts table of every customer."""

    survey_text: pd.Series
    texts: pd.DataFrame


def _typo(rng: np.random.Generator, text: str) -> str:
    """One slip: two neighbouring characters swapped, or one dropped."""
    if len(text) < 4:
        return text
    i = int(rng.integers(1, len(text) - 2))
    if rng.random() < 0.5:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + text[i + 1:]


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _compose(rng: np.random.Generator, causes: list[str], band: str, language: str,
             mention: float, false_mention: float) -> str:
    """One answer: an opener by band, some of the true causes (and rarely a false one), noise."""
    other = "zh" if language == "en" else "en"
    said = [c for c in causes if rng.random() < mention]
    if rng.random() < false_mention:
        said.append(_pick(rng, CAUSE_CODES))
    parts: list[str] = []
    if rng.random() < 0.6:
        parts.append(_pick(rng, OPENERS[band][language]))
    for code in dict.fromkeys(said):
        # A tenth of phrases come in the other language: bilingual customers mix them.
        parts.append(_pick(rng, PHRASES[code][other if rng.random() < 0.1 else language]))
    if not said:
        parts.append(_pick(rng, GENERIC[band][language]))
    text = (" " if language == "en" else "").join(parts)
    if rng.random() < 0.15:
        text = _typo(rng, text)
    return text


def _band(nps: np.ndarray) -> np.ndarray:
    return np.select([nps <= 6, nps <= 8], ["detractor", "passive"], "promoter").astype(object)


def draw_survey_text(rng: np.random.Generator, company: SyntheticCompany, languages: np.ndarray) -> pd.Series:
    """The free-text answer of each respondent: 5 % empty, 3 % irrelevant, else causes in words
    (each true cause said with probability 0.9, a false one added 5 % of the time)."""
    survey = company.survey
    position = pd.Series(np.arange(len(company.customers)), index=company.customers[ID_COLUMN])
    rows = position.loc[survey[ID_COLUMN]].to_numpy()
    coded = survey["causes"].fillna("").astype(str).str.split(";")
    bands = _band(survey["nps"].to_numpy())
    out = []
    for i, (causes, band) in enumerate(zip(coded, bands, strict=True)):
        language = languages[rows[i]]
        draw = rng.random()
        if draw < 0.05:
            out.append("")
        elif draw < 0.08:
            out.append(_pick(rng, IRRELEVANT[language]))
        else:
            out.append(_compose(rng, [c for c in causes if c], band, language, mention=0.9, false_mention=0.05))
    return pd.Series(out, name="comment", dtype=object)


def draw_tickets(rng: np.random.Generator, company: SyntheticCompany, languages: np.ndarray) -> pd.DataFrame:
    """Tickets, call notes and app reviews of every customer, surveyed or not.

    Customers with more true causes, detractors, a worse true experience and those likely to leave (the true churn
    probability, not the outcome) write more; each text names one of the writer's true causes
    70 % of the time, another cause 10 %, nothing relevant 20 %, and a writer who is likely to
    leave says so now and then ("I want to cancel") as real call notes do.
    """
    truth = company.truth
    causes = truth[[f"true_cause_{c}" for c in CAUSE_CODES]].to_numpy()
    bands = truth["true_band"].to_numpy()
    leaving = truth["true_churn_prob"].to_numpy()
    unhappy = np.maximum(-truth["true_experience"].to_numpy(), 0.0)  # includes what no column shows
    rate = 0.05 + 0.3 * causes.sum(axis=1) + 0.3 * (bands == "detractor") + 1.0 * unhappy + 1.0 * leaving
    counts = rng.poisson(rate)
    rows = np.repeat(np.arange(len(truth)), counts)
    texts = []
    for i in rows:
        language = languages[i]
        if rng.random() < 0.8 * leaving[i]:
            texts.append(_pick(rng, GENERIC["detractor"][language]))
            continue
        own = [c for c, flag in zip(CAUSE_CODES, causes[i], strict=True) if flag]
        draw = rng.random()
        if draw < 0.7 and own:
            texts.append(_compose(rng, [_pick(rng, tuple(own))], bands[i], language, mention=1.0, false_mention=0.0))
        elif draw < 0.8:
            texts.append(_compose(rng, [_pick(rng, CAUSE_CODES)], bands[i], language, mention=1.0, false_mention=0.0))
        else:
            texts.append(_pick(rng, IRRELEVANT[language]))
    days = rng.integers(0, 120, len(rows)).astype("timedelta64[D]")
    return pd.DataFrame({
        ID_COLUMN: truth[ID_COLUMN].to_numpy()[rows],
        "date": np.datetime_as_string(REFERENCE_DATE - days, unit="D").astype(object),
        "channel": np.asarray(CHANNELS, dtype=object)[rng.choice(len(CHANNELS), len(rows), p=CHANNEL_SHARES)],
        "text": np.asarray(texts, dtype=object),
    })


def generate_texts(company: SyntheticCompany, seed: int = 42, chinese_share: float = 0.5) -> SyntheticTexts:
    """Survey answers and tickets for a generated company (its own random stream: the company is unchanged).

    Args:
        company: the generated company.
        seed: the texts' seed.
        chinese_share: share of customers who write in Chinese (the others in English).
    Returns:
        The survey's answers and the texts table.
    """
    streams = np.random.SeedSequence([seed, 18]).spawn(3)
    rng_language, rng_survey, rng_tickets = (np.random.default_rng(s) for s in streams)
    languages = np.where(rng_language.random(len(company.customers)) < chinese_share, "zh", "en").astype(object)
    survey = draw_survey_text(rng_survey, company, languages)
    return SyntheticTexts(survey, draw_tickets(rng_tickets, company, languages))


def write_company_texts(company: SyntheticCompany, out_dir: Path, seed: int = 42) -> SyntheticTexts:
    """Add the texts to a company written by `write_company`: a `comment` column in survey.csv,
    texts.csv, codeframe.yaml and their config keys (survey.text_column, codeframe, data.texts)."""
    out_dir = Path(out_dir)
    texts = generate_texts(company, seed)
    survey = company.survey.assign(comment=texts.survey_text.to_numpy())
    survey.to_csv(out_dir / "survey.csv", index=False)
    texts.texts.to_csv(out_dir / "texts.csv", index=False)
    (out_dir / "codeframe.yaml").write_text(yaml.safe_dump(DEMO_CODEFRAME, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")
    config_path = out_dir / "cxpredict.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["data"]["texts"] = "texts.csv"
    config["survey"] = {"text_column": "comment"}
    config["codeframe"] = "codeframe.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
    return texts

"""The text coder (issue 18): free text in Chinese or English -> a probability per cause code, sentiment, evidence.

No pretrained weights are available offline, so the coder is scikit-learn's TF-IDF (word
uni/bigrams from jieba's segmentation of Chinese runs and regex words of Latin text, plus
character 2-4-grams that survive typos and mixed-language answers) with one logistic
regression per code. Labels are the respondents' coded causes; without any, the codeframe's
seed phrases give weak labels and the model generalises from the texts they hit. Sentiment is a
logistic regression of "the author gave a bottom-band score" on the same features, so it is
learned from the score itself (no lexicon is shipped).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from cxpredict.features.texts import Codeframe, keyword_hits

_TOKEN = re.compile(r"[\u3400-\u9fff]+|[a-z0-9][a-z0-9']*")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[a-z]")
C_REGULARISATION = 4.0  # inverse L2 strength; 1-10 give the same held-out AUC on the demo, 4 is the middle
MIN_POSITIVES = 2  # a code with fewer positive texts is not learned (probability 0)
EVIDENCE_WORDS = 3
ASSIGNED = 0.5  # a text carries a code when its probability reaches this (top code, evidence, report counts)


def _segment(run: str) -> list[str]:
    import jieba  # imported on first Chinese text: its dictionary loads once (~1 s), never downloaded

    jieba.setLogLevel(logging.WARNING)  # its "building prefix dict" lines would break one-line CLI output
    return [w for w in jieba.lcut(run, HMM=True) if w.strip()]


def word_tokens(text: str) -> list[str]:
    """Words of a text: jieba's words for Chinese runs, regex words for Latin text, plus adjacent bigrams."""
    words: list[str] = []
    for match in _TOKEN.findall(text.lower()):
        words.extend(_segment(match) if _CJK.match(match) else [match])
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def language_of(texts: pd.Series) -> np.ndarray:
    """zh, en, mixed or empty per text (by the scripts it contains)."""
    lowered = texts.astype(str).str.lower()
    cjk = lowered.str.contains(_CJK.pattern, regex=True).to_numpy()
    latin = lowered.str.contains(r"[a-z]{2,}", regex=True).to_numpy()
    return np.select([cjk & latin, cjk, latin], ["mixed", "zh", "en"], "empty").astype(object)


@dataclass(frozen=True)
class CodedTexts:
    """Coded texts, aligned with the input: P(code) per code, sentiment in [-1, 1] (NaN without a sentiment
    model or for an empty text) and, when asked for, the evidence words."""

    probabilities: pd.DataFrame
    sentiment: np.ndarray
    evidence: np.ndarray | None = None


class TextCoder:
    """Multi-label cause coder and sentiment model (scikit-learn style: learned attributes end in `_`).

    Args:
        codeframe: the codes to assign.
        seed: for the solvers' tie-breaking.
    """

    def __init__(self, codeframe: Codeframe, seed: int = 42):
        self.codeframe = codeframe
        self.seed = seed

    def _features(self, texts: pd.Series, fit: bool = False) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        values = texts.astype(str).tolist()
        if fit:
            self.words_ = TfidfVectorizer(analyzer=word_tokens, min_df=2, sublinear_tf=True, dtype=np.float32)
            self.chars_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True,
                                          max_features=100_000, dtype=np.float32)
            words = self.words_.fit_transform(values)
            chars = self.chars_.fit_transform(values)
        else:
            words = self.words_.transform(values)
            chars = self.chars_.transform(values)
        return sp.csr_matrix(words), sp.csr_matrix(sp.hstack([words, chars], format="csr"))

    def fit(self, texts: pd.Series, labels: pd.DataFrame | None = None,
            negative: np.ndarray | None = None) -> TextCoder:
        """Learn the codes (and sentiment) from texts.

        Args:
            texts: the training texts (empty ones are left out).
            labels: 0/1 per code (columns = code ids) aligned with `texts`; None: seed-keyword weak labels.
                A code the labels do not have a column for is learned from its keywords too.
            negative: 1 where the author gave a bottom-band score, aligned with `texts`; None: no sentiment.
        Returns:
            self.
        """
        texts = texts.reset_index(drop=True).astype(str)
        present = texts.str.strip().ne("").to_numpy()
        if present.sum() < 2:
            raise ValueError("text coding needs at least two non-empty texts to learn from")
        texts = texts[present].reset_index(drop=True)
        hits = keyword_hits(self.codeframe, texts)
        if labels is None:
            y = hits
            self.label_source_ = "keywords"
        else:
            y = np.column_stack([
                labels[c].to_numpy()[present] if c in labels.columns else hits[:, j]
                for j, c in enumerate(self.codeframe.ids)
            ]).astype(np.int8)
            self.label_source_ = "labels"
        self.n_texts_ = len(texts)
        _, X = self._features(texts, fit=True)
        self.models_: list[LogisticRegression | None] = []
        for j in range(y.shape[1]):
            positives = int(y[:, j].sum())
            if positives < MIN_POSITIVES or positives == len(y):
                self.models_.append(None)
                continue
            model = LogisticRegression(C=C_REGULARISATION, max_iter=1000, solver="liblinear", random_state=self.seed)
            self.models_.append(model.fit(X, y[:, j]))
        self.sentiment_ = None
        if negative is not None:
            neg = np.asarray(negative)[present].astype(int)
            if 0 < neg.sum() < len(neg):
                self.sentiment_ = LogisticRegression(
                    C=C_REGULARISATION, max_iter=1000, solver="liblinear", random_state=self.seed
                ).fit(X, neg)
        return self

    def code(self, texts: pd.Series, evidence: bool = False) -> CodedTexts:
        """Code texts: P(code), sentiment and (optionally) the evidence words of each text's top code."""
        texts = texts.reset_index(drop=True).astype("string").fillna("").astype(str)
        empty = texts.str.strip().eq("").to_numpy()
        words, X = self._features(texts)
        probabilities = np.zeros((len(texts), len(self.models_)))
        for j, model in enumerate(self.models_):
            if model is not None:
                probabilities[:, j] = model.predict_proba(X)[:, 1]
        probabilities[empty] = 0.0  # an empty answer names no cause (not the base rate)
        sentiment = np.full(len(texts), np.nan)
        if self.sentiment_ is not None:
            sentiment = 1.0 - 2.0 * self.sentiment_.predict_proba(X)[:, 1]
            sentiment[empty] = np.nan
        frame = pd.DataFrame(probabilities, columns=self.codeframe.ids)
        found = self._evidence(texts, words, probabilities, empty) if evidence else None
        return CodedTexts(frame, sentiment, found)

    def _evidence(self, texts: pd.Series, words: sp.csr_matrix, probabilities: np.ndarray,
                  empty: np.ndarray) -> np.ndarray:
        """Per text, the words that pushed its most probable code up most (its seed phrases first)."""
        vocabulary = self.words_.get_feature_names_out()
        n_words = len(vocabulary)
        out = np.full(len(texts), "", dtype=object)
        top = probabilities.argmax(axis=1)
        for i in np.flatnonzero(~empty & (probabilities.max(axis=1, initial=0.0) >= ASSIGNED)):
            j = int(top[i])
            model = self.models_[j]
            found = [k for k in self.codeframe.codes[j].keywords if k in texts.iloc[i].lower()]
            if model is not None:
                row = words.getrow(i)
                weights = row.data * model.coef_[0, :n_words][row.indices]
                order = np.argsort(-weights)
                found += [str(vocabulary[row.indices[k]]) for k in order[:EVIDENCE_WORDS] if weights[k] > 0]
            out[i] = "; ".join(dict.fromkeys(found[:EVIDENCE_WORDS + 2]))
        return out


def cross_fit_codes(codeframe: Codeframe, texts: pd.Series, labels: pd.DataFrame | None,
                    negative: np.ndarray | None, folds: int, seed: int) -> CodedTexts:
    """Out-of-fold coding: each text coded by a coder fitted on the other folds (metrics, labels from text)."""
    texts = texts.reset_index(drop=True)
    probabilities = pd.DataFrame(0.0, index=range(len(texts)), columns=codeframe.ids)
    sentiment = np.full(len(texts), np.nan)
    for fit_rows, code_rows in KFold(n_splits=folds, shuffle=True, random_state=seed).split(texts):
        coder = TextCoder(codeframe, seed).fit(
            texts.iloc[fit_rows],
            None if labels is None else labels.iloc[fit_rows].reset_index(drop=True),
            None if negative is None else np.asarray(negative)[fit_rows],
        )
        coded = coder.code(texts.iloc[code_rows])
        probabilities.iloc[code_rows] = coded.probabilities.to_numpy()
        sentiment[code_rows] = coded.sentiment
    return CodedTexts(probabilities, sentiment)


def code_auc(labels: pd.DataFrame, probabilities: pd.DataFrame) -> dict[str, float]:
    """AUC per code (codes with both classes among the rows) and their macro mean as `macro`."""
    out: dict[str, float] = {}
    for code in probabilities.columns:
        if code in labels.columns and 0 < labels[code].sum() < len(labels):
            out[code] = float(roc_auc_score(labels[code], probabilities[code]))
    if out:
        out["macro"] = float(np.mean(list(out.values())))
    return out


def keyword_scores(codeframe: Codeframe, texts: pd.Series) -> pd.DataFrame:
    """The keyword-only baseline: 1 where a code's seed phrase appears, else 0 (as a score for AUC)."""
    return pd.DataFrame(keyword_hits(codeframe, texts.astype(str)).astype(float), columns=codeframe.ids)

"""Propensity-weighted conformal prediction: band sets and expected-score intervals for silent customers.

Calibration uses respondents' out-of-fold predictions. Respondents and silent customers differ
only through their operational data (response is modelled as P(responded | x)), so the silent
population is the respondents' population under covariate shift with likelihood ratio
w(x) ∝ (1 − p(x)) / p(x). Weighting calibration scores by it (Tibshirani et al., 2019,
"Conformal prediction under covariate shift") gives coverage on the silent population rather
than on people like the respondents. Customers whose propensity is far below the response rate
lie outside the respondents' support: they are flagged `low_support`, and their weighted
quantile is usually infinite (the full set), which is the honest answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROPENSITY_FLOOR = 1e-6


def shift_weight(propensity: np.ndarray) -> np.ndarray:
    """Likelihood ratio silent/respondent at each customer: (1 − p) / p (up to a constant).

    Args:
        propensity: P(responded | x) per customer.
    Returns:
        Non-negative weights.
    """
    p = np.clip(np.asarray(propensity, float), PROPENSITY_FLOOR, 1 - PROPENSITY_FLOOR)
    return (1 - p) / p


def weighted_thresholds(sorted_scores: np.ndarray, sorted_weights: np.ndarray, test_weight: np.ndarray,
                        level: float) -> np.ndarray:
    """Per-test-point weighted conformal quantile of calibration nonconformity scores.

    The quantile of Σ w_i δ_{s_i} + w(x) δ_{+∞}, normalised, at `level`: infinite when the test
    point's own weight holds more than 1 − level of the mass.

    Args:
        sorted_scores: calibration scores in increasing order.
        sorted_weights: their weights, in the same order.
        test_weight: the weight of each test point.
        level: nominal coverage, e.g. 0.9.
    Returns:
        One threshold per test point (np.inf for "everything").
    """
    cumulative = np.cumsum(sorted_weights)
    need = level * (cumulative[-1] + np.asarray(test_weight, float))
    k = np.searchsorted(cumulative, need * (1 - 1e-12), side="left")
    out = np.full(len(need), np.inf)
    ok = k < len(sorted_scores)
    out[ok] = sorted_scores[k[ok]]
    return out


def _sorted(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores, kind="stable")
    return np.asarray(scores, float)[order], np.asarray(weights, float)[order]


@dataclass
class ConformalCalibration:
    """Calibration scores of respondents, ready to give sets and intervals at any level.

    Attributes:
        band_scores: 1 − P̂(observed band), out-of-fold, sorted.
        band_weights: the respondents' shift weights in `band_scores` order.
        residuals: |observed score − out-of-fold expected score|, sorted.
        residual_weights: weights in `residuals` order.
        response_rate: share of customers who responded (scales the low-support threshold).
        level: default nominal coverage.
        low_support_ratio: propensity below ratio·response_rate is flagged `low_support`.
    """

    band_scores: np.ndarray
    band_weights: np.ndarray
    residuals: np.ndarray
    residual_weights: np.ndarray
    response_rate: float
    level: float = 0.9
    low_support_ratio: float = 0.1

    @classmethod
    def from_respondents(cls, oof_band_probs: np.ndarray, band_index: np.ndarray, oof_expected: np.ndarray,
                         observed_score: np.ndarray, propensity: np.ndarray | None, response_rate: float,
                         level: float = 0.9, low_support_ratio: float = 0.1) -> ConformalCalibration:
        """Build the calibration from respondents' out-of-fold predictions and propensities.

        Args:
            oof_band_probs: (n, bands) out-of-fold band probabilities.
            band_index: observed band per respondent.
            oof_expected: out-of-fold expected score per respondent.
            observed_score: observed score per respondent.
            propensity: out-of-fold P(responded) per respondent (None: everyone responded).
            response_rate: share of all customers who responded.
            level: default nominal coverage.
            low_support_ratio: see the class.
        Returns:
            The calibration.
        """
        n = len(band_index)
        weights = np.ones(n) if propensity is None else shift_weight(propensity)
        band_scores = 1.0 - oof_band_probs[np.arange(n), band_index]
        residuals = np.abs(np.asarray(observed_score, float) - np.asarray(oof_expected, float))
        bs, bw = _sorted(band_scores, weights)
        rs, rw = _sorted(residuals, weights)
        return cls(bs, bw, rs, rw, float(response_rate), level, low_support_ratio)

    def low_support(self, propensity: np.ndarray | None, n: int) -> np.ndarray:
        """True where a customer's response propensity is far below the respondents' typical one."""
        if propensity is None:
            return np.zeros(n, bool)
        return np.asarray(propensity) < self.low_support_ratio * self.response_rate

    def predict(self, band_probs: np.ndarray, expected: np.ndarray, propensity: np.ndarray | None,
                level: float | None = None, weighted: bool = True,
                scale: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
        """Prediction sets over the bands and expected-score intervals for customers.

        Args:
            band_probs: (n, bands) predicted band probabilities.
            expected: predicted expected score.
            propensity: P(responded | x) of these customers (None: unweighted).
            level: nominal coverage (default: the calibration's).
            weighted: weight by the propensity (False gives plain split conformal).
            scale: clip intervals to the score scale.
        Returns:
            `in_set` (n, bands) booleans, `set_size`, `expected_low`, `expected_high`, `low_support`.
        """
        level = self.level if level is None else level
        n = len(band_probs)
        if weighted and propensity is not None:
            test_w = shift_weight(propensity)
            band_w, resid_w = self.band_weights, self.residual_weights
        else:
            test_w = np.ones(n)
            band_w, resid_w = np.ones(len(self.band_scores)), np.ones(len(self.residuals))
        q_band = weighted_thresholds(self.band_scores, band_w, test_w, level)
        in_set = (1.0 - band_probs) <= q_band[:, None] + 1e-12
        in_set[np.arange(n), band_probs.argmax(axis=1)] = True  # never an empty set
        q_resid = weighted_thresholds(self.residuals, resid_w, test_w, level)
        low, high = expected - q_resid, expected + q_resid
        if scale is not None:
            low, high = np.clip(low, *scale), np.clip(high, *scale)
        return {
            "in_set": in_set,
            "set_size": in_set.sum(axis=1),
            "expected_low": low,
            "expected_high": high,
            "low_support": self.low_support(propensity, n),
        }


def set_coverage(in_set: np.ndarray, band_index: np.ndarray) -> float:
    """Share of customers whose true band is in their prediction set."""
    return float(in_set[np.arange(len(band_index)), band_index].mean())


def interval_coverage(low: np.ndarray, high: np.ndarray, observed: np.ndarray) -> float:
    """Share of customers whose observed score lies in their interval."""
    observed = np.asarray(observed, float)
    return float(((observed >= low - 1e-9) & (observed <= high + 1e-9)).mean())

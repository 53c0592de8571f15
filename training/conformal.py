"""Conformal calibration at training time: respondents' out-of-fold scores and propensities into the bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.conformal import ConformalCalibration, interval_coverage, set_coverage
from cxpredict.models.estimators import predict_raw


def calibrate_conformal(
    config: CxConfig, oof_band_probabilities: np.ndarray, band_index: np.ndarray, oof_expected: np.ndarray,
    level_index: np.ndarray, respondent_propensity: np.ndarray | None, response_rate: float,
) -> ConformalCalibration:
    """The conformal calibration of fitted score models: band sets and expected-score intervals.

    Args:
        config: the dataset config (score levels, `trust.level`, `trust.low_support_ratio`).
        oof_band_probabilities: the respondents' out-of-fold band probabilities (the score fit's).
        band_index: the respondents' observed band.
        oof_expected: the respondents' out-of-fold expected score (the expected-score fit's).
        level_index: the respondents' observed score as an index into `config.score.levels`.
        respondent_propensity: the respondents' out-of-fold P(responded) (None: everyone responded).
        response_rate: respondents / customers.
    Returns:
        The calibration (stored on the bundle as `bundle.conformal`).
    """
    observed = np.asarray(config.score.levels, float)[level_index]
    return ConformalCalibration.from_respondents(
        oof_band_probabilities, band_index, oof_expected, observed, respondent_propensity, response_rate,
        level=config.trust.level, low_support_ratio=config.trust.low_support_ratio,
    )


def coverage_metrics(bundle: ScoringBundle, X: np.ndarray, band_probs: np.ndarray, expected: np.ndarray,
                     band_true: np.ndarray, score_true: np.ndarray, level: float | None = None,
                     threads: int | None = None) -> dict[str, float]:
    """Empirical coverage of weighted and unweighted conformal sets/intervals on customers with known truth.

    Args:
        bundle: a bundle with a conformal calibration.
        X: encoded features of the evaluated (silent) customers.
        band_probs: their predicted band probabilities.
        expected: their predicted expected score.
        band_true: their true band index.
        score_true: their true score.
        level: nominal coverage (default: the calibration's).
        threads: LightGBM threads.
    Returns:
        `conformal_coverage_{weighted,unweighted}`, set sizes, interval coverage and width,
        and the share flagged `low_support`; empty when the bundle has no calibration.
    """
    cal = bundle.conformal
    if cal is None:
        return {}
    propensity = None
    if bundle.propensity_booster is not None:
        propensity = 1.0 / (1.0 + np.exp(-predict_raw(bundle.propensity_booster, X, threads)))
    scale = (bundle.levels[0], bundle.levels[-1])
    m: dict[str, float] = {"conformal_level": cal.level if level is None else level}
    for label, weighted in (("weighted", True), ("unweighted", False)):
        out = cal.predict(band_probs, expected, propensity, level, weighted=weighted, scale=scale)
        m[f"conformal_coverage_{label}"] = set_coverage(out["in_set"], band_true)
        m[f"conformal_set_size_{label}"] = float(out["set_size"].mean())
        m[f"interval_coverage_{label}"] = interval_coverage(out["expected_low"], out["expected_high"], score_true)
        m[f"interval_width_{label}"] = float((out["expected_high"] - out["expected_low"]).mean())
        supported = ~out["low_support"]
        if weighted and supported.any():
            m["conformal_coverage_weighted_supported"] = set_coverage(out["in_set"][supported], band_true[supported])
        m["low_support_share"] = float(out["low_support"].mean())
    return m


def respondent_oof_frame(config: CxConfig, respondent_ids: np.ndarray, oof_band_probabilities: np.ndarray,
                         respondent_propensity: np.ndarray | None) -> pd.DataFrame:
    """Respondents' out-of-fold band probabilities and propensity, by customer id.

    Stored in the bundle so figures computed later (segments, feedback) correct with residuals
    from models that did not see the respondent, as the training-time population figure does.

    Args:
        config: the dataset config (id column, bands).
        respondent_ids: the respondents' customer ids, as text.
        oof_band_probabilities: their out-of-fold band probabilities (respondents × bands).
        respondent_propensity: their out-of-fold P(responded), or None.
    Returns:
        One row per respondent: id, `p_<band>` columns and `response_propensity`.
    """
    frame = pd.DataFrame({config.id_column: respondent_ids})
    for j, band in enumerate(config.score.band_names):
        frame[band_column(band)] = np.array(oof_band_probabilities[:, j])
    frame["response_propensity"] = np.nan if respondent_propensity is None else np.array(respondent_propensity)
    return frame

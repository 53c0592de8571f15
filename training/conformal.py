"""Conformal calibration at training time: respondents' out-of-fold scores and propensities into the bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.conformal import ConformalCalibration, interval_coverage, set_coverage
from cxpredict.models.estimators import fit_booster, predict_raw

if TYPE_CHECKING:
    from cxpredict.training.train import Trainer

OOF_FOLDS = 3


def out_of_fold_expected(trainer: Trainer, bundle: ScoringBundle) -> np.ndarray:
    """Respondents' expected score from models that did not see them (refits the final settings).

    Args:
        trainer: a trainer whose score models are fitted.
        bundle: the bundle holding the final expected-score booster (its settings are reused).
    Returns:
        One out-of-fold expected score per respondent, clipped to the scale.
    """
    cached = getattr(trainer, "respondent_oof_expected", None)
    if cached is not None:
        return np.asarray(cached, float)
    c, tg = trainer.config, trainer.targets
    X = trainer.X[tg.positions]
    y = np.asarray(c.score.levels, float)[tg.level_index]
    booster = bundle.expected_score_booster
    params = {k: v for k, v in booster.params.items() if k not in ("num_iterations", "num_boost_round")}
    rounds = max(booster.current_iteration(), 1)
    out = np.zeros(len(y))
    splitter = KFold(n_splits=OOF_FOLDS, shuffle=True, random_state=c.training.seed + 7)
    for fit_rows, pred_rows in splitter.split(X):
        w = None if trainer.respondent_weight is None else trainer.respondent_weight[fit_rows]
        fold = fit_booster(X[fit_rows], y[fit_rows], params, trainer.categorical, rounds, weight=w)
        out[pred_rows] = predict_raw(fold, X[pred_rows], c.training.threads)
    return np.clip(out, c.score.scale[0], c.score.scale[1])


def calibrate_conformal(trainer: Trainer, bundle: ScoringBundle) -> ConformalCalibration:
    """The conformal calibration of a fitted trainer: band sets and expected-score intervals.

    Args:
        trainer: a trainer after `fit_propensity`, `fit_score` and `fit_expected_score`.
        bundle: the bundle being built.
    Returns:
        The calibration (stored on the bundle as `bundle.conformal`).
    """
    c, tg = trainer.config, trainer.targets
    observed = np.asarray(c.score.levels, float)[tg.level_index]
    return ConformalCalibration.from_respondents(
        trainer.respondent_oof_bands, tg.band_index, out_of_fold_expected(trainer, bundle), observed,
        trainer.respondent_propensity, len(tg.positions) / len(trainer.X),
        level=c.trust.level, low_support_ratio=c.trust.low_support_ratio,
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


def respondent_oof_frame(trainer: Trainer) -> pd.DataFrame:
    """Respondents' out-of-fold band probabilities and propensity, by customer id.

    Stored in the bundle so figures computed later (segments, feedback) correct with residuals
    from models that did not see the respondent, as the training-time population figure does.

    Args:
        trainer: a fitted trainer.
    Returns:
        One row per respondent: id, `p_<band>` columns and `response_propensity`.
    """
    c, tg = trainer.config, trainer.targets
    ids = trainer.dataset.customers[c.id_column].astype(str).to_numpy()[tg.positions]
    frame = pd.DataFrame({c.id_column: ids})
    for j, band in enumerate(c.score.band_names):
        frame[band_column(band)] = trainer.respondent_oof_bands[:, j]
    propensity = trainer.respondent_propensity
    frame["response_propensity"] = np.nan if propensity is None else propensity
    return frame

"""The population score: 100·(mean P(top band) − mean P(bottom band)) over every customer, four ways, with its interval.

Respondents are not a random sample, so the figure a company reports is the doubly robust one
(model prediction for every customer plus the respondents' propensity-weighted residuals); the
respondents-only, propensity-weighted and model-completed figures show how much each correction
moves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxpredict.features.config import CxConfig
from cxpredict.training import evaluate

PROPENSITY_FLOOR = 1e-3  # P(responded) is clipped from below here before it is inverted


@dataclass(frozen=True)
class PopulationScore:
    """The population score of one training, each figure on the 100·(top − bottom) scale.

    Attributes:
        respondents: the respondents' own mix (naive).
        model: observed for respondents, predicted for silent customers.
        silent: predicted for the silent customers only (None when everyone responded).
        ipw: respondents re-weighted by 1/P(responded) (None without a response model).
        doubly_robust: the AIPW figure (the one to report).
        ci_low, ci_high: the doubly robust figure's bootstrap interval (95 %).
    """

    respondents: float
    model: float
    silent: float | None
    ipw: float | None
    doubly_robust: float
    ci_low: float
    ci_high: float

    def metrics(self) -> dict[str, float]:
        """The figures under the run's metric names (`population_index*`)."""
        out = {"population_index_respondents": self.respondents, "population_index_model": self.model}
        if self.silent is not None:
            out["population_index_silent"] = self.silent
        if self.ipw is not None:
            out["population_index_ipw"] = self.ipw
        out["population_index"] = self.doubly_robust
        out["population_index_ci_low"], out["population_index_ci_high"] = self.ci_low, self.ci_high
        return out


def population_score(
    config: CxConfig,
    band_probabilities: np.ndarray,
    respondent_band_probabilities: np.ndarray,
    band_index: np.ndarray,
    positions: np.ndarray,
    respondent_propensity: np.ndarray | None,
) -> PopulationScore:
    """The population score four ways: respondents only, propensity-weighted, model-completed, doubly robust.

    The doubly robust (AIPW) figure adds to the model's prediction for every customer the
    propensity-weighted mean residual of the respondents (out-of-fold), so it stays right when
    either the score model or the response model is right.

    Args:
        config: the dataset config (bands, seed of the bootstrap).
        band_probabilities: every customer's band probabilities from the final score model
            (customers × bands, in `config.score.band_names` order).
        respondent_band_probabilities: the respondents' out-of-fold band probabilities, aligned
            with `positions` (from models that did not see them).
        band_index: the respondents' observed band, aligned with `positions`.
        positions: the respondents' rows among the customers.
        respondent_propensity: the respondents' out-of-fold P(responded); None when everyone
            responded (the observed mix is then the population's).
    Returns:
        The figures and the doubly robust figure's interval.
    """
    names = config.score.band_names
    top, bottom = names.index(config.score.top_band), names.index(config.score.bottom_band)
    observed = (band_index == top).astype(float) - (band_index == bottom).astype(float)
    net = band_probabilities[:, top] - band_probabilities[:, bottom]
    net[positions] = respondent_band_probabilities[:, top] - respondent_band_probabilities[:, bottom]
    silent = np.ones(len(net), bool)
    silent[positions] = False
    completed = net.copy()
    completed[positions] = observed
    ipw = None
    if respondent_propensity is not None:
        inverse_p = 1.0 / np.clip(respondent_propensity, PROPENSITY_FLOOR, 1.0)
        ipw = float(100 * (inverse_p * observed).sum() / inverse_p.sum())
    contributions = evaluate.doubly_robust_contributions(
        net, observed, positions, respondent_propensity, floor=PROPENSITY_FLOOR
    )
    low, high = evaluate.bootstrap_mean_interval(contributions, config.training.seed)
    return PopulationScore(
        respondents=float(100 * observed.mean()),
        model=float(100 * completed.mean()),
        silent=float(100 * net[silent].mean()) if silent.any() else None,
        ipw=ipw,
        doubly_robust=float(100 * contributions.mean()),
        ci_low=100 * low,
        ci_high=100 * high,
    )

"""The population score: 100·(mean P(top band) − mean P(bottom band)) over every customer, four ways, with its interval.

Respondents are not a random sample, so the figure a company reports is the doubly robust one
(model prediction for every customer plus the respondents' propensity-weighted residuals); the
respondents-only, propensity-weighted and model-completed figures show how much each correction
moves it. When respondents may differ in what no column records, `nonresponse` adds the
shadow-variable estimate (from outcomes every customer has, e.g. churn), the sensitivity band,
the headline interval that includes the error every prediction shares, and the churn-gap sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxpredict.features.config import CxConfig
from cxpredict.training import evaluate
from cxpredict.training.nonresponse import (
    ChurnGap,
    HeadlineInterval,
    SensitivityBand,
    ShadowEstimate,
    churn_gap,
    headline_interval,
    sensitivity_band,
    shadow_variable_estimate,
)

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
    shadow: ShadowEstimate | None = None
    sensitivity: SensitivityBand | None = None
    headline: HeadlineInterval | None = None
    churn_gap: ChurnGap | None = None

    def sentences(self) -> list[str]:
        """The diagnostics in words: the shadow estimate's identification, the churn gap, the headline's basis."""
        out = []
        if self.shadow is not None:
            out.append(f"shadow-variable estimate: {self.shadow.verdict}")
        if self.churn_gap is not None:
            out.append(self.churn_gap.sentence)
        if self.sensitivity is not None:
            flip = self.sensitivity.sign_flip_lambda
            reach = f"{flip:.2f}" if flip is not None else "50 and beyond"
            out.append(f"the population score's sign holds for unobserved selection up to odds ratio {reach}")
        if self.headline is not None:
            out.append(f"headline interval basis: {self.headline.basis}")
        return out

    def metrics(self) -> dict[str, float]:
        """The figures under the run's metric names (`population_index*`)."""
        out = {"population_index_respondents": self.respondents, "population_index_model": self.model}
        if self.silent is not None:
            out["population_index_silent"] = self.silent
        if self.ipw is not None:
            out["population_index_ipw"] = self.ipw
        out["population_index"] = self.doubly_robust
        out["population_index_ci_low"], out["population_index_ci_high"] = self.ci_low, self.ci_high
        if self.shadow is not None:
            sv = self.shadow
            out.update({"population_index_shadow": sv.population_score, "population_index_shadow_ci_low": sv.ci_low,
                        "population_index_shadow_ci_high": sv.ci_high,
                        "population_index_shadow_first_stage_f": sv.first_stage_f,
                        "population_index_shadow_identified": float(sv.identified),
                        "population_index_shadow_odds_per_sd": sv.odds_per_score_unit})
            if sv.disagreement is not None:
                out["population_index_shadow_minus_dr"] = sv.disagreement
            if sv.disagreement_se is not None:
                out["population_index_shadow_minus_dr_se"] = sv.disagreement_se
        if self.sensitivity is not None:
            for kind, ranges in (("dr", self.sensitivity.doubly_robust), ("ipw", self.sensitivity.ipw)):
                for r in ranges:
                    key = f"{r.lam:g}".replace(".", "_")
                    out[f"population_index_{kind}_lambda_{key}_low"] = r.low
                    out[f"population_index_{kind}_lambda_{key}_high"] = r.high
                    out[f"population_index_{kind}_lambda_{key}_ci_low"] = r.ci_low
                    out[f"population_index_{kind}_lambda_{key}_ci_high"] = r.ci_high
            if self.sensitivity.sign_flip_lambda is not None:
                out["population_index_sign_flip_lambda"] = self.sensitivity.sign_flip_lambda
        if self.headline is not None:
            out["population_index_headline_low"] = self.headline.low
            out["population_index_headline_high"] = self.headline.high
        if self.churn_gap is not None:
            out["population_shadow_gap_observed_rate"] = self.churn_gap.observed_rate
            out["population_shadow_gap_predicted_rate"] = self.churn_gap.predicted_rate
            out["population_shadow_gap_implied_bias"] = self.churn_gap.implied_bias
        return out


@dataclass(frozen=True)
class NonresponseInputs:
    """What the missing-not-at-random figures need beyond the doubly robust one.

    Attributes:
        shadow: the shadow outcomes of every customer (customers × k), e.g. churn; None when
            some customer lacks one (the sensitivity band is still computed).
        shadow_name: the first shadow outcome's name (for the sentence).
        propensity: every customer's out-of-fold P(responded) (the response model's, MAR).
        score: the respondents' observed score, aligned with the respondents' positions.
        extra_design: further functions of the columns to balance (customers × q), e.g. the
            predicted expected score; None for none.
        reps: bootstrap draws.
    """

    shadow: np.ndarray | None
    shadow_name: str
    propensity: np.ndarray
    score: np.ndarray
    extra_design: np.ndarray | None = None
    reps: int = 200


def population_score(
    config: CxConfig,
    band_probabilities: np.ndarray,
    respondent_band_probabilities: np.ndarray,
    band_index: np.ndarray,
    positions: np.ndarray,
    respondent_propensity: np.ndarray | None,
    nonresponse: NonresponseInputs | None = None,
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
        nonresponse: shadow outcomes and the full propensity: adds the shadow-variable estimate,
            the sensitivity band, the headline interval and the churn gap (None: the four figures only).
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
    extras: dict[str, object] = {}
    if nonresponse is not None and respondent_propensity is not None and len(positions):
        extras = _nonresponse_figures(config, nonresponse, net, observed, band_index, positions,
                                      respondent_propensity, contributions, (100 * low, 100 * high))
    return PopulationScore(
        respondents=float(100 * observed.mean()),
        model=float(100 * completed.mean()),
        silent=float(100 * net[silent].mean()) if silent.any() else None,
        ipw=ipw,
        doubly_robust=float(100 * contributions.mean()),
        ci_low=100 * low,
        ci_high=100 * high,
        **extras,
    )


def _nonresponse_figures(config: CxConfig, inputs: NonresponseInputs, net: np.ndarray, observed: np.ndarray,
                         band_index: np.ndarray, positions: np.ndarray, respondent_propensity: np.ndarray,
                         contributions: np.ndarray, sampling: tuple[float, float]) -> dict[str, object]:
    """The shadow-variable estimate, the sensitivity band, the headline interval and the churn gap."""
    names = config.score.band_names
    top, bottom = names.index(config.score.top_band), names.index(config.score.bottom_band)
    p = np.clip(inputs.propensity, PROPENSITY_FLOOR, 1 - PROPENSITY_FLOOR)
    columns = [np.log(p / (1 - p)), net]
    if inputs.extra_design is not None:
        columns.append(np.asarray(inputs.extra_design, float).reshape(len(net), -1))
    design = np.column_stack(columns)
    seed = config.training.seed
    band = sensitivity_band(net, observed, positions, respondent_propensity, seed, reps=inputs.reps,
                            floor=PROPENSITY_FLOOR)
    shadow = gap = None
    if inputs.shadow is not None:
        shadow = shadow_variable_estimate(band_index, inputs.score, positions, design, inputs.shadow, len(names),
                                          top, bottom, seed, inputs.reps, contributions)
        gap = churn_gap(np.asarray(inputs.shadow, float).reshape(len(net), -1)[:, 0], positions, observed, net,
                        design, seed, inputs.reps, name=inputs.shadow_name, score=inputs.score)
    return {"shadow": shadow, "sensitivity": band, "headline": headline_interval(sampling, shadow, band),
            "churn_gap": gap}

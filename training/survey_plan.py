"""Where to survey next: silent customers whose answers would most reduce uncertainty where it matters.

The plan draws N silent customers without replacement, each with a chance proportional to
1 / P(responds) (floored at the low-support threshold): the answers then fill the regions the
respondents cover thinly, which is where the silent customers' predictions are least supported.
That base is boosted for uncertain predictions (band entropy), high value and segments with too
few respondents. Drawing, rather than taking the top N, keeps the plan spread over the whole
silent population: on the synthetic data taking the N least likely responders, or the N most
uncertain customers, reduced the silent log loss less than N random customers did.

`goal="precision"` instead chooses whom to survey so that the doubly robust population score
is most precise once their answers arrive (issue 17). A silent customer i is drawn with
probability q_i, and ends up among the respondents with probability
pi_i = p_i + (1 - p_i) q_i (p_i: the response propensity). The variance of the inverse-probability
weighted residual sum is about sum_i s_i^2 / pi_i (s_i: the predicted standard deviation of the
customer's net score around the model), which, for a fixed budget, is smallest when pi_i is
proportional to s_i (Neyman allocation; Hansen & Hurwitz 1946 for subsampling non-respondents;
Särndal, Swensson & Wretman 1992 for pi ∝ residual standard deviation). So q_i tops pi_i
up to c * s_i: uncertain customers and, for the same s_i, customers whose kind rarely answers get
the largest chances. The draw is systematic (Madow), so each q_i is exactly the chance of being
proposed and the plan's `inclusion_probability` can weight the answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.estimators import binary_probability, predict_raw

REASONS = {
    "under_represented": "people like them rarely answer",
    "uncertain": "model unsure of the band",
    "high_value": "high value",
    "thin_segment": "segment has too few respondents",
    "net_uncertain": "answer would most sharpen the population score",
}
GOALS = ("coverage", "precision")
MIN_SHARE_OF_UNIFORM = 0.1  # every silent customer keeps at least 10 % of the uniform chance: no zero weights
MIN_SD = 1e-3  # net-score standard deviations are floored here so that c * s_i is never zero
UNCERTAIN_BOOST = 0.5  # at most ×1.5 for the most uncertain customers
VALUE_BOOST = 0.5  # at most ×1.5 for the most valuable customers
THIN_SEGMENT_BOOST = 2.0  # ×2 in segments with too few respondents


def _percentile(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(pct=True, method="average").to_numpy()


def net_score_sd(probs: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Standard deviation of the net score (+1 top band, -1 bottom band, 0 otherwise) under `probs`.

    sqrt(sum_b p_b v_b^2 - (sum_b p_b v_b)^2) with v = (+1, 0, -1): the spread of a customer's
    answer around the model's expected net score, i.e. the predicted residual standard deviation.
    """
    second = probs[:, top] + probs[:, bottom]
    mean = probs[:, top] - probs[:, bottom]
    return np.sqrt(np.clip(second - mean**2, 0.0, None))


def precision_inclusion(sd: np.ndarray, propensity: np.ndarray, silent: np.ndarray, budget: int) -> np.ndarray:
    """Follow-up probabilities q_i making pi_i = p_i + (1 - p_i) q_i proportional to sd_i (Neyman).

    Args:
        sd: every customer's predicted net-score standard deviation.
        propensity: every customer's P(responds).
        silent: which customers are silent; the q_i of silent customers sum to `budget`.
        budget: number of follow-ups.
    Returns:
        q_i for every customer (respondents get the q_i they would have had if silent, so that
        their pi_i can weight them too), in [q_min, 1].
    """
    sd = np.maximum(np.asarray(sd, float), MIN_SD)
    p = np.clip(np.asarray(propensity, float), 0.0, 1.0 - 1e-9)
    q_min = MIN_SHARE_OF_UNIFORM * budget / silent.sum()

    def q_at(c: float) -> np.ndarray:
        return np.clip((c * sd - p) / (1.0 - p), q_min, 1.0)

    low, high = 0.0, 1.0
    while q_at(high)[silent].sum() < budget:
        high *= 2.0
    for _ in range(100):  # bisection on c: sum of q over silent customers grows with c
        middle = 0.5 * (low + high)
        low, high = (middle, high) if q_at(middle)[silent].sum() < budget else (low, middle)
    q = q_at(high)
    return q


def systematic_draw(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions drawn with exact inclusion probabilities `q` (sum: an integer), in a random order (Madow)."""
    order = rng.permutation(len(q))
    cumulative = np.concatenate([[0.0], np.cumsum(q[order])])
    points = rng.uniform() + np.arange(int(round(cumulative[-1])))
    hits = np.searchsorted(cumulative, points, side="right") - 1
    return order[np.clip(hits, 0, len(q) - 1)]


def plan_survey(config: CxConfig, bundle: ScoringBundle, dataset: Dataset, budget: int,
                by: str | None = None, seed: int | None = None, goal: str = "coverage") -> pd.DataFrame:
    """Propose `budget` silent customers to survey, with the reason for each.

    Args:
        config: the dataset config (`value_column`, `trust.min_segment_respondents`).
        bundle: the scoring bundle.
        dataset: customers and survey.
        budget: number of customers to propose.
        by: segment column (default: `segment` if present).
        seed: seed of the draw (default: `training.seed`).
        goal: "coverage" (the default: fill thinly covered regions, boosted for uncertain,
            valuable and thin-segment customers) or "precision" (make the doubly robust
            population score most precise; adds `residual_sd` and `inclusion_probability`).
    Returns:
        One row per proposed customer, by priority: id, `priority`, `reason`, the signals,
        `segment`, `expected_score`, `response_propensity`.
    """
    if goal not in GOALS:
        raise DataError(f"--goal must be one of {', '.join(GOALS)}, got {goal!r}")
    if budget < 1:
        raise DataError(f"--budget must be at least 1, got {budget}")
    id_column = config.id_column
    customers = dataset.customers
    surveyed = customers[id_column].astype(str).isin(dataset.survey[id_column].astype(str)).to_numpy()
    silent = customers[~surveyed].reset_index(drop=True)
    if budget > len(silent):
        raise DataError(f"--budget {budget} is more than the {len(silent)} silent customers")
    by = by if by is not None else ("segment" if "segment" in customers.columns else None)
    if by is not None and by not in customers.columns:
        raise DataError(f"{dataset.sources.get('customers', 'customers')}: no column '{by}' to segment by")
    X = bundle.pipeline.transform(silent)
    predicted = bundle.predict_matrix(X, config.training.threads, causes=False, drivers=False)
    probs = np.column_stack([predicted[band_column(b)] for b in bundle.band_names])
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(axis=1)
    signals = {"uncertain": _percentile(entropy)}
    propensity = np.full(len(silent), np.nan)
    if bundle.propensity_booster is not None:
        propensity = binary_probability(predict_raw(bundle.propensity_booster, X, config.training.threads))
        signals["under_represented"] = _percentile(-propensity)
    if config.value_column and config.value_column in silent.columns:
        value = pd.to_numeric(silent[config.value_column], errors="coerce").fillna(0).to_numpy()
        signals["high_value"] = _percentile(value)
    else:
        signals["high_value"] = np.zeros(len(silent))
    segment = np.full(len(silent), "", dtype=object)
    if by is not None:
        segment = silent[by].astype(str).to_numpy(dtype=object)
        counts = customers.loc[surveyed, by].astype(str).value_counts()
        n_resp = pd.Series(segment).map(counts).fillna(0).to_numpy()
        signals["thin_segment"] = (n_resp < config.trust.min_segment_respondents).astype(float)
    else:
        signals["thin_segment"] = np.zeros(len(silent))
    floor = config.trust.low_support_ratio * surveyed.mean()
    factors = {
        "under_represented": 1.0 / np.clip(np.nan_to_num(propensity, nan=surveyed.mean()), floor, 1.0),
        "uncertain": 1.0 + UNCERTAIN_BOOST * signals["uncertain"],
        "high_value": 1.0 + VALUE_BOOST * signals["high_value"],
        "thin_segment": 1.0 + (THIN_SEGMENT_BOOST - 1.0) * signals["thin_segment"],
    }
    if goal == "precision":
        return _precision_plan(config, bundle, silent, surveyed, budget, probs, propensity, signals, segment,
                               predicted["expected_score"], seed)
    priority = np.prod(np.column_stack(list(factors.values())), axis=1)
    rng = np.random.default_rng(config.training.seed if seed is None else seed)
    drawn = rng.choice(len(silent), size=budget, replace=False, p=priority / priority.sum())
    order = drawn[np.argsort(-priority[drawn], kind="stable")]
    # The reason is the factor that lifts this customer most above a typical silent customer.
    keys = list(factors)
    lift = np.column_stack([np.log(factors[k][order] / np.median(factors[k])) for k in keys])
    plan = pd.DataFrame({
        id_column: silent[id_column].astype(str).to_numpy()[order],
        "priority": priority[order],
        "reason": [REASONS[keys[j]] for j in lift.argmax(axis=1)],
        **{k: signals[k][order] for k in signals},
        "segment": segment[order],
        "expected_score": predicted["expected_score"][order],
        "response_propensity": propensity[order],
    })
    return plan


def _precision_plan(config: CxConfig, bundle: ScoringBundle, silent: pd.DataFrame, surveyed: np.ndarray,
                    budget: int, probs: np.ndarray, propensity: np.ndarray, signals: dict[str, np.ndarray],
                    segment: np.ndarray, expected_score: np.ndarray, seed: int | None) -> pd.DataFrame:
    """The precision goal's plan: a systematic draw with q_i topping pi_i up to c * s_i."""
    names = bundle.band_names
    sd = net_score_sd(probs, names.index(config.score.top_band), names.index(config.score.bottom_band))
    floor = config.trust.low_support_ratio * surveyed.mean()
    p = np.clip(np.nan_to_num(propensity, nan=surveyed.mean()), floor, 1.0)
    q = precision_inclusion(sd, p, np.ones(len(silent), bool), budget)
    rng = np.random.default_rng(config.training.seed if seed is None else seed)
    drawn = systematic_draw(q, rng)
    order = drawn[np.argsort(-q[drawn], kind="stable")]
    # The reason: whichever lifts q_i more above a typical silent customer's, the answer's spread
    # (sd) or how rarely people like them answer (1 / p).
    sd_lift = np.log(np.maximum(sd[order], MIN_SD) / np.median(np.maximum(sd, MIN_SD)))
    p_lift = np.log(np.median(p) / p[order])
    reason = np.where(p_lift > sd_lift, REASONS["under_represented"], REASONS["net_uncertain"])
    return pd.DataFrame({
        config.id_column: silent[config.id_column].astype(str).to_numpy()[order],
        "priority": q[order],
        "reason": reason,
        **{k: signals[k][order] for k in signals},
        "segment": segment[order],
        "expected_score": np.asarray(expected_score)[order],
        "response_propensity": propensity[order],
        "residual_sd": sd[order],
        "inclusion_probability": q[order],
    })

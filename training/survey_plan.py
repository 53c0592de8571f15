"""Where to survey next: silent customers whose answers would most reduce uncertainty where it matters.

The plan draws N silent customers without replacement, each with a chance proportional to
1 / P(responds) (floored at the low-support threshold): the answers then fill the regions the
respondents cover thinly, which is where the silent customers' predictions are least supported.
That base is boosted for uncertain predictions (band entropy), high value and segments with too
few respondents. Drawing, rather than taking the top N, keeps the plan spread over the whole
silent population: on the synthetic data taking the N least likely responders, or the N most
uncertain customers, reduced the silent log loss less than N random customers did.
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
}
UNCERTAIN_BOOST = 0.5  # at most ×1.5 for the most uncertain customers
VALUE_BOOST = 0.5  # at most ×1.5 for the most valuable customers
THIN_SEGMENT_BOOST = 2.0  # ×2 in segments with too few respondents


def _percentile(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(pct=True, method="average").to_numpy()


def plan_survey(config: CxConfig, bundle: ScoringBundle, dataset: Dataset, budget: int,
                by: str | None = None, seed: int | None = None) -> pd.DataFrame:
    """Propose `budget` silent customers to survey, with the reason for each.

    Args:
        config: the dataset config (`value_column`, `trust.min_segment_respondents`).
        bundle: the scoring bundle.
        dataset: customers and survey.
        budget: number of customers to propose.
        by: segment column (default: `segment` if present).
        seed: seed of the draw (default: `training.seed`).
    Returns:
        One row per proposed customer, by priority: id, `priority`, `reason`, the signals,
        `segment`, `expected_score`, `response_propensity`.
    """
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

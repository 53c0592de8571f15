"""Problem groups: each customer's dominant problem, as the cause most raised over its base rate among respondents.

Grouping on the most likely cause puts most customers in the most common cause (on the demo
64 % land in `price`, because price is named by most detractors whatever else is wrong). The
lift P(cause | customer) / P(cause among respondents) compares each cause with its own average,
so a customer is "network-affected" when network is unusually likely for them. A customer whose
highest lift is below `problem_groups.min_lift` has no clearly raised cause: group `none`.

Also here: the predicted columns strategy eligibility may use (`p_cause_*`, `problem_group`,
`churn_probability`, `expected_score`, ...), added to a customers frame before eligibility rules run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cxpredict.models.columns import band_column, cause_column

# `bundle` below is a models.bundle.ScoringBundle; not imported, since bundle.py imports this module.
ScoringBundle = Any

NO_PROBLEM = "none"
PROBLEM_GROUP, PROBLEM_LIFT = "problem_group", "problem_lift"
DEFAULT_MIN_LIFT = 1.5  # the config key `problem_groups.min_lift`'s default, for bundles trained before it


def cause_base_rates(causes: pd.DataFrame | None) -> dict[str, float]:
    """Each cause's share among respondents (the denominator of the lift).

    Args:
        causes: one 0/1 column per cause code, one row per respondent (`Dataset.causes`).
    Returns:
        cause code -> share (causes no respondent named are left out: their lift is undefined).
    """
    if causes is None or causes.empty:
        return {}
    rates = causes.astype(float).mean()
    return {str(code): float(rate) for code, rate in rates.items() if rate > 0}


def problem_arrays(
    cause_probabilities: Mapping[str, np.ndarray], base_rates: Mapping[str, float], min_lift: float
) -> tuple[np.ndarray, np.ndarray]:
    """The problem group and its lift per row.

    Args:
        cause_probabilities: cause code -> predicted probability per row.
        base_rates: cause code -> share among respondents.
        min_lift: a highest lift below this gives group `none`.
    Returns:
        (group per row as object array, highest lift per row; NaN lift when no cause has a base rate).
    """
    codes = [c for c in cause_probabilities if base_rates.get(c, 0.0) > 0]
    n = len(next(iter(cause_probabilities.values()))) if cause_probabilities else 0
    if not codes:
        return np.full(n, NO_PROBLEM, dtype=object), np.full(n, np.nan)
    lift = np.column_stack([np.asarray(cause_probabilities[c], float) / base_rates[c] for c in codes])
    best = np.argmax(lift, axis=1)
    top = lift[np.arange(n), best]
    group = np.where(top >= min_lift, np.asarray(codes, dtype=object)[best], NO_PROBLEM).astype(object)
    return group, top


def bundle_problem_columns(bundle: ScoringBundle, predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`problem_group` and `problem_lift` from a bundle's cause predictions (empty without cause models).

    Args:
        bundle: the bundle (its `cause_base_rates` and `problem_min_lift`).
        predictions: `bundle.predict_matrix(...)` output with the `p_cause_*` columns.
    Returns:
        The two columns, or {} when the bundle predicts no causes.
    """
    rates = getattr(bundle, "cause_base_rates", None) or {}
    probabilities = {c: predictions[cause_column(c)] for c in bundle.cause_boosters if cause_column(c) in predictions}
    if not probabilities or not rates:
        return {}
    min_lift = float(getattr(bundle, "problem_min_lift", DEFAULT_MIN_LIFT) or DEFAULT_MIN_LIFT)
    group, lift = problem_arrays(probabilities, rates, min_lift)
    return {PROBLEM_GROUP: group, PROBLEM_LIFT: lift}


def predicted_column_names(bundle: ScoringBundle) -> list[str]:
    """Prediction columns a strategy's eligibility may name (checked like customers columns)."""
    names = [band_column(b) for b in bundle.band_names] + ["expected_score"]
    names += [cause_column(c) for c in bundle.cause_boosters]
    if bundle.churn_booster is not None:
        names.append("churn_probability")
    if bundle.cause_boosters and getattr(bundle, "cause_base_rates", None):
        names += [PROBLEM_GROUP, PROBLEM_LIFT]
    return names


def with_predicted_columns(
    bundle: ScoringBundle, customers: pd.DataFrame, X: np.ndarray | None = None, threads: int | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The customers with the bundle's predictions added as columns (for eligibility and grouping).

    A customers column of the same name is kept (the data wins over the model).

    Args:
        bundle: the bundle.
        customers: customer rows.
        X: their encoded features (encoded here when omitted).
        threads: LightGBM threads.
        columns: only these prediction columns (default: every one eligibility may use).
    Returns:
        A new frame: the customers plus the prediction columns.
    """
    wanted = [c for c in (columns or predicted_column_names(bundle)) if c not in customers.columns]
    if not wanted:
        return customers
    X = bundle.pipeline.transform(customers) if X is None else X
    need_causes = any(c.startswith("p_cause_") or c in (PROBLEM_GROUP, PROBLEM_LIFT) for c in wanted)
    predicted = bundle.predict_matrix(X, threads, causes=need_causes, drivers=False)
    predicted.update(bundle_problem_columns(bundle, predicted))
    added = {c: predicted[c] for c in wanted if c in predicted}
    return pd.concat([customers.reset_index(drop=True), pd.DataFrame(added)], axis=1).set_axis(customers.index)


def problem_kinds(bundle: ScoringBundle) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Kinds of the prediction columns, in the format `features.strategies` checks rules against."""
    kinds: dict[str, tuple[str, tuple[str, ...]]] = {
        name: ("numeric", ()) for name in predicted_column_names(bundle) if name != PROBLEM_GROUP
    }
    if PROBLEM_GROUP in predicted_column_names(bundle):
        rates = getattr(bundle, "cause_base_rates", None) or {}
        kinds[PROBLEM_GROUP] = ("categorical", tuple(sorted([*rates, NO_PROBLEM])))
    return kinds

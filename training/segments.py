"""Segment figures that reconcile: predicted score mix and doubly robust NPS with an interval per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.estimators import binary_probability, predict_raw
from cxpredict.models.problems import predicted_column_names, with_predicted_columns
from cxpredict.training import evaluate, nonresponse

MISSING_SEGMENT = "(missing)"
WHOLE_POPULATION = "whole population"  # the row that adds every customer (the headline figure)


def respondent_inputs(config: CxConfig, bundle: ScoringBundle, dataset: Dataset, net: np.ndarray,
                      X: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Respondents' rows, observed net score (+1 top band, −1 bottom band) and propensity.

    Respondents the model was trained on get their out-of-fold prediction written into `net`
    (in place) and their out-of-fold propensity, so their residuals are honest.

    Args:
        config: the dataset config.
        bundle: the scoring bundle.
        dataset: customers and survey.
        net: predicted P(top) − P(bottom) per customer; respondents' entries are replaced.
        X: encoded customer features.
        threads: LightGBM threads.
    Returns:
        Positions of respondents in the customers table, their observed net score, their propensity.
    """
    ids = dataset.customers[config.id_column].astype(str)
    position_of = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    survey_ids = dataset.survey[config.id_column].astype(str).to_numpy()
    positions = position_of.loc[survey_ids].to_numpy()
    bands = [config.score.band_of(int(s)) for s in dataset.survey[config.score.column]]
    observed = np.array([(b == config.score.top_band) - (b == config.score.bottom_band) for b in bands], float)
    propensity = None
    if bundle.propensity_booster is not None:
        propensity = binary_probability(predict_raw(bundle.propensity_booster, X[positions], threads))
    oof = bundle.respondent_oof
    if oof is not None:
        known = oof.set_index(config.id_column).reindex(survey_ids)
        have = known[band_column(bundle.top_band)].notna().to_numpy()
        oof_net = (known[band_column(bundle.top_band)] - known[band_column(bundle.bottom_band)]).to_numpy()
        net[positions[have]] = oof_net[have]
        if propensity is not None:
            oof_p = known["response_propensity"].to_numpy(float)
            use = have & np.isfinite(oof_p)
            propensity[use] = oof_p[use]
    return positions, observed, propensity


def segment_figures(config: CxConfig, bundle: ScoringBundle, dataset: Dataset, by: str,
                    level: float = 0.95, seed: int | None = None, whole_population: bool = False) -> pd.DataFrame:
    """Per segment: predicted score mix, doubly robust population index with a bootstrap interval.

    Args:
        config: the dataset config (`trust.min_segment_respondents` marks thin segments).
        bundle: the scoring bundle.
        dataset: customers and survey.
        by: the customers' column to segment by.
        level: confidence level of the interval.
        seed: bootstrap seed (default: `training.seed`).
        whole_population: end with a `whole population` row over every customer.
    Returns:
        One row per segment: `segment`, `n_customers`, `n_respondents`, mean `p_<band>`,
        `index_dr`, `index_ci_low`, `index_ci_high`, `index_respondents`, `reliable`; with a response
        model also the doubly robust range at each Λ of `nonresponse.SENSITIVITY_LAMBDAS`
        (`index_dr_lambda_<Λ>_low` / `_high`), the Λ at which the segment's sign could flip
        (`sign_flip_lambda`) and, the same on every row, the Λ at which the reliable segments'
        ranking could change (`ranking_flip_lambda`; empty: not below Λ = 50).
    """
    customers = dataset.customers
    X = bundle.pipeline.transform(customers)
    if by not in customers.columns and by in predicted_column_names(bundle):  # e.g. problem_group
        customers = with_predicted_columns(bundle, customers, X, config.training.threads, columns=[by])
    if by not in customers.columns:
        raise DataError(f"{dataset.sources.get('customers', 'customers')}: no column '{by}' to segment by")
    seed = config.training.seed if seed is None else seed
    predicted = bundle.predict_matrix(X, config.training.threads, causes=False, drivers=False)
    net = predicted[band_column(bundle.top_band)] - predicted[band_column(bundle.bottom_band)]
    positions, observed, propensity = respondent_inputs(config, bundle, dataset, net, X, config.training.threads)
    segment = customers[by].astype("string").fillna(MISSING_SEGMENT).to_numpy(dtype=object)
    rows = []
    ranked: list[nonresponse.SegmentInputs] = []  # reliable segments, for the ranking's Λ
    values = sorted(pd.unique(segment), key=str)
    for value in [*values, *([WHOLE_POPULATION] if whole_population else [])]:
        if value == WHOLE_POPULATION and whole_population:
            segment_of_rows = np.full(len(segment), WHOLE_POPULATION, dtype=object)
        else:
            segment_of_rows = segment
        respondent_segment = segment_of_rows[positions]
        members = np.flatnonzero(segment_of_rows == value)
        local = pd.Series(np.arange(len(members)), index=members)
        in_segment = respondent_segment == value
        contributions = evaluate.doubly_robust_contributions(
            net[members], observed[in_segment], local.loc[positions[in_segment]].to_numpy(),
            None if propensity is None else propensity[in_segment],
        )
        low, high = evaluate.bootstrap_mean_interval(contributions, seed, level=level)
        n_resp = int(in_segment.sum())
        row = {"segment": str(value), "n_customers": len(members), "n_respondents": n_resp}
        row.update({band_column(b): float(predicted[band_column(b)][members].mean()) for b in bundle.band_names})
        row.update({
            "index_dr": float(100 * contributions.mean()),
            "index_ci_low": 100 * low,
            "index_ci_high": 100 * high,
            "index_respondents": float(100 * observed[in_segment].mean()) if n_resp else float("nan"),
            "reliable": n_resp >= config.trust.min_segment_respondents,
        })
        if propensity is not None and n_resp:
            inputs = (net[members], observed[in_segment], local.loc[positions[in_segment]].to_numpy(),
                      propensity[in_segment])
            for lam in nonresponse.SENSITIVITY_LAMBDAS:
                row[f"index_dr_lambda_{lam}_low"], row[f"index_dr_lambda_{lam}_high"] = nonresponse.dr_range(
                    *inputs, lam)
            row["sign_flip_lambda"] = nonresponse.sign_flip_lambda(*inputs)
            if row["reliable"] and value != WHOLE_POPULATION:
                ranked.append(inputs)
        rows.append(row)
    table = pd.DataFrame(rows)
    # One figure for the whole table (the same on every row): the Λ at which the reliable segments'
    # doubly robust ranking could change.
    table["ranking_flip_lambda"] = nonresponse.ranking_flip_lambda(ranked) if propensity is not None else None
    return table

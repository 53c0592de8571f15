"""Learning strategy effects from past randomised campaigns at training time; the results go into the bundle.

Each strategy of the `campaigns` table with enough treated and control rows gets an uplift model
(models/uplift.py) on the same encoded features as every other model of the run, so learned
effects travel with the champion and serving needs no campaign data.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset, source_label
from cxpredict.features.strategies import StrategyError, config_strategies
from cxpredict.models.registry import UPLIFT_ARTIFACT
from cxpredict.models.uplift import MIN_ARM_ROWS, UpliftResult, fit_uplift, uplift_report

logger = logging.getLogger(__name__)
DEFAULT_OUTCOME = "churned"
# Campaign arms hold hundreds of rows: one LightGBM thread is ~10x faster than two there (measured
# 0.04 s vs 0.7 s per model on a busy 2-core machine), since thread synchronisation dominates.
UPLIFT_THREADS = 1


def campaign_outcome_column(config: CxConfig, campaigns: pd.DataFrame) -> str | None:
    """The campaign's churn column: `churn.column` when the campaign has it, else `churned`.

    Args:
        config: the dataset config.
        campaigns: the campaigns table.
    Returns:
        The column name, or None when the campaign records no churn outcome.
    """
    for column in ([config.churn.column] if config.churn else []) + [DEFAULT_OUTCOME]:
        if column in campaigns.columns:
            return column
    return None


def fit_campaign_uplift(
    config: CxConfig,
    dataset: Dataset,
    pipeline: FeaturePipeline,
    metrics: dict[str, float] | None = None,
    notes: list[str] | None = None,
) -> dict[str, UpliftResult]:
    """Fit one uplift model per campaign strategy; add its figures to `metrics` and log a report.

    Args:
        config: the dataset config (seed, threads, churn column, strategies file).
        dataset: the loaded tables (customers and campaigns).
        pipeline: the run's fitted feature pipeline.
        metrics: the run's metrics, extended in place (`campaign_*`, `cv_uplift_*`).
        notes: the run's notes, extended in place (skipped strategies and why).
    Returns:
        strategy id -> learned result (empty without a campaigns table).
    """
    metrics = metrics if metrics is not None else {}
    notes = notes if notes is not None else []
    campaigns = dataset.campaigns
    if campaigns is None or campaigns.empty:
        return {}
    label = source_label(config, config.data.campaigns) if config.data.campaigns is not None else "campaigns"
    outcome = campaign_outcome_column(config, campaigns)
    if outcome is None:
        notes.append(f"{label}: no churn outcome column ('{DEFAULT_OUTCOME}'): no effect learned")
        return {}
    churned = pd.to_numeric(campaigns[outcome], errors="coerce")
    bad = ~churned.isin([0, 1])
    if bad.any():
        rows = ", ".join(str(int(i) + 1) for i in bad.to_numpy().nonzero()[0][:5])
        raise DataError(f"{label}: column '{outcome}': churn outcome must be 0 or 1 in rows {rows}")
    customers = dataset.customers.set_index(config.id_column, drop=False)
    unknown = ~campaigns[config.id_column].isin(customers.index)
    if unknown.any():
        first = campaigns.loc[unknown, config.id_column].iloc[0]
        raise DataError(f"{label}: column '{config.id_column}': campaign row for unknown customer '{first}'")
    known_ids = _catalogue_ids(config, notes)
    X = pipeline.transform(customers.loc[campaigns[config.id_column]].reset_index(drop=True))
    treated = campaigns["treated"].to_numpy(int)
    y = churned.to_numpy(int)
    results: dict[str, UpliftResult] = {}
    for strategy_id, group in campaigns.groupby("strategy", sort=True):
        sid = str(strategy_id)
        rows = group.index.to_numpy()
        n_treated = int(treated[rows].sum())
        if min(n_treated, len(rows) - n_treated) < MIN_ARM_ROWS:
            notes.append(
                f"campaign strategy '{sid}': {n_treated} treated / {len(rows) - n_treated} control rows "
                f"(fewer than {MIN_ARM_ROWS} in an arm): effect not learned, simulation only"
            )
            continue
        if known_ids is not None and sid not in known_ids:
            notes.append(f"campaign strategy '{sid}' is not in the strategies catalogue: learned but unused")
        result = fit_uplift(
            sid, X[rows], treated[rows], y[rows], pipeline.categorical_indices_,
            seed=config.training.seed, threads=UPLIFT_THREADS,
        )
        results[sid] = result
        metrics.update({
            f"campaign_ate_{sid}": result.ate,
            f"campaign_ate_ci_low_{sid}": result.ate_ci_low,
            f"campaign_ate_ci_high_{sid}": result.ate_ci_high,
            f"campaign_ineffective_{sid}": float(result.ineffective),
            f"cv_uplift_qini_{sid}": result.qini,
            f"cv_uplift_qini_random_{sid}": result.qini_random,
            f"cv_uplift_auuc_{sid}": result.auuc,
            f"cv_uplift_auuc_random_{sid}": result.auuc_random,
            **{f"cv_uplift_qini_{kind}_{sid}": value for kind, value in result.cv_qini.items()},
        })
        logger.info("uplift %s: %s-learner, %s", sid, result.learner, result.reason)
        if result.ineffective:
            notes.append(f"campaign strategy '{sid}' flagged ineffective: {result.reason}")
    if results and mlflow.active_run() is not None:
        mlflow.log_dict({"strategies": uplift_report(results).to_dict(orient="records")}, UPLIFT_ARTIFACT)
    return results


def _catalogue_ids(config: CxConfig, notes: list[str]) -> set[str] | None:
    """Strategy ids of the configured catalogue (None when there is none or it cannot be read)."""
    if not config.strategies:
        return None
    try:
        strategies, _ = config_strategies(config)
    except StrategyError as err:  # the catalogue is checked again, strictly, by `simulate`
        notes.append(f"strategies catalogue not checked at training: {err}")
        return None
    return {s.id for s in strategies}

"""Learning strategy effects from past randomised campaigns at training time; the results go into the bundle.

Each strategy of the `campaigns` table with enough treated and control rows gets an uplift model
(models/uplift.py) on the same encoded features as every other model of the run, so learned
effects travel with the champion and serving needs no campaign data.
"""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd

from cxpredict.features.build import FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset, source_label
from cxpredict.features.strategies import StrategyError, config_strategies
from cxpredict.models.bundle import ScoringBundle
from cxpredict.models.registry import UPLIFT_ARTIFACT
from cxpredict.models.uplift import (
    MIN_ARM_ROWS,
    UpliftResult,
    fit_uplift,
    score_only_result,
    uplift_report,
    with_score_effect,
)

logger = logging.getLogger(__name__)
DEFAULT_OUTCOME = "churned"
CAMPAIGN_COLUMN, WAVE_COLUMN, DATE_COLUMN = "campaign", "wave", "date"  # appended by `cxpredict campaign results`
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


def campaign_waves(campaigns: pd.DataFrame) -> np.ndarray:
    """The wave key of every campaign row: `campaign`/`wave` when the history has them, else one wave."""
    parts = [campaigns[c].astype("string").fillna("") for c in (CAMPAIGN_COLUMN, WAVE_COLUMN) if c in campaigns]
    if not parts:
        return np.zeros(len(campaigns), dtype=object)
    key = parts[0]
    for part in parts[1:]:
        key = key + "/" + part
    return key.to_numpy(dtype=object)


def _outcome(campaigns: pd.DataFrame, column: str, label: str, what: str, allowed: pd.Index | None) -> np.ndarray:
    """An outcome column as floats (NaN = not observed); a value outside `allowed` names the rows."""
    values = pd.to_numeric(campaigns[column], errors="coerce")
    bad = campaigns[column].notna() & (values.isna() | (~values.isin(allowed) if allowed is not None else False))
    if bad.any():
        rows = ", ".join(str(int(i) + 1) for i in np.flatnonzero(bad.to_numpy())[:5])
        raise DataError(f"{label}: column '{column}': {what} in rows {rows}")
    return values.to_numpy(float)


def fit_campaign_uplift(
    config: CxConfig,
    dataset: Dataset,
    pipeline: FeaturePipeline,
    metrics: dict[str, float] | None = None,
    notes: list[str] | None = None,
) -> dict[str, UpliftResult]:
    """Fit one uplift model per campaign strategy on churn and on the score; add figures to `metrics`.

    Every wave of the `campaigns` history is pooled (the ATEs are post-stratified by wave). Churn
    is learned from rows with a churn outcome, the score from rows with a follow-up score
    (`score.column` in the history); a strategy with too few rows in an arm for an outcome keeps
    that outcome simulated.

    Args:
        config: the dataset config (seed, threads, churn and score columns, strategies file).
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
    campaigns = campaigns.reset_index(drop=True)
    label = source_label(config, config.data.campaigns) if config.data.campaigns is not None else "campaigns"
    outcome = campaign_outcome_column(config, campaigns)
    score_column = config.score.column if config.score.column in campaigns.columns else None
    if outcome is None and score_column is None:
        notes.append(f"{label}: no churn outcome column ('{DEFAULT_OUTCOME}') and no score column "
                     f"('{config.score.column}'): no effect learned")
        return {}
    churned = (_outcome(campaigns, outcome, label, "churn outcome must be 0 or 1", pd.Index([0, 1]))
               if outcome else np.full(len(campaigns), np.nan))
    levels = pd.Index(config.score.levels)
    score = (_outcome(campaigns, score_column, label,
                      f"score is outside the scale {levels[0]}..{levels[-1]}", levels)
             if score_column else np.full(len(campaigns), np.nan))
    low, high = config.score.bands[config.score.top_band]
    top = ((score >= low) & (score <= high)).astype(float)
    customers = dataset.customers.set_index(config.id_column, drop=False)
    unknown = ~campaigns[config.id_column].isin(customers.index)
    if unknown.any():
        first = campaigns.loc[unknown, config.id_column].iloc[0]
        raise DataError(f"{label}: column '{config.id_column}': campaign row for unknown customer '{first}'")
    known_ids = _catalogue_ids(config, notes)
    X = pipeline.transform(customers.loc[campaigns[config.id_column]].reset_index(drop=True))
    treated = campaigns["treated"].to_numpy(int)
    waves = campaign_waves(campaigns)
    results: dict[str, UpliftResult] = {}
    for strategy_id, group in campaigns.groupby("strategy", sort=True):
        sid = str(strategy_id)
        rows = group.index.to_numpy()
        churn_rows = rows[np.isfinite(churned[rows])]
        score_rows = rows[np.isfinite(score[rows])]
        arms = {what: (int(treated[r].sum()), len(r) - int(treated[r].sum()))
                for what, r in (("churn", churn_rows), ("score", score_rows))}
        enough = {what: min(a) >= MIN_ARM_ROWS for what, a in arms.items()}
        for what, (n_t, n_c) in arms.items():
            if not enough[what] and (what == "churn" or n_t + n_c):
                notes.append(
                    f"campaign strategy '{sid}': {n_t} treated / {n_c} control rows with a {what} outcome "
                    f"(fewer than {MIN_ARM_ROWS} in an arm): {what} effect not learned, simulation only"
                )
        if not any(enough.values()):
            continue
        if known_ids is not None and sid not in known_ids:
            notes.append(f"campaign strategy '{sid}' is not in the strategies catalogue: learned but unused")
        if enough["churn"]:
            result = fit_uplift(
                sid, X[churn_rows], treated[churn_rows], churned[churn_rows].astype(int),
                pipeline.categorical_indices_, seed=config.training.seed, threads=UPLIFT_THREADS,
                wave=waves[churn_rows],
            )
        else:
            result = score_only_result(sid, int(pd.Series(waves[rows]).nunique()))
        if enough["score"]:
            result = with_score_effect(result, treated[score_rows], score[score_rows], top[score_rows],
                                       waves[score_rows])
        results[sid] = result
        metrics.update(_result_metrics(result))
        logger.info("uplift %s: %s-learner, churn: %s; score: %s", sid, result.learner, result.reason,
                    result.score_reason or "not learned")
        if result.churn_learned and result.ineffective:
            notes.append(f"campaign strategy '{sid}' flagged ineffective on churn: {result.reason}")
        if result.score_learned and result.score_ineffective:
            notes.append(f"campaign strategy '{sid}' flagged ineffective on the score: {result.score_reason}")
    if results and mlflow.active_run() is not None:
        mlflow.log_dict({"strategies": uplift_report(results).to_dict(orient="records")}, UPLIFT_ARTIFACT)
    return results


def _result_metrics(result: UpliftResult) -> dict[str, float]:
    sid = result.strategy
    out: dict[str, float] = {}
    if result.churn_learned:
        out.update({
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
    if result.score_learned:
        out.update({
            f"campaign_score_ate_{sid}": result.score_ate,
            f"campaign_score_ci_low_{sid}": result.score_ci_low,
            f"campaign_score_ci_high_{sid}": result.score_ci_high,
            f"campaign_top_ate_{sid}": result.top_ate,
            f"campaign_score_ineffective_{sid}": float(result.score_ineffective),
        })
    return out


def fit_strategy_loop(
    config: CxConfig, dataset: Dataset, bundle: ScoringBundle, metrics: dict[str, float], notes: list[str],
) -> None:
    """What the strategy loop adds to a trained bundle: effects learned from every campaign wave, and the
    previous champion's accuracy and value on each wave (logged; problem groups come with `fit_models`).

    Args:
        config: the dataset config.
        dataset: the loaded tables (survey causes, campaigns history).
        bundle: the run's bundle, completed in place before it is logged.
        metrics: the run's metrics, extended in place.
        notes: the run's notes, extended in place.
    """
    bundle.uplift = fit_campaign_uplift(config, dataset, bundle.pipeline, metrics, notes)
    if dataset.campaigns is not None and "wave" in dataset.campaigns.columns and mlflow.active_run() is not None:
        from cxpredict.models.registry import champion_if_registered
        from cxpredict.training.campaigns import log_wave_history, wave_history

        previous = champion_if_registered(config)  # the alias has not moved yet: the champion that planned
        if previous is not None:
            try:
                rows = wave_history(config, previous.bundle, previous.version, dataset.customers, dataset.campaigns)
            except Exception as err:  # the history is a report: it never stops a training run
                notes.append(f"iteration history not logged: {type(err).__name__}: {err}")
                rows = []
            log_wave_history(rows)


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

"""Batch scoring: every customer of a dataset through the champion bundle, written atomically."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.features.load import (
    Dataset,
    check_ids,
    check_score,
    read_table,
    source_label,
)
from cxpredict.models.drift import DriftCounts, drift_counts, drift_report_from_counts, drift_warnings
from cxpredict.models.registry import (
    DRIFT_ARTIFACT,
    TAG_DRIFT_WARNING,
    TAG_MODEL_VERSION,
    LoadedBundle,
    metric_name,
    use_tracking_store,
)
from cxpredict.models.scoring import CustomerScorer, ScoringOptions

logger = logging.getLogger(__name__)


def observed_scores(config: CxConfig) -> pd.Series:
    """The survey's scores by customer id, read on their own (streamed scoring never loads customers)."""
    label = source_label(config, config.data.survey)
    survey = check_score(check_ids(read_table(config, config.data.survey), config.id_column, label), config, label)
    return survey.set_index(config.id_column)[config.score.column]


def add_survey_columns(scores: pd.DataFrame, id_column: str, observed: pd.Series, score_column: str) -> pd.DataFrame:
    """Insert `surveyed` and `observed_<score>` after the id: who answered, and what they said."""
    ids = scores[id_column]
    scores.insert(1, "surveyed", ids.isin(observed.index).to_numpy(bool))
    scores.insert(2, f"observed_{score_column}", ids.map(observed).astype("Int64").to_numpy())
    return scores


def score_customers(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, level: float | None = None, explain: int = 0,
    explain_targets: list[str] | None = None,
) -> pd.DataFrame:
    """One row per customer: id, surveyed flag, observed score, predictions, model version.

    Args:
        config: the dataset config.
        loaded: the bundle and its registry version.
        dataset: the customers (and survey, for the surveyed flag and observed score).
        level: nominal coverage of prediction sets and intervals (default: the model's).
        explain: add the top-k SHAP drivers per customer and target (0: none), as flat columns
            `driver{i}_{target}_feature|value|contribution` (see models.explain.top_drivers).
        explain_targets: targets to explain (default: bottom band, expected score, churn).
    Returns:
        The scores, in the customers table's order.
    """
    options = ScoringOptions.requested(level, explain, explain_targets)
    scorer = CustomerScorer(loaded.bundle, options, threads=config.training.threads)
    scores = scorer.score(dataset.customers, model_version=loaded.version)
    observed = dataset.survey.set_index(config.id_column)[config.score.column]
    return add_survey_columns(scores, config.id_column, observed, config.score.column)


def check_drift(config: CxConfig, loaded: LoadedBundle, customers: pd.DataFrame | None = None,
                log_to_mlflow: bool = True, counts: DriftCounts | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Compare scored customers with the training data: PSI per feature and unseen-category shares.

    Logged as an MLflow run (`drift-<name>`: `drift_psi_max`, `drift_unseen_share_max`, the table)
    and as log warnings when `trust.drift_psi_warn` or `trust.drift_unseen_warn` is crossed.

    Args:
        config: the dataset config (thresholds under `trust`).
        loaded: the bundle used to score.
        customers: the scored customers (or `counts`).
        log_to_mlflow: log the run.
        counts: their bin counts instead, summed over a streamed job's chunks.
    Returns:
        The drift table (empty for bundles trained before drift references existed) and the warnings.
    """
    bundle = loaded.bundle
    if bundle.drift_reference is None:
        return pd.DataFrame(columns=["feature", "kind", "psi", "unseen_share"]), []
    if counts is None:
        assert customers is not None, "check_drift needs the customers or their counts"
        counts = drift_counts(bundle.drift_reference, bundle.pipeline, customers)
    report = drift_report_from_counts(bundle.drift_reference, bundle.pipeline, counts)
    warnings = drift_warnings(report, config.trust.drift_psi_warn, config.trust.drift_unseen_warn)
    for message in warnings:
        logger.warning("drift: %s", message)
    if log_to_mlflow:
        use_tracking_store(config.tracking_uri)
        mlflow.set_experiment(config.experiment_name)
        with mlflow.start_run(run_name=f"drift-{config.name}"):
            mlflow.set_tags({TAG_MODEL_VERSION: loaded.version, TAG_DRIFT_WARNING: str(bool(warnings))})
            mlflow.log_metrics({
                "drift_psi_max": float(report["psi"].max()),
                "drift_unseen_share_max": float(report["unseen_share"].max()),
                "drift_n_scored": float(counts.rows),
                **{metric_name(f"drift_psi_{f}"): float(v)
                   for f, v in zip(report["feature"], report["psi"], strict=True)},
            })
            mlflow.log_dict({"features": report.to_dict("records"), "warnings": warnings}, DRIFT_ARTIFACT)
    return report, warnings

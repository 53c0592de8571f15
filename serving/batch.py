"""Batch scoring: every customer of a dataset through the champion bundle, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from features.config import CxConfig
from features.load import Dataset
from models.bundle import LoadedBundle, load_registered_bundle
from models.explain import explain_top_k


def load_champion(config: CxConfig, version: str | None = None) -> LoadedBundle:
    """The bundle the `champion` alias (or an explicit version) of the dataset's model points to."""
    return load_registered_bundle(config.tracking_uri, config.registered_model_name, version=version)


def score_customers(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, explain: int = 0,
    explain_targets: list[str] | None = None,
) -> pd.DataFrame:
    """One row per customer: id, surveyed flag, observed score, predictions, model version.

    Args:
        config: the dataset config.
        loaded: the bundle and its registry version.
        dataset: the customers (and survey, for the surveyed flag and observed score).
        explain: add the top-k SHAP drivers per customer and target (0: none), as flat columns
            `driver{i}_{target}_feature|value|contribution` (see models.explain.top_drivers).
        explain_targets: targets to explain (default: bottom band, expected score, churn).
    Returns:
        The scores, in the customers table's order.
    """
    id_column = config.id_column
    predictions = loaded.bundle.predict(dataset.customers, threads=config.training.threads)
    observed = dataset.survey.set_index(id_column)[config.score.column]
    ids = predictions[id_column]
    predictions.insert(1, "surveyed", ids.isin(observed.index).to_numpy())
    predictions.insert(2, f"observed_{config.score.column}", ids.map(observed).astype("Int64").to_numpy())
    predictions["model_version"] = loaded.version
    if explain or explain_targets:
        drivers = explain_top_k(loaded.bundle, dataset.customers, explain or 3, explain_targets,
                                threads=config.training.threads)
        predictions = pd.concat([predictions, drivers.set_axis(predictions.index)], axis=1)
    return predictions


def write_parquet_atomic(frame: pd.DataFrame, out: Path) -> Path:
    """Write to a temporary name beside the target, then rename: readers never see half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out

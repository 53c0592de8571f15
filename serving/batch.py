"""Batch scoring: every customer of a dataset through the champion bundle, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from features.config import CxConfig
from features.load import Dataset
from models.bundle import LoadedBundle, load_registered_bundle, predict_uncertainty


def load_champion(config: CxConfig, version: str | None = None) -> LoadedBundle:
    """The bundle the `champion` alias (or an explicit version) of the dataset's model points to."""
    return load_registered_bundle(config.tracking_uri, config.registered_model_name, version=version)


def score_customers(config: CxConfig, loaded: LoadedBundle, dataset: Dataset,
                    level: float | None = None) -> pd.DataFrame:
    """One row per customer: id, surveyed flag, observed score, predictions, model version.

    Args:
        config: the dataset config.
        loaded: the bundle and its registry version.
        dataset: the customers (and survey, for the surveyed flag and observed score).
        level: nominal coverage of prediction sets and intervals (default: the model's).
    Returns:
        The scores, in the customers table's order.
    """
    id_column = config.id_column
    predictions = loaded.bundle.predict(dataset.customers, threads=config.training.threads)
    observed = dataset.survey.set_index(id_column)[config.score.column]
    ids = predictions[id_column]
    predictions.insert(1, "surveyed", ids.isin(observed.index).to_numpy())
    predictions.insert(2, f"observed_{config.score.column}", ids.map(observed).astype("Int64").to_numpy())
    uncertainty = predict_uncertainty(loaded.bundle, dataset.customers, predictions, level,
                                      threads=config.training.threads)
    for column in uncertainty.columns:
        predictions[column] = uncertainty[column].to_numpy()
    predictions["model_version"] = loaded.version
    return predictions


def write_parquet_atomic(frame: pd.DataFrame, out: Path) -> Path:
    """Write to a temporary name beside the target, then rename: readers never see half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out

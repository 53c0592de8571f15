"""The registry's write side: the experiment, the logged pyfunc model, its signature and the `champion` alias.

Names (artifact paths, aliases, tags) come from `models/registry.py`, the read side; training
and the analyses that log runs open them through `configure_mlflow`.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from cxpredict.features.build import NUMERIC
from cxpredict.features.config import CxConfig
from cxpredict.models.bundle import ScoringBundle, save_bundle
from cxpredict.models.pyfunc import CxPyfuncModel
from cxpredict.models.registry import BUNDLE_ARTIFACT, BUNDLE_FILE, CHAMPION
from cxpredict.models.scoring import pyfunc_param_schema
from cxpredict.training.project import detach_project_run


def configure_mlflow(config: CxConfig) -> str:
    """Point MLflow at the config's tracking store and experiment; returns the experiment id.

    Under `mlflow run` the launcher's run is detached first (see training/project.py), so runs
    opened next are new runs of this store rather than an attempt to resume the launcher's.
    """
    detach_project_run()
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(config.experiment_name, artifact_location=config.artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def model_signature(bundle: ScoringBundle, sample: pd.DataFrame) -> ModelSignature:
    """The pyfunc signature: the id and every feature column, typed where MLflow's check allows it.

    MLflow refuses float input for a `long` column and int64 input for a `double` one, yet an
    integer column with a missing value *is* float in pandas (and in Spark's pandas batches), and
    a whole-number column read without gaps is int64. So integer-like numeric columns, dates
    (datetime64 from Parquet, ISO text from CSV or JSON) and anything else MLflow would type too
    narrowly are declared `Any`; the bundle's pipeline converts them itself. Feature columns are
    optional because the bundle scores an absent column as missing; other columns (excluded,
    value) are not inputs.

    Args:
        bundle: the fitted bundle (its pipeline names and types the feature columns).
        sample: customer rows as loaded, for the types MLflow infers and the output schema.
    Returns:
        The signature to log with the model.
    """
    columns = [bundle.id_column, *[c for c in bundle.pipeline.feature_names_ if c != bundle.id_column]]
    present = [c for c in columns if c in sample.columns]
    inferred = {spec.name: spec.type for spec in _quiet_infer_signature(sample[present]).inputs.inputs}
    kinds = {spec.name: spec.kind for spec in bundle.pipeline.specs_}
    specs = []
    for column in columns:
        dtype = inferred.get(column)
        keep = dtype in (DataType.string, DataType.boolean, DataType.double)
        if kinds.get(column) == NUMERIC and column in sample.columns:
            values = pd.to_numeric(sample[column], errors="coerce").dropna()
            keep = keep and not (values == np.round(values)).all()  # whole numbers: an integer column
        specs.append(ColSpec(dtype if keep else AnyType(), column, required=column == bundle.id_column))
    return ModelSignature(inputs=Schema(specs), outputs=_quiet_infer_signature(sample, bundle.predict(sample)).outputs,
                          params=pyfunc_param_schema())


def _quiet_infer_signature(*data: pd.DataFrame) -> ModelSignature:
    """MLflow's inferred signature without its hint about integer columns and missing values.

    The hint tells the user to declare integer columns as doubles; `model_signature` already
    declares every integer-like column `Any`, so the hint is noise on every `train`.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        return infer_signature(*data)


def log_bundle(config: CxConfig, bundle: ScoringBundle, sample: pd.DataFrame, register: bool) -> str | None:
    """Log the bundle as a pyfunc model with its signature and feature schema; register it as champion."""
    signature = model_signature(bundle, sample)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_bundle(bundle, Path(tmp) / BUNDLE_FILE)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CxPyfuncModel(),
            artifacts={BUNDLE_ARTIFACT: str(path)},
            signature=signature,
            registered_model_name=config.registered_model_name if register else None,
        )
    mlflow.log_dict({"features": bundle.pipeline.schema(), "skipped": bundle.pipeline.skipped_}, "feature_schema.json")
    if not register:
        return None
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(config.registered_model_name, CHAMPION, version)
    return version

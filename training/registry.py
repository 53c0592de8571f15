"""The registry's write side: the experiment, the logged pyfunc model, its signature and the `champion` alias.

Names (artifact paths, aliases, tags) come from `models/registry.py`, the read side; training
and the analyses that log runs open them through `configure_mlflow`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from cxpredict.features.build import NUMERIC
from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset
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
    tag_experiment_kind(experiment_id)
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
    inferred = {spec.name: spec.type for spec in infer_signature(sample[present]).inputs.inputs}
    kinds = {spec.name: spec.kind for spec in bundle.pipeline.specs_}
    specs = []
    for column in columns:
        dtype = inferred.get(column)
        keep = dtype in (DataType.string, DataType.boolean, DataType.double)
        if kinds.get(column) == NUMERIC and column in sample.columns:
            values = pd.to_numeric(sample[column], errors="coerce").dropna()
            keep = keep and not (values == np.round(values)).all()  # whole numbers: an integer column
        specs.append(ColSpec(dtype if keep else AnyType(), column, required=column == bundle.id_column))
    return ModelSignature(inputs=Schema(specs), outputs=infer_signature(sample, bundle.predict(sample)).outputs,
                          params=pyfunc_param_schema())


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


# --- what a data scientist reads in the MLflow UI: the experiment's kind, the inputs, the version ---

# MLflow 3's UI opens an experiment without this tag on the GenAI overview (traces, prompts);
# `custom_model_development` makes it open on the runs table, as a training experiment should.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
TRAINING_INPUT_CONTEXT = "training"


def tag_experiment_kind(experiment_id: str) -> None:
    """Mark the experiment as model training (once; runs opened later do not touch it again)."""
    client = mlflow.MlflowClient()
    if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def log_training_inputs(config: CxConfig, dataset: Dataset) -> None:
    """Log the tables a training run read as MLflow dataset inputs (name, digest, source, schema, rows).

    The source is the file the table was read from, or `<table> (SQL)` for a database table: a
    connection URL may hold a password, so it is never logged.

    Args:
        config: the dataset config (its name prefixes each dataset's name).
        dataset: the loaded tables (customers, survey, and outcomes / campaigns when present).
    """
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.sources import LocalArtifactDatasetSource

    tables = {"customers": dataset.customers, "survey": dataset.survey, "outcomes": dataset.outcomes,
              "campaigns": dataset.campaigns}
    for table, frame in tables.items():
        if frame is None:
            continue
        label = dataset.sources.get(table) or _source_label(config, table)
        source = (CodeDatasetSource({"table": label}) if label.endswith("(SQL)") or not label
                  else LocalArtifactDatasetSource(label))
        with warnings.catch_warnings():
            # The schema is a record of the table, not a contract the model enforces: MLflow's hint
            # about integer columns and missing values does not apply to it.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
            inputs = mlflow.data.from_pandas(frame, source=source, name=f"{config.name}-{table}",
                                             targets=_target_column(config, table))
        mlflow.log_input(inputs, context=TRAINING_INPUT_CONTEXT)


def _source_label(config: CxConfig, table: str) -> str:
    from cxpredict.features.load import source_label

    source = getattr(config.data, table, None)
    if source is None or isinstance(source, list):
        return ""
    return source_label(config, source)


def _target_column(config: CxConfig, table: str) -> str | None:
    if table == "survey":
        return config.score.column
    if table == "outcomes" and config.churn is not None:
        return config.churn.column
    return None


def model_version_description(
    config: CxConfig, run_id: str, metrics: Mapping[str, float], n_customers: int, n_respondents: int,
    sources: Mapping[str, str],
) -> str:
    """The registered version's description: the data it learned from, its headline figures and its run.

    Args:
        config: the dataset config.
        run_id: the training run.
        metrics: the run's metrics.
        n_customers, n_respondents: the table sizes.
        sources: table -> where it was read from.
    Returns:
        A few lines of Markdown (the registry UI renders it).
    """
    lines = [
        f"cxpredict models of `{config.name}`, trained in run `{run_id}`.",
        "",
        f"Data: {n_customers:,} customers ({sources.get('customers', 'customers')}), "
        f"{n_respondents:,} respondents ({sources.get('survey', 'survey')}).",
    ]
    headline = [
        ("held-out band macro-F1", "test_macro_f1", ".3f"),
        ("held-out expected-score MAE", "test_expected_score_mae", ".3f"),
        ("held-out mean cause AUC", "test_cause_auc_mean", ".3f"),
        ("held-out churn ROC AUC", "test_churn_roc_auc", ".3f"),
        ("adversarial AUC (respondents vs all)", "propensity_adversarial_auc", ".3f"),
    ]
    figures = [f"{label} {metrics[key]:{fmt}}" for label, key, fmt in headline
               if key in metrics and np.isfinite(metrics[key])]
    if figures:
        lines += ["", "Metrics: " + "; ".join(figures) + "."]
    if "population_index" in metrics:
        lines += ["", f"Population score (doubly robust): {metrics['population_index']:+.1f} "
                      f"[{metrics.get('population_index_ci_low', float('nan')):+.1f}, "
                      f"{metrics.get('population_index_ci_high', float('nan')):+.1f}] (95% bootstrap)."]
    return "\n".join(lines)


def describe_model_version(config: CxConfig, version: str, description: str) -> None:
    """Set the description of a registered version of the config's model."""
    mlflow.MlflowClient().update_model_version(config.registered_model_name, version, description=description)

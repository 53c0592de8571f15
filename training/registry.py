"""The registry's write side: the experiment, the logged pyfunc model, its signature and the `champion` alias.

Names (artifact paths, aliases, tags) come from `models/registry.py`, the read side; training
and the analyses that log runs open them through `configure_mlflow`.

The logged model leaves the venv: its code is `models/pyfunc.py` logged as MLflow "models from
code" with cxpredict's feature and model packages as code paths (laid out as
`code/cxpredict/{features,models}`, so `import cxpredict.models...` works in a fresh
environment), its bundle is data files whose manifest SHA-256 the run records, and its
requirements are the libraries loading and predicting import, with cxpredict's own ranges.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cxpredict.features
import cxpredict.models
from cxpredict.features.build import DATE, NUMERIC
from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset
from cxpredict.models.bundle import ScoringBundle, save_bundle
from cxpredict.models.bundle_files import files_sha256
from cxpredict.models.pyfunc import PYFUNC_CODE
from cxpredict.models.registry import (
    BUNDLE_ARTIFACT,
    BUNDLE_SHA256_CONFIG,
    CHAMPION,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    FEATURE_SCHEMA_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_CODE_DIR,
    MODEL_CODE_FILE,
    TAG_BUNDLE_SHA256,
    TAG_CODE_SHA256,
    TAG_DROPPED_COLUMNS,
    tracking_client,
    use_tracking_store,
)
from cxpredict.models.scoring import pyfunc_param_schema
from cxpredict.training.project import detach_project_run

# What loading and predicting the logged model imports (tests/training/test_model_files.py checks
# this against the modules a loaded model really imports); the ranges are cxpredict's own.
MODEL_DEPENDENCIES = (
    "mlflow", "lightgbm", "catboost", "numba", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "pydantic",
    "pyyaml", "jieba", "treelite", "tl2cgen",  # compiled trees (models/compiled.py), used when scoring
)
# The packages the model's code needs (models imports features; neither imports training or serving).
MODEL_CODE_PACKAGES = (cxpredict.features, cxpredict.models)
INPUT_EXAMPLE_ROWS = 5
MAX_TAG_CHARS = 5000  # MLflow caps tag values; the full list is in the feature schema artifact


def configure_mlflow(config: CxConfig) -> str:
    """Point MLflow at the config's tracking store and experiment; returns the experiment id.

    Under `mlflow run` the launcher's run is detached first (see training/project.py), so runs
    opened next are new runs of this store rather than an attempt to resume the launcher's.
    """
    detach_project_run()
    use_tracking_store(config.tracking_uri)
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


def model_requirements() -> list[str]:
    """The logged model's pip requirements: `MODEL_DEPENDENCIES` with the ranges cxpredict declares.

    Not `cxpredict` itself (it is not published; its code travels as the model's code paths).
    """
    declared = {}
    for line in importlib.metadata.requires("cxpredict") or []:
        requirement = Requirement(line)
        if requirement.marker is None:  # extras (test, spark, bench) are not the model's
            declared[canonicalize_name(requirement.name)] = str(requirement)
    return [declared[canonicalize_name(name)] for name in MODEL_DEPENDENCIES]


def model_input_example(bundle: ScoringBundle, sample: pd.DataFrame) -> pd.DataFrame:
    """A few customer rows as the served model receives them (JSON): the signature's columns, dates as ISO text.

    MLflow stores the example as JSON and checks it against the signature; a datetime column
    would be written as epoch milliseconds, which the pipeline would read as numbers, so dates go
    as the ISO 8601 text a JSON client sends (and the pipeline parses).
    """
    kinds = {spec.name: spec.kind for spec in bundle.pipeline.specs_}
    columns = [bundle.id_column, *[c for c in bundle.pipeline.feature_names_ if c != bundle.id_column]]
    example = sample[[c for c in columns if c in sample.columns]].head(INPUT_EXAMPLE_ROWS).copy()
    for column in example.columns:
        if kinds.get(column) == DATE and pd.api.types.is_datetime64_any_dtype(example[column]):
            example[column] = example[column].dt.strftime("%Y-%m-%d").astype(object)
    return example


def ship_model_code(folder: Path) -> Path:
    """Copy cxpredict's feature and model packages to `folder/cxpredict/` (the model's code path).

    `cxpredict` is a namespace package, so the copy imports as `cxpredict.features` and
    `cxpredict.models` wherever MLflow puts the code folder on `sys.path`.
    """
    root = folder / "cxpredict"
    for package in MODEL_CODE_PACKAGES:
        source = Path(package.__file__).parent
        shutil.copytree(source, root / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def log_pyfunc_model(bundle: ScoringBundle, registered_model_name: str | None = None,
                     signature: ModelSignature | None = None,
                     input_example: pd.DataFrame | None = None) -> mlflow.models.model.ModelInfo:
    """Log the bundle's files as the active run's pyfunc model (from code) and record their digests.

    The bundle manifest's SHA-256 and the code's are tagged on the run before the model is
    logged, so a registered version is never readable without them; the bundle's digest also
    goes into the model's config for the pyfunc to check when MLflow serves it.

    Args:
        bundle: the bundle to log.
        registered_model_name: register the model under this name (None: not registered).
        signature: the model signature (`model_signature`).
        input_example: rows MLflow stores (and checks against the signature) with the model.
    Returns:
        MLflow's record of the logged model.
    """
    with tempfile.TemporaryDirectory() as tmp:
        files = save_bundle(bundle, Path(tmp) / BUNDLE_ARTIFACT)
        code = ship_model_code(Path(tmp) / MODEL_CODE_DIR)
        # The files MLflow will run as this model's code, under the names they get in the model folder.
        code_files = {MODEL_CODE_FILE: PYFUNC_CODE, **{
            f"{MODEL_CODE_DIR}/{p.relative_to(code.parent).as_posix()}": p for p in code.rglob("*") if p.is_file()}}
        mlflow.set_tags({TAG_BUNDLE_SHA256: files.sha256, TAG_CODE_SHA256: files_sha256(code_files)})
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_CODE),
            artifacts={BUNDLE_ARTIFACT: str(files.folder)},
            code_paths=[str(code)],
            model_config={BUNDLE_SHA256_CONFIG: files.sha256},
            signature=signature,
            input_example=input_example,
            pip_requirements=model_requirements(),
            registered_model_name=registered_model_name,
        )


def log_bundle(config: CxConfig, bundle: ScoringBundle, sample: pd.DataFrame, register: bool) -> str | None:
    """Log the bundle as a pyfunc model with its signature, input example and feature schema; register it as champion.

    Args:
        config: the dataset config (registered model name).
        bundle: the trained bundle.
        sample: customer rows as loaded (signature types and the input example).
        register: register the model under the config's name and move `champion` to it.
    Returns:
        The registered version, or None when not registered.
    """
    name = config.registered_model_name
    info = log_pyfunc_model(bundle, name if register else None, model_signature(bundle, sample),
                            model_input_example(bundle, sample))
    mlflow.log_dict({"features": bundle.pipeline.schema(), "skipped": bundle.pipeline.skipped_},
                    FEATURE_SCHEMA_ARTIFACT)
    # Dropped columns are a tag too, so a run that lost a feature shows it in the runs table.
    mlflow.set_tag(TAG_DROPPED_COLUMNS, json.dumps(sorted(bundle.pipeline.skipped_))[:MAX_TAG_CHARS])
    if not register:
        return None
    version = str(info.registered_model_version)
    tracking_client(config.tracking_uri).set_registered_model_alias(name, CHAMPION, version)
    return version


# --- what a data scientist reads in the MLflow UI: the experiment's kind, the inputs, the version ---

TRAINING_INPUT_CONTEXT = "training"  # the context of the run's dataset inputs


def tag_experiment_kind(experiment_id: str) -> None:
    """Mark the experiment as model training (MLflow 3's UI then opens it on its runs)."""
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
    if "population_index_headline_low" in metrics:
        low, high = metrics["population_index_headline_low"], metrics["population_index_headline_high"]
        lines += [f"Headline interval with the error every prediction shares: [{low:+.1f}, {high:+.1f}]."]
    return "\n".join(lines)


def describe_model_version(config: CxConfig, version: str, description: str) -> None:
    """Set the description of a registered version of the config's model."""
    mlflow.MlflowClient().update_model_version(config.registered_model_name, version, description=description)

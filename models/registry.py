"""The registry's read side: where a trained model lives in MLflow and how it is loaded back.

Every MLflow name the project uses (artifact paths, aliases, tags) is defined here, once; this
module also resolves a registered version (by alias or number) and
loads its bundle. The write side (experiment, signature, logging, registering) is
`training/registry.py`; serving and the analyses of a champion only ever read.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset, check_readable, load_dataset
from cxpredict.models.bundle import ScoringBundle, load_bundle

BUNDLE_ARTIFACT = "bundle"
BUNDLE_FILE = "bundle.joblib"
CHAMPION = "champion"


@dataclass
class LoadedBundle:
    """A bundle with where it came from in the registry."""

    bundle: ScoringBundle
    model_name: str
    version: str
    run_id: str
    alias: str | None = CHAMPION


def load_registered_bundle(
    tracking_uri: str, model_name: str, alias: str = CHAMPION, version: str | None = None
) -> LoadedBundle:
    """Load the bundle a registered model version (by alias, or an explicit version) points to.

    Args:
        tracking_uri: the MLflow tracking store (registry lives there too).
        model_name: registered model name.
        alias: alias to resolve when `version` is not given.
        version: an explicit version number.
    Returns:
        The loaded bundle with its version and run id.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if version is None:
        model_version = client.get_model_version_by_alias(model_name, alias)
    else:
        model_version = client.get_model_version(model_name, version)
        alias = None
    # The version's own artifact location, resolved by this client: a `models:/` URI would be
    # resolved through MLflow's global registry (and the MLFLOW_*_URI variables that
    # mlflow.set_*_uri export to child processes), which may point at another store.
    model_uri = client.get_model_version_download_uri(model_name, model_version.version)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{model_uri.rstrip('/')}/artifacts/{BUNDLE_FILE}", dst_path=tmp, tracking_uri=tracking_uri
        )
        bundle = load_bundle(Path(local))
    return LoadedBundle(bundle, model_name, str(model_version.version), model_version.run_id or "", alias)


def load_champion(config: CxConfig, version: str | None = None) -> LoadedBundle:
    """The bundle the `champion` alias (or an explicit version) of the dataset's model points to."""
    return load_registered_bundle(config.tracking_uri, config.registered_model_name, version=version)


def champion_if_registered(config: CxConfig) -> LoadedBundle | None:
    """The champion, or None when no model has been trained into the config's store yet."""
    try:
        return load_champion(config)
    except MlflowException:
        return None


def load_scoring_inputs(config: CxConfig, version: str | None = None) -> tuple[Dataset, LoadedBundle]:
    """The config's tables and the model to run on them (champion, or `version`).

    A feature value the model cannot read (a number, yes/no value or date; see
    `FeaturePipeline.unreadable_values`) stops here with file, column and rows, instead of being
    scored, explained or simulated as if it were missing.
    """
    dataset = load_dataset(config)
    loaded = load_champion(config, version)
    problems = loaded.bundle.pipeline.unreadable_values(dataset.customers)
    check_readable(problems, dataset.sources.get("customers", "customers"))
    return dataset, loaded

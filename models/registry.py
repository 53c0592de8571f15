"""The registry's read side: where a trained model lives in MLflow and how it is loaded back.

Every MLflow name the project uses (artifact paths, aliases, tags) is defined here, once, and
imported everywhere else (tests/unit/test_registry_names.py greps the source for stray copies);
so is pointing a process at a tracking store. This module also resolves a registered version (by
alias or number) and loads its bundle, checking every file against the SHA-256 the training run
recorded. The write side (experiment, signature, logging, registering) is
`training/registry.py`; serving and the analyses of a champion only ever read.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset, check_readable, load_dataset
from cxpredict.models.bundle import ScoringBundle, load_bundle
from cxpredict.models.bundle_files import BundleIntegrityError, check_bundle_files, files_sha256

# The logged model and its registry alias.
MODEL_ARTIFACT = "model"  # the pyfunc model's name in its run (`runs:/<run>/model`)
BUNDLE_ARTIFACT = "bundle"  # the pyfunc's artifact: the folder of bundle data files (models/bundle_files.py)
BUNDLE_SHA256_CONFIG = "bundle_sha256"  # model_config key: the bundle manifest's SHA-256, for the pyfunc
MODEL_CODE_FILE = "pyfunc.py"  # the model's code (models/pyfunc.py, logged from code) in the model folder
MODEL_CODE_DIR = "code"  # the model's code paths: code/cxpredict/{features,models}
CHAMPION = "champion"

# Artifacts of runs (JSON documents logged with mlflow.log_dict).
FEATURE_SCHEMA_ARTIFACT = "feature_schema.json"  # training run: the pipeline's features and skipped columns
NOTES_ARTIFACT = "notes.json"  # training run: what training decided and why
UPLIFT_ARTIFACT = "uplift.json"  # training run: the campaign effects learned per strategy
ITERATION_HISTORY_ARTIFACT = "iteration_history.json"  # training run: the previous champion on each campaign wave
BACKTEST_ARTIFACT = "backtest.json"  # backtest run: the report
DRIFT_ARTIFACT = "drift.json"  # drift run of `score`: per-feature PSI and the warnings
STUDIES_ARTIFACT = "studies.json"  # tune run: each model's Optuna study, trials, best loss and settings
FEEDBACK_ARTIFACT = "feedback.json"  # feedback run: the reason and per-segment figures
TEXT_REPORT_ARTIFACT = "text/text_report.html"  # text-report run: the analyst page of coded texts
TEXT_CODEFRAME_ARTIFACT = "text/codeframe.yaml"  # text-report run: the codeframe the texts were coded with
TEXT_SUMMARY_ARTIFACT = "text/summary.json"  # text-report run: frequencies, rising codes, the coder's figures
# Driver tables: written by training/drivers.py (training and explain runs), read by the API's
# driver catalogue. The folder's files keep these names on disk too (`cxpredict explain --out`).
DRIVERS_DIR = "drivers"
DRIVERS_GLOBAL_ARTIFACT = "drivers/drivers_global.csv"
DRIVERS_SEGMENTS_ARTIFACT = "drivers/drivers_segments.csv"
DRIVERS_SAMPLE_ARTIFACT = "drivers/sample.csv"
DRIVERS_SUMMARY_ARTIFACT = "drivers/summary.json"
DRIVERS_KEY_ARTIFACT = "drivers/key_drivers.csv"  # key-driver analysis of the rated attributes
DRIVERS_SURVEY_TREND_ARTIFACT = "drivers/survey_trend.csv"
DRIVERS_SHAP_SUMMARY_ARTIFACT = "drivers/shap_summary.json"  # training run: mean |SHAP| per target and feature

# Run tags.
TAG_BUNDLE_SHA256 = "cxpredict.bundle_sha256"  # training run: SHA-256 of the bundle's manifest
TAG_CODE_SHA256 = "cxpredict.code_sha256"  # training run: SHA-256 of the model's code (`model_code_files`)
TAG_KIND = "cxpredict.kind"  # what a run is, where runs are searched by kind
KIND_EXPLAIN = "explain"
KIND_TEXT_REPORT = "text_report"
TAG_MODEL_NAME = "cxpredict.model_name"  # explain run: the explained model
TAG_EXPLAINED_VERSION = "cxpredict.model_version"
TAG_MODEL_RUN_ID = "cxpredict.model_run_id"
TAG_MODEL_VERSION = "model_version"  # score (drift) and feedback runs: the version that scored
TAG_DRIFT_WARNING = "drift_warning"  # drift run: "True" when a feature drifted past the thresholds
TAG_RETRAIN_ADVISED = "retrain_advised"  # feedback run: "True" when the new answers advise retraining
# Under `mlflow run` (training/project.py): the launcher's run and cxpredict's run point at each other.
TAG_PROJECT_RUN = "cxpredict.project_run_id"  # on cxpredict's run: the launcher's run
TAG_PROJECT_STORE = "cxpredict.project_tracking_uri"
TAG_RUN = "cxpredict.run_id"  # on the launcher's run: cxpredict's run
TAG_STORE = "cxpredict.tracking_uri"
# Optuna trial runs (training/tune.py): how the trial ended and its number in the study.
TAG_TRIAL_STATE = "optuna.state"  # "complete" or "pruned" (a pruned trial's run ends KILLED)
TAG_TRIAL_NUMBER = "optuna.trial_number"
# Experiment tag: MLflow 3's UI opens an experiment without it on the GenAI overview (traces,
# prompts); `custom_model_development` opens it on the runs table, as a training experiment should.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Run params shared by a writer and a reader.
PARAM_SEGMENT = "segment"  # explain run: the segment column of its per-segment table ("" for none)


def drivers_file(artifact: str) -> str:
    """The file name of a driver artifact inside the drivers folder (`drivers_global.csv`)."""
    return artifact.removeprefix(f"{DRIVERS_DIR}/")


def explain_runs_filter(model_name: str, model_version: str) -> str:
    """MLflow search filter for the explain runs of one model version (names are ours, not a user's)."""
    return (f"tags.`{TAG_KIND}` = '{KIND_EXPLAIN}' and tags.`{TAG_MODEL_NAME}` = '{model_name}' "
            f"and tags.`{TAG_EXPLAINED_VERSION}` = '{model_version}'")


_METRIC_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. :/]")


def metric_name(text: str) -> str:
    """A metric name MLflow accepts: characters it refuses (brackets, commas, non-ASCII) become `_`.

    Feature names enter metric names (drift PSI, mean |SHAP|) and may be words, such as
    `text: billing complaint (last 30 days)`.
    """
    return _METRIC_UNSAFE.sub("_", text)


def use_tracking_store(tracking_uri: str) -> None:
    """Point this process's MLflow (runs, registry, `models:/` URIs) at one store: the config's."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def tracking_client(tracking_uri: str) -> mlflow.MlflowClient:
    """A client of one store for both runs and registry, whatever the process's globals say."""
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@dataclass
class LoadedBundle:
    """A bundle with where it came from in the registry."""

    bundle: ScoringBundle
    model_name: str
    version: str
    run_id: str
    alias: str | None = CHAMPION


def recorded_bundle_sha256(client: mlflow.MlflowClient, model_name: str, version: str, run_id: str | None) -> str:
    """The SHA-256 of a version's bundle manifest, as its training run recorded it.

    Raises:
        BundleIntegrityError: the version has no run, or its run recorded no digest (nothing to
            check the files against, so they are not trusted).
    """
    if not run_id:
        raise BundleIntegrityError(f"{model_name} version {version} has no training run: no recorded SHA-256 "
                                   "to check its files against")
    digest = client.get_run(run_id).data.tags.get(TAG_BUNDLE_SHA256)
    if not digest:
        raise BundleIntegrityError(f"{model_name} version {version}: its run {run_id} recorded no bundle SHA-256 "
                                   f"(tag {TAG_BUNDLE_SHA256}); retrain to register a checkable model")
    return digest


def model_code_files(model_dir: Path) -> dict[str, Path]:
    """The files of a model folder that MLflow runs as code: `pyfunc.py` and everything under `code/`."""
    files = {MODEL_CODE_FILE: model_dir / MODEL_CODE_FILE}
    for path in sorted((model_dir / MODEL_CODE_DIR).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(model_dir).as_posix()] = path
    return files


def download_checked_model(tracking_uri: str, loaded: LoadedBundle, dst: Path) -> Path:
    """A registered version's whole MLflow model folder, its code and bundle checked against its run.

    For engines that hand the model to MLflow, which runs the model's own code (Spark's
    `spark_udf`): the folder they load is this checked copy, never a second download.

    Args:
        tracking_uri: the MLflow store.
        loaded: the version (as loaded by `load_registered_bundle`).
        dst: an empty folder to download into.
    Returns:
        The model folder (holding MLmodel).
    Raises:
        BundleIntegrityError: the code or a bundle file differs from what the training run recorded.
    """
    client = tracking_client(tracking_uri)
    uri = client.get_model_version_download_uri(loaded.model_name, loaded.version)
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst),
                                                         tracking_uri=tracking_uri))
    label = f"{loaded.model_name} version {loaded.version}"
    expected = recorded_bundle_sha256(client, loaded.model_name, loaded.version, loaded.run_id)
    check_bundle_files(model_dir / "artifacts" / BUNDLE_ARTIFACT, expected, f"{label}, {BUNDLE_ARTIFACT}/")
    recorded = client.get_run(loaded.run_id).data.tags.get(TAG_CODE_SHA256)
    actual = files_sha256(model_code_files(model_dir))
    if recorded != actual:
        raise BundleIntegrityError(f"{label}: its code ({MODEL_CODE_FILE}, {MODEL_CODE_DIR}/) has SHA-256 {actual}, "
                                   f"not the {recorded} recorded at training: refused")
    return model_dir


def load_registered_bundle(
    tracking_uri: str, model_name: str, alias: str = CHAMPION, version: str | None = None
) -> LoadedBundle:
    """Load the bundle a registered model version (by alias, or an explicit version) points to.

    Only data files are read (LightGBM model text, JSON, Parquet; no pickle, no code from the
    model), each checked against the manifest whose SHA-256 the training run recorded.

    Args:
        tracking_uri: the MLflow tracking store (registry lives there too).
        model_name: registered model name.
        alias: alias to resolve when `version` is not given.
        version: an explicit version number.
    Returns:
        The loaded bundle with its version and run id.
    Raises:
        BundleIntegrityError: a file is missing, added or differs from what training recorded.
    """
    client = tracking_client(tracking_uri)
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
            artifact_uri=f"{model_uri.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}", dst_path=tmp, tracking_uri=tracking_uri
        )
        expected = recorded_bundle_sha256(client, model_name, str(model_version.version), model_version.run_id)
        bundle = load_bundle(Path(local), expected_sha256=expected,
                             label=f"{model_name} version {model_version.version}, {BUNDLE_ARTIFACT}/")
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
    from cxpredict.features.text_features import with_text_features  # text coding only where a config asks

    dataset = with_text_features(config, load_dataset(config))  # the text columns training saw
    loaded = load_champion(config, version)
    problems = loaded.bundle.pipeline.unreadable_values(dataset.customers)
    check_readable(problems, dataset.sources.get("customers", "customers"))
    return dataset, loaded

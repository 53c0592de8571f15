"""The registry's read side: where a trained model lives in MLflow and how it is loaded back.

Every MLflow name the project uses (artifact paths, aliases, tags) is defined here, once, and
imported everywhere else (tests/unit/test_registry_names.py greps the source for stray copies);
so is pointing a process at a tracking store. This module also resolves a registered version (by
alias or number) and loads its bundle, checking every file against the SHA-256 the training run
recorded. The write side (experiment, signature, logging, registering) is
`training/registry.py`; serving and the analyses of a champion only ever read.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.exceptions import MlflowException

from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset, load_dataset
from cxpredict.features.validation import check_required_columns, check_rows
from cxpredict.models.bundle import ScoringBundle, load_bundle
from cxpredict.models.bundle_files import BundleError, BundleIntegrityError, check_bundle_files, files_sha256

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
TAG_DROPPED_COLUMNS = "cxpredict.dropped_columns"  # training run: JSON list of customer columns no model uses
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


class RegisteredModelError(BundleError, MlflowException):
    """A registered model version that does not exist or cannot be loaded: one line naming it.

    Also an `MlflowException`, so callers that treat "no champion yet" as normal keep doing so."""


def _first_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())[:300]


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
    cache = bundle_cache_dir(tracking_uri)
    resolved = _resolve_from_sqlite(tracking_uri, model_name, alias, version)
    if resolved is not None:  # the common case: a local SQLite store, no MLflow client (SQLAlchemy, alembic)
        number, run_id, expected = resolved
        bundle = _cached_bundle(_version_cache(cache, model_name, number), expected,
                                f"{model_name} version {number}, {BUNDLE_ARTIFACT}/")
        if bundle is not None:
            return LoadedBundle(bundle, model_name, number, run_id, alias if version is None else None)
    client = tracking_client(tracking_uri)
    wanted = f"{model_name} version {version}" if version is not None else f"{model_name}@{alias}"
    try:
        if version is None:
            model_version = client.get_model_version_by_alias(model_name, alias)
        else:
            model_version = client.get_model_version(model_name, version)
            alias = None
    except MlflowException as err:
        raise RegisteredModelError(f"{wanted}: no such registered model version ({_first_line(err)})") from None
    # The version's own artifact location, resolved by this client: a `models:/` URI would be
    # resolved through MLflow's global registry (and the MLFLOW_*_URI variables that
    # mlflow.set_*_uri export to child processes), which may point at another store.
    label = f"{model_name} version {model_version.version}, {BUNDLE_ARTIFACT}/"
    cache = _version_cache(cache, model_name, str(model_version.version))
    try:
        expected: str | None = recorded_bundle_sha256(client, model_name, str(model_version.version),
                                                      model_version.run_id)
    except BundleIntegrityError:  # said after the files are looked for, as before the local copy existed
        expected = None
    bundle = _cached_bundle(cache, expected, label) if expected else None
    if bundle is None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                model_uri = client.get_model_version_download_uri(model_name, model_version.version)
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{model_uri.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}", dst_path=tmp,
                    tracking_uri=tracking_uri,
                )
            except (MlflowException, OSError) as err:  # deleted artifacts, a moved store, a version without a bundle
                raise RegisteredModelError(f"{model_name} version {model_version.version}: its model files cannot "
                                           f"be read ({_first_line(err)}); register a working version or move the "
                                           "alias") from None
            if expected is None:
                expected = recorded_bundle_sha256(client, model_name, str(model_version.version),
                                                  model_version.run_id)
            bundle = load_bundle(Path(local), expected_sha256=expected, label=label)
            _store_in_cache(Path(local), cache, expected)
    return LoadedBundle(bundle, model_name, str(model_version.version), model_version.run_id or "", alias)


# The local bundle copy. Reading a bundle through MLflow costs a client (SQLAlchemy, alembic's
# schema check) and a copy of every file on each `score`/`serve`; the copy kept here is keyed by
# version and by the manifest SHA-256 the training run recorded (`<cache>/<model>/<version>/<sha>/`:
# a version registered from other files under the same run gets its own folder and its own check),
# so moving the alias simply selects another folder, and every use re-checks every file against
# that digest (a changed file is refused, the folder dropped and fetched again from the store).
BUNDLE_CACHE_ENV = "CXPREDICT_BUNDLE_CACHE"


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI, or None for other stores."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(tracking_uri).path)
    # sqlite:///relative.db parses to "/relative.db"; sqlite:////abs.db to "//abs.db".
    return Path(path[1:]) if path.startswith("/") and not path.startswith("//") else Path(path[1:] or path)


def bundle_cache_dir(tracking_uri: str) -> Path:
    """Where verified bundle copies are kept: $CXPREDICT_BUNDLE_CACHE, else beside a SQLite
    store (`bundle-cache/`), else the user's cache folder."""
    if os.environ.get(BUNDLE_CACHE_ENV):
        return Path(os.environ[BUNDLE_CACHE_ENV])
    db = _sqlite_file(tracking_uri)
    if db is not None:
        return db.resolve().parent / "bundle-cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cxpredict" / "bundles"


def _version_cache(cache: Path, model_name: str, version: str) -> Path:
    """The cache folder of one registered version (names are MLflow's: no path separators)."""
    return cache / model_name.replace("/", "_") / str(version)


def _resolve_from_sqlite(tracking_uri: str, model_name: str, alias: str,
                         version: str | None) -> tuple[str, str, str] | None:
    """(version, run id, recorded bundle SHA-256) read straight from a SQLite tracking store.

    Three indexed SELECTs instead of MLflow's client, which builds a SQLAlchemy engine and
    checks the schema first (most of a small job's start-up). None when the store is not a
    local SQLite file or anything is unexpected (schema, missing rows): the caller then asks
    MLflow, which also words the errors.
    """
    db = _sqlite_file(tracking_uri)
    if db is None or not db.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            if version is None:
                row = con.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                  (model_name, alias)).fetchone()
                if row is None:
                    return None
                version = str(row[0])
            row = con.execute("SELECT run_id FROM model_versions WHERE name = ? AND version = ? "
                              "AND current_stage != 'Deleted_Internal'", (model_name, int(version))).fetchone()
            if row is None or not row[0]:
                return None
            run_id = str(row[0])
            tag = con.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = ?",
                              (run_id, TAG_BUNDLE_SHA256)).fetchone()
    except (sqlite3.Error, ValueError):
        return None
    if tag is None or not tag[0]:
        return None
    return version, run_id, str(tag[0])


def _cached_bundle(cache: Path, expected_sha256: str, label: str) -> ScoringBundle | None:
    """The bundle from the local copy, every file checked against `expected_sha256`; None when
    there is no copy or it fails the check (then it is removed, to be fetched again)."""
    folder = cache / expected_sha256
    if not folder.is_dir():
        return None
    try:
        return load_bundle(folder, expected_sha256=expected_sha256, label=f"{label} (local copy {folder})")
    except BundleError:  # tampered, truncated or half-removed: never used, fetched again
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _store_in_cache(source: Path, cache: Path, expected_sha256: str) -> None:
    """Keep a checked bundle folder as the local copy (written aside, then renamed into place,
    so a concurrent reader never sees half a folder). A cache that cannot be written is skipped."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".incoming-"))
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        try:
            tmp.rename(cache / expected_sha256)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        return


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
    `FeaturePipeline.unreadable_values`) or outside its plausible range (`features/validation.py`,
    unless `scoring.plausibility: warn`) stops here with file, column and rows, instead of being
    scored, explained or simulated as if it were missing; so does a missing feature column.
    """
    from cxpredict.features.text_features import with_text_features  # text coding only where a config asks

    dataset = with_text_features(config, load_dataset(config))  # the text columns training saw
    loaded = load_champion(config, version)
    label = dataset.sources.get("customers", "customers")
    check_required_columns(loaded.bundle.pipeline, dataset.customers.columns, label)
    check_rows(loaded.bundle.pipeline, dataset.customers, label, config.scoring.plausibility)
    return dataset, loaded
